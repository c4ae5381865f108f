"""``openfiles operator`` as users run it: a process with leader election and /healthz."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_cluster import POLICY_NAMESPACE, Cluster, volume_spec, wait_for

from fixtures.kube import KubeCluster
from fixtures.minio import Bucket
from fixtures.net import free_port
from openfiles_operator.cli import parse_args

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "storage")
    args = parse_args([])
    assert args.namespace == "storage"
    assert args.policy_config_map == "openfiles-policies"
    assert args.liveness == "127.0.0.1:8080"
    assert not args.endpoint_policy.restricts


def test_allowed_endpoints_become_the_policy(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse_args(["--allowed-endpoint=https://minio.storage:9000",
                       "--allowed-endpoint=https://*.s3.example.com"])
    assert args.endpoint_policy.refusal("https://eu.s3.example.com") is None
    assert args.endpoint_policy.refusal("http://169.254.169.254") is not None
    with pytest.raises(SystemExit):
        parse_args(["--allowed-endpoint=minio:9000"])
    assert "--allowed-endpoint: endpoint pattern 'minio:9000'" in capsys.readouterr().err


def healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return int(resp.status)
    except (urllib.error.URLError, ConnectionError):
        return 0


class Process:
    def __init__(self, kube: KubeCluster, identity: str, log: Path) -> None:
        self.port = free_port()
        self.identity = identity
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "openfiles_cli", "operator",
                 "--kubeconfig", str(kube.kubeconfig), "--namespace", POLICY_NAMESPACE,
                 "--lease", "cli-test", "--identity", identity, "--lease-seconds", "10",
                 "--liveness", f"127.0.0.1:{self.port}", "--retry-delay", "1",
                 "--resync-interval", "2"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            log = self.log.read_text()
            raise AssertionError(f"{self.identity} ignored SIGTERM:\n{log}") from None


def holder(kube: KubeCluster) -> str:
    out = kube.kubectl("get", "lease", "cli-test", "-n", POLICY_NAMESPACE, "-o", "json",
                       check=False)
    return str(json.loads(out.stdout)["spec"].get("holderIdentity", "")) if out.returncode == 0 \
        else ""


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for proc in started:
        proc.stop()


@pytest.mark.cluster
@pytest.mark.s3
def test_leader_serves_a_standby_waits_and_takes_over(
        cluster: Cluster, s3_bucket: Bucket, processes: list[Process], tmp_path: Path) -> None:
    kube = cluster.kube
    first = Process(kube, "first", tmp_path / "first.log")
    processes.append(first)
    wait_for(lambda: holder(kube) == "first", what="first leads")
    second = Process(kube, "second", tmp_path / "second.log")
    processes.append(second)
    wait_for(lambda: healthz(first.port) == 200 and healthz(second.port) == 200,
             what="both alive")
    cluster.create_volume("data", volume_spec(s3_bucket, "cli"))
    wait_for(lambda: cluster.ready("data"), timeout=60, what="Ready through the CLI operator")
    # The standby did not take over. Ten-second leases: a leader starved of CPU for a few
    # seconds on a loaded machine must not lose them; takeover below comes from the release.
    assert holder(kube) == "first"

    assert first.stop() == 0  # SIGTERM: clean exit, Lease released
    wait_for(lambda: holder(kube) == "second", timeout=20, what="second takes over")
    cluster.patch_volume("data", {"spec": {"cache": {"ttl": "3h"}}})
    wait_for(lambda: cluster.volume("data")["status"].get("observedGeneration") == 2,
             timeout=60, what="the new leader reconciles")
    assert "Traceback" not in first.log.read_text()


def test_in_cluster_login_uses_the_service_address_the_kubelet_sets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Found by the e2e: without cluster DNS, kopf's https://kubernetes.default.svc never resolves.
    import kopf

    from openfiles_operator.cli import in_cluster_login

    info = kopf.ConnectionInfo(server="https://kubernetes.default.svc", token="t", ca_path="/ca")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    moved = in_cluster_login(info)
    assert moved is not None
    assert (moved.server, moved.token, moved.ca_path) == ("https://10.96.0.1:443", "t", "/ca")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    assert in_cluster_login(info).server == "https://[fd00::1]:443"  # type: ignore[union-attr]
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    assert in_cluster_login(info) is info
    assert in_cluster_login(None) is None
