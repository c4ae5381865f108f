"""Engine lifecycle: kill -9 crash safety, stale mounts, SIGTERM export, policy and status."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from fixtures.net import HoldingProxy, free_port
from fixtures.prereq import fuse_mounts, lazy_unmount
from openfiles_engine.bucket import fence
from openfiles_engine.bucket.store import ObjectInfo, Store
from openfiles_engine.config import MountConfig
from openfiles_engine.engine import Engine
from openfiles_engine.state.inode import ROOT

from .conftest import Backend, MountFactory

pytestmark = [pytest.mark.fuse, pytest.mark.timeout(180)]


def user_keys(backend: Backend) -> list[str]:
    return [k for k in backend.keys() if not k.startswith(".openfiles-meta")]


def test_kill9_then_remount_finishes_exports_and_renames(
        mounter: MountFactory, backend: Backend) -> None:
    backend.write("old/name.txt", b"renamed content")
    backend.write("doomed.txt", b"x")
    m = mounter(backend, "--export-delay", "3600")
    for i in range(20):
        (m.path / f"f{i}.txt").write_bytes(f"file {i}".encode() * 100)
    fd = os.open(m.path / "synced.txt", os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, b"fsynced")
    os.fsync(fd)
    os.close(fd)
    os.rename(m.path / "old", m.path / "new")
    (m.path / "doomed.txt").unlink()
    (m.path / "emptydir").mkdir()
    m.kill9()
    with pytest.raises(OSError) as info:
        os.stat(m.path)
    assert info.value.errno == errno.ENOTCONN  # the stale mount a crash leaves
    again = mounter(backend, "--export-delay", "3600", mountpoint=m.path, cache=m.cache)
    assert again.flush()["ok"]
    keys = user_keys(backend)
    assert "new/name.txt" in keys and "old/name.txt" not in keys
    assert "doomed.txt" not in keys
    assert backend.read("new/name.txt") == b"renamed content"
    for i in range(20):
        assert backend.read(f"f{i}.txt") == f"file {i}".encode() * 100
    assert backend.read("synced.txt") == b"fsynced"
    assert (again.path / "emptydir").is_dir()
    assert again.status()["conflicts"] == 0


def test_a_write_never_closed_before_a_kill9_exports_what_the_remount_shows(
        mounter: MountFactory, backend: Backend) -> None:
    """Bytes written but never closed or fsynced are not acknowledged: after a crash
    the remount may show them or not, but the bucket must get what the mount shows
    (found by the reference model: the mount showed an empty file, the export
    uploaded the data file's byte)."""
    m = mounter(backend, "--export-delay", "3600")
    fd = os.open(m.path / "open.txt", os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, b"x" * 5000)
    m.kill9()
    with contextlib.suppress(OSError):  # ENOTCONN: the engine is gone
        os.close(fd)
    again = mounter(backend, "--export-delay", "3600", mountpoint=m.path, cache=m.cache)
    shown = (again.path / "open.txt").read_bytes()
    assert again.flush()["ok"]
    assert backend.read("open.txt") == shown


WRITER = r"""
import os, sys
root = sys.argv[1]
for i in range(100000):
    path = os.path.join(root, f"w{i}")
    try:
        with open(path, "wb") as f:
            f.write((f"{i}:" * 3000).encode())
    except OSError:
        break
    print(i, flush=True)
"""


@pytest.mark.parametrize("seed", [1, 2])
def test_kill9_at_a_random_moment_loses_nothing_closed(
        mounter: MountFactory, backend: Backend, seed: int) -> None:
    m = mounter(backend, "--export-delay", "0.2")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(m.path)],
                              stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    first = writer.stdout.readline()  # at least one file is closed before the kill
    time.sleep(random.Random(seed).uniform(0.0, 1.0))
    m.kill9()
    out, _ = writer.communicate(timeout=30)
    closed = [int(line) for line in (first + out).split()]
    assert closed
    again = mounter(backend, mountpoint=m.path, cache=m.cache)
    assert again.flush()["ok"]
    for i in closed:
        assert backend.read(f"w{i}") == (f"{i}:" * 3000).encode()
    assert again.status()["conflicts"] == 0


