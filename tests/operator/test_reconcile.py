"""An OpenFilesVolume's life against a real kube-apiserver and MinIO, operator in-process.

There is no controller-manager: nothing marks the PVC Bound, nothing garbage-collects,
and unscheduled Pods are deleted at once. The operator must not need any of it.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from typing import Any

import obstore
import pytest
from operator_cluster import Cluster, OperatorThread, volume_spec, wait_for

from fixtures.minio import Bucket
from openfiles_operator.kube import Kube
from openfiles_operator.volume import volume_handle

pytestmark = [pytest.mark.cluster, pytest.mark.s3]


def pvs_of(env: Cluster, uid: str) -> list[str]:
    items = env.core.list_persistent_volume(label_selector=f"openfiles.io/volume-uid={uid}").items
    return [pv.metadata.name for pv in items if not pv.metadata.deletion_timestamp]


def gone_or_deleting(read: Callable[[], Any]) -> bool:
    from kubernetes.client import ApiException

    try:
        obj = read()
    except ApiException as exc:
        return bool(exc.status == 404)
    return obj.metadata.deletion_timestamp is not None


def test_create_gives_a_ready_prebound_pair(cluster: Cluster, operator: OperatorThread,
                                            s3_bucket: Bucket) -> None:
    created = cluster.create_volume("data", volume_spec(s3_bucket, "team/data"))
    uid = created["metadata"]["uid"]
    handle = volume_handle(cluster.namespace, "data", uid)
    body = wait_for(lambda: cluster.ready("data"), what="volume Ready")
    status = body["status"]
    assert status["phase"] == "Ready"
    assert (status["pvName"], status["pvcName"], status["volumeHandle"]) == (handle, "data", handle)
    assert status["observedGeneration"] == body["metadata"]["generation"]
    types = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    # Exported comes from the export check (exports.py), which may not have run yet.
    assert types.pop("Exported", ("True", "NotStaged")) == ("True", "NotStaged")
    assert types == {"BucketReachable": ("True", "Listed"), "Bound": ("True", "PreBound"),
                     "Ready": ("True", "Ready")}
    assert status["effectivePolicy"] == {"cacheSize": 10 * 2**30, "cacheTTL": 86400,
                                         "metadataTTL": 10, "exportDelay": 60, "policy": ""}

    pv = cluster.core.read_persistent_volume(handle)
    assert pv.spec.csi.driver == "csi.openfiles.io"
    assert pv.spec.csi.volume_handle == handle
    assert pv.spec.csi.node_stage_secret_ref.name == "creds"
    assert pv.spec.csi.volume_attributes["url"] == f"{s3_bucket.url}/team/data"
    assert pv.spec.csi.volume_attributes["endpoint"] == s3_bucket.endpoint
    assert (pv.spec.claim_ref.namespace, pv.spec.claim_ref.name) == (cluster.namespace, "data")
    pvc = cluster.core.read_namespaced_persistent_volume_claim("data", cluster.namespace)
    assert pvc.spec.volume_name == handle
    assert pvc.metadata.owner_references[0].uid == uid

    table = cluster.kube.kubectl("get", "ofv", "-n", cluster.namespace).stdout.split("\n")
    assert table[0].split() == ["NAME", "BUCKET", "PHASE", "READY", "EXPORTED", "DIRTY",
                                "CONFLICTS", "NODES", "AGE"]
    assert table[1].split()[:4] == ["data", f"{s3_bucket.url}/team/data", "Ready", "True"]

    entry = json.loads(cluster.policy_entries()[handle])
    assert entry == status["effectivePolicy"]
    reasons = wait_for(lambda: {r for r, _ in cluster.events("data")} >= {
        "BucketReachable", "PersistentVolumeCreated", "ClaimCreated", "Ready"} or None,
        what="events")
    assert reasons
    # Nothing the operator wrote carries the secret.
    secret = s3_bucket.server.secret_key
    assert secret not in json.dumps(cluster.volume("data"))
    assert all(secret not in message for _, message in cluster.events("data"))
    assert secret not in str(pv.spec.csi.volume_attributes)


def test_update_reaches_the_channel_without_touching_the_pv(
        cluster: Cluster, operator: OperatorThread, s3_bucket: Bucket) -> None:
    uid = cluster.create_volume("data", volume_spec(s3_bucket, "u"))["metadata"]["uid"]
    handle = volume_handle(cluster.namespace, "data", uid)
    wait_for(lambda: cluster.ready("data"), what="volume Ready")
    before = cluster.core.read_persistent_volume(handle)
    cluster.patch_volume("data", {"spec": {"cache": {"ttl": "2h", "size": "1Gi"},
                                           "export": {"delay": "5s"}}})

    def applied() -> dict[str, int] | None:
        entry = json.loads(cluster.policy_entries().get(handle, "{}"))
        return entry if entry.get("cacheTTL") == 7200 else None

    entry = wait_for(applied, what="new policy in the ConfigMap")
    assert (entry["cacheSize"], entry["exportDelay"]) == (2**30, 5)
    body = wait_for(lambda: (b := cluster.volume("data"))["status"].get(
        "observedGeneration") == 2 and b, what="status of generation 2")
    assert body["status"]["effectivePolicy"]["cacheTTL"] == 7200
    after = cluster.core.read_persistent_volume(handle)
    assert after.metadata.resource_version == before.metadata.resource_version


def test_delete_waits_for_pods_and_keeps_data(cluster: Cluster, operator: OperatorThread,
                                              s3_bucket: Bucket) -> None:
    obstore.put(s3_bucket.store(), "keep/file", b"precious")
    uid = cluster.create_volume("data", volume_spec(s3_bucket, "keep"))["metadata"]["uid"]
    handle = volume_handle(cluster.namespace, "data", uid)
    wait_for(lambda: cluster.ready("data"), what="volume Ready")
    cluster.create_pod("app", "data")
    cluster.delete_volume("data")

    def waiting() -> dict[str, object] | None:
        cond = cluster.condition("data", "Ready")
        return cond if cond and cond["reason"] == "InUse" else None

    cond = wait_for(waiting, what="InUse condition")
    assert "app" in str(cond["message"])
    assert cluster.volume("data")["status"]["phase"] == "Terminating"
    wait_for(lambda: any(r == "InUse" for r, _ in cluster.events("data")), what="InUse event")
    pvc = cluster.core.read_namespaced_persistent_volume_claim("data", cluster.namespace)
    assert pvc.metadata.deletion_timestamp is None  # still in use: untouched

    cluster.delete_pod("app")
    wait_for(lambda: cluster.volume_gone("data"), what="volume gone")
    assert gone_or_deleting(lambda: cluster.core.read_namespaced_persistent_volume_claim(
        "data", cluster.namespace))
    assert gone_or_deleting(lambda: cluster.core.read_persistent_volume(handle))
    assert handle not in cluster.policy_entries()
    assert s3_bucket.keys() == ["keep/file"]  # reclaimPolicy Retain


def test_reclaim_delete_removes_only_the_prefix(cluster: Cluster, operator: OperatorThread,
                                                s3_bucket: Bucket) -> None:
    store = s3_bucket.store()
    for key in ("v/a", "v/b/c", "v2/x", "other/v/y"):
        obstore.put(store, key, b"x")
    cluster.create_volume("data", volume_spec(s3_bucket, "v", reclaimPolicy="Delete"))
    wait_for(lambda: cluster.ready("data"), what="volume Ready")
    cluster.delete_volume("data")
    wait_for(lambda: cluster.volume_gone("data"), what="volume gone")
    assert sorted(s3_bucket.keys()) == ["other/v/y", "v2/x"]
    deleted = wait_for(lambda: [m for r, m in cluster.events("data") if r == "DataDeleted"],
                       what="DataDeleted event")
    assert "deleted 2 objects" in deleted[0]


def test_a_pod_arriving_during_deletion_keeps_the_pv_and_the_data(
        cluster: Cluster, operator: OperatorThread, s3_bucket: Bucket,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A pod created just after the finalizer's first look at pods, before it deleted the
    claim: the PV and the data stay until that pod is gone."""
    obstore.put(s3_bucket.store(), "race/file", b"in use")
    uid = cluster.create_volume(
        "data", volume_spec(s3_bucket, "race", reclaimPolicy="Delete"))["metadata"]["uid"]
    handle = volume_handle(cluster.namespace, "data", uid)
    wait_for(lambda: cluster.ready("data"), what="volume Ready")
    looks: list[list[str]] = []
    first_look = Kube.pods_using_claim

    async def pod_slips_in(self: Kube, namespace: str, claim: str) -> list[str]:
        users = await first_look(self, namespace, claim)
        if not looks:  # the real API server, with a pod created in the finalizer's window
            cluster.create_pod("late", claim)
        looks.append(users)
        return users

    monkeypatch.setattr(Kube, "pods_using_claim", pod_slips_in)
    cluster.delete_volume("data")

    def waiting() -> dict[str, object] | None:
        cond = cluster.condition("data", "Ready")
        return cond if cond and cond["reason"] == "InUse" else None

    assert "late" in str(wait_for(waiting, what="InUse for the late pod")["message"])
    assert looks[0] == []  # the pod really arrived after the first look
    assert cluster.core.read_persistent_volume(handle).metadata.deletion_timestamp is None
    assert s3_bucket.keys("race/") == ["race/file"]
    cluster.delete_pod("late")
    wait_for(lambda: cluster.volume_gone("data"), what="volume gone")
    assert s3_bucket.keys("race/") == []


