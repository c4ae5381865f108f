"""The e2e scenarios' fixtures: a real cluster, the chart installed, a MinIO pods reach.

``--cluster=local`` (the default) builds the images (``e2e/images/build.sh``),
brings up the single-node cluster in its own network namespace
(``e2e/cluster.sh up``), and takes it down at the end (keep it with
``OPENFILES_E2E_KEEP=1``). ``--cluster=kind`` uses the cluster that
``e2e/kind.sh`` made: the kubeconfig and MinIO come from its environment
(``OPENFILES_E2E_KUBECONFIG``, ``OPENFILES_E2E_S3_*``).

When a scenario fails, the logs of every pod's containers, ``kubectl describe``
of the pods and the volumes, the recent Events and the cluster components'
log tails are written under ``OPENFILES_E2E_ARTIFACTS`` (default
``/tmp/openfiles-e2e-artifacts``), one directory per test, and the path is
printed in the report.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.azurite import ClusterAzurite
from e2e.kubectl import CommandError, Kubectl
from e2e.minio import ClusterMinio
from e2e.release import E2E, RELEASE, SYSTEM_NS, Cluster, ObjectStore, helm_release
from fixtures.prereq import missing, tool

ARTIFACTS = Path(os.environ.get("OPENFILES_E2E_ARTIFACTS", "/tmp/openfiles-e2e-artifacts"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--cluster",
        choices=("local", "kind"),
        default="local",
        help="e2e: the local single-node cluster (default) or the one e2e/kind.sh made",
    )


def _run(argv: list[str], timeout: float) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {proc.returncode}:\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc.stdout


def _parse_env(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        key, sep, value = line.removeprefix("export ").partition("=")
        if sep and key.strip():
            env[key.strip()] = value.strip().strip('"')
    return env


def _local_prerequisites() -> None:
    if os.geteuid() != 0:
        missing("the local e2e cluster needs root (network namespace, kubelet, containerd)")
    absent = [
        n
        for n in ("kubectl", "helm", "kubelet", "kube-apiserver", "etcd", "minio", "azurite-blob")
        if not os.access(tool(n), os.X_OK)
    ]
    if absent:
        missing(f"{', '.join(absent)} not built: run scripts/bootstrap-tests.sh")
    for binary in ("containerd", "socat", "nsenter"):
        if not any(Path(d, binary).exists() for d in ("/usr/bin", "/usr/sbin", "/bin", "/sbin")):
            missing(f"{binary} is not installed: run scripts/bootstrap-tests.sh")


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The cluster for the whole session (brought up here for ``--cluster=local``)."""
    if request.config.getoption("--cluster") == "kind":
        kubeconfig = os.environ.get("OPENFILES_E2E_KUBECONFIG", "")
        if not kubeconfig:
            missing("--cluster=kind needs OPENFILES_E2E_KUBECONFIG (run e2e/kind.sh)")
        yield Cluster(
            "kind",
            Kubectl(
                Path(os.environ.get("OPENFILES_E2E_KUBECTL", "kubectl")),
                Path(os.environ.get("OPENFILES_E2E_HELM", "helm")),
                Path(kubeconfig),
            ),
            {},
        )
        return
    _local_prerequisites()
    _run([str(E2E / "images" / "build.sh")], timeout=1800)
    keep = os.environ.get("OPENFILES_E2E_KEEP") == "1"
    try:
        _run([str(E2E / "cluster.sh"), "up"], timeout=600)
        env = _parse_env(_run([str(E2E / "cluster.sh"), "env"], timeout=60))
        yield Cluster("local", Kubectl(tool("kubectl"), tool("helm"), Path(env["KUBECONFIG"])), env)
    finally:
        if not keep:
            _run([str(E2E / "cluster.sh"), "down"], timeout=300)


@pytest.fixture(scope="session")
def object_store(cluster: Cluster) -> Iterator[ObjectStore]:
    if cluster.kind == "kind":
        kind_minio = ClusterMinio.from_kind_env()
        yield ObjectStore(kind_minio, kind_minio.cluster_endpoint)
        return
    _run([str(E2E / "cluster.sh"), "minio-up"], timeout=120)
    try:
        minio = ClusterMinio.from_cluster_env(cluster.env)
        yield ObjectStore(minio, minio.cluster_endpoint)
    finally:
        _run([str(E2E / "cluster.sh"), "minio-down"], timeout=60)


