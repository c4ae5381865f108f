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
    ("OpenFilesNodeReport", body.NodeReportSpec, None),
])
def test_schema_and_typed_dicts_agree(kind: str, spec: Any, status: Any) -> None:
    root = schema(kind)
    assert compare(root["properties"]["spec"], spec, "spec") == []
    if status is None:
        assert "status" not in root["properties"]  # the report is all spec, written by a node
    else:
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


@pytest.mark.parametrize("kind", ["OpenFilesVolume", "OpenFilesCachePolicy",
                                  "OpenFilesNodeReport"])
def test_every_field_is_described(kind: str) -> None:
    assert undocumented(schema(kind), kind) == []


def silent_defaults(node: dict[str, Any], path: str) -> list[str]:
    """Fields whose scalar or list default their description does not state: ``kubectl
    explain`` shows descriptions but not defaults."""
    silent = []
    for key, child in node.get("properties", {}).items():
        default = child.get("default")
        if default not in (None, {}):
            shown = ", ".join(default) if isinstance(default, list) else str(default)
            if f"Default: {shown}." not in " ".join(child.get("description", "").split()):
                silent.append(f"{path}.{key}")
        silent += silent_defaults(child, f"{path}.{key}")
    return silent


@pytest.mark.parametrize("kind", ["OpenFilesVolume", "OpenFilesCachePolicy"])
def test_every_default_is_stated(kind: str) -> None:
    assert silent_defaults(schema(kind), kind) == []


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


# --- The API server enforces the schema ---------------------------------------------------


def _bad_specs() -> list[tuple[str, dict[str, Any], str]]:
    ok = {"url": "s3://bucket/p", "credentialsSecretRef": {"name": "creds"}}
    return [
        ("no bucket", {}, "spec.bucket: Required value"),
        ("no url", {"bucket": {"credentialsSecretRef": {"name": "c"}}}, "spec.bucket.url"),
        ("no secret", {"bucket": {"url": "s3://bucket"}}, "spec.bucket.credentialsSecretRef"),
        ("file url", {"bucket": {**ok, "url": "file:///data"}}, "spec.bucket.url"),
        ("az container name", {"bucket": {**ok, "url": "az://Bucket", "account": "acct"}},
         "spec.bucket.url"),
        ("az without account", {"bucket": {**ok, "url": "az://bucket"}},
         "account (the Azure storage account) is required for az://"),
        ("account for s3", {"bucket": {**ok, "account": "acct"}}, "taken by az:// only"),
        ("bad account", {"bucket": {**ok, "url": "az://bucket", "account": "Acct"}},
         "spec.bucket.account"),
        ("region for gs", {"bucket": {**ok, "url": "gs://bucket", "region": "eu"}},
         "region is for s3:// only"),
        ("double slash", {"bucket": {**ok, "url": "s3://bucket/a//b"}}, "spec.bucket.url"),
        ("endpoint", {"bucket": {**ok, "endpoint": "minio:9000"}}, "spec.bucket.endpoint"),
        ("endpoint credentials", {"bucket": {**ok, "endpoint": "http://k:s@minio:9000"}},
         "spec.bucket.endpoint"),
        ("cache size", {"bucket": ok, "cache": {"size": "10GB"}}, "spec.cache.size"),
        ("ttl", {"bucket": ok, "cache": {"ttl": "1h30m"}}, "spec.cache.ttl"),
        ("delay", {"bucket": ok, "export": {"delay": "soon"}}, "spec.export.delay"),
        ("mode", {"bucket": ok, "accessModes": ["ReadWriteAll"]}, "spec.accessModes"),
        ("no modes", {"bucket": ok, "accessModes": []}, "spec.accessModes"),
        ("reclaim", {"bucket": ok, "reclaimPolicy": "Recycle"}, "spec.reclaimPolicy"),
        ("uid", {"bucket": ok, "mountOptions": {"uid": -1}}, "spec.mountOptions.uid"),
        ("fileMode", {"bucket": ok, "mountOptions": {"fileMode": "0999"}},
         "spec.mountOptions.fileMode"),
        ("delete whole bucket", {"bucket": {**ok, "url": "s3://bucket"},
                                 "reclaimPolicy": "Delete"}, "OpenFiles never empties"),
    ]


@pytest.mark.cluster
@pytest.mark.parametrize(("what", "spec", "message"), _bad_specs(),
                         ids=[case[0] for case in _bad_specs()])
def test_api_server_rejects_bad_volumes(crds: Any, what: str, spec: dict[str, Any],
                                        message: str) -> None:
    from kubernetes import client

    custom = client.CustomObjectsApi(crds.api_client())
    volume = {"apiVersion": "openfiles.io/v1alpha1", "kind": "OpenFilesVolume",
              "metadata": {"name": "bad"}, "spec": spec}
    with pytest.raises(client.ApiException) as err:
        custom.create_namespaced_custom_object("openfiles.io", "v1alpha1", "default",
                                               "openfilesvolumes", volume)
    assert err.value.status == 422, what
    assert message in str(err.value.body), err.value.body


