"""Control socket: one JSON request per line, one JSON reply per line (docs/CONTRACTS.md §2).

The server side, on trio inside the engine. The framing, its limits and the
blocking client (``openfiles flush``, ``openfiles status``) are
:mod:`openfiles_contracts.jsonline`'s.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from openfiles_contracts.jsonline import MAX_CONTROL_REQUEST, decode_request, encode

log = logging.getLogger(__name__)

Dispatch = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def run_dir() -> str:
    explicit = os.environ.get("OPENFILES_RUN_DIR")
    if explicit:
        return explicit
    if os.geteuid() == 0:
        return "/run/openfiles"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    return os.path.join(xdg, "openfiles") if xdg else f"/tmp/openfiles-{os.getuid()}"


def default_socket(mountpoint: str) -> str:
    """``$OPENFILES_RUN_DIR/<sha256(realpath(MOUNTPOINT))[:16]>.sock``."""
    digest = hashlib.sha256(os.path.realpath(mountpoint).encode()).hexdigest()[:16]
    return os.path.join(run_dir(), f"{digest}.sock")


async def serve(path: str, dispatch: Dispatch, *,
                task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Listen on ``path`` (replacing a stale socket file) until cancelled."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(path)
    os.chmod(path, 0o600)
    sock.listen(16)
    listener = trio.SocketListener(sock)
    task_status.started()
    try:
        async def handle(stream: trio.SocketStream) -> None:
            await _client(stream, dispatch)

        await trio.serve_listeners(handle, [listener])
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


async def _client(stream: trio.abc.Stream, dispatch: Dispatch) -> None:
    async with stream:
        buf = b""
        while b"\n" not in buf and len(buf) < MAX_CONTROL_REQUEST:
            chunk = await stream.receive_some(4096)
            if not chunk:
                break
            buf += chunk
        try:
            reply = await dispatch(decode_request(buf))
        except ValueError as exc:
            reply = {"ok": False, "error": f"bad request: {exc}"}
        except Exception as exc:
            log.exception("control request failed")
            reply = {"ok": False, "error": f"internal error: {type(exc).__name__}"}
        try:
            await stream.send_all(encode(reply))
        except trio.BrokenResourceError:
            pass

