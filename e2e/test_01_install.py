"""Scenario 1: `helm install --wait` of the chart with the locally built images.

Every pod of the release is Ready, the CSIDriver exists, and the node's CSINode
lists the driver (node-driver-registrar registered it with the kubelet).
"""

from __future__ import annotations

from typing import Any

from e2e.kubectl import Kubectl, wait_for
from e2e.release import RELEASE, SYSTEM_NS, Cluster
from e2e.workload import DRIVER


def _not_ready(pods: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """(name, container statuses) of each pod with a container not Ready."""
    waiting = []
    for pod in pods:
        statuses = pod["status"].get("containerStatuses", [])
        names = {c["name"] for c in pod["spec"]["containers"]}
        if {s["name"] for s in statuses if s.get("ready")} != names:
            waiting.append((pod["metadata"]["name"], statuses))
    return waiting


def test_every_pod_of_the_release_is_ready(cluster: Cluster, release: Kubectl) -> None:
    pods = release.items("pods", SYSTEM_NS)
    components = {p["metadata"]["labels"].get("app.kubernetes.io/component") for p in pods}
    assert {"operator", "csi-controller", "csi-node", "mounter"} <= components, components
    # `helm install --wait` does not wait for a DaemonSet's pods on a one-node cluster:
    # it asks for desired - maxUnavailable (1 - 1) of them Ready. So the csi-node and
    # mounter pods may still be starting when it returns (seen once in CI); give them
    # the time a user's `kubectl rollout status` would.
    try:
        wait_for("every pod of the release Ready",
                 lambda: not _not_ready(release.items("pods", SYSTEM_NS)), timeout=180)
    except TimeoutError:
        raise AssertionError(_not_ready(release.items("pods", SYSTEM_NS))) from None
    status = release.helm("status", RELEASE, "-n", SYSTEM_NS)
    assert "STATUS: deployed" in status


def test_the_driver_is_registered_on_the_node(cluster: Cluster, release: Kubectl) -> None:
    driver = release.get("csidriver", DRIVER)
    assert driver is not None, "the chart made no CSIDriver"
    nodes = release.items("nodes")
    assert nodes, "the cluster has no node"
    for node in nodes:
        name = node["metadata"]["name"]

        def registered(name: str = name) -> bool:
            csinode = release.get("csinode", name)
            drivers = (csinode or {}).get("spec", {}).get("drivers") or []
            return any(d.get("name") == DRIVER for d in drivers)

        wait_for(f"{DRIVER} registered on node {name}", registered, timeout=60)