def test_a_namespace_deleted_with_its_secret_keeps_the_data_and_lets_go(
        cluster: Cluster, operator: OperatorThread, s3_bucket: Bucket,
        caplog: pytest.LogCaptureFixture) -> None:
    """Deleting a namespace removes its Secret as early as anything else; reclaimPolicy
    Delete then cannot run, and waiting for a Secret that will never return would hold the
    namespace in Terminating for ever. The data is kept and the volume goes."""
    obstore.put(s3_bucket.store(), "gone/file", b"kept")
    cluster.create_volume("data", volume_spec(s3_bucket, "gone", reclaimPolicy="Delete"))
    wait_for(lambda: cluster.ready("data"), what="volume Ready")
    cluster.core.delete_namespaced_secret("creds", cluster.namespace)
    # No controller-manager: the namespace stays Terminating with its content, as it would
    # while the namespace controller works through it.
    cluster.core.delete_namespace(cluster.namespace)
    cluster.delete_volume("data")
    wait_for(lambda: cluster.volume_gone("data"), what="volume gone")
    assert s3_bucket.keys("gone/") == ["gone/file"]
    assert f"objects under {s3_bucket.url}/gone/ are kept" in caplog.text


def test_invalid_spec_is_reported_and_creates_nothing(
        cluster: Cluster, operator: OperatorThread, s3_bucket: Bucket) -> None:
    spec = volume_spec(s3_bucket)
    spec["bucket"]["endpoint"] = "http://127.0.0.1:99999"  # passes the pattern, not a port
    uid = cluster.create_volume("bad", spec)["metadata"]["uid"]

    def invalid() -> dict[str, object] | None:
        cond = cluster.condition("bad", "Ready")
        return cond if cond and cond["reason"] == "InvalidSpec" else None

    cond = wait_for(invalid, what="InvalidSpec condition")
    assert str(cond["message"]).startswith("spec.bucket.endpoint:")
    assert cluster.volume("bad")["status"]["phase"] == "Invalid"
    assert pvs_of(cluster, uid) == []
    assert cluster.core.list_namespaced_persistent_volume_claim(cluster.namespace).items == []
    # Deleting an invalid volume needs no bucket and completes.
    cluster.delete_volume("bad")
    wait_for(lambda: cluster.volume_gone("bad"), what="invalid volume deleted")


