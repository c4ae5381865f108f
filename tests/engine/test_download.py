"""Range fetching: against a MemoryStore (no FUSE), and through real mounts on MinIO."""

from __future__ import annotations

import errno
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from fixtures.net import wait_for
from openfiles_engine import download, piece
from openfiles_engine.cache import DataFiles
from openfiles_engine.download import Downloader
from openfiles_engine.journal import Journal
from openfiles_engine.meta import ROOT, MetaDB, Node
from openfiles_engine.readahead import (
    MAX_WINDOW,
    MIN_WINDOW,
    RANDOM_SEEKS,
    SEQUENTIAL_SLACK,
    Readahead,
)
from openfiles_engine.store import AsyncStore, Store, StoreError
from openfiles_engine.tree import Defaults, Tree

from .conftest import Backend, MountFactory


def test_reads_fetch_ranges_and_follow_pending_renames(tmp_path: Path) -> None:
    store = Store.open("memory://")
    payload = bytes(range(256)) * (12 * 4096)  # 12 MiB
    etag = store.put_bytes("old/name", payload, if_match=None, create=True)
    meta = MetaDB(str(tmp_path / "m.sqlite"))
    tree = Tree(meta, Defaults(0, 0, 0o644, 0o755), "t")
    journal = Journal(meta)
    d = tree.add(ROOT, "new", "dir", mode=0o755, uid=0, gid=0)
    node = tree.add(d.ino, "name", "file", mode=0o644, uid=0, gid=0, size=len(payload),
                    etag=etag)
    journal.add("renamedir", "old", "new")  # not replayed: the bytes are under old/
    dl = Downloader(tree, AsyncStore(store), DataFiles(str(tmp_path / "data")), journal)

    async def main() -> tuple[bytes, bytes]:
        ra = Readahead()
        first = await dl.read(node, 5 * 2**20, 4096, ra)
        await dl.fill(node)
        return first, dl.data.read(node.ino, 0, len(payload))

    first, whole = trio.run(main)
    assert first == payload[5 * 2**20: 5 * 2**20 + 4096]
    assert whole == payload and node.full
    assert dl.stats.miss_bytes == 4096


def test_concurrent_readers_share_one_get(tmp_path: Path) -> None:
    store = Store.open("memory://")
    payload = b"x" * (8 * 2**20)
    etag = store.put_bytes("f", payload, if_match=None, create=True)
    meta = MetaDB(str(tmp_path / "m.sqlite"))
    tree = Tree(meta, Defaults(0, 0, 0o644, 0o755), "t")
    node = tree.add(ROOT, "f", "file", mode=0o644, uid=0, gid=0, size=len(payload), etag=etag)
    dl = Downloader(tree, AsyncStore(store), DataFiles(str(tmp_path / "data")), Journal(meta))
    calls: list[tuple[int, int]] = []
    real = store.get_chunks

    def counting(key: str, start: int, end: int, **kw: Any) -> list[memoryview]:
        calls.append((start, end))
        return real(key, start, end, **kw)

    store.get_chunks = counting  # type: ignore[method-assign]

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(dl.read, node, 0, 4096, Readahead())

    trio.run(main)
    assert len(calls) == 1 and calls[0][0] == 0  # one GET, the others waited for it
    assert calls[0][1] <= download.PIECE


def test_a_random_read_fetches_a_small_window(tmp_path: Path) -> None:
    store = Store.open("memory://")
    etag = store.put_bytes("f", b"r" * (64 * 2**20), if_match=None, create=True)
    meta = MetaDB(str(tmp_path / "m.sqlite"))
    tree = Tree(meta, Defaults(0, 0, 0o644, 0o755), "t")
    node = tree.add(ROOT, "f", "file", mode=0o644, uid=0, gid=0, size=64 * 2**20, etag=etag)
    dl = Downloader(tree, AsyncStore(store), DataFiles(str(tmp_path / "data")), Journal(meta))
    ra = Readahead()
    ra.advance(0, 4096)
    trio.run(dl.read, node, 40 * 2**20 + 123, 4096, ra)
    assert node.cached_bytes() == MIN_WINDOW  # a seek: no more than the minimum window


def _same(got: bytes, want: bytes) -> bool:
    """Equality that keeps pytest from diffing megabytes when it fails."""
    if got != want:
        first = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
        print(f"{len(got)} bytes vs {len(want)}, first difference at {first}")
    return got == want


