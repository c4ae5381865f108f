"""CSI Identity service: plugin name and version, capabilities, readiness."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.wrappers_pb2 import BoolValue

from openfiles_csi import __version__
from openfiles_csi._proto import csi_pb2, csi_pb2_grpc
from openfiles_csi.plugin.errors import grpc_errors

DRIVER_NAME = "csi.openfiles.io"
Context = grpc.aio.ServicerContext[Any, Any]


class IdentityServicer(csi_pb2_grpc.IdentityServicer):
    def __init__(
        self, *, controller: bool, ready: Callable[[], Awaitable[bool]] | None = None
    ) -> None:
        """``ready`` answers Probe (the node plugin: can it reach its mounter?)."""
        self.controller = controller
        self.ready = ready

    @grpc_errors
    async def GetPluginInfo(
        self, request: csi_pb2.GetPluginInfoRequest, context: Context
    ) -> csi_pb2.GetPluginInfoResponse:
        return csi_pb2.GetPluginInfoResponse(name=DRIVER_NAME, vendor_version=__version__)

    @grpc_errors
    async def GetPluginCapabilities(
        self, request: csi_pb2.GetPluginCapabilitiesRequest, context: Context
    ) -> csi_pb2.GetPluginCapabilitiesResponse:
        caps = []
        if self.controller:
            caps.append(
                csi_pb2.PluginCapability(
                    service=csi_pb2.PluginCapability.Service(
                        type=csi_pb2.PluginCapability.Service.CONTROLLER_SERVICE
                    )
                )
            )
        return csi_pb2.GetPluginCapabilitiesResponse(capabilities=caps)

    @grpc_errors
    async def Probe(self, request: csi_pb2.ProbeRequest, context: Context) -> csi_pb2.ProbeResponse:
        ready = True if self.ready is None else await self.ready()
        return csi_pb2.ProbeResponse(ready=BoolValue(value=ready))
