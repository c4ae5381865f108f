"""Readiness: a fuse mount at the path, and a control socket that answers ``status``.

A real engine passes through :func:`readiness.wait` in every engine test
(tests/engine/conftest.py); here the two halves are faked one at a time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.peer import canned_peer
from openfiles_contracts import mountinfo, readiness

FUSE = mountinfo.MountEntry(45, "0:45", "/", "/mnt/v", frozenset({"rw"}), "fuse", "s3://b")


@pytest.fixture
def engine_socket(tmp_path: Path) -> Iterator[str]:
    """A control socket whose engine answers ``status`` with ``ok`` twice."""
    path = str(tmp_path / "c.sock")
    with canned_peer(path) as replies:
        replies += [b'{"ok": true, "status": {}}\n'] * 2
        yield path


def fake_mounts(monkeypatch: pytest.MonkeyPatch, *entries: mountinfo.MountEntry) -> None:
    monkeypatch.setattr(mountinfo, "entries", lambda: list(entries))


def test_ready_needs_both_halves(
    monkeypatch: pytest.MonkeyPatch, engine_socket: str, tmp_path: Path
) -> None:
    fake_mounts(monkeypatch)
    assert not readiness.probe("/mnt/v", engine_socket)  # answering, not mounted
    fake_mounts(monkeypatch, FUSE)
    assert readiness.mounted("/mnt/v") and readiness.mounted("/mnt/v/")
    assert not readiness.probe("/mnt/v", str(tmp_path / "absent.sock"))  # mounted, silent
    assert readiness.probe("/mnt/v", engine_socket)
    assert readiness.wait("/mnt/v", engine_socket, 5)


def test_only_the_top_mount_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    over = mountinfo.MountEntry(46, "0:46", "/", "/mnt/v", frozenset({"rw"}), "tmpfs", "tmpfs")
    fake_mounts(monkeypatch, FUSE, over)
    assert not readiness.mounted("/mnt/v")
    blk = mountinfo.MountEntry(47, "8:17", "/", "/mnt/v", frozenset({"rw"}), "fuseblk", "/dev/x")
    fake_mounts(monkeypatch, blk)
    assert not readiness.mounted("/mnt/v")  # not what an engine mounts


def test_wait_gives_up_at_the_deadline_or_when_told(
    monkeypatch: pytest.MonkeyPatch, engine_socket: str
) -> None:
    fake_mounts(monkeypatch)
    start = time.monotonic()
    assert not readiness.wait("/mnt/v", engine_socket, 0.3, poll=0.05)
    assert 0.3 <= time.monotonic() - start < 3

    def exited() -> None:
        raise RuntimeError("the engine exited")

    with pytest.raises(RuntimeError, match="exited"):
        readiness.wait("/mnt/v", engine_socket, 30, check=exited)
