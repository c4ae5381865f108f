"""Layer 5: the Helm chart lints, renders for the pinned Kubernetes, and every
rendered object validates against the real API server's schemas (offline), for each
value set in ``values/`` (the golden cases of test_golden.py).

The ServiceMonitor's schema comes from ``crds/servicemonitor.yaml``, a stand-in for
the prometheus-operator's CRD that declares only the fields the chart renders (see
its header): the check is field by field, but against our reading of that kind."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures.kube import KubeCluster
from fixtures.prereq import tool
from fixtures.schemas import LOCATION, write_schemas

from .template import CASES, CHART, HERE, KUBE_VERSION, helm, render, values_args

pytestmark = [pytest.mark.tools, pytest.mark.cluster]

FOREIGN_CRDS = [HERE / "crds" / "servicemonitor.yaml"]


def openapi(kube: KubeCluster, expect: set[tuple[str, str, str]]) -> dict[str, Any]:
    """The server's OpenAPI v2 once it publishes every kind in ``expect``."""
    context = ssl.create_default_context(cafile=str(kube.root / "pki" / "ca.crt"))
    req = urllib.request.Request(f"{kube.server}/openapi/v2",
                                 headers={"Authorization": f"Bearer {kube.admin_token}"})
    deadline = time.monotonic() + 60
    while True:
        with urllib.request.urlopen(req, context=context, timeout=30) as r:
            doc: dict[str, Any] = json.load(r)
        known = {(g.get("group", ""), g["version"], g["kind"])
                 for d in doc["definitions"].values()
                 for g in d.get("x-kubernetes-group-version-kind", [])}
        if expect <= known or time.monotonic() > deadline:
            return doc
        time.sleep(1)  # CRD schemas are published a moment after the CRD


def gvk(obj: dict[str, Any]) -> tuple[str, str, str]:
    group, _, version = obj["apiVersion"].rpartition("/")
    return group, version, obj["kind"]


def kubeconform(schemas: Path, manifest: Path) -> dict[str, Any]:
    result = subprocess.run(
        [str(tool("kubeconform")), "-strict", "-summary", "-output", "json",
         "-schema-location", str(schemas / LOCATION), str(manifest)],
        capture_output=True, text=True)
    report: dict[str, Any] = json.loads(result.stdout)
    report["returncode"] = result.returncode
    return report


@pytest.fixture(scope="module")
def schemas(kube: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Schemas for every kind the chart renders in any case (CRDs applied to the server
    first: the chart's own and the stand-ins for other projects' kinds)."""
    docs = [d for case in CASES for d in render(case, "--include-crds")]
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    crds += [yaml.safe_load(path.read_text()) for path in FOREIGN_CRDS]
    for crd in crds:
        kube.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(crd))
    kinds = {gvk(d) for d in docs}
    kinds |= {(c["spec"]["group"], v["name"], c["spec"]["names"]["kind"])
              for c in crds for v in c["spec"]["versions"]}
    kinds.add(("apps", "v1", "Deployment"))  # for the negative check below
    dest = tmp_path_factory.mktemp("schemas")
    write_schemas(openapi(kube, kinds), dest, kinds)
    return dest


@pytest.mark.parametrize("case", CASES)
def test_helm_lint(case: str) -> None:
    out = helm("lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION,
               *values_args(case))
    assert "0 chart(s) failed" in out


EXPECTED_KINDS = {
    "defaults": {"CustomResourceDefinition", "CSIDriver", "DaemonSet", "Deployment"},
    "full": {"StorageClass", "Service", "ServiceMonitor", "ConfigMap", "DaemonSet"},
    "operator-only": {"CustomResourceDefinition", "Deployment", "ClusterRole"},
    "nats-server": {"ConfigMap", "Service", "Deployment", "DaemonSet"},
}


@pytest.mark.parametrize("case", CASES)
def test_rendered_chart_is_valid(case: str, schemas: Path, tmp_path: Path) -> None:
    docs = render(case, "--include-crds")
    kinds = {d["kind"] for d in docs}
    assert EXPECTED_KINDS[case] <= kinds
    if case == "operator-only":
        assert not kinds & {"CSIDriver", "DaemonSet", "StorageClass"}
    manifest = tmp_path / "chart.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    report = kubeconform(schemas, manifest)
    summary = report["summary"]
    assert report["returncode"] == 0, report["resources"]
    assert summary["valid"] == len(docs), summary
    assert summary["skipped"] == 0 and summary["errors"] == 0 and summary["invalid"] == 0


def test_validation_catches_a_wrong_field(schemas: Path, tmp_path: Path) -> None:
    """The same schemas reject a typo and a wrong type: the check can fail."""
    bad = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
        "spec": {"replicas": "two", "selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}},
                              "spec": {"containers": [{"name": "c", "image": "i",
                                                       "imagePullPolicyy": "Never"}]}}},
    }
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(yaml.safe_dump(bad))
    report = kubeconform(schemas, manifest)
    assert report["returncode"] == 1
    text = json.dumps(report["resources"])
    assert "replicas" in text and "imagePullPolicyy" in text
