"""Inode table and export journal, persisted in SQLite (WAL) in the cache dir.

Durability contract: every mutating call commits before it returns. With WAL
and ``synchronous=NORMAL`` a commit survives the death of the process (kill -9)
at once; :meth:`MetaDB.sync` makes it survive power loss too (used by fsync).
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat
from dataclasses import dataclass, field
from typing import Any

ROOT = 1

_PERSISTED = (
    "kind", "mode", "uid", "gid", "size", "mtime_ns", "ctime_ns", "target", "etag",
    "custom", "sidecar", "dirty", "data_dirty", "listed", "validated", "ranges", "full",
    "last_access", "lost", "orig_path", "explicit_mtime", "sidecar_etag",
)


@dataclass
class Node:
    """One inode. Persisted fields are in ``_PERSISTED``; the rest live in memory."""

    ino: int
    parent: int
    name: str
    kind: str  # "file" | "dir" | "symlink"
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
    """Directories: wall time of the last listing; 0 = never listed."""
    validated: float = 0.0
    ranges: list[list[int]] = field(default_factory=list)
    """Clean files: byte ranges [start, end) of the remote object present in the data file."""
    full: bool = False
    """The data file holds every byte (always true for dirty and new files)."""
    last_access: float = 0.0
    lost: bool = False
    orig_path: str = ""
    explicit_mtime: bool = False
    # in memory only
    lookups: int = 0
    opens: int = 0
    writers: int = 0
    """Open file handles that may write."""
    gen: int = 0
    last_write: float = 0.0
    read_pos: int = 0
    unsaved: bool = False
    """Changed in memory (size, mtime) since the last commit."""

    @property
    def st_mode(self) -> int:
        kind = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK}[self.kind]
        return kind | self.mode

    def cached_bytes(self) -> int:
        if self.full:
            return self.size
        return sum(end - start for start, end in self.ranges)


class MetaDB:
    """SQLite store of nodes, journal entries and counters."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS node (
                ino INTEGER PRIMARY KEY, parent INTEGER NOT NULL, name TEXT NOT NULL,
                attrs TEXT NOT NULL, xattrs TEXT NOT NULL DEFAULT '{}');
            CREATE TABLE IF NOT EXISTS journal (
                id INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL,
                src TEXT NOT NULL, dst TEXT NOT NULL DEFAULT '');
            CREATE TABLE IF NOT EXISTS counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS setting (name TEXT PRIMARY KEY, value TEXT NOT NULL);
            """
        )

    def close(self) -> None:
        self.db.close()

    # nodes
    def load_nodes(self) -> list[Node]:
        out = []
        for ino, parent, name, attrs, xattrs in self.db.execute(
            "SELECT ino, parent, name, attrs, xattrs FROM node"
        ):
            doc: dict[str, Any] = json.loads(attrs)
            node = Node(ino=ino, parent=parent, name=name, kind=doc.pop("kind"),
                        mode=doc.pop("mode"), uid=doc.pop("uid"), gid=doc.pop("gid"))
            for key, value in doc.items():
                setattr(node, key, value)
            node.xattrs = {k: base64.b64decode(v) for k, v in json.loads(xattrs).items()}
            out.append(node)
        return out

    def save(self, node: Node) -> None:
        attrs = json.dumps({k: getattr(node, k) for k in _PERSISTED})
        xattrs = json.dumps({k: base64.b64encode(v).decode() for k, v in node.xattrs.items()})
        self.db.execute(
            "INSERT OR REPLACE INTO node (ino, parent, name, attrs, xattrs) VALUES (?,?,?,?,?)",
            (node.ino, node.parent, node.name, attrs, xattrs),
        )

    def delete(self, ino: int) -> None:
        self.db.execute("DELETE FROM node WHERE ino = ?", (ino,))

    def max_ino(self) -> int:
        row = self.db.execute("SELECT MAX(ino) FROM node").fetchone()
        return int(row[0] or ROOT)

    # journal of remote renames and deletes, replayed in order
    def journal_add(self, op: str, src: str, dst: str = "") -> None:
        self.db.execute("INSERT INTO journal (op, src, dst) VALUES (?,?,?)", (op, src, dst))

    def journal(self) -> list[tuple[int, str, str, str]]:
        return list(self.db.execute("SELECT id, op, src, dst FROM journal ORDER BY id"))

    def journal_done(self, entry_id: int) -> None:
        self.db.execute("DELETE FROM journal WHERE id = ?", (entry_id,))

    # counters and settings
    def bump(self, name: str, by: int = 1) -> int:
        self.db.execute(
            "INSERT INTO counter (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, by),
        )
        return self.counter(name)

    def counter(self, name: str) -> int:
        row = self.db.execute("SELECT value FROM counter WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def setting(self, name: str) -> str | None:
        row = self.db.execute("SELECT value FROM setting WHERE name = ?", (name,)).fetchone()
        return str(row[0]) if row else None

    def set_setting(self, name: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO setting (name, value) VALUES (?, ?)", (name, value))

    def transaction(self) -> sqlite3.Connection:
        """``with meta.transaction():`` groups several writes into one commit."""
        self.db.execute("BEGIN")
        return _Tx(self.db)  # type: ignore[return-value]

    def sync(self) -> None:
        """Make every commit so far durable against power loss, not just a crash."""
        self.db.execute("PRAGMA wal_checkpoint(FULL)")
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, *args: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
