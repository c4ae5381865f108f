"""The leak check really fails a run that leaves a process or a mount behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]


def run_probe(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    probe = tmp_path / "test_probe.py"
    probe.write_text(body)
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "fixtures.leaks",
         "-o", "addopts=", "--rootdir", str(tmp_path), str(probe)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


def test_leaked_process_fails_the_run(tmp_path: Path) -> None:
    result = run_probe(tmp_path, (
        "import subprocess\n"
        "def test_leaks():\n"
        "    subprocess.Popen(['sleep', '30'])\n"))
    assert result.returncode == 1, result.stdout
    assert "LEAK: child processes left behind" in result.stdout
    assert "1 passed" in result.stdout


@pytest.mark.fuse
def test_leaked_mount_fails_the_run_and_is_unmounted(tmp_path: Path) -> None:
    # A real FUSE mount by a tiny pyfuse3 file system that the probe does not unmount.
    result = run_probe(tmp_path, (
        "import subprocess, sys, time, os\n"
        "def test_leaks(tmp_path):\n"
        "    code = ('import pyfuse3, trio, sys\\n'\n"
        "            'ops = pyfuse3.Operations()\\n'\n"
        "            'pyfuse3.init(ops, sys.argv[1], set())\\n'\n"
        "            'trio.run(pyfuse3.main)\\n')\n"
        "    mnt = tmp_path / 'mnt'; mnt.mkdir()\n"
        "    subprocess.Popen([sys.executable, '-c', code, str(mnt)], start_new_session=True)\n"
        "    deadline = time.time() + 20\n"
        "    while not os.path.ismount(mnt) and time.time() < deadline: time.sleep(0.05)\n"
        "    assert os.path.ismount(mnt)\n"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "LEAK: FUSE mounts left behind" in result.stdout
    assert not any("test_leaks" in line and "fuse" in line
                   for line in Path("/proc/self/mountinfo").read_text().splitlines())
