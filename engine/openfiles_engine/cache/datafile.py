"""Data files: one sparse file per inode under ``<cache>/data``, written with pwrite.

The data file of a clean file holds some byte ranges of the remote object
(``Node.ranges``); the data file of a dirty or new file holds every byte.
Ranges are recorded only after the bytes are written, so after a crash the
record never claims bytes that are not there.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import mmap
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import partial

WRITE_CHUNK = 2**20
"""Bytes of fetched data per pwrite, each checked once under :attr:`DataFiles.lock`.

One pwrite per MiB takes the GIL back once per MiB in the GET's worker thread
(32 KiB pwrites needed it 32 times, and starved behind the event loop). On
the firecracker VM of session 5, 1 GiB into the page cache after a cache drop:
1 MiB pwrites 0.27-0.50 s (0.17-0.20 s of kernel time), 32 KiB pwrites
0.43-0.51 s (0.31-0.33 s); the large-folio slowness the 2-core dev VM of
session 3 showed for 1 MiB writes did not appear."""
DIRECT_MIN = 64 * 2**10
"""Fetched buffers of at least this many bytes of whole blocks skip the page cache
(``O_DIRECT``; see :func:`_write_split`)."""
ALIGN = 4096
"""Offset, length and memory alignment of a direct write (any block size up to a page)."""
MAX_OPEN_FDS = 2048
"""Open data files kept (opening one costs more than a small read)."""
_PUNCH_HOLE = 0x02 | 0x01  # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
_SYNC_FILE_RANGE_WRITE = 2
log = logging.getLogger(__name__)
_local = threading.local()


def _pwrite_direct(fd: int, data: bytes | memoryview, offset: int) -> int:
    """pwrite to an ``O_DIRECT`` fd through this thread's page-aligned buffer (reused,
    so that its memory stays the process's own)."""
    size = len(data)
    buf: mmap.mmap | None = getattr(_local, "buf", None)
    if buf is None or len(buf) < size:
        if buf is not None:
            buf.close()
        buf = _local.buf = mmap.mmap(-1, max(size, 2**20))
    buf[:size] = data
    with memoryview(buf) as view:
        return os.pwrite(fd, view[:size], offset)


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing the dirty pages of [offset, offset+length) to
    the disk, without waiting for them (``sync_file_range(SYNC_FILE_RANGE_WRITE)``;
    it may still wait for room in the disk's queue). Not durability: a hint, whose
    failure is ignored."""
    _libc.sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def open_direct(path: str, flags: int) -> int | None:
    """A new ``O_DIRECT`` fd on ``path``; None when its file system refuses
    ``O_DIRECT`` (EINVAL: ramfs, some overlays)."""
    try:
        return os.open(path, flags | os.O_DIRECT)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        return None


def _write_split(data: bytes | memoryview, offset: int,
                 plain: Callable[[memoryview, int], int],
                 direct: Callable[[memoryview, int], int | None]) -> int:
    """Write ``data`` at ``offset``: its aligned middle (at least ``DIRECT_MIN`` bytes
    of whole blocks) through ``direct``, the unaligned ends, and everything when
    ``direct`` gives None (refused), through ``plain``. Returns the bytes written
    from ``offset`` on: fewer when a piece after the first fails (its error is then
    not raised, as a single pwrite would have written less; the caller counts only
    what landed), and the first piece's error is raised."""
    view = memoryview(data)
    end = offset + len(view)
    first, last = -(-offset // ALIGN) * ALIGN, end // ALIGN * ALIGN
    if last - first < DIRECT_MIN:
        return plain(view, offset)
    done = plain(view[:first - offset], offset) if first > offset else 0
    if done < first - offset:
        return done
    try:
        middle = direct(view[first - offset:last - offset], first)
        if middle is None:
            return done + plain(view[done:], offset + done)
        done += middle
        if middle < last - first or last == end:
            return done
        return done + plain(view[last - offset:], last)
    except OSError:
        if not done:
            raise
        return done


class DataFiles:
    """Sparse data files under ``<cache>/data``, with a bounded set of open fds."""

    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root, exist_ok=True)
        self._fds: OrderedDict[int, int] = OrderedDict()
        self.direct = True
        """Fetched writes may use ``O_DIRECT`` (:meth:`writer`); turned off for good
        when the cache's file system refuses it (ramfs, some overlays)."""
        self._generations: dict[int, int] = {}
        self.lock = threading.Lock()
        """Held while a fetched write is checked and counted (worker threads) and by
        every generation bump; not during the pwrite itself."""
        self._idle = threading.Condition(self.lock)
        self._writing: dict[int, int] = {}
        """Fetched writes in progress, by inode; a generation bump waits for its file's."""

    def path(self, ino: int) -> str:
        return os.path.join(self.root, str(ino))

    def inodes(self) -> list[int]:
        """The inode numbers that have a data file."""
        return [int(name) for name in os.listdir(self.root) if name.isdigit()]

    def fd(self, ino: int) -> int:
        fd = self._fds.get(ino)
        if fd is not None:
            self._fds.move_to_end(ino)
            return fd
        fd = os.open(self.path(ino), os.O_RDWR | os.O_CREAT, 0o600)
        self._fds[ino] = fd
        while len(self._fds) > MAX_OPEN_FDS:
            _, old = self._fds.popitem(last=False)
            os.close(old)
        return fd

    def close(self, ino: int) -> None:
        fd = self._fds.pop(ino, None)
        if fd is not None:
            os.close(fd)

    def close_all(self) -> None:
        for ino in list(self._fds):
            self.close(ino)

    def read(self, ino: int, offset: int, size: int) -> bytes:
        return os.pread(self.fd(ino), size, offset)

    def write(self, ino: int, offset: int, data: bytes | memoryview) -> int:
        """pwrite ``data`` at ``offset`` (the FUSE write path, on the event loop),
        through the page cache: the write returns once the kernel holds the bytes,
        which a ``kill -9`` of the engine cannot take away, and the disk writes them
        behind it (an upload while written asks for that early: export/stream.py).
        Writing them ``O_DIRECT`` instead put the disk in every write's path, where
        it waited behind MinIO's own writes (docs/ENGINE.md, "Writes through the
        page cache")."""
        return os.pwrite(self.fd(ino), data, offset)

    def fsync_fd(self, ino: int) -> int:
        """A new fd on the data file of ``ino``, for an fsync in a worker thread (the
        caller closes it): the shared fd may be closed meanwhile (``MAX_OPEN_FDS``)."""
        return os.dup(self.fd(ino))

    def _open_direct(self, ino: int) -> int | None:
        """A new ``O_DIRECT`` fd on the data file of ``ino``; None when refused (then
        for good: no second failed open per GET)."""
        fd = open_direct(self.path(ino), os.O_WRONLY)
        if fd is None:
            log.info("the cache directory refuses O_DIRECT: plain fetched writes from now on")
            self.direct = False
        return fd

    def writer(self, ino: int, generation: int, still_wanted: Callable[[], bool],
               direct: bool = False) -> FetchedWriter:
        """A sink for one GET's buffers into the data file of ``ino``, for its worker
        thread; close it on the event loop once the GET has ended. ``direct``: its
        aligned MiB skip the page cache (for bytes a reader takes from memory, so
        that no read needs their pages soon)."""
        fd = os.dup(self.fd(ino))
        direct_fd = self._open_direct(ino) if direct and self.direct else None
        return FetchedWriter(self, ino, fd, generation, still_wanted, direct_fd)

    def generation(self, ino: int) -> int:
        return self._generations.get(ino, 0)

    def invalidate(self, ino: int) -> None:
        """Stop fetched bytes still on their way from being written (the file changes):
        no fetched write starts after this, and it returns once the file's writes in
        progress have ended (each at most one WRITE_CHUNK)."""
        with self._idle:
            self._generations[ino] = self.generation(ino) + 1
            while self._writing.get(ino):
                self._idle.wait()

    def begin_fetched(self, writer: FetchedWriter) -> bool:
        """Count a write of ``writer`` as in progress, if its bytes may still land:
        the writer is open, its file's generation has not moved and ``still_wanted``."""
        with self.lock:
            if not writer.may_write():
                return False
            self._writing[writer.ino] = self._writing.get(writer.ino, 0) + 1
            writer.busy = True
            return True

    def end_fetched(self, writer: FetchedWriter) -> None:
        """The write :meth:`begin_fetched` counted has ended; a writer closed meanwhile
        closes its fds now."""
        with self._idle:
            left = self._writing[writer.ino] - 1
            if left:
                self._writing[writer.ino] = left
            else:
                del self._writing[writer.ino]
            writer.busy = False
            self._idle.notify_all()  # first: a bump waiting must wake even if a close fails
            if writer.closed:
                writer.close_fds()

    def truncate(self, ino: int, size: int) -> None:
        os.ftruncate(self.fd(ino), size)

    def settle(self, ino: int, size: int) -> None:
        """Make the data file exactly ``size`` bytes long (none if there is none yet).

        After a crash, for a dirty file: writes reach the data file before their
        new size is committed (at close or fsync), so a crash can leave bytes past
        the committed size that no close acknowledged. They go, so that the export
        sends what the mount shows. Before the first write to a clean file: past
        its size may lie bytes of an older, longer version (see ``Downloader.fill``).
        """
        try:
            if os.stat(self.path(ino)).st_size != size:
                self.truncate(ino, size)
        except FileNotFoundError:
            pass  # never written: the export makes it empty

    def punch(self, ino: int, offset: int, length: int) -> None:
        """Free the disk blocks of [offset, offset+length); the size stays."""
        self.invalidate(ino)
        if _libc.fallocate(self.fd(ino), _PUNCH_HOLE, offset, length) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    def drop(self, ino: int) -> None:
        """Forget every cached byte (the file is unlinked)."""
        self.invalidate(ino)
        self.close(ino)
        try:
            os.unlink(self.path(ino))
        except FileNotFoundError:
            pass

    def disk_bytes(self, ino: int) -> int:
        try:
            return os.stat(self.path(ino)).st_blocks * 512
        except FileNotFoundError:
            return 0


class FetchedWriter:
    """Writes the buffers of one range GET into a data file, from the GET's worker
    thread once the range has arrived (``Store.get_chunks``'s ``sink``); the event
    loop never copies them.

    Each WRITE_CHUNK is written in one pwrite, after checking the file's generation
    and ``still_wanted()`` under :attr:`DataFiles.lock` and counting the write as in
    progress: once :meth:`DataFiles.invalidate` (or punch, drop) has returned, no
    fetched byte of an older generation can land on top of what the caller writes
    next. The pwrite itself runs outside the lock, so the GETs of several files (and
    of one file) write at once: a direct write waits for the disk. A write
    that fails (a full disk: a short write is ENOSPC) ends the writing; the error
    is kept in :attr:`error`, never raised into the GET. :attr:`landed` names the
    bytes that reached the file, for ``Node.ranges``.
    """

    def __init__(self, files: DataFiles, ino: int, fd: int, generation: int,
                 still_wanted: Callable[[], bool], direct_fd: int | None = None) -> None:
        self._files = files
        self.ino = ino
        self._fd = fd
        self._direct_fd = direct_fd
        """Aligned MiB go through it (None: every write is a plain one)."""
        self._generation = generation
        self._still_wanted = still_wanted
        self.closed = False
        self.busy = False
        """A pwrite is in progress (set and cleared under the lock): closing waits."""
        self.landed: list[tuple[int, int]] = []
        """(start, end) of each buffer written whole, in order."""
        self.error: OSError | None = None
        self.stopped = False
        """The file changed (or the bytes are no longer wanted): nothing more is written."""

    def __call__(self, offset: int, data: memoryview) -> None:
        if self.error is not None or self.stopped:
            return
        files = self._files
        try:
            for pos in range(0, len(data), WRITE_CHUNK):
                piece = data[pos:pos + WRITE_CHUNK]  # before the count: nothing between
                if not files.begin_fetched(self):     # it and the try may raise
                    self.stopped = True
                    return
                try:
                    written = self._write(piece, offset + pos)
                finally:
                    files.end_fetched(self)
                if written != len(piece):
                    raise OSError(errno.ENOSPC, "short write to the cache")
        except OSError as exc:
            self.error = exc
            return
        self.landed.append((offset, offset + len(data)))

    def _write(self, piece: memoryview, offset: int) -> int:
        """A buffer's aligned middle goes direct (see :func:`_write_split`): a GET's
        buffers are whole MiB from its start, and the ranges the read path asks for
        start on a block, but a file's last buffer or a read's own pages may not."""
        if self._direct_fd is None:
            return os.pwrite(self._fd, piece, offset)
        return _write_split(piece, offset, partial(os.pwrite, self._fd), self._direct)

    def _direct(self, piece: memoryview, offset: int) -> int | None:
        assert self._direct_fd is not None
        try:
            return _pwrite_direct(self._direct_fd, piece, offset)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            os.close(self._direct_fd)  # refused: plain writes from now on
            self._direct_fd = None
            return None

    def may_write(self) -> bool:
        """Open, the file's generation unchanged, the bytes still wanted (under the lock)."""
        return (not self.closed and self._files.generation(self.ino) == self._generation
                and self._still_wanted())

    def close_fds(self) -> None:
        os.close(self._fd)
        if self._direct_fd is not None:
            os.close(self._direct_fd)

    def close(self, thread_done: bool = False) -> None:
        """No write after this returns; idempotent. ``thread_done``: the GET's thread
        has ended (it returned or raised), so the lock is not needed; else a thread
        still running the GET (cancelled, abandoned) stops at its next buffer."""
        if self.closed:
            return
        if thread_done:
            self.closed = True
            self.close_fds()
            return
        with self._files.lock:
            if not self.closed:
                self.closed = True
                if not self.busy:  # else the write in progress closes them as it ends
                    self.close_fds()
