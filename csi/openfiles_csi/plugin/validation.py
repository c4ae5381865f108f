"""Request validation shared by the controller and node services.

Each function raises :class:`~openfiles_csi.plugin.errors.InvalidArgument` (or NotFound
where the spec asks for it) with a message naming the field; none of them looks at
secrets.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from openfiles_csi._proto import csi_pb2
from openfiles_csi.plugin.errors import InvalidArgument

AccessMode = csi_pb2.VolumeCapability.AccessMode

READ_ONLY_MODES = frozenset({AccessMode.SINGLE_NODE_READER_ONLY, AccessMode.MULTI_NODE_READER_ONLY})
SUPPORTED_MODES = frozenset(
    {
        AccessMode.SINGLE_NODE_WRITER,
        AccessMode.SINGLE_NODE_READER_ONLY,
        AccessMode.MULTI_NODE_READER_ONLY,
        AccessMode.MULTI_NODE_SINGLE_WRITER,
        AccessMode.MULTI_NODE_MULTI_WRITER,
        AccessMode.SINGLE_NODE_SINGLE_WRITER,
        AccessMode.SINGLE_NODE_MULTI_WRITER,
    }
)
# Mount flags we honour; anything else is refused rather than silently dropped.
MOUNT_FLAGS = frozenset({"ro", "rw", "defaults", "allow_other"})


def require(value: str, field: str) -> str:
    """Return ``value`` or raise INVALID_ARGUMENT naming ``field`` when it is empty."""
    if not value:
        raise InvalidArgument(f"{field} is required")
    return value


def capability_problem(cap: csi_pb2.VolumeCapability) -> str | None:
    """Return why ``cap`` is unsupported, or None when this driver can serve it."""
    if cap.HasField("block"):
        return "block volumes are not supported; use a mount volume"
    if not cap.HasField("mount"):
        return "volume_capability needs an access type (mount)"
    if not cap.HasField("access_mode") or cap.access_mode.mode not in SUPPORTED_MODES:
        return "unsupported or missing access mode"
    bad = [f for f in cap.mount.mount_flags if f not in MOUNT_FLAGS]
    if bad:
        return f"unsupported mount flags {sorted(bad)} (allowed: {sorted(MOUNT_FLAGS)})"
    return None


def check_capability(
    cap: csi_pb2.VolumeCapability | None, field: str = "volume_capability"
) -> None:
    """Raise INVALID_ARGUMENT unless ``cap`` is present and supported."""
    if cap is None or cap.ByteSize() == 0:
        raise InvalidArgument(f"{field} is required")
    problem = capability_problem(cap)
    if problem:
        raise InvalidArgument(f"{field}: {problem}")


def check_capabilities(caps: Sequence[csi_pb2.VolumeCapability]) -> None:
    if not caps:
        raise InvalidArgument("volume_capabilities is required")
    for cap in caps:
        check_capability(cap, "volume_capabilities")


def is_read_only(cap: csi_pb2.VolumeCapability, readonly_flag: bool = False) -> bool:
    """True when the publish must be read-only: the request flag, a reader mode or ``ro``."""
    return readonly_flag or cap.access_mode.mode in READ_ONLY_MODES or "ro" in cap.mount.mount_flags


def check_path(path: str, field: str, roots: Iterable[str]) -> str:
    """Return ``path`` if it is absolute, normal and inside one of ``roots``.

    A path with ``..``, ``.``, doubled slashes or outside the allowed roots is refused,
    so a request cannot make the plugin mount over, or delete, an arbitrary directory.
    """
    require(path, field)
    if not os.path.isabs(path) or os.path.normpath(path) != path or path.startswith("//"):
        raise InvalidArgument(f"{field} must be an absolute, normalized path")
    for root in roots:
        root = os.path.normpath(root)
        if path != root and path.startswith(root.rstrip("/") + "/"):
            return path
    raise InvalidArgument(f"{field} {path!r} is outside the allowed roots")
