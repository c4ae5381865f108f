"""Export when the bucket goes away: writes keep working, exports retry and resume."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from fixtures.minio import MinioServer, new_bucket

from .conftest import Backend, MountFactory, wait_for

pytestmark = [pytest.mark.fuse, pytest.mark.s3, pytest.mark.timeout(240)]


def test_minio_stopped_mid_export_then_restarted(
        mounter: MountFactory, make_minio: Callable[[], MinioServer]) -> None:
    server = make_minio()
    bucket = new_bucket(server)
    backend = Backend("s3", bucket.url, bucket.env, ["--endpoint", bucket.endpoint],
                      bucket=bucket)
    backend.write("cached.txt", b"cached before the outage")
    m = mounter(backend, "--export-delay", "0.5")
    assert (m.path / "cached.txt").read_bytes() == b"cached before the outage"
    server.stop()
    # Writes and cached reads keep working while the bucket is gone.
    for i in range(5):
        (m.path / f"during-{i}.txt").write_bytes(f"written during outage {i}".encode())
    assert (m.path / "cached.txt").read_bytes() == b"cached before the outage"
    wait_for(lambda: m.status()["last_export_error"], timeout=60, what="an export error")
    st = m.status()
    assert st["dirty_files"] == 5 and st["export_errors"] > 0
    assert bucket.server.secret_key not in str(st)
    flush = m.flush(timeout=20)
    assert not flush["ok"]
    server.start()
    # No flush: the export loop's retry finds the bucket again by itself.
    wait_for(lambda: m.status()["dirty_files"] == 0, timeout=120, what="exports to resume")
    for i in range(5):
        assert backend.read(f"during-{i}.txt") == f"written during outage {i}".encode()
    assert m.status()["last_export_error"] is None
    assert m.status()["conflicts"] == 0


def test_unmount_with_bucket_down_keeps_dirty_data(
        mounter: MountFactory, make_minio: Callable[[], MinioServer]) -> None:
    server = make_minio()
    bucket = new_bucket(server)
    backend = Backend("s3", bucket.url, bucket.env, ["--endpoint", bucket.endpoint],
                      bucket=bucket)
    m = mounter(backend, "--export-delay", "3600", "--unmount-timeout", "5")
    (m.path / "pending.txt").write_bytes(b"not yet in the bucket")
    server.stop()
    started = time.monotonic()
    assert m.stop() == 1  # export failed: non-zero, but bounded by the timeout
    assert time.monotonic() - started < 60
    server.start()
    again = mounter(backend, mountpoint=m.path, cache=m.cache)
    assert again.flush()["ok"]
    assert backend.read("pending.txt") == b"not yet in the bucket"
