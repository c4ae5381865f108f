"""The CRD schemas in the chart and the TypedDicts in body.py are one definition.

Walks both trees: every schema property has a typed key and the reverse, and a
key is ``NotRequired`` exactly when the schema does not require it. Also checks
what ``kubectl explain`` needs: a description on every field.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, NotRequired, get_args, get_origin, get_type_hints

import pytest
import yaml

from openfiles_operator import body
from openfiles_operator.quantity import DURATION_PATTERN, QUANTITY_PATTERN

CRDS = Path(__file__).resolve().parents[2] / "charts" / "openfiles" / "crds"


def schema(kind: str) -> dict[str, Any]:
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["kind"] == kind:
            (version,) = crd["spec"]["versions"]
            assert version["name"] == body.VERSION and crd["spec"]["group"] == body.GROUP
            return dict(version["schema"]["openAPIV3Schema"])
    raise AssertionError(f"no CRD for {kind} in {CRDS}")


def _typed_dict(tp: Any) -> Any:
    """The TypedDict inside ``tp`` (through list[...]), or None for a scalar or a map."""
    if get_origin(tp) is list:
        return _typed_dict(get_args(tp)[0])
    return tp if typing.is_typeddict(tp) else None


def compare(node: dict[str, Any], typed: Any, path: str) -> list[str]:
    problems: list[str] = []
    if node.get("type") == "array":
        node = node["items"]
    props = node.get("properties", {})
    hints = get_type_hints(typed, include_extras=True)
    if set(props) != set(hints):
        problems.append(f"{path}: schema {sorted(props)} != typed {sorted(hints)}")
    required = set(node.get("required", []))
    for key, hint in hints.items():
        optional = get_origin(hint) is NotRequired
        if key in props and optional == (key in required):
            problems.append(f"{path}.{key}: required in one and optional in the other")
        inner = _typed_dict(get_args(hint)[0] if optional else hint)
        if inner is not None and key in props:
            problems.extend(compare(props[key], inner, f"{path}.{key}"))
    return problems


@pytest.mark.parametrize(("kind", "spec", "status"), [
    ("OpenFilesVolume", body.VolumeSpec, body.VolumeStatus),
    ("OpenFilesCachePolicy", body.PolicySpec, body.PolicyStatus),
])
def test_schema_and_typed_dicts_agree(kind: str, spec: Any, status: Any) -> None:
    root = schema(kind)
    assert compare(root["properties"]["spec"], spec, "spec") == []
    assert compare(root["properties"]["status"], status, "status") == []


def test_the_walk_notices_drift() -> None:
    class Drifted(typing.TypedDict):
        bucket: Any
        extra: NotRequired[str]

    problems = compare(schema("OpenFilesVolume")["properties"]["spec"], Drifted, "spec")
    assert problems and "extra" in problems[0]


def undocumented(node: dict[str, Any], path: str) -> list[str]:
    missing = []
    for key, child in node.get("properties", {}).items():
        if key != "metadata" and not child.get("description"):
            missing.append(f"{path}.{key}")
        missing += undocumented(child, f"{path}.{key}")
    if "items" in node:
        missing += undocumented(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        missing += undocumented(node["additionalProperties"], f"{path}{{}}")
    return missing


@pytest.mark.parametrize("kind", ["OpenFilesVolume", "OpenFilesCachePolicy"])
def test_every_field_is_described(kind: str) -> None:
    assert undocumented(schema(kind), kind) == []


def patterns(node: dict[str, Any]) -> set[str]:
    found = {node["pattern"]} if "pattern" in node else set()
    for child in node.get("properties", {}).values():
        found |= patterns(child)
    return found


def test_size_and_duration_patterns_are_the_parsers() -> None:
    volume = schema("OpenFilesVolume")["properties"]["spec"]
    assert volume["properties"]["cache"]["properties"]["size"]["pattern"] == QUANTITY_PATTERN
    assert volume["properties"]["capacity"]["pattern"] == QUANTITY_PATTERN
    for field in (volume["properties"]["cache"]["properties"]["ttl"],
                  volume["properties"]["cache"]["properties"]["metadataTTL"],
                  volume["properties"]["export"]["properties"]["delay"]):
        assert field["pattern"] == DURATION_PATTERN
    policy = schema("OpenFilesCachePolicy")["properties"]["spec"]["properties"]
    assert policy["maxSize"]["pattern"] == QUANTITY_PATTERN
    assert policy["ttl"]["pattern"] == policy["metadataTTL"]["pattern"] == DURATION_PATTERN
