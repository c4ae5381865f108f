from __future__ import annotations

import stat

from openfiles_engine.state.inode import PERSISTED, Node


def test_st_mode_and_cached_bytes() -> None:
    f = Node(ino=2, parent=1, name="f", kind="file", mode=0o640, uid=0, gid=0, size=10,
             ranges=[[0, 3], [5, 7]])
    assert f.st_mode == stat.S_IFREG | 0o640
    assert f.cached_bytes() == 5
    f.full = True
    assert f.cached_bytes() == 10
    d = Node(ino=3, parent=1, name="d", kind="dir", mode=0o755, uid=0, gid=0)
    assert stat.S_ISDIR(d.st_mode)


def test_in_memory_counts_are_not_persisted() -> None:
    assert {"lookups", "opens", "writers", "unsaved"}.isdisjoint(PERSISTED)
    assert set(PERSISTED) <= set(Node.__dataclass_fields__)
