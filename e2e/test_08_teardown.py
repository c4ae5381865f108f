"""Scenario 8: teardown exports first.

With ``export.delay: 1h`` nothing is uploaded while the pod runs. The pod
writes, keeps running, and is deleted; NodeUnpublishVolume and NodeUnstageVolume
export the dirty data before the engine stops, so the bytes are in the bucket
long before the hour.
"""

from __future__ import annotations

import obstore

from e2e.kubectl import Kubectl, wait_for
from e2e.release import Cluster, ObjectStore
from e2e.workload import pause, pod, secret, volume, wait_keys, wait_volume_ready


def test_deleting_the_pod_exports_before_the_engine_stops(
    cluster: Cluster, object_store: ObjectStore, namespace: str
) -> None:
    kube: Kubectl = cluster.kube
    bucket = object_store.bucket()
    kube.apply(secret("creds", namespace, bucket))
    kube.apply(
        volume("slow", namespace, object_store, f"s3://{bucket.name}/t", "creds", export_delay="1h")
    )
    wait_volume_ready(kube, "slow", namespace)
    # The pod keeps running after its writes: the kubelet unpublishes the volume of a pod that
    # ends at once, and this test wants to start that teardown itself.
    script = (
        "head -c 5M /dev/zero | tr '\\0' x > /data/late.bin; echo done > /data/note; "
        "echo written; sleep 3600"
    )
    kube.apply(pod("writer", namespace, "slow", script))
    wait_for("the writes", lambda: "written" in kube.logs("writer", namespace), timeout=180)
    pause(5)  # longer than the 1 s other volumes wait: nothing may be exported yet
    assert [k for k in bucket.keys("t/") if not k.endswith(".openfiles-volume.json")] == [], (
        "exported before the delay: this test would prove nothing"
    )

    kube.delete("pod", "writer", namespace, timeout=120)
    wait_keys(bucket, {"t/late.bin", "t/note"}, "t/", timeout=120)
    assert bytes(obstore.get(bucket.store(), "t/late.bin").bytes()) == b"x" * (5 * 2**20)
    assert bytes(obstore.get(bucket.store(), "t/note").bytes()) == b"done\n"
