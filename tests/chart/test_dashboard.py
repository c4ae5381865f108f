"""The chart's Grafana dashboard: an opt-in ConfigMap whose every query asks only for
series the node plugin exports (``sample_names``, which tests/csi/plugin/test_metrics.py
checks against a real node plugin's scrape) by labels those series carry."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures.prereq import tool
from openfiles_csi.plugin.metrics import LABELS, sample_names

pytestmark = [pytest.mark.tools]

CHART = Path(__file__).resolve().parents[2] / "charts" / "openfiles"
DASHBOARD = CHART / "dashboards" / "openfiles.json"
METRIC = re.compile(r"\bopenfiles_[a-z0-9_]+")
# Label names a query may group or match by: the series' own, and le of histogram buckets.
GROUPING = re.compile(r"\bby\s*\(([^)]*)\)")
MATCHER = re.compile(r"\{([^}]*)\}")
TOPICS = {  # what the dashboard must show (issue 14): a metric each answers with
    "export lag": "openfiles_export_lag_seconds",
    "dirty bytes": "openfiles_dirty_bytes",
    "conflicts": "openfiles_conflicts_total",
    "cache hit ratio": "openfiles_cache_hit_bytes_total",
    "request latency": "openfiles_fuse_request_duration_seconds_bucket",
}


def render(*sets: str) -> list[dict[str, Any]]:
    args = [str(tool("helm")), "template", "openfiles", str(CHART),
            "--namespace", "openfiles-system", "--kube-version", "1.34.10"]  # fmt: skip
    for s in sets:
        args += ["--set", s]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def queries(dashboard: dict[str, Any]) -> dict[str, list[str]]:
    """Every PromQL expression by panel title (rows' nested panels included), plus the
    template variables' queries."""
    found: dict[str, list[str]] = {}
    panels = list(dashboard["panels"])
    while panels:
        panel = panels.pop()
        panels.extend(panel.get("panels", []))
        if panel.get("type") != "row":
            found[panel["title"]] = [t["expr"] for t in panel.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            found[f"${var['name']}"] = [var["query"]["query"]]
    return found


def labels_used(expr: str) -> set[str]:
    names = set()
    for group in GROUPING.findall(expr):
        names |= {n.strip() for n in group.split(",") if n.strip()}
    for matchers in MATCHER.findall(expr):
        names |= {m.split("=")[0].rstrip("!~").strip() for m in matchers.split(",")
                  if m.strip()}
    names |= set(re.findall(r"label_values\([^,]+,\s*(\w+)\)", expr))
    return names


def test_every_query_asks_for_exported_series() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = sample_names()
    found = queries(dashboard)
    assert len(found) >= 7
    for title, exprs in found.items():
        assert exprs, f"panel {title!r} has no query"
        for expr in exprs:
            metrics = set(METRIC.findall(expr))
            assert metrics, f"{title}: {expr} asks for no openfiles series"
            assert metrics <= exported, f"{title}: not exported: {metrics - exported}"
            assert labels_used(expr) <= {*LABELS, "le"}, f"{title}: {expr}"
            assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}")
    every = {m for exprs in found.values() for e in exprs for m in METRIC.findall(e)}
    for topic, metric in TOPICS.items():
        assert metric in every, f"no panel shows {topic}"


def test_the_checks_catch_a_wrong_name_or_label() -> None:
    assert not {"openfiles_hit_ratio"} <= sample_names()  # a name this chart once used
    assert labels_used('sum by (volume_id) (openfiles_dirty_bytes{node=~"$node"})') == {
        "volume_id", "node"}


def test_dashboard_configmap_is_opt_in_and_carries_the_json() -> None:
    assert not [d for d in render() if d["metadata"]["name"] == "openfiles-dashboard"]
    (cm,) = [d for d in render("node.metrics.dashboard.enabled=true",
                               "node.metrics.dashboard.annotations.grafana_folder=Storage")
             if d["metadata"]["name"] == "openfiles-dashboard"]
    assert cm["kind"] == "ConfigMap"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"  # the sidecar's default
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Storage"}
    assert cm["metadata"]["namespace"] == "openfiles-system"
    assert json.loads(cm["data"]["openfiles.json"]) == json.loads(DASHBOARD.read_text())
    # Without the metrics endpoint there is nothing to show: the chart says so.
    with pytest.raises(subprocess.CalledProcessError) as failed:
        render("node.metrics.dashboard.enabled=true", "node.metrics.enabled=false")
    assert "need node.metrics.enabled" in failed.value.stderr
