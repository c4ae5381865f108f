"""The engine's SQLite database (WAL) in the cache dir: inodes, journal, counters, settings.

The engine opens it at ``<cache_dir>/meta.sqlite``: a file name on users' disks,
kept when the class was renamed so that an existing cache dir is reused.

Durability contract: every mutating call commits before it returns. With WAL
and ``synchronous=NORMAL`` a commit survives the death of the process (kill -9)
at once; :meth:`StateDB.sync` makes it survive power loss too (used by fsync).

Transactions (:meth:`StateDB.transaction`) are atomic across SQLite and memory:
the in-memory owners of rows (``Tree``, ``Journal``) register an undo step with
:meth:`StateDB.on_rollback` for each change they make inside one, and a rollback
runs those steps, so memory is again what it was before the transaction.

One exception to "commits before it returns": rows saved with ``later``
(:meth:`StateDB.save`), the nodes a listing imports, which the bucket can give
again. They are written by :meth:`StateDB.write_later`, and before any other
write, so SQLite sees every change in the order it was made; a crash before
then loses only them, and the directory is listed again at the next start, as
every directory is (engine.py).
"""

from __future__ import annotations

import base64
import contextlib
import json
import operator
import os
import sqlite3
from collections.abc import Callable, Hashable, Iterator
from typing import Any

import orjson

from openfiles_engine.state.inode import PERSISTED, ROOT, Node

_RANGES = PERSISTED.index("ranges")
_JOINED = contextlib.nullcontext()
"""What :meth:`StateDB.transaction` returns inside another transaction (stateless)."""
_FIELDS = operator.attrgetter(*PERSISTED)
"""A node's persisted fields, in one call (a listing saves 1000 new nodes at once)."""


def _json(doc: dict[str, Any]) -> str:
    """A row's JSON document. orjson, not json: a node's 24 fields took the json
    module some 6 us, a tenth of that here, and a listing of 1000 new objects
    writes 1000 rows before its COMMIT (docs/ENGINE.md, "Metadata path").
    orjson takes no integer past 64 bits (an mtime after the year 2262 in
    nanoseconds, which utimensat may set): json writes those."""
    try:
        return orjson.dumps(doc).decode()
    except orjson.JSONEncodeError:
        return json.dumps(doc)


