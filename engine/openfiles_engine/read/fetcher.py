"""Pieces of remote objects on their way into the cache: what both kinds of fetch
share (download.py's readahead extends :class:`Fetcher`; wholefetch.py's
whole-file fetch uses it), through its public methods only.

:class:`Fetcher` owns, per inode, the table of range GETs in flight. A GET is
first *claimed* (:meth:`Fetcher.claim`: its bytes count as busy at once, so no
one else asks for them), then run (:meth:`Fetcher.fetch`, in any nursery);
whoever needs those bytes waits for its :class:`Flight` instead of issuing a
GET of its own (:meth:`Fetcher.wait`). A fetched piece arrives in one buffer,
handed out as views of 1 MiB (store.CHUNK), and the GET's worker thread writes
each into the data file (``cache.datafile.FetchedWriter``, one pwrite per MiB),
so the event loop never copies fetched bytes into the cache. For a sequential
stream the buffers are also *held* in memory (:class:`piece.HeldPieces`,
bounded by piece.HELD_MAX) and read() replies are views of them, which spares
the pread. :meth:`Fetcher.assemble` answers from held buffers and the data file.

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
from openfiles_engine.cache.datafile import DataFiles, FetchedWriter
from openfiles_engine.read.piece import HeldPieces
from openfiles_engine.read.readahead import MAX_WINDOW
from openfiles_engine.state.inode import Node
from openfiles_engine.state.journal import Journal
from openfiles_engine.state.tree import Tree

log = logging.getLogger(__name__)

SAVE_INTERVAL = 1.0
"""Seconds: fetched ranges of a file are committed to SQLite at most this often.

Until then ``Node.ranges`` on disk names fewer bytes than the file holds,
which is safe (they are fetched again after a crash). A commit per random
read cost more than the read itself."""

RECENT = 1.0
"""Seconds: a file whose GET started this recently counts as read now. While two
files or more are, the bytes held for sequential readers go to the cache file with
``O_DIRECT`` (``DataFiles.writer``; docs/ENGINE.md, "Page-cache copies")."""


@dataclass
class Stats:
    hit_bytes: int = 0
    miss_bytes: int = 0
    fetched_bytes: int = 0
    """Bytes written into the cache from the bucket, prefetches included."""
    dropped_bytes: int = 0
    """Fetched bytes that could not be written to the cache (a full disk)."""

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
        self._inflight: dict[int, dict[tuple[int, int], trio.Event]] = {}
        self._recent: dict[int, float] = {}
        """ino -> when its last GET started (for the choice of direct writes)."""
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
            # Held pieces stay for the readers ahead of whom they were fetched: a
            # direct-written piece read back from the file would be a disk read on
            # the loop. A local change releases them first (Downloader.changed).
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
        (see :meth:`failure`). Its worker thread writes each buffer into the data
        file once the range arrived; ``behind``: the buffers are also held for readers
        (needs a nursery). The bytes in the file are named in ``Node.ranges``
        before ``flight.done``."""
        start, end = flight.start, flight.end
        etag, generation = node.etag, self.data.generation(node.ino)
        writer = self.data.writer(node.ino, generation,
                                  lambda: node.etag == etag and not node.full,
                                  direct=behind and self._files_fetched(node.ino) > 1)
        try:
            try:
                chunks = await self.get(node, key, start, end, etag, writer)
            except (StoreError, OSError):
                writer.close(thread_done=True)
                raise
            writer.close(thread_done=True)  # else (cancelled) the finally below waits
            if node.etag != etag or node.full:
                return  # replaced while we waited
            if behind and self.nursery is not None and node.opens > 0:
                pos = start
                for chunk in chunks:
                    self.held.hold(node.ino, etag, pos, chunk)
                    pos += len(chunk)
            self._landed(node, writer, generation, sum(map(len, chunks)))
        except (StoreError, OSError) as exc:
            log.debug("fetch of inode %d [%d, %d) failed: %s", node.ino, start, end, exc)
            self._errors[node.ino] = exc
        finally:
            writer.close()
            # Its table is still the inode's: forget() drops only an empty one.
            self._inflight.get(node.ino, {}).pop((start, end), None)
            flight.done.set()

    def _files_fetched(self, ino: int) -> int:
        """How many files had a GET start in the last ``RECENT`` seconds (``ino``'s now)."""
        now = time.monotonic()
        self._recent[ino] = now
        for old in [i for i, t in self._recent.items() if now - t > RECENT]:
            del self._recent[old]
        return len(self._recent)

    async def get(self, node: Node, key: str, start: int, end: int, etag: str | None,
                  sink: FetchedWriter | None = None) -> list[memoryview]:
        """Range GET of version ``etag``, looking under the old key while a rename is
        not yet replayed; ``sink`` gets each buffer in the worker thread.

        If the bucket's object was replaced, raises Changed and makes the next
        open ask the bucket (the kernel's copy is dropped there): a file is never
        assembled from pieces of two versions.
        """
        remote = self.journal.remote_key(key)
        try:
            return await self.store.get_chunks(remote, start, end, if_match=etag, sink=sink)
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
            return await self.store.get_chunks(key, start, end, sink=sink)

    def _landed(self, node: Node, writer: FetchedWriter, generation: int, size: int) -> None:
        """Name in ``Node.ranges`` what ``writer`` put in the file (if the file is still
        of ``generation``); count it; the file may now be whole."""
        if writer.error is not None:
            log.debug("cache write of inode %d failed: %s", node.ino, writer.error)
        written = sum(b - a for a, b in writer.landed)
        self.stats.dropped_bytes += size - written
        if not written or self.data.generation(node.ino) != generation:
            return
        for a, b in writer.landed:
            node.ranges = add_range(node.ranges, a, b)
        self.stats.fetched_bytes += written
        if node.ranges == [[0, node.size]] and node.ino not in self.filling:
            self.complete(node)  # the last piece of a stream: the file is whole
        if node.ino not in self.filling:
            self.after_fetch()

    async def write_held(self, node: Node, start: int, end: int) -> None:
        """Write the held pieces over [start, end) that the file lacks now (a fill
        needs them in the file; the file changed generation since they came)."""
        etag = node.etag
        for (a, b), chunk in list(self.held.of(node.ino, etag).items()):
            if a < end and start < b and missing(node.ranges, a, b):
                generation = self.data.generation(node.ino)
                writer = self.data.writer(node.ino, generation,
                                          lambda: node.etag == etag and not node.full)
                try:
                    await trio.to_thread.run_sync(writer, a, chunk)
                finally:
                    writer.close()
                if writer.error is not None:
                    raise writer.error
                self._landed(node, writer, generation, len(chunk))
