"""The API-server fixture is a real kube-apiserver backed by a real etcd."""

from __future__ import annotations

import pytest

from fixtures.kube import KubeCluster

pytestmark = pytest.mark.cluster


def test_configmap_round_trip(kube: KubeCluster) -> None:
    from kubernetes import client

    core = client.CoreV1Api(kube.api_client())
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="fixture-check"),
                              data={"answer": "42"})
    core.create_namespaced_config_map("default", body)
    read = core.read_namespaced_config_map("fixture-check", "default")
    assert read.data == {"answer": "42"}
    assert read.metadata.uid  # assigned by the API server, stored in etcd
    core.delete_namespaced_config_map("fixture-check", "default")
    with pytest.raises(client.ApiException) as err:
        core.read_namespaced_config_map("fixture-check", "default")
    assert err.value.status == 404


def test_kubectl_talks_to_it(kube: KubeCluster) -> None:
    out = kube.kubectl("get", "namespaces", "-o", "name").stdout.split()
    assert "namespace/default" in out
    assert "namespace/kube-system" in out


def test_rbac_is_enforced(kube: KubeCluster) -> None:
    """An unknown token is rejected: the server really authenticates."""
    from kubernetes import client

    cfg = client.Configuration()
    cfg.host = kube.server
    cfg.ssl_ca_cert = str(kube.root / "pki" / "ca.crt")
    cfg.api_key = {"authorization": "Bearer not-a-token"}
    with client.ApiClient(cfg) as api, pytest.raises(client.ApiException) as err:
        client.CoreV1Api(api).list_namespace()
    assert err.value.status == 401