_Row = tuple[int, int, str, list[Any], dict[str, bytes]]
"""A node's row as saved: ino, parent, name, the PERSISTED values, xattrs."""
_INO_HIGH = "ino_high"
"""Counter: the highest inode number given, with its row written or not (no reuse)."""


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
        self._undo: dict[Hashable, Callable[[], None]] | None = None
        self._after: list[Callable[[], None]] = []
        self._pending: dict[int, _Row] | None = None
        """Inside a transaction: the rows saved, written at its COMMIT."""
        self._pending_later: dict[int, _Row] = {}
        """Inside a transaction: the rows saved ``later``, kept at its COMMIT."""
        self._later: dict[int, _Row] = {}
        """Committed rows not written yet (outside a transaction only)."""

    def close(self) -> None:
        try:
            self.write_later()
        finally:
            self.conn.close()

    # nodes
    def load_nodes(self) -> list[Node]:
        out = []
        for ino, parent, name, attrs, xattrs in self.conn.execute(
            "SELECT ino, parent, name, attrs, xattrs FROM node"
        ):
            doc: dict[str, Any] = json.loads(attrs)  # orjson reads big integers as floats
            node = Node(ino=ino, parent=parent, name=name, kind=doc.pop("kind"),
                        mode=doc.pop("mode"), uid=doc.pop("uid"), gid=doc.pop("gid"))
            for key, value in doc.items():
                if key in PERSISTED:  # a field a later release dropped is skipped
                    setattr(node, key, value)
            node.xattrs = {k: base64.b64decode(v) for k, v in json.loads(xattrs).items()}
            out.append(node)
        return out

    def save(self, node: Node, *, later: bool = False) -> None:
        """Write ``node``'s row; inside a transaction, at its COMMIT (see :meth:`transaction`).

        ``later``: a row the bucket can give again (a listing's import), written by
        :meth:`write_later` or before the next other write, whichever comes first;
        a row saved without ``later`` after it replaces it.
        """
        if later and self._pending is None:
            with self.transaction():  # which counts its inode number as given
                self.save(node, later=True)
            return
        values = list(_FIELDS(node))
        values[_RANGES] = [list(r) for r in node.ranges]  # a copy: the list lives on
        row = (node.ino, node.parent, node.name, values, dict(node.xattrs))
        if later:
            self._pending_later[node.ino] = row
        elif self._pending is not None:
            self._pending_later.pop(node.ino, None)
            self._pending[node.ino] = row
        else:
            self.write_later()
            self._write([row])

    @property
    def has_later(self) -> bool:
        """Are rows saved ``later`` still unwritten?"""
        return bool(self._later)

    def write_later(self) -> None:
        """Write the committed rows saved ``later`` (outside a transaction), in one."""
        if not self._later or self._undo is not None:
            return
        try:
            self.conn.execute("BEGIN")
            self._write(list(self._later.values()))
            self.conn.execute("COMMIT")
        except BaseException:  # they are kept, for the next write to try again
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self._later = {}

    def _write(self, rows: list[_Row]) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO node (ino, parent, name, attrs, xattrs) VALUES (?,?,?,?,?)",
            [(ino, parent, name, _json(dict(zip(PERSISTED, values, strict=True))),
              _json({k: base64.b64encode(v).decode() for k, v in xattrs.items()})
              if xattrs else "{}")
             for ino, parent, name, values, xattrs in rows])

    def delete(self, ino: int) -> None:
        self.write_later()
        if self._pending is not None:
            self._pending.pop(ino, None)
            self._pending_later.pop(ino, None)
        self.conn.execute("DELETE FROM node WHERE ino = ?", (ino,))

    def max_ino(self) -> int:
        row = self.conn.execute("SELECT MAX(ino) FROM node").fetchone()
        return max(int(row[0] or ROOT), self.counter(_INO_HIGH))

    # journal of remote renames and deletes, replayed in order
    def journal_add(self, op: str, src: str, dst: str = "", seen: str = "") -> int:
        """Append an entry; returns its id (the replay order).

        ``seen``: JSON of the versions the engine last saw (state/journal.py); "" = unknown.
        """
        self.write_later()
        cur = self.conn.execute("INSERT INTO journal (op, src, dst, seen) VALUES (?,?,?,?)",
                                (op, src, dst, seen))
        return int(cur.lastrowid or 0)

    def journal(self) -> list[tuple[int, str, str, str]]:
        return list(self.conn.execute("SELECT id, op, src, dst FROM journal ORDER BY id"))

    def journal_seen(self) -> list[tuple[int, str, str, str, str]]:
        """Every entry with its ``seen`` column: (id, op, src, dst, seen), in order."""
        return list(self.conn.execute("SELECT id, op, src, dst, seen FROM journal ORDER BY id"))

    def journal_set_seen(self, entry_id: int, seen: str) -> None:
        self.write_later()
        self.conn.execute("UPDATE journal SET seen = ? WHERE id = ?", (seen, entry_id))

    def journal_done(self, entry_id: int) -> None:
        self.write_later()
        self.conn.execute("DELETE FROM journal WHERE id = ?", (entry_id,))

    # counters and settings
    def bump(self, name: str, by: int = 1) -> int:
        self.write_later()
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
        self.write_later()
        self.conn.execute("INSERT OR REPLACE INTO setting (name, value) VALUES (?, ?)",
                          (name, value))

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """``with db.transaction():`` groups several changes into one commit, memory too.

        On an exception inside (or a failed COMMIT, such as SQLITE_FULL on a full
        disk) SQLite rolls back, the undo steps registered with :meth:`on_rollback`
        run newest first, and the exception propagates: memory and SQLite are both
        as they were before. Steps registered with :meth:`after_commit` run after
        the COMMIT only. A transaction opened inside another joins it. Nothing in a
        transaction may await: no other handler may see memory half changed.

        A node saved inside is written once, just before the COMMIT, as it was at
        its last :meth:`save` (a listing of 1000 new objects saved each node twice:
        2000 JSON documents and row writes). Joining costs a shared null context, not
        a generator: the merge of such a listing joins once per new node.
        """
        return _JOINED if self._undo is not None else self._outermost()

    @contextlib.contextmanager
    def _outermost(self) -> Iterator[None]:
        """The transaction of :meth:`transaction` when none is open."""
        self.write_later()
        self.conn.execute("BEGIN")
        self._undo, self._after, self._pending = {}, [], {}
        try:
            yield
            pending, self._pending = self._pending, None
            self._write(list(pending.values()))
            if self._pending_later:  # their inode numbers are given: never again
                self.conn.execute(
                    "INSERT INTO counter (name, value) VALUES (?, ?) ON CONFLICT(name) "
                    "DO UPDATE SET value = max(value, excluded.value)",
                    (_INO_HIGH, max(self._pending_later)))
            self.conn.execute("COMMIT")
            self._later.update(self._pending_later)
            self._pending_later = {}
        except BaseException:
            self._pending_later = {}
            undo, self._undo, self._pending = self._undo, None, None
            try:
                if self.conn.in_transaction:  # SQLite ends some failed COMMITs itself
                    self.conn.execute("ROLLBACK")
            finally:
                for step in reversed(undo.values()):
                    step()
            raise
        self._undo = None
        after, self._after = self._after, []
        for step in after:
            step()

    @property
    def in_transaction(self) -> bool:
        return self._undo is not None

    def on_rollback(self, step: Callable[[], None], key: Hashable | None = None) -> None:
        """Inside a transaction: run ``step`` if it rolls back. Outside one: nothing.

        With a ``key``, only the first step registered under it counts (a snapshot
        of a node taken at its first change in the transaction).
        """
        if self._undo is not None:
            self._undo.setdefault(object() if key is None else key, step)

    def has_undo(self, key: Hashable) -> bool:
        """Is an undo step registered under ``key`` in this transaction?"""
        return self._undo is not None and key in self._undo

    def after_commit(self, step: Callable[[], None]) -> None:
        """Run ``step`` once the transaction commits (at once outside one; never on rollback).

        For what cannot be undone, such as deleting a data file.
        """
        if self._undo is None:
            step()
        else:
            self._after.append(step)

    def sync(self) -> None:
        """Make every commit so far durable against power loss, not just a crash."""
        self.write_later()
        self.conn.execute("PRAGMA wal_checkpoint(FULL)")
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
