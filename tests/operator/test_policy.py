"""Policy parsing, label selection, and the priority rule."""

from __future__ import annotations

import json
from typing import Any

import pytest

from openfiles_operator.errors import SpecError
from openfiles_operator.policy import (
    CachePolicy,
    effective_policy,
    parse_policy,
    policy_selects,
    selector_matches,
)
from openfiles_operator.volume import CacheSettings

OWN = CacheSettings(cache_size=1000, cache_ttl=60, metadata_ttl=5, export_delay=30)


def body(name: str, **spec: Any) -> Any:
    return {"apiVersion": "openfiles.io/v1alpha1", "kind": "OpenFilesCachePolicy",
            "metadata": {"name": name, "uid": "u"}, "spec": spec}


def test_parse_converts_units() -> None:
    policy = parse_policy(body("p", ttl="1h", maxSize="1Ki", metadataTTL="2m", priority=7))
    assert (policy.cache_ttl, policy.cache_size, policy.metadata_ttl) == (3600, 1024, 120)
    assert policy.priority == 7


@pytest.mark.parametrize(("spec", "field"), [
    ({}, "spec"),
    ({"ttl": "forever"}, "spec.ttl"),
    ({"maxSize": "big"}, "spec.maxSize"),
    ({"ttl": "1h", "volumeSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
     "spec.volumeSelector.matchExpressions"),
    ({"ttl": "1h", "namespaceSelector": {"matchExpressions": [
        {"key": "a", "operator": "Exists", "values": ["x"]}]}},
     "spec.namespaceSelector.matchExpressions"),
])
def test_invalid_policies_name_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_policy(body("p", **spec))
    assert err.value.field == field


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ({}, {}, True),
    ({"matchLabels": {"tier": "gold"}}, {"tier": "gold", "x": "y"}, True),
    ({"matchLabels": {"tier": "gold"}}, {"tier": "silver"}, False),
    ({"matchLabels": {"tier": "gold"}}, {}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]},
     {"tier": "b"}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a"]}]}, {}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a"]}]},
     {"tier": "a"}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {"tier": ""}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, {"tier": ""}, False),
    ({"matchLabels": {"a": "1"},
      "matchExpressions": [{"key": "b", "operator": "Exists"}]}, {"a": "1"}, False),
])
def test_selector_semantics(selector: Any, labels: dict[str, str], expected: bool) -> None:
    assert selector_matches(selector, labels) is expected


def test_both_selectors_must_match() -> None:
    policy = parse_policy(body("p", ttl="1h", namespaceSelector={"matchLabels": {"env": "prod"}},
                               volumeSelector={"matchLabels": {"app": "db"}}))
    assert policy_selects(policy, {"env": "prod"}, {"app": "db"})
    assert not policy_selects(policy, {"env": "dev"}, {"app": "db"})
    assert not policy_selects(policy, {"env": "prod"}, {"app": "web"})


def policy(name: str, priority: int, ttl: int | None = None, size: int | None = None,
           meta: int | None = None) -> CachePolicy:
    return CachePolicy(name, priority, {}, {}, cache_ttl=ttl, cache_size=size, metadata_ttl=meta)


def test_no_policy_means_the_volume_settings() -> None:
    eff = effective_policy(OWN, [])
    assert (eff.cache_size, eff.cache_ttl, eff.metadata_ttl, eff.export_delay, eff.policy) == (
        1000, 60, 5, 30, "")


def test_higher_priority_wins_each_value_and_gaps_fall_through() -> None:
    eff = effective_policy(OWN, [policy("low", 1, ttl=10, size=99, meta=1),
                                 policy("high", 5, ttl=20)])
    assert eff.cache_ttl == 20  # from "high"
    assert eff.cache_size == 99 and eff.metadata_ttl == 1  # "high" does not set them
    assert eff.export_delay == 30  # always the volume's own
    assert eff.policy == "high"


def test_equal_priority_goes_to_the_first_name() -> None:
    eff = effective_policy(OWN, [policy("b", 3, ttl=2), policy("a", 3, ttl=1)])
    assert (eff.cache_ttl, eff.policy) == (1, "a")


def test_channel_value_follows_the_contract() -> None:
    eff = effective_policy(OWN, [policy("p", 0, size=5)])
    assert json.loads(eff.to_channel()) == {
        "cacheTTL": 60, "cacheSize": 5, "metadataTTL": 5, "exportDelay": 30, "policy": "p"}
