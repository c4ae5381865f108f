"""The endpoint policy and the error text the operator shows, against a real kube-apiserver
and MinIO, operator in-process.

A refused endpoint must see no request at all: the volume points at a listening socket
that counts connections. A store's error answer must reach the status only as a
classified reason (HTTP status and S3 code), never as its body.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import obstore
import pytest
from operator_cluster import Cluster, OperatorThread, volume_spec, wait_for

from fixtures.kube import KubeCluster
from fixtures.minio import Bucket
from fixtures.net import Trap
from openfiles_contracts.endpoint import EndpointPolicy

pytestmark = [pytest.mark.cluster, pytest.mark.s3]


@pytest.fixture
def guarded(crds: KubeCluster, s3_bucket: Bucket) -> Iterator[OperatorThread]:
    """An operator whose policy allows MinIO's endpoint only."""
    policy = EndpointPolicy([s3_bucket.endpoint])
    running = OperatorThread(crds, endpoint_policy=policy).start()
    yield running
    running.stop()


def test_a_refused_endpoint_is_never_called(cluster: Cluster, guarded: OperatorThread,
                                            s3_bucket: Bucket,
                                            trap: Trap) -> None:
    endpoint = trap.url
    spec = volume_spec(s3_bucket, "p")
    spec["bucket"]["endpoint"] = endpoint
    uid = cluster.create_volume("elsewhere", spec)["metadata"]["uid"]

    def refused() -> dict[str, object] | None:
        cond = cluster.condition("elsewhere", "Ready")
        return cond if cond and cond["reason"] == "EndpointNotAllowed" else None

    cond = wait_for(refused, what="EndpointNotAllowed")
    assert str(cond["message"]).startswith(f"spec.bucket.endpoint: endpoint '{endpoint}'")
    assert s3_bucket.endpoint in str(cond["message"])  # the allowed list is shown
    reachable = cluster.condition("elsewhere", "BucketReachable")
    assert reachable is not None and reachable["reason"] == "EndpointNotAllowed"
    assert cluster.volume("elsewhere")["status"]["phase"] == "Invalid"
    wait_for(lambda: ("EndpointNotAllowed" in {r for r, _ in cluster.events("elsewhere")})
             or None, what="EndpointNotAllowed event")
    labels = f"openfiles.io/volume-uid={uid}"
    assert cluster.core.list_persistent_volume(label_selector=labels).items == []

    # The allowed endpoint still works under the same operator.
    cluster.create_volume("minio", volume_spec(s3_bucket, "q"))
    wait_for(lambda: cluster.ready("minio"), what="allowed volume Ready")
    assert trap.connections() == 0

    # Deleting the refused volume needs no request either.
    cluster.delete_volume("elsewhere")
    wait_for(lambda: cluster.volume_gone("elsewhere"), what="refused volume deleted")
    assert trap.connections() == 0


@pytest.mark.parametrize("case", ["wrong-secret", "missing-bucket"])
def test_a_store_error_reaches_the_status_as_a_reason_only(
        cluster: Cluster, operator: OperatorThread, s3_bucket: Bucket, case: str) -> None:
    spec = volume_spec(s3_bucket, "p")
    if case == "wrong-secret":
        cluster.core.create_namespaced_secret(cluster.namespace, {
            "metadata": {"name": "wrong"},
            "stringData": {"accessKeyId": s3_bucket.server.access_key,
                           "secretAccessKey": "wrong-" + secrets.token_hex(8)}})
        spec["bucket"]["credentialsSecretRef"]["name"] = "wrong"
        url, expected = f"{s3_bucket.url}/p", "403 Forbidden (SignatureDoesNotMatch)"
    else:
        url = "s3://missing-" + secrets.token_hex(6)
        spec["bucket"]["url"] = url + "/p"
        url, expected = url + "/p", "404 Not Found (NoSuchBucket)"
    cluster.create_volume("data", spec)

    def refused() -> dict[str, object] | None:
        cond = cluster.condition("data", "BucketReachable")
        return cond if cond and cond["status"] == "False" else None

    cond = wait_for(refused, what="BucketReachable=False")
    message = str(cond["message"])
    assert cond["reason"] == "BucketUnreachable"
    assert message.startswith(f"cannot list {url}: ") and message.endswith(expected), message
    events = wait_for(lambda: [m for r, m in cluster.events("data")
                               if r == "BucketUnreachable"] or None, what="the event")
    # MinIO's error body is XML with a human message, the resource and a request id.
    for text in [message, *events, json.dumps(cluster.volume("data")["status"])]:
        for piece in ("<", "Message", "RequestId", "HostId", "Resource", "signature we",
                      "does not exist"):
            assert piece not in text, (piece, text)


def test_data_behind_an_endpoint_no_longer_allowed_is_kept(
        cluster: Cluster, crds: KubeCluster, s3_bucket: Bucket) -> None:
    """reclaimPolicy Delete after the policy dropped the endpoint: nothing is sent there."""
    first = OperatorThread(crds).start()
    try:
        cluster.create_volume("old", volume_spec(s3_bucket, "old", reclaimPolicy="Delete"))
        wait_for(lambda: cluster.ready("old"), what="volume Ready before the policy")
    finally:
        first.stop()
    obstore.put(s3_bucket.store(), "old/file", b"keep")
    second = OperatorThread(crds, endpoint_policy=EndpointPolicy(["https://s3.example.com"]))
    second.start()
    try:
        cluster.delete_volume("old")
        wait_for(lambda: cluster.volume_gone("old"), what="volume gone")
    finally:
        second.stop()
    assert s3_bucket.keys("old/") == ["old/file"]
    kept = [m for r, m in cluster.events("old") if r == "DataKept"]
    assert kept and "not allowed by the cluster's endpoint policy" in kept[0], kept
