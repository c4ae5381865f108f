"""Restarts: the node server, an engine, and the mounter die with SIGKILL mid-use.

* node server killed while a process writes through a published volume: the writes go on,
  and a new node server unpublishes and unstages cleanly, with every line in the bucket;
* one engine killed: VOLUME_CONDITION turns abnormal, data acknowledged by fsync is in the
  bucket, the stale mounts are cleaned by unpublish/unstage, and a new stage works;
* mounter killed: its engines keep serving, and a new mounter adopts them from its records.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import obstore
import pytest

from fixtures.minio import Bucket
from fixtures.net import wait_for

from ..conftest import Node, Volume, cache_dir, process_wait_gone, volume_on

pytestmark = [pytest.mark.fuse, pytest.mark.root, pytest.mark.s3]

# Appends numbered lines through the mount for ``seconds`` and prints, as JSON, the wall
# time at which each write(2) returned: the test checks that writes kept completing
# after the node server died.
WRITER = """
import json, os, sys, time
path, seconds = sys.argv[1], float(sys.argv[2])
done = []
deadline = time.monotonic() + seconds
with open(path, "a") as f:
    while time.monotonic() < deadline:
        f.write(f"line {len(done)}\\n")
        f.flush()
        done.append(time.time())
        time.sleep(0.01)
    os.fsync(f.fileno())
print(json.dumps(done))
"""


def publish_new(node: Node, vol: Volume, pod: str) -> str:
    target = node.kubelet / "pods" / pod / "mount"
    target.parent.mkdir(parents=True)
    vol.publish(str(target))
    return str(target)


def engine_record(node: Node) -> dict[str, object]:
    (path,) = (node.root / "state" / "records").glob("*.json")
    record: dict[str, object] = json.loads(path.read_text())
    return record


def read_object(bucket: Bucket, key: str) -> bytes:
    return bytes(obstore.get(bucket.store(), key).bytes())


def test_node_server_killed_while_writing(node_env: Node, s3_bucket: Bucket) -> None:
    plugin = node_env.start_plugin("node")
    vol = volume_on(node_env, plugin, s3_bucket, "nodekill")
    vol.stage()
    target = publish_new(node_env, vol, "writer")
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, os.path.join(target, "log.txt"), "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    time.sleep(1.0)
    killed_at = time.time()
    plugin.proc.kill9()
    out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    done = json.loads(out)
    lines = len(done)
    assert sum(t > killed_at + 0.5 for t in done) >= 10, "writes stopped with the node server"
    # A new node server, knowing nothing, serves the volumes of its predecessor.
    successor = node_env.start_plugin("node")
    vol.plugin = successor
    assert not vol.stats(target).volume_condition.abnormal
    vol.unpublish(target)
    assert not os.path.exists(target)
    vol.unstage()
    data = read_object(s3_bucket, "nodekill/log.txt").decode()
    assert data.splitlines() == [f"line {i}" for i in range(lines)]


def test_engine_killed(node_env: Node, s3_bucket: Bucket) -> None:
    plugin = node_env.start_plugin("node")
    vol = volume_on(node_env, plugin, s3_bucket, "enginekill", exportDelay="1h")
    vol.stage()
    target = publish_new(node_env, vol, "p1")
    with open(os.path.join(target, "acked.txt"), "w") as f:
        f.write("acknowledged")
        f.flush()
        os.fsync(f.fileno())  # the engine exports on fsync, before returning
    with open(os.path.join(target, "closed.txt"), "w") as f:
        f.write("closed, not yet exported")  # exportDelay 1h: only in the node's cache
    record = engine_record(node_env)
    pid = int(str(record["pid"]))
    os.kill(pid, signal.SIGKILL)
    process_wait_gone(pid)
    deadline = time.monotonic() + 15
    condition = vol.stats(target).volume_condition
    while not condition.abnormal and time.monotonic() < deadline:
        time.sleep(0.2)
        condition = vol.stats(target).volume_condition
    assert condition.abnormal
    assert "not running" in condition.message
    assert read_object(s3_bucket, "enginekill/acked.txt") == b"acknowledged"
    with pytest.raises(FileNotFoundError):
        read_object(s3_bucket, "enginekill/closed.txt")
    # Unstage starts an engine on the dead one's cache and flushes it: the crash
    # stranded nothing on this node, and the cache is gone.
    vol.unstage()
    assert not os.path.ismount(vol.staging)
    assert read_object(s3_bucket, "enginekill/closed.txt") == b"closed, not yet exported"
    wait_for(lambda: not cache_dir(node_env, vol.volume_id).exists(), timeout=10,
             what="the flushed cache to be discarded")
    vol.stage()
    # The pod's bind of the dead engine is still stale, and reported so.
    condition = vol.stats(target).volume_condition
    assert condition.abnormal and "stale" in condition.message
    vol.unpublish(target)
    target2 = publish_new(node_env, vol, "p2")
    assert Path(target2, "acked.txt").read_text() == "acknowledged"
    assert Path(target2, "closed.txt").read_text() == "closed, not yet exported"
    assert not vol.stats(target2).volume_condition.abnormal
    vol.unpublish(target2)
    vol.unstage()


def test_mounter_restart_adopts_engines(node_env: Node, s3_bucket: Bucket) -> None:
    plugin = node_env.start_plugin("node")
    vol = volume_on(node_env, plugin, s3_bucket, "mounterkill", exportDelay="1h")
    vol.stage()
    target = publish_new(node_env, vol, "p")
    pid = int(str(engine_record(node_env)["pid"]))
    node_env.mounter.kill9()
    Path(target, "while-away.txt").write_text("written with no mounter running")
    node_env.start_mounter()
    record = engine_record(node_env)
    assert record["pid"] == pid and record["state"] == "running"
    assert not vol.stats(target).volume_condition.abnormal
    vol.unpublish(target)
    vol.unstage()  # flushes through the adopted engine's control socket, then stops it
    process_wait_gone(pid)
    assert not Path(f"/proc/{pid}").exists()
    assert read_object(s3_bucket, "mounterkill/while-away.txt") == (
        b"written with no mounter running"
    )
