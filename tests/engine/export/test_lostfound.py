"""Conflicts: the bucket wins, the local version lands in lost+found, nothing is lost."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from fixtures.net import wait_for

from ..conftest import Backend, Mount, MountFactory

pytestmark = [pytest.mark.fuse, pytest.mark.timeout(120)]

LOSTFOUND = ".openfiles-lost+found-test"


def lost_files(m: Mount) -> dict[str, tuple[bytes, bytes]]:
    """name -> (content, original path xattr) of every file in lost+found."""
    root = m.path / LOSTFOUND
    return {p.name: (p.read_bytes(), os.getxattr(p, "user.openfiles.original_path"))
            for p in root.iterdir()}


def user_keys(backend: Backend) -> list[str]:
    return [k for k in backend.keys() if not k.startswith(".openfiles-meta")]


def test_plain_put_racing_a_dirty_file(mounter: MountFactory, backend: Backend) -> None:
    backend.write("c.txt", b"v1")
    m = mounter(backend, "--export-delay", "3600", "--metadata-ttl", "0")
    assert (m.path / "c.txt").read_bytes() == b"v1"
    (m.path / "c.txt").write_bytes(b"local edit")
    time.sleep(0.05)
    backend.write("c.txt", b"remote edit")
    assert m.flush()["ok"]
    lost = lost_files(m)
    assert list(lost.values()) == [(b"local edit", b"c.txt")]
    assert (m.path / "c.txt").read_bytes() == b"remote edit"
    assert backend.read("c.txt") == b"remote edit"
    assert user_keys(backend) == ["c.txt"]  # lost+found is never exported
    assert m.status()["conflicts"] == 1
    assert "conflict on 'c.txt'" in m.log_text()


def test_status_names_each_conflict_and_where_it_went(mounter: MountFactory,
                                                     backend: Backend) -> None:
    """``recent_conflicts`` (docs/CONTRACTS.md section 2): the node plugin's Events read it."""
    backend.write("d/r.txt", b"v1")
    m = mounter(backend, "--export-delay", "3600", "--metadata-ttl", "0")
    assert (m.path / "d/r.txt").read_bytes() == b"v1"
    assert m.status()["recent_conflicts"] == []
    (m.path / "d/r.txt").write_bytes(b"local")
    backend.write("d/r.txt", b"remote")
    before = time.time()
    assert m.flush()["ok"]
    (conflict,) = m.status()["recent_conflicts"]
    assert conflict["seq"] == 1 and conflict["path"] == "d/r.txt"
    assert conflict["lost_path"].startswith(LOSTFOUND + "/")
    assert (m.path / conflict["lost_path"]).read_bytes() == b"local"
    assert before - 1 <= conflict["time"] <= time.time() + 1


def test_new_file_racing_a_remote_create(mounter: MountFactory, backend: Backend) -> None:
    m = mounter(backend, "--export-delay", "3600")
    (m.path / "n.txt").write_bytes(b"mine")
    backend.write("n.txt", b"theirs")
    assert m.flush()["ok"]
    assert list(lost_files(m).values()) == [(b"mine", b"n.txt")]
    assert backend.read("n.txt") == b"theirs"
    wait_for(lambda: (m.path / "n.txt").read_bytes() == b"theirs", what="remote version")


def test_two_mounts_writing_the_same_file(mounter: MountFactory, backend: Backend) -> None:
    backend.write("shared/f", b"base")
    a = mounter(backend, "--export-delay", "3600", "--metadata-ttl", "0")
    b = mounter(backend, "--export-delay", "3600", "--metadata-ttl", "0")
    assert (a.path / "shared/f").read_bytes() == b"base"
    assert (b.path / "shared/f").read_bytes() == b"base"
    (a.path / "shared/f").write_bytes(b"from A")
    (b.path / "shared/f").write_bytes(b"from B")
    assert a.flush()["ok"]
    assert b.flush()["ok"]
    assert backend.read("shared/f") == b"from A"
    assert list(lost_files(b).values()) == [(b"from B", b"shared/f")]
    assert lost_files(a) == {}
    assert (b.path / "shared/f").read_bytes() == b"from A"
    assert (a.status()["conflicts"], b.status()["conflicts"]) == (0, 1)


def test_give_a_file_back_from_lost_and_found(mounter: MountFactory, backend: Backend) -> None:
    backend.write("g.txt", b"v1")
    m = mounter(backend, "--export-delay", "3600", "--metadata-ttl", "0")
    (m.path / "g.txt").write_bytes(b"keep me")
    backend.write("g.txt", b"v2")
    assert m.flush()["ok"]
    (name,) = lost_files(m)
    with pytest.raises(OSError):
        (m.path / LOSTFOUND / "new").write_bytes(b"x")  # lost+found takes nothing in
    os.rename(m.path / LOSTFOUND / name, m.path / "g-recovered.txt")
    assert m.flush()["ok"]
    assert backend.read("g-recovered.txt") == b"keep me"
    assert backend.read("g.txt") == b"v2"


def test_status_counts_what_lost_and_found_holds(mounter: MountFactory,
                                                 backend: Backend) -> None:
    """``lostfound_files`` and ``lostfound_bytes``: the mounter keeps the cache while
    they are not zero (docs/CONTRACTS.md section 2)."""
    backend.write("a.txt", b"v1")
    backend.write("b.txt", b"v1")
    m = mounter(backend, "--export-delay", "3600", "--metadata-ttl", "0")
    assert (m.status()["lostfound_files"], m.status()["lostfound_bytes"]) == (0, 0)
    (m.path / "a.txt").write_bytes(b"local a")
    (m.path / "b.txt").write_bytes(b"local bb")
    backend.write("a.txt", b"v2")
    backend.write("b.txt", b"v2")
    assert m.flush()["ok"]
    status = m.status()
    assert (status["lostfound_files"], status["lostfound_bytes"]) == (2, 15)
    assert status["dirty_files"] == 0  # never dirty, never exported
    names = {content: name for name, (content, _) in lost_files(m).items()}
    os.rename(m.path / LOSTFOUND / names[b"local a"], m.path / "a-mine.txt")
    assert (m.status()["lostfound_files"], m.status()["lostfound_bytes"]) == (1, 8)
    os.unlink(m.path / LOSTFOUND / names[b"local bb"])
    assert (m.status()["lostfound_files"], m.status()["lostfound_bytes"]) == (0, 0)


def test_fsync_reports_a_conflict(mounter: MountFactory, backend: Backend) -> None:
    backend.write("s.txt", b"v1")
    m = mounter(backend, "--export-delay", "3600", "--metadata-ttl", "0")
    fd = os.open(m.path / "s.txt", os.O_RDWR)
    try:
        os.write(fd, b"LOCAL")
        backend.write("s.txt", b"remote")
        with pytest.raises(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
    assert [v[0] for v in lost_files(m).values()] == [b"LOCAL"]
    assert Path(m.path / "s.txt").read_bytes() == b"remote"
