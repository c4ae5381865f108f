"""The cost of a workload, read from /proc for a real process tree."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from openfiles_bench.meter import GiB, Meter, Usage, tree

# A parent that starts a child; on a line from stdin the child holds 200 MiB
# and spins for 0.3 s of CPU, then frees it and says so.
CHILD = """
import sys, time
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()
block = bytearray(200 << 20)
for i in range(0, len(block), 4096): block[i] = 1
end = time.process_time() + 0.3
while time.process_time() < end: pass
del block
sys.stdout.write("done\\n"); sys.stdout.flush()
sys.stdin.readline()
"""
PARENT = f"""
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", {CHILD!r}], stdin=sys.stdin, stdout=sys.stdout)
child.wait()
"""


def test_a_tree_holds_the_process_and_its_descendants() -> None:
    with subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as process:
        _measure(process)


def _measure(process: subprocess.Popen[str]) -> None:
    try:
        assert process.stdout is not None and process.stdin is not None
        assert process.stdout.readline() == "ready\n"
        pids = tree(process.pid)
        assert pids[0] == process.pid and len(pids) == 2
        assert tree(os.getpid(), Path("/proc"))[0] == os.getpid()

        meter = Meter(process.pid, period=0.02)
        with meter.window() as window:
            process.stdin.write("go\n")
            process.stdin.flush()
            assert process.stdout.readline() == "done\n"
        # The child's peak, though it had freed the memory when the window closed.
        assert window.peak_rss >= 200 << 20
        assert 0.25 <= window.cpu_seconds < 5
        with Meter(process.pid, descendants=False).window() as alone:
            time.sleep(0.05)
        assert alone.peak_rss < 200 << 20
        process.stdin.write("end\n")
        process.stdin.flush()
    finally:
        process.kill()
        process.wait()


def test_a_process_that_is_gone_costs_nothing() -> None:
    process = subprocess.Popen(["true"])
    process.wait()
    with Meter(process.pid).window() as window:
        pass
    assert (window.peak_rss, window.cpu_seconds) == (0, 0.0)


def test_usage_per_gib_and_per_operation() -> None:
    usage = Usage(peak_rss=1, cpu_seconds=2.0, moved=GiB // 2, operations=4)
    assert usage.cpu_per_gib == 4.0 and usage.cpu_per_operation == 0.5
    assert Usage(1, 1.0, 0, 0).cpu_per_gib is None
    assert Usage(1, 1.0, 0, 0).cpu_per_operation is None
