"""Upload while written: a file written from its start, in order, goes up in parts
as it grows, so that its export sends only the last part and the complete.

:class:`Streams` watches every write (:meth:`Streams.wrote`). A file whose bytes
have all come in order from offset 0 becomes a :class:`Stream` once it passes
``START`` bytes (bigger than ``MULTIPART_THRESHOLD``: a file that stays smaller
keeps its one conditional PUT): one multipart upload, in a worker thread, that
reads whole parts from the cache file as soon as they are written
(``Store.put_parts``). At most ``LIMIT`` streams run at once, each holding at most
``CONCURRENCY + 4`` parts of ``PART`` bytes in memory (``HOLD`` of them are
the last writes, kept so that a part need not be read back from the disk).

The export of the file (:meth:`Streams.finish`, called by the exporter with the
file's export lock held) uses the stream only if it holds exactly what the export
would send: the same key and expected ETag, every byte of the file, and no change
of the bytes since the last one it took (``Node.data_change``). Then the stream
reads the rest, checks the precondition with a HEAD and completes; a refused
precondition is a Conflict as for a PUT. Otherwise the stream is aborted and the
export PUTs the cache file as before.

A stream is aborted (its parts deleted by an AbortMultipartUpload) when the file
is written out of order, truncated, unlinked or renamed, when its export cannot
use it, and when the engine stops. The node stays dirty the whole time: nothing of
a stream is persisted, so after a crash the next mount exports the file from the
cache as any other. The upload a crash interrupts stays in the bucket, invisible,
until the bucket's lifecycle rule for incomplete multipart uploads removes it
(docs/SEMANTICS.md, "Crash safety").
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

import trio

from openfiles_engine.bucket.asyncstore import AsyncStore
from openfiles_engine.bucket.store import MULTIPART_THRESHOLD, Conflict
from openfiles_engine.cache.datafile import start_writeback
from openfiles_engine.state.inode import Node

log = logging.getLogger(__name__)

PART = 16 * 2**20
"""Bytes per part of an upload while written."""
CONCURRENCY = 4
"""Parts of one stream in flight at once."""
LIMIT = 2
"""Streams at once per engine: with ``CONCURRENCY`` they bound the memory (about
``LIMIT * (CONCURRENCY + 4) * PART`` bytes, 256 MiB) and the worker threads."""
START = MULTIPART_THRESHOLD + PART
"""Bytes written in order from offset 0 before a file is uploaded while written."""
HOLD = 2 * PART
"""Bytes of writes a stream keeps in memory for its next parts (:meth:`Stream.hold`):
a part is then sent without reading the cache file back."""
MAX_PARTS = 9000
"""A stream that would need more parts (S3 allows 10,000) is aborted: the export PUTs."""


class Stopped(Exception):
    """Raised inside a stream's part iterator: the upload is aborted."""


@dataclass
class Stream:
    """One multipart upload of one file while it is written (see the module doc)."""

    ino: int
    key: str
    etag: str | None
    """The ETag the export would send as If-Match (None: If-None-Match)."""
    path: str
    end: int
    """Bytes [0, end) of the file are what the stream may send."""
    change: int
    """``Node.data_change`` after the last write the stream took."""
    final: int | None = None
    """Set by :meth:`Streams.finish`: the size to send; then the upload completes."""
    stopped: str | None = None
    """Why the upload is aborted (None: it is not)."""
    result: str | None = None
    error: Exception | None = None
    done: trio.Event = field(default_factory=trio.Event)
    cond: threading.Condition = field(default_factory=threading.Condition)
    held: deque[tuple[int, bytes]] = field(default_factory=deque)
    """(offset, bytes) of the writes kept for the upload, in order (see :meth:`hold`)."""
    held_bytes: int = 0

    def feed(self, end: int, change: int, off: int, data: bytes) -> None:
        """A write of ``data`` at ``off`` in order: the stream may send up to ``end``."""
        with self.cond:
            self.end, self.change = end, change
            self.hold(off, data)
            self.cond.notify()

    def stop(self, why: str, *, even_final: bool = False) -> None:
        """Abort the upload (not once it is completing, unless ``even_final``)."""
        with self.cond:
            if self.stopped is None and (self.final is None or even_final):
                self.stopped = why
                self.cond.notify()

    def parts(self) -> Iterator[bytes]:
        """Whole parts of the file as they are written, then the rest once final.

        Runs in the upload's worker thread; blocks while a part is not yet written.
        Raises Stopped once the stream is stopped: obstore then aborts the upload.
        Each time it is asked for a part it also starts the disk write of every byte
        written since the last time (:func:`start_writeback`): the writes went to the
        page cache, and a file being uploaded is big, so its dirty pages would
        otherwise wait for the kernel's own writeback, and an fsync (or the next
        writer) would find a whole file of them to write at once.
        """
        fd = os.open(self.path, os.O_RDONLY)
        try:
            sent = asked = 0
            while True:
                with self.cond:
                    while (self.stopped is None and self.final is None
                           and self.end - sent < PART):
                        self.cond.wait()
                    if self.stopped is not None:
                        raise Stopped(self.stopped)
                    limit = self.end if self.final is None else self.final
                if limit > asked:
                    start_writeback(fd, asked, limit - asked)
                    asked = limit
                if sent >= limit:
                    return
                size = min(PART, limit - sent)
                data = self._take(fd, sent, size)
                sent += size
                yield data
        finally:
            os.close(fd)

    def hold(self, off: int, data: bytes) -> None:
        """Keep the bytes of a write at ``off`` for the upload, while under ``HOLD``.

        Called with :attr:`cond` held, by :meth:`feed`. A write not kept is read back
        from the cache file when its part is sent.
        """
        if self.held_bytes + len(data) <= HOLD:
            self.held.append((off, data))
            self.held_bytes += len(data)

    def _take(self, fd: int, start: int, size: int) -> bytes:
        """Bytes [start, start+size): those still held from the writes, the rest read
        from the cache file. Forgets what is held before ``start + size``."""
        end = start + size
        with self.cond:
            held = list(self.held)
        pieces: list[bytes | memoryview] = []
        pos = start
        for off, data in held:
            if pos >= end or off > pos:
                break  # done, or a write that was not held: the rest from the file
            if off + len(data) > pos:
                piece = memoryview(data)[pos - off:end - off]
                pieces.append(piece)
                pos += len(piece)
        if pos < end:
            rest = os.pread(fd, end - pos, pos)
            if len(rest) != end - pos:
                raise Stopped("the cache file is shorter than its writes")
            pieces.append(rest)
        with self.cond:
            while self.held and self.held[0][0] + len(self.held[0][1]) <= end:
                self.held_bytes -= len(self.held.popleft()[1])
        return pieces[0] if len(pieces) == 1 and isinstance(pieces[0], bytes) \
            else b"".join(pieces)

