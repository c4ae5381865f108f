"""The engine's SQLite database (WAL) in the cache dir: inodes, journal, counters, settings.

The engine opens it at ``<cache_dir>/meta.sqlite``: a file name on users' disks,
kept when the class was renamed so that an existing cache dir is reused.

Durability contract: every mutating call commits before it returns. With WAL
and ``synchronous=NORMAL`` a commit survives the death of the process (kill -9)
at once; :meth:`StateDB.sync` makes it survive power loss too (used by fsync).
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from typing import Any

from openfiles_engine.state.inode import PERSISTED, ROOT, Node


class StateDB:
    """SQLite store of nodes, journal entries and counters."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS node (
                ino INTEGER PRIMARY KEY, parent INTEGER NOT NULL, name TEXT NOT NULL,
                attrs TEXT NOT NULL, xattrs TEXT NOT NULL DEFAULT '{}');
            CREATE TABLE IF NOT EXISTS journal (
                id INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL,
                src TEXT NOT NULL, dst TEXT NOT NULL DEFAULT '',
                seen TEXT NOT NULL DEFAULT '');
            CREATE TABLE IF NOT EXISTS counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS setting (name TEXT PRIMARY KEY, value TEXT NOT NULL);
            """
        )
        columns = {row[1] for row in self.conn.execute("PRAGMA table_info(journal)")}
        if "seen" not in columns:  # a cache dir from before the column: entries replay as before
            self.conn.execute("ALTER TABLE journal ADD COLUMN seen TEXT NOT NULL DEFAULT ''")

    def close(self) -> None:
        self.conn.close()

    # nodes
    def load_nodes(self) -> list[Node]:
        out = []
        for ino, parent, name, attrs, xattrs in self.conn.execute(
            "SELECT ino, parent, name, attrs, xattrs FROM node"
        ):
            doc: dict[str, Any] = json.loads(attrs)
            node = Node(ino=ino, parent=parent, name=name, kind=doc.pop("kind"),
                        mode=doc.pop("mode"), uid=doc.pop("uid"), gid=doc.pop("gid"))
            for key, value in doc.items():
                if key in PERSISTED:  # a field a later release dropped is skipped
                    setattr(node, key, value)
            node.xattrs = {k: base64.b64decode(v) for k, v in json.loads(xattrs).items()}
            out.append(node)
        return out

    def save(self, node: Node) -> None:
        attrs = json.dumps({k: getattr(node, k) for k in PERSISTED})
        xattrs = json.dumps({k: base64.b64encode(v).decode() for k, v in node.xattrs.items()})
        self.conn.execute(
            "INSERT OR REPLACE INTO node (ino, parent, name, attrs, xattrs) VALUES (?,?,?,?,?)",
            (node.ino, node.parent, node.name, attrs, xattrs),
        )

    def delete(self, ino: int) -> None:
        self.conn.execute("DELETE FROM node WHERE ino = ?", (ino,))

    def max_ino(self) -> int:
        row = self.conn.execute("SELECT MAX(ino) FROM node").fetchone()
        return int(row[0] or ROOT)

    # journal of remote renames and deletes, replayed in order
    def journal_add(self, op: str, src: str, dst: str = "", seen: str = "") -> None:
        """``seen``: JSON of the versions the engine last saw (state/journal.py); "" = unknown."""
        self.conn.execute("INSERT INTO journal (op, src, dst, seen) VALUES (?,?,?,?)",
                          (op, src, dst, seen))

    def journal(self) -> list[tuple[int, str, str, str]]:
        return list(self.conn.execute("SELECT id, op, src, dst FROM journal ORDER BY id"))

    def journal_seen(self) -> list[tuple[int, str, str, str, str]]:
        """Every entry with its ``seen`` column: (id, op, src, dst, seen), in order."""
        return list(self.conn.execute("SELECT id, op, src, dst, seen FROM journal ORDER BY id"))

    def journal_set_seen(self, entry_id: int, seen: str) -> None:
        self.conn.execute("UPDATE journal SET seen = ? WHERE id = ?", (seen, entry_id))

    def journal_done(self, entry_id: int) -> None:
        self.conn.execute("DELETE FROM journal WHERE id = ?", (entry_id,))

    # counters and settings
    def bump(self, name: str, by: int = 1) -> int:
        self.conn.execute(
            "INSERT INTO counter (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, by),
        )
        return self.counter(name)

    def counter(self, name: str) -> int:
        row = self.conn.execute("SELECT value FROM counter WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def setting(self, name: str) -> str | None:
        row = self.conn.execute("SELECT value FROM setting WHERE name = ?", (name,)).fetchone()
        return str(row[0]) if row else None

    def set_setting(self, name: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO setting (name, value) VALUES (?, ?)",
                          (name, value))

    def transaction(self) -> sqlite3.Connection:
        """``with db.transaction():`` groups several writes into one commit."""
        self.conn.execute("BEGIN")
        return _Tx(self.conn)  # type: ignore[return-value]

    def sync(self) -> None:
        """Make every commit so far durable against power loss, not just a crash."""
        self.conn.execute("PRAGMA wal_checkpoint(FULL)")
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _Tx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, *args: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
