"""CSI Controller service: one bucket prefix per volume, made from StorageClass parameters.

Parameters (StorageClass ``parameters``): ``url`` = ``s3://bucket[/base]``,
``gs://bucket[/base]`` or ``az://container[/base]`` (required), ``endpoint``, ``region``
(S3 only), ``account`` (the Azure storage account; az:// only, required there),
``deleteData`` (``"true"`` deletes the prefix's objects on DeleteVolume; default keeps
them), and the engine settings of the volume context (``cacheSize``, ``cacheTTL``,
``metadataTTL``, ``exportDelay``, ``uid``, ``gid``, ``fileMode``, ``dirMode``), passed
through to the node unchanged. Credentials are the provisioner secrets, the keys of the
store (``openfiles_contracts.store``): ``accessKeyId``/``secretAccessKey`` (optional
``sessionToken``), ``serviceAccountKey``, or ``accountKey``/``sasToken``.

The endpoint policy (``--allowed-endpoint``; docs/CSI.md) is asked before any request:
CreateVolume refuses an endpoint it does not list with INVALID_ARGUMENT, a parameter
this driver will not accept, final for csi-provisioner, which reports it on the PVC.
DeleteVolume and ValidateVolumeCapabilities of a volume made before the policy changed
refuse with FAILED_PRECONDITION and leave the data alone.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import grpc

from openfiles_contracts import store
from openfiles_contracts.endpoint import EndpointPolicy
from openfiles_csi import volumecontext, volumeid
from openfiles_csi._proto import csi_pb2, csi_pb2_grpc
from openfiles_csi.logsetup import register_secret
from openfiles_csi.plugin.bucket import Bucket, MarkerConflict
from openfiles_csi.plugin.errors import (
    AlreadyExists,
    CsiError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    grpc_errors,
    unimplemented,
)
from openfiles_csi.plugin.validation import capability_problem, check_capabilities, require
from openfiles_csi.plugin.volumelock import VolumeLocks

Context = grpc.aio.ServicerContext[Any, Any]
CONTROLLER_PARAMETERS = frozenset({"url", "endpoint", "region", "account", "deleteData"})
_SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def prefix_segment(name: str) -> str:
    """The key segment for a volume name: the name itself if short and plain, else a hash.

    Hashing keeps IDs under the 128-byte limit for long names and makes any name safe.
    """
    if _SAFE_NAME.match(name) and ".." not in name:
        return name
    return "v-" + hashlib.sha256(name.encode()).hexdigest()[:24]


def parse_parameters(
    name: str, params: Mapping[str, str]
) -> tuple[volumeid.VolumeRef, dict[str, str]]:
    """Validate the class parameters; return the volume's location and its volume context."""
    url = params.get("url", "")
    if not url:
        raise InvalidArgument("parameters.url is required (s3://bucket[/base])")
    try:
        where = store.parse_url(url)
    except store.StoreSpecError as exc:
        raise InvalidArgument(f"parameters.url: {exc}") from None
    base = where.prefix
    delete = params.get("deleteData", "false").lower()
    if delete not in {"true", "false"}:
        raise InvalidArgument('parameters.deleteData must be "true" or "false"')
    segment = prefix_segment(name)
    ref = volumeid.VolumeRef(
        bucket=where.bucket,
        prefix=f"{base}/{segment}" if base else segment,
        endpoint=params.get("endpoint", ""),
        region=params.get("region", ""),
        delete_data=delete == "true",
        scheme=where.scheme,
        account=params.get("account", ""),
    )
    context = {"url": ref.url}
    for key, value in (("endpoint", ref.endpoint), ("region", ref.region),
                       ("account", ref.account)):
        if value:
            context[key] = value
    for key, value in params.items():
        if key in CONTROLLER_PARAMETERS or key.startswith(volumecontext.IGNORED_PREFIXES):
            continue
        context[key] = value
    # The node will parse this context; refuse now what it would refuse then.
    volumecontext.parse(context, {})
    if ref.region and ref.scheme != "s3":
        raise InvalidArgument(f"parameters.region is for s3:// only, not {ref.scheme}://")
    return ref, context


def check_secrets(ref: volumeid.VolumeRef, secrets: Mapping[str, str]) -> None:
    """Refuse provisioner secrets of another store, partial or malformed (naming keys only);
    none at all is allowed (the store client then uses the controller's own identity)."""
    try:
        store.check_secret(ref.scheme, secrets, endpoint=ref.endpoint, account=ref.account,
                           required=False)
    except store.StoreSpecError as exc:
        raise InvalidArgument(f"secrets: {exc}") from None


def location(ref: volumeid.VolumeRef) -> str:
    """The lock key of a volume: its prefix in its bucket.

    CreateVolume knows the name, DeleteVolume the ID; both lead to this key, so a create
    and a delete of one volume (or two creates that would share a prefix) never overlap.
    """
    return f"{ref.bucket}/{ref.prefix}"


def capacity_of(request: csi_pb2.CreateVolumeRequest) -> int:
    """Nominal capacity: object storage has no size, so we echo what was asked (0 = unknown)."""
    required = request.capacity_range.required_bytes
    limit = request.capacity_range.limit_bytes
    if required < 0 or limit < 0:
        raise InvalidArgument("capacity_range values must not be negative")
    if limit and required > limit:
        raise OutOfRange("capacity_range.required_bytes exceeds limit_bytes")
    return required or limit


