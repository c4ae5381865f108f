"""Engine test fixtures: real ``openfiles mount`` processes on real FUSE.

``mounter`` starts engines as subprocesses (exactly as the CSI mounter does:
``--foreground --control-socket``) and always unmounts them in teardown.
``backend`` runs a test against a ``file://`` bucket, a MinIO bucket, an Azurite
container and a bucket of the GCS emulator (fixtures/gcs.py); ``server_backend``
against the three servers.
``memory_downloader``, ``same`` and ``until`` serve the fetch tests
(test_download.py, test_fetcher.py, test_wholefetch.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio

from fixtures.prereq import fuse_mounts, lazy_unmount
from openfiles_contracts import readiness
from openfiles_contracts.jsonline import request
from openfiles_engine.bucket.asyncstore import AsyncStore
from openfiles_engine.bucket.store import Store
from openfiles_engine.cache.datafile import DataFiles
from openfiles_engine.read import Downloader
from openfiles_engine.state.db import StateDB
from openfiles_engine.state.inode import ROOT, Node
from openfiles_engine.state.journal import Journal
from openfiles_engine.state.tree import Defaults, Tree

READY_TIMEOUT = 30.0


@dataclass
class Mount:
    """One running engine."""

    path: Path
    cache: Path
    sock: Path
    log: Path
    proc: subprocess.Popen[bytes]
    args: list[str] = field(default_factory=list)

    def status(self) -> dict[str, Any]:
        reply = request(str(self.sock), {"op": "status"}, timeout=30)
        assert reply["ok"], reply
        return reply["status"]  # type: ignore[no-any-return]

    def flush(self, timeout: float = 60) -> dict[str, Any]:
        return request(str(self.sock), {"op": "flush", "timeout": timeout}, timeout=timeout + 30)

    def policy(self, **values: Any) -> dict[str, Any]:
        return request(str(self.sock), {"op": "policy", **values})

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (export, then unmount) and wait; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if str(self.path) in fuse_mounts():
            lazy_unmount(str(self.path))
        return self.proc.returncode

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Backend:
    """Where a test's bucket lives: ``file``, ``s3``, ``az`` or ``gs``."""

    kind: str
    url: str
    env: dict[str, str]
    args: list[str]
    root: Path | None = None
    bucket: Any = None

    @classmethod
    def on_s3(cls, bucket: Any) -> Backend:
        """A MinIO bucket (fixtures.minio.Bucket) as a test backend."""
        return cls("s3", bucket.url, bucket.env, ["--endpoint", bucket.endpoint], bucket=bucket)

    @classmethod
    def on_gcs(cls, bucket: Any) -> Backend:
        """A bucket of the GCS emulator (fixtures.gcs.Bucket) as a test backend."""
        return cls("gs", bucket.url, bucket.env, ["--endpoint", bucket.endpoint], bucket=bucket)

    @classmethod
    def on_azure(cls, container: Any) -> Backend:
        """An Azurite container (fixtures.azurite.Container) as a test backend."""
        return cls("az", container.url, container.env, ["--endpoint", container.endpoint],
                   bucket=container)

    def keys(self) -> list[str]:
        if self.root is not None:
            return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*")
                          if p.is_file())
        return self.bucket.keys()  # type: ignore[no-any-return]

    def read(self, key: str) -> bytes:
        if self.root is not None:
            return (self.root / key).read_bytes()
        import obstore

        return bytes(obstore.get(self.bucket.store(), key).bytes())

    def write(self, key: str, data: bytes) -> None:
        """A plain write that bypasses OpenFiles (another S3 client)."""
        if self.root is not None:
            path = self.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp-plain")
            tmp.write_bytes(data)
            tmp.replace(path)
            return
        import obstore

        obstore.put(self.bucket.store(), key, data)

    def delete(self, key: str) -> None:
        if self.root is not None:
            (self.root / key).unlink()
            return
        import obstore

        obstore.delete(self.bucket.store(), key)


def make_backend(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if kind == "file":
        root = tmp_path / "bucket"
        root.mkdir()
        return Backend("file", f"file://{root}", {}, [], root=root)
    if kind == "az":
        return Backend.on_azure(request.getfixturevalue("az_container"))
    if kind == "gs":
        return Backend.on_gcs(request.getfixturevalue("gcs_bucket"))
    return Backend.on_s3(request.getfixturevalue("s3_bucket"))


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3),
                        pytest.param("az", marks=pytest.mark.azure),
                        pytest.param("gs", marks=pytest.mark.gcs)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend(request.param, request, tmp_path)


