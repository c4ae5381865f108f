"""The e2e's cluster, object store and chart release: what every scenario is handed.

``install_values`` is the one place that says how the e2e installs the chart:
the locally built image, short retry and report intervals, and the node's
host directories under the cluster's state directory (so that taking the
cluster down removes them too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e.kubectl import Kubectl
from fixtures.minio import Bucket, new_bucket

E2E = Path(__file__).resolve().parent
ROOT = E2E.parent
CHART = ROOT / "charts" / "openfiles"
RELEASE = "openfiles"
SYSTEM_NS = "openfiles-system"
LOCAL_SIDECARS = "localhost/openfiles-sidecar"
STAND_IN_VERSION = "v0.1.0"  # tools/sidecar's version (scripts/bootstrap-tests.sh)
NATS_VERSION = "v2.15.3"  # nats-server's (scripts/bootstrap-tests.sh, e2e/images/images.toml)


def chart_app_version() -> str:
    match = re.search(r'^appVersion:\s*"?([^"\s]+)"?', (CHART / "Chart.yaml").read_text(), re.M)
    assert match, "charts/openfiles/Chart.yaml has no appVersion"
    return match.group(1)


@dataclass
class Cluster:
    """A running cluster and how to reach it."""

    kind: str  # "local" or "kind"
    kube: Kubectl
    env: dict[str, str]  # what `e2e/cluster.sh env` printed (empty for kind)

    def node_dir(self, name: str) -> str:
        """A host directory for the node plugin (state, cache, run), removed with the cluster."""
        state = self.env.get("OPENFILES_E2E_STATE")
        return f"{state}/node/{name}" if state else f"/var/lib/openfiles/{name}"


@dataclass
class ObjectStore:
    """MinIO as pods see it (``cluster_endpoint``) and as the tests see it (``server.endpoint``)."""

    server: Any
    cluster_endpoint: str

    def bucket(self) -> Bucket:
        """A fresh bucket."""
        return new_bucket(self.server)


def install_values(cluster: Cluster, extra: dict[str, str] | None = None) -> list[str]:
    """``--set`` arguments of the e2e's release."""
    values = {
        "image.repository": "localhost/openfiles",
        "image.tag": chart_app_version(),
        "image.pullPolicy": "Never",
        "operator.retryDelaySeconds": "5",
        "node.reports.intervalSeconds": "1",
        "node.stateDir": cluster.node_dir("state"),
        "node.cacheRoot": cluster.node_dir("cache"),
        "node.runDir": cluster.node_dir("run"),
        **(extra or {}),
    }
    if cluster.kind == "local":
        # The module proxy here serves no version of node-driver-registrar or livenessprobe,
        # so the local cluster runs the project's stand-ins (tools/sidecar/, same flags) under
        # local names; csi-provisioner is the upstream v5.2.0, built here. kind pulls the
        # upstream images the chart names.
        values.update(
            {
                "sidecars.registrar.repository": f"{LOCAL_SIDECARS}/csi-node-driver-registrar",
                "sidecars.registrar.tag": STAND_IN_VERSION,
                "sidecars.livenessProbe.repository": f"{LOCAL_SIDECARS}/livenessprobe",
                "sidecars.livenessProbe.tag": STAND_IN_VERSION,
                # The in-chart NATS (off unless a scenario turns it on): the tool cache's
                # nats-server in a local image instead of the official `nats` image.
                "events.nats.server.image.repository": f"{LOCAL_SIDECARS}/nats-server",
                "events.nats.server.image.tag": NATS_VERSION,
            }
        )
    args: list[str] = []
    for key, value in values.items():
        args += ["--set", f"{key}={value}"]
    return args


def helm_release(cluster: Cluster, verb: str, extra: dict[str, str] | None = None) -> None:
    """``helm install`` or ``helm upgrade`` of the e2e's release, waiting until it is ready."""
    cluster.kube.helm(verb, RELEASE, str(CHART), "-n", SYSTEM_NS, "--create-namespace", "--wait",
                      "--timeout", "5m", *install_values(cluster, extra), timeout=400)
