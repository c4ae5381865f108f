"""The registrar and the liveness probe of tools/sidecar against the real plugin.

The kubelet's side of the registration is played by a raw gRPC call (GetInfo and
NotifyRegistrationStatus, the two calls the kubelet's plugin watcher makes); the
e2e suite registers the driver with a real kubelet.
"""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from fixtures.net import free_port, stop, wait_until
from fixtures.prereq import missing, tool
from openfiles_csi.plugin.identity import DRIVER_NAME

from .conftest import Node, accepts

KUBELET_PATH = "/var/lib/kubelet/plugins/csi.openfiles.io/csi.sock"
REGISTRATION = "/pluginregistration.Registration/"


def fields(message: bytes) -> dict[int, list[bytes]]:
    """The length-delimited fields of a protobuf message, by field number."""
    out: dict[int, list[bytes]] = {}
    at = 0
    while at < len(message):
        key, at = varint(message, at)
        assert key & 7 == 2, f"field {key >> 3} is not length-delimited"
        size, at = varint(message, at)
        out.setdefault(key >> 3, []).append(message[at:at + size])
        at += size
    return out


def varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def health(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def binaries() -> Iterator[None]:
    for name in ("csi-node-driver-registrar", "livenessprobe"):
        if not tool(name).exists():
            missing(f"[tools] {name} not built at {tool(name)}: run scripts/bootstrap-tests.sh")
    yield


def start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


def test_registrar_announces_the_plugin(binaries: None, node_env: Node) -> None:
    plugin = node_env.start_plugin("node")
    registry = node_env.root / "registry"
    registry.mkdir()
    port = free_port()
    log = node_env.root / "registrar.log"
    proc = start([str(tool("csi-node-driver-registrar")), f"--csi-address={plugin.socket}",
                  f"--kubelet-registration-path={KUBELET_PATH}",
                  f"--plugin-registration-path={registry}",
                  f"--http-endpoint=127.0.0.1:{port}", "--v=2"], log)  # fmt: skip
    socket = registry / f"{DRIVER_NAME}-reg.sock"
    try:
        wait_until(lambda: accepts(str(socket)), proc, "registrar", timeout=30, log=log.read_text())
        assert health(port)[0] == 200
        with grpc.insecure_channel(f"unix://{socket}") as channel:
            get_info = channel.unary_unary(REGISTRATION + "GetInfo")
            info = fields(get_info(b"", timeout=10))
            # PluginInfo: type 1, name 2, endpoint 3, supported_versions 4
            assert info == {1: [b"CSIPlugin"], 2: [DRIVER_NAME.encode()],
                            3: [KUBELET_PATH.encode()], 4: [b"1.0.0"]}  # fmt: skip
            notify = channel.unary_unary(REGISTRATION + "NotifyRegistrationStatus")
            notify(b"\x08\x01", timeout=10)  # plugin_registered: true
            assert proc.poll() is None
            # A refusal ends the registrar, so that its container restarts and tries again.
            refusal = b"\x12\x0bbad version"  # error: "bad version"
            with pytest.raises(grpc.RpcError):
                notify(refusal, timeout=10)
        assert proc.wait(10) == 1
        assert "refused driver csi.openfiles.io: bad version" in log.read_text()
    finally:
        stop(proc)


def test_registrar_removes_its_socket_on_sigterm(binaries: None, node_env: Node) -> None:
    plugin = node_env.start_plugin("node")
    registry = node_env.root / "registry"
    registry.mkdir()
    socket = registry / f"{DRIVER_NAME}-reg.sock"
    socket.write_text("stale")  # left by a registrar that was killed
    log = node_env.root / "registrar.log"
    proc = start([str(tool("csi-node-driver-registrar")), f"--csi-address={plugin.socket}",
                  f"--kubelet-registration-path={KUBELET_PATH}",
                  f"--plugin-registration-path={registry}"], log)  # fmt: skip
    try:
        wait_until(lambda: accepts(str(socket)), proc, "registrar", timeout=30, log=log.read_text())
        proc.terminate()
        assert proc.wait(10) == 0
        assert not socket.exists()
    finally:
        stop(proc)


def test_registrar_needs_the_kubelet_path(binaries: None) -> None:
    result = subprocess.run([str(tool("csi-node-driver-registrar")), "--csi-address=/nonexistent"],
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 1
    assert "--kubelet-registration-path is required" in result.stderr


def test_livenessprobe_follows_the_plugin(binaries: None, node_env: Node) -> None:
    plugin = node_env.start_plugin("node")
    port = free_port()
    log = node_env.root / "livenessprobe.log"
    proc = start([str(tool("livenessprobe")), f"--csi-address={plugin.socket}",
                  f"--http-endpoint=127.0.0.1:{port}", "--probe-timeout=3s"], log)  # fmt: skip
    try:
        wait_until(lambda: health(port)[0] > 0, proc, "livenessprobe", timeout=30,
                   log=log.read_text())
        assert health(port) == (200, "ok\n")
        plugin.close()
        plugin.proc.stop()
        status, body = health(port)
        assert status == 500
        assert "connect" in body or "Unavailable" in body, body
    finally:
        stop(proc)
