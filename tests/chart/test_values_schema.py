"""values.schema.json: it describes every value of values.yaml and nothing else, and
`helm template` (so `helm install` and `helm upgrade` too) refuses bad values with a
message naming the key, before anything reaches a cluster. Combinations the schema
cannot express are refused by the chart's own checks (_helpers.tpl, openfiles.validate).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from openfiles_contracts.endpoint import EndpointPolicy
from openfiles_contracts.quantity import ARGUMENT, QuantityError

from .template import CHART, run, template_args

pytestmark = [pytest.mark.tools]

SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
VALUES: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[1]]
    return node


def schema_paths(node: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted paths of every property the schema declares (open maps end the walk)."""
    node = resolve(node)
    paths = set()
    for key, sub in node.get("properties", {}).items():
        path = f"{prefix}{key}"
        paths.add(path)
        paths |= schema_paths(sub, path + ".")
    return paths


def value_paths(value: Any, prefix: str = "") -> set[str]:
    """Dotted paths of values.yaml, down to the maps the schema declares as open."""
    if not isinstance(value, dict):
        return set()
    paths = set()
    for key, sub in value.items():
        path = f"{prefix}{key}"
        paths.add(path)
        node = lookup(path)
        if "properties" in node:
            paths |= value_paths(sub, path + ".")
    return paths


def lookup(path: str) -> dict[str, Any]:
    node = resolve(SCHEMA)
    for key in path.split("."):
        node = resolve(node["properties"][key])
    return node


def template(*sets: str) -> tuple[int, str]:
    args = []
    for s in sets:
        flag, _, assignment = s.partition(" ") if s.startswith("--") else ("--set", "", s)
        args += [flag, assignment]
    result = run(*template_args(*args))
    return result.returncode, result.stdout + result.stderr


def test_the_schema_declares_every_value_and_only_those() -> None:
    declared = schema_paths(SCHEMA) - {"global"}
    # Keys that values.yaml leaves empty or commented out are still declared.
    assert value_paths(VALUES) <= declared
    optional = {f"storageClass.parameters.{k}" for k in
                ("cacheSize", "cacheTTL", "metadataTTL", "exportDelay", "uid", "gid",
                 "fileMode", "dirMode", "eventsURL")} | {"resources.claims"}
    missing = {p for p in declared - value_paths(VALUES)
               if p not in optional and not p.endswith((".requests", ".limits", ".claims"))}
    assert not missing, f"declared in the schema but not in values.yaml: {sorted(missing)}"


def test_the_defaults_and_the_test_value_sets_are_valid() -> None:
    code, out = template()
    assert code == 0, out


