"""One engine process as the mounter drives it: command line, start, readiness, stop.

The focused tests run stand-in engines (``sh``, ``sleep``), real processes that never
mount anything, so they need neither root nor FUSE; the real engine is driven through
the mounter by ``test_node``, ``test_restart`` and ``test_mounter``.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from openfiles_contracts import jsonline, procstat
from openfiles_csi.mounter import engineprocess as engine
from openfiles_csi.mounter import process
from openfiles_csi.mounter.engineprocess import RESERVED_ARGS, MounterError
from openfiles_csi.mounter.record import MountRecord, RecordStore

from ..conftest import Node


def record_in(tmp_path: Path, name: str = "v") -> MountRecord:
    return MountRecord(
        volume_id=name, mountpoint=str(tmp_path / "mnt" / name), source="s3://bucket/" + name,
        args=["--read-only"], cache_dir=str(tmp_path / "cache" / name),
        control_socket=str(tmp_path / f"{name}.sock"), log_path=str(tmp_path / f"{name}.log"),
    )  # fmt: skip


def shell(script: str) -> list[str]:
    """An engine command running ``script``; the engine's own arguments become $1..."""
    return ["sh", "-c", script, "engine"]


def test_command_line_is_the_contract(tmp_path: Path) -> None:
    record = record_in(tmp_path)
    argv = engine.command_line(["openfiles"], record)
    assert argv[:5] == ["openfiles", "mount", record.source, record.mountpoint, "--read-only"]
    options = dict(zip(argv[5::2], argv[6::2], strict=False))
    assert options["--cache-dir"] == record.cache_dir
    assert options["--control-socket"] == record.control_socket
    assert re.fullmatch(r"[0-9a-f]{12}", options["--fsid"])
    assert argv[-1] == "--foreground"
    assert RESERVED_ARGS <= set(argv)
    # The fsid names the lost+found directory: the same volume always gets the same one.
    def fsid(record: MountRecord) -> str:
        other = engine.command_line(["x"], record)
        return other[other.index("--fsid") + 1]

    assert fsid(record_in(tmp_path / "elsewhere")) == options["--fsid"]
    assert fsid(record_in(tmp_path, "w")) != options["--fsid"]


def test_spawn_saves_the_record_and_a_silent_engine_times_out(tmp_path: Path) -> None:
    records = RecordStore(str(tmp_path / "state"))
    record = record_in(tmp_path)

    async def run() -> tuple[MounterError, int | None]:
        proc = await engine.spawn(record, {}, shell("exec sleep 30"), records)
        (saved,) = records.load()
        assert (saved.state, saved.pid) == ("starting", proc.pid)
        assert process.is_alive(saved.pid, saved.start_ticks)
        with pytest.raises(MounterError) as failure:
            await engine.wait_ready(record, proc, 0.5)
        return failure.value, await engine.terminate(record, proc, 10)

    error, code = asyncio.run(run())
    assert error.code == "timeout" and "not ready within 0.5s" in str(error)
    assert code == -signal.SIGTERM
    assert record.extra["stopping"] is True  # its exit is not taken for a crash
    assert Path(record.cache_dir).is_dir()


def test_an_exiting_engine_fails_with_its_log_tail(tmp_path: Path) -> None:
    records = RecordStore(str(tmp_path / "state"))
    record = record_in(tmp_path)

    async def run() -> MounterError:
        proc = await engine.spawn(record, {}, shell("echo bad endpoint >&2; exit 3"), records)
        with pytest.raises(MounterError) as failure:
            await engine.wait_ready(record, proc, 30)
        return failure.value

    error = asyncio.run(run())
    assert error.code == "failed"
    assert str(error) == "engine exited with code 3: bad endpoint"


def test_terminate_kills_an_engine_that_ignores_sigterm(tmp_path: Path) -> None:
    records = RecordStore(str(tmp_path / "state"))
    record = record_in(tmp_path)

    async def run() -> tuple[int | None, int | None]:
        proc = await engine.spawn(record, {}, shell("trap '' TERM; exec sleep 30"), records)
        await asyncio.sleep(0.3)  # let the shell set the trap before the exec
        return await engine.terminate(record, proc, 0.5), proc.returncode

    assert asyncio.run(run()) == (None, -signal.SIGKILL)


def test_terminate_an_adopted_engine(tmp_path: Path) -> None:
    """An engine a previous mounter started is not our child: stopped by pid and start time."""
    child = subprocess.Popen(["sleep", "30"])
    try:
        record = record_in(tmp_path)
        ticks = procstat.start_ticks(child.pid)
        assert ticks is not None
        record.pid, record.start_ticks = child.pid, ticks
        assert asyncio.run(engine.terminate(record, None, 10)) == 0
        assert child.wait(10) == -signal.SIGTERM
    finally:
        child.kill()
        child.wait()


def test_stop_all_signals_every_live_engine_and_waits_no_longer(tmp_path: Path) -> None:
    polite = subprocess.Popen(["sleep", "30"])
    stubborn = subprocess.Popen(["sh", "-c", "trap '' TERM; exec sleep 30"])
    try:
        records = []
        for name, child in (("polite", polite), ("stubborn", stubborn)):
            record = record_in(tmp_path, name)
            ticks = procstat.start_ticks(child.pid)
            assert ticks is not None
            record.pid, record.start_ticks = child.pid, ticks
            records.append(record)
        records.append(record_in(tmp_path, "never-started"))  # pid 0: skipped
        time.sleep(0.3)  # let the shell set the trap before the exec
        asyncio.run(engine.stop_all(records, 0.5))
        assert polite.wait(10) == -signal.SIGTERM
        assert stubborn.poll() is None  # no SIGKILL: the caller's exit does that
    finally:
        for child in (polite, stubborn):
            child.kill()
            child.wait()


def test_engine_log_tail_is_masked(node_env: Node) -> None:
    """An engine that fails quoting its credentials (as an S3 error body can quote a session
    token) does not get them relayed into the reply, the mounter log or the record."""
    node_env.mounter.stop()
    # A stand-in for a misbehaving engine: the real one never prints its credentials.
    leaky = "sh -c 'echo \"SignatureDoesNotMatch token=$AWS_SESSION_TOKEN\" >&2; exit 3'"
    node_env.mounter.argv += ["--engine-command", leaky]
    node_env.start_mounter()
    token = "session-token-value-7f3a9c"
    request = {"op": "mount", "volume_id": "v", "source": "s3://bucket/v",
               "mountpoint": str(node_env.kubelet / "leak"), "timeout": 30,
               "env": {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t-x",
                       "AWS_SESSION_TOKEN": token}}  # fmt: skip
    reply = jsonline.request(node_env.mounter_socket, request, 60)
    assert reply["code"] == "failed"
    assert "exited with code 3" in str(reply["error"])
    assert "SignatureDoesNotMatch token=***" in str(reply["error"])
    assert token not in str(reply["error"])
    assert token not in node_env.mounter.log()
    # The failed mount is cleaned away: no record (records never hold env anyway).
    assert list((node_env.root / "state" / "records").iterdir()) == []
