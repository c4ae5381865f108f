"""Write pacing: fetched data is written on the event loop while the cache disk
keeps up, and in a worker thread for a while once it does not (:class:`WritePace`).

Times are seconds of ``time.monotonic()``.
"""

from __future__ import annotations

import logging
import math
import time

log = logging.getLogger(__name__)


class WritePace:
    """Whether fetched data is written on the event loop (the usual case) or in a thread.

    A write into the page cache takes about a millisecond per MiB. Done in a
    worker thread, each of its ``datafile.WRITE_SIZE`` pwrites must take the GIL back from
    the busy event loop: measured on the dev VM, a cold 1 GiB read then left
    130-490 MiB unwritten for want of disk; written on the loop, it left none,
    with the writes taking about 40% of the loop's time (docs/ENGINE.md,
    "Cold sequential read"). But when the kernel throttles writers (dirty
    pages pile up on a slow disk) writes sleep, and the loop must not: once
    writes take over BUSY_MAX of the loop's recent time, the next
    THREADED_FOR seconds of writes go to a thread. A single slow write (the
    VM stalls now and then for tens of ms) does not count as a slow disk.
    """

    BUSY_MAX = 0.6
    """Fraction of the loop's time."""
    WINDOW = 2.0
    """Seconds: how far back the loop's time is looked at (a decaying sum)."""
    THREADED_FOR = 5.0
    """Seconds."""

    def __init__(self) -> None:
        self.busy = 0.0
        self.at = time.monotonic()
        self.threaded_until = 0.0

    def inline(self) -> bool:
        """Write on the event loop now?"""
        return time.monotonic() >= self.threaded_until

    def took(self, seconds: float, now: float | None = None) -> None:
        """Record an inline write that blocked the loop for ``seconds``."""
        now = time.monotonic() if now is None else now
        self.busy = self.busy * math.exp(-(now - self.at) / self.WINDOW) + seconds
        self.at = now
        if self.busy > self.BUSY_MAX * self.WINDOW:
            self.busy = 0.0
            self.threaded_until = now + self.THREADED_FOR
            log.info("the cache disk is slow: fetched data is written in a thread for %.0f s",
                     self.THREADED_FOR)
