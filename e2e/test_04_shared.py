"""Scenario 4: two pods on the node share one ReadWriteMany volume.

Each pod writes a file and closes it; the other opens it and reads it while
both pods keep running (one staged engine serves both publishes).
"""

from __future__ import annotations

from e2e.kubectl import Kubectl, wait_for
from e2e.release import Cluster, ObjectStore
from e2e.workload import pod, secret, volume, wait_volume_ready


def test_each_pod_sees_the_other_files(
    cluster: Cluster, object_store: ObjectStore, namespace: str
) -> None:
    kube: Kubectl = cluster.kube
    bucket = object_store.bucket()
    kube.apply(secret("creds", namespace, bucket))
    kube.apply(volume("shared", namespace, object_store, f"s3://{bucket.name}/shared", "creds"))
    wait_volume_ready(kube, "shared", namespace)
    for name in ("alpha", "beta"):
        kube.apply(pod(name, namespace, "shared", "sleep 3600"))
    for name in ("alpha", "beta"):
        kube.wait_pod(name, namespace, ["Running"], timeout=180)

    kube.exec("alpha", namespace, "bash", "-c", "echo from alpha > /data/a.txt")
    kube.exec("beta", namespace, "bash", "-c", "echo from beta > /data/b.txt")
    assert kube.exec("beta", namespace, "cat", "/data/a.txt") == "from alpha\n"
    assert kube.exec("alpha", namespace, "cat", "/data/b.txt") == "from beta\n"
    listing = kube.exec("alpha", namespace, "ls", "/data").split()
    assert listing == ["a.txt", "b.txt"], listing

    # An append by one is seen by the other at its next open.
    kube.exec("beta", namespace, "bash", "-c", "echo again >> /data/a.txt")
    wait_for(
        "alpha to see beta's append",
        lambda: kube.exec("alpha", namespace, "cat", "/data/a.txt") == "from alpha\nagain\n",
        timeout=10,
    )
