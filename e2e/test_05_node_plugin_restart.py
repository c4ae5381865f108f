"""Scenario 5: the node plugin dies while a pod writes 1 GiB.

The node plugin's pod is killed (no grace) while the writer is in the middle
of its file; the DaemonSet brings a new one. The engines live in the mounter,
so the writer sees no error, and the object in the bucket has the checksum the
writer computed.
"""

from __future__ import annotations

import hashlib

import obstore

from e2e.kubectl import Kubectl, wait_for
from e2e.release import SYSTEM_NS, Cluster, ObjectStore
from e2e.workload import pod, secret, volume, wait_keys, wait_volume_ready

WRITER = """
rm -f /data/big.bin
for i in $(seq 1 16); do
  head -c 64M /dev/urandom >> /data/big.bin
  echo "chunk $i"
done
sha256sum /data/big.bin | cut -d' ' -f1
"""


def _node_plugin(kube: Kubectl) -> str:
    pods = kube.items("pods", SYSTEM_NS, "app.kubernetes.io/component=csi-node")
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return str(pods[0]["metadata"]["name"])


def test_the_writer_sees_no_error_and_the_bucket_has_its_bytes(
    cluster: Cluster, object_store: ObjectStore, namespace: str
) -> None:
    kube: Kubectl = cluster.kube
    bucket = object_store.bucket()
    kube.apply(secret("creds", namespace, bucket))
    kube.apply(volume("data", namespace, object_store, f"s3://{bucket.name}/v", "creds"))
    wait_volume_ready(kube, "data", namespace)
    old = _node_plugin(kube)

    kube.apply(pod("writer", namespace, "data", WRITER))
    wait_for("the writer's third chunk", lambda: "chunk 3" in kube.logs("writer", namespace), 300)
    kube("delete", "pod", old, "-n", SYSTEM_NS, "--grace-period=0", "--force")
    assert "chunk 16" not in kube.logs("writer", namespace), "the kill came too late to count"

    kube.wait_pod("writer", namespace, ["Succeeded"], timeout=600)
    log = kube.logs("writer", namespace).split()
    digest = log[-1]
    assert log[-3:-1] == ["chunk", "16"], log

    def replaced() -> bool:
        pods = kube.items("pods", SYSTEM_NS, "app.kubernetes.io/component=csi-node")
        return any(
            p["metadata"]["name"] != old and p["status"].get("phase") == "Running" for p in pods
        )

    wait_for("a new node plugin", replaced, timeout=120)
    wait_keys(bucket, {"v/big.bin"}, "v/", timeout=300)

    def exported() -> bool:
        meta = obstore.head(bucket.store(), "v/big.bin")
        return bool(meta["size"] == 1024 * 1024 * 1024)

    wait_for("the whole file in the bucket", exported, timeout=300)
    body = obstore.get(bucket.store(), "v/big.bin").bytes()
    assert hashlib.sha256(bytes(body)).hexdigest() == digest
