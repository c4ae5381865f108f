"""Range fetching: against a MemoryStore (no FUSE), and through real mounts.

The whole-file fetch of randomly read files is tested in test_wholefetch.py."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
import trio

from openfiles_engine.bucket.store import AsyncStore, Store
from openfiles_engine.cache.datafiles import DataFiles
from openfiles_engine.read import download, piece
from openfiles_engine.read.download import Downloader
from openfiles_engine.read.piece import PIECE
from openfiles_engine.read.readahead import MAX_WINDOW, MIN_WINDOW, SEQUENTIAL_SLACK, Readahead
from openfiles_engine.state.db import ROOT, MetaDB, Node
from openfiles_engine.state.journal import Journal
from openfiles_engine.state.tree import Defaults, Tree

from ..conftest import Backend, MountFactory, memory_downloader, same, until


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
    assert calls[0][1] <= PIECE


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


async def _read_all(dl: Downloader, node: Node, size: int) -> bytes:
    ra, out = Readahead(), bytearray()
    for offset in range(0, size, 2**20):
        out += await dl.read(node, offset, 2**20, ra)
    return bytes(out)


def test_reads_come_from_fetched_pieces_when_the_disk_lags(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "WRITE_BEHIND", 0)  # the disk never keeps up: drop all
    monkeypatch.setattr(piece, "HELD_MAX", 24 * 2**20)
    payload, dl, node = memory_downloader(tmp_path, 40 * 2**20)
    held: list[int] = []

    async def main() -> bytes:
        async with trio.open_nursery() as nursery:
            dl.nursery = nursery
            ra, out = Readahead(), bytearray()
            for offset in range(0, len(payload), 2**20):
                out += await dl.read(node, offset, 2**20, ra)
                held.append(dl.held_bytes)
            return bytes(out)

    assert same(trio.run(main), payload)
    assert node.cached_bytes() == 0 and dl.data.disk_bytes(node.ino) == 0
    assert dl.stats.dropped_bytes >= len(payload) - 2**20
    assert max(held) <= 24 * 2**20


def test_a_sequential_reader_is_answered_from_memory_and_every_piece_is_written(
        tmp_path: Path) -> None:
    payload, dl, node = memory_downloader(tmp_path, 40 * 2**20 + 5)
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
            await until(lambda: node.full, 30)
            node.opens = 0
            dl.closed(node)
            return bytes(out)

    assert same(trio.run(main), payload)
    assert dl.stats.dropped_bytes == 0 and node.ranges == [[0, len(payload)]]
    assert same(dl.data.read(node.ino, 0, len(payload)), payload)
    assert sum(views) > len(views) // 2  # most replies are views of fetched buffers
    assert max(held) <= MAX_WINDOW + SEQUENTIAL_SLACK + 2 * PIECE
    assert dl.held_bytes == 0  # the file is whole and closed: nothing stays in memory


def test_a_fill_after_dropped_pieces_puts_every_byte_in_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "WRITE_BEHIND", 0)
    payload, dl, node = memory_downloader(tmp_path, 20 * 2**20)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            dl.nursery = nursery
            ra = Readahead()
            for offset in range(0, 6 * 2**20, 2**20):  # some pieces held, none written
                await dl.read(node, offset, 2**20, ra)
            await dl.fill(node)

    trio.run(main)
    assert node.full and node.ranges == [[0, len(payload)]]
    assert same(dl.data.read(node.ino, 0, len(payload)), payload)


def test_fetched_bytes_never_land_on_a_local_write(tmp_path: Path) -> None:
    _, dl, node = memory_downloader(tmp_path, 32 * 2**20)
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
    assert same(dl.data.read(node.ino, 0, 64 * 2**20), local)
    assert dl.stats.fetched_bytes == 0


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
