"""Read ``/proc/self/mountinfo``: which paths are mount points, and of what.

Format (proc(5)): one mount a line, in mount order, ``ID PARENT MAJOR:MINOR
ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS``; the
kernel escapes space, tab, newline and backslash in paths as ``\\ooo`` (octal),
which :func:`parse` undoes. Lines too short to hold those fields are skipped.

Two notions of FUSE, kept apart on purpose: :attr:`MountEntry.is_fuse` is what
an engine mounts (type ``fuse`` or ``fuse.<subtype>``), the one readiness and
the CSI node check; :func:`fuse_mounted` is any type beginning with ``fuse``
(also ``fuseblk``), what the engine refuses to mount over.

Reading this file never touches the mounted file systems, so it cannot hang on a
dead FUSE mount the way ``stat`` or ``os.path.ismount`` can. Errors: OSError
when the file cannot be read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MOUNTINFO = "/proc/self/mountinfo"


@dataclass(frozen=True)
class MountEntry:
    mount_id: int
    device: str  # "major:minor"
    root: str
    mountpoint: str
    options: frozenset[str]
    fstype: str
    source: str

    @property
    def read_only(self) -> bool:
        return "ro" in self.options

    @property
    def is_fuse(self) -> bool:
        return self.fstype == "fuse" or self.fstype.startswith("fuse.")


def _unescape(field: str) -> str:
    # The kernel escapes space, tab, newline and backslash as \ooo.
    out: list[str] = []
    i = 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse(text: str) -> list[MountEntry]:
    """Parse mountinfo text, in mount order."""
    entries = []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        tail = right.split()
        if len(fields) < 6 or len(tail) < 2:
            continue
        entries.append(
            MountEntry(
                mount_id=int(fields[0]),
                device=fields[2],
                root=_unescape(fields[3]),
                mountpoint=_unescape(fields[4]),
                options=frozenset(fields[5].split(",")),
                fstype=tail[0],
                source=_unescape(tail[1]),
            )
        )
    return entries


def entries() -> list[MountEntry]:
    with open(MOUNTINFO) as f:
        return parse(f.read())


def find(path: str) -> MountEntry | None:
    """The mount at exactly ``path`` (the top one if several are stacked), or None."""
    found = None
    for entry in entries():
        if entry.mountpoint == path:
            found = entry
    return found


def fuse_mounted(path: str) -> bool:
    """Is any file system whose type begins with ``fuse`` mounted at ``path`` (made absolute)?"""
    target = os.path.abspath(path)
    return any(e.mountpoint == target and e.fstype.startswith("fuse") for e in entries())
