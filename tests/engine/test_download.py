"""Readahead and range fetching against a MemoryStore (no FUSE)."""

from __future__ import annotations

from pathlib import Path

import trio

from openfiles_engine import download
from openfiles_engine.cache import DataFiles
from openfiles_engine.download import MIN_WINDOW, Downloader, Readahead
from openfiles_engine.journal import Journal
from openfiles_engine.meta import ROOT, MetaDB
from openfiles_engine.store import AsyncStore, Store
from openfiles_engine.tree import Defaults, Tree


def test_window_grows_on_sequential_reads_and_resets_on_seek() -> None:
    ra = Readahead()
    windows = [ra.advance(i * 131072, 131072) for i in range(8)]
    assert windows == sorted(windows) and windows[-1] > MIN_WINDOW
    assert ra.advance(10 * 2**30, 131072) == MIN_WINDOW


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
    real = store.get_range

    def counting(key: str, start: int, end: int) -> bytes:
        calls.append((start, end))
        return real(key, start, end)

    store.get_range = counting  # type: ignore[method-assign]

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