class ControllerServicer(csi_pb2_grpc.ControllerServicer):
    # Not offered (no attach, no snapshots, no listing, no expansion): explicit UNIMPLEMENTED.
    ControllerPublishVolume = unimplemented("ControllerPublishVolume")
    ControllerUnpublishVolume = unimplemented("ControllerUnpublishVolume")
    ListVolumes = unimplemented("ListVolumes")
    GetCapacity = unimplemented("GetCapacity")
    CreateSnapshot = unimplemented("CreateSnapshot")
    DeleteSnapshot = unimplemented("DeleteSnapshot")
    ListSnapshots = unimplemented("ListSnapshots")
    GetSnapshot = unimplemented("GetSnapshot")
    ControllerExpandVolume = unimplemented("ControllerExpandVolume")
    ControllerGetVolume = unimplemented("ControllerGetVolume")
    ControllerModifyVolume = unimplemented("ControllerModifyVolume")

    def __init__(self, endpoint_policy: EndpointPolicy | None = None) -> None:
        self.locks = VolumeLocks()
        self.endpoint_policy = endpoint_policy or EndpointPolicy()

    def _allowed(self, ref: volumeid.VolumeRef, error: type[CsiError]) -> None:
        """Raise ``error`` when the policy does not list the volume's endpoint."""
        refusal = self.endpoint_policy.refusal(ref.endpoint)
        if refusal is not None:
            raise error(refusal)

    @grpc_errors
    async def CreateVolume(
        self, request: csi_pb2.CreateVolumeRequest, context: Context
    ) -> csi_pb2.CreateVolumeResponse:
        name = require(request.name, "name")
        check_capabilities(request.volume_capabilities)
        if request.HasField("volume_content_source"):
            raise InvalidArgument("volume_content_source (snapshots, clones) is not supported")
        capacity = capacity_of(request)
        params = dict(request.parameters)
        ref, volume_context = parse_parameters(name, params)
        self._allowed(ref, InvalidArgument)
        try:
            volume_id = volumeid.encode(ref)
        except volumeid.VolumeIdError as exc:
            raise InvalidArgument(str(exc)) from None
        marker = {
            "version": 1,
            "name": name,
            "capacity_bytes": capacity,
            "parameters": {
                k: v for k, v in params.items() if not k.startswith(volumecontext.IGNORED_PREFIXES)
            },
        }
        register_secret(*request.secrets.values())
        check_secrets(ref, request.secrets)
        with self.locks.hold(location(ref)):
            bucket = Bucket(ref, request.secrets)
            existing = await bucket.read_marker(ref.prefix)
            if existing is None:
                try:
                    await bucket.create_marker(ref.prefix, marker)
                except MarkerConflict:
                    existing = await bucket.read_marker(ref.prefix)
            if existing is not None and existing != marker:
                raise AlreadyExists(
                    f"volume {name!r} already exists with a different capacity or parameters"
                )
        return csi_pb2.CreateVolumeResponse(
            volume=csi_pb2.Volume(
                volume_id=volume_id, capacity_bytes=capacity, volume_context=volume_context
            )
        )

    @grpc_errors
    async def DeleteVolume(
        self, request: csi_pb2.DeleteVolumeRequest, context: Context
    ) -> csi_pb2.DeleteVolumeResponse:
        volume_id = require(request.volume_id, "volume_id")
        try:
            ref = volumeid.decode(volume_id)
        except volumeid.VolumeIdError:
            # We never made such a volume, so it is already gone (the spec's idempotency).
            return csi_pb2.DeleteVolumeResponse()
        self._allowed(ref, FailedPrecondition)
        register_secret(*request.secrets.values())
        check_secrets(ref, request.secrets)
        with self.locks.hold(location(ref)):
            bucket = Bucket(ref, request.secrets)
            if ref.delete_data:
                await bucket.delete_prefix(ref.prefix)
            else:
                await bucket.delete_marker(ref.prefix)
        return csi_pb2.DeleteVolumeResponse()

    @grpc_errors
    async def ValidateVolumeCapabilities(
        self, request: csi_pb2.ValidateVolumeCapabilitiesRequest, context: Context
    ) -> csi_pb2.ValidateVolumeCapabilitiesResponse:
        volume_id = require(request.volume_id, "volume_id")
        if not request.volume_capabilities:
            raise InvalidArgument("volume_capabilities is required")
        try:
            ref = volumeid.decode(volume_id)
        except volumeid.VolumeIdError:
            raise NotFound(f"volume {volume_id!r} does not exist") from None
        self._allowed(ref, FailedPrecondition)
        register_secret(*request.secrets.values())
        check_secrets(ref, request.secrets)
        if await Bucket(ref, request.secrets).read_marker(ref.prefix) is None:
            raise NotFound(f"volume {volume_id!r} does not exist")
        problems = [p for p in map(capability_problem, request.volume_capabilities) if p]
        if problems:
            return csi_pb2.ValidateVolumeCapabilitiesResponse(message="; ".join(problems))
        return csi_pb2.ValidateVolumeCapabilitiesResponse(
            confirmed=csi_pb2.ValidateVolumeCapabilitiesResponse.Confirmed(
                volume_context=request.volume_context,
                volume_capabilities=request.volume_capabilities,
                parameters=request.parameters,
            )
        )

    @grpc_errors
    async def ControllerGetCapabilities(
        self, request: csi_pb2.ControllerGetCapabilitiesRequest, context: Context
    ) -> csi_pb2.ControllerGetCapabilitiesResponse:
        rpc = csi_pb2.ControllerServiceCapability.RPC
        return csi_pb2.ControllerGetCapabilitiesResponse(
            capabilities=[
                csi_pb2.ControllerServiceCapability(rpc=rpc(type=rpc.CREATE_DELETE_VOLUME))
            ]
        )
