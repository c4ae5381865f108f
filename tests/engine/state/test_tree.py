from __future__ import annotations

import copy
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from openfiles_engine.state.db import StateDB
from openfiles_engine.state.inode import ROOT
from openfiles_engine.state.journal import Journal
from openfiles_engine.state.tree import Defaults, Tree

DEFAULTS = Defaults(uid=0, gid=0, file_mode=0o644, dir_mode=0o755)


def test_paths_moves_and_reload(tmp_path: Path) -> None:
    db = StateDB(str(tmp_path / "m.sqlite"))
    tree = Tree(db, DEFAULTS, "node1")
    assert tree.lostfound.name == ".openfiles-lost+found-node1" and tree.lostfound.lost
    d = tree.add(ROOT, "d", "dir", mode=0o755, uid=0, gid=0)
    f = tree.add(d.ino, "f", "file", mode=0o644, uid=0, gid=0)
    assert tree.path(f) == "d/f" and tree.find("d/f") is f
    e = tree.add(ROOT, "e", "dir", mode=0o755, uid=0, gid=0)
    tree.move(f, e.ino, "g")
    assert tree.path(f) == "e/g" and tree.find("d/f") is None
    assert [n.name for n in tree.descendants(e)] == ["g"]
    gone = tree.add(ROOT, "gone", "file", mode=0o644, uid=0, gid=0)
    tree.detach(gone)  # unlinked while open, then the engine died
    db.close()
    again = Tree(StateDB(str(tmp_path / "m.sqlite")), DEFAULTS, "node1")
    assert again.find("e/g") is not None and again.find("gone") is None
    assert again.orphans == [gone.ino]
    assert again.lostfound.ino == tree.lostfound.ino  # not made twice
    new = again.add(ROOT, "n", "file", mode=0o644, uid=0, gid=0)
    assert new.ino > gone.ino  # inode numbers are never reused


def test_needs_sidecar(tmp_path: Path) -> None:
    tree = Tree(StateDB(str(tmp_path / "m.sqlite")), DEFAULTS, "x")
    plain = tree.add(ROOT, "p", "file", mode=0o644, uid=0, gid=0)
    assert not tree.needs_sidecar(plain)
    for change in ({"mode": 0o600}, {"uid": 5}, {"gid": 5}, {"xattrs": {"user.a": b"1"}},
                   {"explicit_mtime": True}):
        node = tree.add(ROOT, f"n{len(tree.nodes)}", "file", mode=0o644, uid=0, gid=0)
        for key, value in change.items():
            setattr(node, key, value)
        assert tree.needs_sidecar(node), change
    link = tree.add(ROOT, "l", "symlink", mode=0o777, uid=0, gid=0, target="p")
    made_here = tree.add(ROOT, "d", "dir", mode=0o755, uid=0, gid=0, custom=True)
    imported = tree.add(ROOT, "i", "dir", mode=0o755, uid=0, gid=0)
    assert tree.needs_sidecar(link) and tree.needs_sidecar(made_here)
    assert not tree.needs_sidecar(imported)


def test_unique_lost_names(tmp_path: Path) -> None:
    tree = Tree(StateDB(str(tmp_path / "m.sqlite")), DEFAULTS, "x")
    first = tree.unique_lost_name("f.txt")
    tree.add(tree.lostfound.ino, first, "file", mode=0o644, uid=0, gid=0)
    second = tree.unique_lost_name("f.txt")
    assert first.startswith("f.txt.") and second == first + ".1"
    assert len(tree.unique_lost_name("n" * 255).encode()) <= 255


def memory(tree: Tree, journal: Journal) -> dict[str, Any]:
    """What the tree and the journal hold in memory, for comparing before and after."""
    return {
        "nodes": {ino: copy.deepcopy(vars(n)) for ino, n in tree.nodes.items()},
        "children": copy.deepcopy(tree.children),
        "journal": (len(journal), [journal.pending(k) for k in ("f", "g", "d/f", "f2")],
                    journal.remote_key("d"), journal.remote_key("f2")),
    }


