"""A cache directory at unstage (mounter/cachedir.py): discarded when it holds nothing but
copies of the bucket, kept, under the marker ``list`` reports, while its lost+found holds a
conflicted file's local version, which exists nowhere else; the next stage shows it again."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import obstore
import pytest

from fixtures.minio import Bucket
from fixtures.net import wait_for
from openfiles_contracts import jsonline

from ..conftest import Node, Volume, cache_dir, volume_on
from .test_recovery import kill_engine, listing

pytestmark = [pytest.mark.fuse, pytest.mark.root, pytest.mark.s3]

MINE = b"written on the node, raced by a plain S3 PUT"


def lostfound(vol: Volume) -> Path:
    return Path(vol.staging, ".openfiles-lost+found-"
                + hashlib.sha256(vol.volume_id.encode()).hexdigest()[:12])


def race(vol: Volume, bucket: Bucket, name: str) -> None:
    """A dirty file and a plain PUT of its key: its export conflicts (create-only)."""
    Path(vol.staging, "r.txt").write_bytes(MINE)  # exportDelay 1h: dirty until a flush
    obstore.put(bucket.store(), f"{name}/r.txt", b"the bucket's version")


def flush(node: Node) -> None:
    (path,) = (node.root / "state" / "records").glob("*.json")
    socket = json.loads(path.read_text())["control_socket"]
    assert jsonline.request(socket, {"op": "flush", "timeout": 30}, 40)["ok"]


def test_lost_and_found_keeps_the_cache_until_the_next_stage(node_env: Node,
                                                             s3_bucket: Bucket) -> None:
    plugin = node_env.start_plugin("node")
    vol = volume_on(node_env, plugin, s3_bucket, "kept", exportDelay="1h")
    vol.stage()
    race(vol, s3_bucket, "kept")
    vol.unstage()  # the unstage's flush meets the conflict: the local version -> lost+found
    assert not os.path.ismount(vol.staging)
    cache = cache_dir(node_env, vol.volume_id)
    assert (cache / "meta.sqlite").exists()
    (marker,) = listing(node_env)["stranded"]
    assert marker["volume_id"] == vol.volume_id and marker["cache_dir"] == str(cache)
    assert (marker["lostfound_files"], marker["lostfound_bytes"]) == (1, len(MINE))
    assert (marker["dirty_files"], marker["dirty_bytes"], marker["error"]) == (0, 0, None)
    assert "lost+found holds 1 files" in plugin.proc.log()
    # A new mounter still knows: the marker is durable.
    node_env.mounter.stop()
    node_env.start_mounter()
    assert listing(node_env)["stranded"] == [marker]
    vol.stage()  # the same cache dir: the file is back in lost+found
    (kept,) = lostfound(vol).iterdir()
    assert kept.read_bytes() == MINE
    assert os.getxattr(kept, "user.openfiles.original_path") == b"r.txt"
    assert Path(vol.staging, "r.txt").read_bytes() == b"the bucket's version"
    assert listing(node_env)["stranded"] == []
    kept.unlink()  # restored elsewhere, or not wanted: now the cache may go
    vol.unstage()
    assert listing(node_env)["stranded"] == []
    wait_for(lambda: not cache.exists(), timeout=10, what="the emptied cache to be discarded")


def test_a_dead_engines_lost_and_found_is_kept_too(node_env: Node, s3_bucket: Bucket) -> None:
    plugin = node_env.start_plugin("node")
    vol = volume_on(node_env, plugin, s3_bucket, "deadlf", exportDelay="1h")
    vol.stage()
    race(vol, s3_bucket, "deadlf")
    flush(node_env)  # the conflict happens now, while the engine lives
    kill_engine(node_env)
    vol.unstage_as_kubelet()  # flush-only: nothing dirty left, but lost+found is not empty
    (marker,) = listing(node_env)["stranded"]
    assert (marker["dirty_files"], marker["pending_exports"]) == (0, 0)
    assert (marker["lostfound_files"], marker["lostfound_bytes"]) == (1, len(MINE))
    vol.stage()
    (kept,) = lostfound(vol).iterdir()
    assert kept.read_bytes() == MINE
    vol.unstage()  # still there: kept again
    assert listing(node_env)["stranded"][0]["lostfound_files"] == 1
    assert cache_dir(node_env, vol.volume_id).exists()
