"""Export a dead engine's cache without mounting: ``openfiles mount ... --flush-only``.

When an engine has died, its cache may hold files it had not exported yet. At unmount the
mounter runs the engine once more in flush-only mode (CONTRACTS.md section 1) on that cache,
with the same source, options and the credentials of the stage request, which the mounter
keeps in memory only. Without them (the mounter restarted since) the engine runs with
``--unmount-timeout 0`` and no credentials: it sends nothing to the store, and only
counts what stays. Either way the answer is what is left (:class:`Left`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from openfiles_csi.logsetup import redact
from openfiles_csi.mounter import process
from openfiles_csi.mounter.engineprocess import command_line
from openfiles_csi.mounter.record import MountRecord, StrandedStore

log = logging.getLogger(__name__)

GRACE = 30.0
"""Seconds a flush-only engine gets beyond its export timeout (opening the cache, replay)."""
NO_CREDENTIALS = "the mounter restarted since the stage and holds no credentials for it"


@dataclass
class Left:
    """What a dead engine's cache still holds after a recovery; None where unknown."""

    dirty_files: int | None
    dirty_bytes: int | None
    pending_exports: int | None
    error: str | None

    @property
    def clean(self) -> bool:
        return self.dirty_files == 0 and self.pending_exports == 0

    def as_dict(self) -> dict[str, Any]:
        return {"dirty_files": self.dirty_files, "dirty_bytes": self.dirty_bytes,
                "pending_exports": self.pending_exports, "error": self.error}


async def flush_only(
    record: MountRecord,
    env: dict[str, str] | None,
    engine_command: Sequence[str],
    timeout: float,
) -> Left:
    """Run a flush-only engine on ``record``'s cache for at most ``timeout`` + GRACE seconds.

    ``env`` None means no credentials: count only. The engine's log lines go to the
    record's log file; its one-line JSON answer is read from stdout. Never raises for
    what the engine does: a failure is a :class:`Left` with the reason.
    """
    seconds = timeout if env is not None else 0.0
    argv = [*command_line(engine_command, record), "--flush-only",
            "--unmount-timeout", f"{seconds:g}s"]
    try:
        proc = await process.spawn(argv, env or {}, record.log_path, stdout_pipe=True)
    except OSError as exc:
        return Left(None, None, None, f"cannot start the engine: {exc}")
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), seconds + GRACE)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return Left(None, None, None, f"the flush-only engine did not finish in "
                    f"{seconds + GRACE:g} s")
    try:
        answer = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = redact(process.log_tail(record.log_path))
        return Left(None, None, None, f"engine exited with code {proc.returncode}: {tail}")
    error = answer.get("error")
    if env is None:
        error = NO_CREDENTIALS
    return Left(answer.get("dirty_files"), answer.get("dirty_bytes"),
                answer.get("pending_exports"), redact(error) if error else None)


async def recover(
    record: MountRecord,
    env: dict[str, str] | None,
    engine_command: Sequence[str],
    timeout: float,
    stranded: StrandedStore,
) -> dict[str, Any] | None:
    """:func:`flush_only`, then keep the volume's stranded-data marker true.

    Returns None when nothing is left (the marker is removed), else the marker saved:
    ``volume_id``, ``source``, ``cache_dir``, what :class:`Left` says, and ``since``
    (kept from an earlier marker of the volume).
    """
    left = await flush_only(record, env, engine_command, timeout)
    if left.clean:
        stranded.delete(record.volume_id)
        return None
    earlier = stranded.get(record.volume_id) or {}
    marker = {"volume_id": record.volume_id, "source": record.source,
              "cache_dir": record.cache_dir, **left.as_dict(),
              "since": earlier.get("since", time.time())}
    stranded.save(marker)
    log.error("volume %s: %s dirty files (%s bytes) stay in the cache %s of this node until "
              "the volume is staged here again: %s", record.volume_id, left.dirty_files,
              left.dirty_bytes, record.cache_dir, left.error)
    return marker
