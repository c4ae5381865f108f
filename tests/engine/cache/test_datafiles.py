from __future__ import annotations

import errno
import os
import random
import subprocess
import time
from itertools import pairwise
from pathlib import Path

import pytest

from openfiles_engine.cache.datafiles import (
    DataFiles,
    WritePace,
    add_range,
    covering,
    evictable,
    missing,
)
from openfiles_engine.state.db import Node


def test_ranges_merge_and_gaps() -> None:
    r: list[list[int]] = []
    r = add_range(r, 10, 20)
    r = add_range(r, 30, 40)
    assert r == [[10, 20], [30, 40]]
    assert missing(r, 0, 50) == [(0, 10), (20, 30), (40, 50)]
    assert missing(r, 12, 18) == []
    r = add_range(r, 20, 30)
    assert r == [[10, 40]]
    assert add_range(r, 5, 5) == [[10, 40]]
    assert missing(r, 35, 45) == [(40, 45)]


def test_ranges_agree_with_a_set_of_bytes() -> None:
    rng = random.Random(7)
    r: list[list[int]] = []
    present: set[int] = set()
    for _ in range(400):
        start = rng.randrange(1000)
        end = start + rng.randrange(30)
        old, snapshot = r, [list(x) for x in r]
        r = add_range(old, start, end)
        assert old == snapshot  # the old list and its items are left alone
        present |= set(range(start, end))
        assert all(a < b < c for (a, b), (c, _) in pairwise(r))  # sorted, merged
        assert {i for a, b in r for i in range(a, b)} == present
        lo = rng.randrange(1000)
        hi = lo + rng.randrange(100)
        gaps = missing(r, lo, hi)
        assert {i for a, b in gaps for i in range(a, b)} == set(range(lo, hi)) - present
        pos = rng.randrange(1000)
        end_at = covering(r, pos)
        assert (end_at is not None) == (pos in present)
        if end_at is not None:
            assert all(i in present for i in range(pos, end_at)) and end_at not in present


def node(ino: int, *, size: int, access: float, dirty: bool = False, etag: str | None = "e",
         opens: int = 0) -> Node:
    n = Node(ino=ino, parent=1, name=str(ino), kind="file", mode=0o644, uid=0, gid=0,
             size=size, etag=etag, dirty=dirty, last_access=access, full=True)
    n.opens = opens
    return n


def test_eviction_takes_least_recently_used_clean_data_only() -> None:
    nodes = [
        node(2, size=100, access=1.0),
        node(3, size=100, access=3.0),
        node(4, size=100, access=2.0, dirty=True),
        node(5, size=100, access=0.5, etag=None),  # never exported: the only copy
        node(6, size=100, access=4.0),
    ]
    chosen = evictable(nodes, cache_size=150, ttl=1e9, now=5.0)
    assert [n.ino for n in chosen] == [2, 3]
    expired = evictable(nodes, cache_size=10**9, ttl=2.5, now=5.0)
    assert [n.ino for n in expired] == [2]  # unread for 4 s; node 3 only for 2 s


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
        with pytest.raises(OSError) as info:
            data.write_fetched(7, data.writer(7), 5000, chunk, data.generation(7), lambda: True)
        assert info.value.errno == errno.ENOSPC  # never True: no range for bytes not there
        data.close_all()
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_fetched_data_is_written_in_a_thread_only_while_the_disk_is_slow() -> None:
    pace = WritePace()
    now = pace.at
    for _ in range(2000):  # page-cache speed: 1 ms of every 3 ms
        now += 0.003
        pace.took(0.001, now)
    assert pace.inline()
    now += 0.003
    pace.took(0.06, now)  # one stall of the VM is not a slow disk
    assert pace.inline()
    for _ in range(20):  # throttled: 100 ms writes, one after the other
        now += 0.1
        pace.took(0.1, now)
    assert not pace.inline()
    assert pace.threaded_until > time.monotonic()
    pace.threaded_until = time.monotonic() - 1  # THREADED_FOR has passed
    assert pace.inline()
