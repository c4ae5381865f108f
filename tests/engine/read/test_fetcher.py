"""fetcher.py: range GETs in flight, held buffers and their writes behind, the
version a GET asks for: against a MemoryStore (no FUSE), and through a real mount."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path
from typing import Any

import pytest
import trio

from openfiles_engine.bucket.asyncstore import AsyncStore
from openfiles_engine.bucket.store import Store, StoreError
from openfiles_engine.cache.datafile import DataFiles
from openfiles_engine.read.download import Downloader
from openfiles_engine.read.fetcher import Fetcher
from openfiles_engine.read.readahead import Readahead
from openfiles_engine.state.db import StateDB
from openfiles_engine.state.inode import ROOT, Node
from openfiles_engine.state.journal import Journal
from openfiles_engine.state.tree import Defaults, Tree

from ..conftest import Backend, MountFactory, memory_downloader, same, until


def _fetcher(tmp_path: Path, payload: bytes) -> tuple[Fetcher, Node]:
    """A Fetcher over a MemoryStore holding one file ``f`` of ``payload``."""
    store = Store.open("memory://")
    etag = store.put_bytes("f", payload, if_match=None, create=True)
    meta = StateDB(str(tmp_path / "m.sqlite"))
    tree = Tree(meta, Defaults(0, 0, 0o644, 0o755), "t")
    node = tree.add(ROOT, "f", "file", mode=0o644, uid=0, gid=0, size=len(payload), etag=etag)
    return Fetcher(tree, AsyncStore(store), DataFiles(str(tmp_path / "data")), Journal(meta)), node


def test_a_claimed_get_is_busy_at_once_and_wakes_who_waits(tmp_path: Path) -> None:
    payload = os.urandom(3 * 2**20)
    f, node = _fetcher(tmp_path, payload)
    a, b = 2**20, 2**20 + 4096

    async def main() -> None:
        flight = f.claim(node, a, b)
        assert f.busy(node) == [[a, b]] and f.present(node) == []  # nobody else asks for it
        assert f.flights(node, 0, a + 1) == [flight.done] and f.flights(node, 0, a) == []
        assert f.assemble(node, a, b) is None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(f.fetch, node, "f", flight, False)
            await f.wait(node, a, a + 1)
            assert flight.done.is_set()
        assert f.flights(node, 0, len(payload)) == []

    trio.run(main)
    assert node.ranges == [[a, b]] and f.busy(node) == [[a, b]]  # in the data file, not held
    assert f.assemble(node, a + 10, b) == payload[a + 10:b] and f.held.bytes == 0
    assert f.stats.fetched_bytes == 4096 and f.failure(node.ino) is None


def test_a_failed_get_wakes_who_waits_and_leaves_its_error(tmp_path: Path) -> None:
    f, node = _fetcher(tmp_path, b"x" * 4096)

    async def main() -> None:
        flight = f.claim(node, 0, 4096)
        await f.fetch(node, "no/such/key", flight, False)  # does not raise
        assert flight.done.is_set() and f.busy(node) == []

    trio.run(main)
    assert node.ranges == [] and f.assemble(node, 0, 1) is None
    assert "not found" in str(f.failure(node.ino))
    assert f.failure(node.ino) is None  # forgotten once asked


def test_reads_fetch_ranges_and_follow_pending_renames(tmp_path: Path) -> None:
    store = Store.open("memory://")
    payload = bytes(range(256)) * (12 * 4096)  # 12 MiB
    etag = store.put_bytes("old/name", payload, if_match=None, create=True)
    meta = StateDB(str(tmp_path / "m.sqlite"))
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


async def _read_all(dl: Downloader, node: Node, size: int) -> bytes:
    ra, out = Readahead(), bytearray()
    for offset in range(0, size, 2**20):
        out += await dl.read(node, offset, 2**20, ra)
    return bytes(out)


def test_the_gets_thread_writes_the_cache_and_readers_get_held_views(tmp_path: Path) -> None:
    payload, dl, node = memory_downloader(tmp_path, 24 * 2**20)
    window = 8 * 2**20  # the first window of a 1 MiB read (readahead.py)
    writers: set[str] = set()
    real = dl.store.sync.get_chunks

    def get_chunks(*args: Any, sink: Any = None, **kw: Any) -> list[memoryview]:
        def noting(offset: int, chunk: memoryview) -> None:
            writers.add(threading.current_thread().name)
            sink(offset, chunk)
        return real(*args, sink=noting, **kw)

    dl.store.sync.get_chunks = get_chunks  # type: ignore[method-assign]

    async def main() -> memoryview | bytes:
        async with trio.open_nursery() as nursery:
            dl.nursery = nursery
            node.opens = 1
            reply = await dl.read(node, 0, 2**20, Readahead())
            await until(lambda: node.ranges == [[0, window]], 30)
            return reply

    reply = trio.run(main)
    assert isinstance(reply, memoryview) and same(bytes(reply), payload[:2**20])
    assert writers and threading.main_thread().name not in writers
    assert dl.stats.fetched_bytes == window and dl.held_bytes == window
    assert same(dl.data.read(node.ino, 0, window), payload[:window])


def test_fetched_bytes_never_land_on_a_local_write(tmp_path: Path) -> None:
    _, dl, node = memory_downloader(tmp_path, 8 * 2**20)
    local = b"L" * (3 * 2**20)
    first, go_on = threading.Event(), threading.Event()
    real = dl.store.sync.get_chunks

    def get_chunks(*args: Any, sink: Any = None, **kw: Any) -> list[memoryview]:
        def pausing(offset: int, chunk: memoryview) -> None:
            sink(offset, chunk)
            first.set()
            go_on.wait(30)  # the GET stalls after its first buffer reached the file
        return real(*args, sink=pausing, **kw)

    dl.store.sync.get_chunks = get_chunks  # type: ignore[method-assign]

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            dl.nursery = nursery
            async def read() -> None:
                with pytest.raises(StoreError, match="changed while it was read"):
                    await dl.read(node, 0, 2**20, Readahead())

            nursery.start_soon(read)
            await trio.to_thread.run_sync(first.wait, 30)
            assert dl.data.disk_bytes(node.ino) > 0
            # What the fs does for open(O_TRUNC) then write(): the node turns
            # full, the data file's generation moves, then the local bytes land.
            node.full, node.ranges = True, []
            dl.data.invalidate(node.ino)
            dl.data.truncate(node.ino, 0)
            dl.data.write(node.ino, 0, local)
            go_on.set()  # the rest of the GET must stand down

    trio.run(main)
    assert same(dl.data.read(node.ino, 0, 64 * 2**20), local)
    assert dl.stats.fetched_bytes == 0 and node.ranges == []


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