def _setup(tmp_path: Path, size: int) -> tuple[bytes, Downloader, Node]:
    store = Store.open("memory://")
    payload = os.urandom(size)
    etag = store.put_bytes("f", payload, if_match=None, create=True)
    meta = MetaDB(str(tmp_path / "m.sqlite"))
    tree = Tree(meta, Defaults(0, 0, 0o644, 0o755), "t")
    node = tree.add(ROOT, "f", "file", mode=0o644, uid=0, gid=0, size=size, etag=etag)
    dl = Downloader(tree, AsyncStore(store), DataFiles(str(tmp_path / "data")), Journal(meta))
    return payload, dl, node


async def _read_all(dl: Downloader, node: Node, size: int) -> bytes:
    ra, out = Readahead(), bytearray()
    for offset in range(0, size, 2**20):
        out += await dl.read(node, offset, 2**20, ra)
    return bytes(out)


def test_reads_come_from_fetched_pieces_when_the_disk_lags(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "WRITE_BEHIND", 0)  # the disk never keeps up: drop all
    monkeypatch.setattr(piece, "HELD_MAX", 24 * 2**20)
    payload, dl, node = _setup(tmp_path, 40 * 2**20)
    held: list[int] = []

    async def main() -> bytes:
        async with trio.open_nursery() as nursery:
            dl.nursery = nursery
            ra, out = Readahead(), bytearray()
            for offset in range(0, len(payload), 2**20):
                out += await dl.read(node, offset, 2**20, ra)
                held.append(dl.held_bytes)
            return bytes(out)

    assert _same(trio.run(main), payload)
    assert node.cached_bytes() == 0 and dl.data.disk_bytes(node.ino) == 0
    assert dl.stats.dropped_bytes >= len(payload) - 2**20
    assert max(held) <= 24 * 2**20


def test_a_sequential_reader_is_answered_from_memory_and_every_piece_is_written(
        tmp_path: Path) -> None:
    payload, dl, node = _setup(tmp_path, 40 * 2**20 + 5)
    held: list[int] = []
    views: list[bool] = []

    async def main() -> bytes:
        async with trio.open_nursery() as nursery:
            dl.nursery = nursery
            node.opens = 1
            ra, out = Readahead(), bytearray()
            for offset in range(0, len(payload), 2**20):
                reply = await dl.read(node, offset, 2**20, ra)
                views.append(isinstance(reply, memoryview))
                out += reply
                held.append(dl.held_bytes)
            await _until(lambda: node.full, 30)
            node.opens = 0
            dl.closed(node)
            return bytes(out)

    assert _same(trio.run(main), payload)
    assert dl.stats.dropped_bytes == 0 and node.ranges == [[0, len(payload)]]
    assert _same(dl.data.read(node.ino, 0, len(payload)), payload)
    assert sum(views) > len(views) // 2  # most replies are views of fetched buffers
    assert max(held) <= MAX_WINDOW + SEQUENTIAL_SLACK + 2 * download.PIECE
    assert dl.held_bytes == 0  # the file is whole and closed: nothing stays in memory


def test_a_fill_after_dropped_pieces_puts_every_byte_in_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "WRITE_BEHIND", 0)
    payload, dl, node = _setup(tmp_path, 20 * 2**20)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            dl.nursery = nursery
            ra = Readahead()
            for offset in range(0, 6 * 2**20, 2**20):  # some pieces held, none written
                await dl.read(node, offset, 2**20, ra)
            await dl.fill(node)

    trio.run(main)
    assert node.full and node.ranges == [[0, len(payload)]]
    assert _same(dl.data.read(node.ino, 0, len(payload)), payload)


def test_fetched_bytes_never_land_on_a_local_write(tmp_path: Path) -> None:
    _, dl, node = _setup(tmp_path, 32 * 2**20)
    local = b"L" * (3 * 2**20)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            dl.nursery = nursery
            async with dl._disk:  # the disk is busy: every fetched piece waits in the queue
                await _read_all(dl, node, 8 * 2**20)
                assert dl.data.disk_bytes(node.ino) == 0
                # What the fs does for open(O_TRUNC) then write(): the node turns
                # full, the data file's generation moves, then the local bytes land.
                node.full, node.ranges = True, []
                dl.data.invalidate(node.ino)
                dl.data.truncate(node.ino, 0)
                dl.data.write(node.ino, 0, local)
            # the queued pieces now run, and must all stand down

    trio.run(main)
    assert _same(dl.data.read(node.ino, 0, 64 * 2**20), local)
    assert dl.stats.fetched_bytes == 0


async def _until(done: Callable[[], bool], seconds: float) -> None:
    with trio.fail_after(seconds):
        while not done():  # noqa: ASYNC110 - the state polled has no event of its own
            await trio.sleep(0.01)


