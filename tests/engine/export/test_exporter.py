"""Export when the bucket goes away: writes keep working, exports retry and resume."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from fixtures.minio import MinioServer, new_bucket
from fixtures.net import wait_for
from openfiles_engine.bucket import store as store_mod
from openfiles_engine.bucket.asyncstore import AsyncStore
from openfiles_engine.bucket.layout import Sidecar, sidecar_key
from openfiles_engine.bucket.store import Store
from openfiles_engine.cache.datafile import DataFiles
from openfiles_engine.config import Credentials, Policy
from openfiles_engine.export import exporter as export
from openfiles_engine.export.exporter import Exporter
from openfiles_engine.export.lostfound import ORIGINAL_PATH_XATTR, LostFound
from openfiles_engine.state.db import StateDB
from openfiles_engine.state.inode import ROOT, Node
from openfiles_engine.state.journal import Journal, Version
from openfiles_engine.state.tree import Defaults, Tree

from ..conftest import Backend, Mount, MountFactory, fresh


class Rig:
    """An Exporter on a MemoryStore, with everything it needs and no FUSE."""

    def __init__(self, tmp_path: Path) -> None:
        self.store = Store.open("memory://")
        db = StateDB(str(tmp_path / "m.sqlite"))
        self.tree = Tree(db, Defaults(0, 0, 0o644, 0o755), "t")
        self.data = DataFiles(str(tmp_path / "data"))
        self.journal = Journal(db)
        self.invalidated: list[tuple[int, str]] = []
        self.lostfound = LostFound(self.tree, lambda p, n: self.invalidated.append((p, n)))
        self.exporter = Exporter(self.tree, AsyncStore(self.store), self.data, self.journal,
                                 self.lostfound, Policy(export_delay=0))

    def new_file(self, name: str, data: bytes, etag: str | None = None) -> Node:
        node = self.tree.add(ROOT, name, "file", mode=0o644, uid=0, gid=0, size=len(data),
                             dirty=True, data_dirty=True, full=True, etag=etag)
        self.data.write(node.ino, 0, data)
        return node

    def flush(self) -> None:
        trio.run(self.exporter.flush)


def test_export_creates_then_updates_conditionally(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    node = rig.new_file("a", b"one")
    rig.flush()
    assert rig.store.get("a") == b"one" and not node.dirty and node.etag
    rig.data.write(node.ino, 0, b"two")
    node.dirty = node.data_dirty = True
    rig.flush()
    assert rig.store.get("a") == b"two"
    assert rig.lostfound.count == 0
    assert [o.key for o in rig.store.list_all("")] == ["a"]  # defaults: no sidecar


def test_failed_precondition_moves_the_local_file_to_lost_and_found(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    node = rig.new_file("c", b"mine")
    rig.flush()
    rig.store.put_bytes("c", b"theirs", if_match=None, create=False)
    rig.data.write(node.ino, 0, b"MINE")
    node.dirty = node.data_dirty = True
    rig.flush()
    assert rig.store.get("c") == b"theirs"
    assert node.lost and node.parent == rig.tree.lostfound.ino
    assert node.xattrs[ORIGINAL_PATH_XATTR] == b"c"
    assert rig.lostfound.count == 1 and rig.invalidated == [(ROOT, "c")]
    assert rig.exporter.dirty() == []  # never exported again


def test_same_bytes_after_a_crash_is_not_a_conflict(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.store.put_bytes("d", b"same", if_match=None, create=True)  # our PUT, ETag lost
    node = rig.new_file("d", b"same")
    rig.flush()
    assert not node.lost and not node.dirty and rig.lostfound.count == 0


def test_sidecar_follows_the_attributes(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    node = rig.new_file("s", b"x")
    node.mode = 0o600
    rig.flush()
    sc = Sidecar.decode(rig.store.get(sidecar_key("s")), "s")
    assert sc is not None and sc.mode == 0o600 and sc.etag == node.etag
    node.mode = 0o644
    node.dirty = True  # attributes only: no new upload of the bytes
    rig.flush()
    assert [o.key for o in rig.store.list_all("")] == ["s"]


class PausedStore(AsyncStore):
    """The real store behind a gate: each PUT waits for ``go`` (an export in flight)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.waiting = trio.Event()
        self.go = trio.Event()
        self.puts: list[str] = []

    async def put_bytes(self, key: str, data: bytes, *, if_match: str | None,
                        create: bool) -> str | None:
        await self._gate(key)
        return await super().put_bytes(key, data, if_match=if_match, create=create)

    async def put_file(self, key: str, path: str, *, if_match: str | None,
                       create: bool) -> str | None:
        await self._gate(key)
        return await super().put_file(key, path, if_match=if_match, create=create)

    async def _gate(self, key: str) -> None:
        self.puts.append(key)
        self.waiting.set()
        await self.go.wait()


