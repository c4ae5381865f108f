"""Request validation: required fields, capabilities, and allowed path roots."""

from __future__ import annotations

import pytest

from openfiles_csi._proto import csi_pb2
from openfiles_csi.plugin.errors import InvalidArgument
from openfiles_csi.plugin.validation import (
    check_capabilities,
    check_capability,
    check_path,
    is_read_only,
    require,
)

Mode = csi_pb2.VolumeCapability.AccessMode


def cap(
    mode: int = Mode.SINGLE_NODE_WRITER, flags: tuple[str, ...] = ()
) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(mount_flags=list(flags)),
        access_mode=Mode(mode=mode),
    )


def test_require() -> None:
    assert require("x", "volume_id") == "x"
    with pytest.raises(InvalidArgument, match="volume_id is required"):
        require("", "volume_id")


def test_mount_capabilities_are_accepted() -> None:
    for mode in (
        Mode.SINGLE_NODE_WRITER,
        Mode.MULTI_NODE_MULTI_WRITER,
        Mode.MULTI_NODE_READER_ONLY,
    ):
        check_capability(cap(mode))
    check_capabilities([cap(), cap(flags=("ro",))])


@pytest.mark.parametrize(
    ("capability", "message"),
    [
        (None, "required"),
        (csi_pb2.VolumeCapability(), "required"),
        (
            csi_pb2.VolumeCapability(
                block=csi_pb2.VolumeCapability.BlockVolume(), access_mode=Mode(mode=1)
            ),
            "block",
        ),
        (cap(Mode.UNKNOWN), "access mode"),
        (cap(flags=("nosuid", "ro")), "mount flags"),
    ],
)
def test_bad_capabilities(capability: csi_pb2.VolumeCapability | None, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        check_capability(capability)


def test_capabilities_list_required() -> None:
    with pytest.raises(InvalidArgument, match="volume_capabilities is required"):
        check_capabilities([])


def test_read_only() -> None:
    assert not is_read_only(cap())
    assert is_read_only(cap(), readonly_flag=True)
    assert is_read_only(cap(Mode.MULTI_NODE_READER_ONLY))
    assert is_read_only(cap(flags=("ro",)))


ROOTS = ["/var/lib/kubelet"]


def test_path_inside_root() -> None:
    path = "/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/pv/mount"
    assert check_path(path, "target_path", ROOTS) == path


@pytest.mark.parametrize(
    "path",
    [
        "",
        "relative/path",
        "/var/lib/kubelet",
        "/var/lib/kubelet/../../etc",
        "/var/lib/kubelet/./x",
        "/var/lib/kubelet//x",
        "/var/lib/kubelet-evil/x",
        "/etc/passwd",
        "//var/lib/kubelet/x",
    ],
)
def test_path_refused(path: str) -> None:
    with pytest.raises(InvalidArgument):
        check_path(path, "target_path", ROOTS)
