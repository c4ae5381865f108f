"""Whole-file fetch of randomly read files, for the Downloader (download.py).

A file read at random (:attr:`Readahead.random`) that is larger than
SMALL_FILE and fits in a quarter of the cache (the Fetcher's
``window_cap``) is fetched whole in the background, in WHOLE_PIECE GETs,
WHOLE_GETS at a time over all files, written straight into the data file
(not held). Meanwhile a miss of that file waits for the piece that has its
bytes instead of issuing a small GET of its own (docs/ENGINE.md, "Random
reads"). Larger files keep the Downloader's small-window fetches.

:class:`WholeFetch` claims its GETs from the same :class:`Fetcher` as the
Downloader's readahead (fetcher.py), in the same per-inode in-flight table,
so a sequential reader and a whole fetch never fetch the same bytes twice,
and what they bring counts in the same Stats. Only misses of random readers
come here; the sequential read path never does.
"""

from __future__ import annotations

import trio

from openfiles_engine.bucket.store import StoreError
from openfiles_engine.cache.byterange import missing
from openfiles_engine.read.fetcher import Fetcher, Flight
from openfiles_engine.read.piece import PIECE
from openfiles_engine.read.readahead import SMALL_FILE, Readahead
from openfiles_engine.state.inode import Node

WHOLE_GETS = 4
"""WHOLE_PIECE GETs in flight for whole-file fetches, over all files (so at most 64 MiB in
memory, and a PIECE for each miss that waits for one the fetch has not reached).

Measured on the dev VM, 2000 random reads of a 1 GiB file: alone, 8 GETs
looked faster than 4 (1143-1497 reads/s against 997-1219); in the full
benchmark sequence (after s3fs ran) 4 did better: 689-1176 reads/s in 6 runs
against 681-794 in 6 runs with 8."""
PAGE = 4096
WHOLE_PIECE = 16 * 2**20
"""The whole fetch's GETs. A miss that starts its own GET (one the fetch has not
reached) still takes a PIECE (8 MiB): it waits for that GET, and a smaller one
comes sooner. 2000 random 4 KiB reads of a cold 1 GiB file were 6-15 % faster
than with 8 MiB GETs, and 32 MiB were no faster than 8 (docs/ENGINE.md, "Random
reads")."""


class WholeFetch:
    """The whole-file fetches of one Downloader: which files, and their GETs."""

    def __init__(self, fetcher: Fetcher) -> None:
        self._fetcher = fetcher
        self.inodes: set[int] = set()
        """Inodes being fetched whole (see :meth:`_fetch`)."""
        self._gets = trio.Semaphore(WHOLE_GETS)

    def takes(self, node: Node, ra: Readahead, offset: int) -> bool:
        """Is this miss random access to a file the cache takes whole? Starts that fetch.

        A file read at random (see :class:`Readahead`) that fits in a
        quarter of the cache is fetched whole in the background, in WHOLE_PIECE
        GETs: each miss then waits for one piece, and soon there are no
        misses (docs/ENGINE.md, "Random reads"). Larger files keep the
        small-window fetches of every other miss.
        """
        f = self._fetcher
        if not ra.random or f.nursery is None:
            return False
        if not SMALL_FILE < node.size <= f.window_cap():
            return False
        if node.ino in self.inodes:
            return True
        if ra.whole:  # this handle's whole fetch ended (stopped or evicted): no second one
            return False
        ra.whole = True
        self.inodes.add(node.ino)
        f.nursery.start_soon(self._fetch, node, offset)
        return True

    async def demand(self, node: Node, offset: int, end: int) -> bytes | memoryview:
        """[offset, end) of a file being fetched whole: wait for the piece that has it,
        started now if the whole fetch has not reached it (one GET more than
        WHOLE_GETS). A GET of just the read's pages is the last resort.

        Those small GETs were how misses were answered before: on MinIO each
        costs about as much server CPU as a piece, and a thousand of them took
        that CPU from the whole fetch. Waiting for pieces instead, 2000 random
        reads of a 1 GiB file went from 1009-1266 to 1297-1492 reads/s
        (docs/ENGINE.md, "Random reads")."""
        f = self._fetcher
        for _ in range(3):
            data = f.assemble(node, offset, end)
            if data is not None:
                return data
            events = f.flights(node, offset, end)
            if not events:
                gap = self._gap(node, offset - offset % PIECE, PIECE)
                if gap is None:
                    continue
                flight = f.claim(node, *gap)
                assert f.nursery is not None
                f.nursery.start_soon(f.fetch, node, f.tree.path(node), flight, False)
                events = [flight.done]
            for event in events:
                await event.wait()
        return await self._peek(node, offset, end)

    async def _peek(self, node: Node, offset: int, end: int) -> bytes:
        """[offset, end) from a GET of its own pages, not cached (the whole fetch caches it)."""
        etag = node.etag
        start, stop = offset - offset % PAGE, min(node.size, end + (-end) % PAGE)
        f = self._fetcher
        chunks = await f.get(node, f.tree.path(node), start, stop, etag)
        data = chunks[0] if len(chunks) == 1 else memoryview(b"".join(chunks))
        if node.etag != etag or len(data) < end - start:
            raise StoreError(f"inode {node.ino} changed while it was read")
        return bytes(data[offset - start:end - start])

    async def _fetch(self, node: Node, first: int) -> None:
        """Fetch every missing piece of ``node``, from ``first`` on, WHOLE_GETS at a time.

        Pieces go straight into the data file (not held), so memory stays at
        WHOLE_GETS pieces. No new GET starts once no handle has the file open,
        the file changed, or a GET failed.
        """
        f = self._fetcher
        etag, generation = node.etag, f.data.generation(node.ino)
        base = first - first % WHOLE_PIECE
        failed: list[bool] = []

        def wanted() -> bool:
            return (node.opens > 0 and not node.full and node.etag == etag and not failed
                    and f.data.generation(node.ino) == generation)

        async def get(flight: Flight) -> None:
            try:
                await f.fetch(node, f.tree.path(node), flight, False)
                if missing(node.ranges, flight.start, flight.end) and wanted():
                    failed.append(True)
                f.save(node)
            finally:
                self._gets.release()

        try:
            async with trio.open_nursery() as nursery:
                for piece in [*range(base, node.size, WHOLE_PIECE), *range(0, base, WHOLE_PIECE)]:
                    await self._gets.acquire()
                    if not wanted():
                        self._gets.release()
                        return
                    gap = self._gap(node, piece)
                    if gap is None:
                        self._gets.release()
                        continue
                    nursery.start_soon(get, f.claim(node, *gap))
        finally:
            self.inodes.discard(node.ino)
            if node.etag == etag and f.data.generation(node.ino) == generation:
                f.complete(node)

    def _gap(self, node: Node, base: int, size: int = WHOLE_PIECE) -> tuple[int, int] | None:
        """The one GET that brings what the ``size`` bytes at ``base`` lack (even over
        a small hole), or None if they are all present or in flight."""
        gaps = missing(self._fetcher.busy(node), base, min(base + size, node.size))
        return (gaps[0][0], gaps[-1][1]) if gaps else None
