"""Fetching remote bytes into the data cache: range GETs with growing readahead.

A missing range is fetched in PIECE-sized range GETs that run concurrently and
are written to the data file as they arrive. Each piece in flight has an
event, so concurrent readers of the same bytes wait for one GET instead of
issuing their own. On sequential reads the next window is prefetched in the
background while the reader consumes the current one.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import trio

from .cache import DataFiles, add_range, missing
from .journal import Journal
from .meta import Node
from .store import AsyncStore, NotFound, StoreError
from .tree import Tree

log = logging.getLogger(__name__)

MIN_WINDOW = 256 * 2**10
MAX_WINDOW = 64 * 2**20
PIECE = 8 * 2**20
"""Bytes per range GET (obstore is fastest around 8 MiB)."""
SMALL_FILE = 2 * 2**20
"""Bytes: files up to this size are fetched whole on first read."""
SEQUENTIAL_SLACK = 4 * 2**20
"""The kernel's readahead requests arrive slightly out of order; still sequential."""


@dataclass
class Readahead:
    """Per open file handle: the window grows on sequential reads and resets on a seek."""

    next_offset: int = 0
    window: int = MIN_WINDOW

    def advance(self, offset: int, size: int) -> int:
        if abs(offset - self.next_offset) <= SEQUENTIAL_SLACK:
            if offset >= self.next_offset:
                # x4: a whole-file read reaches the largest window after a few MiB
                self.window = min(self.window * 4, MAX_WINDOW)
            self.next_offset = max(self.next_offset, offset + size)
        else:
            self.window = MIN_WINDOW
            self.next_offset = offset + size
        return self.window


@dataclass
class Stats:
    hit_bytes: int = 0
    miss_bytes: int = 0
    fetched_bytes: int = 0
    """Bytes written into the cache from the bucket, prefetches included."""

    @property
    def hit_ratio(self) -> float:
        total = self.hit_bytes + self.miss_bytes
        return self.hit_bytes / total if total else 1.0


class Downloader:
    """Reads through the cache; fetches missing ranges of clean files."""

    def __init__(self, tree: Tree, store: AsyncStore, data: DataFiles, journal: Journal) -> None:
        self.journal = journal
        self.tree = tree
        self.store = store
        self.data = data
        self.stats = Stats()
        self.nursery: trio.Nursery | None = None
        """Where background prefetches run (set by the engine once it runs)."""
        self.window_cap: Callable[[], int] = lambda: MAX_WINDOW
        """Upper bound on the readahead window (the engine keeps it under the cache size)."""
        self.after_fetch: Callable[[], object] = lambda: None
        """Called after a read that fetched data (the engine enforces the cache bound)."""
        self._inflight: dict[int, dict[tuple[int, int], trio.Event]] = {}

    def forget(self, ino: int) -> None:
        """Drop per-inode state of a node that is gone for good."""
        if not self._inflight.get(ino):
            self._inflight.pop(ino, None)

    async def read(self, node: Node, offset: int, size: int, ra: Readahead) -> bytes:
        """Bytes [offset, offset+size) of ``node``, fetching what is missing."""
        node.last_access = time.time()
        end = min(offset + size, node.size)
        window = min(ra.advance(offset, size), max(MIN_WINDOW, self.window_cap()))
        node.read_pos = offset
        if offset >= end:
            return b""
        if node.full or not missing(node.ranges, offset, end):
            self.stats.hit_bytes += end - offset
            self._prefetch(node, offset + window, window)
            return self.data.read(node.ino, offset, end - offset)
        self.stats.miss_bytes += end - offset
        want_end = node.size if node.size <= SMALL_FILE else min(offset + window, node.size)
        await self._fetch(node, offset, max(end, want_end))
        data = self.data.read(node.ino, offset, end - offset)
        self._prefetch(node, want_end, window)
        self.after_fetch()
        return data

    async def fill(self, node: Node) -> None:
        """Fetch every byte, so the data file alone holds the file (before a write)."""
        if not node.full:
            await self._fetch(node, 0, node.size)

    def _prefetch(self, node: Node, start: int, window: int) -> None:
        if self.nursery is None or window < 4 * MIN_WINDOW or start >= node.size or node.full:
            return
        end = min(start + window, node.size)
        if missing(node.ranges, start, end):
            self.nursery.start_soon(self._background, node, start, end)

    async def _background(self, node: Node, start: int, end: int) -> None:
        try:
            await self._fetch(node, start, end)
        except (StoreError, OSError) as exc:
            log.debug("prefetch of inode %d failed: %s", node.ino, exc)
        else:
            self.after_fetch()

    async def _fetch(self, node: Node, start: int, end: int) -> None:
        """Make [start, end) present; raises StoreError if the bucket does not deliver."""
        for _ in range(3):
            if node.full or not missing(node.ranges, start, end):
                break
            await self._fetch_once(node, start, end)
        else:
            if not node.full and missing(node.ranges, start, end):
                raise StoreError(f"could not fetch inode {node.ino}")
        if not node.full and (node.ranges == [[0, node.size]] or node.size == 0):
            node.full = True
        self.tree.save(node)

    async def _fetch_once(self, node: Node, start: int, end: int) -> None:
        inflight = self._inflight.setdefault(node.ino, {})
        waits: list[trio.Event] = []
        todo: list[tuple[int, int, trio.Event]] = []
        piece = max(MIN_WINDOW, min(PIECE, self.window_cap()))
        for gap_start, gap_end in missing(node.ranges, start, min(end, node.size)):
            for a in range(gap_start, gap_end, piece):
                b = min(a + piece, gap_end)
                busy = [ev for (s, e), ev in inflight.items() if s < b and a < e]
                if busy:
                    waits.extend(busy)  # another reader is fetching these bytes
                    continue
                event = trio.Event()
                inflight[(a, b)] = event
                todo.append((a, b, event))
        key = self.tree.path(node)
        if todo:
            async with trio.open_nursery() as nursery:
                for a, b, event in todo:
                    nursery.start_soon(self._piece, node, key, a, b, event, inflight)
        for event in waits:
            await event.wait()

    async def _piece(self, node: Node, key: str, start: int, end: int, event: trio.Event,
                     inflight: dict[tuple[int, int], trio.Event]) -> None:
        etag = node.etag
        try:
            chunk = await self._get(key, start, end)
            if node.etag != etag or node.full:
                return  # replaced while we waited
            fd, generation = self.data.writer(node.ino)
            # The disk write runs in a thread so the event loop keeps serving reads.
            await trio.to_thread.run_sync(_pwrite_and_close, fd, chunk, start)
            if node.etag == etag and not node.full and \
                    self.data.generation(node.ino) == generation:
                node.ranges = add_range(node.ranges, start, start + len(chunk))
                self.stats.fetched_bytes += len(chunk)
        finally:
            inflight.pop((start, end), None)
            event.set()

    async def _get(self, key: str, start: int, end: int) -> memoryview:
        """Range GET, looking under the old key while a rename is not yet replayed."""
        remote = self.journal.remote_key(key)
        try:
            return await self.store.run(self.store.sync.get_range, remote, start, end)
        except NotFound:
            if remote == key:
                raise
            # The rename was replayed while we asked: the bytes are at the new key now.
            return await self.store.run(self.store.sync.get_range, key, start, end)


def _pwrite_and_close(fd: int, data: memoryview, offset: int) -> None:
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)
