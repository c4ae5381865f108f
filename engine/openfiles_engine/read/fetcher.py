"""Pieces of remote objects on their way into the cache: what both kinds of fetch
share (download.py's readahead extends :class:`Fetcher`; wholefetch.py's
whole-file fetch uses it), through its public methods only.

:class:`Fetcher` owns, per inode, the table of range GETs in flight. A GET is
first *claimed* (:meth:`Fetcher.claim`: its bytes count as busy at once, so no
one else asks for them), then run (:meth:`Fetcher.fetch`, in any nursery);
whoever needs those bytes waits for its :class:`Flight` instead of issuing a
GET of its own (:meth:`Fetcher.wait`). A fetched piece arrives as buffers of
about 1 MiB (store.CHUNK). Either each buffer is written into the data file
before the flight ends (small reads, fills, whole fetches), or, for a
sequential stream, it is *held* in memory (:class:`piece.HeldPieces`, bounded
by piece.HELD_MAX), read() replies are views of it, and its write into the
data file happens behind the reader: on the event loop while the disk keeps up
(:class:`cache.pace.WritePace`), else in a worker thread, where, when more
than WRITE_BEHIND bytes wait for the disk, a new buffer is not written at all
(dropped: clean bytes can be fetched again). :meth:`Fetcher.assemble` answers
from held buffers and the data file.

``Node.ranges`` only ever names bytes that are in the data file; it is
committed to SQLite at most every SAVE_INTERVAL, and at once when the file is
whole. A byte is written only under the ETag and data-file generation its GET
started with, so :meth:`DataFiles.invalidate` stops fetched bytes still on
their way, and a file is never assembled from two versions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from openfiles_engine.bucket.asyncstore import AsyncStore
from openfiles_engine.bucket.store import Changed, ObjectNotFound, StoreError
from openfiles_engine.cache.byterange import add_range, covering, missing
from openfiles_engine.cache.datafile import DataFiles
from openfiles_engine.cache.pace import WritePace
from openfiles_engine.read.piece import HeldPieces
from openfiles_engine.read.readahead import MAX_WINDOW
from openfiles_engine.state.inode import Node
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


@dataclass(eq=False)
class Flight:
    """One claimed range GET: bytes [start, end) of an inode's object.

    ``done`` is set once the GET has ended, fetched or failed; the bytes are
    then present (in the data file or held) unless it failed or was stopped.
    """

    start: int
    end: int
    done: trio.Event = field(default_factory=trio.Event)


class Fetcher:
    """Range GETs of clean files into held memory and the data files, shared by
    every reader of the engine (one per mount: the Downloader)."""

    def __init__(self, tree: Tree, store: AsyncStore, data: DataFiles, journal: Journal) -> None:
        self.tree = tree
        self.store = store
        self.data = data
        self.journal = journal
        self.stats = Stats()
        self.held = HeldPieces()
        """Fetched buffers kept in memory for readers (at most piece.HELD_MAX bytes)."""
        self.nursery: trio.Nursery | None = None
        """Where background fetches and writes run (set by the engine once it runs).

        Without it, every fetch and write completes before read() returns."""
        self.window_cap: Callable[[], int] = lambda: MAX_WINDOW
        """Upper bound on the readahead window (the engine keeps it under the cache size)."""
        self.after_fetch: Callable[[], object] = lambda: None
        """Called after fetched data reached the cache (the engine enforces the cache bound)."""
        self.filling: set[int] = set()
        """Inodes being filled before a write: eviction must leave their data alone."""
        self.disk = trio.CapacityLimiter(1)
        """One write at a time: parallel writes of fresh pages do not go faster."""
        self._inflight: dict[int, dict[tuple[int, int], trio.Event]] = {}
        self._queued_bytes = 0
        self._pace = WritePace()
        self._errors: dict[int, Exception] = {}
        self._saved: dict[int, float] = {}

    def forget(self, ino: int) -> None:
        """Drop per-inode state of a node that is gone for good."""
        if not self._inflight.get(ino):
            self._inflight.pop(ino, None)
        self.held.release(ino, lambda a, b: True)
        self._errors.pop(ino, None)
        self._saved.pop(ino, None)

    # what is there, and what is coming
    def present(self, node: Node) -> list[list[int]]:
        """Bytes of ``node`` in the data file or held in memory."""
        return self.held.have(node.ino, node.etag, node.ranges)

    def busy(self, node: Node, durable: bool = False) -> list[list[int]]:
        """Bytes present (in the file; or held, unless ``durable``) or in flight."""
        busy = node.ranges if durable else self.present(node)
        for s, e in self._inflight.get(node.ino, {}):
            busy = add_range(busy, s, e)
        return busy

    def claim(self, node: Node, start: int, end: int) -> Flight:
        """Enter a GET of [start, end) of ``node`` in flight; run it with :meth:`fetch`."""
        flight = Flight(start, end)
        self._inflight.setdefault(node.ino, {})[(start, end)] = flight.done
        return flight

    def flights(self, node: Node, start: int, end: int) -> list[trio.Event]:
        """The ``done`` events of the GETs in flight that overlap [start, end) of ``node``."""
        return [event for (s, e), event in list(self._inflight.get(node.ino, {}).items())
                if s < end and start < e]

    async def wait(self, node: Node, start: int, end: int) -> None:
        """Until every GET in flight that overlaps [start, end) of ``node`` has ended."""
        for event in self.flights(node, start, end):
            await event.wait()

    def failure(self, ino: int) -> Exception | None:
        """The last error of a GET of ``ino`` (forgotten once asked)."""
        return self._errors.pop(ino, None)

    def assemble(self, node: Node, start: int, end: int) -> bytes | memoryview | None:
        """[start, end) from held pieces and the data file, or None if a byte is missing.

        Held pieces come first: they are in memory, the file may need a copy.
        A reply within one held buffer is a view of it, not a copy.
        """
        held = self.held.of(node.ino, node.etag)
        parts: list[bytes | memoryview] = []
        pos = start
        while pos < end:
            piece = self.held.find(node.ino, pos) if held else None
            if piece is not None:
                a, b = piece
                parts.append(held[piece][pos - a:min(b, end) - a])
                pos = min(b, end)
                continue
            disk = covering(node.ranges, pos)
            if disk is None:
                return None
            stop = min(disk, end, self.held.next_start(node.ino, pos) or end)
            parts.append(self.data.read(node.ino, pos, stop - pos))
            pos = stop
        return parts[0] if len(parts) == 1 else b"".join(parts)

    # committing what arrived
    def complete(self, node: Node) -> None:
        """Mark ``node`` full if its data file has every byte; commit its ranges."""
        if not node.full and (node.ranges == [[0, node.size]] or node.size == 0):
            node.full = True
            # Duplicates of written pieces may still be queued: they must never land
            # on top of a local write that can now start without filling.
            self.data.invalidate(node.ino)
            self.held.release(node.ino, lambda a, b: True)
            self._saved[node.ino] = time.monotonic()
            self.tree.save(node)
        else:
            self.save(node)

    def save(self, node: Node) -> None:
        """Commit ``node`` (its fetched ranges) now, or soon: at most every SAVE_INTERVAL."""
        now = time.monotonic()
        if now - self._saved.get(node.ino, 0.0) >= SAVE_INTERVAL:
            self._saved[node.ino] = now
            self.tree.save(node)
        else:
            node.unsaved = True  # committed by the next save, or at close

    # one GET
    async def fetch(self, node: Node, key: str, flight: Flight, behind: bool) -> None:
        """Run the claimed GET ``flight`` of ``key``; never raises StoreError or OSError
        (see :meth:`failure`). ``behind``: hold the buffers and write them behind
        (needs a nursery); else each is in the data file before ``flight.done``."""
        start, end = flight.start, flight.end
        etag, generation = node.etag, self.data.generation(node.ino)
        try:
            chunks = await self.get(node, key, start, end, etag)
            if node.etag != etag or node.full or self.data.generation(node.ino) != generation:
                return  # replaced while we waited
            pos = start
            for chunk in chunks:  # each buffer is held and written on its own
                if behind and self.nursery is not None:
                    self.held.hold(node.ino, etag, pos, chunk)
                    self._queue(node, pos, chunk, etag, generation)
                else:  # small reads and fills: in the file before anyone is told
                    await self._write(node, pos, chunk, etag, generation)
                pos += len(chunk)
        except (StoreError, OSError) as exc:
            log.debug("fetch of inode %d [%d, %d) failed: %s", node.ino, start, end, exc)
            self._errors[node.ino] = exc
        finally:
            # Its table is still the inode's: forget() drops only an empty one.
            self._inflight.get(node.ino, {}).pop((start, end), None)
            flight.done.set()

    async def get(self, node: Node, key: str, start: int, end: int,
                  etag: str | None) -> list[memoryview]:
        """Range GET of version ``etag``, looking under the old key while a rename is
        not yet replayed. Nothing is cached.

        If the bucket's object was replaced, raises Changed and makes the next
        open ask the bucket (the kernel's copy is dropped there): a file is never
        assembled from pieces of two versions.
        """
        remote = self.journal.remote_key(key)
        try:
            return await self.store.get_chunks(remote, start, end, if_match=etag)
        except Changed:
            node.validated = 0.0
            log.warning("%r changed in the bucket while it was read; reads of this open "
                        "file fail with EIO, the next open sees the new version", key)
            raise
        except ObjectNotFound:
            if remote == key:
                raise
            # The rename was replayed while we asked: the bytes are at the new key now,
            # whose ETag the copy may have changed (refreshed once the replay is done).
            return await self.store.get_chunks(key, start, end)

    # writes into the data file
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
        in a worker thread for a while (:class:`cache.pace.WritePace`).
        """
        def wanted() -> bool:
            return node.etag == etag and not node.full

        fd = self.data.writer(node.ino)
        async with self.disk:
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
                self.held.release(node.ino, lambda a, b: a == start)
            if node.ranges == [[0, node.size]] and node.ino not in self.filling:
                self.complete(node)  # the last piece of a stream: the file is whole
            if node.ino not in self.filling:
                self.after_fetch()

    async def write_held(self, node: Node, start: int, end: int) -> None:
        """Write the held pieces over [start, end) now (a fill needs them in the file)."""
        for (a, b), chunk in list(self.held.of(node.ino, node.etag).items()):
            if a < end and start < b and missing(node.ranges, a, b):
                await self._write(node, a, chunk, node.etag, self.data.generation(node.ino))
