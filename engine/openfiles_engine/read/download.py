"""Fetching remote bytes into the data cache: range GETs with growing readahead.

A missing range is fetched in range GETs of up to PIECE bytes that run
concurrently. Each piece in flight has an event, so concurrent readers of the
same bytes wait for one GET instead of issuing their own. On sequential reads
the pieces of the readahead window (aligned to PIECE) are fetched in the
background, and a reader waits only for the piece that holds its bytes.

A fetched piece arrives as buffers of about 1 MiB (store.CHUNK), each *held*
in memory; read() replies are views of them, and they are released once the
reader is past them. Each buffer is also written into the data file, behind
the reader: on the event loop while the disk keeps up (cache.WritePace),
else in a worker thread, where, when more than WRITE_BEHIND bytes wait for
the disk, a new buffer is not written at all (dropped: clean bytes can be
fetched again). Held pieces are bounded by piece.HELD_MAX. ``Node.ranges``
only ever names bytes that are in the data file.

A file read at random that fits in a quarter of the cache is fetched whole
in the background, and its misses wait for those pieces: wholefetch.py,
which uses this class's pieces (``_piece``, the in-flight table, ``_assemble``)
so that both kinds of fetch share GETs and Stats.

Dirty data never passes through here: a file is filled (every byte written,
synchronously) before its first local write, and :meth:`DataFiles.invalidate`
stops fetched bytes still on their way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from typing import Any

import trio

from openfiles_engine.bucket.store import AsyncStore, Changed, NotFound, StoreError
from openfiles_engine.cache.datafiles import DataFiles, WritePace, add_range, covering, missing
from openfiles_engine.read.piece import PIECE, HeldPieces
from openfiles_engine.read.readahead import (
    MAX_WINDOW,
    MIN_WINDOW,
    SEQUENTIAL_SLACK,
    SMALL_FILE,
    Readahead,
)
from openfiles_engine.read.wholefetch import WholeFetch
from openfiles_engine.state.db import Node
from openfiles_engine.state.journal import Journal
from openfiles_engine.state.tree import Tree

log = logging.getLogger(__name__)

WRITE_BEHIND = 192 * 2**20
"""Bytes of fetched pieces that may wait for the disk; beyond it new pieces are dropped.

Measured on the 2-core VM: with 64 MiB, a cold 1 GiB read dropped about half
its pieces and the re-read fell to 0.4x of the FUSE ceiling; 192 MiB keeps it
above 0.5x while the cold read stays at network speed."""
SAVE_INTERVAL = 1.0
"""Seconds: fetched ranges of a file are committed to SQLite at most this often.

