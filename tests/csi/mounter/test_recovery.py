"""A dead engine's dirty files at unstage: exported by a flush-only engine, or, when that
cannot be done (bucket down, no credentials after a mounter restart), kept in the node's
cache under a durable marker that ``list`` reports, and exported by the next stage."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import obstore
import pytest

from fixtures.azurite import Container
from fixtures.minio import Bucket, MinioServer, new_bucket
from fixtures.net import free_port, wait_for
from fixtures.server import ServerBucket
from openfiles_contracts import jsonline

from ..conftest import Node, Volume, cache_dir, process_wait_gone, scrape, volume_on

pytestmark = [pytest.mark.fuse, pytest.mark.root, pytest.mark.s3]

DATA = b"closed, never exported: the engine died first"


def listing(node: Node) -> dict[str, Any]:
    reply = jsonline.request(node.mounter_socket, {"op": "list"}, 10)
    assert reply["ok"], reply
    return reply


def kill_engine(node: Node) -> None:
    (path,) = (node.root / "state" / "records").glob("*.json")
    pid = int(json.loads(path.read_text())["pid"])
    os.kill(pid, signal.SIGKILL)
    process_wait_gone(pid)


def write_and_kill(node: Node, vol: Volume) -> None:
    vol.stage()
    Path(vol.staging, "stranded.txt").write_bytes(DATA)  # exportDelay 1h: cache only
    kill_engine(node)


def exported(bucket: ServerBucket, key: str) -> bool:
    return key in bucket.keys()


def test_dead_engine_is_exported_without_a_mount(node_env: Node, s3_bucket: Bucket) -> None:
    plugin = node_env.start_plugin("node")
    vol = volume_on(node_env, plugin, s3_bucket, "recovered", exportDelay="1h")
    write_and_kill(node_env, vol)
    vol.unstage()
    assert s3_bucket.keys("recovered/") == ["recovered/stranded.txt"]
    assert listing(node_env) == {"ok": True, "mounts": [], "stranded": []}
    wait_for(lambda: not cache_dir(node_env, vol.volume_id).exists(), timeout=10,
             what="the exported cache to be discarded")
    assert not os.path.ismount(vol.staging)


def test_bucket_down_strands_the_data_until_the_next_stage(
    node_env: Node, make_minio: Callable[[], MinioServer]
) -> None:
    server = make_minio()
    bucket = new_bucket(server)
    port = free_port()
    plugin = node_env.start_plugin("node", "--flush-timeout", "3",
                                   "--metrics-address", f"127.0.0.1:{port}")
    vol = volume_on(node_env, plugin, bucket, "outage", exportDelay="1h")
    write_and_kill(node_env, vol)
    server.stop()
    vol.unstage()  # finishes: nothing could export the data, and saying so is all it can do
    assert not os.path.ismount(vol.staging)
    (marker,) = listing(node_env)["stranded"]
    assert marker["volume_id"] == vol.volume_id
    assert (marker["dirty_files"], marker["dirty_bytes"]) == (1, len(DATA))
    assert marker["error"] and marker["since"] <= time.time()
    assert bucket.server.secret_key not in json.dumps(marker)
    assert (cache_dir(node_env, vol.volume_id) / "meta.sqlite").exists()
    assert "stay in this node's cache" in plugin.proc.log()
    assert scrape(port, vol.volume_id) == {"openfiles_stranded_dirty_bytes": len(DATA),
                                           "openfiles_stranded_dirty_files": 1}
    # The marker is durable: a new mounter still reports it.
    node_env.mounter.stop()
    node_env.start_mounter()
    assert listing(node_env)["stranded"] == [marker]
    server.start()
    assert not exported(bucket, "outage/stranded.txt")
    vol.stage()  # the engine now serving the cache exports at once, despite exportDelay 1h
    assert listing(node_env)["stranded"] == []
    assert "openfiles_stranded_dirty_bytes" not in scrape(port, vol.volume_id)
    wait_for(lambda: exported(bucket, "outage/stranded.txt"), timeout=20,
             what="the stranded file to reach the bucket")
    assert bytes(obstore.get(bucket.store(), "outage/stranded.txt").bytes()) == DATA
    vol.unstage()
    wait_for(lambda: not cache_dir(node_env, vol.volume_id).exists(), timeout=10,
             what="the exported cache to be discarded")


def test_no_credentials_after_a_mounter_restart(node_env: Node, s3_bucket: Bucket) -> None:
    restart_without_credentials(node_env, s3_bucket)


@pytest.mark.azure
def test_no_credentials_after_a_mounter_restart_on_azure(
    node_env: Node, az_container: Container
) -> None:
    """The account's name comes with the volume context (``--account``), not the Secret:
    the flush-only engine of a restarted mounter opens the container and counts what stays
    (before, it could not even open the store, and nothing said how much was left)."""
    restart_without_credentials(node_env, az_container)


def restart_without_credentials(node_env: Node, bucket: ServerBucket) -> None:
    plugin = node_env.start_plugin("node")
    vol = volume_on(node_env, plugin, bucket, "forgotten", exportDelay="1h")
    write_and_kill(node_env, vol)
    node_env.mounter.kill9()  # the credentials were in its memory only
    node_env.start_mounter()
    vol.unstage()
    (marker,) = listing(node_env)["stranded"]
    assert (marker["dirty_files"], marker["dirty_bytes"]) == (1, len(DATA))
    assert "restarted" in marker["error"]
    assert not exported(bucket, "forgotten/stranded.txt")  # nothing was sent
    vol.stage()
    wait_for(lambda: exported(bucket, "forgotten/stranded.txt"), timeout=20,
             what="the stranded file to reach the bucket")
    assert listing(node_env)["stranded"] == []
    vol.unstage()
