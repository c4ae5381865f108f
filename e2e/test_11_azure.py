"""Scenario 11: a static volume on an Azure Blob container (Azurite in the cluster's
network namespace, e2e/cluster/azurite.sh).

A Secret with the storage account's key and an OpenFilesVolume ``az://CONTAINER/vol``
with its ``account``; the writer pod writes a 20 MiB file and small files, renames one,
and exits. The blobs are in the container with the same bytes (checked with obstore,
past OpenFiles), a second pod reads them back, and nothing the operator wrote shows
the key.
"""

from __future__ import annotations

import hashlib
import json

import obstore

from e2e.azurite import ClusterAzurite
from e2e.kubectl import Kubectl
from e2e.release import Cluster, ObjectStore
from e2e.workload import pod, run_pod, secret, volume, wait_keys, wait_volume_ready
from fixtures.azurite import Container

WRITER = """
dd if=/dev/urandom of=/data/blob.bin bs=1M count=20 status=none
mkdir -p /data/labels/train
seq 1 20 | xargs -I{} sh -c 'echo "label {}" > /data/labels/train/{}.txt'
echo draft > /data/draft.txt && mv /data/draft.txt /data/final.txt
md5sum /data/blob.bin | awk '{print $1}'
"""

READER = """
md5sum /data/blob.bin | awk '{print $1}'
find /data/labels/train -type f | wc -l
cat /data/final.txt /data/labels/train/7.txt
[ -e /data/draft.txt ] || echo "draft gone"
"""


def test_a_pod_writes_to_an_azure_container_and_a_second_pod_reads_back(
    cluster: Cluster, object_store: ObjectStore, azurite: ClusterAzurite, namespace: str
) -> None:
    kube: Kubectl = cluster.kube
    container = Container.fresh(azurite)  # type: ignore[arg-type]
    kube.apply(secret("azure-creds", namespace, container))
    location = {"endpoint": azurite.cluster_endpoint, "account": azurite.account}
    kube.apply(volume("images", namespace, object_store, f"az://{container.name}/vol",
                      "azure-creds", location=location))
    ofv = wait_volume_ready(kube, "images", namespace)
    assert azurite.account_key not in json.dumps(ofv)

    digest = run_pod(kube, pod("writer", namespace, "images", WRITER), timeout=600).split()[-1]
    kube.delete("pod", "writer", namespace)

    labels = {f"vol/labels/train/{i}.txt" for i in range(1, 21)}
    keys = wait_keys(container, {"vol/blob.bin", "vol/final.txt"} | labels, "vol/", timeout=180)
    assert "vol/draft.txt" not in keys
    blob = bytes(obstore.get(container.store(), "vol/blob.bin").bytes())
    assert (len(blob), hashlib.md5(blob).hexdigest()) == (20 * 2**20, digest)

    lines = run_pod(kube, pod("reader", namespace, "images", READER), timeout=300).splitlines()
    assert lines == [digest, "20", "draft", "label 7", "draft gone"], lines
    pv = kube.get("pv", ofv["status"]["pvName"], None)
    assert pv is not None
    assert pv["spec"]["csi"]["volumeAttributes"]["account"] == azurite.account
    assert azurite.account_key not in json.dumps(pv)
