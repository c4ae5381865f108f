"""The one error decorator, through a real grpc.aio server on a unix socket.

A domain error becomes its code with its message, masked like a log line; anything
else becomes INTERNAL with a generic message; ``unimplemented`` answers UNIMPLEMENTED.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc

from openfiles_csi._proto import csi_pb2, csi_pb2_grpc
from openfiles_csi.logsetup import register_secret
from openfiles_csi.plugin.errors import FailedPrecondition, grpc_errors, unimplemented

from ..conftest import in_process

SECRET = "token-from-an-s3-error-body-0451"


class Failing(csi_pb2_grpc.IdentityServicer):
    Probe = unimplemented("Probe")

    @grpc_errors
    async def GetPluginInfo(self, request: Any, context: Any) -> csi_pb2.GetPluginInfoResponse:
        # A message with outside text in it, as the mounter relays an engine's log tail.
        raise FailedPrecondition(f"engine exited: SignatureDoesNotMatch token={SECRET}")

    @grpc_errors
    async def GetPluginCapabilities(
        self, request: Any, context: Any
    ) -> csi_pb2.GetPluginCapabilitiesResponse:
        raise RuntimeError(f"library text quoting {SECRET}")


async def call_all(socket: str) -> list[tuple[grpc.StatusCode, str]]:
    results = []
    add = csi_pb2_grpc.add_IdentityServicer_to_server
    async with in_process(add, Failing(), socket) as channel:
        stub = csi_pb2_grpc.IdentityStub(channel)
        calls = (
            stub.GetPluginInfo(csi_pb2.GetPluginInfoRequest(), timeout=10),
            stub.GetPluginCapabilities(csi_pb2.GetPluginCapabilitiesRequest(), timeout=10),
            stub.Probe(csi_pb2.ProbeRequest(), timeout=10),
        )
        for call in calls:
            try:
                await call
            except grpc.aio.AioRpcError as exc:
                results.append((exc.code(), exc.details() or ""))
    return results


def test_codes_and_masked_messages(tmp_path: Path) -> None:
    register_secret(SECRET)  # as the node does with every secret a request carries
    (domain, unexpected, missing) = asyncio.run(call_all(str(tmp_path / "csi.sock")))
    assert domain[0] == grpc.StatusCode.FAILED_PRECONDITION
    assert "SignatureDoesNotMatch token=***" in domain[1] and SECRET not in domain[1]
    assert unexpected == (
        grpc.StatusCode.INTERNAL,
        "GetPluginCapabilities: internal error (see plugin log)",
    )
    assert missing == (grpc.StatusCode.UNIMPLEMENTED, "Probe is not supported by this driver")
