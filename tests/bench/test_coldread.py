"""``python -m openfiles_bench.coldread``: the cold read, raw GET against the engine.

Like the bench's own tests, these check the shape of the output and that the
figures agree with each other, never a speed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.fuse
@pytest.mark.root
@pytest.mark.s3
def test_the_cold_read_measures_both_sides(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "openfiles_bench.coldread", "--rounds", "1", "--size", "64",
         "--random", "50"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
    )
    assert run.returncode == 0, run.stderr
    raw, rand, engine, threads, budget = run.stdout.splitlines()
    assert rand.startswith("random") and float(rand.split()[1]) > 0
    assert raw.startswith("raw") and float(raw.split()[1]) > 0
    assert engine.startswith("engine") and float(engine.split()[1]) > 0
    fetched = re.search(r"fetched (\d+) MiB", engine)
    assert fetched and int(fetched[1]) >= 64  # every byte of the object reached the cache
    assert "python" in threads  # the engine's main thread, by name
    spent = re.fullmatch(
        r"budget raw ([\d.]+) s CPU in ([\d.]+) s, engine path ([\d.]+) s CPU in ([\d.]+) s: "
        r"ratio ([\d.]+)x, bound on (\d+) cores ([\d.]+)x", budget)
    assert spent, budget
    raw_cpu, raw_s, engine_cpu, engine_s, ratio, cores, bound = map(float, spent.groups())
    assert raw_cpu > 0 and engine_cpu > 0 and cores == os.cpu_count()
    # Each printed figure is rounded to 0.01: the bound and the ratio (the same
    # bytes on both sides, so seconds against seconds) must fall between the
    # values the unrounded ones allow.
    e = 0.005
    assert (raw_s - e) / ((engine_cpu + e) / cores) - e <= bound
    assert bound <= (raw_s + e) / ((engine_cpu - e) / cores) + e
    assert (raw_s - e) / (engine_s + e) - e <= ratio <= (raw_s + e) / (engine_s - e) + e