@pytest.mark.parametrize("during", ["chmod", "write"])
def test_a_change_during_an_export_keeps_the_node_dirty(tmp_path: Path, during: str) -> None:
    """A chmod while the sidecar PUT is in flight, or a write while the PUT of the
    bytes is: the export does not mark the node clean, and the next one sends only
    what changed (the sidecar again, not the bytes, after a chmod)."""
    rig = Rig(tmp_path)
    node = rig.new_file("p", b"one")
    rig.flush()
    store = PausedStore(rig.store)
    rig.exporter.store = store
    node.mode = 0o640
    node.mark_dirty(data=during == "write")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rig.exporter.export, node)
            await store.waiting.wait()
            if during == "chmod":
                node.mode = 0o600
                node.mark_dirty(data=False)
            else:
                rig.data.write(node.ino, 0, b"two")
                node.mark_dirty(data=True)
            store.go.set()
        assert node.dirty and node.data_dirty == (during == "write")
        await rig.exporter.flush()

    trio.run(main)
    assert not node.dirty and not node.data_dirty
    sc = Sidecar.decode(rig.store.get(sidecar_key("p")), "p")
    assert sc is not None and sc.mode == (0o600 if during == "chmod" else 0o640)
    if during == "chmod":
        assert store.puts == [sidecar_key("p")] * 2
        assert rig.store.get("p") == b"one"
    else:
        assert store.puts == ["p", sidecar_key("p"), "p", sidecar_key("p")]
        assert rig.store.get("p") == b"two" and sc.etag == node.etag


def test_big_exports_take_turns_and_small_ones_do_not_wait_for_them(tmp_path: Path) -> None:
    """At most BIG_AT_ONCE files of BIG bytes or more are uploaded at once (each holds
    its body, up to 64 MiB, in memory); a small file due in the same pass goes at once."""
    rig = Rig(tmp_path)
    for n in range(export.BIG_AT_ONCE + 2):
        rig.new_file(f"big{n}", bytes([n]) * export.BIG)
    rig.new_file("small", b"s")
    store = PausedStore(rig.store)
    rig.exporter.store = store

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(rig.exporter.export_due, force=True))
            await store.waiting.wait()
            await trio.sleep(0.2)  # every export that may start has reached the gate
            assert len(store.puts) == export.BIG_AT_ONCE + 1 and "small" in store.puts
            store.go.set()

    trio.run(main)
    assert sorted(store.puts) == sorted([*(f"big{n}" for n in range(export.BIG_AT_ONCE + 2)),
                                         "small"])
    assert not rig.exporter.dirty()


