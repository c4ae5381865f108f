"""Node-local data cache: one sparse file per inode, written with pwrite.

The data file of a clean file holds some byte ranges of the remote object
(``Node.ranges``); the data file of a dirty or new file holds every byte.
Ranges are recorded only after the bytes are written, so after a crash the
record never claims bytes that are not there.
"""

from __future__ import annotations

import bisect
import ctypes
import ctypes.util
import errno
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from openfiles_engine.state.db import Node

log = logging.getLogger(__name__)

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
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
MALLOC_KEEP = 64 * 2**20
"""Bytes of freed memory glibc may keep per arena instead of returning it to the kernel."""


def keep_freed_memory() -> None:
    """Make glibc reuse freed GET buffers rather than give them back to the kernel.

    Every range GET returns a fresh buffer (8 MiB for a piece). By default
    glibc maps such a buffer on its own and unmaps it when freed, and trims
    the heap above 16 MiB of free space. On a VM that hands freed memory
    back to the host (free page reporting, as on the 2-core dev VM), memory
    touched for the first time costs a host fault per page, and the engine
    kept touching new memory for each piece. With these settings buffers up
    to 32 MiB come from the heap, at most MALLOC_KEEP of free heap is kept
    per arena, and two arenas serve every thread (obstore's included, so it
    must run before any thread starts). Measured, 3 runs each, a cold 1 GiB
    read: 1.46-1.67 s of kernel time instead of 1.82-1.89 s. Process-wide:
    ``openfiles mount`` calls it once. Without glibc's ``mallopt``: nothing.
    """
    mallopt = getattr(_libc, "mallopt", None)
    if mallopt is None:
        return
    mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)
    mallopt(_M_TRIM_THRESHOLD, MALLOC_KEEP)
    mallopt(_M_ARENA_MAX, 2)


class WritePace:
    """Whether fetched data is written on the event loop (the usual case) or in a thread.

    A write into the page cache takes about a millisecond per MiB. Done in a
    worker thread, each of its WRITE_SIZE pwrites must take the GIL back from
    the busy event loop: measured on the dev VM, a cold 1 GiB read then left
    130-490 MiB unwritten for want of disk; written on the loop, it left none,
    with the writes taking about 40% of the loop's time (docs/ENGINE.md,
    "Cold sequential read"). But when the kernel throttles writers (dirty
    pages pile up on a slow disk) writes sleep, and the loop must not: once
    writes take over BUSY_MAX of the loop's recent time, the next
    THREADED_FOR seconds of writes go to a thread. A single slow write (the
    VM stalls now and then for tens of ms) does not count as a slow disk.
    """

    BUSY_MAX = 0.6
    """Fraction of the loop's time."""
    WINDOW = 2.0
    """Seconds: how far back the loop's time is looked at (a decaying sum)."""
    THREADED_FOR = 5.0
    """Seconds."""

    def __init__(self) -> None:
        self.busy = 0.0
        self.at = time.monotonic()
        self.threaded_until = 0.0

    def inline(self) -> bool:
        """Write on the event loop now?"""
        return time.monotonic() >= self.threaded_until

    def took(self, seconds: float, now: float | None = None) -> None:
        """Record an inline write that blocked the loop for ``seconds``."""
        now = time.monotonic() if now is None else now
        self.busy = self.busy * math.exp(-(now - self.at) / self.WINDOW) + seconds
        self.at = now
        if self.busy > self.BUSY_MAX * self.WINDOW:
            self.busy = 0.0
            self.threaded_until = now + self.THREADED_FOR
            log.info("the cache disk is slow: fetched data is written in a thread for %.0f s",
                     self.THREADED_FOR)


def _start_of(r: list[int]) -> int:
    return r[0]


def _end_of(r: list[int]) -> int:
    return r[1]


def add_range(ranges: list[list[int]], start: int, end: int) -> list[list[int]]:
    """Merge [start, end) into sorted, disjoint ``ranges``; returns a new list.

    O(log n) to find the place, plus one list copy: a randomly read file can
    have thousands of ranges. ``ranges`` and its items are left unchanged.
    """
    if end <= start:
        return ranges
    first = bisect.bisect_left(ranges, start, key=_end_of)  # first range ending at or after start
    last = bisect.bisect_right(ranges, end, key=_start_of)  # first range starting after end
    if first < last:
        start, end = min(start, ranges[first][0]), max(end, ranges[last - 1][1])
    return [*ranges[:first], [start, end], *ranges[last:]]


def covering(ranges: list[list[int]], pos: int) -> int | None:
    """End of the range of ``ranges`` that holds byte ``pos``, or None."""
    index = bisect.bisect_right(ranges, pos, key=_start_of) - 1
    if index >= 0 and ranges[index][1] > pos:
        return ranges[index][1]
    return None


def missing(ranges: list[list[int]], start: int, end: int) -> list[tuple[int, int]]:
    """The sub-ranges of [start, end) that ``ranges`` does not cover."""
    gaps: list[tuple[int, int]] = []
    pos = start
    for index in range(bisect.bisect_right(ranges, start, key=_end_of), len(ranges)):
        s, e = ranges[index]
        if s >= end:
            break
        if s > pos:
            gaps.append((pos, s))
        pos = e
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
