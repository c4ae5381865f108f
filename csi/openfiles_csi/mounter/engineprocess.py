"""The engine process of one mount, as the mounter drives it (CONTRACTS.md §1).

- :func:`spawn` starts ``openfiles mount SOURCE MOUNTPOINT ARGS --cache-dir C --fsid F
  --control-socket S --foreground`` with the credentials in its environment only; the
  record is saved ``starting`` before the child exists, then again with its pid.
- :func:`wait_ready` returns once the mount is ready as :mod:`openfiles_contracts.readiness`
  says (a ``fuse`` mount, the control socket answering ``status``), checking meanwhile
  that the child lives; it polls on the event loop, without blocking it.
- :func:`terminate` stops one engine (SIGTERM, then SIGKILL); :func:`stop_all` stops
  every live one at once.

The bookkeeping around them (which engine serves which mount point, per-mount locks,
watching for exits, reviving a dead engine's cache) is :mod:`openfiles_csi.mounter.mounts`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import time
from collections.abc import Iterable, Sequence

from openfiles_contracts import procstat, readiness
from openfiles_csi import jsonline
from openfiles_csi.logsetup import redact
from openfiles_csi.mounter import process
from openfiles_csi.mounter.record import STARTING, MountRecord, RecordStore

log = logging.getLogger(__name__)

# The mounter sets these itself; a request may not.
RESERVED_ARGS = frozenset({"--cache-dir", "--control-socket", "--foreground", "--fsid"})


class MounterError(Exception):
    """A failure with the mounter reply ``code`` it becomes.

    The codes are listed in :mod:`openfiles_csi.mounter.mounts`.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def command_line(engine_command: Sequence[str], record: MountRecord) -> list[str]:
    """The engine's argv for ``record``: the request's args plus :data:`RESERVED_ARGS`."""
    fsid = hashlib.sha256(record.volume_id.encode()).hexdigest()[:12]
    return [
        *engine_command,
        "mount",
        record.source,
        record.mountpoint,
        *record.args,
        "--cache-dir",
        record.cache_dir,
        "--fsid",
        fsid,
        "--control-socket",
        record.control_socket,
        "--foreground",
    ]


async def spawn(
    record: MountRecord,
    env: dict[str, str],
    engine_command: Sequence[str],
    records: RecordStore,
) -> asyncio.subprocess.Process:
    """Start the engine of ``record`` without waiting for it to serve.

    The record is saved ``starting`` before the child exists (so a mounter restarted
    at any moment finds it), then with the child's pid and start time.
    """
    os.makedirs(record.cache_dir, mode=0o700, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(record.control_socket)
    argv = command_line(engine_command, record)
    record.state = STARTING
    records.save(record)  # durable before the child exists
    proc = await process.spawn(argv, env, record.log_path)
    record.pid = proc.pid
    record.start_ticks = procstat.start_ticks(proc.pid) or 0
    records.save(record)
    log.info("started engine pid %d for volume %s at %s", proc.pid, record.volume_id,
             record.mountpoint)
    return proc


async def wait_ready(
    record: MountRecord, proc: asyncio.subprocess.Process, timeout: float
) -> None:
    """Wait until the mount is up and the control socket answers, checking the child lives.

    Raises ``MounterError("failed")`` with the engine log's masked tail if the child
    exits, ``MounterError("timeout")`` if it does not serve within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            tail = redact(process.log_tail(record.log_path))
            raise MounterError("failed", f"engine exited with code {proc.returncode}: {tail}")
        if readiness.mounted(record.mountpoint):
            try:
                reply = await jsonline.arequest(record.control_socket, readiness.STATUS, 2.0)
            except jsonline.PeerError:
                reply = {}
            if reply.get("ok"):
                return
        await asyncio.sleep(0.1)
    raise MounterError("timeout", f"mount at {record.mountpoint} not ready within {timeout:g}s")


async def terminate(
    record: MountRecord, child: asyncio.subprocess.Process | None, stop_timeout: float
) -> int | None:
    """SIGTERM, wait ``stop_timeout`` seconds, then SIGKILL. Returns the exit code if known.

    ``child`` is the engine's process object when the mounter started it, None when it
    was adopted. Marks the record ``stopping``, so that its exit is not taken for a crash.
    """
    record.extra["stopping"] = True
    process.signal_process(record.pid, record.start_ticks, signal.SIGTERM)
    deadline = time.monotonic() + stop_timeout
    while time.monotonic() < deadline:
        if child is not None and child.returncode is not None:
            return child.returncode
        if child is None and not process.is_alive(record.pid, record.start_ticks):
            return 0  # adopted: not our child, its exit code is not ours to read
        await asyncio.sleep(0.1)
    log.error("engine pid %d did not stop in %gs; killing it", record.pid, stop_timeout)
    process.signal_process(record.pid, record.start_ticks, signal.SIGKILL)
    if child is not None:
        await child.wait()
    return None


async def stop_all(records: Iterable[MountRecord], stop_timeout: float) -> None:
    """SIGTERM every live engine of ``records`` and wait, at most ``stop_timeout``
    seconds, for them to exit. The records are left as they are."""
    live = [r for r in records if process.is_alive(r.pid, r.start_ticks)]
    for record in live:
        process.signal_process(record.pid, record.start_ticks, signal.SIGTERM)
    deadline = time.monotonic() + stop_timeout
    while time.monotonic() < deadline:
        if not any(process.is_alive(r.pid, r.start_ticks) for r in live):
            break
        await asyncio.sleep(0.1)
