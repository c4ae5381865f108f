"""Read ``/proc/self/mountinfo``: which paths are mount points, and of what.

Reading this file never touches the mounted file systems, so it cannot hang on a
dead FUSE mount the way ``stat`` or ``os.path.ismount`` can.
"""

from __future__ import annotations

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
