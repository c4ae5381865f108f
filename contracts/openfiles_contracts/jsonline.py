"""The JSON-line protocol of the engine's control socket and the mounter's socket.

Contract (docs/CONTRACTS.md section 2): a unix stream socket; the client sends
one JSON object on one line (UTF-8, ending in ``\\n``) and the server answers
with one JSON object on one line; one request per connection.

- A server reads at most its limit of request bytes (:data:`MAX_CONTROL_REQUEST`
  for an engine's control socket, :data:`MAX_MOUNTER_REQUEST` for the mounter's);
  what is not a JSON object is refused by :func:`decode_request` with a
  ValueError, and the server answers ``{"ok": false, "error": "..."}``.
- A client accepts at most :data:`MAX_REPLY` bytes of reply, and only one JSON
  object (:func:`decode_reply`).
- Every client call has a deadline. Absence, silence past the deadline, a
  reply too large and a malformed reply all raise :class:`PeerError`, an
  OSError, whose message names the socket and never the payload.

This module holds the framing and the blocking client :func:`request`. The
runtimes keep their own event-loop forms, which encode and decode through the
functions here: the engine's trio server (``openfiles_engine.control``), the
mounter's asyncio server (``openfiles_csi.mounter.cli``) and the CSI package's
asyncio client (``openfiles_csi.jsonline``).
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

MAX_CONTROL_REQUEST = 64 * 1024
"""Bytes: the most an engine's control socket reads of one request line."""
MAX_MOUNTER_REQUEST = 1024 * 1024
"""Bytes: the most the mounter's socket reads of one request line."""
MAX_REPLY = 4 * 1024 * 1024
"""Bytes: the most a client reads of one reply line."""


class PeerError(OSError):
    """The peer is absent, hung, or answered something that is not one JSON object."""


def encode(message: dict[str, Any]) -> bytes:
    """``message`` as one line: compact JSON and a newline."""
    return json.dumps(message).encode() + b"\n"


def decode_request(data: bytes) -> dict[str, Any]:
    """The request object on the first line of ``data``.

    Raises ValueError (json's own for malformed JSON) when it is not a JSON object;
    an empty line is not one.
    """
    request = json.loads(data.split(b"\n", 1)[0] or b"null")
    if not isinstance(request, dict):
        raise ValueError("request must be a JSON object")
    return request


def decode_reply(data: bytes, path: str) -> dict[str, Any]:
    """The reply object on the first line of ``data`` received from ``path``.

    Raises :class:`PeerError` if it is not one JSON object.
    """
    line = data.split(b"\n", 1)[0]
    try:
        reply = json.loads(line)
    except ValueError:
        raise PeerError(f"malformed reply from {path}") from None
    if not isinstance(reply, dict):
        raise PeerError(f"malformed reply from {path}")
    return reply


def request(path: str, message: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """Send ``message`` as one line to the socket at ``path`` and return the reply object.

    Blocks the calling thread for at most ``timeout`` seconds in all. Raises
    :class:`PeerError` on connection failure, timeout, or a malformed reply.
    """
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(encode(message))
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
    return decode_reply(bytes(buf), path)
