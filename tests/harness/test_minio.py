"""The MinIO fixture is a real S3 server: obstore talks to it like to any bucket."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import obstore
import pytest
from obstore.exceptions import AlreadyExistsError, PreconditionError

from fixtures.minio import Bucket, MinioServer

pytestmark = pytest.mark.s3


def test_put_get_list_range(s3_bucket: Bucket) -> None:
    store = s3_bucket.store()
    data = bytes(range(256)) * 4096  # 1 MiB, every byte value
    obstore.put(store, "dir/a.bin", data)
    obstore.put(store, "dir/b.txt", b"hello")
    assert bytes(obstore.get(store, "dir/a.bin").bytes()) == data
    assert bytes(obstore.get_range(store, "dir/a.bin", start=1000, end=1010)) == data[1000:1010]
    assert s3_bucket.keys() == ["dir/a.bin", "dir/b.txt"]
    listed = obstore.list_with_delimiter(store, "dir")
    assert sorted(o["path"] for o in listed["objects"]) == ["dir/a.bin", "dir/b.txt"]


def test_conditional_put(s3_bucket: Bucket) -> None:
    store = s3_bucket.store()
    first = obstore.put(store, "k", b"v1", mode="create")
    with pytest.raises(AlreadyExistsError):
        obstore.put(store, "k", b"other", mode="create")
    etag = first["e_tag"]
    assert etag
    second = obstore.put(store, "k", b"v2", mode={"e_tag": etag})
    with pytest.raises(PreconditionError):
        obstore.put(store, "k", b"stale", mode={"e_tag": etag})
    assert second["e_tag"] != etag
    assert bytes(obstore.get(store, "k").bytes()) == b"v2"


def test_buckets_are_fresh_and_separate(minio: MinioServer, s3_bucket: Bucket) -> None:
    from fixtures.minio import new_bucket

    other = new_bucket(minio)
    obstore.put(s3_bucket.store(), "only-here", b"x")
    assert other.name != s3_bucket.name
    assert other.keys() == []
    assert s3_bucket.keys() == ["only-here"]


def test_private_server_restarts_with_its_data(make_minio: Callable[[], MinioServer]) -> None:
    from fixtures.minio import new_bucket

    server = make_minio()
    bucket = new_bucket(server)
    obstore.put(bucket.store(), "persist", b"1")
    server.stop()
    no_retry = {"max_retries": 0, "retry_timeout": timedelta(seconds=1)}
    impatient = bucket.store(retry_config=no_retry)
    with pytest.raises(Exception, match=r"(?i)connect|refused|error"):
        obstore.get(impatient, "persist")
    server.start()
    assert bytes(obstore.get(bucket.store(), "persist").bytes()) == b"1"
