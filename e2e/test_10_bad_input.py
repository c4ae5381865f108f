"""Scenario 10: bad input says why, leaks no credential, and heals when fixed.

A wrong secret, an endpoint where nothing listens, and a bucket that does not
exist: each OpenFilesVolume says why in its ``BucketReachable`` condition and
in an Event; a pod that uses its claim stays Pending with an event that names
the claim; no credential appears in any status, Event or pod event. Fixing the
Secret (or creating the bucket) heals the volume without recreating anything,
and the waiting pod then runs.
"""

from __future__ import annotations

import json

import obstore
import pytest

from e2e.kubectl import Kubectl, wait_for
from e2e.release import Cluster, ObjectStore
from e2e.workload import condition, pod, secret, volume, wait_volume_ready
from fixtures.minio import Bucket


def _unreachable(store: ObjectStore) -> str:
    # The node IP at a port where nothing listens: refused at once, inside the cluster.
    return store.cluster_endpoint.rsplit(":", 1)[0] + ":9"


@pytest.mark.parametrize("fault", ["wrong-secret", "unreachable-endpoint", "missing-bucket"])
def test_the_volume_says_why_and_heals(
    cluster: Cluster, object_store: ObjectStore, namespace: str, fault: str
) -> None:
    kube: Kubectl = cluster.kube
    bucket = object_store.bucket()
    wrong_key = "wrong-" + bucket.secret["secretAccessKey"][:8] + "-not-the-key"
    name = bucket.name + ("-absent" if fault == "missing-bucket" else "")
    if fault == "wrong-secret":
        kube.apply(secret("creds", namespace, bucket, secretAccessKey=wrong_key))
    else:
        kube.apply(secret("creds", namespace, bucket))
    endpoint = _unreachable(object_store) if fault == "unreachable-endpoint" else None
    kube.apply(
        volume("data", namespace, object_store, f"s3://{name}/v", "creds", endpoint=endpoint)
    )
    kube.apply(pod("user", namespace, "data", "cat /data/hello"))

    def refused() -> dict[str, str] | None:
        cond = condition(kube.get("openfilesvolume", "data", namespace), "BucketReachable")
        return cond if cond and cond.get("status") == "False" else None

    cond = wait_for("BucketReachable False", refused, timeout=120)
    assert cond.get("reason") and cond.get("message"), cond
    events = kube.events(namespace, "OpenFilesVolume", "data")
    assert any(e.get("type") == "Warning" for e in events), events

    def pod_event() -> bool:
        return any("data" in e.get("message", "") for e in kube.events(namespace, "Pod", "user"))

    wait_for("an event on the pod that names its claim", pod_event, timeout=60)
    assert kube.pod_phase("user", namespace) == "Pending"

    everything = json.dumps(
        [
            kube.get("openfilesvolume", "data", namespace),
            kube.items("events", namespace),
        ]
    )
    for credential in (bucket.secret["secretAccessKey"], wrong_key, bucket.secret["accessKeyId"]):
        assert credential not in everything, "a credential leaked into a status or an Event"

    if fault == "unreachable-endpoint":
        return  # the endpoint cannot change on a volume (immutable); nothing to heal
    uid = kube.get("openfilesvolume", "data", namespace)["metadata"]["uid"]
    # The file the waiting pod reads goes in first; then the fault is fixed.
    if fault == "missing-bucket":
        object_store.server.admin().make_bucket(name)
    obstore.put(Bucket(name=name, server=object_store.server).store(), "v/hello", b"healed\n")
    if fault == "wrong-secret":
        kube.apply(secret("creds", namespace, bucket))
    wait_volume_ready(kube, "data", namespace, timeout=180)
    assert kube.get("openfilesvolume", "data", namespace)["metadata"]["uid"] == uid
    # The pod was made before its claim existed. If the scheduler's requeue on the
    # claim's arrival is missed, its periodic flush of unschedulable pods (5 min in
    # Kubernetes 1.34) still retries it: wait past that (seen once under load).
    kube.wait_pod("user", namespace, ["Succeeded"], timeout=330)
    assert kube.logs("user", namespace) == "healed\n"
