"""Cluster fixtures of the operator tests: CRDs installed with kubectl, one namespace per
test with a Secret for the MinIO bucket, and the operator running in-process
(helpers in operator_cluster.py).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_cluster import POLICY_NAMESPACE, Cluster, OperatorThread, strip_finalizers

from fixtures.kube import KubeCluster
from fixtures.minio import Bucket
from fixtures.net import Trap

CRDS = Path(__file__).resolve().parents[2] / "charts" / "openfiles" / "crds"


@pytest.fixture(scope="session")
def crds(kube: KubeCluster) -> KubeCluster:
    """The chart's CRDs, installed the way the README says: kubectl apply -f."""
    kube.kubectl("apply", "-f", str(CRDS))
    for crd in ("openfilesvolumes.openfiles.io", "openfilescachepolicies.openfiles.io",
                "openfilesnodereports.openfiles.io"):
        kube.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    kube.kubectl("create", "namespace", POLICY_NAMESPACE, check=False)
    return kube


@pytest.fixture
def cluster(crds: KubeCluster, s3_bucket: Bucket) -> Iterator[Cluster]:
    """A fresh namespace holding Secret ``creds`` for ``s3_bucket``."""
    namespace = "t-" + secrets.token_hex(4)
    env = Cluster(crds, namespace)
    env.core.create_namespace({"metadata": {"name": namespace, "labels": {"suite": "operator"}}})
    data = {k: base64.b64encode(v.encode()).decode() for k, v in s3_bucket.secret.items()}
    env.core.create_namespaced_secret(namespace, {"metadata": {"name": "creds"}, "data": data})
    yield env
    strip_finalizers(env)
    env.api.close()


@pytest.fixture
def trap() -> Iterator[Trap]:
    """A listening socket on 127.0.0.1 that counts connections (fixtures/net.py)."""
    listener = Trap()
    yield listener
    listener.close()


@pytest.fixture
def operator(crds: KubeCluster) -> Iterator[OperatorThread]:
    running = OperatorThread(crds).start()
    yield running
    running.stop()
