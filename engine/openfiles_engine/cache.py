"""Node-local data cache: one sparse file per inode, written with pwrite.

The data file of a clean file holds some byte ranges of the remote object
(``Node.ranges``); the data file of a dirty or new file holds every byte.
Ranges are recorded only after the bytes are written, so after a crash the
record never claims bytes that are not there.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable

from .meta import Node

WRITE_CHUNK = 2**20
"""Bytes per pwrite of fetched data: the lock below is never held longer than one."""
MAX_OPEN_FDS = 2048
"""Open data files kept (opening one costs more than a small read)."""
_PUNCH_HOLE = 0x02 | 0x01  # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def add_range(ranges: list[list[int]], start: int, end: int) -> list[list[int]]:
    """Merge [start, end) into sorted, disjoint ``ranges``; returns the new list."""
    if end <= start:
        return ranges
    out: list[list[int]] = []
    for s, e in sorted([*ranges, [start, end]]):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out


def missing(ranges: list[list[int]], start: int, end: int) -> list[tuple[int, int]]:
    """The sub-ranges of [start, end) that ``ranges`` does not cover."""
    gaps: list[tuple[int, int]] = []
    pos = start
    for s, e in ranges:
        if e <= pos:
            continue
        if s >= end:
            break
        if s > pos:
            gaps.append((pos, min(s, end)))
        pos = max(pos, e)
        if pos >= end:
            break
    if pos < end:
        gaps.append((pos, end))
    return gaps


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
                    os.pwrite(fd, data[pos:pos + WRITE_CHUNK], offset + pos)
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


def evictable(nodes: Iterable[Node], cache_size: int, ttl: float, now: float) -> list[Node]:
    """Clean nodes whose data should go: expired first, then LRU until under ``cache_size``.

    Dirty data and files never exported are never chosen. Open files are: the
    caller trims them behind the reader instead of dropping them whole.
    """
    clean = [
        n for n in nodes
        if n.kind == "file" and not n.dirty and n.etag is not None and not n.lost
        and n.cached_bytes() > 0
    ]
    clean.sort(key=lambda n: n.last_access)
    total = sum(n.cached_bytes() for n in clean)
    out: list[Node] = []
    for node in clean:
        if total > cache_size or now - node.last_access > ttl:
            out.append(node)
            total -= node.cached_bytes()
    return out
