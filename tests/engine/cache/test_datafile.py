"""datafile.py: sparse data files, punched holes, a full cache disk."""

from __future__ import annotations

import ctypes
import errno
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from openfiles_engine.cache.datafile import (
    DataFiles,
    FetchedWriter,
    _write_split,
    start_writeback,
)


def test_punch_keeps_the_rest(tmp_path: Path) -> None:
    files = DataFiles(str(tmp_path))
    files.write(3, 0, b"a" * 2**20 + b"b" * 2**20)
    files.punch(3, 0, 2**20)
    assert files.read(3, 0, 4) == b"\0" * 4
    assert files.read(3, 2**20, 4) == b"bbbb"
    assert files.disk_bytes(3) <= 2**20 + 8192
    files.close_all()


def test_data_files_are_sparse_and_droppable(tmp_path: Path) -> None:
    files = DataFiles(str(tmp_path))
    files.write(7, 10 * 2**20, b"tail")
    assert files.read(7, 10 * 2**20, 4) == b"tail"
    assert files.read(7, 0, 4) == b"\0\0\0\0"
    assert files.disk_bytes(7) < 2**20  # a hole, not 10 MiB of zeros
    files.drop(7)
    assert files.disk_bytes(7) == 0
    files.close_all()


def test_fetched_bytes_of_an_older_generation_or_a_closed_writer_never_land(
        tmp_path: Path) -> None:
    files = DataFiles(str(tmp_path))
    old = files.writer(3, files.generation(3), lambda: True)
    old(0, memoryview(b"f" * 4096))
    files.invalidate(3)  # the file changes (a truncate, a local write, eviction)
    files.write(3, 0, b"L" * 10)
    old(4096, memoryview(b"f" * 4096))
    assert old.landed == [(0, 4096)] and old.stopped
    assert files.read(3, 0, 8192) == b"L" * 10 + b"f" * 4086
    old.close()

    closed = files.writer(3, files.generation(3), lambda: True)
    closed.close()  # what a cancelled fetch does while its thread still runs
    closed(0, memoryview(b"x" * 10))
    unwanted = files.writer(3, files.generation(3), lambda: False)
    unwanted(0, memoryview(b"x" * 10))
    unwanted.close(thread_done=True)
    assert closed.landed == unwanted.landed == [] and files.read(3, 0, 10) == b"L" * 10
    files.close_all()


class HeldWriter:
    """Runs a writer's next call in a thread whose pwrite waits until ``release``
    (its ``_write`` wrapped: no other way to hold a real pwrite in progress)."""

    def __init__(self, writer: FetchedWriter) -> None:
        self.started, self.go = threading.Event(), threading.Event()
        write = writer._write

        def held(piece: memoryview, offset: int) -> int:
            self.started.set()
            assert self.go.wait(10)
            return write(piece, offset)

        writer._write = held  # type: ignore[method-assign]
        self.thread = threading.Thread(target=writer, args=(0, memoryview(b"h" * 4096)))
        self.thread.start()
        assert self.started.wait(10)

    def release(self) -> None:
        self.go.set()
        self.thread.join(10)


def test_fetched_writes_run_at_once_and_a_bump_waits_for_its_files(tmp_path: Path) -> None:
    files = DataFiles(str(tmp_path))
    held = HeldWriter(files.writer(3, files.generation(3), lambda: True))
    other = files.writer(4, files.generation(4), lambda: True)
    other(0, memoryview(b"o" * 4096))  # another file's write is not held up
    assert other.landed == [(0, 4096)]
    files.invalidate(4)  # nor a bump of another file
    bumped = threading.Event()
    bump = threading.Thread(target=lambda: (files.invalidate(3), bumped.set()))
    bump.start()
    assert not bumped.wait(0.3)  # the write in progress has not ended
    held.release()
    assert bumped.wait(10)
    bump.join()
    assert files.read(3, 0, 4096) == b"h" * 4096  # it began before the bump: it lands
    other.close(thread_done=True)

    closing = files.writer(3, files.generation(3), lambda: True)
    held = HeldWriter(closing)
    closing.close()  # a cancelled fetch, while its thread is in a pwrite
    assert closing.closed and closing.busy
    held.release()  # the pwrite ends on an open fd, then closes it
    assert not closing.busy and closing.landed == [(0, 4096)]
    with pytest.raises(OSError):
        os.fstat(closing._fd)
    files.close_all()


@pytest.mark.root
def test_fetched_bytes_that_do_not_fit_raise_enospc(tmp_path: Path) -> None:
    point = tmp_path / "tmpfs"
    point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(point)], check=True)
    try:
        data = DataFiles(str(point / "data"))
        # 1 MiB from an unaligned offset needs one page more than the 1 MiB tmpfs
        # has: the last pwrite is short rather than failing.
        chunk = memoryview(os.urandom(2**20))
        writer = data.writer(7, data.generation(7), lambda: True)
        writer(5000, chunk)  # a GET's sink: keeps the error, never raises it into the GET
        writer.close(thread_done=True)
        assert writer.error is not None and writer.error.errno == errno.ENOSPC
        assert writer.landed == []  # no range for bytes that are not there
        data.close_all()
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def resident(path: Path) -> int:
    """Bytes of ``path`` in the page cache (util-linux fincore)."""
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return int(out.strip())


