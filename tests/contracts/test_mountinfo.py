"""Parsing /proc/self/mountinfo, including escaped paths."""

from __future__ import annotations

import pytest

from openfiles_contracts import mountinfo

SAMPLE = (
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "40 22 0:45 / /mnt/with\\040space rw,nosuid,nodev shared:20 - fuse.openfiles s3://b rw\n"
    "41 22 0:45 / /var/lib/kubelet/t ro,nosuid,nodev shared:20 - fuse.openfiles s3://b ro\n"
    "42 22 0:46 /sub /mnt/bind rw - tmpfs tmpfs rw\n"
)


def test_parse() -> None:
    entries = mountinfo.parse(SAMPLE)
    assert [e.mountpoint for e in entries] == [
        "/",
        "/mnt/with space",
        "/var/lib/kubelet/t",
        "/mnt/bind",
    ]
    fuse = entries[1]
    assert fuse.is_fuse and not fuse.read_only and fuse.device == "0:45"
    assert entries[2].read_only and entries[2].device == fuse.device
    assert not entries[3].is_fuse and entries[3].root == "/sub"


def test_find_on_this_system() -> None:
    root = mountinfo.find("/")
    assert root is not None and root.mountpoint == "/"
    assert mountinfo.find("/surely/not/a/mount/point") is None


def test_two_notions_of_fuse(monkeypatch: pytest.MonkeyPatch) -> None:
    """``is_fuse`` is what an engine mounts; ``fuse_mounted`` is any fuse* type."""
    text = (
        "50 22 0:50 / /mnt/ntfs rw - fuseblk /dev/sdb1 rw\n"
        "51 22 0:51 / /mnt/engine rw - fuse /dev/fuse rw\n"
        "52 22 0:52 / /mnt/other\\134dir rw - fuse.sshfs host: rw\n"
        "53 22 0:53 / /mnt/plain rw - ext4 /dev/sdc1 rw\n"
    )
    entries = mountinfo.parse(text)
    assert [e.is_fuse for e in entries] == [False, True, True, False]
    assert entries[2].mountpoint == "/mnt/other\\dir"
    monkeypatch.setattr(mountinfo, "entries", lambda: entries)
    assert [mountinfo.fuse_mounted(p) for p in ("/mnt/ntfs", "/mnt/engine", "/mnt/plain")] == [
        True, True, False]
    assert mountinfo.fuse_mounted("/mnt/x/../engine")  # made absolute, not resolved


def test_short_lines_are_skipped() -> None:
    assert mountinfo.parse("garbage\n1 2 3\n") == []
