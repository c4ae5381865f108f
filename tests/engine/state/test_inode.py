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
    assert {"lookups", "opens", "writers", "unsaved", "changes", "data_change"}.isdisjoint(
        PERSISTED)
    assert set(PERSISTED) <= set(Node.__dataclass_fields__)


def new_file() -> Node:
    return Node(ino=2, parent=1, name="f", kind="file", mode=0o644, uid=0, gid=0)


def test_every_change_bumps_the_counter() -> None:
    node = new_file()
    node.mark_dirty(data=True)
    node.mark_dirty(data=False)
    assert (node.changes, node.data_change, node.dirty, node.data_dirty) == (2, 1, True, True)


def test_an_export_with_no_change_meanwhile_makes_the_node_clean() -> None:
    node = new_file()
    node.mark_dirty(data=True)
    assert node.exported(node.changes)
    assert not node.dirty and not node.data_dirty


def test_an_attribute_change_during_an_export_keeps_the_node_dirty() -> None:
    node = new_file()
    node.mark_dirty(data=True)
    started = node.changes
    node.mark_dirty(data=False)  # a chmod while the bytes are uploaded
    assert not node.exported(started)
    assert node.dirty and not node.data_dirty  # the sidecar goes again, the bytes do not


def test_a_write_during_an_export_keeps_the_data_dirty() -> None:
    node = new_file()
    node.mark_dirty(data=False)
    started = node.changes  # an export of the attributes alone
    node.mark_dirty(data=True)
    node.mark_dirty(data=False)
    assert not node.exported(started)
    assert node.dirty and node.data_dirty
