"""``openfiles mounter --supervise``: a crashed mounter is restarted, its engines live on.

The chart runs the supervisor as PID 1 of the mounter's container. Here it is an
ordinary process that makes itself the reaper of its orphans (PR_SET_CHILD_SUBREAPER),
which is what PID 1 is for its namespace; the kill of a whole PID namespace when its
PID 1 dies cannot happen to it here, and is why the chart needs it (docs/CSI.md).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import obstore
import pytest

from fixtures.minio import Bucket
from fixtures.net import wait_for
from openfiles_contracts import procstat
from openfiles_csi.mounter import supervisor

from ..conftest import Node, accepts, process_wait_gone, volume_on

pytestmark = [pytest.mark.fuse, pytest.mark.root, pytest.mark.s3]


def ppid(pid: int) -> int:
    return procstat.read(f"/proc/{pid}").ppid


def mounter_child(supervisor_pid: int) -> int:
    """The pid of the mounter the supervisor runs now (0 while there is none)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            if ppid(int(entry.name)) != supervisor_pid:
                continue
        except (OSError, IndexError):
            continue
        if b"mounter" in cmdline and b"--supervise" not in cmdline:
            return int(entry.name)
    return 0


def engine_pid(node: Node) -> int:
    (path,) = (node.root / "state" / "records").glob("*.json")
    return int(json.loads(path.read_text())["pid"])


def test_a_crashed_mounter_is_restarted_and_adopts_its_engines(
    supervised_node_env: Node, s3_bucket: Bucket
) -> None:
    node = supervised_node_env
    assert node.mounter.proc is not None
    sup = node.mounter.proc.pid
    plugin = node.start_plugin("node")
    vol = volume_on(node, plugin, s3_bucket, "supervised", exportDelay="1h")
    vol.stage()
    target = node.kubelet / "pods" / "p" / "mount"
    target.parent.mkdir(parents=True)
    vol.publish(str(target))
    (target / "before.txt").write_text("written before the crash")
    first, engine = mounter_child(sup), engine_pid(node)
    assert first and ppid(engine) == first

    os.kill(first, signal.SIGKILL)
    # The engine outlives its mounter, now a child of the supervisor, and keeps serving.
    wait_for(lambda: ppid(engine) == sup, 10, "the engine to be reparented to the supervisor")
    (target / "after.txt").write_text("written while the mounter was dead")
    second = 0

    def restarted() -> bool:
        nonlocal second
        second = mounter_child(sup)
        return second not in (0, first) and accepts(node.mounter_socket)

    wait_for(restarted, 30, "a new mounter")
    assert not Path(f"/proc/{first}").exists()  # reaped, not a zombie
    assert "mounter exited with 137 without being asked to" in node.mounter.log()

    vol.unpublish(str(target))
    vol.unstage()  # through the new mounter, which adopted the engine: export, then stop
    wait_for(lambda: not Path(f"/proc/{engine}").exists(), 30, "the engine to be reaped")
    store = s3_bucket.store()
    assert bytes(obstore.get(store, "supervised/after.txt").bytes()) == (
        b"written while the mounter was dead"
    )

    node.mounter.proc.send_signal(signal.SIGTERM)
    assert node.mounter.proc.wait(timeout=60) == 0
    node.mounter.proc = None
    process_wait_gone(second)
    assert not Path(f"/proc/{second}").exists()


def test_a_stop_signal_stops_the_engines_before_the_supervisor_exits(
    supervised_node_env: Node, s3_bucket: Bucket
) -> None:
    node = supervised_node_env
    assert node.mounter.proc is not None
    plugin = node.start_plugin("node")
    vol = volume_on(node, plugin, s3_bucket, "stopped", exportDelay="1h")
    vol.stage()
    (Path(vol.staging) / "dirty.txt").write_text("exported at shutdown")
    engine = engine_pid(node)
    node.mounter.proc.send_signal(signal.SIGTERM)
    assert node.mounter.proc.wait(timeout=90) == 0
    node.mounter.proc = None
    assert not Path(f"/proc/{engine}").exists()
    assert bytes(obstore.get(s3_bucket.store(), "stopped/dirty.txt").bytes()) == (
        b"exported at shutdown"
    )


def test_exit_codes_follow_the_shell() -> None:
    assert supervisor.exit_code(0) == 0
    assert supervisor.exit_code(3 << 8) == 3
    assert supervisor.exit_code(signal.SIGKILL) == 137
