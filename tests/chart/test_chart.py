"""Layer 5: the Helm chart lints, renders for the pinned Kubernetes, and every
rendered object validates against the real API server's schemas (offline)."""

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

pytestmark = [pytest.mark.tools, pytest.mark.cluster]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "openfiles"
KUBE_VERSION = "1.34.10"


def helm(*args: str) -> str:
    result = subprocess.run([str(tool("helm")), *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def render() -> list[dict[str, Any]]:
    out = helm("template", "openfiles", str(CHART), "--namespace", "openfiles-system",
               "--kube-version", KUBE_VERSION, "--include-crds")
    return [d for d in yaml.safe_load_all(out) if d]


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
    """Schemas for every kind the chart renders (CRDs applied to the server first)."""
    docs = render()
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    for crd in crds:
        kube.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(crd))
    kinds = {gvk(d) for d in docs}
    kinds |= {(c["spec"]["group"], v["name"], c["spec"]["names"]["kind"])
              for c in crds for v in c["spec"]["versions"]}
    kinds.add(("apps", "v1", "Deployment"))  # for the negative check below
    dest = tmp_path_factory.mktemp("schemas")
    write_schemas(openapi(kube, kinds), dest, kinds)
    return dest


def test_helm_lint() -> None:
    out = helm("lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION)
    assert "0 chart(s) failed" in out


def test_rendered_chart_is_valid(schemas: Path, tmp_path: Path) -> None:
    docs = render()
    kinds = {d["kind"] for d in docs}
    assert {"CustomResourceDefinition", "CSIDriver", "DaemonSet", "Deployment"} <= kinds
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
