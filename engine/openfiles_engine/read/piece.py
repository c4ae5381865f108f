"""Fetched pieces: their size (PIECE), and those held in memory until the data
file has them (bounded by HELD_MAX).

A sequential reader is answered from these while their write into the data
file happens behind (fetcher.py). Pieces of a file are forgotten as soon as
its ETag differs from the one they were fetched under.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

from openfiles_engine.cache.byterange import add_range

PIECE = 8 * 2**20
"""Bytes per range GET (obstore is fastest around 8 MiB)."""
HELD_MAX = 128 * 2**20
"""Bytes of fetched pieces kept in memory for readers (oldest released first).

Every held piece is in the data file too, so releasing one early costs a pread,
never a fetch. It was 256 MiB: 4 readers of 4 files then took the engine's
peak RSS to 441-470 MiB (549 MiB before the GETs' threads wrote the cache);
with 128 MiB, 302-328 MiB (512 MiB files, 3 runs each)."""


class HeldPieces:
    """Pieces by inode: {(start, end): bytes}, oldest first, at most HELD_MAX bytes in all."""

    def __init__(self) -> None:
        self._pieces: dict[int, dict[tuple[int, int], memoryview]] = {}
        self._etags: dict[int, str | None] = {}
        self._starts: dict[int, list[tuple[int, int]]] = {}
        """Per inode, the pieces' (start, end) in order (a read looks them up by bisection)."""
        self._spans: dict[int, list[list[int]]] = {}
        """Per inode, the bytes its pieces cover, merged (computed when asked)."""
        self.bytes = 0

    def of(self, ino: int, etag: str | None) -> dict[tuple[int, int], memoryview]:
        """Pieces of ``ino`` fetched under ``etag`` (none, and all dropped, if it differs)."""
        if ino in self._pieces and self._etags.get(ino) != etag:
            self.release(ino, lambda a, b: True)
        return self._pieces.get(ino, {})

    def holds(self, ino: int) -> bool:
        """Whether any piece of ``ino`` is held (of whichever version)."""
        return ino in self._pieces

    def files(self, ino: int) -> int:
        """How many files hold pieces, ``ino`` counted whether it holds any yet or not."""
        return len(self._pieces) + (ino not in self._pieces)

    def have(self, ino: int, etag: str | None, ranges: list[list[int]]) -> list[list[int]]:
        """``ranges`` plus the held pieces of ``ino``."""
        if not self.of(ino, etag):
            return ranges
        spans = self._spans.get(ino)
        if spans is None:
            spans = []
            for a, b in self._starts[ino]:
                if spans and a <= spans[-1][1]:
                    spans[-1][1] = max(spans[-1][1], b)
                else:
                    spans.append([a, b])
            self._spans[ino] = spans
        for a, b in spans:
            ranges = add_range(ranges, a, b)
        return ranges

    def find(self, ino: int, pos: int) -> tuple[int, int] | None:
        """The held piece of ``ino`` that has the byte at ``pos`` (call :meth:`of` first)."""
        starts = self._starts.get(ino)
        if not starts:
            return None
        i = bisect.bisect_right(starts, (pos, 2**63)) - 1
        while i >= 0:  # pieces may overlap: look back over those starting before pos
            a, b = starts[i]
            if pos < b:
                return a, b
            if i == 0 or starts[i - 1][1] <= pos:
                return None
            i -= 1
        return None

    def next_start(self, ino: int, pos: int) -> int | None:
        """Where the first held piece of ``ino`` after ``pos`` starts."""
        starts = self._starts.get(ino)
        if not starts:
            return None
        i = bisect.bisect_right(starts, (pos, 2**63))
        return starts[i][0] if i < len(starts) else None

    def hold(self, ino: int, etag: str | None, start: int, chunk: memoryview) -> None:
        """Keep ``chunk`` (bytes from ``start``); release the oldest pieces beyond HELD_MAX."""
        if self._etags.get(ino) != etag:
            self.release(ino, lambda a, b: True)
        self._etags[ino] = etag
        key = (start, start + len(chunk))
        pieces = self._pieces.setdefault(ino, {})
        if key in pieces:
            self.bytes -= len(pieces[key])
        else:
            bisect.insort(self._starts.setdefault(ino, []), key)
        pieces[key] = chunk
        self._spans.pop(ino, None)
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
        gone = []
        for a, b in pieces:
            if which(a, b):
                gone.append((a, b))
                if first_only:
                    break
        if gone:
            starts = self._starts[ino]
            for key in gone:
                self.bytes -= len(pieces.pop(key))
                del starts[bisect.bisect_left(starts, key)]
            self._spans.pop(ino, None)
        if not pieces:
            del self._pieces[ino]
            self._etags.pop(ino, None)
            self._starts.pop(ino, None)