def test_a_restarted_engine_lists_its_directories_again(mounter: MountFactory,
                                                       backend: Backend) -> None:
    """A listing saved by an engine that died may lack the new prefixes whose
    confirmations were still running (state/listing.py): the next run lists each
    directory again at its first look, whatever the metadata TTL."""
    backend.write("d/a", b"a")
    m = mounter(backend, "--metadata-ttl", "3600")
    assert os.listdir(m.path / "d") == ["a"]
    backend.write("d/b", b"b")
    assert os.listdir(m.path / "d") == ["a"]  # within the TTL
    m.kill9()
    again = mounter(backend, "--metadata-ttl", "3600", mountpoint=m.path, cache=m.cache)
    assert sorted(os.listdir(again.path / "d")) == ["a", "b"]


def _request(method: bytes, key: str, holding: bytes = b"") -> Callable[[bytes], bool]:
    """Matches an HTTP request ``method`` of the object ``key`` (path style, as on
    MinIO) whose bytes hold ``holding``; a POST ``?delete`` (obstore's DELETE) names
    the key in its body."""
    def matches(request: bytes) -> bool:
        line = request.split(b"\r\n", 1)[0].split(b" ")
        if len(line) != 3 or line[0] != method or holding not in request.lower():
            return False
        if method == b"POST":
            return line[1].endswith(b"?delete") and b"<Key>%s</Key>" % key.encode() in request
        return line[1].split(b"?")[0].endswith(b"/" + key.encode())
    return matches


@pytest.mark.s3
@pytest.mark.parametrize("cut", ["copy", "delete"])
def test_a_kill9_inside_a_fenced_step_leaves_no_fence_after_the_replay(
        mounter: MountFactory, s3_backend: Backend, cut: str) -> None:
    """A rename on S3 is a fence PUT at the target, the COPY, a fence PUT over the
    source, its DELETE (bucket/fence.py). The engine dies after a fence PUT, its next
    request never sent (a proxy holds it). The remount's journal replay finishes the
    rename and removes the dead run's fence, which names its maker: before, the fence
    stayed for fence.STALE seconds, hiding the key and failing every create there
    (found by test_reference_model: a fence at a rename's source)."""
    bucket = s3_backend.bucket
    proxy = HoldingProxy(bucket.server.port)
    try:
        via = Backend("s3", s3_backend.url, s3_backend.env, ["--endpoint", proxy.url],
                      bucket=bucket)
        m = mounter(via, "--export-delay", "3600")
        (m.path / "a").write_bytes(b"renamed bytes")
        assert m.flush()["ok"] and bucket.get("a") == b"renamed bytes"
        proxy.hold(_request(b"PUT", "b", b"x-amz-copy-source") if cut == "copy"
                   else _request(b"POST", "a"))
        os.rename(m.path / "a", m.path / "b")
        assert proxy.held.wait(30), "the engine sent no such request"
        fenced = "b" if cut == "copy" else "a"
        assert bucket.get(fenced) == fence.FENCE  # what the crash leaves in the bucket
        m.kill9()
    finally:
        proxy.close()
    again = mounter(s3_backend, "--export-delay", "3600", mountpoint=m.path, cache=m.cache)
    assert again.flush()["ok"]
    assert [k for k in bucket.keys() if not k.startswith(".openfiles-meta")] == ["b"]
    assert bucket.get("b") == b"renamed bytes"
    assert (again.path / "b").read_bytes() == b"renamed bytes"
    (again.path / "a").write_bytes(b"a new file where the fence was")
    assert again.flush()["ok"] and again.status()["conflicts"] == 0
    assert bucket.get("a") == b"a new file where the fence was"


def test_sigterm_exports_before_unmount(mounter: MountFactory, backend: Backend) -> None:
    m = mounter(backend, "--export-delay", "3600")
    (m.path / "late.txt").write_bytes(b"exported at unmount")
    assert m.stop() == 0
    assert backend.read("late.txt") == b"exported at unmount"


