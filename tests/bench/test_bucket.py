"""The raw obstore anchor's operations and the durability waits, on real MinIO."""

from __future__ import annotations

import time

import pytest

from fixtures.minio import Bucket as FixtureBucket
from openfiles_bench.bucket import Bucket, DurabilityTimeout, MiB, chunks, pattern_block
from openfiles_bench.server import S3Site

pytestmark = pytest.mark.s3


@pytest.fixture
def bucket(s3_bucket: FixtureBucket) -> Bucket:
    server = s3_bucket.server
    site = S3Site(
        s3_bucket.endpoint,
        "us-east-1",
        s3_bucket.name,
        "run",
        server.access_key,
        server.secret_key,
    )
    return Bucket(site)


def test_pattern_pieces_add_up_to_the_size() -> None:
    block = pattern_block()
    assert len(block) == MiB and block == pattern_block()
    pieces = list(chunks(block, 2 * MiB + 10))
    assert [len(p) for p in pieces] == [MiB, MiB, 10]
    assert b"".join(pieces) == block * 2 + block[:10]


def test_objects_go_up_and_come_back(bucket: Bucket, s3_bucket: FixtureBucket) -> None:
    block = pattern_block()
    bucket.put("dir/big", chunks(block, 3 * MiB + 7))
    bucket.put("dir/sub/small", block[:100])
    assert s3_bucket.keys() == ["run/dir/big", "run/dir/sub/small"]
    assert bucket.read_all("dir/big") == 3 * MiB + 7
    assert bucket.read_range("dir/big", MiB + 5, 4096) == (block + block)[MiB + 5 : MiB + 4101]
    assert bucket.size("dir/big") == 3 * MiB + 7
    assert bucket.size("dir/none") is None
    assert bucket.list_dir("dir") == 2  # one object and one common prefix
    assert bucket.sizes_under("dir") == {"big": 3 * MiB + 7, "sub/small": 100}
    assert bucket.delete_under("") == 2
    assert s3_bucket.keys() == []


def test_waits_return_when_the_data_is_there(bucket: Bucket) -> None:
    bucket.put("f/a", b"1234")
    bucket.put("f/b", b"1234")
    before = time.monotonic()
    assert bucket.wait_object("f/a", 4, deadline=before + 30) >= before
    assert bucket.wait_files("f", ["a", "b"], 4, deadline=before + 30) >= before


def test_waits_give_up_at_the_deadline(bucket: Bucket) -> None:
    bucket.put("f/a", b"12")  # the wrong size does not count
    with pytest.raises(DurabilityTimeout, match="f/a"):
        bucket.wait_object("f/a", 4, deadline=time.monotonic() + 0.2)
    with pytest.raises(DurabilityTimeout, match="2 files"):
        bucket.wait_files("f", ["a", "b"], 4, deadline=time.monotonic() + 0.2)
