"""The mounter: owns one engine process per staged mount point, and outlives the node server.

Requests (one JSON object per line, see :mod:`openfiles_csi.plugin.mounterclient`):

``mount``    start an engine at ``mountpoint`` and wait until it serves; idempotent
             for the same volume and options; ``exists`` for different ones.
``unmount``  flush (time-bounded), stop the engine, remove the mount; if the flush
             fails, nothing is stopped and the error is returned (dirty data stays).
             A dead engine's cache is exported by a flush-only engine
             (:mod:`openfiles_csi.mounter.recovery`) with the mount's credentials,
             which the mounter keeps in memory only. What that cannot export stays
             in the cache: the reply's ``stranded`` and a durable marker say so, and
             the unstage succeeds. A cache whose lost+found holds files is kept
             too, under the same marker (:mod:`openfiles_csi.mounter.cachedir`).
``list``     every record, with ``alive`` and ``mounted``; and ``stranded``: one entry
             per volume whose cache this node keeps with no engine, for dirty data or
             lost+found files (:class:`~openfiles_csi.mounter.record.StrandedStore`).

Replies are ``{"ok": true, ...}`` or ``{"ok": false, "code": C, "error": text}``
with ``C`` in ``invalid``, ``exists``, ``busy``, ``not_found``, ``failed``, ``timeout``.

Durability: a record is on disk (``starting``) before the engine starts, and
``running`` once it serves, so a mounter restarted at any moment finds every engine
it started. On start-up, live engines are adopted and watched. A dead engine (found
at start-up or seen exiting) has its stale mount removed and its record kept as
``dead`` until ``unmount``, so the node can report the volume abnormal; pods keep
their (stale, never bare) bind mounts, and publish binds only live engine mounts.

This module keeps the mounter's books: which engine serves which mount point, one lock
per mount point, the credentials of each mount (memory only), the watchers of engine
exits. What becomes of a cache directory is :mod:`openfiles_csi.mounter.cachedir`'s;
starting, waiting for and stopping one engine
process is :mod:`openfiles_csi.mounter.engineprocess`'s.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from openfiles_contracts import mountinfo
from openfiles_csi import command, jsonline
from openfiles_csi.logsetup import register_secret
from openfiles_csi.mounter import cachedir, process, recovery
from openfiles_csi.mounter import engineprocess as engine
from openfiles_csi.mounter.engineprocess import RESERVED_ARGS, MounterError
from openfiles_csi.mounter.record import (
    DEAD,
    RUNNING,
    STARTING,
    MountRecord,
    RecordStore,
    StrandedStore,
    path_key,
)

log = logging.getLogger(__name__)


class Mounter:
    """Supervises engines. All public coroutines are safe to call concurrently."""

    def __init__(
        self,
        state_dir: str,
        cache_root: str,
        engine_command: Sequence[str] = process.DEFAULT_ENGINE_COMMAND,
        stop_timeout: float = 30.0,
    ) -> None:
        self.records = RecordStore(state_dir)
        self.stranded = StrandedStore(state_dir)
        self.cache_root = cache_root
        self.socket_dir = os.path.join(state_dir, "sockets")
        self.log_dir = os.path.join(state_dir, "logs")
        for d in (self.socket_dir, self.log_dir, cache_root):
            os.makedirs(d, mode=0o700, exist_ok=True)
        self.engine_command = tuple(engine_command)
        self.stop_timeout = stop_timeout
        self._by_mountpoint: dict[str, MountRecord] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tidying: set[str] = set()
        """Mount points whose lock the mounter holds for its own tidying (a dead engine)."""
        self._children: dict[str, asyncio.subprocess.Process] = {}
        self._envs: dict[str, dict[str, str]] = {}
        """The engine environment (credentials) of each mount request: memory only."""
        self._watchers: set[asyncio.Task[None]] = set()

    # --- start-up ---------------------------------------------------------

    async def adopt(self) -> None:
        """Load the records; watch live engines, mark dead ones. Call once before serving."""
        for path in cachedir.leftovers(self.cache_root):
            self._watch(asyncio.to_thread(shutil.rmtree, path, ignore_errors=True))
        for record in self.records.load():
            mounted = mountinfo.find(record.mountpoint) is not None
            alive = process.is_alive(record.pid, record.start_ticks)
            if alive:
                log.info("adopted engine pid %d for %s", record.pid, record.mountpoint)
                self._by_mountpoint[record.mountpoint] = record
                if record.state == STARTING and mounted:
                    record.state = RUNNING
                    self.records.save(record)
                self._watch(self._poll_adopted(record))
            else:
                if record.state != DEAD:
                    log.warning("engine for %s died while the mounter was away", record.mountpoint)
                    record.state = DEAD
                    self.records.save(record)
                self._by_mountpoint[record.mountpoint] = record
                if mounted:
                    await self._remove_stale_mount(record)

    # --- requests ---------------------------------------------------------

    async def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        try:
            if op == "mount":
                return await self.mount(req)
            if op == "unmount":
                return await self.unmount(
                    str(req.get("mountpoint", "")), float(req.get("flush_timeout", 30))
                )
            if op == "list":
                return {
                    "ok": True,
                    "mounts": [self.describe(r) for r in self._by_mountpoint.values()],
                    "stranded": self.stranded.load(),
                }
            raise MounterError("invalid", f"unknown op {op!r}")
        except MounterError as exc:
            return {"ok": False, "code": exc.code, "error": str(exc)}
        except Exception as exc:
            log.exception("mounter: %s failed", op)
            return {"ok": False, "code": "failed", "error": f"internal error: {type(exc).__name__}"}

    def describe(self, record: MountRecord) -> dict[str, Any]:
        info = asdict(record)
        info["alive"] = record.state != DEAD and process.is_alive(record.pid, record.start_ticks)
        info["mounted"] = mountinfo.find(record.mountpoint) is not None
        return info

    def _lock(self, mountpoint: str) -> asyncio.Lock:
        return self._locks.setdefault(mountpoint, asyncio.Lock())

    def _request_lock(self, mountpoint: str) -> asyncio.Lock:
        """The lock a mount or unmount request takes. Another request holding it makes
        this one "busy" (ABORTED for the CO, which retries); the mounter's own tidying
        of a dead engine's mount takes a moment and is waited for instead."""
        lock = self._lock(mountpoint)
        if lock.locked() and mountpoint not in self._tidying:
            raise MounterError("busy", f"an operation on {mountpoint} is in progress")
        return lock

    async def mount(self, req: dict[str, Any]) -> dict[str, Any]:
        volume_id = str(req.get("volume_id", ""))
        mountpoint = str(req.get("mountpoint", ""))
        source = str(req.get("source", ""))
        args = req.get("args", [])
        env = req.get("env", {})
        timeout = float(req.get("timeout", 60))
        if not volume_id or not source or not os.path.isabs(mountpoint):
            raise MounterError(
                "invalid", "volume_id, source and an absolute mountpoint are required")
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise MounterError("invalid", "args must be a list of strings")
        if RESERVED_ARGS & set(args):
            raise MounterError("invalid", f"args may not set {sorted(RESERVED_ARGS)}")
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise MounterError("invalid", "env must be an object of strings")
        # env holds the engine's credentials: mask them in this process's log lines and in
        # the engine log tails this mounter relays (an S3 error body can quote a token).
        register_secret(*env.values())
        async with self._request_lock(mountpoint):
            return await self._mount(volume_id, mountpoint, source, args, env, timeout)

    async def _mount(
        self,
        volume_id: str,
        mountpoint: str,
        source: str,
        args: list[str],
        env: dict[str, str],
        timeout: float,
    ) -> dict[str, Any]:
        existing = self._by_mountpoint.get(mountpoint)
        if existing is not None:
            info = self.describe(existing)
            same = existing.volume_id == volume_id and existing.source == source and \
                without_events(existing.args) == without_events(args)
            if info["alive"] and info["mounted"]:
                if same:
                    return {"ok": True, "mount": info}
                raise MounterError(
                    "exists", f"{mountpoint} already serves another volume or options")
            # A dead or half-started engine: clear it away and start afresh.
            await self._stop(existing, flush_timeout=None)
        elif mountinfo.find(mountpoint) is not None:
            raise MounterError(
                "exists", f"{mountpoint} is already a mount point not made by the mounter"
            )
        os.makedirs(mountpoint, exist_ok=True)
        key = path_key(mountpoint)
        record = MountRecord(
            volume_id=volume_id,
            mountpoint=mountpoint,
            source=source,
            args=args,
            cache_dir=os.path.join(
                self.cache_root, hashlib.sha256(volume_id.encode()).hexdigest()[:32]
            ),
            control_socket=os.path.join(self.socket_dir, key + ".sock"),
            log_path=os.path.join(self.log_dir, key + ".log"),
        )
        self._by_mountpoint[mountpoint] = record
        self._envs[mountpoint] = env
        try:
            await self._start_engine(record, env, timeout)
        except MounterError:
            await self._stop(record, flush_timeout=None)
            raise
        if self.stranded.get(volume_id) is not None:
            # This engine serves the cache now: it exports a previous run's dirty files
            # at once (CONTRACTS.md section 1), and its status counts what waits.
            log.info("volume %s: the engine now serving cache %s exports what was stranded "
                     "there", volume_id, record.cache_dir)
            self.stranded.delete(volume_id)
        return {"ok": True, "mount": self.describe(record)}

    async def _start_engine(self, record: MountRecord, env: dict[str, str],
                            timeout: float) -> None:
        """Start the engine of ``record`` and wait until it serves (the record is saved
        ``starting`` before the child exists, ``running`` once it serves)."""
        proc = await engine.spawn(record, env, self.engine_command, self.records)
        self._children[record.mountpoint] = proc
        await engine.wait_ready(record, proc, timeout)
        record.state = RUNNING
        self.records.save(record)
        self._watch(self._wait_child(record, proc))

    async def unmount(self, mountpoint: str, flush_timeout: float) -> dict[str, Any]:
        if not os.path.isabs(mountpoint):
            raise MounterError("invalid", "an absolute mountpoint is required")
        async with self._request_lock(mountpoint):
            record = self._by_mountpoint.get(mountpoint)
            if record is None:
                return {"ok": True, "flushed": False, "found": False}
            if not process.is_alive(record.pid, record.start_ticks):
                return await self._unstage_dead(record, flush_timeout)
            flushed, marker = await self._stop(record, flush_timeout=flush_timeout)
            reply = {"ok": True, "flushed": flushed, "found": True}
            return reply if marker is None else {**reply, "stranded": marker}

    async def _unstage_dead(self, record: MountRecord, flush_timeout: float) -> dict[str, Any]:
        """Export a dead engine's cache (flush-only), then forget the mount.

        What cannot be exported stays in the cache, and a durable marker plus the
        reply's ``stranded`` say how much; the next stage of the volume on this node
        exports it. Never fails for the export: the unstage finishes either way.
        """
        env = self._envs.get(record.mountpoint)
        log.warning("engine for volume %s is dead: exporting what its cache %s holds",
                    record.volume_id, record.cache_dir)
        left = await recovery.flush_only(record, env, self.engine_command, flush_timeout)
        marker = cachedir.settle(record, left, self.stranded)
        await command.unmount(record.mountpoint)  # a stale mount, if one is left
        if marker is None:
            await cachedir.discard(record.cache_dir)
        self._forget(record)
        reply = {"ok": True, "flushed": left.clean, "found": True}
        return reply if marker is None else {**reply, "stranded": marker}

    async def _stop(self, record: MountRecord,
                    flush_timeout: float | None) -> tuple[bool, dict[str, Any] | None]:
        """Flush (if asked and alive), stop the engine, unmount, forget the record.

        Returns whether the data was flushed and the engine exited cleanly, in which case
        the cache directory is removed unless its lost+found holds files (then it is
        kept under a marker, returned second: :func:`cachedir.settle`); otherwise the
        cache is kept for the next mount. Raises ``MounterError("failed")`` and changes
        nothing if the flush fails.
        """
        alive = process.is_alive(record.pid, record.start_ticks)
        flushed = False
        if alive and flush_timeout is not None:
            try:
                reply = await jsonline.arequest(
                    record.control_socket,
                    {"op": "flush", "timeout": flush_timeout},
                    flush_timeout + 5,
                )
            except jsonline.PeerError as exc:
                raise MounterError("failed", f"flush failed, volume kept mounted: {exc}") from None
            if not reply.get("ok"):
                raise MounterError(
                    "failed", f"flush failed, volume kept mounted: {reply.get('error', 'unknown')}"
                )
            flushed = True
        left = await cachedir.after_flush(record) if flushed else None
        exit_code = await self._terminate(record) if alive else record.exit_code
        await command.unmount(record.mountpoint)
        clean = flushed and exit_code == 0
        marker = None
        if clean and left is not None:
            marker = cachedir.settle(record, left, self.stranded)
            if marker is None:
                await cachedir.discard(record.cache_dir)
        else:
            log.warning(
                "kept cache %s of volume %s (flushed=%s, exit=%s)",
                record.cache_dir,
                record.volume_id,
                flushed,
                exit_code,
            )
        self._forget(record)
        return clean, marker

    def _forget(self, record: MountRecord) -> None:
        self._children.pop(record.mountpoint, None)
        self._by_mountpoint.pop(record.mountpoint, None)
        self._envs.pop(record.mountpoint, None)
        self.records.delete(record.mountpoint)

    async def _terminate(self, record: MountRecord) -> int | None:
        """Stop the engine of ``record`` (:func:`engine.terminate`); its exit code if known."""
        child = self._children.get(record.mountpoint)
        return await engine.terminate(record, child, self.stop_timeout)

    # --- watching engines -------------------------------------------------

    def _watch(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _mark_dead(self, record: MountRecord, exit_code: int | None) -> None:
        if record.extra.get("stopping") or self._by_mountpoint.get(record.mountpoint) is not record:
            return
        log.error(
            "engine pid %d for volume %s exited (code %s)", record.pid, record.volume_id, exit_code
        )
        record.state = DEAD
        record.exit_code = exit_code
        self.records.save(record)
        async with self._lock(record.mountpoint):
            self._tidying.add(record.mountpoint)
            try:
                if self._by_mountpoint.get(record.mountpoint) is record:
                    await self._remove_stale_mount(record)
            finally:
                self._tidying.discard(record.mountpoint)

    async def _remove_stale_mount(self, record: MountRecord) -> None:
        """Detach the dead engine's mount (every access to it would fail with ENOTCONN).

        The record stays, marked dead, so NodeGetVolumeStats reports the volume abnormal
        until NodeUnstageVolume; the cache directory stays for the next mount. Pods'
        bind mounts of it stay stale, never bare: publish binds only live engine mounts.
        """
        try:
            await command.unmount(record.mountpoint)
        except command.CommandError as exc:
            log.error("cannot remove the stale mount %s: %s", record.mountpoint, exc)

    async def _wait_child(self, record: MountRecord, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        await self._mark_dead(record, code)

    async def _poll_adopted(self, record: MountRecord) -> None:
        """Wait for an engine that is not our child (adopted after a restart) to exit."""
        await process.wait_exit(record.pid, record.start_ticks)
        await self._mark_dead(record, None)

    async def stop_engines(self) -> None:
        """SIGTERM every live engine and wait, at most ``stop_timeout``, for them to exit.

        For a mounter whose exit kills its engines anyway (PID 1 of a container): on
        SIGTERM an engine exports its dirty files and unmounts, where the kernel's SIGKILL
        would leave them in the cache. Records stay, marked dead by the watchers, so the
        node reports those volumes abnormal until they are staged again.
        """
        await engine.stop_all(list(self._by_mountpoint.values()), self.stop_timeout)
        if self._watchers:
            await asyncio.wait(list(self._watchers), timeout=5)

    async def close(self) -> None:
        """Stop watching. Engines keep running: they are meant to outlive the mounter."""
        for task in list(self._watchers):
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)


def without_events(args: list[str]) -> list[str]:
    """``args`` without ``--events URL``: a re-stage of a live volume whose events URL
    changed (the node's default, after a chart upgrade) is the same volume; the engine
    keeps the URL it has until the next stage, as it keeps its credentials."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--events":
            skip = True
        else:
            out.append(arg)
    return out