def test_status_and_policy(mounter: MountFactory, backend: Backend) -> None:
    m = mounter(backend, "--export-delay", "3600")
    (m.path / "d.txt").write_bytes(b"12345")
    st = m.status()
    assert (st["dirty_files"], st["dirty_bytes"], st["pending_exports"]) == (1, 5, 1)
    assert st["conditional_writes"] == ("create-only" if backend.kind in ("file", "gs") else "full")
    assert st["source"] == backend.url
    assert st["fuse_latency"]["count"] > 0
    for secret in backend.env.values():
        if "SECRET" in secret or len(secret) > 20:
            assert secret not in str(st)
    reply = m.policy(export_delay="0s", cache_size="1Mi")
    assert reply["ok"] and reply["policy"]["cache_size"] == 2**20
    assert not m.policy(cache_size="lots")["ok"]
    deadline = time.monotonic() + 20
    while "d.txt" not in user_keys(backend) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert backend.read("d.txt") == b"12345"  # the new export delay took effect live


def test_status_tells_the_age_of_the_oldest_dirty_file(mounter: MountFactory,
                                                       backend: Backend) -> None:
    m = mounter(backend, "--export-delay", "3600")
    st = m.status()
    assert (st["oldest_dirty_seconds"], st["journal_entries"]) == (0, 0)
    assert (st["last_export_error"], st["last_export_error_time"]) == (None, None)
    (m.path / "old.txt").write_bytes(b"1")
    time.sleep(1.5)
    (m.path / "new.txt").write_bytes(b"2")
    assert 1.4 <= m.status()["oldest_dirty_seconds"] < 30
    assert m.flush()["ok"]
    assert m.status()["oldest_dirty_seconds"] == 0


