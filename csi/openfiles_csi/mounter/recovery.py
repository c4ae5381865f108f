"""Export a dead engine's cache without mounting: ``openfiles mount ... --flush-only``.

When an engine has died, its cache may hold files it had not exported yet. At unmount the
mounter runs the engine once more in flush-only mode (CONTRACTS.md section 1) on that cache,
with the same source, options and the credentials of the stage request, which the mounter
keeps in memory only. Without them (the mounter restarted since) the engine runs with
``--unmount-timeout 0`` and no credentials: it sends nothing to the store, and only
counts what stays. Either way the answer is what is left (:class:`~cachedir.Left`),
which :func:`cachedir.settle` turns into keeping or discarding the cache directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence

from openfiles_csi.logsetup import redact
from openfiles_csi.mounter import process
from openfiles_csi.mounter.cachedir import Left, unknown
from openfiles_csi.mounter.engineprocess import command_line
from openfiles_csi.mounter.record import MountRecord

GRACE = 30.0
"""Seconds a flush-only engine gets beyond its export timeout (opening the cache, replay)."""
NO_CREDENTIALS = "the mounter restarted since the stage and holds no credentials for it"


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
        return unknown(f"cannot start the engine: {exc}")
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), seconds + GRACE)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return unknown(f"the flush-only engine did not finish in {seconds + GRACE:g} s")
    try:
        answer = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = redact(process.log_tail(record.log_path))
        return unknown(f"engine exited with code {proc.returncode}: {tail}")
    left = Left(answer.get("dirty_files"), answer.get("dirty_bytes"),
                answer.get("pending_exports"), answer.get("lostfound_files"),
                answer.get("lostfound_bytes"), None)
    error = NO_CREDENTIALS if env is None and not left.clean else answer.get("error")
    left.error = redact(error) if error and not left.clean else None
    return left
