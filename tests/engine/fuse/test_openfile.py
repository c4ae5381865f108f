"""The rows of docs/SEMANTICS.md on file contents (openfile.py: open, read, write,
flush, release, fsync), on real FUSE mounts over file:// and MinIO."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ..conftest import Backend, MountFactory, fresh

pytestmark = [pytest.mark.fuse, pytest.mark.timeout(120)]


def test_write_read_and_lazy_import(mounter: MountFactory, backend: Backend) -> None:
    m = mounter(backend, "--export-delay", "3600")
    (m.path / "hello.txt").write_bytes(b"hello world\n")
    assert (m.path / "hello.txt").read_bytes() == b"hello world\n"
    assert "hello.txt" not in backend.keys()  # not exported before the delay
    assert m.flush()["ok"]
    assert backend.read("hello.txt") == b"hello world\n"
    other = fresh(mounter, backend)
    assert (other.path / "hello.txt").read_bytes() == b"hello world\n"
    assert os.listdir(other.path) == [".openfiles-lost+found-test", "hello.txt"] or sorted(
        os.listdir(other.path)) == [".openfiles-lost+found-test", "hello.txt"]


def test_random_write_append_overwrite_truncate(mounter: MountFactory, backend: Backend) -> None:
    m = mounter(backend)
    p = m.path / "f.bin"
    model = bytearray(os.urandom(300_000))
    p.write_bytes(model)
    with open(p, "r+b") as f:
        f.seek(1000)
        f.write(b"X" * 5000)
        model[1000:6000] = b"X" * 5000
        f.seek(0, os.SEEK_END)
        f.write(b"tail")
        model += b"tail"
    with open(p, "ab") as f:
        f.write(b"appended")
        model += b"appended"
    os.truncate(p, 200_000)
    del model[200_000:]
    os.truncate(p, 250_000)
    model += b"\0" * 50_000
    assert p.read_bytes() == model
    assert m.flush()["ok"]
    assert backend.read("f.bin") == model
    # overwrite through a new mount that imports the object lazily
    m.stop()
    other = fresh(mounter, backend)
    q = other.path / "f.bin"
    with open(q, "r+b") as f:
        f.seek(150_000)
        f.write(b"Y" * 10)
    model[150_000:150_010] = b"Y" * 10
    assert other.flush()["ok"]
    assert backend.read("f.bin") == model


def test_shorter_overwrite_truncates(mounter: MountFactory, backend: Backend) -> None:
    m = mounter(backend)
    (m.path / "t").write_bytes(b"a long first version")
    (m.path / "t").write_bytes(b"short")
    assert (m.path / "t").read_bytes() == b"short"
    assert m.flush()["ok"]
    assert backend.read("t") == b"short"


def test_fsync_exports_at_once(mounter: MountFactory, backend: Backend) -> None:
    m = mounter(backend, "--export-delay", "3600")
    fd = os.open(m.path / "synced", os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        os.write(fd, b"durable")
        os.fsync(fd)
        assert backend.read("synced") == b"durable"
    finally:
        os.close(fd)


def test_remote_change_seen_after_metadata_ttl(mounter: MountFactory, backend: Backend) -> None:
    backend.write("shared.txt", b"v1")
    m = mounter(backend, "--metadata-ttl", "1")
    assert (m.path / "shared.txt").read_bytes() == b"v1"
    backend.write("shared.txt", b"version-2")
    backend.write("new.txt", b"n")
    import time

    time.sleep(1.5)
    assert (m.path / "shared.txt").read_bytes() == b"version-2"
    assert (m.path / "new.txt").read_bytes() == b"n"
    backend.delete("new.txt")
    time.sleep(1.5)
    assert not (m.path / "new.txt").exists()


def test_large_file_multipart(mounter: MountFactory, backend: Backend, tmp_path: Path) -> None:
    from openfiles_engine.bucket import store

    m = mounter(backend)
    size = store.MULTIPART_THRESHOLD + 3 * 2**20
    block = os.urandom(2**20)
    with open(m.path / "big", "wb") as f:
        for _ in range(size // 2**20):
            f.write(block)
    assert m.flush(timeout=120)["ok"]
    data = backend.read("big")
    assert len(data) == size and data[:2**20] == block and data[-2**20:] == block


def test_unlink_while_open(mounter: MountFactory, backend: Backend) -> None:
    m = mounter(backend)
    p = m.path / "open.txt"
    p.write_bytes(b"before")
    assert m.flush()["ok"]
    with open(p, "r+b") as f:
        p.unlink()
        assert not p.exists()
        f.seek(0)
        assert f.read() == b"before"
        f.write(b" and after")
    assert m.flush()["ok"]
    assert "open.txt" not in backend.keys()


def test_mmap_read_write(mounter: MountFactory, backend: Backend) -> None:
    import mmap

    m = mounter(backend)
    p = m.path / "mapped"
    p.write_bytes(b"0123456789")
    with open(p, "r+b") as f, mmap.mmap(f.fileno(), 0) as mm:
        assert mm[:4] == b"0123"
        mm[0:2] = b"ab"
        mm.flush()
    assert p.read_bytes() == b"ab23456789"
    assert m.flush()["ok"]
    assert backend.read("mapped") == b"ab23456789"


def test_fsync_after_rename_of_a_clean_file(mounter: MountFactory, backend: Backend) -> None:
    backend.write("src.txt", b"base")
    m = mounter(backend, "--export-delay", "3600")
    os.rename(m.path / "src.txt", m.path / "dst.txt")
    fd = os.open(m.path / "dst.txt", os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b"+more")
        os.fsync(fd)  # exports to the new key: the pending rename goes first
    finally:
        os.close(fd)
    assert backend.read("dst.txt") == b"base+more"
    assert "src.txt" not in backend.keys()
    assert m.status()["conflicts"] == 0


@pytest.mark.parametrize("remote", [b"short", b""])
def test_write_past_a_shorter_remote_version_shows_zeros(mounter: MountFactory,
                                                         backend: Backend,
                                                         remote: bytes) -> None:
    """The data file of a clean file may still hold an older, longer version past the
    new size; a write past the end or a truncate up must show zeros there, not those
    bytes (found by the reference model)."""
    backend.write("f", b"A" * 100)
    m = mounter(backend, "--metadata-ttl", "0", "--export-delay", "3600")
    p = m.path / "f"
    assert p.read_bytes() == b"A" * 100
    backend.write("f", remote)
    assert p.read_bytes() == remote
    with open(p, "r+b") as f:
        f.seek(20)
        f.write(b"Z")
    assert p.read_bytes() == remote + b"\0" * (20 - len(remote)) + b"Z"
    backend.write("g", b"B" * 100)
    q = m.path / "g"
    assert q.read_bytes() == b"B" * 100
    backend.write("g", remote)
    assert q.read_bytes() == remote
    os.truncate(q, 50)
    assert q.read_bytes() == remote + b"\0" * (50 - len(remote))
    assert m.flush()["ok"]
    assert backend.read("f") == remote + b"\0" * (20 - len(remote)) + b"Z"
    assert backend.read("g") == remote + b"\0" * (50 - len(remote))
