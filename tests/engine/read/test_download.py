"""download.py: hits, misses, readahead windows and fills, against a MemoryStore.

The pieces under it (GETs in flight, held buffers, writes behind) are tested
in test_fetcher.py; the whole-file fetch of randomly read files in
test_wholefetch.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from openfiles_engine.bucket.asyncstore import AsyncStore
from openfiles_engine.bucket.store import Store
from openfiles_engine.cache.datafile import DataFiles
from openfiles_engine.read.download import Downloader
from openfiles_engine.read.piece import HELD_MAX, PIECE
from openfiles_engine.read.readahead import MAX_WINDOW, MIN_WINDOW, SEQUENTIAL_SLACK, Readahead
from openfiles_engine.state.db import StateDB
from openfiles_engine.state.inode import ROOT, Node
from openfiles_engine.state.journal import Journal
from openfiles_engine.state.tree import Defaults, Tree

from ..conftest import memory_downloader, same, until


def test_concurrent_readers_share_one_get(tmp_path: Path) -> None:
    store = Store.open("memory://")
    payload = b"x" * (8 * 2**20)
    etag = store.put_bytes("f", payload, if_match=None, create=True)
    meta = StateDB(str(tmp_path / "m.sqlite"))
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
    meta = StateDB(str(tmp_path / "m.sqlite"))
    tree = Tree(meta, Defaults(0, 0, 0o644, 0o755), "t")
    node = tree.add(ROOT, "f", "file", mode=0o644, uid=0, gid=0, size=64 * 2**20, etag=etag)
    dl = Downloader(tree, AsyncStore(store), DataFiles(str(tmp_path / "data")), Journal(meta))
    ra = Readahead()
    ra.advance(0, 4096)
    trio.run(dl.read, node, 40 * 2**20 + 123, 4096, ra)
    assert node.cached_bytes() == MIN_WINDOW  # a seek: no more than the minimum window


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
                whole = node.full  # then the data file may answer
                reply = await dl.read(node, offset, 2**20, ra)
                if not whole:
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
    assert views and sum(views) > len(views) // 2  # most are views of fetched buffers
    assert max(held) <= MAX_WINDOW + SEQUENTIAL_SLACK + 2 * PIECE
    assert dl.held_bytes == 0  # the file is whole and closed: nothing stays in memory


async def stream_until_whole(dl: Downloader, node: Node, upto: int) -> Readahead:
    """Open ``node`` (its nursery is the caller's), read it sequentially up to
    ``upto`` in MiB reads, and wait until the readahead has made the file whole."""
    node.opens = 1
    ra = Readahead()
    for offset in range(0, upto, 2**20):
        await dl.read(node, offset, 2**20, ra)
    await until(lambda: node.full, 30)
    return ra


def test_a_fill_writes_held_pieces_the_file_lost(tmp_path: Path) -> None:
    payload, dl, node = memory_downloader(tmp_path, 20 * 2**20)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            dl.nursery = nursery
            await stream_until_whole(dl, node, 6 * 2**20)
            dl.held.release(node.ino, lambda a, b: True)  # the window's pieces
            # Eviction under a reader punches what lies behind it; the held
            # pieces of that span are still in memory, not in the file.
            node.full, node.ranges = False, [[8 * 2**20, len(payload)]]
            dl.data.punch(node.ino, 0, 8 * 2**20)
            dl.held.hold(node.ino, node.etag, 0, memoryview(payload[:2**20]))
            real = dl.store.sync.get_chunks
            starts: list[int] = []

            def counting(key: str, start: int, end: int, **kw: Any) -> list[memoryview]:
                starts.append(start)
                return real(key, start, end, **kw)

            dl.store.sync.get_chunks = counting  # type: ignore[method-assign]
            await dl.fill(node)
            assert starts and 0 not in starts  # the held piece was written, not fetched

    trio.run(main)
    assert node.full and node.ranges == [[0, len(payload)]]
    assert same(dl.data.read(node.ino, 0, len(payload)), payload)


def test_a_whole_file_still_answers_its_reader_from_memory_until_a_local_change(
        tmp_path: Path) -> None:
    payload, dl, node = memory_downloader(tmp_path, 40 * 2**20)
    late = 30 * 2**20

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            dl.nursery = nursery
            ra = await stream_until_whole(dl, node, 8 * 2**20)
            assert dl.held.holds(node.ino)  # the window's pieces stay for the reader
            # Bytes in the file that differ from the held ones show which answers.
            dl.data.write(node.ino, late, b"L" * 2**20)
            reply = await dl.read(node, late, 2**20, ra)
            assert isinstance(reply, memoryview) and same(bytes(reply),
                                                          payload[late:late + 2**20])
            dl.changed(node)  # a local write or truncate is about to happen
            assert not dl.held.holds(node.ino)
            assert bytes(await dl.read(node, late, 2**20, ra)) == b"L" * 2**20
            node.opens = 0
            dl.closed(node)

    trio.run(main)


def test_four_streams_keep_their_windows_in_memory_until_read(tmp_path: Path) -> None:
    # Four files streamed at once want more than HELD_MAX ahead of their readers at
    # the largest window; past it the oldest pieces (the next ones to be read)
    # would go, and be read back from the data file.
    size = 80 * 2**20
    payload, dl, first = memory_downloader(tmp_path, size)
    nodes = [first]
    for n in range(1, 4):
        etag = dl.store.sync.put_bytes(f"f{n}", payload, if_match=None, create=True)
        nodes.append(dl.tree.add(ROOT, f"f{n}", "file", mode=0o644, uid=0, gid=0,
                                 size=size, etag=etag))
    from_file: list[tuple[int, int]] = []
    held: list[int] = []

    async def stream(node: Node) -> None:
        ra, out = Readahead(), bytearray()
        for offset in range(0, size, 2**20):
            await trio.sleep(0.002)  # readers slower than the GETs: the windows fill up
            reply = await dl.read(node, offset, 2**20, ra)
            if offset >= 16 * 2**20 and not isinstance(reply, memoryview):
                from_file.append((node.ino, offset))
            held.append(dl.held_bytes)
            out += reply
        assert same(bytes(out), payload)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            dl.nursery = nursery
            for node in nodes:
                node.opens = 1
            async with trio.open_nursery() as readers:
                for node in nodes:
                    readers.start_soon(stream, node)
            for node in nodes:
                node.opens = 0
                dl.closed(node)

    trio.run(main)
    # Every reply past the first pieces was a held buffer, but for those of the
    # GETs started before the other files held any (the first file's window was
    # sized alone): at most the difference between the two windows.
    four = HELD_MAX // 4 - PIECE - SEQUENTIAL_SLACK
    assert len(from_file) * 2**20 <= MAX_WINDOW - four, from_file
    assert max(held) <= HELD_MAX
    assert dl._held_share(first) == HELD_MAX // 1 - PIECE - SEQUENTIAL_SLACK > MAX_WINDOW