BAD = [
    # (--set or "--set-string KEY=VALUE", what the message must contain)
    ("node.flushTimeout=banana", "at '/node/flushTimeout': got string, want integer"),
    ("node.flushTimeout=0", "/node/flushTimeout"),
    ("node.flushTimout=30", "additional properties 'flushTimout' not allowed"),
    ("node.mountTimeout=-1", "/node/mountTimeout"),
    ("node.mountTimeout=0.0", "/node/mountTimeout"),
    ("operator.retryDelaySeconds=soon", "/operator/retryDelaySeconds"),
    ("node.logLevel=verbose", "at '/node/logLevel': value must be one of"),
    ("controller.logLevel=info", "/controller/logLevel"),
    ("image.pullPolicy=Sometimes", "at '/image/pullPolicy': value must be one of"),
    ("sidecars.livenessProbe.pullPolicy=always", "/sidecars/livenessProbe/pullPolicy"),
    ("sidecars.registrar.tag=", "/sidecars/registrar/tag"),
    ("sidecars.provisioner.image=x:1", "additional properties 'image' not allowed"),
    ("--set-string controller.provisioner.timeout=1 minute", "/controller/provisioner/timeout"),
    ("node.metrics.port=70000", "/node/metrics/port"),
    ("node.livenessProbe.timeoutSeconds=1", "/node/livenessProbe/timeoutSeconds"),
    ("operator.replicas=0", "/operator/replicas"),
    ("node.kubeletDir=var/lib/kubelet", "/node/kubeletDir"),
    ("node.stateDir=/var/lib/openfiles/", "/node/stateDir"),
    ("node.resources.limits.memory=lots", "/node/resources/limits/memory"),
    ("operator.resources.request.cpu=1", "additional properties 'request' not allowed"),
    ("node.tolerations[0].operator=Maybe", "/node/tolerations/0/operator"),
    ("csiDriver.fsGroupPolicy=Auto", "/csiDriver/fsGroupPolicy"),
    ("storageClass.reclaimPolicy=Recycle", "/storageClass/reclaimPolicy"),
    ("storageClass.url=https://bucket/x", "/storageClass/url"),
    ("storageClass.url=file:///data", "/storageClass/url"),
    ("storageClass.account=Company_Data", "/storageClass/account"),
    ("storageClass.endpoint=https://user:pw@s3.example.com", "/storageClass/endpoint"),
    ("storageClass.secret.name=S3_Credentials", "/storageClass/secret/name"),
    ("storageClass.parameters.cacheSize=10GB", "/storageClass/parameters/cacheSize"),
    ("storageClass.parameters.exportDelay=5 minutes", "/storageClass/parameters/exportDelay"),
    ("storageClass.parameters.fileMode=0999", "/storageClass/parameters/fileMode"),
    ("storageClass.parameters.fileMode=420", "/storageClass/parameters/fileMode"),
    ("storageClass.parameters.colour=blue", "additional properties 'colour' not allowed"),
    ("node.metrics.serviceMonitor.interval=30 seconds", "/node/metrics/serviceMonitor/interval"),
    ("node.metrics.service.annotations.a=1", "/node/metrics/service/annotations/a"),
    ("imagePullSecrets[0]=regcred", "/imagePullSecrets/0"),
    ("endpointPolicy.allowed[0]=minio.storage:9000", "/endpointPolicy/allowed/0"),
    ("endpointPolicy.allowed[0]=https://minio.storage/path", "/endpointPolicy/allowed/0"),
    ("endpointPolicy.allow[0]=https://minio", "additional properties 'allow' not allowed"),
    ("events.nats.server.clusterIP=nats.local", "/events/nats/server/clusterIP"),
    ("events.nats.server.enabled=yes", "/events/nats/server/enabled"),
    ("events.nats.server.image.tag=", "/events/nats/server/image/tag"),
]