class Streams:
    """The streams of one engine; their tasks run on the export loop's nursery."""

    def __init__(self, store: AsyncStore, path: Callable[[int], str],
                 key: Callable[[Node], str]) -> None:
        self.store = store
        self.path = path
        """The cache file of an inode."""
        self.key = key
        """The key an export of a node would write."""
        self.nursery: trio.Nursery | None = None
        """Set while the export loop runs; no stream starts without it."""
        self.live: dict[int, Stream] = {}
        self._tails: dict[int, tuple[int, int]] = {}
        """ino -> (bytes written in order from 0, ``data_change`` after the last)."""
        self._limiter = trio.CapacityLimiter(LIMIT)

    def wrote(self, node: Node, off: int, data: bytes, before: int) -> None:
        """A write of ``data`` at ``off`` made ``node`` ``node.size`` bytes long.

        ``before``: ``node.data_change`` before the write. A change of the bytes
        since the last write seen here (a truncate, say) ends a run in order.
        """
        size = len(data)
        stream = self.live.get(node.ino)
        if stream is not None:
            if (off, before) == (stream.end, stream.change) and off + size <= MAX_PARTS * PART:
                stream.feed(off + size, node.data_change, off, data)
            else:
                self.stop(node.ino, "written out of order")
            return
        if off == 0 and node.size == size:
            end = size
        elif self._tails.get(node.ino) == (off, before):
            end = off + size
        else:
            self._tails.pop(node.ino, None)
            return
        if end < START or self.nursery is None or self.store.sync.kind != "s3" \
                or len(self.live) >= LIMIT or node.lost or not node.parent:
            self._tails[node.ino] = (end, node.data_change)
            return
        self._tails.pop(node.ino, None)
        stream = Stream(node.ino, self.key(node), node.etag, self.path(node.ino), end,
                        node.data_change)
        self.live[node.ino] = stream
        self.nursery.start_soon(self._run, stream)

    async def _run(self, stream: Stream) -> None:
        upload = partial(self.store.sync.put_parts, stream.key, stream.parts(),
                         if_match=stream.etag, create=stream.etag is None, part_size=PART,
                         concurrency=CONCURRENCY)
        try:
            stream.result = await trio.to_thread.run_sync(upload, limiter=self._limiter,
                                                          abandon_on_cancel=True)
        except Stopped as exc:
            stream.error = exc
        except Exception as exc:  # never the engine's end: the export PUTs instead
            stream.error = exc
            log.info("upload of %r while written failed: %s", stream.key, exc)
        finally:
            # Cancelled (the engine stops): the abandoned thread aborts the upload.
            stream.stop("the engine stops", even_final=True)
            stream.done.set()
            if self.live.get(stream.ino) is stream:
                del self.live[stream.ino]

    def stop(self, ino: int, why: str) -> None:
        """Abort the stream of ``ino`` (if any) and forget its run of writes."""
        self._tails.pop(ino, None)
        stream = self.live.pop(ino, None)
        if stream is not None:
            log.debug("upload of %r while written aborted: %s", stream.key, why)
            stream.stop(why)

    def closed(self, ino: int) -> None:
        """No handle writes ``ino`` any more: a run of writes not yet a stream ends."""
        self._tails.pop(ino, None)

    def stop_all(self) -> None:
        """Abort every stream (the export loop ends)."""
        for ino in list(self.live):
            self.stop(ino, "the engine stops")

    def prune(self, keep: Callable[[int], bool]) -> None:
        """Abort the streams of inodes for which ``keep`` is false (gone, in lost+found)."""
        for ino in [ino for ino in self.live if not keep(ino)]:
            self.stop(ino, "the file is no longer exported")

    async def finish(self, node: Node, key: str) -> tuple[bool, str | None]:
        """Complete ``node``'s stream if it holds exactly what an export of ``key`` sends.

        Returns (True, the new ETag) when it did, (False, None) when there is no
        usable stream (the caller PUTs the file; an unusable stream is aborted, and
        so is one that failed). Raises Conflict when the precondition failed.
        """
        stream = self.live.pop(node.ino, None)
        if stream is None:
            return False, None
        if (stream.key, stream.etag, stream.end, stream.change) != (
                key, node.etag, node.size, node.data_change):
            stream.stop("the file changed since it was uploaded")
            return False, None
        with stream.cond:
            stream.final = stream.end
            stream.cond.notify()
        await stream.done.wait()
        if isinstance(stream.error, Conflict):
            raise stream.error
        return stream.error is None, stream.result
