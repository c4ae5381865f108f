"""The Kubernetes API calls, against the real API server."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from fixtures.kube import KubeCluster
from openfiles_operator.binding import pv_body, pvc_body
from openfiles_operator.errors import ClaimTakenError, ConflictError, CredentialsError
from openfiles_operator.kube import Kube
from openfiles_operator.volume import Location, parse_volume

S3 = Location("bucket", "", "", "")
AZ = Location("container", "", "", "", scheme="az", account="acct")

pytestmark = pytest.mark.cluster
SPEC: Any = {"bucket": {"url": "s3://bucket/p", "credentialsSecretRef": {"name": "creds"}}}


@pytest.fixture
def namespace(kube: KubeCluster) -> Iterator[str]:
    from kubernetes import client

    name = "k-" + secrets.token_hex(4)
    client.CoreV1Api(kube.api_client()).create_namespace({"metadata": {"name": name}})
    yield name


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_read_credentials(kube: KubeCluster, namespace: str) -> None:
    from kubernetes import client

    api = Kube(kube.api_client())
    with pytest.raises(CredentialsError, match=f"Secret {namespace}/creds not found"):
        run(api.read_credentials(namespace, "creds", S3))
    core = client.CoreV1Api(kube.api_client())
    core.create_namespaced_secret(namespace, {"metadata": {"name": "creds"}, "data": {
        "accessKeyId": base64.b64encode(b"AK").decode()}})
    with pytest.raises(CredentialsError, match="no key secretAccessKey") as err:
        run(api.read_credentials(namespace, "creds", S3))
    assert "AK" not in str(err.value)
    core.patch_namespaced_secret("creds", namespace, {"stringData": {"secretAccessKey": "SK"}})
    creds = run(api.read_credentials(namespace, "creds", S3))
    assert (creds.get("accessKeyId"), creds.get("secretAccessKey")) == ("AK", "SK")
    # The same Secret for an az:// volume: the keys are another store's.
    with pytest.raises(CredentialsError, match=r"creds: keys \['accessKeyId'"):
        run(api.read_credentials(namespace, "creds", AZ))
    core.replace_namespaced_secret("creds", namespace, {"metadata": {"name": "creds"},
                                                        "stringData": {"accountKey": "SK%"}})
    with pytest.raises(CredentialsError, match="accountKey is not base64") as err:
        run(api.read_credentials(namespace, "creds", AZ))
    assert "SK%" not in str(err.value)


def test_ensure_is_idempotent_and_guards_foreign_objects(kube: KubeCluster,
                                                         namespace: str) -> None:
    api = Kube(kube.api_client())
    uid = secrets.token_hex(8)
    volume = parse_volume(SPEC, namespace, "vol", uid)
    pv, created = run(api.ensure(pv_body(volume), uid))
    assert created and pv["metadata"]["name"] == volume.handle
    again, created = run(api.ensure(pv_body(volume), uid))
    assert not created and again["metadata"]["uid"] == pv["metadata"]["uid"]
    pvc, created = run(api.ensure(pvc_body(volume), uid))
    assert created and pvc["spec"]["volumeName"] == volume.handle
    stranger = parse_volume(SPEC, namespace, "vol", "other-uid")
    with pytest.raises(ClaimTakenError, match="PersistentVolumeClaim vol"):
        run(api.ensure(pvc_body(stranger), "other-uid"))
    # Deletion only touches objects made for the same volume.
    assert not run(api.delete_claim(namespace, "vol", "other-uid"))
    assert run(api.delete_claim(namespace, "vol", uid))
    assert run(api.delete_pv(volume.handle, uid))
    assert not run(api.delete_pv("no-such-pv", uid))
    # Held by the protection finalizers (no controller-manager): deleting, so nothing is sent.
    assert not run(api.delete_claim(namespace, "vol", uid))
    assert not run(api.delete_pv(volume.handle, uid))


def test_pods_using_claim_skips_finished_pods(kube: KubeCluster, namespace: str) -> None:
    from kubernetes import client

    core = client.CoreV1Api(kube.api_client())
    for name, claim in (("user", "vol"), ("done", "vol"), ("other", "else")):
        core.create_namespaced_pod(namespace, {
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "x"}],
                     "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim}}]}})
    core.patch_namespaced_pod_status("done", namespace, {"status": {"phase": "Succeeded"}})
    assert run(Kube(kube.api_client()).pods_using_claim(namespace, "vol")) == ["user"]


def test_config_map_keys_are_set_and_removed(kube: KubeCluster, namespace: str) -> None:
    api = Kube(kube.api_client())
    run(api.patch_config_map(namespace, "policies", {"a": "1", "b": "2"}, {"x": "y"}))
    run(api.patch_config_map(namespace, "policies", {"a": None, "c": "3"}, {"x": "y"}))
    assert run(api.read_config_map(namespace, "policies")) == {"b": "2", "c": "3"}
    assert run(api.read_config_map(namespace, "absent")) is None


def test_stale_write_is_a_conflict(kube: KubeCluster, namespace: str) -> None:
    api = Kube(kube.api_client())
    body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "l", "namespace": namespace}, "spec": {"holderIdentity": "a"}}
    created = run(api.create_lease(namespace, body))
    run(api.replace_lease(namespace, "l", {**created, "spec": {"holderIdentity": "b"}}))
    with pytest.raises(ConflictError):
        run(api.replace_lease(namespace, "l", {**created, "spec": {"holderIdentity": "c"}}))
