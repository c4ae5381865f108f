"""The trio face of the bucket: :class:`Store` calls in worker threads.

Every method is the :class:`~openfiles_engine.bucket.store.Store` method of the
same name, awaited, and raises the same errors. Calls run under one
CapacityLimiter (obstore's sync API releases the GIL), so at most
``concurrency`` requests are in flight per mount.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import trio

from openfiles_engine.bucket.store import CHUNK, ObjectInfo, Store
from openfiles_engine.metrics import Histogram

T = TypeVar("T")


class AsyncStore:
    """Trio face of a Store: each call runs in a worker thread under ``limiter``.

    The methods are those of :class:`Store`, awaited; each observes its time in
    ``latency``. Cancelling one abandons its thread (``abandon_on_cancel``):
    shutdown never waits for a call stuck on a dead network, and an abandoned
    export stays dirty and is redone at the next mount.
    """

    def __init__(self, store: Store, concurrency: int = 16) -> None:
        self.sync = store
        """The synchronous store (its ``url``, ``kind`` and ``conditional``)."""
        self.limiter = trio.CapacityLimiter(concurrency)
        self.latency = Histogram()

    async def _run(self, fn: Callable[[], T]) -> T:
        start = time.monotonic()
        try:
            return await trio.to_thread.run_sync(fn, limiter=self.limiter,
                                                 abandon_on_cancel=True)
        finally:
            self.latency.observe(time.monotonic() - start)

    async def in_thread(self, fn: Callable[[Store], T]) -> T:
        """``fn(store)`` in one worker thread: several calls that belong together
        (one journal entry's copies and deletes) take one thread and one limiter slot."""
        return await self._run(lambda: fn(self.sync))

    async def list_dir(self, prefix: str) -> tuple[list[ObjectInfo], list[str]]:
        """:meth:`Store.list_dir`."""
        return await self._run(lambda: self.sync.list_dir(prefix))

    async def list_all(self, prefix: str) -> list[ObjectInfo]:
        """:meth:`Store.list_all`."""
        return await self._run(lambda: self.sync.list_all(prefix))

    async def any_under(self, prefix: str) -> bool:
        """:meth:`Store.any_under`."""
        return await self._run(lambda: self.sync.any_under(prefix))

    async def head(self, key: str) -> ObjectInfo:
        """:meth:`Store.head`."""
        return await self._run(lambda: self.sync.head(key))

    async def get_chunks(self, key: str, start: int, end: int, *, if_match: str | None = None,
                         chunk: int = CHUNK,
                         sink: Callable[[int, memoryview], object] | None = None,
                         ) -> list[memoryview]:
        """:meth:`Store.get_chunks`; ``sink`` runs in the worker thread."""
        return await self._run(lambda: self.sync.get_chunks(
            key, start, end, if_match=if_match, chunk=chunk, sink=sink))

    async def get(self, key: str) -> bytes:
        """:meth:`Store.get`."""
        return await self._run(lambda: self.sync.get(key))

    async def put_bytes(self, key: str, data: bytes, *, if_match: str | None,
                        create: bool) -> str | None:
        """:meth:`Store.put_bytes`."""
        return await self._run(
            lambda: self.sync.put_bytes(key, data, if_match=if_match, create=create))

    async def put_file(self, key: str, path: str, *, if_match: str | None,
                       create: bool) -> str | None:
        """:meth:`Store.put_file`."""
        return await self._run(
            lambda: self.sync.put_file(key, path, if_match=if_match, create=create))

    async def delete(self, key: str) -> None:
        """:meth:`Store.delete`."""
        await self._run(lambda: self.sync.delete(key))

    async def copy(self, src: str, dst: str) -> None:
        """:meth:`Store.copy`."""
        await self._run(lambda: self.sync.copy(src, dst))

    async def delete_if(self, key: str, etag: str) -> None:
        """:meth:`Store.delete_if`."""
        await self._run(lambda: self.sync.delete_if(key, etag))

    async def copy_if(self, src: str, dst: str, *, if_match: str | None) -> str | None:
        """:meth:`Store.copy_if`."""
        return await self._run(lambda: self.sync.copy_if(src, dst, if_match=if_match))
