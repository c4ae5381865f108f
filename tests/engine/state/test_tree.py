from __future__ import annotations

from pathlib import Path

from openfiles_engine.state.db import StateDB
from openfiles_engine.state.inode import ROOT
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
