"""The benchmark's own MinIO, its bucket requests, and credential hygiene."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from fixtures.minio import Bucket as FixtureBucket
from fixtures.minio import MinioServer
from fixtures.prereq import tool
from openfiles_bench.bucket import Bucket
from openfiles_bench.server import (
    S3Site,
    ServerError,
    create_bucket,
    delete_markers,
    start_minio,
)


def site_of(bucket: FixtureBucket, prefix: str = "p", secret: str | None = None) -> S3Site:
    server = bucket.server
    return S3Site(
        bucket.endpoint,
        "us-east-1",
        bucket.name,
        prefix,
        server.access_key,
        secret or server.secret_key,
    )


def test_the_secret_stays_out_of_repr_and_redacted_text() -> None:
    site = S3Site("http://127.0.0.1:1", "us-east-1", "b", "p", "AKID123", "very-secret")
    assert "very-secret" not in repr(site) and "AKID123" not in repr(site)
    assert site.redact("AKID123:very-secret at x") == "***:*** at x"
    assert site.key("a/b") == "p/a/b"


@pytest.mark.s3
def test_private_minio_runs_with_a_bucket_and_leaves_nothing(tmp_path: Path) -> None:
    with start_minio(tool("minio"), "bench-bucket", "pre", tmp_path) as site:
        assert site.endpoint.startswith("http://127.0.0.1:")
        bucket = Bucket(site)
        bucket.put("x", b"hello")
        assert bucket.read_all("x") == 5
        assert create_bucket(site) is True  # already ours: fine
        data_dirs = [p for p in tmp_path.iterdir() if p.name.startswith("minio-")]
        assert len(data_dirs) == 1
    assert not data_dirs[0].exists()
    assert site.secret_key not in (tmp_path / "minio.log").read_text()


def test_a_missing_minio_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ServerError, match="minio binary not found"):
        with start_minio(tmp_path / "nope", "b", "p", tmp_path):
            pass


@pytest.mark.s3
def test_a_refused_request_does_not_echo_the_secret(s3_bucket: FixtureBucket) -> None:
    wrong = site_of(s3_bucket, secret="wrong-secret-abc123")
    with pytest.raises(ServerError, match="HTTP 403 SignatureDoesNotMatch") as refused:
        create_bucket(wrong)
    assert "wrong-secret-abc123" not in str(refused.value)


@pytest.mark.s3
def test_directory_markers_are_deleted(s3_bucket: FixtureBucket, minio: MinioServer) -> None:
    site = site_of(s3_bucket)
    for key in ("p/d/", "p/d/e/"):
        minio.admin().put_object(s3_bucket.name, key, io.BytesIO(b""), 0)
    Bucket(site).put("d/keep", b"1")
    assert s3_bucket.keys() == ["p/d", "p/d/e", "p/d/keep"]
    delete_markers(site, ["d", "d/e/", "never-made"])
    assert s3_bucket.keys() == ["p/d/keep"]
