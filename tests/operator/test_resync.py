"""Cache policies: selection, priority, and propagation to the ConfigMap channel."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from operator_cluster import (
    GROUP,
    POLICY_NAMESPACE,
    VERSION,
    Cluster,
    OperatorThread,
    volume_spec,
    wait_for,
)

from fixtures.minio import Bucket
from openfiles_operator.volume import volume_handle

pytestmark = [pytest.mark.cluster, pytest.mark.s3]
PLURAL = "openfilescachepolicies"


class Policies:
    """Cluster-scoped policies made by one test, all deleted at its end."""

    def __init__(self, env: Cluster) -> None:
        self.env = env
        self.names: list[str] = []

    def create(self, name: str, **spec: Any) -> str:
        name = f"{name}-{secrets.token_hex(3)}"
        self.env.custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "OpenFilesCachePolicy",
            "metadata": {"name": name}, "spec": spec})
        self.names.append(name)
        return name

    def patch(self, name: str, spec: dict[str, Any]) -> None:
        self.env.custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, name, {"spec": spec})

    def delete(self, name: str) -> None:
        self.env.custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, name)
        self.names.remove(name)

    def status(self, name: str) -> dict[str, Any]:
        body = self.env.custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)
        return dict(body.get("status") or {})


@pytest.fixture
def policies(cluster: Cluster) -> Iterator[Policies]:
    made = Policies(cluster)
    yield made
    for name in list(made.names):
        made.delete(name)


def entry(env: Cluster, handle: str) -> dict[str, Any]:
    return dict(json.loads(env.policy_entries().get(handle, "{}")))


def test_priority_selection_and_changes_propagate(
        cluster: Cluster, operator: OperatorThread, policies: Policies,
        s3_bucket: Bucket) -> None:
    tag = secrets.token_hex(4)
    uid = cluster.create_volume("data", volume_spec(s3_bucket, "p"),
                                labels={"cache": tag})["metadata"]["uid"]
    handle = volume_handle(cluster.namespace, "data", uid)
    wait_for(lambda: cluster.ready("data"), what="volume Ready")
    low = policies.create("low", priority=1, ttl="10m", maxSize="1Gi",
                          volumeSelector={"matchLabels": {"cache": tag}})
    high = policies.create("high", priority=5, ttl="1h", namespaceSelector={
        "matchLabels": {"kubernetes.io/metadata.name": cluster.namespace}},
        volumeSelector={"matchExpressions": [{"key": "cache", "operator": "In",
                                              "values": [tag]}]})
    other = policies.create("other", priority=100, metadataTTL="1s",
                            volumeSelector={"matchLabels": {"cache": "someone-else"}})

    expected = {"cacheTTL": 3600, "cacheSize": 2**30, "metadataTTL": 10, "exportDelay": 60,
                "policy": high}
    wait_for(lambda: entry(cluster, handle) == expected, what=f"channel {expected}")
    wait_for(lambda: cluster.volume("data")["status"]["effectivePolicy"] == expected,
             what="status.effectivePolicy")
    wait_for(lambda: policies.status(low).get("matchedVolumes") == 1, what="low matches 1")
    wait_for(lambda: policies.status(high).get("matchedVolumes") == 1, what="high matches 1")
    wait_for(lambda: policies.status(other).get("matchedVolumes") == 0, what="other matches 0")

    policies.patch(high, {"priority": 0})
    expected = {**expected, "cacheTTL": 600, "policy": low}
    wait_for(lambda: entry(cluster, handle) == expected, what="low wins after the priority drop")

    policies.delete(low)
    expected = {**expected, "cacheTTL": 3600, "cacheSize": 10 * 2**30, "policy": high}
    wait_for(lambda: entry(cluster, handle) == expected, what="high alone after low is deleted")
    wait_for(lambda: any(reason == "PolicyApplied" for reason, _ in cluster.events("data")),
             what="PolicyApplied event")  # kopf posts Events in the background


def test_volume_labels_decide_selection(cluster: Cluster, operator: OperatorThread,
                                        policies: Policies, s3_bucket: Bucket) -> None:
    tag = secrets.token_hex(4)
    uid = cluster.create_volume("data", volume_spec(s3_bucket, "l"))["metadata"]["uid"]
    handle = volume_handle(cluster.namespace, "data", uid)
    name = policies.create("bylabel", metadataTTL="1m",
                           volumeSelector={"matchLabels": {"cache": tag}})
    wait_for(lambda: cluster.ready("data"), what="volume Ready")
    assert entry(cluster, handle)["policy"] == ""
    cluster.patch_volume("data", {"metadata": {"labels": {"cache": tag}}})
    wait_for(lambda: entry(cluster, handle).get("policy") == name, what="selected by label")
    assert entry(cluster, handle)["metadataTTL"] == 60


def test_stale_entries_are_removed(cluster: Cluster, operator: OperatorThread) -> None:
    from kubernetes.client import ApiException

    from openfiles_operator.binding import MANAGED_BY

    stale = "ofv-gone-volume-0badf00d"
    data = {stale: "{}", "unrelated": "x"}
    try:
        cluster.core.create_namespaced_config_map(POLICY_NAMESPACE, {
            "metadata": {"name": "openfiles-policies", "labels": MANAGED_BY}, "data": data})
    except ApiException as exc:
        assert exc.status == 409
        cluster.core.patch_namespaced_config_map("openfiles-policies", POLICY_NAMESPACE,
                                                 {"data": data})
    wait_for(lambda: stale not in cluster.policy_entries(), what="stale entry removed")
    assert cluster.policy_entries()["unrelated"] == "x"  # keys not named ofv-* are left alone