@pytest.fixture
def file_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend("file", request, tmp_path)


@pytest.fixture
def s3_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend("s3", request, tmp_path)


@pytest.fixture(params=[pytest.param("s3", marks=pytest.mark.s3),
                        pytest.param("az", marks=pytest.mark.azure),
                        pytest.param("gs", marks=pytest.mark.gcs)])
def server_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A bucket on a server (MinIO, Azurite, the GCS emulator): another client writes
    there with a plain PUT while a mount holds the version it saw."""
    return make_backend(request.param, request, tmp_path)


MountFactory = Callable[..., Mount]


def fresh(mounter: MountFactory, backend: Backend, *args: str) -> Mount:
    """A second mount with an empty cache: it sees only what reached the bucket."""
    return mounter(backend, *args, "--metadata-ttl", "0")


@pytest.fixture
def mounter(tmp_path: Path) -> Iterator[MountFactory]:
    """``mounter(backend, *args, name="m", cache=None)`` starts an engine and waits for it."""
    started: list[Mount] = []
    counter = [0]

    def start(backend: Backend, *args: str, name: str = "", cache: Path | None = None,
              mountpoint: Path | None = None, env: dict[str, str] | None = None,
              wait: bool = True) -> Mount:
        counter[0] += 1
        name = name or f"m{counter[0]}"
        path = mountpoint or tmp_path / name
        if mountpoint is None:  # a given one may be a stale mount the engine must clear
            path.mkdir(exist_ok=True)
        cache = cache or tmp_path / f"{name}-cache"
        sock = tmp_path / f"{name}-{counter[0]}.sock"
        log = tmp_path / f"{name}-{counter[0]}.log"
        argv = [sys.executable, "-m", "openfiles_cli", "mount", backend.url, str(path),
                "--foreground", "--cache-dir", str(cache), "--control-socket", str(sock),
                "--fsid", "test", "--log-level", "DEBUG", *backend.args, *args]
        child_env = {k: v for k, v in os.environ.items()
                     if not k.startswith(("AWS_", "GOOGLE_", "AZURE_"))}
        child_env.update(backend.env)
        child_env.update(env or {})
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=child_env)
        mount = Mount(path, cache, sock, log, proc, argv)
        started.append(mount)
        if wait:
            wait_ready(mount)
        return mount

    yield start
    for mount in started:
        mount.stop()


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 12 MiB tmpfs (a cache disk that fills up); needs root."""
    point = tmp_path / "tmpfs"
    point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(point)], check=True)
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def wait_ready(mount: Mount) -> None:
    def check() -> None:
        if mount.proc.poll() is not None:
            raise AssertionError(f"engine exited {mount.proc.returncode}:\n{mount.log_text()}")

    if not readiness.wait(str(mount.path), str(mount.sock), READY_TIMEOUT, check=check):
        raise AssertionError(f"engine not ready after {READY_TIMEOUT} s:\n{mount.log_text()}")




def status_json(mount: Mount) -> str:
    return json.dumps(mount.status(), indent=1)


def memory_downloader(tmp_path: Path, size: int) -> tuple[bytes, Downloader, Node]:
    """A Downloader over a MemoryStore holding one file ``f`` of ``size`` random bytes."""
    store = Store.open("memory://")
    payload = os.urandom(size)
    etag = store.put_bytes("f", payload, if_match=None, create=True)
    meta = StateDB(str(tmp_path / "m.sqlite"))
    tree = Tree(meta, Defaults(0, 0, 0o644, 0o755), "t")
    node = tree.add(ROOT, "f", "file", mode=0o644, uid=0, gid=0, size=size, etag=etag)
    dl = Downloader(tree, AsyncStore(store), DataFiles(str(tmp_path / "data")), Journal(meta))
    return payload, dl, node


def same(got: bytes, want: bytes) -> bool:
    """Equality that keeps pytest from diffing megabytes when it fails."""
    if got != want:
        first = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
        print(f"{len(got)} bytes vs {len(want)}, first difference at {first}")
    return got == want


async def until(done: Callable[[], bool], seconds: float) -> None:
    """Poll ``done`` until it holds; fail after ``seconds``."""
    with trio.fail_after(seconds):
        while not done():  # noqa: ASYNC110 - the state polled has no event of its own
            await trio.sleep(0.01)
