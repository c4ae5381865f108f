"""When an engine's mount is ready: mounted, and its control socket answering.

Contract (docs/CONTRACTS.md section 1): the mount is up when MOUNTPOINT is a
``fuse`` mount in ``/proc/self/mountinfo`` (the top mount there, of type
``fuse`` or ``fuse.<subtype>``) and the control socket answers ``{"op":
"status"}`` with ``"ok": true``. MOUNTPOINT is compared as given, made
absolute: symbolic links are not resolved, because resolving the last one
would touch the mount, which may hang; pass a resolved path.

:func:`probe` checks once and :func:`wait` polls, blocking the calling thread.
An event loop that may not block polls with :func:`mounted`, :data:`STATUS`
and its own client (the CSI mounter does). Neither raises for a mount that
is not ready; :func:`wait` lets the caller's ``check`` raise (an engine that
exited) and says by its result whether the deadline passed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from openfiles_contracts import jsonline, mountinfo

STATUS: dict[str, Any] = {"op": "status"}
"""The request whose ``"ok": true`` reply means the engine serves."""


def mounted(mountpoint: str) -> bool:
    """Is the top mount at ``mountpoint`` a FUSE mount as an engine makes it?

    Reads mountinfo only, so it never blocks on a hung mount.
    """
    entry = mountinfo.find(os.path.abspath(mountpoint))
    return entry is not None and entry.is_fuse


def probe(mountpoint: str, control_socket: str, timeout: float = 5.0) -> bool:
    """Ready now? Waits at most ``timeout`` seconds for the control socket's reply."""
    if not mounted(mountpoint):
        return False
    try:
        return bool(jsonline.request(control_socket, STATUS, timeout).get("ok"))
    except jsonline.PeerError:
        return False


def wait(
    mountpoint: str,
    control_socket: str,
    timeout: float,
    *,
    check: Callable[[], None] = lambda: None,
    poll: float = 0.05,
    probe_timeout: float = 5.0,
) -> bool:
    """Poll :func:`probe` every ``poll`` seconds until it holds (True) or ``timeout``
    seconds have passed (False).

    ``check`` runs before each probe; it raises to give up early, for example when
    the engine process has exited.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check()
        if probe(mountpoint, control_socket, probe_timeout):
            return True
        time.sleep(poll)
    return False
