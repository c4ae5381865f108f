"""The mounter process on its own: protocol errors, records of dead engines at start-up,
and stopping the engines on exit. One engine process on its own: ``test_engine``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures.minio import Bucket
from openfiles_contracts import jsonline, procstat
from openfiles_csi.mounter.record import MountRecord, RecordStore

from ..conftest import Node, volume_on


def raw(node: Node, line: bytes) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(node.mounter_socket)
        s.sendall(line)
        reply: dict[str, object] = json.loads(s.makefile("rb").readline())
        return reply


def test_protocol_errors(node_env: Node) -> None:
    assert raw(node_env, b"not json\n")["code"] == "invalid"
    assert raw(node_env, b"[1, 2]\n")["code"] == "invalid"
    call = lambda msg: jsonline.request(node_env.mounter_socket, msg, 10)  # noqa: E731
    assert call({"op": "format-disk"})["code"] == "invalid"
    mount = {"op": "mount", "volume_id": "v", "source": "memory://",
             "mountpoint": str(node_env.kubelet / "m")}  # fmt: skip
    assert call({**mount, "mountpoint": "relative"})["code"] == "invalid"
    reply = call({**mount, "args": ["--control-socket", "/tmp/elsewhere.sock"]})
    assert reply["code"] == "invalid" and "--control-socket" in str(reply["error"])
    assert call({**mount, "args": "--uid 0"})["code"] == "invalid"
    assert call({**mount, "env": {"AWS_ACCESS_KEY_ID": 1}})["code"] == "invalid"
    assert call({"op": "unmount", "mountpoint": "/never/mounted"}) == {
        "ok": True, "flushed": False, "found": False}  # fmt: skip
    assert oct(os.stat(node_env.mounter_socket).st_mode & 0o777) == "0o600"


def finished_pid() -> tuple[int, int]:
    """The pid and start time of a process that has exited (so it is surely dead)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    ticks = procstat.start_ticks(proc.pid)
    assert ticks is not None
    proc.wait()
    return proc.pid, ticks


@pytest.mark.root
def test_dead_engines_found_at_start(node_env: Node) -> None:
    node_env.mounter.stop()
    store = RecordStore(str(node_env.root / "state"))
    gone = str(node_env.kubelet / "gone")
    stale = str(node_env.kubelet / "stale")
    os.makedirs(stale)
    # A real mount standing in for the stale FUSE mount a SIGKILLed engine leaves behind.
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", stale], check=True)
    pid, ticks = finished_pid()
    for mountpoint in (gone, stale):
        store.save(MountRecord(
            volume_id=os.path.basename(mountpoint), mountpoint=mountpoint, source="memory://",
            args=[], cache_dir=str(node_env.root / "c"), control_socket="/nonexistent.sock",
            log_path="/dev/null", pid=pid, start_ticks=ticks, state="running"))  # fmt: skip
    # A flushed cache whose deletion a restart interrupted.
    discarded = node_env.root / "state" / "cache" / "0123abcd.discarded-1"
    (discarded / "blocks").mkdir(parents=True)
    (discarded / "blocks" / "b1").write_bytes(b"x" * 4096)
    node_env.start_mounter()
    mounts = jsonline.request(node_env.mounter_socket, {"op": "list"}, 10)["mounts"]
    # Both kept as dead (so the node can report them), and the stale mount is removed.
    states = sorted((m["mountpoint"], m["state"], m["alive"], m["mounted"]) for m in mounts)
    assert states == [(gone, "dead", False, False), (stale, "dead", False, False)]
    assert not os.path.ismount(stale)
    assert sorted(r.state for r in store.load()) == ["dead", "dead"]
    # Unmount (NodeUnstage) forgets them. Their caches hold nothing dirty (the recovery
    # engine counts that without credentials), so nothing is left and nothing stranded.
    for mountpoint in (gone, stale):
        request = {"op": "unmount", "mountpoint": mountpoint, "flush_timeout": 5}
        reply = jsonline.request(node_env.mounter_socket, request, 30)
        assert reply == {"ok": True, "flushed": True, "found": True}
    assert store.load() == []
    assert jsonline.request(node_env.mounter_socket, {"op": "list"}, 10)["stranded"] == []
    deadline = time.monotonic() + 10
    while discarded.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not discarded.exists()


@pytest.mark.fuse
@pytest.mark.s3
def test_stop_engines_on_exit(node_env: Node, s3_bucket: Bucket) -> None:
    """As PID 1 of a container (the chart), the mounter's exit kills its engines: with
    --stop-engines-on-exit they export their dirty files and unmount first."""
    node_env.mounter.stop()
    node_env.mounter.argv.append("--stop-engines-on-exit")
    node_env.start_mounter()
    plugin = node_env.start_plugin("node")
    vol = volume_on(node_env, plugin, s3_bucket, "podend", exportDelay="1h")
    vol.stage()
    Path(vol.staging, "late.txt").write_text("written just before the mounter pod ends")
    assert "podend/late.txt" not in s3_bucket.keys()
    node_env.mounter.stop()  # SIGTERM, as the kubelet ends the pod
    assert "podend/late.txt" in s3_bucket.keys()
    assert not os.path.ismount(vol.staging)
    # Kept as dead, so the node reports the volume abnormal until it is staged again.
    (record,) = RecordStore(str(node_env.root / "state")).load()
    assert record.state == "dead" and record.exit_code == 0
