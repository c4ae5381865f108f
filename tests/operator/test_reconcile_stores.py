"""gs:// and az:// OpenFilesVolumes against a real kube-apiserver and the emulators
(fixtures/gcs.py, fixtures/azurite.py), operator in-process: each store's Secret keys
are checked (a clear SecretNotReady), the bucket answers a list call, and the PV
carries what the node needs (the account for Azure, never a credential).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from operator_cluster import Cluster, OperatorThread, wait_for

from fixtures.azurite import Container
from fixtures.gcs import Bucket as GcsBucket
from fixtures.kube import KubeCluster
from fixtures.net import Trap
from fixtures.server import ServerBucket
from openfiles_contracts.endpoint import EndpointPolicy
from openfiles_operator.volume import volume_handle

pytestmark = [pytest.mark.cluster, pytest.mark.s3, pytest.mark.gcs, pytest.mark.azure]


def store_spec(bucket: ServerBucket, prefix: str, secret: str) -> dict[str, Any]:
    """A volume of ``bucket`` under ``prefix`` with Secret ``secret``."""
    return {"bucket": {"url": f"{bucket.url}/{prefix}", **bucket.context,
                       "credentialsSecretRef": {"name": secret}}}


def put_secret(cluster: Cluster, name: str, data: dict[str, str]) -> None:
    body = {"metadata": {"name": name}, "stringData": data}
    try:
        cluster.core.create_namespaced_secret(cluster.namespace, body)
    except Exception:  # it exists: replace it
        cluster.core.replace_namespaced_secret(name, cluster.namespace, body)


def reason(cluster: Cluster, name: str, wanted: str) -> dict[str, Any] | None:
    cond = cluster.condition(name, "BucketReachable")
    return cond if cond and cond["reason"] == wanted else None


def test_gcs_and_azure_volumes_become_ready(cluster: Cluster, operator: OperatorThread,
                                           gcs_bucket: GcsBucket,
                                           az_container: Container) -> None:
    put_secret(cluster, "gs-creds", gcs_bucket.secret)
    put_secret(cluster, "az-key", az_container.secret)
    put_secret(cluster, "az-sas", {"sasToken": az_container.sas_token()})
    volumes = {"gs": (gcs_bucket, "gs-creds"), "az-key": (az_container, "az-key"),
               "az-sas": (az_container, "az-sas")}
    uids = {name: cluster.create_volume(name, store_spec(bucket, name, secret))["metadata"]["uid"]
            for name, (bucket, secret) in volumes.items()}
    for name, (bucket, secret) in volumes.items():
        body = wait_for(lambda n=name: cluster.ready(n), what=f"{name} Ready")  # type: ignore[misc]
        listed = cluster.condition(name, "BucketReachable", body)
        assert listed is not None and listed["message"] == f"listed {bucket.url}/{name}"
        pv = cluster.core.read_persistent_volume(volume_handle(cluster.namespace, name, uids[name]))
        attributes = pv.spec.csi.volume_attributes
        assert attributes["url"] == f"{bucket.url}/{name}"
        assert {k: attributes[k] for k in bucket.context} == bucket.context
        assert pv.spec.csi.node_stage_secret_ref.name == secret
        written = json.dumps([cluster.volume(name), cluster.events(name), attributes])
        for value in [*gcs_bucket.secret.values(), *az_container.secret.values()]:
            assert value not in written


@pytest.mark.parametrize(("store", "data", "message"), [
    ("az", {"accessKeyId": "AK", "secretAccessKey": "SK"},
     r"keys \['accessKeyId', 'secretAccessKey'\] are not taken by a az:// volume"),
    ("az", {"accountName": "devstoreaccount1"}, "no key accountKey or sasToken"),
    ("az", {"accountName": "someoneelse", "accountKey": "S0VZ"}, "accountName differs"),
    ("gs", {"serviceAccountKey": "{\"private_key\": \"-----BEGIN"}, "is not JSON"),
    ("gs", {"serviceAccountKey": ""}, "no key serviceAccountKey"),
])
def test_a_secret_without_the_stores_keys_is_not_ready_until_fixed(
        cluster: Cluster, operator: OperatorThread, gcs_bucket: GcsBucket,
        az_container: Container, store: str, data: dict[str, str], message: str) -> None:
    bucket: ServerBucket = az_container if store == "az" else gcs_bucket
    put_secret(cluster, "partial", data)
    cluster.create_volume("data", store_spec(bucket, "p", "partial"))
    cond = wait_for(lambda: reason(cluster, "data", "SecretNotReady"), what="SecretNotReady")
    assert cond["message"].startswith(f"Secret {cluster.namespace}/partial: ")
    assert re.search(message, cond["message"]), cond["message"]
    for value in filter(None, data.values()):
        assert value not in json.dumps(cluster.volume("data")["status"])
    assert cluster.volume("data")["status"]["phase"] == "Pending"
    put_secret(cluster, "partial", bucket.secret)  # the fix heals it: no new spec needed
    wait_for(lambda: cluster.ready("data"), what="Ready after the Secret was fixed")


def test_a_wrong_azure_key_is_a_classified_reason(cluster: Cluster, operator: OperatorThread,
                                                 az_container: Container) -> None:
    put_secret(cluster, "wrong", {"accountKey": "d3Jvbmcta2V5LVpxODE="})
    cluster.create_volume("data", store_spec(az_container, "p", "wrong"))
    cond = wait_for(lambda: reason(cluster, "data", "BucketUnreachable"), what="unreachable")
    message = cond["message"]
    assert message.startswith(f"cannot list {az_container.url}/p: ") and "403" in message
    assert "d3Jvbmcta2V5" not in message and "<" not in message


def test_gcs_and_azure_endpoints_go_through_the_endpoint_policy(
        cluster: Cluster, crds: KubeCluster, gcs_bucket: GcsBucket, az_container: Container,
        trap: Trap) -> None:
    """Only Azurite is allowed: a gs:// volume whose endpoint is elsewhere is refused before
    its Secret is read, and a service-account key may not bring an endpoint of its own
    (gcs_base_url), which the policy never saw."""
    put_secret(cluster, "az-key", az_container.secret)
    put_secret(cluster, "gs-creds", gcs_bucket.secret)
    sneaky = json.dumps({"client_email": "", "private_key": "", "disable_oauth": True,
                         "gcs_base_url": trap.url})
    put_secret(cluster, "gs-sneaky", {"serviceAccountKey": sneaky})
    # Azurite's endpoint is http://127.0.0.1:PORT/ACCOUNT; a pattern has no path.
    allowed = az_container.endpoint.rsplit("/", 1)[0]
    guarded = OperatorThread(crds, endpoint_policy=EndpointPolicy([allowed]))
    guarded.start()
    try:
        cluster.create_volume("azure", store_spec(az_container, "a", "az-key"))
        cluster.create_volume("gcs", store_spec(gcs_bucket, "g", "gs-creds"))
        spec = store_spec(gcs_bucket, "s", "gs-sneaky")
        del spec["bucket"]["endpoint"]  # the public service: always allowed, but the key...
        cluster.create_volume("sneaky", spec)
        wait_for(lambda: cluster.ready("azure"), what="the allowed Azure volume Ready")
        refused = wait_for(lambda: reason(cluster, "gcs", "EndpointNotAllowed"),
                           what="EndpointNotAllowed")
        assert gcs_bucket.endpoint in refused["message"]
        cond = wait_for(lambda: reason(cluster, "sneaky", "SecretNotReady"), what="refused key")
        assert "gcs_base_url other than the volume's endpoint" in cond["message"]
    finally:
        guarded.stop()
    assert trap.connections() == 0
