"""The rows of docs/SEMANTICS.md on file contents (openfile.py: open, read, write,
flush, release, fsync), on real FUSE mounts over file:// and MinIO."""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
from pathlib import Path

import pytest

from openfiles_engine.fuse.openfile import DIRECT_WRITES

from ..conftest import Backend, Mount, MountFactory, fresh

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



def _cached_file(m: Mount, name: str) -> tuple[Path, Path]:
    """A 300,000-byte file of b"a", read once (its pages are in the kernel's cache);
    then its cache file is changed behind the engine's back at [200704, 204800):
    a read that reaches the engine there gets b"Z", one the kernel answers gets b"a"."""
    p = m.path / name
    p.write_bytes(b"a" * 300_000)
    assert p.read_bytes() == b"a" * 300_000
    data = m.cache / "data" / str(os.stat(p).st_ino)
    fd = os.open(data, os.O_WRONLY)
    try:
        os.pwrite(fd, b"Z" * 4096, 200_704)
    finally:
        os.close(fd)
    return p, data


def test_write_only_handle_skips_the_page_cache_and_readers_see_its_writes(
        mounter: MountFactory, backend: Backend) -> None:
    """A write-only handle bypasses the kernel's page cache (``direct_io``): pages
    that readers cached before its write are not served after it, to a reader
    opened before the write or after it."""
    m = mounter(backend, "--export-delay", "3600")
    p, _ = _cached_file(m, "shared.bin")
    reader = os.open(p, os.O_RDONLY)
    try:
        # The pages are cached: the kernel answers without the engine.
        assert os.pread(reader, 4096, 200_704) == b"a" * 4096
        writer = os.open(p, os.O_WRONLY)
        try:
            for offset, data in [(0, b"b" * 4096), (5000, b"c" * 70_000),
                                 (299_990, b"d" * 2**20)]:
                assert os.pwrite(writer, data, offset) == len(data)
                assert os.pread(reader, len(data), offset) == data
            assert os.pread(reader, 4096, 200_704) == b"Z" * 4096  # not the old page
            assert os.fstat(reader).st_size == 299_990 + 2**20
            assert os.pread(reader, 20, 299_980) == b"a" * 10 + b"d" * 10
        finally:
            os.close(writer)
    finally:
        os.close(reader)
    q, _ = _cached_file(m, "later.bin")
    with open(q, "rb") as f:
        f.seek(200_704)
        assert f.read(4096) == b"a" * 4096  # cached, and kept across opens
    with open(q, "r+b", buffering=0) as f:
        f.seek(200_704)
        assert f.read(4096) == b"a" * 4096
        writer = os.open(q, os.O_WRONLY)
        try:
            assert os.pwrite(writer, b"e" * 4096, 0) == 4096
        finally:
            os.close(writer)
        f.seek(200_704)
        assert f.read(4096) == b"Z" * 4096
    with open(q, "rb") as f:
        assert f.read(4096) == b"e" * 4096
        f.seek(200_704)
        assert f.read(4096) == b"Z" * 4096


def _resident_pages(fd: int, length: int) -> int:
    """Pages of [0, length) of the open file ``fd`` in the kernel's page cache (mincore)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    addr = libc.mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    assert addr not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
    try:
        pages = ctypes.create_string_buffer((length + mmap.PAGESIZE - 1) // mmap.PAGESIZE)
        assert libc.mincore(addr, length, pages) == 0, os.strerror(ctypes.get_errno())
        return sum(b & 1 for b in pages.raw)
    finally:
        libc.munmap(addr, length)


@pytest.mark.parametrize("flags", [os.O_WRONLY, os.O_RDWR])
def test_only_write_only_handles_skip_the_page_cache(mounter: MountFactory, backend: Backend,
                                                     flags: int) -> None:
    """The writes of a write-only handle leave no page in the kernel's cache (the
    writer pays no copy into new pages); those of a read-write handle do, as before."""
    m = mounter(backend, "--export-delay", "3600")
    p = m.path / "w.bin"
    p.write_bytes(b"")
    watcher = os.open(p, os.O_RDONLY)
    writer = os.open(p, flags)
    try:
        for n in range(4):
            assert os.pwrite(writer, b"w" * 2**16, n * 2**16) == 2**16
        resident = _resident_pages(watcher, 2**18)
        # Before kernel 6.18 the engine keeps the cached write path (DIRECT_WRITES).
        assert resident == 0 if flags == os.O_WRONLY and DIRECT_WRITES else resident == 64
    finally:
        os.close(writer)
        os.close(watcher)
    assert p.read_bytes() == b"w" * 2**18


def test_a_set_group_id_file_keeps_the_cached_write_path(mounter: MountFactory,
                                                        backend: Backend) -> None:
    """Only the kernel's cached write path clears set-user/group-ID bits on a write, so
    a write-only handle on such a file does not bypass the page cache."""
    m = mounter(backend, "--export-delay", "3600")
    p = m.path / "sg.bin"
    p.write_bytes(b"")
    os.chmod(p, 0o2775)
    watcher = os.open(p, os.O_RDONLY)
    writer = os.open(p, os.O_WRONLY)
    try:
        assert os.pwrite(writer, b"s" * 2**16, 0) == 2**16
        assert _resident_pages(watcher, 2**16) == 16
    finally:
        os.close(writer)
        os.close(watcher)



@pytest.mark.parametrize("access", [os.O_WRONLY, os.O_RDWR])
def test_append_after_a_remote_change_goes_to_the_new_end(
        mounter: MountFactory, s3_backend: Backend, access: int) -> None:
    """The kernel puts an ``O_APPEND`` write at the size it last heard of, but the
    open may have found another version in the bucket since (found by
    test_two_mounts: a longer version lost bytes under the append, a shorter one
    got zeros). The engine puts every append at the end of what it holds.

    Here the kernel keeps the old size for the whole TTL, and a read that met the
    new version makes the next open ask the bucket (fetcher.py ``Changed``)."""
    old = os.urandom(16 * 2**20)
    s3_backend.write("f", old)
    m = mounter(s3_backend, "--metadata-ttl", "3600", "--export-delay", "3600")
    p = m.path / "f"
    fd = os.open(p, os.O_RDONLY)
    try:
        assert os.pread(fd, 4096, 0) == old[:4096]
        s3_backend.write("f", b"another writer\n")
        with pytest.raises(OSError) as exc:
            os.pread(fd, 4096, len(old) - 4096)
        assert exc.value.errno == errno.EIO  # the precondition: the engine saw the change
    finally:
        os.close(fd)
    assert os.stat(p).st_size == len(old)  # the kernel's size is still the old one
    fd = os.open(p, access | os.O_APPEND)
    try:
        os.write(fd, b"mine\n")
        os.write(fd, b"again\n")
    finally:
        os.close(fd)
    want = b"another writer\nmine\nagain\n"
    assert os.stat(p).st_size == len(want)
    assert p.read_bytes() == want
    assert m.flush()["ok"]
    assert s3_backend.read("f") == want
