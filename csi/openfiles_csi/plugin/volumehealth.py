"""NodeGetVolumeStats: usage and VOLUME_CONDITION, without ever blocking on a hung mount.

``statvfs`` on a hung FUSE mount blocks in the kernel, and a blocked thread cannot be
cancelled. So each path gets at most one probe thread at a time: while one is still
stuck, later calls report the volume abnormal at once instead of piling up threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import os
from typing import Any

from openfiles_contracts import mountinfo
from openfiles_csi import jsonline
from openfiles_csi._proto import csi_pb2
from openfiles_csi.plugin.errors import NotFound
from openfiles_csi.plugin.mounterclient import MounterClient

Usage = csi_pb2.VolumeUsage


class VolumeHealth:
    def __init__(self, mounter: MounterClient, probe_timeout: float = 3.0) -> None:
        self.mounter = mounter
        self.probe_timeout = probe_timeout
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=8, thread_name_prefix="statvfs"
        )
        self._probing: dict[str, concurrent.futures.Future[os.statvfs_result]] = {}

    async def stats(self, volume_id: str, path: str) -> csi_pb2.NodeGetVolumeStatsResponse:
        """Usage of the volume at ``path``; NOT_FOUND for an unknown volume or path, and for
        a path that is the mount of something else (another volume, another file system).
        """
        every = await self.mounter.mounts()
        mounts = [m for m in every if m["volume_id"] == volume_id]
        if not mounts:
            raise NotFound(f"volume {volume_id!r} is not staged on this node")
        if not os.path.isabs(path):
            raise NotFound(f"volume path {path!r} does not exist")
        entry = mountinfo.find(path)
        if entry is None and not await self._exists(path):
            raise NotFound(f"volume path {path!r} does not exist")
        record = _serving(volume_id, every, entry)
        if record is None:
            raise NotFound(f"volume {volume_id!r} is not mounted at {path!r}")
        abnormal = ""
        usage: list[csi_pb2.VolumeUsage] = []
        if not record["alive"]:
            abnormal = (
                f"the engine of this volume is not running (exit code "
                f"{record.get('exit_code')}); the volume must be staged again"
            )
        else:
            st, problem = await self._statvfs(path)
            if st is not None:
                usage = [
                    Usage(
                        unit=Usage.BYTES,
                        total=st.f_blocks * st.f_frsize,
                        available=st.f_bavail * st.f_frsize,
                        used=(st.f_blocks - st.f_bfree) * st.f_frsize,
                    ),
                    Usage(
                        unit=Usage.INODES,
                        total=st.f_files,
                        available=st.f_favail,
                        used=st.f_files - st.f_ffree,
                    ),
                ]
            abnormal = problem or await self._export_problem(record)
        return csi_pb2.NodeGetVolumeStatsResponse(
            usage=usage,
            volume_condition=csi_pb2.VolumeCondition(
                abnormal=bool(abnormal), message=abnormal or "ok"
            ),
        )

    async def _exists(self, path: str) -> bool:
        # lstat does not enter the file system behind path when path is not a mount point.
        return await asyncio.to_thread(os.path.lexists, path)

    async def _statvfs(self, path: str) -> tuple[os.statvfs_result | None, str]:
        future = self._probing.get(path)
        if future is None or future.done():
            future = self._pool.submit(os.statvfs, path)
            self._probing[path] = future
        try:
            st = await asyncio.wait_for(asyncio.wrap_future(future), self.probe_timeout)
        except TimeoutError:
            return None, f"the mount is not responding (statvfs took over {self.probe_timeout:g}s)"
        except OSError as exc:
            if exc.errno == errno.ENOTCONN:
                return None, "the mount is stale: its engine is gone"
            return None, f"statvfs failed: {os.strerror(exc.errno or 0)}"
        finally:
            if future.done():
                self._probing.pop(path, None)
        return st, ""

    async def _export_problem(self, record: dict[str, Any]) -> str:
        try:
            reply = await jsonline.arequest(
                record["control_socket"], {"op": "status"}, self.probe_timeout
            )
        except jsonline.PeerError:
            return "the engine's control socket does not answer"
        status = reply.get("status") or {}
        error = status.get("last_export_error")
        if error and status.get("pending_exports", 0):
            return f"exports are failing: {error}"
        return ""


def _serving(
    volume_id: str, mounts: list[dict[str, Any]], entry: mountinfo.MountEntry | None
) -> dict[str, Any] | None:
    """The record of ``volume_id`` to report for the mount ``entry``; None if ``entry`` is
    the mount of another volume or of another kind of file system.

    A bind mount has the device of its source, so a pod's target matches its staging
    mount. A FUSE mount that no staged engine serves is stale (its engine died, the
    volume may have been staged again since): it is reported as this volume's, and
    statvfs or the record then says what is wrong with it. Reading mountinfo never
    touches a mount, so none of this can hang.
    """
    own = next(m for m in mounts if m["volume_id"] == volume_id)
    if entry is None:
        return own
    for record in mounts:
        staged = mountinfo.find(record["mountpoint"])
        if staged is not None and staged.device == entry.device:
            return record if record["volume_id"] == volume_id else None
    return own if entry.is_fuse else None
