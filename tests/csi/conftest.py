"""Processes for the CSI tests: the real `openfiles csi` plugin and `openfiles mounter`.

Both run as subprocesses (``python -m openfiles_cli``), exactly as the chart runs them;
tests talk to the plugin over its unix socket with the generated gRPC stubs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fixtures.net import stop, wait_until
from fixtures.server import ServerBucket
from openfiles_contracts import mountinfo
from openfiles_csi._proto import csi_pb2, csi_pb2_grpc
from openfiles_csi.mounter import process

OPENFILES = [sys.executable, "-m", "openfiles_cli"]
# TEMPORARY (until the engine branch lands): a developer may point the mounter at another
# engine command. Unset in CI, where the real `openfiles mount` runs.
DEV_ENGINE = (
    ["--engine-command", os.environ["OPENFILES_DEV_ENGINE"]]
    if os.environ.get("OPENFILES_DEV_ENGINE")
    else []
)


@dataclass
class Proc:
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, ready: Callable[[], bool]) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        wait_until(ready, self.proc, self.argv[3], timeout=30, log=self.log())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


def accepts(path: str) -> bool:
    """Does a server listen on unix socket ``path``? (The file exists before listen().)"""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
        except OSError:
            return False
        return True


@dataclass
class Plugin:
    """A running `openfiles csi` and stubs on its socket."""

    proc: Proc
    socket: str
    channel: grpc.Channel = field(init=False)

    def connect(self) -> None:
        self.channel = grpc.insecure_channel(f"unix://{self.socket}")
        self.identity = csi_pb2_grpc.IdentityStub(self.channel)
        self.controller = csi_pb2_grpc.ControllerStub(self.channel)
        self.node = csi_pb2_grpc.NodeStub(self.channel)

    def close(self) -> None:
        self.channel.close()


@dataclass
class Node:
    """Directories and processes of one simulated node."""

    root: Path
    mounter: Proc
    mounter_socket: str
    plugins: list[Plugin] = field(default_factory=list)

    @property
    def kubelet(self) -> Path:
        return self.root / "kubelet"

    def start_plugin(self, mode: str = "all", *extra: str) -> Plugin:
        sock = str(self.root / f"csi-{len(self.plugins)}.sock")
        argv = [*OPENFILES, "csi", "--mode", mode, "--endpoint", f"unix://{sock}",
                "--node-id", "node-1", "--mounter-socket", self.mounter_socket,
                "--allowed-root", str(self.kubelet), "--log-level", "DEBUG", *extra]  # fmt: skip
        proc = Proc(argv, self.root / f"csi-{len(self.plugins)}.log")
        proc.start(lambda: accepts(sock))
        plugin = Plugin(proc, sock)
        plugin.connect()
        self.plugins.append(plugin)
        return plugin

    def start_mounter(self) -> None:
        if os.path.exists(self.mounter_socket):
            os.unlink(self.mounter_socket)
        self.mounter.start(lambda: accepts(self.mounter_socket))


@pytest.fixture
def node_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """A node: mounter started; call ``start_plugin``. Everything is stopped afterwards.

    The root is a short directory under this session's pytest base temp: unix socket
    paths are limited to 107 bytes, the leak check (fixtures/leaks.py) covers it, and
    no other test session on the machine ever treats its mounts as its own.
    """
    with running_node(tmp_path_factory) as node:
        yield node


@pytest.fixture
def supervised_node_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """A node whose mounter runs as the chart runs it: under ``--supervise``."""
    with running_node(tmp_path_factory, "--supervise", "--stop-engines-on-exit") as node:
        yield node


@contextlib.contextmanager
def running_node(tmp_path_factory: pytest.TempPathFactory, *mounter_args: str) -> Iterator[Node]:
    root = tmp_path_factory.mktemp("node")
    (root / "kubelet").mkdir()
    sock = str(root / "mounter.sock")
    mounter = Proc(
        [*OPENFILES, "mounter", "--socket", sock, "--state-dir", str(root / "state"),
         "--log-level", "DEBUG", *mounter_args],
        root / "mounter.log",
    )  # fmt: skip
    node = Node(root, mounter, sock)
    node.start_mounter()
    try:
        yield node
    finally:
        for plugin in node.plugins:
            plugin.close()
            plugin.proc.stop()
        unmount_all_under(str(root))
        kill_engines(str(root / "state"))
        mounter.stop()
        unmount_all_under(str(root))
        shutil.rmtree(root, ignore_errors=True)


def unmount_all_under(root: str) -> None:
    """Unmount whatever a test left under ``root`` (deepest first)."""
    points = [e.mountpoint for e in mountinfo.entries() if e.mountpoint.startswith(root + "/")]
    for point in sorted(set(points), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def kill_engines(state_dir: str) -> None:
    """SIGKILL the engines the mounter recorded (pids of processes this test started)."""
    records = Path(state_dir) / "records"
    if not records.is_dir():
        return
    for path in records.glob("*.json"):
        rec = json.loads(path.read_text())
        if rec.get("pid") and process.is_alive(rec["pid"], rec["start_ticks"]):
            os.kill(rec["pid"], signal.SIGKILL)
            process_wait_gone(rec["pid"])


def process_wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        try:
            os.waitpid(pid, os.WNOHANG)  # reaps it if it was reparented to us
        except ChildProcessError:
            pass
        time.sleep(0.05)


Mode = csi_pb2.VolumeCapability.AccessMode


def mount_cap(mode: int = Mode.SINGLE_NODE_WRITER, *flags: str) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(mount_flags=list(flags)),
        access_mode=Mode(mode=mode),  # type: ignore[arg-type]
    )


@dataclass
class Volume:
    """One volume staged (and maybe published) on a test node, by handle."""

    plugin: Plugin
    volume_id: str
    staging: str
    context: dict[str, str]
    secrets: dict[str, str]

    def stage(self, cap: csi_pb2.VolumeCapability | None = None) -> None:
        self.plugin.node.NodeStageVolume(
            csi_pb2.NodeStageVolumeRequest(
                volume_id=self.volume_id, staging_target_path=self.staging,
                volume_capability=cap or mount_cap(), volume_context=self.context,
                secrets=self.secrets),
            timeout=90)  # fmt: skip

    def publish(self, target: str, readonly: bool = False) -> None:
        self.plugin.node.NodePublishVolume(
            csi_pb2.NodePublishVolumeRequest(
                volume_id=self.volume_id, staging_target_path=self.staging, target_path=target,
                volume_capability=mount_cap(), readonly=readonly, volume_context=self.context),
            timeout=30)  # fmt: skip

    def unpublish(self, target: str) -> None:
        self.plugin.node.NodeUnpublishVolume(
            csi_pb2.NodeUnpublishVolumeRequest(volume_id=self.volume_id, target_path=target),
            timeout=30)  # fmt: skip

    def unstage(self) -> None:
        self.plugin.node.NodeUnstageVolume(
            csi_pb2.NodeUnstageVolumeRequest(
                volume_id=self.volume_id, staging_target_path=self.staging),
            timeout=120)  # fmt: skip

    def unstage_as_kubelet(self, timeout: float = 30.0) -> None:
        """:meth:`unstage`, retried while it is ABORTED, as kubelet does: right after an
        engine dies, the mounter holds the mount point's lock to remove its stale mount."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.unstage()
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.ABORTED or time.monotonic() > deadline:
                    raise
            time.sleep(0.2)

    def stats(self, path: str) -> csi_pb2.NodeGetVolumeStatsResponse:
        return self.plugin.node.NodeGetVolumeStats(  # type: ignore[no-any-return]
            csi_pb2.NodeGetVolumeStatsRequest(volume_id=self.volume_id, volume_path=path),
            timeout=30)  # fmt: skip


