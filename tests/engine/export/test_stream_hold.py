"""export/stream.py, :meth:`Stream.parts` alone on a real cache file: a part is
made of the writes the stream still holds, and of the cache file past them."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from openfiles_engine.export.stream import HOLD, PART, Stopped, Stream

from ..cache.test_datafile import dirty_pages

MiB = 2**20


def test_parts_come_from_the_held_writes_then_from_the_cache_file(tmp_path: Path) -> None:
    # The cache file holds "F" everywhere and the writes fed to the stream "H", so
    # that each byte sent shows where it came from.
    size = HOLD + 2 * PART + 5 * MiB + 123
    path = tmp_path / "data"
    path.write_bytes(b"F" * size)
    stream = Stream(1, "key", None, str(path), 0, 0)
    parts = stream.parts()

    for off in range(0, PART, MiB):  # one part's writes: held, then sent
        stream.feed(off + MiB, 0, off, b"H" * MiB)
    assert next(parts) == b"H" * PART
    assert stream.held_bytes == 0  # what was sent is forgotten

    # The writer runs ahead of the upload: past HOLD the writes are not kept.
    for off in range(PART, size, MiB):
        n = min(MiB, size - off)
        stream.feed(off + n, 0, off, b"H" * n)
    assert stream.held_bytes == HOLD
    with stream.cond:
        stream.final = stream.end
    rest = b"".join(parts)
    assert rest == b"H" * HOLD + b"F" * (size - PART - HOLD)
    assert stream.held_bytes == 0 and not stream.held


def test_a_part_that_the_cache_file_cannot_fill_stops_the_upload(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"F" * MiB)  # shorter than the writes claim
    stream = Stream(1, "key", None, str(path), 2 * MiB, 0)
    with stream.cond:
        stream.final = 2 * MiB
    with pytest.raises(Stopped, match="shorter"):
        next(stream.parts())


def test_parts_read_back_at_any_offset_and_the_disk_is_asked_for_what_was_written(
        tmp_path: Path) -> None:
    """Bytes read back from the cache file are the file's, from unaligned offsets too;
    every part asked for starts the disk write of all that was written before it, so
    a big file's pages do not stay dirty until the kernel's own writeback."""
    size = 3 * PART + 777
    data = os.urandom(size)
    path = tmp_path / "data"
    path.write_bytes(data)  # dirty, in the page cache
    assert dirty_pages(path) > 0
    stream = Stream(1, "key", None, str(path), 0, 0)
    parts = stream.parts()
    stream.feed(3001, 0, 0, data[:3001])  # held: the first part starts from memory
    fed = 2 * PART + 40960
    stream.feed(fed, 0, 3001, data[3001:fed])  # not held (more than HOLD)
    got = [next(parts)]
    deadline = time.monotonic() + 10
    while dirty_pages(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dirty_pages(path) <= (size - fed) // 4096 + 1  # only what was not yet fed
    stream.feed(size, 0, fed, data[fed:])
    got.append(next(parts))
    with stream.cond:
        stream.final = stream.end
    got += list(parts)
    assert [len(p) for p in got] == [PART, PART, PART, 777]
    assert b"".join(got) == data
    while dirty_pages(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dirty_pages(path) == 0
