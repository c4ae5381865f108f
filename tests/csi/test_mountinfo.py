"""Parsing /proc/self/mountinfo, including escaped paths."""

from __future__ import annotations

from openfiles_csi import mountinfo

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
