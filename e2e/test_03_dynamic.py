"""Scenario 3: dynamic provisioning from a StorageClass of the driver.

A PVC of the class gets its own prefix (``base/<pv name>``) in the bucket; a
pod's data lands there; deleting the PVC removes that prefix when the class
says ``deleteData: "true"`` and keeps it otherwise. A key beside the prefix is
never touched.
"""

from __future__ import annotations

import secrets as random

import obstore
import pytest

from e2e.kubectl import Kubectl, wait_for
from e2e.release import Cluster, ObjectStore
from e2e.workload import DRIVER, pod, run_pod, secret, wait_keys
from fixtures.minio import REGION


@pytest.mark.parametrize("delete_data", [True, False], ids=["deleteData", "keepData"])
def test_a_claim_of_the_class_gets_its_own_prefix(
    cluster: Cluster, object_store: ObjectStore, namespace: str, delete_data: bool
) -> None:
    kube: Kubectl = cluster.kube
    bucket = object_store.bucket()
    obstore.put(bucket.store(), "base/neighbour.txt", b"not the volume's")
    kube.apply(secret("creds", namespace, bucket))
    klass = f"openfiles-e2e-{random.token_hex(3)}"
    kube.apply(
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": klass},
            "provisioner": DRIVER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
            "parameters": {
                "url": f"s3://{bucket.name}/base",
                "endpoint": object_store.cluster_endpoint,
                "region": REGION,
                "exportDelay": "1s",
                "deleteData": "true" if delete_data else "false",
                "csi.storage.k8s.io/provisioner-secret-name": "creds",
                "csi.storage.k8s.io/provisioner-secret-namespace": namespace,
                "csi.storage.k8s.io/node-stage-secret-name": "creds",
                "csi.storage.k8s.io/node-stage-secret-namespace": namespace,
            },
        }
    )
    try:
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "claim", "namespace": namespace},
                "spec": {
                    "accessModes": ["ReadWriteMany"],
                    "storageClassName": klass,
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }
        )

        def bound() -> str | None:
            pvc = kube.get("pvc", "claim", namespace) or {}
            if pvc.get("status", {}).get("phase") != "Bound":
                return None
            return str(pvc["spec"]["volumeName"])

        pv = wait_for("the claim Bound", bound, timeout=120)
        run_pod(kube, pod("writer", namespace, "claim", "echo dynamic > /data/hello.txt"))
        wait_keys(bucket, {f"base/{pv}/hello.txt"}, "base/")
        assert bytes(obstore.get(bucket.store(), f"base/{pv}/hello.txt").bytes()) == b"dynamic\n"

        kube.delete("pod", "writer", namespace)
        kube.delete("pvc", "claim", namespace)
        wait_for(f"PV {pv} gone", lambda: kube.get("pv", pv) is None, timeout=120)
        left = bucket.keys("base/")
        if delete_data:
            assert left == ["base/neighbour.txt"], left
        else:
            assert f"base/{pv}/hello.txt" in left and "base/neighbour.txt" in left, left
    finally:
        kube.delete("storageclass", klass)
