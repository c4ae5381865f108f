"""The node server's side of the mounter socket; mounter reply codes become CSI errors."""

from __future__ import annotations

from typing import Any

from openfiles_csi import jsonline
from openfiles_csi.plugin.errors import (
    Aborted,
    AlreadyExists,
    CsiError,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from openfiles_csi.volumecontext import MountSpec

_CODES: dict[str, type[CsiError]] = {
    "invalid": InvalidArgument,
    "exists": AlreadyExists,
    "busy": Aborted,
    "not_found": NotFound,
    "failed": FailedPrecondition,
    "timeout": Unavailable,
}


class MounterClient:
    def __init__(self, socket_path: str, mount_timeout: float = 60.0) -> None:
        self.socket_path = socket_path
        self.mount_timeout = mount_timeout

    async def _call(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        try:
            reply = await jsonline.arequest(self.socket_path, message, timeout)
        except jsonline.PeerError as exc:
            raise Unavailable(f"mounter: {exc}") from None
        if not reply.get("ok"):
            error_type = _CODES.get(str(reply.get("code")), Internal)
            raise error_type(f"mounter: {reply.get('error', 'unknown error')}")
        return reply

    async def mount(self, volume_id: str, mountpoint: str, spec: MountSpec) -> dict[str, Any]:
        """Start (or find) the engine for ``volume_id`` at ``mountpoint``; returns its record."""
        reply = await self._call(
            {
                "op": "mount",
                "volume_id": volume_id,
                "mountpoint": mountpoint,
                "source": spec.source,
                "args": list(spec.args),
                "env": dict(spec.env),
                "timeout": self.mount_timeout,
            },
            self.mount_timeout + 45,  # the mounter may also need to stop a failed engine
        )
        mount: dict[str, Any] = reply["mount"]
        return mount

    async def unmount(self, mountpoint: str, flush_timeout: float) -> dict[str, Any]:
        return await self._call(
            {"op": "unmount", "mountpoint": mountpoint, "flush_timeout": flush_timeout},
            flush_timeout + 60,
        )

    async def mounts(self) -> list[dict[str, Any]]:
        return (await self.listing())[0]

    async def stranded(self) -> list[dict[str, Any]]:
        """Volumes whose cache this node keeps with no engine: dirty data that could not be
        exported, or files in lost+found (the mounter's markers: volume_id, dirty_files,
        dirty_bytes, pending_exports, lostfound_files, lostfound_bytes, error, since...)."""
        return (await self.listing())[1]

    async def listing(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The mounts and the kept caches (:meth:`stranded`), from one ``list``."""
        reply = await self._call({"op": "list"}, 10)
        return list(reply["mounts"]), list(reply.get("stranded", []))

    async def reachable(self) -> bool:
        """Whether the mounter answers; the node plugin is not ready without it."""
        try:
            await self._call({"op": "list"}, 5)
        except CsiError:
            return False
        return True

    async def find(self, volume_id: str) -> list[dict[str, Any]]:
        return [m for m in await self.mounts() if m["volume_id"] == volume_id]
