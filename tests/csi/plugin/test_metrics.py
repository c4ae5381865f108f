"""The node's Prometheus endpoint, scraped while a volume is used; numbers match the use."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from fixtures.minio import Bucket
from fixtures.net import free_port
from openfiles_contracts import jsonline
from openfiles_csi.plugin.metrics import STRANDED, sample_names

from ..conftest import Node, scrape, scrape_samples, volume_on

pytestmark = [pytest.mark.fuse, pytest.mark.root, pytest.mark.s3]

MIB = 1024 * 1024


def test_metrics_follow_writes_and_exports(node_env: Node, s3_bucket: Bucket) -> None:
    port = free_port()
    plugin = node_env.start_plugin("node", "--metrics-address", f"127.0.0.1:{port}")
    vol = volume_on(node_env, plugin, s3_bucket, "metrics", exportDelay="1h")
    vol.stage()
    with open(os.path.join(vol.staging, "one-mib.bin"), "wb") as f:
        f.write(b"\1" * MIB)
    time.sleep(1.1)
    before = scrape(port, vol.volume_id)
    assert before["openfiles_volume_up"] == 1
    assert before["openfiles_dirty_bytes"] == MIB
    assert before["openfiles_dirty_files"] == 1
    assert before["openfiles_pending_exports"] == 1
    assert 1 <= before["openfiles_export_lag_seconds"] < 60
    assert before["openfiles_export_errors_total"] == 0
    assert before["openfiles_conflicts_total"] == 0
    assert before["openfiles_fuse_request_duration_seconds_count"] > 0
    with open(os.path.join(vol.staging, "one-mib.bin"), "rb") as f:
        assert f.read() == b"\1" * MIB
    (record,) = (json.loads(p.read_text()) for p in (node_env.root / "state" / "records").iterdir())
    assert jsonline.request(record["control_socket"], {"op": "flush", "timeout": 30}, 40)["ok"]
    samples = [s for s in scrape_samples(port) if s.labels.get("volume") == vol.volume_id]
    assert {s.labels["node"] for s in samples} == {"node-1"}
    # Everything the collector declares for a live engine is there, and nothing else.
    assert {s.name for s in samples} == sample_names() - set(STRANDED)
    after = scrape(port, vol.volume_id)
    assert after["openfiles_dirty_bytes"] == after["openfiles_dirty_files"] == 0
    assert after["openfiles_pending_exports"] == 0
    assert after["openfiles_export_lag_seconds"] == 0
    # The export of the file was at least one more object store request.
    assert (after["openfiles_bucket_request_duration_seconds_count"]
            > before["openfiles_bucket_request_duration_seconds_count"])
    assert after["openfiles_cache_bytes"] >= 0
    # The file written here is read from the cache: hits, no misses.
    assert after["openfiles_cache_hit_bytes_total"] >= MIB
    assert after["openfiles_cache_miss_bytes_total"] == 0
    vol.unstage()
    # An unstaged volume has no series any more.
    assert scrape(port, vol.volume_id) == {}


def test_policy_reaches_the_engine(node_env: Node, s3_bucket: Bucket) -> None:
    policy_dir = node_env.root / "policies"
    policy_dir.mkdir()
    plugin = node_env.start_plugin(
        "node", "--policy-dir", str(policy_dir), "--policy-interval", "0.3"
    )
    vol = volume_on(node_env, plugin, s3_bucket, "policy")
    vol.stage()
    (record,) = (json.loads(p.read_text()) for p in (node_env.root / "state" / "records").iterdir())

    def effective() -> dict[str, float]:
        reply = jsonline.request(record["control_socket"], {"op": "status"}, 5)
        policy: dict[str, float] = reply["status"]["policy"]
        return policy

    for export_delay, ttl in ((7, 120), (9, 300)):
        (policy_dir / vol.volume_id).write_text(
            json.dumps({"cacheTTL": ttl, "exportDelay": export_delay, "policy": "test"})
        )
        deadline = time.monotonic() + 10
        while effective()["export_delay"] != export_delay and time.monotonic() < deadline:
            time.sleep(0.1)
        assert effective()["export_delay"] == export_delay
        assert effective()["cache_ttl"] == ttl
    vol.unstage()


def test_hung_engines_cost_one_timeout(node_env: Node, s3_bucket: Bucket) -> None:
    """Engines are asked in parallel: three hung ones cost a scrape one 2 s timeout, not
    three, so a node with many hung volumes stays within Prometheus' scrape timeout."""
    port = free_port()
    plugin = node_env.start_plugin("node", "--metrics-address", f"127.0.0.1:{port}")
    volumes = [volume_on(node_env, plugin, s3_bucket, f"hung{i}") for i in range(3)]
    for vol in volumes:
        vol.stage()
    records = (node_env.root / "state" / "records").iterdir()
    pids = [json.loads(p.read_text())["pid"] for p in records]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        down = scrape(port, volumes[0].volume_id)
        elapsed = time.monotonic() - started
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    assert down == {"openfiles_volume_up": 0}
    assert elapsed < 5, f"scrape took {elapsed:.1f}s"  # one after another: over 6 s
    for vol in volumes:
        vol.unstage()
