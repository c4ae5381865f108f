"""The chart's manifests for each value set, compared byte for byte with
``golden/<case>.yaml``: any change to what the chart renders shows up as a diff to
review. After an intended change, regenerate them and read the diff:

    OPENFILES_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/chart/test_golden.py
    git diff tests/chart/golden/

With the variable set, each test rewrites its file and then fails, so a run that
regenerated files never passes as a check.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from .template import CASES, HERE, render_text

pytestmark = [pytest.mark.tools]

GOLDEN = HERE / "golden"


def golden(case: str) -> Path:
    return GOLDEN / f"{case}.yaml"


def updating() -> bool:
    return os.environ.get("OPENFILES_UPDATE_GOLDEN", "") not in {"", "0"}


@pytest.mark.parametrize("case", CASES)
def test_manifests_match_golden(case: str) -> None:
    rendered = render_text(case)
    path = golden(case)
    if updating():
        path.write_text(rendered)
        pytest.fail(f"rewrote {path.relative_to(HERE)}; review it with git diff, then rerun "
                    "without OPENFILES_UPDATE_GOLDEN")
    assert path.exists(), f"{path} is missing: run with OPENFILES_UPDATE_GOLDEN=1"
    expected = path.read_text()
    if rendered != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(keepends=True),
                                            rendered.splitlines(keepends=True),
                                            f"golden/{case}.yaml", "helm template"))
        pytest.fail(f"the chart renders differently from golden/{case}.yaml (regenerate with "
                    f"OPENFILES_UPDATE_GOLDEN=1 if intended):\n{diff}")


def test_every_golden_file_is_a_case() -> None:
    """A golden file whose case was removed would never be compared again."""
    assert sorted(p.stem for p in GOLDEN.glob("*.yaml")) == sorted(CASES)


def test_a_changed_value_breaks_the_comparison() -> None:
    """The comparison is exact: one changed value makes the manifests differ."""
    changed = render_text("defaults", "--set", "node.flushTimeout=31")
    assert changed != golden("defaults").read_text()