@pytest.mark.parametrize(("assignment", "message"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_value_is_refused_by_name(assignment: str, message: str) -> None:
    code, out = template(assignment)
    assert code != 0, f"{assignment} was accepted"
    assert "values don't meet the specifications of the schema" in out, out
    assert message in out, out


REFUSED_COMBINATIONS = [
    (["storageClass.create=true"], "storageClass.create needs storageClass.url"),
    (["storageClass.create=true", "storageClass.url=s3://bucket/v"],
     "storageClass.create needs storageClass.secret.name"),
    (["storageClass.create=true", "storageClass.url=s3://bucket/v",
      "storageClass.secret.name=s3", "controller.enabled=false"],
     "storageClass.create needs controller.enabled"),
    (["node.metrics.enabled=false", "node.metrics.serviceMonitor.enabled=true"],
     "need node.metrics.enabled"),
    (["node.enabled=false", "node.metrics.service.enabled=true"], "need node.enabled"),
    (["node.metrics.port=9808"],
     "node.livenessProbe.port and node.metrics.port are both 9808"),
    (["events.nats.server.enabled=true", "events.nats.url=nats://nats.messaging:4222"],
     "events.nats.server.enabled and events.nats.url exclude each other"),
]


@pytest.mark.parametrize(("sets", "message"), REFUSED_COMBINATIONS,
                         ids=[m for _, m in REFUSED_COMBINATIONS])
def test_a_bad_combination_is_refused(sets: list[str], message: str) -> None:
    code, out = template(*sets)
    assert code != 0 and message in out, out


def test_values_that_look_odd_but_are_valid() -> None:
    code, out = template("node.mountTimeout=2.5", "storageClass.parameters.uid=1000",
                         "--set-string storageClass.parameters.fileMode=0640",
                         "node.metrics.enabled=false", "node.metrics.port=9808",
                         "node.priorityClassName=", "controller.provisioner.timeout=1m30s")
    assert code == 0, out
    assert "--mount-timeout=2.5" in out


SAMPLES = ["90", "90s", "1.5h", "250ms", "2d", "10Gi", "500M", "1k", "0", "7", "1.25Ki",
           "", "s", "1.s", ".5", "-1", "1 s", "10GB", "1K", "1Ki ", "5min", "1e3", "1.5.5",
           "٣", "1\n"]


@pytest.mark.parametrize(("definition", "parse"), [("engineDuration", ARGUMENT.duration),
                                                   ("engineQuantity", ARGUMENT.quantity)])
def test_engine_patterns_agree_with_the_node(definition: str, parse: Any) -> None:
    """The StorageClass parameters are checked as the CSI node checks a volume context
    (openfiles_contracts.quantity.ARGUMENT), except for ARGUMENT's one trailing newline
    and Unicode digits, which YAML users do not mean."""
    # JSON Schema's $ is the end of the text; Python's also matches before a last newline.
    pattern = re.compile(SCHEMA["definitions"][definition]["pattern"].replace("$", r"\Z"))
    for text in SAMPLES:
        try:
            parse(text)
            node_accepts = not text.endswith("\n") and text.isascii()
        except QuantityError:
            node_accepts = False
        assert bool(pattern.search(text)) == node_accepts, text


ENDPOINT_PATTERNS = ["https://minio.storage.svc:9000", "http://minio", "https://*.s3.example.com",
                     "https://*.s3.example.com:8443/", "http://[fd00::1]:9000", "HTTPS://MinIO",
                     "minio:9000", "https://", "https://a/b", "https://a.*.b", "https://*",
                     "s3://bucket", "https://u:p@host", "https://host:port", "https://-a"]


def test_endpoint_pattern_agrees_with_the_policy() -> None:
    """What the schema lets through, the operator and the CSI controller accept at start
    (openfiles_contracts.endpoint), so a value that installs never crash-loops a pod."""
    item = SCHEMA["properties"]["endpointPolicy"]["properties"]["allowed"]["items"]
    pattern = re.compile(item["pattern"].replace("$", r"\Z"))
    for text in ENDPOINT_PATTERNS:
        if pattern.search(text):
            EndpointPolicy([text])  # raises EndpointPatternError if the two disagree


def test_a_storage_class_of_each_store() -> None:
    """gs:// and az:// classes render with their parameters (the account for Azure)."""
    for url, extra, expected in (
        ("gs://company_data/volumes", [], {}),
        ("az://volumes/base", ["storageClass.account=companydata"], {"account": "companydata"}),
    ):
        code, out = template("storageClass.create=true", f"storageClass.url={url}",
                             "storageClass.secret.name=creds", *extra)
        assert code == 0, out
        (sc,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "StorageClass"]
        assert sc["parameters"]["url"] == url
        assert {k: sc["parameters"][k] for k in expected} == expected
        assert "region" not in sc["parameters"]


def test_the_in_chart_nats_server_is_the_nodes_default() -> None:
    """Off: no NATS objects and no events URL; on: the Service's DNS name, or its fixed IP."""
    code, out = template()
    assert code == 0 and "--events-url" not in out and "-nats" not in out, out
    code, out = template("events.nats.server.enabled=true")
    assert code == 0, out
    assert "--events-url=nats://openfiles-nats.openfiles-system.svc:4222" in out
    code, out = template("events.nats.server.enabled=true",
                         "events.nats.server.clusterIP=10.96.0.42")
    assert code == 0 and "--events-url=nats://10.96.0.42:4222" in out, out