def volume_on(node: Node, plugin: Plugin, bucket: ServerBucket, name: str,
              **context: str) -> Volume:
    """A volume of ``bucket`` under prefix ``name``, addressed by an operator-style handle."""
    ctx = {"url": f"{bucket.url}/{name}", **bucket.context, **context}
    staging = node.kubelet / "plugins" / name / "globalmount"
    staging.mkdir(parents=True, exist_ok=True)
    return Volume(plugin, f"ofv-test-{name}-0a1b2c3d", str(staging), ctx, dict(bucket.secret))


def cache_dir(node: Node, volume_id: str) -> Path:
    """The node-local cache directory the mounter gives ``volume_id`` (default cache root)."""
    return node.root / "state" / "cache" / hashlib.sha256(volume_id.encode()).hexdigest()[:32]


def scrape_samples(port: int) -> list[Any]:
    """Every sample the node plugin's metrics endpoint shows (prometheus_client Samples)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def scrape(port: int, volume_id: str) -> dict[str, float]:
    """The node plugin's metrics of ``volume_id`` (histogram buckets left out)."""
    return {s.name: s.value for s in scrape_samples(port)
            if s.labels.get("volume") == volume_id and "le" not in s.labels}


def grpc_code(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def in_process(
    add: Callable[[Any, grpc.aio.Server], None], servicer: Any, socket: str
) -> AsyncIterator[grpc.aio.Channel]:
    """A real grpc.aio server for ``servicer`` in this event loop, and a channel to it.

    For tests that reach into a servicer while it serves (hold a lock, raise an error).
    """
    server = grpc.aio.server()
    add(servicer, server)
    server.add_insecure_port(f"unix://{socket}")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"unix://{socket}") as channel:
            yield channel
    finally:
        await server.stop(None)
