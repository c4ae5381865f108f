"""``openfiles demo`` runs the main job end to end on an embedded file:// bucket."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.fuse, pytest.mark.timeout(120)]


def test_demo_runs_end_to_end() -> None:
    out = subprocess.run([sys.executable, "-m", "openfiles_cli", "demo"], capture_output=True,
                         text=True, timeout=110)
    assert out.returncode == 0, out.stderr
    assert "3 files read back intact" in out.stdout
    for key in ("hello.txt", "notes/todo.md", "data/random.bin", "greeting"):
        assert f"  {key}\n" in out.stdout
    assert "done." in out.stdout
