"""Error mapping, and an operator restart in the middle of reconciling."""

from __future__ import annotations

from functools import partial

import kopf
import pytest
from operator_cluster import Cluster, OperatorThread, volume_spec, wait_for

from fixtures.kube import KubeCluster
from fixtures.minio import Bucket
from openfiles_operator.binding import pv_body
from openfiles_operator.errors import (
    BucketError,
    ClaimTakenError,
    ConflictError,
    CredentialsError,
    SpecError,
)
from openfiles_operator.handler import _to_kopf
from openfiles_operator.reconcile import InUseError
from openfiles_operator.settings import Settings
from openfiles_operator.volume import parse_volume

SETTINGS = Settings(policy_namespace="x", retry_delay=30, conflict_delay=2, pod_wait_delay=10)


def test_spec_errors_are_permanent() -> None:
    mapped = _to_kopf(SpecError("spec.cache.size", "bad"), SETTINGS)
    assert isinstance(mapped, kopf.PermanentError)
    assert "spec.cache.size" in str(mapped)


@pytest.mark.parametrize(("error", "delay"), [
    (CredentialsError("no Secret"), 30), (BucketError("down"), 30),
    (ClaimTakenError("taken"), 30), (ConflictError("409"), 2), (InUseError("pods"), 10),
])
def test_healable_errors_are_temporary_with_their_delay(error: Exception, delay: float) -> None:
    mapped = _to_kopf(error, SETTINGS)  # type: ignore[arg-type]
    assert isinstance(mapped, kopf.TemporaryError)
    assert mapped.delay == delay


def owned(env: Cluster, uid: str) -> tuple[list[str], list[str]]:
    selector = f"openfiles.io/volume-uid={uid}"
    pvs = env.core.list_persistent_volume(label_selector=selector).items
    pvcs = env.core.list_namespaced_persistent_volume_claim(
        env.namespace, label_selector=selector).items
    return [p.metadata.name for p in pvs], [p.metadata.name for p in pvcs]


@pytest.mark.cluster
@pytest.mark.s3
def test_restart_mid_reconcile_converges_without_duplicates(
        crds: KubeCluster, cluster: Cluster, s3_bucket: Bucket) -> None:
    first = OperatorThread(crds).start()
    uids = [cluster.create_volume(f"v{i}", volume_spec(s3_bucket, f"r{i}"))["metadata"]["uid"]
            for i in range(4)]
    # Stop as soon as the first PV exists: the others are somewhere in their handlers.
    wait_for(lambda: any(owned(cluster, uid)[0] for uid in uids), what="a first PV")
    first.stop()
    second = OperatorThread(crds).start()
    try:
        for i in range(4):
            wait_for(partial(cluster.ready, f"v{i}"), timeout=60, what=f"v{i} Ready")
    finally:
        second.stop()
    for i, uid in enumerate(uids):
        pvs, pvcs = owned(cluster, uid)
        assert len(pvs) == 1 and pvcs == [f"v{i}"]


@pytest.mark.cluster
@pytest.mark.s3
def test_a_pv_left_by_a_crash_is_adopted(crds: KubeCluster, cluster: Cluster,
                                        s3_bucket: Bucket) -> None:
    spec = volume_spec(s3_bucket, "adopt")
    created = cluster.create_volume("data", spec)  # no operator yet
    meta = created["metadata"]
    volume = parse_volume(created["spec"], cluster.namespace, "data", meta["uid"])
    cluster.core.create_persistent_volume(pv_body(volume))  # as if we crashed right after
    running = OperatorThread(crds).start()
    try:
        wait_for(lambda: cluster.ready("data"), what="Ready")
        def reasons_with_ready() -> list[str] | None:
            reasons = [reason for reason, _ in cluster.events("data")]
            return reasons if "Ready" in reasons else None

        reasons = wait_for(reasons_with_ready, what="the Ready event")
    finally:
        running.stop()
    pvs, pvcs = owned(cluster, meta["uid"])
    assert pvs == [volume.handle] and pvcs == ["data"]
    assert "PersistentVolumeCreated" not in reasons and "ClaimCreated" in reasons


@pytest.mark.cluster
@pytest.mark.s3
def test_a_foreign_claim_of_the_same_name_blocks_binding(
        cluster: Cluster, operator: OperatorThread, s3_bucket: Bucket) -> None:
    cluster.core.create_namespaced_persistent_volume_claim(cluster.namespace, {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "1Gi"}}}})
    cluster.create_volume("data", volume_spec(s3_bucket, "taken"))

    def taken() -> dict[str, object] | None:
        cond = cluster.condition("data", "Bound")
        return cond if cond and cond["reason"] == "NameTaken" else None

    cond = wait_for(taken, what="NameTaken")
    assert "PersistentVolumeClaim data" in str(cond["message"])
    cluster.core.delete_namespaced_persistent_volume_claim("data", cluster.namespace)
    # Without a controller-manager the foreign claim stays Terminating (pvc-protection):
    # drop that finalizer as the controller would once no pod uses it.
    cluster.core.patch_namespaced_persistent_volume_claim(
        "data", cluster.namespace, {"metadata": {"finalizers": None}})
    wait_for(lambda: cluster.ready("data"), timeout=60, what="Ready once the name is free")