def test_cli_flush_and_status(mounter: MountFactory, file_backend: Backend) -> None:
    m = mounter(file_backend, "--export-delay", "3600")
    (m.path / "x").write_bytes(b"x")
    cli = [sys.executable, "-m", "openfiles_cli"]
    out = subprocess.run([*cli, "status", str(m.path), "--control-socket", str(m.sock)],
                         capture_output=True, text=True, check=True).stdout
    assert "dirty_files:       1" in out
    subprocess.run([*cli, "flush", str(m.path), "--control-socket", str(m.sock)], check=True)
    assert file_backend.read("x") == b"x"
    bad = subprocess.run([*cli, "flush", str(m.path), "--control-socket", "/nonexistent"],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "no engine answers" in bad.stderr


def test_bad_source_fails_clearly(mounter: MountFactory, file_backend: Backend,
                                  tmp_path: object) -> None:
    file_backend.url = "ftp://nowhere/x"
    m = mounter(file_backend, wait=False)
    assert m.proc.wait(timeout=30) == 1
    assert "unsupported URL scheme" in m.log_text()


def test_credentials_never_logged(mounter: MountFactory, s3_backend: Backend) -> None:
    m = mounter(s3_backend, "--export-delay", "0")
    (m.path / "a").write_bytes(b"a")
    assert m.flush()["ok"]
    secret = s3_backend.env["AWS_SECRET_ACCESS_KEY"]
    assert secret not in m.log_text()
    assert secret not in " ".join(m.args)


test_credentials_never_logged = pytest.mark.s3(test_credentials_never_logged)


def test_background_mode_detaches_and_unmounts_on_sigterm(
        file_backend: Backend, tmp_path: Path) -> None:
    mnt = tmp_path / "bg"
    mnt.mkdir()
    sock = tmp_path / "bg.sock"
    cache = tmp_path / "bg-cache"
    subprocess.run([sys.executable, "-m", "openfiles_cli", "mount", file_backend.url, str(mnt),
                    "--cache-dir", str(cache), "--control-socket", str(sock)],
                   check=True, timeout=60)  # returns once the mount is ready
    try:
        assert str(mnt) in fuse_mounts()
        (mnt / "bg.txt").write_bytes(b"from the background")
        from openfiles_contracts.jsonline import request

        os.kill(request(str(sock), {"op": "status"})["status"]["pid"], signal.SIGTERM)
        deadline = time.monotonic() + 30
        while str(mnt) in fuse_mounts() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert str(mnt) not in fuse_mounts()
        assert file_backend.read("bg.txt") == b"from the background"
        assert (cache / "engine.log").exists()
    finally:
        if str(mnt) in fuse_mounts():
            lazy_unmount(str(mnt))



def test_a_live_mount_is_never_cleared(mounter: MountFactory, file_backend: Backend,
                                       tmp_path: Path) -> None:
    m = mounter(file_backend)
    (m.path / "still.txt").write_bytes(b"here")
    second = mounter(file_backend, mountpoint=m.path, cache=tmp_path / "other-cache",
                     wait=False)
    assert second.proc.wait(timeout=30) == 1
    assert "already a live FUSE mount" in second.log_text()
    assert (m.path / "still.txt").read_bytes() == b"here"


def test_sigterm_as_soon_as_the_mount_appears_still_unmounts(
        mounter: MountFactory, file_backend: Backend) -> None:
    """The mount exists before trio listens for signals: a SIGTERM in that window (a
    mounter stopping everything just then) must not leave a dead mount behind."""
    for attempt in range(3):
        m = mounter(file_backend, name=f"early{attempt}", wait=False)
        deadline = time.monotonic() + 60
        while str(m.path) not in fuse_mounts():  # no sleep: hit the window if we can
            assert m.proc.poll() is None, m.log_text()
            assert time.monotonic() < deadline, m.log_text()
        m.proc.send_signal(signal.SIGTERM)
        assert m.proc.wait(timeout=60) == 0, m.log_text()
        assert str(m.path) not in fuse_mounts(), m.log_text()


def flush_only(backend: Backend, cache: Path, mountpoint: Path, *args: str,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``openfiles mount --flush-only`` on ``cache``, as the CSI mounter runs it."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    child_env.update(env if env is not None else backend.env)
    return subprocess.run(
        [sys.executable, "-m", "openfiles_cli", "mount", backend.url, str(mountpoint),
         "--cache-dir", str(cache), "--fsid", "test", "--flush-only", *backend.args, *args],
        capture_output=True, text=True, env=child_env, timeout=120)


def test_flush_only_exports_a_dead_engines_cache(mounter: MountFactory,
                                                 backend: Backend) -> None:
    backend.write("old/name.txt", b"renamed content")
    m = mounter(backend, "--export-delay", "3600")
    for i in range(5):
        (m.path / f"f{i}.txt").write_bytes(f"file {i}".encode())
    os.rename(m.path / "old", m.path / "new")
    assert m.status()["oldest_dirty_seconds"] >= 0
    m.kill9()
    lazy_unmount(str(m.path))
    # No credentials; an Azure account's name is where the container is, not a secret.
    where = {k: v for k, v in backend.env.items() if k == "AZURE_STORAGE_ACCOUNT_NAME"}
    counted = flush_only(backend, m.cache, m.path, "--unmount-timeout", "0", env=where)
    assert counted.returncode == 3, counted.stderr  # no credentials: count, send nothing
    report = json.loads(counted.stdout)
    assert (report["dirty_files"], report["dirty_bytes"]) == (5, sum(
        len(f"file {i}") for i in range(5)))
    assert "f0.txt" not in user_keys(backend)
    done = flush_only(backend, m.cache, m.path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"dirty_files": 0, "dirty_bytes": 0, "pending_exports": 0,
                                       "conflicts": 0, "lostfound_files": 0,
                                       "lostfound_bytes": 0, "error": None}
    assert str(m.path) not in fuse_mounts()  # nothing was mounted
    for i in range(5):
        assert backend.read(f"f{i}.txt") == f"file {i}".encode()
    assert backend.read("new/name.txt") == b"renamed content"
    assert "old/name.txt" not in user_keys(backend)
    again = flush_only(backend, m.cache, m.path)  # nothing left: a no-op
    assert again.returncode == 0 and json.loads(again.stdout)["dirty_files"] == 0


def test_a_data_file_whose_inode_has_no_row_is_dropped_at_start(
        mounter: MountFactory, file_backend: Backend) -> None:
    """Bytes fetched for an entry a listing imported, read before its row was written
    (``StateDB.save`` with ``later``), have no row after a kill -9: the next start
    drops them, while a file the mount wrote keeps its bytes."""
    m = mounter(file_backend, "--export-delay", "3600")
    (m.path / "kept.txt").write_bytes(b"written here")
    m.kill9()
    lazy_unmount(str(m.path))
    stray = m.cache / "data" / "987654"
    stray.write_bytes(b"x" * 4096)
    done = flush_only(file_backend, m.cache, m.path)
    assert done.returncode == 0, done.stderr
    assert not stray.exists()
    assert file_backend.read("kept.txt") == b"written here"


@pytest.mark.s3
def test_flush_only_with_the_bucket_down_says_what_is_left(
        mounter: MountFactory, s3_backend: Backend, tmp_path: Path) -> None:
    m = mounter(s3_backend, "--export-delay", "3600")
    (m.path / "kept.txt").write_bytes(b"k" * 1000)
    (m.path / "also.txt").write_bytes(b"a" * 24)
    m.kill9()
    lazy_unmount(str(m.path))
    down = Backend("s3", s3_backend.url, s3_backend.env,
                   ["--endpoint", f"http://127.0.0.1:{free_port()}"], bucket=s3_backend.bucket)
    left = flush_only(down, m.cache, m.path, "--unmount-timeout", "3s")
    assert left.returncode == 3, left.stderr
    report = json.loads(left.stdout)
    assert (report["dirty_files"], report["dirty_bytes"]) == (2, 1024)
    assert report["error"]
    assert s3_backend.env["AWS_SECRET_ACCESS_KEY"] not in left.stdout + left.stderr
    assert "kept.txt" not in user_keys(s3_backend)
    done = flush_only(s3_backend, m.cache, m.path)  # the bucket is back
    assert done.returncode == 0, done.stderr
    assert s3_backend.read("kept.txt") == b"k" * 1000


def test_a_previous_runs_dirty_files_are_exported_at_once(mounter: MountFactory,
                                                          file_backend: Backend) -> None:
    """Files left dirty by a crash are due at the next mount whatever the export delay
    (and however long the machine has been up: the delay runs on a monotonic clock)."""
    m = mounter(file_backend, "--export-delay", "3600")
    (m.path / "left.txt").write_bytes(b"left dirty by a crash")
    time.sleep(1.1)
    lag = m.status()["oldest_dirty_seconds"]
    assert 1.0 <= lag < 60
    m.kill9()
    again = mounter(file_backend, "--export-delay", "3600", mountpoint=m.path, cache=m.cache)
    deadline = time.monotonic() + 20
    while "left.txt" not in user_keys(file_backend) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert file_backend.read("left.txt") == b"left dirty by a crash"
    st = again.status()
    assert (st["dirty_files"], st["oldest_dirty_seconds"]) == (0, 0.0)
    assert (again.path / "left.txt").read_bytes() == b"left dirty by a crash"
    st = again.status()
    assert st["hit_bytes"] + st["miss_bytes"] >= len(b"left dirty by a crash")


def test_an_export_that_lands_while_a_listing_reads_is_not_undone(tmp_path: Path) -> None:
    """The listing read the bucket before an export landed and merges after it: a new
    file must not be dropped as gone, nor an updated one take the older ETag it read
    (found by the reference model: after a kill -9 the remount's export of a new file
    raced the first lookup, and the file vanished from the mount while the bucket had
    it). An Engine's parts as it wires them, on a MemoryStore, no FUSE."""
    engine = Engine(MountConfig(source="memory://", mountpoint=str(tmp_path / "mnt"),
                                cache_dir=str(tmp_path / "cache"), fsid="t"),
                    Store.open("memory://"))
    tree = engine.tree
    old = tree.add(ROOT, "old", "file", mode=0o644, uid=0, gid=0, size=2, dirty=True,
                   data_dirty=True, full=True)
    engine.data.write(old.ino, 0, b"v1")
    trio.run(engine.exporter.flush)
    engine.data.write(old.ino, 0, b"v2")
    old.mark_dirty(data=True)
    new = tree.add(ROOT, "new", "file", mode=0o644, uid=0, gid=0, dirty=True,
                   data_dirty=True, full=True)
    listed = engine.store.list_dir

    async def list_then_export(prefix: str) -> tuple[list[ObjectInfo], list[str]]:
        reply = await listed(prefix)
        if prefix == "" and new.dirty:  # read before the exports; now they land
            await engine.exporter.export(new)
            await engine.exporter.export(old)
        return reply

    engine.store.list_dir = list_then_export  # type: ignore[method-assign]
    try:
        trio.run(engine.lister.ensure, tree.nodes[ROOT], 0.0)
        assert tree.find("new") is new and not new.dirty
        assert tree.find("old") is old and not old.dirty
        assert old.etag == engine.store.sync.head("old").etag
    finally:
        trio.run(engine.flush_only)  # closes the cache and the database
