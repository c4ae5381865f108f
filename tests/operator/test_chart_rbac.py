"""The chart's RBAC is enough, and no more than needed: the whole volume lifecycle runs
as the operator's ServiceAccount, with a token from the TokenRequest API; the node
plugin's ServiceAccount, with such a token, is refused every Secret and everything else
it does not use (docs/OPERATOR.md, "What the chart's accounts may do")."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
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


OPERATOR, NODE = f"{RELEASE}-operator", "openfiles-csi-node"


def rendered_rbac(*templates: str) -> str:
    shown = [arg for name in templates for arg in ("--show-only", f"templates/{name}")]
    out = subprocess.run(
        [str(tool("helm")), "template", RELEASE, str(CHART), "--namespace", POLICY_NAMESPACE,
         "--kube-version", "1.34.0", *shown],
        check=True, capture_output=True, text=True)
    return out.stdout


def service_account_kubeconfig(kube: KubeCluster, tmp_path: Path, account: str = OPERATOR
                               ) -> Path:
    from kubernetes import client

    core = client.CoreV1Api(kube.api_client())
    request = core.create_namespaced_service_account_token(
        account, POLICY_NAMESPACE,
        {"spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600}})
    path = tmp_path / f"{account}.kubeconfig"
    path.write_text(kube.kubeconfig_text(request.status.token, account))
    return path


def can_i(kube: KubeCluster, *args: str, account: str = OPERATOR) -> bool:
    sa = f"system:serviceaccount:{POLICY_NAMESPACE}:{account}"
    out = kube.kubectl("auth", "can-i", f"--as={sa}", *args, check=False)
    return out.stdout.strip() == "yes"


def test_operator_works_with_the_chart_rbac_only(cluster: Cluster, s3_bucket: Bucket,
                                                 tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    kube = cluster.kube
    manifest = rendered_rbac("operator-rbac.yaml", "operator-policies.yaml")
    kinds = {doc["kind"] for doc in yaml.safe_load_all(manifest) if doc}
    assert kinds == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
                     "RoleBinding", "ConfigMap"}
    kube.kubectl("apply", "-f", "-", input=manifest)

    # Least privilege: nothing beyond what the code calls.
    assert can_i(kube, "get", "secrets", "-n", cluster.namespace)
    for verb in ("list", "watch", "create", "update", "patch", "delete"):
        assert not can_i(kube, verb, "secrets", "-n", cluster.namespace), verb
    assert not can_i(kube, "update", "persistentvolumes")
    assert not can_i(kube, "delete", "pods", "-n", cluster.namespace)
    assert not can_i(kube, "patch", "configmaps/other", "-n", POLICY_NAMESPACE)
    assert not can_i(kube, "create", "configmaps", "-n", cluster.namespace)

    config = service_account_kubeconfig(kube, tmp_path)
    running = OperatorThread(kube, kubeconfig=config).start()
    try:
        cluster.create_volume("data", volume_spec(s3_bucket, "rbac", reclaimPolicy="Delete"))
        wait_for(lambda: cluster.ready("data"), timeout=60, what="Ready under the chart RBAC")
        wait_for(lambda: any(r == "Ready" for r, _ in cluster.events("data")),
                 what="Events posted under the chart RBAC")
        cluster.patch_volume("data", {"spec": {"cache": {"ttl": "2h"}}})
        wait_for(lambda: cluster.volume("data")["status"].get("observedGeneration") == 2,
                 what="update under the chart RBAC")
        cluster.delete_volume("data")
        wait_for(lambda: cluster.volume_gone("data"), what="deletion under the chart RBAC")

        # The account may get any namespace's Secret (volumes live anywhere), so the code
        # keeps a volume to its own: a reference to another namespace is refused unread.
        other = "o-" + cluster.namespace
        cluster.core.create_namespace({"metadata": {"name": other}})
        cluster.core.create_namespaced_secret(
            other, {"metadata": {"name": "creds"}, "stringData": s3_bucket.secret})
        assert can_i(kube, "get", "secrets/creds", "-n", other)
        spec = volume_spec(s3_bucket, "stolen")
        spec["bucket"]["credentialsSecretRef"]["namespace"] = other
        cluster.create_volume("stolen", spec)
        cond = wait_for(lambda: cluster.condition("stolen", "Ready"), what="a Ready condition")
        assert cond["reason"] == "InvalidSpec", cond
        assert str(cond["message"]).startswith(
            f"spec.bucket.credentialsSecretRef.namespace: '{other}': a volume can use only a "
            f"Secret in its own namespace '{cluster.namespace}'")
        assert cluster.volume("stolen")["status"]["phase"] == "Invalid"
        assert cluster.core.list_persistent_volume(
            label_selector="openfiles.io/volume-name=stolen").items == []
    finally:
        running.stop()
    # Not one request was refused along the way (kopf retries those, so look at the log).
    assert "Forbidden" not in caplog.text


def test_the_node_plugin_reads_no_secret(cluster: Cluster, tmp_path: Path) -> None:
    """Real requests with a token of the node plugin's ServiceAccount: what it uses works,
    everything else, each Secret first, is refused by the API server."""
    from kubernetes import client, config
    from kubernetes.client import ApiException

    kube = cluster.kube
    kube.kubectl("apply", "-f", "-", input=rendered_rbac("csi-node-rbac.yaml"))
    for verb in ("get", "list", "watch", "create", "update", "patch", "delete"):
        assert not can_i(kube, verb, "secrets", "-A", account=NODE), verb
    api = config.new_client_from_config(
        config_file=str(service_account_kubeconfig(kube, tmp_path, NODE)))
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    try:
        ns = cluster.namespace

        def status_of(call: Callable[[], object]) -> int:
            try:
                call()
            except ApiException as exc:
                return int(exc.status)
            return 200

        refused = {
            "get the volume's Secret": lambda: core.read_namespaced_secret("creds", ns),
            "list Secrets": lambda: core.list_namespaced_secret(ns),
            "list Secrets everywhere": lambda: core.list_secret_for_all_namespaces(),
            "read the policy ConfigMap": lambda: core.read_namespaced_config_map(
                "openfiles-policies", POLICY_NAMESPACE),
            "read OpenFilesVolumes": lambda: custom.list_namespaced_custom_object(
                "openfiles.io", "v1alpha1", ns, "openfilesvolumes"),
            "read claims": lambda: core.list_namespaced_persistent_volume_claim(ns),
            "write a report elsewhere": lambda: custom.create_namespaced_custom_object(
                "openfiles.io", "v1alpha1", ns, "openfilesnodereports",
                {"apiVersion": "openfiles.io/v1alpha1", "kind": "OpenFilesNodeReport",
                 "metadata": {"name": "x"}, "spec": {"nodeName": "n"}}),
        }
        answers = {what: status_of(call) for what, call in refused.items()}
        assert answers == dict.fromkeys(refused, 403)
        # What it does use: PersistentVolumes (a 404 is an answer, not a refusal) and Events.
        assert status_of(lambda: core.read_persistent_volume("no-such-pv")) == 404
        assert status_of(lambda: core.list_persistent_volume()) == 200
        assert status_of(lambda: core.create_namespaced_event(ns, {
            "metadata": {"generateName": "openfiles-"}, "reason": "Test", "message": "m",
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": ns}})) == 200
    finally:
        api.close()