def test_unreachable_bucket_recovers(cluster: Cluster, operator: OperatorThread,
                                     s3_bucket: Bucket) -> None:
    missing = "late-" + secrets.token_hex(6)
    spec = volume_spec(s3_bucket)
    spec["bucket"]["url"] = f"s3://{missing}/p"
    uid = cluster.create_volume("late", spec)["metadata"]["uid"]

    def unreachable() -> dict[str, object] | None:
        cond = cluster.condition("late", "BucketReachable")
        return cond if cond and cond["status"] == "False" else None

    cond = wait_for(unreachable, what="BucketReachable=False")
    assert cond["reason"] == "BucketUnreachable"
    assert missing in str(cond["message"])
    assert s3_bucket.server.secret_key not in str(cond["message"])
    assert pvs_of(cluster, uid) == []
    s3_bucket.server.admin().make_bucket(missing)
    body = wait_for(lambda: cluster.ready("late"), timeout=60, what="Ready after recovery")
    assert pvs_of(cluster, uid) == [body["status"]["pvName"]]


def test_missing_secret_recovers(cluster: Cluster, operator: OperatorThread,
                                 s3_bucket: Bucket) -> None:
    spec = volume_spec(s3_bucket)
    spec["bucket"]["credentialsSecretRef"]["name"] = "later"
    cluster.create_volume("data", spec)

    def not_ready() -> dict[str, object] | None:
        cond = cluster.condition("data", "BucketReachable")
        return cond if cond and cond["reason"] == "SecretNotReady" else None

    cond = wait_for(not_ready, what="SecretNotReady")
    assert "later" in str(cond["message"])
    data = {k: base64.b64encode(v.encode()).decode() for k, v in s3_bucket.secret.items()}
    cluster.core.create_namespaced_secret(cluster.namespace,
                                          {"metadata": {"name": "later"}, "data": data})
    wait_for(lambda: cluster.ready("data"), timeout=60, what="Ready once the Secret exists")


