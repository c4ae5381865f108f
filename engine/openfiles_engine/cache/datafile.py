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
import os
import threading
from collections import OrderedDict
from collections.abc import Callable

WRITE_CHUNK = 2**20
"""Bytes of fetched data written per hold of the lock below."""
WRITE_SIZE = 32 * 2**10
"""Bytes per pwrite of fetched data.

The kernel sizes the page-cache folios of a buffered write by its length:
1 MiB writes take large folios, small writes single pages. On the dev VM,
whose freed memory goes back to the host, large folios come from memory
the host must fault in again: writing 1 GiB in 1 MiB pwrites cost 2.7-3.0 s
of kernel time right after another process freed its cache, in 32 KiB
pwrites 0.3 s (16 KiB: 0.4-0.6 s); with memory in use, both about 0.3-0.5 s."""
MAX_OPEN_FDS = 2048
"""Open data files kept (opening one costs more than a small read)."""
_PUNCH_HOLE = 0x02 | 0x01  # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


class DataFiles:
    """Sparse data files under ``<cache>/data``, with a bounded set of open fds."""

    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root, exist_ok=True)
        self._fds: OrderedDict[int, int] = OrderedDict()
        self._generations: dict[int, int] = {}
        self.lock = threading.Lock()
        """Held by every pwrite of fetched data (worker threads) and every generation bump."""

    def path(self, ino: int) -> str:
        return os.path.join(self.root, str(ino))

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
        return os.pwrite(self.fd(ino), data, offset)

    def writer(self, ino: int) -> int:
        """A private fd for :meth:`write_fetched` in a worker thread (which closes it)."""
        return os.dup(self.fd(ino))

    def write_fetched(self, ino: int, fd: int, offset: int, data: memoryview, generation: int,
                      still_wanted: Callable[[], bool]) -> bool:
        """pwrite fetched bytes unless the file changed generation; closes ``fd``.

        Runs in a worker thread. Each chunk is written under :attr:`lock` after
        checking the generation and ``still_wanted()``, so once :meth:`invalidate`
        (or punch, drop) has returned, no fetched byte of an older generation can
        land on top of what the caller writes next. Returns False if stopped.
        """
        try:
            for pos in range(0, len(data), WRITE_CHUNK):
                with self.lock:
                    if self.generation(ino) != generation or not still_wanted():
                        return False
                    for at in range(pos, min(pos + WRITE_CHUNK, len(data)), WRITE_SIZE):
                        piece = data[at:min(at + WRITE_SIZE, pos + WRITE_CHUNK)]
                        if os.pwrite(fd, piece, offset + at) != len(piece):
                            raise OSError(errno.ENOSPC, "short write to the cache")
            return True
        finally:
            os.close(fd)

    def generation(self, ino: int) -> int:
        return self._generations.get(ino, 0)

    def invalidate(self, ino: int) -> None:
        """Stop fetched bytes still on their way from being written (the file changes)."""
        with self.lock:
            self._generations[ino] = self.generation(ino) + 1

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

    def fsync(self, ino: int) -> None:
        os.fsync(self.fd(ino))

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
