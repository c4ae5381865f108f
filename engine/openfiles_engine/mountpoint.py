"""Mount point checks: stale FUSE mounts, readiness, and the kernel read-ahead knob."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import threading

from openfiles_contracts.mountinfo import fuse_mounted

log = logging.getLogger(__name__)


class MountpointError(Exception):
    """The mount point cannot be used; the message says why."""


def unmount(mountpoint: str, lazy: bool = True) -> None:
    """``fusermount3 -u [-z]``; falls back to ``umount -l`` for root."""
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    cmd = [tool, "-u", *(["-z"] if lazy else []), mountpoint] if tool else [
        "umount", *(["-l"] if lazy else []), mountpoint]
    subprocess.run(cmd, check=False, capture_output=True, timeout=30)


def _probe(mountpoint: str, timeout: float = 5.0) -> str:
    """"dead", "live" or "hung": open the mount's root, which always asks the daemon.

    A plain stat() may be answered from the kernel's attribute cache even when
    the engine behind the mount is gone, so it cannot tell a stale mount.
    """
    result: list[str] = []

    def run() -> None:
        try:
            fd = os.open(mountpoint, os.O_RDONLY | os.O_DIRECTORY)
            os.close(fd)
            result.append("live")
        except OSError as exc:
            result.append("dead" if exc.errno == errno.ENOTCONN else "live")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    return result[0] if result else "hung"


def prepare(mountpoint: str) -> None:
    """Clear a stale mount (ENOTCONN) left by a killed engine; refuse a live one."""
    if fuse_mounted(mountpoint):
        state = _probe(mountpoint)
        if state == "dead":
            log.warning("clearing stale mount at %s", mountpoint)
            unmount(mountpoint)
        elif state == "hung":
            raise MountpointError(f"{mountpoint} is a FUSE mount whose engine does not answer")
    try:
        os.stat(mountpoint)
    except OSError as exc:
        if exc.errno == errno.ENOTCONN:
            log.warning("clearing stale mount at %s", mountpoint)
            unmount(mountpoint)
            os.stat(mountpoint)
        elif exc.errno == errno.ENOENT:
            raise MountpointError(f"mount point {mountpoint} does not exist") from None
        else:
            raise MountpointError(f"mount point {mountpoint}: {exc.strerror}") from None
    if fuse_mounted(mountpoint):
        raise MountpointError(f"{mountpoint} is already a live FUSE mount")
    if not os.path.isdir(mountpoint):
        raise MountpointError(f"mount point {mountpoint} is not a directory")


def raise_read_ahead(mountpoint: str, kib: int = 1024) -> None:
    """Make the kernel send 1 MiB reads instead of 128 KiB (best effort, needs root)."""
    try:
        dev = os.stat(mountpoint).st_dev
        path = f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb"
        with open(path, "w") as f:
            f.write(str(kib))
    except OSError as exc:
        log.debug("could not raise read_ahead_kb: %s", exc)
