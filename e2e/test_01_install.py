"""Scenario 1: `helm install --wait` of the chart with the locally built images.

Every pod of the release is Ready, the CSIDriver exists, and the node's CSINode
lists the driver (node-driver-registrar registered it with the kubelet).
"""

from __future__ import annotations

from e2e.kubectl import Kubectl, wait_for
from e2e.release import RELEASE, SYSTEM_NS, Cluster
from e2e.workload import DRIVER


def test_every_pod_of_the_release_is_ready(cluster: Cluster, release: Kubectl) -> None:
    pods = release.items("pods", SYSTEM_NS)
    components = {p["metadata"]["labels"].get("app.kubernetes.io/component") for p in pods}
    assert {"operator", "csi-controller", "csi-node", "mounter"} <= components, components
    for pod in pods:
        statuses = pod["status"].get("containerStatuses", [])
        names = {c["name"] for c in pod["spec"]["containers"]}
        assert {s["name"] for s in statuses if s.get("ready")} == names, (
            pod["metadata"]["name"],
            statuses,
        )
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
