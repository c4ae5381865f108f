from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from openfiles_engine.state.db import StateDB
from openfiles_engine.state.inode import Node


def test_nodes_journal_and_counters_survive_reopen(tmp_path: Path) -> None:
    db = StateDB(str(tmp_path / "m.sqlite"))
    n = Node(ino=5, parent=1, name="f", kind="file", mode=0o640, uid=7, gid=8, size=3,
             etag='"e"', dirty=True, data_dirty=True, ranges=[[0, 3]],
             xattrs={"user.k": b"\x01"})
    db.save(n)
    db.journal_add("rename", "a", "b")
    db.bump("conflicts")
    db.bump("conflicts")
    db.close()
    again = StateDB(str(tmp_path / "m.sqlite"))
    (loaded,) = again.load_nodes()
    assert (loaded.ino, loaded.name, loaded.mode, loaded.etag, loaded.ranges) == (
        5, "f", 0o640, '"e"', [[0, 3]])
    assert loaded.dirty and loaded.data_dirty and loaded.xattrs == {"user.k": b"\x01"}
    assert loaded.lookups == 0  # kernel state is not persisted
    assert [e[1:] for e in again.journal()] == [("rename", "a", "b")]
    assert again.counter("conflicts") == 2
    assert again.max_ino() == 5


def test_every_field_survives_reopen_times_past_2262_too(tmp_path: Path) -> None:
    """Rows are written with orjson, which takes no integer past 64 bits: an mtime in
    the year 3000 in nanoseconds (utimensat sets one) is written by json instead."""
    db = StateDB(str(tmp_path / "m.sqlite"))
    year3000 = 32503680000 * 10**9
    plain = Node(ino=5, parent=1, name="f", kind="file", mode=0o640, uid=7, gid=8, size=3,
                 mtime_ns=1_796_468_474_383_998_554, ctime_ns=-5, etag='"e"', listed=1.5,
                 validated=2.25, ranges=[[0, 1], [2, 3]], sidecar_etag=None, atime_ns=None,
                 target="t\u00e9\n", xattrs={"user.k": b"\x00\xff"})
    late = Node(ino=6, parent=1, name="g", kind="file", mode=0o600, uid=0, gid=0,
                mtime_ns=year3000, atime_ns=year3000 + 1, explicit_atime=True)
    db.save(plain)
    db.save(late)
    db.close()
    loaded = {n.ino: n for n in StateDB(str(tmp_path / "m.sqlite")).load_nodes()}
    assert loaded[5] == plain
    assert loaded[6] == late and isinstance(loaded[6].atime_ns, int)


def test_a_commit_survives_kill9(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    code = f"""
import os, signal
from openfiles_engine.state.db import StateDB
from openfiles_engine.state.inode import Node
db = StateDB({str(path)!r})
db.save(Node(ino=9, parent=1, name="x", kind="file", mode=0o644, uid=0, gid=0, dirty=True))
os.kill(os.getpid(), signal.SIGKILL)
"""
    subprocess.run([sys.executable, "-c", code], check=False)
    (node,) = StateDB(str(path)).load_nodes()
    assert node.ino == 9 and node.dirty


def test_transaction_rolls_back(tmp_path: Path) -> None:
    db = StateDB(str(tmp_path / "m.sqlite"))
    try:
        with db.transaction():
            db.journal_add("delete", "a")
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert db.journal() == []


def test_a_row_saved_before_atime_and_rdev_existed_still_loads(tmp_path: Path) -> None:
    import json
    import sqlite3

    path = tmp_path / "m.sqlite"
    StateDB(str(path)).close()
    old = {"kind": "file", "mode": 0o644, "uid": 0, "gid": 0, "size": 1, "mtime_ns": 5,
           "dirty": True, "orig_path": "a/b"}  # orig_path: a field since dropped
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO node (ino, parent, name, attrs) VALUES (7, 1, 'f', ?)",
                     (json.dumps(old),))
    (node,) = StateDB(str(path)).load_nodes()
    assert (node.atime_ns, node.explicit_atime, node.rdev, node.dirty) == (None, False, 0, True)
    assert not hasattr(node, "orig_path")


