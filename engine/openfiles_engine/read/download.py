"""Reading through the cache: hits, misses, readahead, and the fill before a write.

:class:`Downloader` is the read subsystem's face to the file system. A read
is answered from held buffers and the data file (a hit); a miss claims range
GETs of up to PIECE bytes that run concurrently (fetcher.py), and waits only
for those that hold its bytes. A sequential reader's readahead window
(readahead.py), aligned to PIECE, is fetched in the background and held in
memory for it; a random reader of a file that fits in a quarter of the cache
gets the whole file fetched instead (wholefetch.py).

Dirty data never passes through here: a file is filled (every byte written,
synchronously) before its first local write, and :meth:`DataFiles.invalidate`
stops fetched bytes still on their way.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine
from functools import partial
from itertools import pairwise
from typing import Any

import trio

from openfiles_engine.bucket.asyncstore import AsyncStore
from openfiles_engine.bucket.store import StoreError
from openfiles_engine.cache.byterange import missing
from openfiles_engine.cache.datafile import DataFiles
from openfiles_engine.read.fetcher import Fetcher
from openfiles_engine.read.piece import HELD_MAX, PIECE
from openfiles_engine.read.readahead import (
    MAX_WINDOW,
    MIN_WINDOW,
    SEQUENTIAL_SLACK,
    SMALL_FILE,
    Readahead,
)
from openfiles_engine.read.wholefetch import WholeFetch
from openfiles_engine.state.inode import Node
from openfiles_engine.state.journal import Journal
from openfiles_engine.state.tree import Tree


class Downloader(Fetcher):
    """Reads through the cache; fetches missing ranges of clean files.

    Its GETs, held pieces and their writes are those of the :class:`Fetcher`
    it extends (one per mount), shared with its :class:`WholeFetch`.
    """

    def __init__(self, tree: Tree, store: AsyncStore, data: DataFiles, journal: Journal) -> None:
        super().__init__(tree, store, data, journal)
        self.whole = WholeFetch(self)
        """Whole-file fetches of randomly read files (wholefetch.py)."""
        self._pending: list[partial[Coroutine[Any, Any, None]]] = []
        """Without a nursery: GETs claimed, run by the next :meth:`_wait`."""

    @property
    def held_bytes(self) -> int:
        """Bytes of fetched pieces in memory (at most piece.HELD_MAX)."""
        return self.held.bytes

    def closed(self, node: Node) -> None:
        """The last handle of ``node`` was released: free its held pieces.

        A piece still queued for the disk keeps its own reference until written.
        """
        self.held.release(node.ino, lambda a, b: True)

    def changed(self, node: Node) -> None:
        """The bytes of ``node`` are about to change locally (a write, a truncate):
        pieces held from the bucket's version must no longer answer a read."""
        self.held.release(node.ino, lambda a, b: True)

    async def read(self, node: Node, offset: int, size: int,
                   ra: Readahead) -> bytes | memoryview:
        """Bytes [offset, offset+size) of ``node``, fetching what is missing.

        A reply within one held buffer is a view of it, not a copy.
        """
        node.last_access = time.time()
        end = min(offset + size, node.size)
        window = min(ra.advance(offset, size), max(MIN_WINDOW, self.window_cap()),
                     self._held_share(node))
        node.read_pos = offset
        if offset >= end:
            return b""
        # Held (prefetched) buffers first, then the data file; a full file is all in
        # the file, though its last pieces may still be held for this reader.
        data = (self.assemble(node, offset, end)
                if not node.full or self.held.holds(node.ino) else None)
        if node.full or data is not None:
            self.stats.hit_bytes += end - offset
            if data is None:
                data = self.data.read(node.ino, offset, end - offset)
        elif ra.random and self.whole.takes(node, ra, offset):
            self.stats.miss_bytes += end - offset
            return await self.whole.demand(node, offset, end)
        else:
            self.stats.miss_bytes += end - offset
            want_end = node.size if node.size <= SMALL_FILE else offset + window
            await self._ensure(node, offset, end, max(end, want_end), window)
            data = self.assemble(node, offset, end)
            if data is None:  # the file changed while we waited
                raise StoreError(f"inode {node.ino} changed while it was read")
        self._ahead(node, offset, offset + window, window)
        self.held.release(node.ino, lambda a, b: b <= offset - SEQUENTIAL_SLACK)
        return data

    def _held_share(self, node: Node) -> int:
        """The largest window at which the pieces held for every file being streamed
        fit in HELD_MAX (each holds its window, up to a PIECE of rounding, and
        SEQUENTIAL_SLACK behind its reader); at least a PIECE.

        Past HELD_MAX the oldest pieces go, the ones next in line for their readers,
        and with direct writes (several files) those are read back from the disk.
        """
        return max(PIECE, HELD_MAX // self.held.files(node.ino) - PIECE - SEQUENTIAL_SLACK)

    async def fill(self, node: Node) -> None:
        """Make the data file hold exactly the file: before the first local write to a
        clean file (a write, a truncate to a non-zero size).

        Fetches every missing byte, and cuts the data file to ``node.size``: past
        it may lie bytes of an older, longer version of the object, which a write
        past the end or a truncate up would otherwise show instead of zeros.
        """
        if not node.full:
            self.filling.add(node.ino)
            try:
                await self._ensure(node, 0, node.size, node.size, MAX_WINDOW, durable=True)
            finally:
                self.filling.discard(node.ino)
        self.data.settle(node.ino, node.size)

    def _ahead(self, node: Node, offset: int, end: int, window: int) -> None:
        """Start fetching the readahead window of a sequential reader in the background."""
        if self.nursery is None or window < 4 * MIN_WINDOW or node.full:
            return
        self._start(node, offset, min(end, node.size), window, durable=False)

    async def _ensure(self, node: Node, start: int, end: int, ahead: int, window: int,
                      durable: bool = False) -> None:
        """Make [start, end) readable (in the file if ``durable``); also start [end, ahead).

        Raises StoreError if the bucket does not deliver.
        """
        for _ in range(3):
            if node.full or not missing(node.ranges if durable else self.present(node),
                                        start, end):
                break
            if durable:
                await self.write_held(node, start, end)
            self._start(node, start, min(ahead, node.size), window, durable)
            await self._wait(node, start, end)
        else:
            if not node.full and missing(node.ranges if durable else self.present(node),
                                         start, end):
                exc = self.failure(node.ino)
                raise StoreError(str(exc) if exc else f"could not fetch inode {node.ino}")
        self.complete(node)

    def _start(self, node: Node, start: int, end: int, window: int, durable: bool) -> None:
        """Start GETs for the bytes of [start, end) that are neither present nor in flight.

        A sequential reader's window is cut at PIECE boundaries of the file, so
        each GET stays PIECE long however the reads fall; a small window is
        fetched as it is.
        """
        piece = max(MIN_WINDOW, min(PIECE, self.window_cap()))
        behind = not durable and window >= piece  # a sequential stream: write behind
        if window >= piece:
            start, end = start - start % piece, min(node.size, end + (-end) % piece)
        key = self.tree.path(node)
        for gap_start, gap_end in missing(self.busy(node, durable), start, end):
            cuts = sorted({gap_start, gap_end,
                           *range(gap_start - gap_start % piece + piece, gap_end, piece)})
            for a, b in pairwise(cuts):
                flight = self.claim(node, a, b)
                task = partial(self.fetch, node, key, flight, behind)
                if self.nursery is not None:
                    self.nursery.start_soon(task)
                else:
                    self._pending.append(task)

    async def _wait(self, node: Node, start: int, end: int) -> None:
        pending, self._pending = self._pending, []
        if pending:
            async with trio.open_nursery() as nursery:
                for task in pending:
                    nursery.start_soon(task)
        await self.wait(node, start, end)