Until then ``Node.ranges`` on disk names fewer bytes than the file holds,
which is safe (they are fetched again after a crash). A commit per random
read cost more than the read itself."""


@dataclass
class Stats:
    hit_bytes: int = 0
    miss_bytes: int = 0
    fetched_bytes: int = 0
    """Bytes written into the cache from the bucket, prefetches included."""
    dropped_bytes: int = 0
    """Fetched bytes not written to the cache because the disk fell behind."""

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
        """Where background fetches and writes run (set by the engine once it runs).

        Without it, every fetch and write completes before read() returns."""
        self.window_cap: Callable[[], int] = lambda: MAX_WINDOW
        """Upper bound on the readahead window (the engine keeps it under the cache size)."""
        self.after_fetch: Callable[[], object] = lambda: None
        """Called after fetched data reached the cache (the engine enforces the cache bound)."""
        self._inflight: dict[int, dict[tuple[int, int], trio.Event]] = {}
        self._held = HeldPieces()
        self._queued_bytes = 0
        self._disk = trio.CapacityLimiter(1)
        """One write at a time: parallel writes of fresh pages do not go faster."""
        self._pace = WritePace()
        self._errors: dict[int, Exception] = {}
        self.filling: set[int] = set()
        """Inodes being filled before a write: eviction must leave their data alone."""
        self._pending: list[partial[Coroutine[Any, Any, None]]] = []
        """Without a nursery: GETs started, run by the next :meth:`_wait`."""
        self.whole = WholeFetch(self)
        """Whole-file fetches of randomly read files (wholefetch.py)."""
        self._saved: dict[int, float] = {}

    @property
    def held_bytes(self) -> int:
        """Bytes of fetched pieces in memory (at most piece.HELD_MAX)."""
        return self._held.bytes

    def closed(self, node: Node) -> None:
        """The last handle of ``node`` was released: free its held pieces.

        A piece still queued for the disk keeps its own reference until written.
        """
        self._held.release(node.ino, lambda a, b: True)

    def forget(self, ino: int) -> None:
        """Drop per-inode state of a node that is gone for good."""
        if not self._inflight.get(ino):
            self._inflight.pop(ino, None)
        self._held.release(ino, lambda a, b: True)
        self._errors.pop(ino, None)
        self._saved.pop(ino, None)

    async def read(self, node: Node, offset: int, size: int,
                   ra: Readahead) -> bytes | memoryview:
        """Bytes [offset, offset+size) of ``node``, fetching what is missing.

        A reply within one held buffer is a view of it, not a copy.
        """
        node.last_access = time.time()
        end = min(offset + size, node.size)
        window = min(ra.advance(offset, size), max(MIN_WINDOW, self.window_cap()))
        node.read_pos = offset
        if offset >= end:
            return b""
        # Held (prefetched) buffers first, then the data file; a full file is all in the file.
        data = None if node.full else self._assemble(node, offset, end)
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
            await self._fetch(node, offset, end, max(end, want_end), window)
            data = self._assemble(node, offset, end)
            if data is None:  # the file changed while we waited
                raise StoreError(f"inode {node.ino} changed while it was read")
        self._ahead(node, offset, offset + window, window)
        self._held.release(node.ino, lambda a, b: b <= offset - SEQUENTIAL_SLACK)
        return data

    async def fill(self, node: Node) -> None:
        """Fetch every byte into the data file, so it alone holds the file (before a write)."""
        if node.full:
            return
        self.filling.add(node.ino)
        try:
            await self._fetch(node, 0, node.size, node.size, MAX_WINDOW, durable=True)
        finally:
            self.filling.discard(node.ino)

    def _ahead(self, node: Node, offset: int, end: int, window: int) -> None:
        """Start fetching the readahead window of a sequential reader in the background."""
        if self.nursery is None or window < 4 * MIN_WINDOW or node.full:
            return
        self._start(node, offset, min(end, node.size), window, durable=False)

    def _have(self, node: Node) -> list[list[int]]:
        return self._held.have(node.ino, node.etag, node.ranges)

    def _busy(self, node: Node, durable: bool = False) -> list[list[int]]:
        """Bytes present (in the file; or held, unless ``durable``) or in flight."""
        busy = node.ranges if durable else self._have(node)
        for s, e in self._inflight.get(node.ino, {}):
            busy = add_range(busy, s, e)
        return busy

    def _assemble(self, node: Node, start: int, end: int) -> bytes | memoryview | None:
        """[start, end) from held pieces and the data file, or None if a byte is missing.

        Held pieces come first: they are in memory, the file may need a copy.
        """
        held = self._held.of(node.ino, node.etag)
        parts: list[bytes | memoryview] = []
        pos = start
        while pos < end:
            piece = self._held.find(node.ino, pos) if held else None
            if piece is not None:
                a, b = piece
                parts.append(held[piece][pos - a:min(b, end) - a])
                pos = min(b, end)
                continue
            disk = covering(node.ranges, pos)
            if disk is None:
                return None
            stop = min(disk, end, self._held.next_start(node.ino, pos) or end)
            parts.append(self.data.read(node.ino, pos, stop - pos))
            pos = stop
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def _fetch(self, node: Node, start: int, end: int, ahead: int, window: int,
                     durable: bool = False) -> None:
        """Make [start, end) readable (in the file if ``durable``); also start [end, ahead).

        Raises StoreError if the bucket does not deliver.
        """
        for _ in range(3):
            if node.full or not missing(node.ranges if durable else self._have(node), start, end):
                break
            if durable:
                await self._write_held(node, start, end)
            self._start(node, start, min(ahead, node.size), window, durable)
            await self._wait(node, start, end)
        else:
            if not node.full and missing(node.ranges if durable else self._have(node), start, end):
                exc = self._errors.pop(node.ino, None)
                raise StoreError(str(exc) if exc else f"could not fetch inode {node.ino}")
        self._complete(node)

    def _complete(self, node: Node) -> None:
        if not node.full and (node.ranges == [[0, node.size]] or node.size == 0):
            node.full = True
            # Duplicates of written pieces may still be queued: they must never land
            # on top of a local write that can now start without filling.
            self.data.invalidate(node.ino)
            self._held.release(node.ino, lambda a, b: True)
            self._saved[node.ino] = time.monotonic()
            self.tree.save(node)
        else:
            self._save(node)

    def _save(self, node: Node) -> None:
        """Commit ``node`` (its fetched ranges) now, or soon: at most every SAVE_INTERVAL."""
        now = time.monotonic()
        if now - self._saved.get(node.ino, 0.0) >= SAVE_INTERVAL:
            self._saved[node.ino] = now
            self.tree.save(node)
        else:
            node.unsaved = True  # committed by the next save, or at close

    def _start(self, node: Node, start: int, end: int, window: int, durable: bool) -> None:
        """Start GETs for the bytes of [start, end) that are neither present nor in flight.

        A sequential reader's window is cut at PIECE boundaries of the file, so
        each GET stays PIECE long however the reads fall; a small window is
        fetched as it is.
        """
        inflight = self._inflight.setdefault(node.ino, {})
        piece = max(MIN_WINDOW, min(PIECE, self.window_cap()))
        behind = not durable and window >= piece  # a sequential stream: write behind
        if window >= piece:
            start, end = start - start % piece, min(node.size, end + (-end) % piece)
        key = self.tree.path(node)
        for gap_start, gap_end in missing(self._busy(node, durable), start, end):
            cuts = sorted({gap_start, gap_end,
                           *range(gap_start - gap_start % piece + piece, gap_end, piece)})
            for a, b in pairwise(cuts):
                event = trio.Event()
                inflight[(a, b)] = event
                task = partial(self._piece, node, key, a, b, event, inflight, behind)
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
        for (s, e), event in list(self._inflight.get(node.ino, {}).items()):
            if s < end and start < e:
                await event.wait()

    async def _piece(self, node: Node, key: str, start: int, end: int, event: trio.Event,
                     inflight: dict[tuple[int, int], trio.Event], behind: bool) -> None:
        etag, generation = node.etag, self.data.generation(node.ino)
        try:
            chunks = await self._get(node, key, start, end, etag)
            if node.etag != etag or node.full or self.data.generation(node.ino) != generation:
                return  # replaced while we waited
            pos = start
            for chunk in chunks:  # each buffer is held and written on its own
                if behind and self.nursery is not None:
                    self._held.hold(node.ino, etag, pos, chunk)
                    self._queue(node, pos, chunk, etag, generation)
                else:  # small reads and fills: in the file before anyone is told
                    await self._write(node, pos, chunk, etag, generation)
                pos += len(chunk)
        except (StoreError, OSError) as exc:
            log.debug("fetch of inode %d [%d, %d) failed: %s", node.ino, start, end, exc)
            self._errors[node.ino] = exc
        finally:
            inflight.pop((start, end), None)
            event.set()

    def _queue(self, node: Node, start: int, chunk: memoryview, etag: str | None,
               generation: int) -> None:
        """Write ``chunk`` behind, or drop it if the disk is already WRITE_BEHIND behind."""
        if self._queued_bytes + len(chunk) > WRITE_BEHIND:
            self.stats.dropped_bytes += len(chunk)
            return
        self._queued_bytes += len(chunk)

        async def behind() -> None:
            try:
                await self._write(node, start, chunk, etag, generation)
            except OSError as exc:  # a full cache disk: the bytes are fetched again
                log.debug("cache write of inode %d failed: %s", node.ino, exc)
                self.stats.dropped_bytes += len(chunk)
            finally:
                self._queued_bytes -= len(chunk)

        assert self.nursery is not None
        self.nursery.start_soon(behind)

    async def _write(self, node: Node, start: int, chunk: memoryview, etag: str | None,
                     generation: int) -> None:
        """pwrite, then record the range (only if it is in the file).

        The pwrites run on the event loop while the cache disk keeps up, else
        in a worker thread for a while (:class:`cache.WritePace`).
        """
        def wanted() -> bool:
            return node.etag == etag and not node.full

        fd = self.data.writer(node.ino)
        async with self._disk:
            if self._pace.inline():
                began = time.monotonic()
                done = self.data.write_fetched(node.ino, fd, start, chunk, generation, wanted)
                self._pace.took(time.monotonic() - began)
            else:
                done = await trio.to_thread.run_sync(
                    self.data.write_fetched, node.ino, fd, start, chunk, generation, wanted)
        if done and wanted() and self.data.generation(node.ino) == generation:
            node.ranges = add_range(node.ranges, start, start + len(chunk))
            self.stats.fetched_bytes += len(chunk)
            if node.opens <= 0:  # else readers of the open file are answered from memory
                self._held.release(node.ino, lambda a, b: a == start)
            if node.ranges == [[0, node.size]] and node.ino not in self.filling:
                self._complete(node)  # the last piece of a stream: the file is whole
            if node.ino not in self.filling:
                self.after_fetch()

    async def _write_held(self, node: Node, start: int, end: int) -> None:
        """Write the held pieces over [start, end) now (a fill needs them in the file)."""
        for (a, b), chunk in list(self._held.of(node.ino, node.etag).items()):
            if a < end and start < b and missing(node.ranges, a, b):
                await self._write(node, a, chunk, node.etag, self.data.generation(node.ino))

    async def _get(self, node: Node, key: str, start: int, end: int,
                   etag: str | None) -> list[memoryview]:
        """Range GET of version ``etag``, looking under the old key while a rename is
        not yet replayed.

        If the bucket's object was replaced, raises Changed and makes the next
        open ask the bucket (the kernel's copy is dropped there): a file is never
        assembled from pieces of two versions.
        """
        remote = self.journal.remote_key(key)
        try:
            return await self.store.run(self.store.sync.get_chunks, remote, start, end,
                                        if_match=etag)
        except Changed:
            node.validated = 0.0
            log.warning("%r changed in the bucket while it was read; reads of this open "
                        "file fail with EIO, the next open sees the new version", key)
            raise
        except NotFound:
            if remote == key:
                raise
            # The rename was replayed while we asked: the bytes are at the new key now,
            # whose ETag the copy may have changed (refreshed once the replay is done).
            return await self.store.run(self.store.sync.get_chunks, key, start, end)