@pytest.mark.cluster
def test_api_server_takes_each_store_and_explains_its_credentials(crds: Any) -> None:
    from kubernetes import client

    custom = client.CustomObjectsApi(crds.api_client())
    for name, bucket in (
        ("s3", {"url": "s3://bucket/p", "region": "eu-west-1"}),
        ("gs", {"url": "gs://my_bucket/p", "endpoint": "https://gcs.example"}),
        ("az", {"url": "az://container/p/", "account": "devstoreaccount1"}),
    ):
        volume = {"apiVersion": "openfiles.io/v1alpha1", "kind": "OpenFilesVolume",
                  "metadata": {"name": f"store-{name}"},
                  "spec": {"bucket": {**bucket, "credentialsSecretRef": {"name": "c"}},
                           "reclaimPolicy": "Delete"}}
        custom.create_namespaced_custom_object("openfiles.io", "v1alpha1", "default",
                                               "openfilesvolumes", volume)
        custom.delete_namespaced_custom_object("openfiles.io", "v1alpha1", "default",
                                               "openfilesvolumes", f"store-{name}")
    text = " ".join(crds.kubectl("explain", "openfilesvolume.spec.bucket", "--recursive=false")
                    .stdout.split())
    for form in ("gs://BUCKET[/PREFIX]", "az://CONTAINER[/PREFIX]", "account <string>",
                 "serviceAccountKey, the service account's JSON key", "accountKey", "sasToken",
                 "accessKeyId and secretAccessKey"):
        assert form in text, form


@pytest.mark.cluster
def test_immutable_fields_are_refused_and_mutable_ones_accepted(crds: Any) -> None:
    from kubernetes import client

    custom = client.CustomObjectsApi(crds.api_client())
    args = ("openfiles.io", "v1alpha1", "default", "openfilesvolumes")
    name = "immutable-check"
    custom.create_namespaced_custom_object(*args, {
        "apiVersion": "openfiles.io/v1alpha1", "kind": "OpenFilesVolume",
        "metadata": {"name": name},
        "spec": {"bucket": {"url": "s3://bucket/p", "credentialsSecretRef": {"name": "c"}}}})
    try:
        created = custom.get_namespaced_custom_object(*args, name)
        # Defaults were applied by the API server.
        assert created["spec"]["cache"] == {"size": "10Gi", "ttl": "24h", "metadataTTL": "10s"}
        assert created["spec"]["mountOptions"]["fileMode"] == "0644"
        assert created["spec"]["reclaimPolicy"] == "Retain"
        for patch, message in (
            ({"bucket": {"url": "s3://bucket/q"}}, "bucket is immutable"),
            ({"bucket": {"credentialsSecretRef": {"name": "d"}}}, "bucket is immutable"),
            ({"capacity": "2Ti"}, "capacity is immutable"),
            ({"accessModes": ["ReadWriteOnce"]}, "accessModes is immutable"),
            ({"mountOptions": {"uid": 5}}, "mountOptions is immutable"),
        ):
            with pytest.raises(client.ApiException) as err:
                custom.patch_namespaced_custom_object(*args, name, {"spec": patch})
            assert err.value.status == 422 and message in str(err.value.body)
        updated = custom.patch_namespaced_custom_object(*args, name, {"spec": {
            "cache": {"ttl": "1h"}, "export": {"delay": "5s"}, "reclaimPolicy": "Delete"}})
        assert updated["spec"]["cache"]["ttl"] == "1h"
        assert updated["metadata"]["generation"] == 2
    finally:
        custom.delete_namespaced_custom_object(*args, name)


@pytest.mark.cluster
@pytest.mark.parametrize(("spec", "message"), [
    ({"priority": 1}, "set at least one of ttl, maxSize and metadataTTL"),
    ({"ttl": "forever"}, "spec.ttl"),
    ({"maxSize": "1GB"}, "spec.maxSize"),
    ({"ttl": "1h", "priority": 10**7}, "spec.priority"),
    ({"ttl": "1h", "volumeSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
     "In and NotIn need values"),
    ({"ttl": "1h", "volumeSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}},
     "operator"),
])
def test_api_server_rejects_bad_policies(crds: Any, spec: dict[str, Any], message: str) -> None:
    from kubernetes import client

    custom = client.CustomObjectsApi(crds.api_client())
    policy = {"apiVersion": "openfiles.io/v1alpha1", "kind": "OpenFilesCachePolicy",
              "metadata": {"name": "bad"}, "spec": spec}
    with pytest.raises(client.ApiException) as err:
        custom.create_cluster_custom_object("openfiles.io", "v1alpha1",
                                            "openfilescachepolicies", policy)
    assert err.value.status == 422
    assert message in str(err.value.body), err.value.body


@pytest.mark.cluster
def test_kubectl_explain_reads_well(crds: Any) -> None:
    out = crds.kubectl("explain", "openfilesvolume.spec").stdout
    for field in ("bucket", "cache", "export", "accessModes", "capacity", "reclaimPolicy",
                  "mountOptions"):
        assert field in out
    assert "immutable" in out
    deep = crds.kubectl("explain", "ofv.spec.bucket.credentialsSecretRef").stdout
    assert "accessKeyId" in deep
    assert "own namespace" in deep  # the cross-namespace refusal is documented
    printed = crds.kubectl("get", "ofv", "-A").stdout + crds.kubectl("get", "ofv", "-A").stderr
    assert "No resources found" in printed or "BUCKET" in printed


@pytest.mark.cluster
def test_the_documented_examples_are_accepted(crds: Any) -> None:
    """Every YAML example of docs/OPERATOR.md passes the API server (server-side dry run)."""
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "OPERATOR.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, flags=re.S)
    kinds = [yaml.safe_load(block)["kind"] for block in blocks]
    assert kinds == ["Secret", "OpenFilesVolume"] * 3 + ["Pod", "OpenFilesCachePolicy"]
    crds.kubectl("create", "namespace", "ml", check=False)
    for block in blocks:
        out = crds.kubectl("apply", "--dry-run=server", "-f", "-", input=block, check=False)
        assert out.returncode == 0, out.stderr
