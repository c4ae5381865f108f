"""Whole-file fetch of randomly read files: against a MemoryStore, and through a mount on MinIO."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from fixtures.net import wait_for
from openfiles_engine.bucket.store import StoreError
from openfiles_engine.read import wholefetch
from openfiles_engine.read.download import Downloader
from openfiles_engine.read.piece import PIECE
from openfiles_engine.read.readahead import MIN_WINDOW, RANDOM_SEEKS, Readahead
from openfiles_engine.state.inode import Node

from ..conftest import Backend, MountFactory, memory_downloader, same, until


async def _read_at_random(dl: Downloader, node: Node, payload: bytes, count: int,
                          ra: Readahead, seed: int = 3) -> None:
    rng = random.Random(seed)
    for _ in range(count):
        offset = rng.randrange(len(payload) - 4096)
        assert await dl.read(node, offset, 4096, ra) == payload[offset:offset + 4096]


def test_a_randomly_read_file_is_fetched_whole_in_pieces(tmp_path: Path) -> None:
    payload, dl, node = memory_downloader(tmp_path, 40 * 2**20 + 123)
    calls: list[tuple[int, int]] = []
    real = dl.store.sync.get_chunks

    def counting(key: str, start: int, end: int, **kw: Any) -> list[memoryview]:
        calls.append((start, end))
        return real(key, start, end, **kw)

    dl.store.sync.get_chunks = counting  # type: ignore[method-assign]
    node.opens = 1  # the file is open: the whole fetch goes on

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            dl.nursery = nursery
            await _read_at_random(dl, node, payload, 40, Readahead())
            await until(lambda: node.full, 30)
            await _read_at_random(dl, node, payload, 40, Readahead(), seed=4)

    trio.run(main)
    assert same(dl.data.read(node.ino, 0, len(payload)), payload)
    pieces = [(a, b) for a, b in calls if b - a > 4096 * 2]
    assert sum(b - a for a, b in pieces) <= len(payload) + RANDOM_SEEKS * MIN_WINDOW
    assert all(b - a <= wholefetch.WHOLE_PIECE for a, b in pieces)
    assert len(calls) <= 40 + len(pieces)  # no more than one GET per miss, plus the pieces
    small = [c for c in calls if c[1] - c[0] <= 4096 * 2 and c[1] != len(payload)]
    assert not small  # misses wait for pieces (the file's last piece may be short)
    saved = {n.ino: n for n in dl.tree.db.load_nodes()}[node.ino]
    assert saved.full  # committed as soon as it is whole


def test_a_random_reader_of_a_file_over_a_quarter_of_the_cache_gets_small_windows(
        tmp_path: Path) -> None:
    payload, dl, node = memory_downloader(tmp_path, 40 * 2**20)
    dl.window_cap = lambda: 16 * 2**20  # a 64 MiB cache: 40 MiB is more than a quarter
    node.opens = 1

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            dl.nursery = nursery
            await _read_at_random(dl, node, payload, 30, Readahead())

    trio.run(main)
    assert not node.full and node.cached_bytes() <= 30 * MIN_WINDOW


def test_the_whole_fetch_starts_no_get_once_the_file_is_closed(tmp_path: Path) -> None:
    payload, dl, node = memory_downloader(tmp_path, 96 * 2**20)
    release = threading.Event()
    pieces: list[tuple[int, int]] = []
    real = dl.store.sync.get_chunks

    def blocking(key: str, start: int, end: int, **kw: Any) -> list[memoryview]:
        if end - start in (PIECE, wholefetch.WHOLE_PIECE):  # a miss's, the fetch's
            pieces.append((start, end))
            release.wait(30)  # every piece GET waits until the file is closed
        return real(key, start, end, **kw)

    dl.store.sync.get_chunks = blocking  # type: ignore[method-assign]
    dl.window_cap = lambda: 2**30  # a 4 GiB cache
    node.opens = 1

    at_close: list[int] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            dl.nursery = nursery
            reader = trio.CancelScope()

            async def read() -> None:
                with reader:  # the miss that starts the whole fetch waits for its piece
                    await _read_at_random(dl, node, payload, RANDOM_SEEKS + 2, Readahead())

            nursery.start_soon(read)
            # The whole fetch's GETs, and the one the waiting miss started.
            await until(lambda: len(pieces) == wholefetch.WHOLE_GETS + 1, 10)
            reader.cancel()  # the reader gives up (a signal) and closes the file
            at_close.append(len(pieces))
            node.opens = 0  # the last handle is released
            release.set()
            await until(lambda: node.ino not in dl.whole.inodes, 30)

    try:
        trio.run(main)
    finally:
        release.set()
    assert len(pieces) == at_close[0]  # the ones in flight finished; no new one
    fetched = sum(end - start for start, end in pieces)
    assert not node.full
    assert fetched <= node.cached_bytes() <= fetched + RANDOM_SEEKS * MIN_WINDOW  # + the seeks
    for start, end in pieces:
        assert same(dl.data.read(node.ino, start, end - start), payload[start:end])


def _pread_at_random(path: Path, data: bytes, count: int) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # as a database would
        rng = random.Random(5)
        for _ in range(count):
            offset = rng.randrange(len(data) // 4096) * 4096
            assert os.pread(fd, 4096, offset) == data[offset:offset + 4096]
    finally:
        os.close(fd)


@pytest.mark.fuse
@pytest.mark.s3
@pytest.mark.timeout(180)
def test_random_reads_through_a_mount_fetch_the_file_whole_when_it_fits(
        mounter: MountFactory, s3_backend: Backend) -> None:
    data = os.urandom(40 * 2**20)
    s3_backend.write("rand.bin", data)
    fits = mounter(s3_backend, "--cache-size", "400Mi")  # a quarter is 100 MiB
    fd = os.open(fits.path / "rand.bin", os.O_RDONLY)  # keeps the whole fetch going
    try:
        _pread_at_random(fits.path / "rand.bin", data, 200)
        wait_for(lambda: fits.status()["cache_bytes"] == len(data), timeout=60,
                 what="the whole file in the cache")
    finally:
        os.close(fd)
    _pread_at_random(fits.path / "rand.bin", data, 200)  # all from the cache now
    assert (fits.cache / "data").exists()

    too_big = mounter(s3_backend, "--cache-size", "100Mi")  # a quarter is 25 MiB
    _pread_at_random(too_big.path / "rand.bin", data, 60)
    cached = too_big.status()["cache_bytes"]
    time.sleep(1)
    assert too_big.status()["cache_bytes"] == cached < len(data) // 2  # nothing behind


def test_a_random_miss_fails_instead_of_waiting_when_the_object_is_gone(
        tmp_path: Path) -> None:
    payload, dl, node = memory_downloader(tmp_path, 160 * 2**20)  # more than the first GETs bring
    node.opens = 1

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            dl.nursery = nursery
            ra = Readahead()
            await _read_at_random(dl, node, payload, RANDOM_SEEKS + 1, ra)  # now random
            dl.store.sync.delete("f")  # another client deletes it; the whole fetch fails
            with trio.fail_after(20):  # every miss ends, none waits for good
                failed = 0
                for offset in range(0, len(payload), 2**20):
                    try:
                        got = await dl.read(node, offset + 100, 4096, ra)
                    except StoreError:
                        failed += 1
                    else:  # fetched before the delete: still the right bytes
                        assert bytes(got) == payload[offset + 100:offset + 4196]
            assert failed > 0
            node.opens = 0
            nursery.cancel_scope.cancel()

    trio.run(main)
