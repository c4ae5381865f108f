"""Effective cache policy of a volume, from the OpenFilesCachePolicy objects that select it.

Rule (also in the CRD description and docs/OPERATOR.md): each value comes from
the highest-priority matching policy that sets it; ties go to the policy whose
name sorts first; values no policy sets come from the volume's own spec. The
export delay is the volume's alone. The result is what the node side receives
through the ConfigMap of docs/CONTRACTS.md section 4.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from openfiles_operator.body import EffectivePolicyStatus, LabelSelector, PolicyBody
from openfiles_operator.errors import SpecError
from openfiles_operator.quantity import parse_duration, parse_size
from openfiles_operator.volume import CacheSettings


@dataclass(frozen=True)
class CachePolicy:
    """A valid OpenFilesCachePolicy. Unset values are None."""

    name: str
    priority: int
    namespace_selector: LabelSelector
    volume_selector: LabelSelector
    cache_ttl: int | None
    cache_size: int | None
    metadata_ttl: int | None


@dataclass(frozen=True)
class EffectivePolicy:
    """Values in force for one volume: bytes and seconds. ``policy`` is "" when none applies."""

    cache_size: int
    cache_ttl: int
    metadata_ttl: int
    export_delay: int
    policy: str

    def to_status(self) -> EffectivePolicyStatus:
        return {
            "cacheSize": self.cache_size,
            "cacheTTL": self.cache_ttl,
            "metadataTTL": self.metadata_ttl,
            "exportDelay": self.export_delay,
            "policy": self.policy,
        }

    def to_channel(self) -> str:
        """The ConfigMap value of docs/CONTRACTS.md section 4 (same keys as the status)."""
        return json.dumps(self.to_status(), sort_keys=True)


def parse_policy(body: PolicyBody) -> CachePolicy:
    """Validate a policy body. Raises SpecError naming the field."""
    spec = body["spec"]
    values: dict[str, int | None] = {}
    for key, parse in (
        ("ttl", parse_duration),
        ("maxSize", parse_size),
        ("metadataTTL", parse_duration),
    ):
        text = spec.get(key)
        try:
            values[key] = None if text is None else parse(str(text))
        except ValueError as exc:
            raise SpecError(f"spec.{key}", str(exc)) from exc
    if all(value is None for value in values.values()):
        raise SpecError("spec", "set at least one of ttl, maxSize and metadataTTL")
    selectors = {
        "namespaceSelector": spec.get("namespaceSelector", {}),
        "volumeSelector": spec.get("volumeSelector", {}),
    }
    for key, selector in selectors.items():
        for req in selector.get("matchExpressions", []):
            needs_values = req["operator"] in {"In", "NotIn"}
            if needs_values != bool(req.get("values")):
                raise SpecError(
                    f"spec.{key}.matchExpressions",
                    "In and NotIn need values; Exists and DoesNotExist take none",
                )
    return CachePolicy(
        name=body["metadata"]["name"],
        priority=int(spec.get("priority", 0)),
        namespace_selector=spec.get("namespaceSelector", {}),
        volume_selector=spec.get("volumeSelector", {}),
        cache_ttl=values["ttl"],
        cache_size=values["maxSize"],
        metadata_ttl=values["metadataTTL"],
    )


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics: every matchLabels pair and every expression holds.

    An empty selector matches everything.
    """
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for req in selector.get("matchExpressions", []):
        key, op, values = req["key"], req["operator"], req.get("values", [])
        present = key in labels
        ok = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[op]
        if not ok:
            return False
    return True


def policy_selects(
    policy: CachePolicy, namespace_labels: Mapping[str, str], volume_labels: Mapping[str, str]
) -> bool:
    return selector_matches(policy.namespace_selector, namespace_labels) and selector_matches(
        policy.volume_selector, volume_labels
    )


def effective_policy(own: CacheSettings, matching: Iterable[CachePolicy]) -> EffectivePolicy:
    """Combine the matching policies by priority over the volume's own settings."""
    ordered = sorted(matching, key=lambda p: (-p.priority, p.name))
    size = next((p.cache_size for p in ordered if p.cache_size is not None), own.cache_size)
    ttl = next((p.cache_ttl for p in ordered if p.cache_ttl is not None), own.cache_ttl)
    meta = next((p.metadata_ttl for p in ordered if p.metadata_ttl is not None), own.metadata_ttl)
    return EffectivePolicy(
        cache_size=size,
        cache_ttl=ttl,
        metadata_ttl=meta,
        export_delay=own.export_delay,
        policy=ordered[0].name if ordered else "",
    )