async def _read_at_random(dl: Downloader, node: Node, payload: bytes, count: int,
                          ra: Readahead, seed: int = 3) -> None:
    rng = random.Random(seed)
    for _ in range(count):
        offset = rng.randrange(len(payload) - 4096)
        assert await dl.read(node, offset, 4096, ra) == payload[offset:offset + 4096]


def test_a_randomly_read_file_is_fetched_whole_in_pieces(tmp_path: Path) -> None:
    payload, dl, node = _setup(tmp_path, 40 * 2**20 + 123)
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
            await _until(lambda: node.full, 30)
            await _read_at_random(dl, node, payload, 40, Readahead(), seed=4)

    trio.run(main)
    assert _same(dl.data.read(node.ino, 0, len(payload)), payload)
    pieces = [(a, b) for a, b in calls if b - a > 4096 * 2]
    assert sum(b - a for a, b in pieces) <= len(payload) + RANDOM_SEEKS * MIN_WINDOW
    assert all(b - a <= download.PIECE for a, b in pieces)
    assert len(calls) <= 40 + len(pieces)  # no more than one GET per miss, plus the pieces
    small = [c for c in calls if c[1] - c[0] <= 4096 * 2 and c[1] != len(payload)]
    assert not small  # misses wait for pieces (the file's last piece may be short)
    saved = {n.ino: n for n in dl.tree.meta.load_nodes()}[node.ino]
    assert saved.full  # committed as soon as it is whole


def test_a_random_reader_of_a_file_over_a_quarter_of_the_cache_gets_small_windows(
        tmp_path: Path) -> None:
    payload, dl, node = _setup(tmp_path, 40 * 2**20)
    dl.window_cap = lambda: 16 * 2**20  # a 64 MiB cache: 40 MiB is more than a quarter
    node.opens = 1

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            dl.nursery = nursery
            await _read_at_random(dl, node, payload, 30, Readahead())

    trio.run(main)
    assert not node.full and node.cached_bytes() <= 30 * MIN_WINDOW


def test_the_whole_fetch_starts_no_get_once_the_file_is_closed(tmp_path: Path) -> None:
    payload, dl, node = _setup(tmp_path, 96 * 2**20)
    release = threading.Event()
    pieces: list[int] = []
    real = dl.store.sync.get_chunks

    def blocking(key: str, start: int, end: int, **kw: Any) -> list[memoryview]:
        if end - start == download.PIECE:
            pieces.append(start)
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
            await _until(lambda: len(pieces) == download.WHOLE_GETS + 1, 10)
            reader.cancel()  # the reader gives up (a signal) and closes the file
            at_close.append(len(pieces))
            node.opens = 0  # the last handle is released
            release.set()
            await _until(lambda: node.ino not in dl._whole, 30)

    try:
        trio.run(main)
    finally:
        release.set()
    assert len(pieces) == at_close[0]  # the ones in flight finished; no new one
    fetched = len(pieces) * download.PIECE
    assert not node.full
    assert fetched <= node.cached_bytes() <= fetched + RANDOM_SEEKS * MIN_WINDOW  # + the seeks
    assert _same(dl.data.read(node.ino, pieces[0], download.PIECE),
                 payload[pieces[0]:pieces[0] + download.PIECE])


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


@pytest.mark.fuse
@pytest.mark.timeout(120)
def test_an_object_replaced_while_open_fails_reads_instead_of_mixing_versions(
        mounter: MountFactory, backend: Backend) -> None:
    old = b"o" * (24 * 2**20)
    backend.write("swap.bin", old)
    # A long metadata TTL: only the failed read can tell the engine about the change.
    m = mounter(backend, "--metadata-ttl", "3600")
    fd = os.open(m.path / "swap.bin", os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        assert os.pread(fd, 4096, 0) == b"o" * 4096
        backend.write("swap.bin", b"n" * len(old))  # another client replaces it
        with pytest.raises(OSError) as info:
            os.pread(fd, 4096, 20 * 2**20)  # not fetched yet
        assert info.value.errno == errno.EIO
    finally:
        os.close(fd)
    # The next open asks the bucket and reads the new version, none of the old.
    with open(m.path / "swap.bin", "rb") as f:
        assert f.read(4096) == b"n" * 4096
        f.seek(20 * 2**20)
        assert f.read(4096) == b"n" * 4096


def test_a_random_miss_fails_instead_of_waiting_when_the_object_is_gone(
        tmp_path: Path) -> None:
    payload, dl, node = _setup(tmp_path, 160 * 2**20)  # more than the first GETs bring
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
