"""Scenario 6: `helm upgrade` with a changed value, then a kubelet restart.

A pod writes and reads a file every fifth of a second (any error ends it,
Failed). Through the upgrade (the node plugin's pods are replaced; the mounter,
OnDelete, is not) and a restart of the kubelet, the pod keeps running, its
loop keeps advancing, and a new file written afterwards reads back.
"""

from __future__ import annotations

import os
import shlex
import subprocess

from e2e.kubectl import Kubectl, wait_for
from e2e.release import E2E, SYSTEM_NS, Cluster, ObjectStore, helm_release
from e2e.workload import pod, secret, volume, wait_volume_ready

LOOP = """
i=0
while true; do
  echo "$i" > /data/tick
  test "$(cat /data/tick)" = "$i"
  echo "$i" > /tmp/count
  i=$((i+1))
  sleep 0.2
done
"""


def _count(kube: Kubectl, namespace: str) -> int:
    return int(kube.exec("looper", namespace, "cat", "/tmp/count").strip() or "0")


def _advancing(kube: Kubectl, namespace: str) -> None:
    # Right after a kubelet restart, exec may briefly answer "pod does not exist": retry.
    start = wait_for("the loop's count", lambda: _count(kube, namespace), timeout=60)
    wait_for("the loop to advance", lambda: _count(kube, namespace) >= start + 5, timeout=30)
    assert kube.pod_phase("looper", namespace) == "Running"


def test_running_pods_keep_their_mounts(
    cluster: Cluster, object_store: ObjectStore, namespace: str
) -> None:
    kube: Kubectl = cluster.kube
    bucket = object_store.bucket()
    kube.apply(secret("creds", namespace, bucket))
    kube.apply(volume("data", namespace, object_store, f"s3://{bucket.name}/u", "creds"))
    wait_volume_ready(kube, "data", namespace)
    kube.apply(pod("looper", namespace, "data", LOOP))
    kube.wait_pod("looper", namespace, ["Running"], timeout=180)
    _advancing(kube, namespace)

    before = {
        p["metadata"]["name"]
        for p in kube.items("pods", SYSTEM_NS, "app.kubernetes.io/component=csi-node")
    }
    try:
        helm_release(cluster, "upgrade", {"node.logLevel": "DEBUG"})
        # helm's --wait can return before the DaemonSet controller has replaced the pod.
        def replaced() -> bool:
            pods = kube.items("pods", SYSTEM_NS, "app.kubernetes.io/component=csi-node")
            names = {p["metadata"]["name"] for p in pods}
            running = all(p["status"].get("phase") == "Running" for p in pods)
            return bool(names) and before.isdisjoint(names) and running

        wait_for("the upgrade to replace the node plugin", replaced, timeout=180)
        _advancing(kube, namespace)

        subprocess.run(_restart_kubelet(cluster), check=True, timeout=180)
        wait_for("the node Ready again", lambda: _node_ready(kube), timeout=120)
        _advancing(kube, namespace)
        kube.exec("looper", namespace, "bash", "-c", "echo after > /data/after.txt")
        assert kube.exec("looper", namespace, "cat", "/data/after.txt") == "after\n"
    finally:
        helm_release(cluster, "upgrade")


def _node_ready(kube: Kubectl) -> bool:
    for node in kube.items("nodes"):
        for cond in node["status"].get("conditions", []):
            if cond["type"] == "Ready" and cond["status"] != "True":
                return False
    return True


def _restart_kubelet(cluster: Cluster) -> list[str]:
    """The command that restarts the node's kubelet (kind.sh sets its own)."""
    command = os.environ.get("OPENFILES_E2E_RESTART_KUBELET")
    if command:
        return shlex.split(command)
    return [str(E2E / "cluster.sh"), "restart-kubelet"]
