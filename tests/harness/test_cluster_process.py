"""e2e/cluster/process.sh's ``alive``: a daemon counts as stopped only once every
thread of it has, since its files (a kubelet's listening ports) go with the last."""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest

PROCESS_SH = Path(__file__).resolve().parents[2] / "e2e" / "cluster" / "process.sh"

# The main thread ends alone (the exit system call, not exit_group), as a Go
# program's first thread may, while another thread of the process runs on.
LEADER_ENDS_FIRST = """
import ctypes, threading, time
threading.Thread(target=time.sleep, args=(30,)).start()
print("ready", flush=True)
ctypes.CDLL(None).syscall(60, 0)
"""


def alive(pid: int) -> bool:
    script = f'set -euo pipefail; source "{PROCESS_SH}"; alive {pid}'
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert result.stderr == ""
    return result.returncode == 0


def state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.mark.skipif(platform.machine() != "x86_64", reason="exit is system call 60 on x86_64")
def test_a_process_whose_first_thread_ended_is_alive_until_its_last_thread_ends() -> None:
    proc = subprocess.Popen([sys.executable, "-c", LEADER_ENDS_FIRST], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        deadline = time.monotonic() + 10
        while state(proc.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert state(proc.pid) == "Z"  # what /proc/PID/stat shows: the first thread's state
        assert alive(proc.pid)  # its other thread still runs, with the process's files
        proc.kill()
        deadline = time.monotonic() + 10
        while alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(proc.pid)  # every thread ended: a zombie until reaped, and stopped
        assert state(proc.pid) == "Z"
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert not alive(proc.pid)  # gone


def test_a_running_process_is_alive() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        assert alive(proc.pid)
    finally:
        proc.kill()
        proc.wait()
