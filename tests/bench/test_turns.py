"""``python -m openfiles_bench.turns``: cold readers, a re-read and a cold ``ls -l``.

As for the bench's other tools, the shape of the output is checked, never a speed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

LINE = re.compile(r"  openfiles +1 reader +([\d.]+) MiB/s cpu +([\d.]+) s/GiB +re-read +"
                  r"([\d.]+) MiB/s cpu +([\d.]+) s/GiB +4 readers +"
                  r"([\d.]+) MiB/s cpu +([\d.]+) s/GiB "
                  r"\(MinIO ([\d.]+), idle ([\d.]+), disk (\d+) MiB\) +"
                  r"ls cold +([\d.]+) ms +ls warm +([\d.]+) ms")

pytestmark = [pytest.mark.fuse, pytest.mark.root, pytest.mark.s3]


def test_every_round_gives_each_figure_and_a_missing_peer_is_named(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "openfiles_bench.turns", "--rounds", "2", "--size", "16",
         "--files", "20", "--mount-s3", str(tmp_path / "none")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    rows = LINE.findall(done.stdout)
    assert len(rows) == 2 and done.stdout.count("round ") == 2
    for row in rows:
        # Rates and times are never 0; a CPU figure may be (16 MiB re-read from the
        # cache in less than a clock tick of /proc's CPU counts).
        speeds = [float(x) for x in row[0:6:2] + row[9:]]
        cpus = [float(x) for x in row[1:6:2] + row[6:9]]  # idle, disk too: >= 0
        assert all(x > 0 for x in speeds) and all(x >= 0 for x in cpus)
    assert done.stdout.count("mountpoint  n/a (not found: ") == 2
