"""Scenario 9: deleting an OpenFilesVolume.

The deletion waits while a pod uses the claim (the volume's status and an Event
name the pod), and once the pod is gone the operator removes the PVC and the
PV. With ``reclaimPolicy: Retain`` the bucket keeps the data; with ``Delete``
only the volume's prefix is removed and a key beside it stays.
"""

from __future__ import annotations

import obstore
import pytest

from e2e.kubectl import Kubectl, wait_for
from e2e.release import Cluster, ObjectStore
from e2e.workload import pod, secret, volume, wait_keys, wait_volume_ready


@pytest.mark.parametrize("reclaim", ["Retain", "Delete"])
def test_deletion_waits_for_the_pod_then_reclaims(
    cluster: Cluster, object_store: ObjectStore, namespace: str, reclaim: str
) -> None:
    kube: Kubectl = cluster.kube
    bucket = object_store.bucket()
    obstore.put(bucket.store(), "beside/keep.txt", b"not the volume's")
    kube.apply(secret("creds", namespace, bucket))
    kube.apply(
        volume("data", namespace, object_store, f"s3://{bucket.name}/vol", "creds", reclaim=reclaim)
    )
    wait_volume_ready(kube, "data", namespace)
    pv = kube.get("pvc", "data", namespace)["spec"]["volumeName"]
    kube.apply(pod("user", namespace, "data", "echo mine > /data/file.txt; sleep 3600"))
    kube.wait_pod("user", namespace, ["Running"], timeout=180)
    wait_keys(bucket, {"vol/file.txt"}, "vol/")

    kube.delete("openfilesvolume", "data", namespace, wait=False)

    def waiting_event() -> bool:
        events = kube.events(namespace, "OpenFilesVolume", "data")
        return any(e.get("reason") == "InUse" and "user" in e.get("message", "") for e in events)

    wait_for("an InUse Event naming the pod", waiting_event, timeout=60)
    assert kube.get("pvc", "data", namespace) is not None, "the claim went while a pod used it"
    assert kube.get("openfilesvolume", "data", namespace) is not None
    assert kube.pod_phase("user", namespace) == "Running"

    kube.delete("pod", "user", namespace, timeout=120)
    wait_for(
        "the volume gone",
        lambda: kube.get("openfilesvolume", "data", namespace) is None,
        timeout=180,
    )
    assert kube.get("pvc", "data", namespace) is None
    wait_for(f"PV {pv} gone", lambda: kube.get("pv", pv) is None, timeout=60)
    keys = bucket.keys()
    if reclaim == "Retain":
        assert "vol/file.txt" in keys and "beside/keep.txt" in keys, keys
    else:
        assert keys == ["beside/keep.txt"], keys