def dirty_pages(path: Path) -> int:
    """Pages of ``path`` that are dirty in the page cache (the cachestat syscall,
    Linux 6.5 on; the test is skipped without it)."""
    class Range(ctypes.Structure):
        _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]

    class Stat(ctypes.Structure):
        _fields_ = [(name, ctypes.c_uint64) for name in (
            "nr_cache", "nr_dirty", "nr_writeback", "nr_evicted", "nr_recently_evicted")]

    libc = ctypes.CDLL(None, use_errno=True)
    stat, whole = Stat(), Range(0, 0)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.syscall(451, fd, ctypes.byref(whole), ctypes.byref(stat), 0) != 0:
            err = ctypes.get_errno()
            if err == errno.ENOSYS:
                pytest.skip("this kernel has no cachestat (Linux 6.5)")
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)
    return stat.nr_dirty


def test_writes_go_through_the_page_cache_and_the_disk_takes_them_when_asked(
        tmp_path: Path) -> None:
    files = DataFiles(str(tmp_path))
    want = bytearray(os.urandom(4 * 2**20))
    assert files.write(5, 0, bytes(want)) == len(want)
    small = os.urandom(100)  # unaligned writes too
    files.write(5, 5000, small)
    want[5000:5100] = small
    assert files.read(5, 0, len(want) + 10) == bytes(want)
    path = tmp_path / "5"
    assert resident(path) == len(want)
    # Dirty until the kernel's own writeback (30 s), unless asked to start it.
    assert dirty_pages(path) > 0
    start_writeback(files.fd(5), 0, len(want))
    deadline = time.monotonic() + 10
    while dirty_pages(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dirty_pages(path) == 0 and resident(path) == len(want)
    files.close_all()


@pytest.mark.root
def test_a_cache_that_refuses_direct_writes_gets_plain_ones(tmp_path: Path) -> None:
    point = tmp_path / "ramfs"  # ramfs has no O_DIRECT: open() says EINVAL
    point.mkdir()
    subprocess.run(["mount", "-t", "ramfs", "ramfs", str(point)], check=True)
    try:
        files = DataFiles(str(point / "data"))
        data = os.urandom(2**20)
        writer = files.writer(9, files.generation(9), lambda: True, direct=True)
        writer(0, memoryview(data))
        writer.close(thread_done=True)
        assert not files.direct  # for good: no second failed open per GET
        second = files.writer(9, files.generation(9), lambda: True, direct=True)
        second(2**20, memoryview(data))
        second.close(thread_done=True)
        assert writer.landed == [(0, 2**20)] and second.landed == [(2**20, 2 * 2**20)]
        assert files.read(9, 0, 2 * 2**20) == data * 2
        files.close_all()
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_a_direct_fetch_writer_lands_its_aligned_mib_outside_the_page_cache(
        tmp_path: Path) -> None:
    files = DataFiles(str(tmp_path))
    data = os.urandom(3 * 2**20 + 777)  # three aligned MiB, then an unaligned tail
    writer = files.writer(4, files.generation(4), lambda: True, direct=True)
    writer(0, memoryview(data))
    writer.close(thread_done=True)
    assert writer.error is None and writer.landed == [(0, len(data))]
    assert resident(tmp_path / "4") <= 4096  # only the tail's page went through it
    assert files.read(4, 0, len(data) + 1) == data
    files.close_all()


def test_a_direct_fetch_writer_takes_buffers_that_do_not_start_on_a_block(
        tmp_path: Path) -> None:
    """obstore hands a GET's bytes over in buffers of at least 1 MiB, not exactly 1 MiB:
    after the first, each starts off a block. Their aligned middles still go direct."""
    files = DataFiles(str(tmp_path))
    data = os.urandom(4 * 2**20)
    writer = files.writer(6, files.generation(6), lambda: True, direct=True)
    pos = 0
    for size in (2**20 + 1000, 2**20 + 70_000, 2**20 + 3, 4 * 2**20):
        size = min(size, len(data) - pos)
        writer(pos, memoryview(data)[pos:pos + size])
        pos += size
    writer.close(thread_done=True)
    assert writer.error is None and pos == len(data)
    assert resident(tmp_path / "6") <= 6 * 4096  # a page at each end of each buffer
    assert files.read(6, 0, len(data) + 1) == data
    files.close_all()


def test_a_split_write_that_fails_after_its_first_piece_counts_what_landed() -> None:
    """A write cut into pieces (plain head, direct middle, plain tail) that fails after
    the first piece returns the bytes that landed, as a short pwrite would; a failure
    of the first piece is raised."""
    def full_at(where: int) -> Callable[[memoryview, int], int]:
        def plain(view: memoryview, offset: int) -> int:
            if offset == where:
                raise OSError(errno.ENOSPC, "full")
            return len(view)
        return plain

    def direct(view: memoryview, offset: int) -> int:
        return len(view)

    data = bytes(200_000)  # at 100: head [100, 4096), middle to 196,608, tail to 200,100
    assert _write_split(data, 100, full_at(196_608), direct) == 196_608 - 100
    with pytest.raises(OSError, match="full"):
        _write_split(data, 100, full_at(100), direct)