def test_a_cache_dir_from_before_the_seen_column_still_opens(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE journal (id INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL,
                              src TEXT NOT NULL, dst TEXT NOT NULL DEFAULT '');
        INSERT INTO journal (op, src, dst) VALUES ('rename', 'a', 'b');
    """)
    old.commit()
    old.close()
    db = StateDB(str(path))
    assert db.journal_seen() == [(1, "rename", "a", "b", "")]  # replays unconditionally
    db.journal_add("delete", "c", seen='{"": [null, true, "e"]}')
    db.journal_set_seen(1, "{}")
    assert [e[4] for e in StateDB(str(path)).journal_seen()] == ["{}", '{"": [null, true, "e"]}']


def test_a_rollback_runs_the_undo_steps_newest_first(tmp_path: Path) -> None:
    db = StateDB(str(tmp_path / "m.sqlite"))
    log: list[str] = []
    db.on_rollback(lambda: log.append("outside"))  # no transaction: nothing to undo
    with pytest.raises(RuntimeError), db.transaction():
        db.on_rollback(lambda: log.append("first"))
        db.on_rollback(lambda: log.append("keyed"), key="k")
        db.on_rollback(lambda: log.append("same key, later"), key="k")
        with db.transaction():  # joins the outer one
            db.on_rollback(lambda: log.append("inner"))
        db.after_commit(lambda: log.append("never"))
        raise RuntimeError("boom")
    assert log == ["inner", "keyed", "first"]
    assert not db.in_transaction


def test_after_commit_steps_run_once_the_transaction_commits(tmp_path: Path) -> None:
    db = StateDB(str(tmp_path / "m.sqlite"))
    log: list[str] = []
    with db.transaction():
        db.after_commit(lambda: log.append("committed"))
        db.on_rollback(lambda: log.append("never"))
        assert log == []
    db.after_commit(lambda: log.append("at once"))
    assert log == ["committed", "at once"]


def test_a_failed_commit_rolls_back_sqlite_and_memory(tmp_path: Path) -> None:
    """A deferred foreign key makes the COMMIT itself fail (SQLite keeps the
    transaction open then, as after some disk errors): both sides roll back."""
    db = StateDB(str(tmp_path / "m.sqlite"))
    db.conn.executescript(
        "CREATE TEMP TABLE p (k INTEGER PRIMARY KEY);"
        "CREATE TEMP TABLE c (k INTEGER REFERENCES p(k) DEFERRABLE INITIALLY DEFERRED);"
        "PRAGMA foreign_keys = ON;")
    undone: list[bool] = []
    with pytest.raises(sqlite3.IntegrityError), db.transaction():
        db.journal_add("delete", "a")
        db.on_rollback(lambda: undone.append(True))
        db.conn.execute("INSERT INTO c VALUES (1)")
    assert undone == [True] and db.journal() == [] and not db.conn.in_transaction
    db.journal_add("delete", "b")  # the connection is usable again
    assert [e[2] for e in db.journal()] == ["b"]


def test_a_node_saved_in_a_transaction_is_written_once_as_at_its_last_save(
        tmp_path: Path) -> None:
    db = StateDB(str(tmp_path / "m.sqlite"))
    n = Node(ino=5, parent=1, name="f", kind="file", mode=0o644, uid=0, gid=0, size=1,
             ranges=[[0, 1]])
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    with db.transaction():
        db.save(n)
        n.size, n.ranges[0][1] = 2, 2
        db.save(n)
        n.size, n.ranges[0][1] = 3, 3  # changed after its last save: not written
        n.xattrs["user.k"] = b"v"
    db.conn.set_trace_callback(None)
    assert sum("INSERT OR REPLACE INTO node" in s for s in statements) == 1
    (loaded,) = StateDB(str(tmp_path / "m.sqlite")).load_nodes()
    assert (loaded.size, loaded.ranges, loaded.xattrs) == (2, [[0, 2]], {})

    with pytest.raises(RuntimeError), db.transaction():
        n.size = 9
        db.save(n)
        raise RuntimeError("rolled back: the pending row is never written")
    (loaded,) = StateDB(str(tmp_path / "m.sqlite")).load_nodes()
    assert loaded.size == 2

    with db.transaction():
        db.save(n)
        db.delete(n.ino)  # a delete after a save in one transaction wins
    assert StateDB(str(tmp_path / "m.sqlite")).load_nodes() == []


def _rows(path: Path) -> dict[int, int]:
    """ino -> size of every node row, read by a connection of its own (what a crash leaves)."""
    return {n.ino: n.size for n in StateDB(str(path)).load_nodes()}


def test_rows_saved_later_are_written_before_any_other_write_and_by_write_later(
        tmp_path: Path) -> None:
    """A row saved ``later`` is committed without being written: it reaches SQLite
    with :meth:`write_later`, or just before the next other write of any kind, so
    SQLite sees the changes in the order they were made. A rollback drops it; a row
    saved without ``later`` replaces it; its inode number is never given again."""
    path = tmp_path / "m.sqlite"
    db = StateDB(str(path))

    def node(ino: int, size: int) -> Node:
        return Node(ino=ino, parent=1, name=f"n{ino}", kind="file", mode=0o644, uid=0, gid=0,
                    size=size)

    with db.transaction():
        db.save(node(5, 1), later=True)
        db.save(node(6, 1), later=True)
        db.save(node(6, 2))  # saved again without ``later``: written at this COMMIT
        db.save(node(2, 1))
    assert _rows(path) == {2: 1, 6: 2} and db.has_later
    assert StateDB(str(path)).max_ino() == 6
    with db.transaction():
        db.save(node(7, 1), later=True)
    assert _rows(path) == {2: 1, 6: 2, 5: 1}  # the transaction wrote 5 first
    assert StateDB(str(path)).max_ino() == 7  # 7's number stays given, row or not
    db.write_later()
    assert _rows(path) == {2: 1, 6: 2, 5: 1, 7: 1} and not db.has_later

    writes: list[Callable[[], object]] = [
        lambda: db.save(node(2, 3)), lambda: db.delete(2), lambda: db.journal_add("delete", "a"),
        lambda: db.journal_set_seen(1, "{}"), lambda: db.journal_done(1),
        lambda: db.bump("runs"), lambda: db.set_setting("k", "v"), db.sync, db.close]
    for ino, write in enumerate(writes, start=10):
        db.save(node(ino, 4), later=True)  # outside a transaction: saved later too
        assert ino not in _rows(path)
        write()
        assert _rows(path)[ino] == 4, write
    db = StateDB(str(path))
    assert db.max_ino() == 18  # saved later outside a transaction: counted as given too
    db.save(node(20, 1), later=True)
    db.save(node(20, 2))  # the same node: its row saved later goes first, this one after
    assert _rows(path)[20] == 2
    db.save(node(21, 1), later=True)
    db.delete(21)  # written before the delete, not after it
    assert 21 not in _rows(path) and not db.has_later
    with pytest.raises(RuntimeError), db.transaction():
        db.save(node(30, 1), later=True)
        raise RuntimeError("rolled back: the row saved later is dropped")
    with db.transaction():
        db.save(node(31, 1), later=True)
        db.delete(31)  # a delete after it in one transaction wins
    db.write_later()
    assert 30 not in _rows(path) and 31 not in _rows(path)
