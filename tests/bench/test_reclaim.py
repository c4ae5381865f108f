"""bench_reclaim: the kdamond threads' CPU and the running DAMON schemes.

The /proc and sysfs trees are built in a temporary directory with the
layout the kernel gives them: whether this machine runs DAMON is not up to
the test. One test reads the real /proc.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from openfiles_bench.reclaim import damon_schemes, reclaim_seconds, settle


def task(proc: Path, pid: str, comm: str, utime: int, stime: int) -> None:
    (proc / pid).mkdir()
    (proc / pid / "comm").write_text(comm + "\n")
    fields = ["S", "2", *["0"] * 9, str(utime), str(stime), *["0"] * 10]
    (proc / pid / "stat").write_text(f"{pid} ({comm}) " + " ".join(fields) + "\n")


def test_only_kdamond_threads_count(tmp_path: Path) -> None:
    hz = os.sysconf("SC_CLK_TCK")
    task(tmp_path, "77", "kdamond.0", 3 * hz, hz)
    task(tmp_path, "78", "kdamond.1", hz, 0)
    task(tmp_path, "1", "init", 50 * hz, 50 * hz)
    (tmp_path / "self").mkdir()  # not a pid
    (tmp_path / "99").mkdir()  # a task that ended: no files
    assert reclaim_seconds(tmp_path) == pytest.approx(5.0)


def test_only_running_kdamonds_schemes_are_listed(tmp_path: Path) -> None:
    on = tmp_path / "0"
    (on / "contexts" / "0" / "schemes" / "0").mkdir(parents=True)
    (on / "state").write_text("on\n")
    (on / "contexts" / "0" / "schemes" / "0" / "action").write_text("pageout\n")
    off = tmp_path / "1"
    (off / "contexts" / "0" / "schemes" / "0").mkdir(parents=True)
    (off / "state").write_text("off\n")
    (off / "contexts" / "0" / "schemes" / "0" / "action").write_text("lru_prio\n")
    (tmp_path / "nr_kdamonds").write_text("2\n")
    assert damon_schemes(tmp_path) == ["pageout"]
    assert damon_schemes(tmp_path / "missing") == []


def test_the_real_proc_agrees_with_pgrep() -> None:
    pgrep = subprocess.run(["pgrep", "kdamond"], capture_output=True, text=True, check=False)
    hz = os.sysconf("SC_CLK_TCK")
    expected = 0.0
    for pid in pgrep.stdout.split():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        expected += (int(fields[11]) + int(fields[12])) / hz
    # kdamond may run a tick or two between the two readings
    assert reclaim_seconds() == pytest.approx(expected, abs=0.05)


def test_settle_waits_for_a_quiet_spell_but_not_forever() -> None:
    waited = settle(timeout=3.0, quiet=0.5, poll=0.1)
    if damon_schemes():  # the dev VM: at least one quiet spell, at most the timeout
        assert 0.5 <= waited <= 3.5
    else:  # only a sync
        assert waited < 3.0
