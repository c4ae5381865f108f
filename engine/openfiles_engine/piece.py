"""Fetched pieces held in memory until the data file has them (bounded by HELD_MAX).

A sequential reader is answered from these while their write into the data
file happens behind (download.py). Pieces of a file are forgotten as soon as
its ETag differs from the one they were fetched under.
"""

from __future__ import annotations

from collections.abc import Callable

from .cache import add_range

HELD_MAX = 256 * 2**20
"""Bytes of fetched pieces kept in memory for readers (oldest released first)."""


class HeldPieces:
    """Pieces by inode: {(start, end): bytes}, oldest first, at most HELD_MAX bytes in all."""

    def __init__(self) -> None:
        self._pieces: dict[int, dict[tuple[int, int], memoryview]] = {}
        self._etags: dict[int, str | None] = {}
        self.bytes = 0

    def of(self, ino: int, etag: str | None) -> dict[tuple[int, int], memoryview]:
        """Pieces of ``ino`` fetched under ``etag`` (none, and all dropped, if it differs)."""
        if ino in self._pieces and self._etags.get(ino) != etag:
            self.release(ino, lambda a, b: True)
        return self._pieces.get(ino, {})

    def have(self, ino: int, etag: str | None, ranges: list[list[int]]) -> list[list[int]]:
        """``ranges`` plus the held pieces of ``ino``."""
        for a, b in self.of(ino, etag):
            ranges = add_range(ranges, a, b)
        return ranges

    def hold(self, ino: int, etag: str | None, start: int, chunk: memoryview) -> None:
        """Keep ``chunk`` (bytes from ``start``); release the oldest pieces beyond HELD_MAX."""
        if self._etags.get(ino) != etag:
            self.release(ino, lambda a, b: True)
        self._etags[ino] = etag
        self._pieces.setdefault(ino, {})[(start, start + len(chunk))] = chunk
        self.bytes += len(chunk)
        while self.bytes > HELD_MAX:  # oldest first, whichever file it belongs to
            victim = next(i for i, pieces in self._pieces.items() if pieces)
            self.release(victim, lambda a, b: True, first_only=True)

    def release(self, ino: int, which: Callable[[int, int], bool],
                first_only: bool = False) -> None:
        """Drop the pieces [a, b) of ``ino`` for which ``which(a, b)`` holds."""
        pieces = self._pieces.get(ino)
        if not pieces:
            return
        for a, b in list(pieces):
            if which(a, b):
                self.bytes -= len(pieces.pop((a, b)))
                if first_only:
                    break
        if not pieces:
            del self._pieces[ino]
            self._etags.pop(ino, None)
