"""Fetching remote bytes into the data cache: range GETs with growing readahead."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import trio

from .cache import DataFiles, add_range, missing
from .journal import Journal
from .meta import Node
from .store import AsyncStore, NotFound
from .tree import Tree

MIN_WINDOW = 1 * 2**20
MAX_WINDOW = 32 * 2**20
SMALL_FILE = 2 * 2**20
"""Bytes: files up to this size are fetched whole on first read."""
FILL_CHUNK = 32 * 2**20


@dataclass
class Readahead:
    """Per open file handle: the window grows on sequential reads and resets on a seek."""

    next_offset: int = 0
    window: int = MIN_WINDOW

    def advance(self, offset: int, size: int) -> int:
        if offset == self.next_offset:
            self.window = min(self.window * 2, MAX_WINDOW)
        else:
            self.window = MIN_WINDOW
        self.next_offset = offset + size
        return self.window


@dataclass
class Stats:
    hit_bytes: int = 0
    miss_bytes: int = 0

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
        self.window_cap: Callable[[], int] = lambda: MAX_WINDOW
        """Upper bound on the readahead window (the engine keeps it under the cache size)."""
        self.after_fetch: Callable[[], object] = lambda: None
        """Called after a read that fetched data (the engine enforces the cache bound)."""
        self._locks: dict[int, trio.Lock] = {}

    async def read(self, node: Node, offset: int, size: int, ra: Readahead) -> bytes:
        """Bytes [offset, offset+size) of ``node``, fetching what is missing."""
        node.last_access = time.time()
        end = min(offset + size, node.size)
        window = min(ra.advance(offset, size), max(MIN_WINDOW, self.window_cap()))
        if offset >= end:
            return b""
        node.read_pos = offset
        if not node.full and missing(node.ranges, offset, end):
            self.stats.miss_bytes += end - offset
            want_end = node.size if node.size <= SMALL_FILE else min(offset + window, node.size)
            await self._fetch(node, offset, max(end, want_end))
            data = self.data.read(node.ino, offset, end - offset)
            self.after_fetch()
            return data
        self.stats.hit_bytes += end - offset
        return self.data.read(node.ino, offset, end - offset)

    async def fill(self, node: Node) -> None:
        """Fetch every byte, so the data file alone holds the file (before a write)."""
        if node.full:
            return
        await self._fetch(node, 0, node.size)

    async def _fetch(self, node: Node, start: int, end: int) -> None:
        lock = self._locks.setdefault(node.ino, trio.Lock())
        async with lock:
            if node.full:
                return
            key = self.tree.path(node)
            etag = node.etag
            for gap_start, gap_end in missing(node.ranges, start, end):
                pos = gap_start
                while pos < gap_end:
                    stop = min(pos + FILL_CHUNK, gap_end)
                    chunk = await self._get(key, pos, stop)
                    if node.etag != etag or node.full:
                        return  # replaced while we waited; the caller re-reads
                    self.data.write(node.ino, pos, chunk)
                    node.ranges = add_range(node.ranges, pos, pos + len(chunk))
                    if len(chunk) < stop - pos:
                        break  # object shorter than we thought
                    pos = stop
            if node.ranges == [[0, node.size]] or node.size == 0:
                node.full = True
            self.tree.save(node)

    async def _get(self, key: str, start: int, end: int) -> bytes:
        """Range GET, looking under the old key while a rename is not yet replayed."""
        remote = self.journal.remote_key(key)
        try:
            return await self.store.run(self.store.sync.get_range, remote, start, end)
        except NotFound:
            if remote == key:
                raise
            # The rename was replayed while we asked: the bytes are at the new key now.
            return await self.store.run(self.store.sync.get_range, key, start, end)
