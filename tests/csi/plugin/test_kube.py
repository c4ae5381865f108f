"""The node plugin's API calls (plugin/kube.py), as the chart's node identity, on the real
API server: a node's pod-bound token writes its own node's reports and nothing else."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures.kube import KubeCluster
from fixtures.prereq import tool
from openfiles_csi.plugin.kube import KubeClient, api_configuration

pytestmark = [pytest.mark.cluster, pytest.mark.tools]
CHART = Path(__file__).resolve().parents[3] / "charts" / "openfiles"
CRDS = CHART / "crds"
NAMESPACE = "openfiles-node-rbac"
SA = "openfiles-csi-node"


def rendered() -> str:
    return subprocess.run(
        [str(tool("helm")), "template", "rbac", str(CHART), "--namespace", NAMESPACE,
         "--kube-version", "1.34.0", "--show-only", "templates/csi-node-rbac.yaml"],
        check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def chart_rbac(kube: KubeCluster) -> KubeCluster:
    """The CRDs and the chart's node RBAC and admission policy, applied as an admin."""
    from kubernetes import client

    kube.kubectl("apply", "-f", str(CRDS))
    kube.kubectl("wait", "--for=condition=Established",
                 "crd/openfilesnodereports.openfiles.io", "--timeout=60s")
    kube.kubectl("create", "namespace", NAMESPACE, check=False)
    kube.kubectl("apply", "-f", "-", input=rendered())
    core = client.CoreV1Api(kube.api_client())
    for node in ("node-a", "node-b"):
        if not core.list_node(field_selector=f"metadata.name={node}").items:
            core.create_node({"metadata": {"name": node}})
    wait_enforced(kube)
    return kube


def wait_enforced(kube: KubeCluster, timeout: float = 30.0) -> None:
    """A new admission policy takes effect once the API server's informer has it."""
    from kubernetes.client.exceptions import ApiException

    path = Path(kube.root) / "probe.kubeconfig"
    path.write_text(kube.kubeconfig_text(node_token(kube, "node-a"), "probe"))
    probe = KubeClient(api_configuration(str(path)))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                asyncio.run(probe.apply_report(NAMESPACE, "probe", {}, spec("node-b")))
            except ApiException as exc:
                if exc.status == 403:
                    return
                raise
            kube.kubectl("delete", "-n", NAMESPACE, "openfilesnodereports/probe")
            time.sleep(0.2)
    finally:
        probe.close()
    raise AssertionError("the admission policy never took effect")


def node_token(kube: KubeCluster, node: str) -> str:
    """What the kubelet gives the node plugin's pod on ``node``: a token bound to the pod."""
    from kubernetes import client

    core = client.CoreV1Api(kube.api_client())
    pod = core.create_namespaced_pod(NAMESPACE, {
        "metadata": {"generateName": "csi-node-"},
        "spec": {"nodeName": node, "serviceAccountName": SA,
                 "containers": [{"name": "csi-node", "image": "never-runs"}]}})
    request = core.create_namespaced_service_account_token(SA, NAMESPACE, {"spec": {
        "audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600,
        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod.metadata.name,
                           "uid": pod.metadata.uid}}})
    return str(request.status.token)


@pytest.fixture
def client_on(chart_rbac: KubeCluster, tmp_path: Path) -> Iterator[Any]:
    clients: list[KubeClient] = []

    def make(node: str | None) -> KubeClient:
        if node is None:  # a token of the same ServiceAccount, bound to no pod
            from kubernetes import client

            core = client.CoreV1Api(chart_rbac.api_client())
            token = str(core.create_namespaced_service_account_token(SA, NAMESPACE, {"spec": {
                "audiences": ["https://kubernetes.default.svc"]}}).status.token)
        else:
            token = node_token(chart_rbac, node)
        path = tmp_path / f"{node}.kubeconfig"
        path.write_text(chart_rbac.kubeconfig_text(token, f"csi-{node}"))
        kube = KubeClient(api_configuration(str(path)))
        clients.append(kube)
        return kube

    yield make
    for kube in clients:
        kube.close()


def spec(node: str) -> dict[str, Any]:
    return {"nodeName": node, "volumeHandle": "ofv-x-1", "engineAlive": True,
            "dirtyBytes": 5, "reportTime": "2025-01-01T00:00:00Z"}


def status_of(call: Any) -> int:
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as err:
        asyncio.run(call)
    return int(err.value.status)


def test_a_node_writes_only_its_own_report(client_on: Any) -> None:
    a, b = client_on("node-a"), client_on("node-b")
    asyncio.run(a.apply_report(NAMESPACE, "node-a-r", {}, spec("node-a")))
    asyncio.run(a.apply_report(NAMESPACE, "node-a-r", {}, {**spec("node-a"), "dirtyBytes": 0}))
    got = asyncio.run(a.read_report(NAMESPACE, "node-a-r"))
    assert got is not None and got["spec"]["dirtyBytes"] == 0
    # node-b's plugin can neither write a report naming node-a, nor take node-a's over,
    # nor delete it.
    assert status_of(b.apply_report(NAMESPACE, "node-b-fake", {}, spec("node-a"))) == 403
    assert status_of(b.apply_report(NAMESPACE, "node-a-r", {}, spec("node-b"))) in (403, 422)
    assert status_of(b.apply_report(NAMESPACE, "node-a-r", {}, spec("node-a"))) == 403
    assert status_of(b.delete_report(NAMESPACE, "node-a-r")) == 403
    asyncio.run(b.apply_report(NAMESPACE, "node-b-r", {}, spec("node-b")))
    # A token of the account that is bound to no pod names no node: refused.
    assert status_of(client_on(None).apply_report(NAMESPACE, "x", {}, spec("node-a"))) == 403
    assert asyncio.run(a.delete_report(NAMESPACE, "node-a-r"))
    assert asyncio.run(b.delete_report(NAMESPACE, "node-b-r"))
    assert not asyncio.run(b.delete_report(NAMESPACE, "node-b-r"))


def test_the_node_identity_reads_pvs_and_posts_events_only(chart_rbac: KubeCluster,
                                                           client_on: Any) -> None:
    a = client_on("node-a")
    assert asyncio.run(a.find_pv("no-such-handle")) is None  # get, then list
    sa = f"system:serviceaccount:{NAMESPACE}:{SA}"

    def can_i(*args: str) -> bool:
        out = chart_rbac.kubectl("auth", "can-i", f"--as={sa}", *args, check=False)
        return out.stdout.strip() == "yes"

    assert can_i("create", "events", "-n", "default")
    assert not can_i("get", "secrets", "-n", "default")
    assert not can_i("patch", "persistentvolumes")
    assert not can_i("create", "openfilesnodereports.openfiles.io", "-n", "default")
    assert not can_i("list", "openfilesnodereports.openfiles.io", "-n", NAMESPACE)
    kinds = {doc["kind"] for doc in yaml.safe_load_all(rendered()) if doc}
    assert kinds == {"ServiceAccount", "Role", "RoleBinding", "ClusterRole",
                     "ClusterRoleBinding", "ValidatingAdmissionPolicy",
                     "ValidatingAdmissionPolicyBinding"}
