"""One lock per volume id: overlapping calls for the same volume get ABORTED, not a queue.

The CO retries ABORTED with back-off, which is what it expects when an operation for
that volume is already in flight (CSI spec, "Concurrency").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from openfiles_csi.plugin.errors import Aborted


class VolumeLocks:
    def __init__(self) -> None:
        self._held: set[str] = set()

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """Hold ``key`` for the block; raise :class:`Aborted` at once if it is held.

        Synchronous check-and-set on the event loop thread, so it needs no await.
        """
        if key in self._held:
            raise Aborted(f"an operation for volume {key!r} is already in progress")
        self._held.add(key)
        try:
            yield
        finally:
            self._held.discard(key)
