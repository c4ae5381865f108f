"""The controller's endpoint policy, through the real plugin's socket, against a real MinIO.

A refused endpoint must see no request: it is a listening socket that counts connections.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from fixtures.minio import Bucket
from fixtures.net import Trap
from openfiles_csi import volumeid
from openfiles_csi._proto import csi_pb2
from openfiles_csi.plugin.cli import parse_args
from openfiles_csi.plugin.controller import parse_parameters

from ..conftest import Node
from .test_controller import CAP, create, params

pytestmark = pytest.mark.s3


@pytest.fixture
def trap() -> Iterator[Trap]:
    listener = Trap()
    yield listener
    listener.close()


def test_an_endpoint_outside_the_policy_is_refused_before_any_request(
        node_env: Node, s3_bucket: Bucket, trap: Trap) -> None:
    endpoint = trap.url
    plugin = node_env.start_plugin("controller", f"--allowed-endpoint={s3_bucket.endpoint}")
    c = plugin.controller

    with pytest.raises(grpc.RpcError) as info:
        create(plugin, s3_bucket, "pvc-x", parameters=params(s3_bucket, endpoint=endpoint))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = str(info.value.details())
    assert f"endpoint '{endpoint}' is not allowed" in details and s3_bucket.endpoint in details

    # A volume made before the policy changed: neither delete nor validate calls it.
    ref, _ = parse_parameters("pvc-y", params(s3_bucket, endpoint=endpoint))
    old = volumeid.encode(ref)
    for call in (
        lambda: c.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=old,
                                                           secrets=s3_bucket.secret)),
        lambda: c.ValidateVolumeCapabilities(csi_pb2.ValidateVolumeCapabilitiesRequest(
            volume_id=old, volume_capabilities=[CAP], secrets=s3_bucket.secret)),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert trap.connections() == 0

    # The listed endpoint works as before.
    vol = create(plugin, s3_bucket, "pvc-z").volume
    assert s3_bucket.keys() == ["base/pvc-z/.openfiles-volume.json"]
    c.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=vol.volume_id, secrets=s3_bucket.secret))


def test_a_malformed_pattern_stops_the_plugin_at_start(
        capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--mode", "controller", "--endpoint", "unix:///tmp/x.sock"]
    assert parse_args(argv).endpoint_policy.restricts is False
    with pytest.raises(SystemExit):
        parse_args([*argv, "--allowed-endpoint=https://*"])
    assert "--allowed-endpoint: endpoint pattern 'https://*'" in capsys.readouterr().err
