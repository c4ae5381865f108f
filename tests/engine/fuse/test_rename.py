from __future__ import annotations

import errno
from pathlib import Path

import pyfuse3
import pytest

from openfiles_engine.fuse import rename
from openfiles_engine.state.db import StateDB
from openfiles_engine.state.inode import ROOT
from openfiles_engine.state.journal import Journal
from openfiles_engine.state.tree import Defaults, Tree


def make(tmp_path: Path) -> tuple[Tree, Journal]:
    db = StateDB(str(tmp_path / "m.sqlite"))
    return Tree(db, Defaults(0, 0, 0o644, 0o755), "t"), Journal(db)


def test_posix_rules(tmp_path: Path) -> None:
    tree, _ = make(tmp_path)
    root = tree.nodes[ROOT]
    d = tree.add(ROOT, "d", "dir", mode=0o755, uid=0, gid=0)
    sub = tree.add(d.ino, "sub", "dir", mode=0o755, uid=0, gid=0)
    f = tree.add(ROOT, "f", "file", mode=0o644, uid=0, gid=0)
    cases = [
        (d, sub, None, 0, errno.EINVAL),  # into its own subtree
        (f, root, d, 0, errno.EISDIR),
        (d, root, f, 0, errno.ENOTDIR),
        (f, root, d, pyfuse3.RENAME_NOREPLACE, errno.EEXIST),
        (f, root, None, pyfuse3.RENAME_EXCHANGE, errno.EINVAL),
        (f, tree.lostfound, None, 0, errno.EPERM),
    ]
    for node, new_dir, target, flags, code in cases:
        with pytest.raises(pyfuse3.FUSEError) as info:
            rename.check(tree, node, new_dir, target, flags)
        assert info.value.errno == code
    rename.check(tree, f, d, None, 0)  # fine


def test_journal_entries(tmp_path: Path) -> None:
    tree, journal = make(tmp_path)
    local = tree.add(ROOT, "new", "file", mode=0o644, uid=0, gid=0, dirty=True)
    remote = tree.add(ROOT, "old", "file", mode=0o644, uid=0, gid=0, etag='"e"')
    made_here = tree.add(ROOT, "md", "dir", mode=0o755, uid=0, gid=0, custom=True)
    imported = tree.add(ROOT, "id", "dir", mode=0o755, uid=0, gid=0)
    lost = tree.add(tree.lostfound.ino, "l", "file", mode=0o644, uid=0, gid=0, lost=True,
                    etag='"x"')
    assert not rename.journal_move(tree, journal, local, "new2")
    assert not rename.journal_move(tree, journal, remote, "old2")
    assert not rename.journal_move(tree, journal, made_here, "md2")
    assert not rename.journal_move(tree, journal, imported, "id2")
    assert rename.journal_move(tree, journal, lost, "back")
    assert not lost.lost and lost.etag is None
    assert [e[1:] for e in journal.entries()] == [("rename", "old", "old2"),
                                                  ("renamedir", "id", "id2")]
