"""An inode of the mount (:class:`Node`), and the root's inode number.

A node lives in memory in :class:`~openfiles_engine.state.tree.Tree` and is
written through to SQLite by :class:`~openfiles_engine.state.db.StateDB`; the
fields in :data:`PERSISTED` survive a restart, the others are rebuilt (lookup
and open counts start at zero, as the kernel's do).
"""

from __future__ import annotations

import stat
import time
from dataclasses import dataclass, field

ROOT = 1

PERSISTED = (
    "kind", "mode", "uid", "gid", "size", "mtime_ns", "ctime_ns", "target", "etag",
    "custom", "sidecar", "dirty", "data_dirty", "listed", "validated", "ranges", "full",
    "last_access", "lost", "explicit_mtime", "sidecar_etag", "atime_ns", "explicit_atime",
    "rdev",
)
"""Saved as keys of one JSON document per row (``node.attrs``): a field added here
needs no new column, and a row saved before it existed loads with its default."""

MODES = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK,
         "fifo": stat.S_IFIFO, "socket": stat.S_IFSOCK, "chardev": stat.S_IFCHR,
         "blockdev": stat.S_IFBLK}
"""Every kind of node, and its file type bits."""
SPECIAL = ("fifo", "socket", "chardev", "blockdev")
"""Kinds that are metadata only: the kernel does their I/O (docs/SEMANTICS.md)."""


LONG_AGO = 1.0
"""A listing time (Unix seconds) that says "listed before, due again now". Not 0, which
means never listed: a failed listing of such a directory fails the lookup, while one
listed before keeps serving what it knows (the bucket may be unreachable)."""


@dataclass
class Node:
    """One inode. Persisted fields are in ``PERSISTED``; the rest live in memory."""

    ino: int
    parent: int
    name: str
    kind: str  # a key of MODES: "file" | "dir" | "symlink" | one of SPECIAL
    mode: int  # permission bits (0o7777)
    uid: int
    gid: int
    size: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    target: str = ""
    xattrs: dict[str, bytes] = field(default_factory=dict)
    etag: str | None = None
    """ETag of the bucket's object last seen at this path; None = not in the bucket."""
    custom: bool = False
    """Attributes differ from the mount defaults: a sidecar must describe them."""
    sidecar: bool = False
    """A sidecar exists in the bucket for this path."""
    sidecar_etag: str | None = None
    """ETag of that sidecar when last read or written (a re-listing skips its GET)."""
    dirty: bool = False
    """Local data or attributes are newer than the bucket: export pending."""
    data_dirty: bool = False
    """The bytes (not only attributes) changed: the export uploads the object."""
    listed: float = 0.0
    """Directories: wall time of the last listing; 0 = never listed (``LONG_AGO``:
    listed before, due again)."""
    validated: float = 0.0
    ranges: list[list[int]] = field(default_factory=list)
    """Clean files: byte ranges [start, end) of the remote object present in the data file."""
    full: bool = False
    """The data file holds every byte (always true for dirty and new files)."""
    last_access: float = 0.0
    lost: bool = False
    explicit_mtime: bool = False
    atime_ns: int | None = None
    """Access time set with utimensat; None = never set (it reads as the mtime)."""
    explicit_atime: bool = False
    """The atime was set on purpose (not to about "now"): a sidecar keeps it."""
    rdev: int = 0
    """Device number of a ``chardev`` or ``blockdev`` node."""
    # in memory only
    lookups: int = 0
    opens: int = 0
    writers: int = 0
    """Open file handles that may write."""
    changes: int = 0
    """Counts every local change the bucket must get, of the bytes or of the attributes
    (:meth:`mark_dirty`). An export notes it when it starts and marks the node clean only
    if it has not moved (:meth:`exported`). In memory only: it tells an export in flight
    apart from a change made meanwhile, and after a restart no export is in flight;
    what a crash must not lose is ``dirty`` and ``data_dirty``, which are persisted."""
    data_change: int = 0
    """The value of ``changes`` at the last change of the bytes."""
    last_write: float = 0.0
    """``time.monotonic()`` of the last change (the export delay counts from it)."""
    read_pos: int = 0
    told_size: int = 0
    """The size the engine last gave the kernel (an entry or attributes reply): where
    the kernel puts an ``O_APPEND`` write (fuse/openfile.py ``write``)."""
    unsaved: bool = False
    """Changed in memory (size, mtime) since the last commit."""

    @property
    def st_mode(self) -> int:
        return MODES[self.kind] | self.mode

    def mark_dirty(self, *, data: bool) -> None:
        """Record a local change that the bucket must get; ``data``: the bytes changed.

        Every change of a node goes through here (the FUSE handlers call it through
        their ``_mark_dirty``), so that an export in flight sees it. In memory only:
        the caller commits the node.
        """
        self.changes += 1
        if data:
            self.data_change = self.changes
            self.data_dirty = True
        self.dirty = True
        self.last_write = time.monotonic()

    def exported(self, changes: int) -> bool:
        """An export that started when ``self.changes`` was ``changes`` reached the bucket.

        Clears ``dirty`` and ``data_dirty`` if nothing changed since; if only
        attributes changed, clears ``data_dirty`` alone (the bytes went up; the
        sidecar goes again). Returns True if the node is clean now. In memory only.
        """
        if self.changes == changes:
            self.dirty = self.data_dirty = False
            return True
        if self.data_change <= changes:
            self.data_dirty = False
        return False

    def cached_bytes(self) -> int:
        if self.full:
            return self.size
        return sum(end - start for start, end in self.ranges)
