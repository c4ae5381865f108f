"""``python -m openfiles_bench.visibility``: close on one mount to the new bytes on another.

Checks the shape of the output and that events beat a TTL long enough to tell
them apart (60 s: a run seen within it without events would be a bug), never a speed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

LINE = re.compile(r"(\w+)\s+runs\s+(\d+)\s+median\s+(\d+) ms\s+p10\s+(\d+)\s+p90\s+(\d+)\s+"
                  r"min\s+(\d+)\s+max\s+(\d+)")


@pytest.mark.fuse
@pytest.mark.root
@pytest.mark.s3
@pytest.mark.nats
def test_events_are_measured_against_the_ttl(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "openfiles_bench.visibility", "--runs", "3", "--modes", "events",
         "--metadata-ttl", "60s"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False,
    )
    assert run.returncode == 0, run.stderr
    (line,) = run.stdout.splitlines()
    found = LINE.fullmatch(line)
    assert found, line
    mode, runs, median, p10, p90, low, high = found.groups()
    assert (mode, int(runs)) == ("events", 3)
    assert int(low) <= int(p10) <= int(median) <= int(p90) <= int(high)
    assert int(high) < 60_000  # every change was seen before the TTL could have shown it
