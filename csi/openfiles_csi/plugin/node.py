"""CSI Node service: stage through the mounter, publish with bind mounts, report health.

The node server keeps no state of its own: the mounter's records and
``/proc/self/mountinfo`` are the truth, so a restarted node server serves
Unpublish, Unstage and Stats for volumes staged by its predecessor.

Ephemeral inline volumes (volume context ``csi.storage.k8s.io/ephemeral: "true"``,
no stage step) are staged by NodePublish itself at a plugin-owned path,
``<ephemeral root>/<sha256(volume id)[:32]>``, and unstaged by NodeUnpublish.
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Any

import grpc

from openfiles_contracts import mountinfo
from openfiles_csi import command, volumecontext
from openfiles_csi._proto import csi_pb2, csi_pb2_grpc
from openfiles_csi.logsetup import register_secret
from openfiles_csi.plugin.errors import (
    AlreadyExists,
    FailedPrecondition,
    grpc_errors,
    unimplemented,
)
from openfiles_csi.plugin.mounterclient import MounterClient
from openfiles_csi.plugin.reporter import Reporter
from openfiles_csi.plugin.validation import (
    READ_ONLY_MODES,
    check_capability,
    check_path,
    is_read_only,
    require,
)
from openfiles_csi.plugin.volumehealth import VolumeHealth
from openfiles_csi.plugin.volumelock import VolumeLocks

log = logging.getLogger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]
EPHEMERAL_KEY = "csi.storage.k8s.io/ephemeral"


class NodeServicer(csi_pb2_grpc.NodeServicer):
    NodeExpandVolume = unimplemented("NodeExpandVolume")

    def __init__(
        self,
        node_id: str,
        mounter: MounterClient,
        allowed_roots: list[str],
        flush_timeout: float = 30.0,
        health: VolumeHealth | None = None,
        ephemeral_root: str = "",
        reporter: Reporter | None = None,
        events: volumecontext.NodeEvents | None = None,
    ) -> None:
        self.node_id = node_id
        self.mounter = mounter
        self.allowed_roots = allowed_roots
        self.ephemeral_root = ephemeral_root or os.path.join(
            allowed_roots[0], "plugins", "csi.openfiles.io", "ephemeral"
        )
        self.flush_timeout = flush_timeout
        self.health = health or VolumeHealth(mounter)
        self.locks = VolumeLocks()
        self.reporter = reporter
        self.events = events

    @grpc_errors
    async def NodeStageVolume(
        self, request: csi_pb2.NodeStageVolumeRequest, context: Context
    ) -> csi_pb2.NodeStageVolumeResponse:
        volume_id = require(request.volume_id, "volume_id")
        staging = check_path(request.staging_target_path, "staging_target_path", self.allowed_roots)
        check_capability(request.volume_capability)
        spec = self._mount_spec(request)
        with self.locks.hold(volume_id):
            await self.mounter.mount(volume_id, staging, spec)
        return csi_pb2.NodeStageVolumeResponse()

    def _mount_spec(
        self, request: csi_pb2.NodeStageVolumeRequest | csi_pb2.NodePublishVolumeRequest,
    ) -> volumecontext.MountSpec:
        register_secret(*request.secrets.values())
        cap = request.volume_capability
        # The ephemeral marker, like every csi.storage.k8s.io/ key, is ignored by parse.
        return volumecontext.parse(
            request.volume_context,
            request.secrets,
            read_only=cap.access_mode.mode in READ_ONLY_MODES,
            mount_group=cap.mount.volume_mount_group,
            events=self.events,
        )

    def _ephemeral_staging(self, volume_id: str) -> str:
        return os.path.join(
            self.ephemeral_root, hashlib.sha256(volume_id.encode()).hexdigest()[:32]
        )

    @grpc_errors
    async def NodeUnstageVolume(
        self, request: csi_pb2.NodeUnstageVolumeRequest, context: Context
    ) -> csi_pb2.NodeUnstageVolumeResponse:
        volume_id = require(request.volume_id, "volume_id")
        staging = check_path(request.staging_target_path, "staging_target_path", self.allowed_roots)
        with self.locks.hold(volume_id):
            # The mounter flushes first and refuses (keeping the mount) if that fails.
            # A dead engine's cache is exported by a flush-only engine; what that cannot
            # export stays on this node, and the mounter's ``list`` says so.
            kept = _log_stranded(await self.mounter.unmount(staging, self.flush_timeout))
            if self.reporter is not None:
                await self.reporter.forget(volume_id, kept)
        return csi_pb2.NodeUnstageVolumeResponse()

    @grpc_errors
    async def NodePublishVolume(
        self, request: csi_pb2.NodePublishVolumeRequest, context: Context
    ) -> csi_pb2.NodePublishVolumeResponse:
        volume_id = require(request.volume_id, "volume_id")
        target = check_path(request.target_path, "target_path", self.allowed_roots)
        check_capability(request.volume_capability)
        ephemeral = request.volume_context.get(EPHEMERAL_KEY) == "true"
        if ephemeral:
            staging = self._ephemeral_staging(volume_id)
            spec = self._mount_spec(request)
            volumecontext.check_inline(spec)
        else:
            staging = check_path(
                request.staging_target_path, "staging_target_path", self.allowed_roots
            )
        read_only = is_read_only(request.volume_capability, request.readonly)
        with self.locks.hold(volume_id):
            if ephemeral:
                await self.mounter.mount(volume_id, staging, spec)
            staged = [
                m
                for m in await self.mounter.find(volume_id)
                if m["mountpoint"] == staging and m["alive"] and m["mounted"]
            ]
            source = mountinfo.find(staging)
            # Binding anything but a live engine mount could expose a bare node directory.
            if not staged or source is None or not source.is_fuse:
                raise FailedPrecondition(
                    f"volume {volume_id!r} is not staged (or its engine is down) at {staging}"
                )
            existing = mountinfo.find(target)
            if existing is not None:
                if existing.device == source.device and existing.read_only == read_only:
                    return csi_pb2.NodePublishVolumeResponse()
                raise AlreadyExists(f"{target} is already mounted with different options")
            os.makedirs(target, exist_ok=True)
            await command.bind_mount(staging, target, read_only=read_only)
        return csi_pb2.NodePublishVolumeResponse()

    @grpc_errors
    async def NodeUnpublishVolume(
        self, request: csi_pb2.NodeUnpublishVolumeRequest, context: Context
    ) -> csi_pb2.NodeUnpublishVolumeResponse:
        volume_id = require(request.volume_id, "volume_id")
        target = check_path(request.target_path, "target_path", self.allowed_roots)
        with self.locks.hold(volume_id):
            await command.unmount(target)
            command.remove_dir(target)
            ephemeral = self._ephemeral_staging(volume_id)
            if any(m["mountpoint"] == ephemeral for m in await self.mounter.find(volume_id)):
                # If this flush fails the call fails; kubelet's retry finds the target
                # gone and tries the flush again. Dirty data is never dropped.
                kept = _log_stranded(await self.mounter.unmount(ephemeral, self.flush_timeout))
                command.remove_dir(ephemeral)
                if self.reporter is not None:
                    await self.reporter.forget(volume_id, kept)
        return csi_pb2.NodeUnpublishVolumeResponse()

    @grpc_errors
    async def NodeGetVolumeStats(
        self, request: csi_pb2.NodeGetVolumeStatsRequest, context: Context
    ) -> csi_pb2.NodeGetVolumeStatsResponse:
        volume_id = require(request.volume_id, "volume_id")
        path = require(request.volume_path, "volume_path")
        return await self.health.stats(volume_id, path)

    @grpc_errors
    async def NodeGetCapabilities(
        self, request: csi_pb2.NodeGetCapabilitiesRequest, context: Context
    ) -> csi_pb2.NodeGetCapabilitiesResponse:
        rpc = csi_pb2.NodeServiceCapability.RPC
        kinds = (
            rpc.STAGE_UNSTAGE_VOLUME,
            rpc.GET_VOLUME_STATS,
            rpc.VOLUME_CONDITION,
            rpc.VOLUME_MOUNT_GROUP,
        )
        return csi_pb2.NodeGetCapabilitiesResponse(
            capabilities=[csi_pb2.NodeServiceCapability(rpc=rpc(type=k)) for k in kinds]
        )

    @grpc_errors
    async def NodeGetInfo(
        self, request: csi_pb2.NodeGetInfoRequest, context: Context
    ) -> csi_pb2.NodeGetInfoResponse:
        return csi_pb2.NodeGetInfoResponse(node_id=self.node_id)


def _log_stranded(reply: dict[str, Any]) -> dict[str, Any] | None:
    """Say which volume left how much dirty data, or lost+found files, in this node's
    cache (NodeUnstage has no field for it); returns the mounter's marker, if any."""
    stranded = reply.get("stranded")
    if not stranded:
        return None
    if stranded.get("dirty_files") != 0 or stranded.get("pending_exports") != 0:
        log.error("volume %s: its engine died and %s dirty files (%s bytes) could not be "
                  "exported (%s); they stay in this node's cache and are exported when the "
                  "volume is staged on this node again", stranded.get("volume_id"),
                  stranded.get("dirty_files"), stranded.get("dirty_bytes"),
                  stranded.get("error"))
    if stranded.get("lostfound_files") != 0:
        log.warning("volume %s: its lost+found holds %s files (%s bytes) of conflicted local "
                    "versions; this node keeps its cache, and they show again when the "
                    "volume is staged on this node", stranded.get("volume_id"),
                    stranded.get("lostfound_files"), stranded.get("lostfound_bytes"))
    return dict(stranded)