def test_wrong_credentials_never_leak(cluster: Cluster, operator: OperatorThread,
                                      s3_bucket: Bucket, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "wrong-secret-" + secrets.token_hex(8)
    cluster.core.create_namespaced_secret(cluster.namespace, {
        "metadata": {"name": "wrong"},
        "stringData": {"accessKeyId": s3_bucket.server.access_key, "secretAccessKey": wrong}})
    spec = volume_spec(s3_bucket, "w")
    spec["bucket"]["credentialsSecretRef"]["name"] = "wrong"
    with caplog.at_level("DEBUG"):
        cluster.create_volume("data", spec)

        def refused() -> dict[str, object] | None:
            cond = cluster.condition("data", "BucketReachable")
            return cond if cond and cond["status"] == "False" else None

        cond = wait_for(refused, what="BucketReachable=False")
        wait_for(lambda: cluster.events("data"), what="an event")
    assert s3_bucket.url in str(cond["message"])
    exposed = [json.dumps(cluster.volume("data")), str(cluster.events("data")), caplog.text]
    # The Secret travels base64-encoded in API responses: look for that form as well.
    encoded = base64.b64encode(wrong.encode()).decode()
    assert all(wrong not in text and encoded not in text for text in exposed)
    assert "failed temporarily" in caplog.text  # the log was really captured


def test_a_claim_deleted_by_hand_is_recreated(cluster: Cluster, operator: OperatorThread,
                                              s3_bucket: Bucket) -> None:
    cluster.create_volume("data", volume_spec(s3_bucket, "drift"))
    wait_for(lambda: cluster.ready("data"), what="volume Ready")
    read = cluster.core.read_namespaced_persistent_volume_claim
    first = read("data", cluster.namespace).metadata.uid
    cluster.core.delete_namespaced_persistent_volume_claim("data", cluster.namespace)
    # No controller-manager: drop pvc-protection as it would, no pod using the claim.
    cluster.core.patch_namespaced_persistent_volume_claim(
        "data", cluster.namespace, {"metadata": {"finalizers": None}})
    again = wait_for(lambda: (uid := read("data", cluster.namespace).metadata.uid) != first
                     and uid, timeout=30, what="claim recreated")
    assert again != first
    wait_for(lambda: cluster.ready("data"), what="Ready again")
