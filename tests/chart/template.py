"""`helm` for the chart tests: the value sets (cases) and the rendered manifests.

A case is ``defaults`` (values.yaml alone) or the name of a file in ``values/`` that is
layered over it. Every case is linted, validated against the API server's schemas
(test_chart.py) and compared with its golden manifest (test_golden.py).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from fixtures.prereq import tool

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "openfiles"
HERE = Path(__file__).resolve().parent
KUBE_VERSION = "1.34.10"
RELEASE = "openfiles"
NAMESPACE = "openfiles-system"
CASES = ("defaults", "full", "operator-only", "nats-server")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """``helm ARGS``, whatever its exit status."""
    return subprocess.run([str(tool("helm")), *args], capture_output=True, text=True)


def helm(*args: str) -> str:
    """``helm ARGS``'s output; fails the test when helm fails."""
    result = run(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def values_args(case: str) -> list[str]:
    return [] if case == "defaults" else ["--values", str(HERE / "values" / f"{case}.yaml")]


def template_args(*extra: str) -> list[str]:
    return ["template", RELEASE, str(CHART), "--namespace", NAMESPACE,
            "--kube-version", KUBE_VERSION, *extra]  # fmt: skip


def render_text(case: str = "defaults", *extra: str) -> str:
    """The manifests of ``case`` exactly as `helm template` prints them."""
    return helm(*template_args(*values_args(case), *extra))


def render(case: str = "defaults", *extra: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(render_text(case, *extra)) if d]
