"""Recognising engine processes by pid and start time, and waiting for non-children."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from openfiles_contracts import procstat
from openfiles_csi.mounter import process


def test_start_ticks_identify_a_process() -> None:
    ticks = procstat.start_ticks(os.getpid())
    assert ticks is not None and process.is_alive(os.getpid(), ticks)
    assert not process.is_alive(os.getpid(), ticks + 1)  # same pid, other start: reused pid
    assert not process.is_alive(0, 0)


def test_wait_exit_and_zombies() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    ticks = procstat.start_ticks(child.pid)
    assert ticks is not None

    async def wait() -> None:
        await asyncio.wait_for(process.wait_exit(child.pid, ticks), 10)

    asyncio.run(wait())
    # Exited but not reaped yet: a zombie no longer serves a mount.
    assert not process.is_alive(child.pid, ticks)
    child.wait()
    assert procstat.start_ticks(child.pid) is None


def test_spawn_passes_only_credentials_and_basics(tmp_path: Path) -> None:
    log = str(tmp_path / "engine.log")
    os.environ["OPENFILES_TEST_LEAK"] = "must-not-pass"
    try:

        async def run() -> int:
            proc = await process.spawn(
                [sys.executable, "-c", "import os; print(sorted(os.environ))"],
                {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE"},
                log,
            )
            return await proc.wait()

        assert asyncio.run(run()) == 0
    finally:
        del os.environ["OPENFILES_TEST_LEAK"]
    text = Path(log).read_text()
    assert "AWS_ACCESS_KEY_ID" in text and "OPENFILES_TEST_LEAK" not in text
    assert process.log_tail(log) == text.strip()
    assert oct(os.stat(log).st_mode & 0o777) == "0o600"
