"""Run the mount tools (``mount``, ``umount``) without blocking the event loop."""

from __future__ import annotations

import asyncio
import errno
import logging
import os

from openfiles_contracts import mountinfo

log = logging.getLogger(__name__)


class CommandError(RuntimeError):
    """A tool exited non-zero; the message has its stderr (paths only, never secrets)."""


async def run(*argv: str, timeout: float = 30.0) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise CommandError(f"{argv[0]} timed out after {timeout:g}s") from None
    if proc.returncode != 0:
        raise CommandError(f"{' '.join(argv)}: {err.decode(errors='replace').strip()}")


async def bind_mount(source: str, target: str, *, read_only: bool) -> None:
    """Bind ``source`` onto ``target``, then set the bind's flags: nosuid, nodev, ro if asked.

    The flags are set here, not inherited: whoever can write a bucket's metadata sidecars
    chooses modes and owners (a setuid root file), so a pod must never honour them, and
    whether a remount keeps a bind's flags depends on the mount(8) version.
    """
    await run("mount", "--bind", source, target)
    flags = "remount,bind,nosuid,nodev" + (",ro" if read_only else "")
    try:
        await run("mount", "-o", flags, target)
    except CommandError:
        # Never leave a bind without the flags asked for (writable, or honouring setuid).
        await unmount(target)
        raise


async def unmount(path: str) -> None:
    """Unmount every mount stacked at ``path``; lazily if it is busy or its FUSE server is dead.

    Idempotent: a path that is not a mount point is left alone. ``--no-canonicalize``
    because resolving the path would stat the mount itself and hang for as long as its
    FUSE server does not answer; our paths are already absolute and normalized.
    """
    for _ in range(8):
        entry = mountinfo.find(path)
        if entry is None:
            return
        try:
            await run("umount", "--no-canonicalize", path)
        except CommandError as exc:
            log.warning("unmount %s failed (%s); detaching lazily", path, exc)
            await run("umount", "--no-canonicalize", "-l", path)
    raise CommandError(f"{path} is still mounted after repeated unmounts")


def remove_dir(path: str) -> None:
    """Remove the empty directory at ``path``; absent is fine, a non-empty one is kept."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno != errno.ENOTEMPTY:
            raise
        # Something wrote into the bare directory; never delete data to tidy up.
        log.warning("kept %s: not empty after unmount", path)
