"""Start engine processes and recognise them again later by pid and start time.

Engines run in their own session (so a signal to the mounter's process group does not
reach them) and write to a log file, not a pipe: a pipe would break, and could kill
the engine with SIGPIPE, when the mounter restarts.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import BinaryIO

from openfiles_contracts import procstat

# The engine is the `openfiles mount` subcommand of this same installation.
DEFAULT_ENGINE_COMMAND = (sys.executable, "-m", "openfiles_cli")

# What the child may inherit besides its credentials: nothing that names a secret.
INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "HOME", "OPENFILES_RUN_DIR", "PYTHONPATH")


def is_alive(pid: int, ticks: int) -> bool:
    """Is ``pid`` still the process that started at ``ticks``, and not a zombie?"""
    return pid > 0 and procstat.start_ticks(pid) == ticks


async def spawn(
    argv: Sequence[str], env: Mapping[str, str], log_path: str, *, stdout_pipe: bool = False
) -> asyncio.subprocess.Process:
    """Start ``argv`` with ``env`` (credentials) added to a minimal inherited environment.

    Output goes to ``log_path``; with ``stdout_pipe`` stdout is a pipe instead, for a
    short-lived child whose answer the caller reads (``openfiles mount --flush-only``).
    """
    child_env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    child_env.update(env)
    with _open_log(log_path) as log_file:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if stdout_pipe else log_file,
            stderr=log_file,
            env=child_env,
            start_new_session=True,
        )


def _open_log(path: str) -> BinaryIO:
    # Local append-only file: opening it does not block for long. Mode 0600 because an
    # engine's log can quote what a store answered (an S3 error body quotes the request).
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    return os.fdopen(fd, "ab")


async def wait_exit(pid: int, ticks: int) -> None:
    """Return when the process ``pid`` (started at ``ticks``) has exited.

    Uses a pidfd, which becomes readable at exit, so no polling is needed for engines
    that are not our children.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if not is_alive(pid, ticks):  # the pid was reused before we opened it
            return
        loop = asyncio.get_running_loop()
        exited = loop.create_future()
        loop.add_reader(fd, exited.set_result, None)
        try:
            await exited
        finally:
            loop.remove_reader(fd)
    finally:
        os.close(fd)


def signal_process(pid: int, ticks: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to the engine if it is still the same process; return whether it was."""
    if not is_alive(pid, ticks):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def log_tail(path: str, lines: int = 5) -> str:
    """The last lines of an engine log, for an error message when a mount fails."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return " | ".join(text.strip().splitlines()[-lines:])