@pytest.fixture(scope="session")
def azurite(cluster: Cluster) -> Iterator[ClusterAzurite]:
    """The Azurite of the az:// scenario (``e2e/cluster.sh azurite-up``), local cluster only."""
    if cluster.kind == "kind":
        pytest.skip("e2e/kind.sh runs no Azurite: the az:// scenario is the local cluster's")
    _run([str(E2E / "cluster.sh"), "azurite-up"], timeout=120)
    try:
        yield ClusterAzurite(cluster.env)
    finally:
        _run([str(E2E / "cluster.sh"), "azurite-down"], timeout=60)


@pytest.fixture(scope="session")
def release(cluster: Cluster) -> Iterator[Kubectl]:
    """The chart installed with ``helm install --wait`` (scenario 1 checks what it made)."""
    kube = cluster.kube
    helm_release(cluster, "install")
    try:
        yield kube
    finally:
        if os.environ.get("OPENFILES_E2E_KEEP") != "1":
            _uninstall(kube)


def _uninstall(kube: Kubectl) -> None:
    # Every volume goes first, so no engine or finalizer outlives the chart.
    for ofv in kube.items("openfilesvolumes"):
        meta = ofv["metadata"]
        kube.delete("openfilesvolume", meta["name"], meta["namespace"], timeout=180)
    kube.helm("uninstall", RELEASE, "-n", SYSTEM_NS, "--wait", "--timeout", "3m", timeout=240)


@pytest.fixture
def namespace(release: Kubectl, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one scenario, deleted (with its pods and volumes) afterwards."""
    name = (
        "e2e-"
        + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
        + "-"
        + secrets.token_hex(2)
    )
    release("create", "namespace", name)
    yield name
    # Pods first: a volume's deletion rightly waits while a pod (even a Pending one) uses it.
    release("delete", "pods", "--all", "-n", name, "--wait=true", "--timeout=120s", timeout=150)
    for ofv in release.items("openfilesvolumes", name):
        release.delete("openfilesvolume", ofv["metadata"]["name"], name, timeout=180)
    release.delete("namespace", name, timeout=240)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, Any]:
    report = yield
    if report.failed and "cluster" in getattr(item, "funcargs", {}):
        target = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)
        try:
            collect_diagnostics(item.funcargs["cluster"], target)  # type: ignore[attr-defined]
            report.sections.append(("e2e diagnostics", f"written to {target}"))
        except Exception as exc:
            report.sections.append(("e2e diagnostics", f"could not collect: {exc!r}"))
    return report


def collect_diagnostics(cluster: Cluster, target: Path) -> None:
    """Logs of every container, ``kubectl describe`` of pods and volumes, Events, component logs."""
    target.mkdir(parents=True, exist_ok=True)
    kube = cluster.kube

    def save(name: str, *argv: str) -> None:
        try:
            text = kube(*argv, timeout=60)
        except (CommandError, subprocess.TimeoutExpired) as exc:
            text = f"(failed: {exc})"
        (target / name).write_text(text)

    save("pods.txt", "get", "pods", "-A", "-o", "wide")
    save("describe-pods.txt", "describe", "pods", "-A")
    save("describe-pvc-pv.txt", "describe", "pvc,pv", "-A")
    save("describe-ofv.txt", "describe", "openfilesvolumes,openfilesnodereports", "-A")
    save("events.txt", "get", "events", "-A", "--sort-by=.lastTimestamp")
    for pod in kube.items("pods"):
        meta = pod["metadata"]
        for container in pod["spec"].get("containers", []):
            name = f"log-{meta['namespace']}-{meta['name']}-{container['name']}.txt"
            (target / name).write_text(
                kube.logs(meta["name"], meta["namespace"], container["name"])
            )
    logs = cluster.env.get("OPENFILES_E2E_LOGS")
    if logs and Path(logs).is_dir():
        for log in sorted(Path(logs).glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-300:]
            (target / f"component-{log.name}").write_text("\n".join(lines) + "\n")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The e2e scenarios run after every other layer: a broken engine should fail there first.
    del config
    items.sort(key=lambda item: Path(str(item.fspath)).is_relative_to(E2E))
