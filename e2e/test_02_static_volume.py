"""Scenario 2: a static volume, written by one pod and read back by another.

A Secret and an OpenFilesVolume on MinIO; the writer pod writes one file of
200 MiB, many small files, renames one and changes another's mode, and exits.
The objects are in the bucket with the same bytes (checked with the bucket's
own API), and a second pod, started after the first is gone, reads them back
with the same checksums, names and mode.
"""

from __future__ import annotations

import hashlib

import obstore

from e2e.kubectl import Kubectl
from e2e.release import Cluster, ObjectStore
from e2e.workload import pod, run_pod, secret, volume, wait_keys, wait_volume_ready

WRITER = """
mkdir -p /data/small
head -c 200M /dev/urandom > /data/big.bin
for i in $(seq 1 100); do echo "small file $i" > /data/small/f$i.txt; done
echo "to be renamed" > /data/old-name.txt
mv /data/old-name.txt /data/new-name.txt
echo "private" > /data/private.txt
chmod 600 /data/private.txt
sha256sum /data/big.bin | cut -d' ' -f1
"""

READER = """
sha256sum /data/big.bin | cut -d' ' -f1
ls /data/small | wc -l
cat /data/new-name.txt
test ! -e /data/old-name.txt && echo "old name gone"
stat -c %a /data/private.txt
"""


def test_a_pod_writes_and_a_second_pod_reads_back(
    cluster: Cluster, object_store: ObjectStore, namespace: str
) -> None:
    kube: Kubectl = cluster.kube
    bucket = object_store.bucket()
    kube.apply(secret("creds", namespace, bucket))
    kube.apply(volume("data", namespace, object_store, f"s3://{bucket.name}/vol", "creds"))
    wait_volume_ready(kube, "data", namespace)

    digest = run_pod(kube, pod("writer", namespace, "data", WRITER), timeout=600).split()[-1]
    kube.delete("pod", "writer", namespace)

    expected = {"vol/big.bin", "vol/new-name.txt", "vol/private.txt"} | {
        f"vol/small/f{i}.txt" for i in range(1, 101)
    }
    keys = wait_keys(bucket, expected, "vol/", timeout=180)
    assert "vol/old-name.txt" not in keys
    body = obstore.get(bucket.store(), "vol/big.bin").bytes()
    assert len(body) == 200 * 1024 * 1024
    assert hashlib.sha256(bytes(body)).hexdigest() == digest
    small = obstore.get(bucket.store(), "vol/small/f7.txt").bytes()
    assert bytes(small) == b"small file 7\n"

    lines = run_pod(kube, pod("reader", namespace, "data", READER), timeout=300).splitlines()
    assert lines == [digest, "100", "to be renamed", "old name gone", "600"], lines
