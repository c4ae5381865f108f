"""How one open file handle reads: the readahead window, and whether it seeks.

A sequential reader's window grows (x4 per read) up to MAX_WINDOW; a seek
resets it. A file of at most SMALL_FILE is fetched whole on its first read.
Seeks are counted: a handle that keeps seeking reads at random, and
wholefetch.py fetches such a file whole when the cache can take it.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_WINDOW = 256 * 2**10
MAX_WINDOW = 64 * 2**20
SEQUENTIAL_SLACK = 4 * 2**20
"""The kernel's readahead requests arrive slightly out of order; still sequential."""
SMALL_FILE = 2 * 2**20
"""Bytes: files up to this size are fetched whole on first read."""
RANDOM_SEEKS = 3
"""Seeks on one handle after which its file counts as randomly read."""


@dataclass
class Readahead:
    """Per open file handle: the window grows on sequential reads and resets on a seek."""

    next_offset: int = 0
    window: int = MIN_WINDOW
    seeks: int = 0
    """Reads that did not follow the previous one."""
    whole: bool = False
    """This handle has started a whole-file fetch (each handle starts one at most)."""

    def advance(self, offset: int, size: int) -> int:
        """Record a read of ``size`` bytes at ``offset``; returns the window after it."""
        if abs(offset - self.next_offset) <= SEQUENTIAL_SLACK:
            if offset >= self.next_offset:
                # x4: a whole-file read reaches the largest window after a few MiB.
                # Big requests are the kernel's own readahead: start at 8 of them.
                self.window = min(max(self.window * 4, 8 * size), MAX_WINDOW)
            self.next_offset = max(self.next_offset, offset + size)
        else:
            self.window = MIN_WINDOW
            self.next_offset = offset + size
            self.seeks += 1
        return self.window

    @property
    def random(self) -> bool:
        """The handle has seeked RANDOM_SEEKS times: it reads at random."""
        return self.seeks >= RANDOM_SEEKS
