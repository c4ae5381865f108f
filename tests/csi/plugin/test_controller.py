"""Controller service against a real MinIO bucket, through the real plugin's socket."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import obstore
import pytest

from fixtures.minio import Bucket
from openfiles_contracts.name import VOLUME_MARKER
from openfiles_csi import volumeid
from openfiles_csi._proto import csi_pb2, csi_pb2_grpc
from openfiles_csi.plugin.controller import (
    ControllerServicer,
    location,
    parse_parameters,
    prefix_segment,
)
from openfiles_csi.plugin.errors import InvalidArgument
from openfiles_engine.bucket.layout import is_reserved

from ..conftest import Node, in_process

Mode = csi_pb2.VolumeCapability.AccessMode
CAP = csi_pb2.VolumeCapability(
    mount=csi_pb2.VolumeCapability.MountVolume(),
    access_mode=Mode(mode=Mode.MULTI_NODE_MULTI_WRITER),
)


def test_prefix_segment() -> None:
    assert prefix_segment("pvc-1234") == "pvc-1234"
    for odd in ("../x", "A/B", "x" * 100, "..", "Vol"):
        seg = prefix_segment(odd)
        assert seg.startswith("v-") and len(seg) == 26
    assert prefix_segment("x" * 100) == prefix_segment("x" * 100)


def test_parse_parameters() -> None:
    ref, context = parse_parameters(
        "pvc-1",
        {"url": "s3://bkt/base/", "endpoint": "http://127.0.0.1:9", "deleteData": "true",
         "cacheSize": "1Gi", "csi.storage.k8s.io/pvc/name": "x"},
    )  # fmt: skip
    assert (ref.bucket, ref.prefix, ref.delete_data) == ("bkt", "base/pvc-1", True)
    assert context == {"url": "s3://bkt/base/pvc-1", "endpoint": "http://127.0.0.1:9",
                       "cacheSize": "1Gi"}  # fmt: skip
    ref, context = parse_parameters("pvc-1", {"url": "az://con/base", "account": "acct"})
    assert (ref.scheme, ref.account, ref.prefix) == ("az", "acct", "base/pvc-1")
    assert context == {"url": "az://con/base/pvc-1", "account": "acct"}
    ref, context = parse_parameters("pvc-1", {"url": "gs://b_1"})
    assert (ref.scheme, ref.bucket, context) == ("gs", "b_1", {"url": "gs://b_1/pvc-1"})
    for bad, why in (
        ({}, "url is required"), ({"url": "file:///x"}, "must start with"),
        ({"url": "s3://bkt", "deleteData": "yes"}, "deleteData"),
        ({"url": "s3://bkt", "cacheSize": "big"}, "cacheSize"),
        ({"url": "s3://bkt/a/../b"}, "bad part"),
        ({"url": "az://con"}, "needs the storage account"),
        ({"url": "gs://bkt", "account": "acct"}, "az:// only"),
        ({"url": "gs://bkt", "region": "eu"}, "region is for s3:// only"),
    ):  # fmt: skip
        with pytest.raises(InvalidArgument, match=why):
            parse_parameters("pvc-1", bad)


def params(bucket: Bucket, **extra: str) -> dict[str, str]:
    return {"url": f"{bucket.url}/base", "endpoint": bucket.endpoint, "region": "us-east-1",
            **extra}  # fmt: skip


def create(plugin: Any, bucket: Bucket, name: str, **kw: Any) -> csi_pb2.CreateVolumeResponse:
    request = csi_pb2.CreateVolumeRequest(
        name=name, volume_capabilities=[CAP], secrets=bucket.secret,
        parameters=kw.pop("parameters", None) or params(bucket), **kw)  # fmt: skip
    return plugin.controller.CreateVolume(request, timeout=30)


def code_of(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()  # type: ignore[no-any-return]


@pytest.mark.s3
def test_create_delete_keeps_data(node_env: Node, s3_bucket: Bucket) -> None:
    plugin = node_env.start_plugin("controller")
    vol = create(plugin, s3_bucket, "pvc-a").volume
    assert vol.volume_id == f"of1,k,{s3_bucket.endpoint},us-east-1,{s3_bucket.name},base/pvc-a"
    assert vol.volume_context["url"] == f"{s3_bucket.url}/base/pvc-a"
    assert s3_bucket.keys() == ["base/pvc-a/.openfiles-volume.json"]
    # Idempotent: the same request again gives the same volume.
    assert create(plugin, s3_bucket, "pvc-a").volume == vol
    # Same name, different capacity: ALREADY_EXISTS.
    big = csi_pb2.CapacityRange(required_bytes=10**9)
    assert code_of(lambda: create(plugin, s3_bucket, "pvc-a", capacity_range=big)) == (
        grpc.StatusCode.ALREADY_EXISTS)  # fmt: skip
    store = s3_bucket.store()
    obstore.put(store, "base/pvc-a/data.txt", b"keep me")
    obstore.put(store, "base/pvc-ab/other.txt", b"neighbour")
    plugin.controller.DeleteVolume(
        csi_pb2.DeleteVolumeRequest(volume_id=vol.volume_id, secrets=s3_bucket.secret)
    )
    plugin.controller.DeleteVolume(
        csi_pb2.DeleteVolumeRequest(volume_id=vol.volume_id, secrets=s3_bucket.secret)
    )
    assert s3_bucket.keys() == ["base/pvc-a/data.txt", "base/pvc-ab/other.txt"]


@pytest.mark.s3
def test_delete_data_touches_only_the_prefix(node_env: Node, s3_bucket: Bucket) -> None:
    plugin = node_env.start_plugin("controller")
    p = params(s3_bucket, deleteData="true")
    vol = create(plugin, s3_bucket, "pvc-b", parameters=p).volume
    store = s3_bucket.store()
    for key in ("base/pvc-b/a", "base/pvc-b/d/e/f", "base/pvc-bb/x", "base/pvc-b.txt", "pvc-b/y"):
        obstore.put(store, key, b"1")
    plugin.controller.DeleteVolume(
        csi_pb2.DeleteVolumeRequest(volume_id=vol.volume_id, secrets=s3_bucket.secret)
    )
    assert s3_bucket.keys() == ["base/pvc-b.txt", "base/pvc-bb/x", "pvc-b/y"]


@pytest.mark.s3
def test_errors(node_env: Node, s3_bucket: Bucket) -> None:
    plugin = node_env.start_plugin("controller")
    c = plugin.controller
    assert code_of(lambda: create(plugin, s3_bucket, "")) == grpc.StatusCode.INVALID_ARGUMENT
    bad = {"url": "s3://bucket/x", "cacheSzie": "1"}
    assert code_of(lambda: create(plugin, s3_bucket, "v", parameters=bad)) == (
        grpc.StatusCode.INVALID_ARGUMENT)  # fmt: skip
    wrong = csi_pb2.CreateVolumeRequest(
        name="v", volume_capabilities=[CAP], parameters=params(s3_bucket),
        secrets={"accessKeyId": "nobody", "secretAccessKey": "wrong-secret-value"})  # fmt: skip
    with pytest.raises(grpc.RpcError) as info:
        c.CreateVolume(wrong, timeout=60)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "wrong-secret-value" not in str(info.value.details())
    assert "wrong-secret-value" not in node_env.plugins[0].proc.log()
    # A malformed id: DeleteVolume succeeds (nothing to delete), Validate says NOT_FOUND.
    c.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id="of1,k,,,bucket,../../etc"))
    req = csi_pb2.ValidateVolumeCapabilitiesRequest(volume_id="nope", volume_capabilities=[CAP])
    assert code_of(lambda: c.ValidateVolumeCapabilities(req)) == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: c.ListVolumes(csi_pb2.ListVolumesRequest())) == (
        grpc.StatusCode.UNIMPLEMENTED)  # fmt: skip


@pytest.mark.s3
def test_validate_capabilities(node_env: Node, s3_bucket: Bucket) -> None:
    plugin = node_env.start_plugin("controller")
    vol = create(plugin, s3_bucket, "pvc-c").volume
    ok = plugin.controller.ValidateVolumeCapabilities(csi_pb2.ValidateVolumeCapabilitiesRequest(
        volume_id=vol.volume_id, volume_capabilities=[CAP], secrets=s3_bucket.secret))  # fmt: skip
    assert list(ok.confirmed.volume_capabilities) == [CAP]
    block = csi_pb2.VolumeCapability(block=csi_pb2.VolumeCapability.BlockVolume(),
                                     access_mode=CAP.access_mode)  # fmt: skip
    request = csi_pb2.ValidateVolumeCapabilitiesRequest(
        volume_id=vol.volume_id, volume_capabilities=[block], secrets=s3_bucket.secret
    )
    no = plugin.controller.ValidateVolumeCapabilities(request)
    assert not no.HasField("confirmed") and "block" in no.message


def test_create_and_delete_of_one_volume_never_overlap(tmp_path: Path) -> None:
    """Both RPCs take the lock of the volume's prefix: while it is held, both are ABORTED."""
    servicer = ControllerServicer()
    parameters = {"url": "s3://bkt/base", "endpoint": "http://127.0.0.1:9"}
    ref, _ = parse_parameters("pvc-1", parameters)

    async def calls() -> list[grpc.StatusCode]:
        codes = []
        add = csi_pb2_grpc.add_ControllerServicer_to_server
        async with in_process(add, servicer, str(tmp_path / "c.sock")) as channel:
            stub = csi_pb2_grpc.ControllerStub(channel)
            create = csi_pb2.CreateVolumeRequest(
                name="pvc-1", volume_capabilities=[CAP], parameters=parameters
            )
            delete = csi_pb2.DeleteVolumeRequest(volume_id=volumeid.encode(ref))
            with servicer.locks.hold(location(ref)):  # an operation in flight
                for call in (stub.CreateVolume(create), stub.DeleteVolume(delete)):
                    try:
                        await call
                    except grpc.aio.AioRpcError as exc:
                        codes.append(exc.code())
        return codes

    assert asyncio.run(calls()) == [grpc.StatusCode.ABORTED, grpc.StatusCode.ABORTED]


def test_the_engine_hides_the_volume_marker() -> None:
    """The marker's name is a contract with the engine (docs/CONTRACTS.md, section 3):
    the controller writes :data:`VOLUME_MARKER`, and the engine's own check hides it."""
    assert is_reserved(VOLUME_MARKER)
