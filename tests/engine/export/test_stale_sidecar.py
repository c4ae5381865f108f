"""A sidecar left behind by a second writer must never describe a new local file."""

from __future__ import annotations

import errno
import os

import pytest

from openfiles_engine.bucket.layout import sidecar_key

from ..conftest import Backend, Mount, MountFactory

FRESH_LOOKS = ("--export-delay", "3600", "--metadata-ttl", "0")


def leave_stale_sidecar(m: Mount, backend: Backend, data: bytes) -> None:
    """Export ``a`` with an xattr (so a sidecar), then delete the object as a second
    writer does, leaving the sidecar; the mount no longer shows ``a``."""
    (m.path / "a").write_bytes(data)
    os.setxattr(m.path / "a", "user.k1", b"old")
    assert m.flush()["ok"]
    assert sidecar_key("a") in backend.keys()
    backend.delete("a")
    assert not (m.path / "a").exists()


@pytest.mark.fuse
@pytest.mark.timeout(120)
def test_a_recreated_file_with_the_same_bytes_does_not_take_a_stale_sidecar(
        mounter: MountFactory, backend: Backend) -> None:
    """A second writer deletes an object and leaves its sidecar; a new local file at that
    path with the same bytes has the same ETag, so the stale sidecar would describe it.
    Its export removes the stale sidecar, so a fresh mount shows the new file with the
    defaults, as the mount did (found by the reference model)."""
    m = mounter(backend, *FRESH_LOOKS)
    leave_stale_sidecar(m, backend, b"")
    (m.path / "a").write_bytes(b"")
    assert os.listxattr(m.path / "a") == []
    assert m.flush()["ok"]
    assert backend.keys() == ["a"]
    assert m.status()["conflicts"] == 0
    fresh = mounter(backend, *FRESH_LOOKS)
    assert os.listxattr(fresh.path / "a") == []


@pytest.mark.fuse
@pytest.mark.timeout(120)
def test_a_recreated_file_with_the_same_bytes_replaces_a_stale_sidecar(
        mounter: MountFactory, backend: Backend) -> None:
    """The same, for a new file that needs a sidecar of its own: the stale one (which
    names the new file's ETag) is replaced, not taken for another writer's change."""
    m = mounter(backend, *FRESH_LOOKS)
    leave_stale_sidecar(m, backend, b"same")
    (m.path / "a").write_bytes(b"same")
    os.chmod(m.path / "a", 0o600)
    assert m.flush()["ok"]
    assert m.status()["conflicts"] == 0
    fresh = mounter(backend, *FRESH_LOOKS)
    assert os.listxattr(fresh.path / "a") == []
    assert os.stat(fresh.path / "a").st_mode & 0o777 == 0o600


@pytest.mark.fuse
@pytest.mark.timeout(120)
def test_a_recreated_file_renamed_after_a_stale_sidecar_moves_whole(
        mounter: MountFactory, backend: Backend) -> None:
    """A stale sidecar left at a recreated file's key would make the rename's journal
    entry see "attributes changed in the bucket" (its version had none): the copy was
    refused, the object stayed at the old key and the mount showed both names (found by
    the reference model, after a kill -9)."""
    m = mounter(backend, *FRESH_LOOKS)
    leave_stale_sidecar(m, backend, b"old")
    fd = os.open(m.path / "a", os.O_CREAT | os.O_WRONLY, 0o644)
    m.kill9()  # the file is created, never closed
    try:
        os.close(fd)
    except OSError as exc:
        assert exc.errno == errno.ENOTCONN
    m = mounter(backend, *FRESH_LOOKS, mountpoint=m.path, cache=m.cache)
    assert m.flush()["ok"]
    os.rename(m.path / "a", m.path / "c")
    assert m.flush()["ok"]
    assert backend.keys() == ["c"]
    assert sorted(n for n in os.listdir(m.path) if not n.startswith(".")) == ["c"]
    assert m.status()["conflicts"] == 0


@pytest.mark.fuse
@pytest.mark.timeout(120)
def test_new_files_are_checked_for_stale_sidecars_by_one_list_not_a_head_each(
        mounter: MountFactory, backend: Backend) -> None:
    """40 new files in one directory cost their 40 PUTs and a few requests more (the
    directory's own, a LIST of its sidecars), not a HEAD each as well."""
    m = mounter(backend, "--export-delay", "3600")
    (m.path / "many").mkdir()
    for n in range(40):
        (m.path / "many" / f"f{n:02d}").write_bytes(b"x")
    before = m.status()["s3_latency"]["count"]
    assert m.flush()["ok"]
    sent = m.status()["s3_latency"]["count"] - before
    assert 40 <= sent <= 46, sent
    assert sorted(backend.keys()) == sorted(
        [f"many/f{n:02d}" for n in range(40)] + [sidecar_key("many")])
