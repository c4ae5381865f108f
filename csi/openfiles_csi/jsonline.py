"""One JSON-lines request over a unix stream socket: the engine control socket and the mounter.

Two forms with one contract: :func:`arequest` for the event loop (it holds no thread,
so slow mounts cannot starve a thread pool that stats calls also need) and
:func:`request` for the Prometheus collector, which runs in its own thread. Every call
has a deadline.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

MAX_REPLY = 4 * 1024 * 1024


class PeerError(OSError):
    """The peer is absent, hung, or answered something that is not one JSON object."""


def request(path: str, message: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Send ``message`` as one line to the socket at ``path`` and return the reply object.

    Raises :class:`PeerError` on connection failure, timeout, or a malformed reply.
    """
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(json.dumps(message).encode() + b"\n")
            buf = bytearray()
            while b"\n" not in buf:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                sock.settimeout(remaining)
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                if len(buf) > MAX_REPLY:
                    raise PeerError(f"reply from {path} too large")
    except TimeoutError:
        raise PeerError(f"no reply from {path} within {timeout:g}s") from None
    except PeerError:
        raise
    except OSError as exc:
        raise PeerError(f"cannot reach {path}: {exc.strerror or exc}") from None
    return _decode(bytes(buf), path)


async def arequest(path: str, message: dict[str, Any], timeout: float) -> dict[str, Any]:
    """:func:`request` for the event loop: same reply, same :class:`PeerError` cases."""

    async def exchange() -> bytes:
        reader, writer = await asyncio.open_unix_connection(path, limit=MAX_REPLY)
        try:
            writer.write(json.dumps(message).encode() + b"\n")
            await writer.drain()
            return await reader.readline()
        finally:
            writer.close()

    try:
        data = await asyncio.wait_for(exchange(), timeout)
    except TimeoutError:
        raise PeerError(f"no reply from {path} within {timeout:g}s") from None
    except ValueError:  # the line exceeded MAX_REPLY
        raise PeerError(f"reply from {path} too large") from None
    except OSError as exc:
        raise PeerError(f"cannot reach {path}: {exc.strerror or exc}") from None
    return _decode(data, path)


def _decode(data: bytes, path: str) -> dict[str, Any]:
    line = data.split(b"\n", 1)[0]
    try:
        reply = json.loads(line)
    except ValueError:
        raise PeerError(f"malformed reply from {path}") from None
    if not isinstance(reply, dict):
        raise PeerError(f"malformed reply from {path}")
    return reply
