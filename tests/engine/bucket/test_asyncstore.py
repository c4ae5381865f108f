"""AsyncStore: each Store call awaited in a trio worker thread, under one limiter."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import trio

from openfiles_engine.bucket.asyncstore import AsyncStore
from openfiles_engine.bucket.store import Changed, Conflict, ObjectNotFound, Store


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    url = "memory://" if request.param == "memory" else f"file://{tmp_path}/bucket"
    return Store.open(url)


def test_async_methods_are_the_store_calls_in_worker_threads(store: Store,
                                                             tmp_path: Path) -> None:
    astore = AsyncStore(store, concurrency=2)
    src = tmp_path / "src"
    src.write_bytes(b"file bytes")

    async def main() -> None:
        etag = await astore.put_bytes("d/a", b"v1", if_match=None, create=True)
        with pytest.raises(Conflict):  # the store's exceptions come through unchanged
            await astore.put_bytes("d/a", b"v2", if_match=None, create=True)
        await astore.put_bytes("d/a", b"v2", if_match=etag, create=False)
        file_etag = await astore.put_file("d/sub/b", str(src), if_match=None, create=True)
        with pytest.raises(Conflict):
            await astore.put_file("d/sub/b", str(src), if_match='"stale"', create=False)
        objects, prefixes = await astore.list_dir("d/")
        assert [o.key for o in objects] == ["d/a"] and prefixes == ["d/sub"]
        assert sorted(o.key for o in await astore.list_all("d/")) == ["d/a", "d/sub/b"]
        assert (await astore.head("d/sub/b")).size == len(b"file bytes")
        assert await astore.get("d/a") == b"v2"
        chunks = await astore.get_chunks("d/sub/b", 5, 10, if_match=file_etag, chunk=2)
        assert b"".join(chunks) == b"bytes"
        await astore.copy("d/a", "c")
        await astore.delete("d/a")
        await astore.delete("d/a")  # idempotent
        with pytest.raises(ObjectNotFound):
            await astore.head("d/a")
        await astore.put_bytes("d/sub/b", b"other", if_match=None, create=False)
        with pytest.raises(Changed):
            await astore.get_chunks("d/sub/b", 0, 5, if_match=file_etag)
        # Several calls in one thread, under one slot of the limiter.
        main_thread, borrowed, got = await astore.in_thread(
            lambda s: (threading.current_thread() is threading.main_thread(),
                       astore.limiter.borrowed_tokens, s.get("c")))
        assert not main_thread and borrowed == 1 and got == b"v2"
        assert astore.limiter.borrowed_tokens == 0

    trio.run(main)
    assert astore.latency.count == 17  # every call, failed ones included


def test_async_delete_if_and_copy_if(store: Store) -> None:
    astore = AsyncStore(store)

    async def main() -> None:
        etag = await astore.put_bytes("a", b"x", if_match=None, create=True)
        assert etag is not None
        assert await astore.copy_if("a", "b", if_match=etag) is not None
        with pytest.raises(Conflict):
            await astore.delete_if("a", '"stale"')
        await astore.delete_if("a", etag)

    trio.run(main)
    assert [o.key for o in store.list_all("")] == ["b"]

