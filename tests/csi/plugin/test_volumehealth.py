"""VOLUME_CONDITION when exports fail, an unstage that refuses to drop dirty data, hung mounts."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from fixtures.minio import Bucket, MinioServer, new_bucket
from fixtures.net import free_port

from ..conftest import Node, scrape, volume_on

pytestmark = [pytest.mark.fuse, pytest.mark.root, pytest.mark.s3]


def test_failing_exports_and_unstage_keep_data(
    node_env: Node, make_minio: Callable[[], MinioServer]
) -> None:
    server = make_minio()
    bucket = new_bucket(server)
    port = free_port()
    plugin = node_env.start_plugin(
        "node", "--flush-timeout", "5", "--metrics-address", f"127.0.0.1:{port}"
    )
    vol = volume_on(node_env, plugin, bucket, "outage", exportDelay="3s", metadataTTL="1h")
    vol.stage()
    Path(vol.staging, "dirty.txt").write_text("not exported yet")
    server.stop()  # before the export delay runs out
    deadline = time.monotonic() + 90
    condition = vol.stats(vol.staging).volume_condition
    while not condition.abnormal and time.monotonic() < deadline:
        time.sleep(0.5)
        condition = vol.stats(vol.staging).volume_condition
    assert condition.abnormal, condition.message
    assert "exports are failing" in condition.message
    # The metrics say the same: one file of 16 dirty bytes pending, failed exports counted.
    metrics = scrape(port, vol.volume_id)
    assert metrics["openfiles_volume_up"] == 1
    assert metrics["openfiles_dirty_bytes"] == len("not exported yet")
    assert metrics["openfiles_pending_exports"] == 1
    assert metrics["openfiles_export_errors_total"] >= 1
    # Unstage must not unmount while data cannot be flushed: it says so and keeps it.
    with pytest.raises(grpc.RpcError) as info:
        vol.unstage()
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "flush failed" in (info.value.details() or "")
    assert os.path.ismount(vol.staging)
    assert Path(vol.staging, "dirty.txt").read_text() == "not exported yet"
    # Once the bucket is back, the retried unstage exports and unmounts.
    server.start()
    deadline = time.monotonic() + 90
    while True:
        try:
            vol.unstage()
            break
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.FAILED_PRECONDITION or time.monotonic() > deadline:
                raise
            time.sleep(1)
    assert not os.path.ismount(vol.staging)
    assert "outage/dirty.txt" in bucket.keys()


def test_stats_do_not_block_on_a_hung_mount(node_env: Node, s3_bucket: Bucket) -> None:
    port = free_port()
    plugin = node_env.start_plugin("node", "--metrics-address", f"127.0.0.1:{port}")
    vol = volume_on(node_env, plugin, s3_bucket, "hung")
    vol.stage()
    target = node_env.kubelet / "pods" / "hung" / "mount"
    target.parent.mkdir(parents=True)
    vol.publish(str(target))
    (record,) = (json.loads(p.read_text()) for p in (node_env.root / "state" / "records").iterdir())
    pid = record["pid"]
    os.kill(pid, signal.SIGSTOP)  # the FUSE server stops answering; statvfs would block
    try:
        for _ in range(2):  # the second call finds the first probe still stuck
            started = time.monotonic()
            condition = vol.stats(vol.staging).volume_condition
            assert time.monotonic() - started < 8
            assert condition.abnormal and "not responding" in condition.message
        # A scrape still returns, and says the volume is down (no stale numbers).
        started = time.monotonic()
        assert scrape(port, vol.volume_id) == {"openfiles_volume_up": 0}
        assert time.monotonic() - started < 8
        # A pod on a hung volume can still be deleted: unpublish never enters the mount
        # (umount(8) resolving the path would stat it and hang).
        started = time.monotonic()
        vol.unpublish(str(target))
        assert time.monotonic() - started < 8
        assert not target.exists()
    finally:
        os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + 30
    while vol.stats(vol.staging).volume_condition.abnormal and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not vol.stats(vol.staging).volume_condition.abnormal
    vol.unstage()