def test_store_errors_are_recorded_and_leave_the_file_dirty(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    node = rig.new_file("e", b"x")

    def broken(*args: object, **kwargs: object) -> None:
        raise store_mod.StoreError("bucket unreachable")

    rig.store.put_file = broken  # type: ignore[method-assign,assignment]
    with pytest.raises(store_mod.StoreError):
        rig.flush()
    assert node.dirty and rig.exporter.last_error == "bucket unreachable"
    assert rig.exporter.errors == 1
    assert abs(rig.exporter.last_error_time - time.time()) < 60



@pytest.mark.fuse
@pytest.mark.s3
@pytest.mark.timeout(240)
def test_minio_stopped_mid_export_then_restarted(
        mounter: MountFactory, make_minio: Callable[[], MinioServer]) -> None:
    server = make_minio()
    bucket = new_bucket(server)
    backend = Backend.on_s3(bucket)
    backend.write("cached.txt", b"cached before the outage")
    m = mounter(backend, "--export-delay", "0.5", "--metadata-ttl", "1")
    assert (m.path / "cached.txt").read_bytes() == b"cached before the outage"
    server.stop()
    time.sleep(1.5)  # past the metadata TTL: lookups and opens would ask the bucket
    # Writes and cached reads keep working while the bucket is gone.
    assert "cached.txt" in os.listdir(m.path)
    assert (m.path / "cached.txt").read_bytes() == b"cached before the outage"
    for i in range(5):
        (m.path / f"during-{i}.txt").write_bytes(f"written during outage {i}".encode())
    wait_for(lambda: m.status()["last_export_error"], timeout=60, what="an export error")
    st = m.status()
    assert st["dirty_files"] == 5 and st["export_errors"] > 0
    assert bucket.server.secret_key not in str(st)
    flush = m.flush(timeout=20)
    assert not flush["ok"]
    server.start()
    # No flush: the export loop's retry finds the bucket again by itself.
    wait_for(lambda: m.status()["dirty_files"] == 0, timeout=120, what="exports to resume")
    for i in range(5):
        assert backend.read(f"during-{i}.txt") == f"written during outage {i}".encode()
    assert m.status()["last_export_error"] is None
    assert m.status()["conflicts"] == 0


@pytest.mark.fuse
@pytest.mark.s3
@pytest.mark.timeout(240)
def test_unmount_with_bucket_down_keeps_dirty_data(
        mounter: MountFactory, make_minio: Callable[[], MinioServer]) -> None:
    server = make_minio()
    bucket = new_bucket(server)
    backend = Backend.on_s3(bucket)
    m = mounter(backend, "--export-delay", "3600", "--unmount-timeout", "5")
    (m.path / "pending.txt").write_bytes(b"not yet in the bucket")
    server.stop()
    started = time.monotonic()
    assert m.stop() == 1  # export failed: non-zero, but bounded by the timeout
    assert time.monotonic() - started < 60
    server.start()
    again = mounter(backend, mountpoint=m.path, cache=m.cache)
    assert again.flush()["ok"]
    assert backend.read("pending.txt") == b"not yet in the bucket"


@pytest.mark.fuse
@pytest.mark.timeout(120)
def test_a_file_open_for_writing_waits_for_close_or_a_pause(mounter: MountFactory,
                                                             backend: Backend) -> None:
    """With --export-delay 0 a file still being written is not uploaded between two
    writes; closing it exports it at once, and a writer that pauses for
    OPEN_WRITER_DELAY gets its data exported while the file stays open."""
    m = mounter(backend, "--export-delay", "0")
    fd = os.open(m.path / "growing", os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        for i in range(5):
            os.write(fd, b"x" * 1000)
            time.sleep(0.3)
            assert "growing" not in backend.keys(), f"exported while open, after write {i}"
        wait_for(lambda: "growing" in backend.keys() and backend.read("growing") == b"x" * 5000,
                 timeout=export.OPEN_WRITER_DELAY + 20, what="the export of a paused writer")
        os.write(fd, b"y")
    finally:
        os.close(fd)
    wait_for(lambda: backend.read("growing") == b"x" * 5000 + b"y", timeout=10,
             what="the export at close")
    with open(m.path / "closed-at-once", "wb") as f:
        f.write(b"z")
    wait_for(lambda: "closed-at-once" in backend.keys(), timeout=2,
             what="the export right after close")


# Every change of the bucket is conditional on the version last seen (issue 12,
# defect 4). The second writer is a plain PUT straight into MinIO or Azurite; a long
# metadata TTL keeps the engine from re-listing, so it still holds the old ETag.
SEEN_ONCE = ("--export-delay", "3600", "--metadata-ttl", "3600")


def seen_then_replaced(mounter: MountFactory, backend: Backend, objects: dict[str, bytes],
                       key: str) -> Mount:
    """A mount that has read ``objects`` whole; then another writer replaces ``key``."""
    for k, data in objects.items():
        backend.write(k, data)
    m = mounter(backend, *SEEN_ONCE)
    for k, data in objects.items():
        assert (m.path / k).read_bytes() == data
    backend.write(key, b"theirs")
    return m


@pytest.mark.fuse
@pytest.mark.timeout(120)
def test_unlink_of_an_object_replaced_elsewhere_keeps_the_bucket_version(
        mounter: MountFactory, server_backend: Backend) -> None:
    m = seen_then_replaced(mounter, server_backend, {"f": b"v1"}, "f")
    (m.path / "f").unlink()
    assert m.flush()["ok"]
    assert server_backend.read("f") == b"theirs"
    assert m.status()["conflicts"] == 1
    assert "conflict: kept 'f' replaced in the bucket" in m.log_text()


@pytest.mark.fuse
@pytest.mark.timeout(120)
@pytest.mark.parametrize(("objects", "replaced", "move", "after", "conflicts"), [
    # The source is not moved; the local bytes (whole in the cache) still reach b.
    ({"a": b"v1"}, "a", ("a", "b"), {"a": b"theirs", "b": b"v1"}, 1),
    # The target is not overwritten and the source not moved (the target's delete
    # and the move are two conflicts).
    ({"src": b"mine", "dst": b"old"}, "dst", ("src", "dst"),
     {"src": b"mine", "dst": b"theirs"}, 2),
    # A directory moves, except the object replaced in it.
    ({"d/keep": b"k", "d/x": b"v1"}, "d/x", ("d", "e"),
     {"d/x": b"theirs", "e/keep": b"k", "d/keep": None}, 1),
], ids=["source", "target", "directory"])
def test_rename_never_moves_or_overwrites_a_version_replaced_elsewhere(
        mounter: MountFactory, server_backend: Backend, objects: dict[str, bytes], replaced: str,
        move: tuple[str, str], after: dict[str, bytes | None], conflicts: int) -> None:
    m = seen_then_replaced(mounter, server_backend, objects, replaced)
    (m.path / move[0]).rename(m.path / move[1])
    assert m.flush()["ok"]
    there = server_backend.keys()
    assert {k: server_backend.read(k) if k in there else None for k in after} == after
    assert m.status()["conflicts"] == conflicts


@pytest.mark.fuse
@pytest.mark.timeout(120)
def test_sidecar_changed_elsewhere_is_not_overwritten(
        mounter: MountFactory, server_backend: Backend) -> None:
    m = mounter(server_backend, *SEEN_ONCE)
    (m.path / "s").write_bytes(b"x")
    os.chmod(m.path / "s", 0o600)
    assert m.flush()["ok"]
    sc = Sidecar.decode(server_backend.read(sidecar_key("s")), "s")
    assert sc is not None and sc.mode == 0o600
    sc.mode = 0o640
    theirs = sc.encode()
    server_backend.write(sidecar_key("s"), theirs)
    os.chmod(m.path / "s", 0o604)
    assert m.flush()["ok"]
    assert server_backend.read(sidecar_key("s")) == theirs
    assert m.status()["conflicts"] == 1


def _failing_entry_rig(tmp_path: Path, url: str, **open_args: Any) -> Rig:
    rig = Rig(tmp_path)
    rig.store = Store.open(url, **open_args)
    rig.exporter.store = AsyncStore(rig.store)
    etag = rig.store.put_bytes("x", b"x", if_match=None, create=True)
    # No store takes a key with a 1100-byte segment: this entry fails every time.
    rig.journal.add("rename", "x", "d/" + "n" * 1100,
                    seen={"": Version(etag, False)})
    return rig


@pytest.mark.parametrize("kind", ["file", pytest.param("s3", marks=pytest.mark.s3)])
def test_fsync_needs_only_the_journal_entries_of_its_path(
        tmp_path: Path, kind: str, request: pytest.FixtureRequest) -> None:
    """Issue 12, defect 5: an unrelated journal entry that fails does not fail fsync."""
    if kind == "file":
        rig = _failing_entry_rig(tmp_path, f"file://{tmp_path}/bucket")
    else:
        bucket = request.getfixturevalue("s3_bucket")
        rig = _failing_entry_rig(tmp_path, bucket.url, endpoint=bucket.endpoint,
                                 credentials=Credentials(bucket.env["AWS_ACCESS_KEY_ID"],
                                                         bucket.env["AWS_SECRET_ACCESS_KEY"]))
    node = rig.new_file("f", b"mine")
    trio.run(rig.exporter.export, node)  # fsync's export
    assert rig.store.get("f") == b"mine" and not node.dirty
    assert len(rig.journal) == 1 and rig.store.get("x") == b"x"
    with pytest.raises(store_mod.StoreError):
        rig.flush()  # a flush still owes the entry and says so


def saved_on_own_minio(mounter: MountFactory, make_minio: Callable[[], MinioServer],
                       name: str, data: bytes, delay: str) -> tuple[MinioServer, Backend, Mount]:
    """A mount on a MinIO of its own (to pause) where ``name`` holds ``data``, exported."""
    server = make_minio()
    backend = Backend.on_s3(new_bucket(server))
    m = mounter(backend, "--export-delay", delay, "--metadata-ttl", "3600")
    (m.path / name).write_bytes(data)
    assert m.flush()["ok"]
    return server, backend, m


@pytest.mark.fuse
@pytest.mark.s3
@pytest.mark.timeout(240)
def test_changes_made_while_an_export_is_in_flight_reach_the_bucket(
        mounter: MountFactory, make_minio: Callable[[], MinioServer]) -> None:
    """A chmod, a setxattr and a utime of a file, and a new entry in a directory, that
    land while the export of that file or directory waits on the bucket (MinIO paused
    with SIGSTOP) are exported too: the export does not mark them clean."""
    server, backend, m = saved_on_own_minio(mounter, make_minio, "f", b"data", "3600")
    f, d = m.path / "f", m.path / "d"
    os.chmod(f, 0o640)  # its export is the sidecar PUT alone
    d.mkdir()
    assert server.proc is not None
    first: dict[str, object] = {}
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        flushing = threading.Thread(target=lambda: first.update(m.flush(timeout=60)))
        flushing.start()
        time.sleep(1.0)  # the PUTs of the sidecars of f and d now wait on MinIO
        changed_at = time.time_ns()
        os.chmod(f, 0o600)
        os.setxattr(f, "user.k", b"v")
        os.utime(f, ns=(1_600_000_000 * 10**9, 1_600_000_000 * 10**9))
        (d / "new").write_bytes(b"")
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    flushing.join(timeout=90)
    assert first, "the first flush never returned"
    assert m.flush()["ok"], m.log_text()[-3000:]
    sc = Sidecar.decode(backend.read(sidecar_key("f")), "f")
    assert sc is not None
    assert (sc.mode, sc.xattrs, sc.mtime_ns) == (0o600, {"user.k": b"v"}, 1_600_000_000 * 10**9)
    assert backend.read("f") == b"data"
    sd = Sidecar.decode(backend.read(sidecar_key("d")), "d")
    assert sd is not None and sd.mtime_ns >= changed_at  # the new entry's mtime
    assert "d/new" in backend.keys()


def lost_entries(m: Mount) -> list[str]:
    return [n for d in m.path.glob(".openfiles-lost+found-*") for n in os.listdir(d)]


@pytest.mark.fuse
@pytest.mark.s3
@pytest.mark.timeout(240)
def test_an_atomic_save_over_a_file_whose_export_is_in_flight_wins(
        mounter: MountFactory, make_minio: Callable[[], MinioServer]) -> None:
    """``mv t.tmp t`` while the PUT of ``t``'s last save waits on the bucket (MinIO
    paused with SIGSTOP): the rename waits for that export, so the delete it journals
    is conditional on the ETag that PUT lands, and the new file takes the key. No
    conflict, nothing in lost+found, the bucket holds the new bytes at ``t``."""
    server, backend, m = saved_on_own_minio(mounter, make_minio, "t", b"first", "0")
    t, tmp = m.path / "t", m.path / "t.tmp"
    assert server.proc is not None
    done: list[BaseException | None] = []

    def move() -> None:
        try:
            os.rename(tmp, t)
            done.append(None)
        except BaseException as exc:
            done.append(exc)

    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        t.write_bytes(b"second")  # closed: its export starts at once, and waits on MinIO
        time.sleep(1.0)
        tmp.write_bytes(b"third")
        mover = threading.Thread(target=move)
        mover.start()
        time.sleep(0.5)
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    mover.join(timeout=90)
    assert done == [None]
    assert m.flush()["ok"], m.log_text()[-3000:]
    assert backend.read("t") == b"third" and "t.tmp" not in backend.keys()
    assert m.status()["conflicts"] == 0 and lost_entries(m) == []
    assert t.read_bytes() == b"third"


@pytest.mark.fuse
@pytest.mark.timeout(240)
def test_an_atomic_save_over_a_large_new_file_being_exported_wins(
        mounter: MountFactory, file_backend: Backend) -> None:
    """The same on ``file://`` (no bucket to pause): a 60 MiB ``t`` whose first export
    starts at close, then ``mv t.tmp t`` at once, several times over. Before the
    rename waited for that export, its ETag was still unknown, no delete was journalled
    and the new file's create-only PUT lost to the old one (lost+found)."""
    m = mounter(file_backend, "--export-delay", "0", "--metadata-ttl", "3600")
    big = os.urandom(60 * 2**20)
    for round_ in range(3):
        t, tmp = m.path / f"t{round_}", m.path / f"t{round_}.tmp"
        t.write_bytes(big)
        time.sleep(0.05 * round_)
        tmp.write_bytes(b"new")
        os.rename(tmp, t)
    assert m.flush()["ok"], m.log_text()[-3000:]
    for round_ in range(3):
        assert file_backend.read(f"t{round_}") == b"new"
    assert m.status()["conflicts"] == 0 and lost_entries(m) == []


@pytest.mark.fuse
@pytest.mark.timeout(120)
def test_a_replayed_move_updates_the_node_it_moved_not_a_new_one_at_its_target(
        mounter: MountFactory, backend: Backend) -> None:
    """A rename replayed while a later rename still moves its node on gives the new
    version to that node, not to a new file that took the name meanwhile."""
    m = mounter(backend, *SEEN_ONCE)
    (m.path / "a").write_bytes(b"old")
    assert m.flush()["ok"]
    (m.path / "a").rename(m.path / "b")
    (m.path / "b").rename(m.path / "c")
    (m.path / "b").write_bytes(b"new")
    assert m.flush()["ok"], m.log_text()[-3000:]
    assert {k: backend.read(k) for k in backend.keys()} == {"b": b"new", "c": b"old"}
    assert (m.status()["conflicts"], m.status()["lostfound_files"]) == (0, 0)
    assert (m.path / "b").read_bytes() == b"new" and (m.path / "c").read_bytes() == b"old"


@pytest.mark.fuse
@pytest.mark.timeout(120)
def test_a_replayed_directory_move_leaves_a_new_directory_at_its_target_alone(
        mounter: MountFactory, backend: Backend) -> None:
    """The same for directories: the new ``e`` gets its own sidecar, so a fresh
    mount sees both."""
    m = mounter(backend, *SEEN_ONCE)
    (m.path / "d").mkdir()
    assert m.flush()["ok"]
    (m.path / "d").rename(m.path / "e")
    (m.path / "e").rename(m.path / "f")
    (m.path / "e").mkdir()
    assert m.flush()["ok"], m.log_text()[-3000:]
    assert m.status()["conflicts"] == 0
    assert sidecar_key("e") in backend.keys() and sidecar_key("f") in backend.keys()
    other = fresh(mounter, backend)
    assert {"e", "f"} <= set(os.listdir(other.path))
    assert "d" not in os.listdir(other.path)


def _refused_move_rig(tmp_path: Path) -> tuple[Rig, Node]:
    """A rename a -> b the bucket refuses (a was replaced there); the node is at b."""
    rig = Rig(tmp_path)
    etag = rig.store.put_bytes("a", b"mine", if_match=None, create=True)
    rig.store.put_bytes("a", b"theirs", if_match=None, create=False)
    node = rig.new_file("b", b"mine", etag=etag)
    node.dirty = node.data_dirty = False
    rig.tree.save(node)
    rig.journal.add("rename", "a", "b", seen={"": Version(etag, False)})
    return rig, node


def test_a_refused_replay_changes_the_node_in_the_commit_that_drops_the_entry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The entry's removal and the node put right at its target commit together: a
    failure (a crash) after the clash is handled leaves both as they were."""
    rig, node = _refused_move_rig(tmp_path)
    etag = node.etag
    clash = rig.exporter._clash

    def then_fail(*args: Any) -> None:
        clash(*args)
        raise RuntimeError("crash after the clash")

    monkeypatch.setattr(rig.exporter, "_clash", then_fail)
    with pytest.raises(RuntimeError):
        trio.run(rig.exporter.replay_journal)
    assert len(rig.journal) == 1 and len(rig.tree.db.journal()) == 1
    assert (node.dirty, node.etag) == (False, etag)
    assert rig.tree.db.counter("conflicts") == 0
    monkeypatch.undo()
    rig.flush()  # the entry is replayed again, in full
    assert rig.store.get("a") == b"theirs" and rig.store.get("b") == b"mine"
    assert rig.tree.db.counter("conflicts") == 1 and rig.lostfound.held() == (0, 0)


def test_a_refused_replay_leaves_a_node_that_took_the_name_since_alone(tmp_path: Path) -> None:
    """a -> b refused, but b moved on to c and y moved to b since: the refusal is
    for the node at c (b -> c is refused in turn), not for y's node at b."""
    rig, moved = _refused_move_rig(tmp_path)
    rig.tree.move(moved, ROOT, "c")
    rig.journal.add("rename", "b", "c", seen={"": Version(moved.etag, False)})
    y_etag = rig.store.put_bytes("y", b"y", if_match=None, create=True)
    y = rig.new_file("b", b"y", etag=y_etag)
    y.dirty = y.data_dirty = False
    rig.tree.save(y)
    rig.journal.add("rename", "y", "b", seen={"": Version(y_etag, False)})
    trio.run(rig.exporter.replay_journal)
    assert not y.dirty and y.etag == rig.store.head("b").etag  # no needless upload
    assert moved.dirty and moved.etag is None  # exported anew at c
    rig.flush()
    assert {k: rig.store.get(k) for k in ("a", "b", "c")} == {
        "a": b"theirs", "b": b"y", "c": b"mine"}


@pytest.mark.fuse
@pytest.mark.timeout(120)
def test_a_stale_sidecar_left_by_another_writer_is_replaced(
        mounter: MountFactory, backend: Backend) -> None:
    """A sidecar that describes another version of its object (a second writer deleted
    the object and left the sidecar) is stale by the layout rules: a new local file at
    that path replaces it instead of counting a conflict and dropping the local mode
    (found by the reference model)."""
    backend.write(sidecar_key("a"), Sidecar("file", 0o600, 0, 0, 5, etag='"gone"').encode())
    m = mounter(backend, *SEEN_ONCE)
    (m.path / "a").write_bytes(b"mine")
    os.chmod(m.path / "a", 0o640)
    assert m.flush()["ok"]
    sc = Sidecar.decode(backend.read(sidecar_key("a")), "a")
    assert sc is not None and sc.mode == 0o640
    assert m.status()["conflicts"] == 0
    fresh = mounter(backend, *SEEN_ONCE)
    assert os.stat(fresh.path / "a").st_mode & 0o777 == 0o640


@pytest.mark.fuse
@pytest.mark.timeout(120)
def test_a_new_directory_replaces_a_stale_file_sidecar(
        mounter: MountFactory, backend: Backend) -> None:
    """A file's sidecar whose object a second writer deleted is stale: a directory made
    at that path replaces it, instead of counting a conflict and dropping the directory
    from the mount and the bucket (found by the reference model)."""
    backend.write(sidecar_key("d"), Sidecar("file", 0o600, 0, 0, 5, etag='"gone"').encode())
    m = mounter(backend, *SEEN_ONCE)
    os.mkdir(m.path / "d")
    os.chmod(m.path / "d", 0o750)
    assert m.flush()["ok"]
    sc = Sidecar.decode(backend.read(sidecar_key("d")), "d")
    assert sc is not None and sc.kind == "dir" and sc.mode == 0o750
    assert m.status()["conflicts"] == 0
    assert (m.path / "d").is_dir()
    fresh = mounter(backend, *SEEN_ONCE)
    assert os.stat(fresh.path / "d").st_mode & 0o7777 == 0o750