def test_a_transaction_that_fails_leaves_memory_as_it_was(tmp_path: Path) -> None:
    """SQLite runs out of pages (SQLITE_FULL, as on a full disk) in the middle of a
    transaction that has already journaled a delete and a rename, detached, moved,
    created, removed and changed nodes: memory ends as it was, and as SQLite has it."""
    db = StateDB(str(tmp_path / "m.sqlite"))
    tree, journal = Tree(db, DEFAULTS, "x"), Journal(db)
    d = tree.add(ROOT, "d", "dir", mode=0o755, uid=0, gid=0)
    f = tree.add(d.ino, "f", "file", mode=0o644, uid=0, gid=0, etag='"f"', ranges=[[0, 1]])
    g = tree.add(ROOT, "g", "file", mode=0o644, uid=0, gid=0, etag='"g"')
    orphan = tree.add(ROOT, "o", "file", mode=0o644, uid=0, gid=0)
    tree.detach(orphan)  # unlinked while open: removed when the kernel forgets it
    journal.add("rename", "old", "d")
    g.size, g.unsaved = 7, True  # a write not committed yet: memory is ahead of SQLite
    before = memory(tree, journal)
    pages = db.conn.execute("PRAGMA page_count").fetchone()[0]
    db.conn.execute(f"PRAGMA max_page_count = {pages + 1}")
    with pytest.raises(sqlite3.OperationalError, match="full"), db.transaction():
        journal.add("delete", "g")
        tree.detach(g)
        journal.add("rename", "d/f", "f2")
        tree.will_change(f)
        f.ranges[0][1], f.xattrs["user.k"] = 0, b"v"
        tree.move(f, ROOT, "f2")
        tree.remove(orphan)
        tree.will_change(d)
        d.mtime_ns, d.dirty = 5, True
        tree.add(ROOT, "new", "file", mode=0o644, uid=0, gid=0)
        assert tree.find("f2") is f and tree.find("g") is None and len(journal) == 3
        tree.add(ROOT, "big", "file", mode=0o644, uid=0, gid=0,
                 xattrs={"user.big": os.urandom(64 * 1024)})  # more pages than there are
    assert memory(tree, journal) == before
    db.conn.execute("PRAGMA max_page_count = 1073741823")
    tree.save(g)
    committed = Tree(StateDB(str(tmp_path / "m.sqlite")), DEFAULTS, "x")
    assert {i: (n.parent, n.name, n.size) for i, n in committed.nodes.items()} == {
        i: (n.parent, n.name, n.size) for i, n in tree.nodes.items() if n is not orphan}
    assert len(Journal(committed.db)) == len(journal) == 1


def test_a_rolled_back_removal_of_a_directory_keeps_its_entries(tmp_path: Path) -> None:
    """A subtree the bucket lost is detached and removed parents first (as the engine's
    ``gone`` did), in a transaction that fails: the directories' entries and counts
    come back in memory as SQLite has them, not just the directories."""
    db = StateDB(str(tmp_path / "m.sqlite"))
    tree = Tree(db, DEFAULTS, "x")
    d = tree.add(ROOT, "d", "dir", mode=0o755, uid=0, gid=0)
    e = tree.add(d.ino, "e", "dir", mode=0o755, uid=0, gid=0)
    tree.add(e.ino, "f", "file", mode=0o644, uid=0, gid=0)
    tree.add(e.ino, "g", "dir", mode=0o755, uid=0, gid=0)
    before = (copy.deepcopy(tree.children), {i: tree.subdirs(i) for i in tree.nodes})
    with pytest.raises(RuntimeError), db.transaction():
        for node in [*tree.descendants(d), d]:
            tree.detach(node)
            tree.remove(node)
        raise RuntimeError("a later step fails")
    assert tree.names(e.ino) == ["f", "g"] and tree.subdirs(e.ino) == 1
    assert (tree.children, {i: tree.subdirs(i) for i in tree.nodes}) == before
    again = Tree(StateDB(str(tmp_path / "m.sqlite")), DEFAULTS, "x")
    assert again.children == tree.children


def test_files_added_at_once_are_what_add_makes_and_roll_back_together(
        tmp_path: Path) -> None:
    """``add_files`` (a listing's new objects) makes each node as ``add`` with the same
    fields would, saves it, and a failed transaction takes them all back out of memory
    and SQLite."""
    db = StateDB(str(tmp_path / "m.sqlite"))
    tree = Tree(db, DEFAULTS, "x")
    d = tree.add(ROOT, "d", "dir", mode=0o755, uid=0, gid=0)
    one = tree.add(d.ino, "one", "file", mode=0o640, uid=1, gid=2, size=5, mtime_ns=7,
                   ctime_ns=7, etag='"e"', full=False, validated=1.0, sidecar=True)
    tree.add_files(d.ino, [("two", 5, 7, '"e"', True), ("empty", 0, 9, '"z"', False)],
                   mode=0o640, uid=1, gid=2)
    two, empty = tree.find("d/two"), tree.find("d/empty")
    assert two is not None and empty is not None
    varying = ("ino", "name", "validated", "last_access")
    assert {k: v for k, v in vars(two).items() if k not in varying} == \
        {k: v for k, v in vars(one).items() if k not in varying}
    assert two.validated > 1.0 and two.ino > one.ino and two.ranges is not one.ranges
    assert (empty.size, empty.full, empty.sidecar, empty.ctime_ns) == (0, True, False, 9)
    assert tree.names(d.ino) == ["empty", "one", "two"] and tree.subdirs(d.ino) == 0
    with pytest.raises(RuntimeError), db.transaction():
        tree.add_files(d.ino, [("three", 1, 1, '"t"', False)], mode=0o644, uid=0, gid=0)
        raise RuntimeError("a later step of the merge fails")
    assert tree.find("d/three") is None and tree.names(d.ino) == ["empty", "one", "two"]
    again = Tree(StateDB(str(tmp_path / "m.sqlite")), DEFAULTS, "x")
    assert again.names(d.ino) == ["empty", "one", "two"]
    loaded = again.find("d/two")
    assert loaded is not None and (loaded.size, loaded.etag, loaded.mode, loaded.sidecar) == (
        5, '"e"', 0o640, True)
