"""`helm install`, `helm upgrade` and `helm uninstall` of the chart against a real
kube-apiserver 1.34 (no kubelet: nothing runs, but every object is admitted by the
server, the chart's kubeVersion is checked against the server's version, and NOTES are
rendered). A cluster of its own: the chart's cluster-scoped names would clash with
objects other tests apply to the shared fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fixtures.kube import KubeCluster, running_cluster

from .template import CHART, HERE, NAMESPACE, RELEASE, run, values_args

pytestmark = [pytest.mark.tools, pytest.mark.cluster]

# What csi-provisioner v5.2.0 calls with --leader-election and --extra-create-metadata,
# as its own deploy/kubernetes/rbac.yaml lists it (plus the provisioner secrets). Its
# snapshot rules cannot be asked about here: kubectl resolves no kind that is not served.
PROVISIONER_NEEDS = [
    ("create", "persistentvolumes"), ("delete", "persistentvolumes"),
    ("patch", "persistentvolumes"), ("watch", "persistentvolumes"),
    ("update", "persistentvolumeclaims"), ("watch", "persistentvolumeclaims"),
    ("watch", "storageclasses.storage.k8s.io"), ("watch", "csinodes.storage.k8s.io"),
    ("watch", "nodes"), ("watch", "volumeattachments.storage.k8s.io"),
    ("create", "events"), ("patch", "events"),
    ("get", "secrets"),
]
LEASE_VERBS = ["get", "watch", "list", "delete", "update", "create"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[KubeCluster]:
    # Privileged pods are allowed, as on any cluster that runs CSI node plugins.
    with running_cluster(apiserver_args=("--allow-privileged=true",)) as kube:
        yield kube


def kubectl(kube: KubeCluster, *args: str) -> str:
    result = kube.kubectl(*args, check=False)
    assert result.returncode == 0 or args[:2] == ("auth", "can-i"), result.stderr
    return result.stdout.strip()


def helm_on(kube: KubeCluster, *args: str) -> str:
    result = run(*args, "--kubeconfig", str(kube.kubeconfig))
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_install_upgrade_uninstall(cluster: KubeCluster) -> None:
    # What the full value set points at outside the chart: the prometheus-operator's
    # kind and the ServiceMonitor's namespace.
    kubectl(cluster, "apply", "-f", str(HERE / "crds" / "servicemonitor.yaml"))
    kubectl(cluster, "create", "namespace", "monitoring")
    kubectl(cluster, "wait", "--for=condition=Established", "--timeout=60s",
                    "crd/servicemonitors.monitoring.coreos.com")
    out = helm_on(cluster, "install", RELEASE, str(CHART), "--namespace", NAMESPACE,
                  "--create-namespace", *values_args("full"))
    notes = out[out.index("NOTES:"):]
    assert f"kubectl -n {NAMESPACE} get pods -l app.kubernetes.io/instance={RELEASE}" in notes
    assert "kind: OpenFilesVolume" in notes and "StorageClass openfiles-s3" in notes
    assert "storage/s3-credentials" in notes and "ServiceMonitor openfiles-csi-node" in notes
    driver = kubectl(cluster, "get", "csidriver", "csi.openfiles.io",
                             "-o", "jsonpath={.spec.fsGroupPolicy}")
    assert driver == "File"
    kubectl(cluster, "get", "-n", "monitoring", "servicemonitor", "openfiles-csi-node")

    sa = f"system:serviceaccount:{NAMESPACE}:openfiles-csi-controller"
    for verb, resource in PROVISIONER_NEEDS:
        allowed = kubectl(cluster, "auth", "can-i", verb, resource, f"--as={sa}")
        assert allowed == "yes", (verb, resource)
    for verb in LEASE_VERBS:
        assert kubectl(cluster, "auth", "can-i", verb, "leases.coordination.k8s.io",
                               "-n", NAMESPACE, f"--as={sa}") == "yes"
    assert kubectl(cluster, "auth", "can-i", "list", "secrets", f"--as={sa}") == "no"

    # The defaults again: parts go away, the CSIDriver's policy changes in place (it is
    # mutable since Kubernetes 1.29), the DaemonSets and Deployments are updated.
    out = helm_on(cluster, "upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE,
                  "--set", "node.flushTimeout=45")
    assert "NOTES:" in out
    assert kubectl(cluster, "get", "csidriver", "csi.openfiles.io",
                           "-o", "jsonpath={.spec.fsGroupPolicy}") == "None"
    assert "StorageClass" not in kubectl(cluster, "get", "storageclass", "-o", "name")
    args = kubectl(cluster, "get", "-n", NAMESPACE, "daemonset", "openfiles-csi-node",
                           "-o", "jsonpath={.spec.template.spec.containers[2].args}")
    assert "--flush-timeout=45" in args

    helm_on(cluster, "uninstall", RELEASE, "--namespace", NAMESPACE)
    # CRDs stay (Helm never deletes crds/), and so does the policy ConfigMap (kept so
    # running mounts keep their policies).
    kubectl(cluster, "get", "crd", "openfilesvolumes.openfiles.io")
    kubectl(cluster, "get", "-n", NAMESPACE, "configmap", "openfiles-policies")
    assert "csi.openfiles.io" not in kubectl(cluster, "get", "csidriver", "-o", "name")


def test_an_older_cluster_is_refused() -> None:
    result = run("template", RELEASE, str(CHART), "--kube-version", "1.29.9")
    assert result.returncode != 0
    assert "kubeVersion" in result.stderr and ">=1.30.0-0" in result.stderr, result.stderr
