"""/proc/<pid>/stat: fields after the command name, whatever it holds."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from openfiles_contracts import procstat

# proc(5) fields 1-22, with a command name holding a space and a parenthesis.
LINE = "4242 (a b) c)) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 987654 " \
       "12345678 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"


def test_parse_counts_fields_after_the_last_parenthesis() -> None:
    stat = procstat.parse(LINE)
    assert stat == procstat.ProcStat(state="S", ppid=17, utime=250, stime=50, start_ticks=987654)
    assert not stat.zombie
    assert stat.cpu_seconds == pytest.approx(300 / os.sysconf("SC_CLK_TCK"))
    assert procstat.parse(LINE.replace(" S 17 ", " Z 17 ")).zombie


@pytest.mark.parametrize("bad", ["", "4242 S 17", "4242 (x) S 17 4242"])
def test_parse_refuses_what_is_not_a_stat_line(bad: str) -> None:
    with pytest.raises(ValueError):
        procstat.parse(bad)


def test_read_this_process_and_its_threads(tmp_path: Path) -> None:
    me = procstat.read(f"/proc/{os.getpid()}")
    assert me.ppid == os.getppid() and me.state in "RS"
    (thread,) = [t for t in Path(f"/proc/{os.getpid()}/task").iterdir()
                 if t.name == str(os.getpid())]
    assert procstat.read(thread).start_ticks == me.start_ticks
    with pytest.raises(FileNotFoundError):
        procstat.read(tmp_path)


def test_start_ticks_name_one_live_process() -> None:
    assert procstat.start_ticks(os.getpid()) == procstat.read(f"/proc/{os.getpid()}").start_ticks
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    ticks = procstat.start_ticks(child.pid)
    assert ticks is not None
    deadline = time.monotonic() + 10
    while procstat.start_ticks(child.pid) is not None:  # a zombie counts as gone
        assert time.monotonic() < deadline
        time.sleep(0.01)
    child.wait()
    assert procstat.start_ticks(child.pid) is None  # reaped: no such process
