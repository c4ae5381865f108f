"""The chart's operator RBAC is enough, and no more than needed: the whole volume
lifecycle runs as the chart's ServiceAccount, with a token from the TokenRequest API."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from operator_cluster import POLICY_NAMESPACE, Cluster, OperatorThread, volume_spec, wait_for

from fixtures.kube import KubeCluster
from fixtures.minio import Bucket
from fixtures.prereq import tool

pytestmark = [pytest.mark.cluster, pytest.mark.s3, pytest.mark.tools]
CHART = Path(__file__).resolve().parents[2] / "charts" / "openfiles"
RELEASE = "rbac"


def rendered_rbac() -> str:
    out = subprocess.run(
        [str(tool("helm")), "template", RELEASE, str(CHART), "--namespace", POLICY_NAMESPACE,
         "--kube-version", "1.34.0",
         "--show-only", "templates/operator-rbac.yaml",
         "--show-only", "templates/operator-policies.yaml"],
        check=True, capture_output=True, text=True)
    return out.stdout


def service_account_kubeconfig(kube: KubeCluster, tmp_path: Path) -> Path:
    from kubernetes import client

    core = client.CoreV1Api(kube.api_client())
    request = core.create_namespaced_service_account_token(
        f"{RELEASE}-operator", POLICY_NAMESPACE,
        {"spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600}})
    path = tmp_path / "operator.kubeconfig"
    path.write_text(kube.kubeconfig_text(request.status.token, "operator"))
    return path


def can_i(kube: KubeCluster, *args: str) -> bool:
    sa = f"system:serviceaccount:{POLICY_NAMESPACE}:{RELEASE}-operator"
    out = kube.kubectl("auth", "can-i", f"--as={sa}", *args, check=False)
    return out.stdout.strip() == "yes"


def test_operator_works_with_the_chart_rbac_only(cluster: Cluster, s3_bucket: Bucket,
                                                 tmp_path: Path) -> None:
    kube = cluster.kube
    manifest = rendered_rbac()
    kinds = {doc["kind"] for doc in yaml.safe_load_all(manifest) if doc}
    assert kinds == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
                     "RoleBinding", "ConfigMap"}
    kube.kubectl("apply", "-f", "-", input=manifest)

    # Least privilege: nothing beyond what the code calls.
    assert can_i(kube, "get", "secrets", "-n", cluster.namespace)
    assert not can_i(kube, "list", "secrets", "-n", cluster.namespace)
    assert not can_i(kube, "update", "persistentvolumes")
    assert not can_i(kube, "delete", "pods", "-n", cluster.namespace)
    assert not can_i(kube, "patch", "configmaps/other", "-n", POLICY_NAMESPACE)
    assert not can_i(kube, "create", "configmaps", "-n", cluster.namespace)

    config = service_account_kubeconfig(kube, tmp_path)
    running = OperatorThread(kube, kubeconfig=config).start()
    try:
        cluster.create_volume("data", volume_spec(s3_bucket, "rbac", reclaimPolicy="Delete"))
        wait_for(lambda: cluster.ready("data"), timeout=60, what="Ready under the chart RBAC")
        cluster.patch_volume("data", {"spec": {"cache": {"ttl": "2h"}}})
        wait_for(lambda: cluster.volume("data")["status"].get("observedGeneration") == 2,
                 what="update under the chart RBAC")
        cluster.delete_volume("data")
        wait_for(lambda: cluster.volume_gone("data"), what="deletion under the chart RBAC")
    finally:
        running.stop()
