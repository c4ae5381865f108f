"""Journal replay against a MemoryStore: idempotent, so a crash can replay it."""

from __future__ import annotations

from pathlib import Path

from openfiles_engine.bucket.layout import Sidecar, sidecar_key
from openfiles_engine.bucket.store import Store
from openfiles_engine.state.db import StateDB
from openfiles_engine.state.journal import Journal, Version, needed, pending_entries, replay_one


def keys(store: Store) -> list[str]:
    return sorted(o.key for o in store.list_all(""))


def put(store: Store, key: str) -> None:
    store.put_bytes(key, key.encode(), if_match=None, create=False)


def test_rename_twice_is_the_same_as_once() -> None:
    store = Store.open("memory://")
    put(store, "a")
    put(store, sidecar_key("a"))
    assert list(replay_one(store, "rename", "a", "b").written) == ["b"]
    replay_one(store, "rename", "a", "b")  # replay after a crash
    assert keys(store) == [".openfiles-meta/b.meta", "b"]
    assert store.get("b") == b"a"


def test_renamedir_moves_objects_and_sidecars() -> None:
    store = Store.open("memory://")
    for key in ("d/x", "d/sub/y", sidecar_key("d"), sidecar_key("d/x"), "dd/keep"):
        put(store, key)
    written = replay_one(store, "renamedir", "d", "e").written
    assert sorted(k for k, v in written.items() if v.etag) == ["e/sub/y", "e/x"]
    assert keys(store) == [".openfiles-meta/e.meta", ".openfiles-meta/e/x.meta", "dd/keep",
                           "e/sub/y", "e/x"]
    replay_one(store, "renamedir", "d", "e")
    assert "e/x" in keys(store)


def test_delete_and_rmdir() -> None:
    store = Store.open("memory://")
    for key in ("f", sidecar_key("f"), sidecar_key("d")):
        put(store, key)
    replay_one(store, "delete", "f", "")
    replay_one(store, "rmdir", "d", "")
    replay_one(store, "delete", "f", "")
    assert keys(store) == []


def test_pending_keys_and_remote_key(tmp_path: Path) -> None:
    journal = Journal(StateDB(str(tmp_path / "m.sqlite")))
    journal.add("renamedir", "old", "new")
    journal.add("rename", "new/f", "g")
    assert journal.pending("old/x") and journal.pending("new") and journal.pending("g")
    assert not journal.pending("older")
    assert journal.remote_key("g") == "old/f"  # follows both moves back
    assert journal.remote_key("new/h") == "old/h"
    reopened = Journal(StateDB(str(tmp_path / "m.sqlite")))
    assert len(reopened) == 2 and reopened.remote_key("g") == "old/f"
    for entry_id, *_ in reopened.entries():
        reopened.done(entry_id)
    assert len(reopened) == 0 and reopened.remote_key("g") == "g"


def test_a_changed_object_is_neither_deleted_nor_moved() -> None:
    store = Store.open("memory://")
    seen = {"": Version(store.put_bytes("f", b"v1", if_match=None, create=True), False)}
    store.put_bytes("f", b"theirs", if_match=None, create=False)
    for op, dst in (("delete", ""), ("rename", "g")):
        result = replay_one(store, op, "f", dst, seen)
        assert not result.written and [c.kind for c in result.clashes] == [
            "kept" if op == "delete" else "source"]
    assert keys(store) == ["f"] and store.get("f") == b"theirs"


def test_a_rename_cut_short_by_a_crash_is_finished_not_a_conflict(tmp_path: Path) -> None:
    # On file:// and S3 (single-part objects) a copy keeps the ETag: that is how a
    # replay knows the copy at b is its own (MemoryStore's copy makes a new ETag).
    store = Store.open(f"file://{tmp_path}/bucket")
    etag = store.put_bytes("a", b"x", if_match=None, create=True)
    sc_etag = store.put_bytes(sidecar_key("a"), b"{}", if_match=None, create=True)
    seen = {"": Version(etag, True, sc_etag)}
    store.copy("a", "b")  # the first try copied, then the engine died
    store.copy(sidecar_key("a"), sidecar_key("b"))
    store.delete("a")
    result = replay_one(store, "rename", "a", "b", seen)
    assert result.clashes == [] and list(result.written) == ["b"]
    assert keys(store) == [".openfiles-meta/b.meta", "b"]


def test_renamedir_leaves_keys_it_never_saw() -> None:
    store = Store.open("memory://")
    seen = {"": Version(None, False),
            "x": Version(store.put_bytes("d/x", b"x", if_match=None, create=True), False)}
    put(store, "d/new")  # another writer, after the engine listed d
    result = replay_one(store, "renamedir", "d", "e", seen)
    assert [(c.kind, c.src) for c in result.clashes] == [("kept", "d/new")]
    assert keys(store) == ["d/new", "e/x"]


def test_fsync_needs_the_entries_of_its_path_and_what_they_depend_on(tmp_path: Path) -> None:
    db = StateDB(str(tmp_path / "m.sqlite"))
    journal = Journal(db)
    journal.add("rename", "q", "c")       # c's bytes come from q
    journal.add("delete", "unrelated")
    journal.add("rename", "c", "a/f")
    journal.add("renamedir", "a", "b")    # moves the file to b/f
    journal.add("rename", "other", "b2")
    entries = pending_entries(db)
    assert [(e.op, e.src) for e in needed(entries, "b/f")] == [
        ("rename", "q"), ("rename", "c"), ("renamedir", "a")]
    assert needed(entries, "zzz") == []


def test_done_drops_exactly_the_entry_that_is_done(tmp_path: Path) -> None:
    """Two identical pending renames (a->b, b->a, a->b): finishing the first one
    leaves the second one in place, in pending() and in remote_key()."""
    journal = Journal(StateDB(str(tmp_path / "m.sqlite")))
    for src, dst in (("a", "b"), ("b", "a"), ("a", "b")):
        journal.add("rename", src, dst)
    entries = journal.entries()
    assert journal.remote_key("b") == "a"  # nothing replayed: the bytes are still at a
    journal.done(entries[0][0])
    assert len(journal) == 2 and journal.pending("a") and journal.pending("b")
    assert journal.remote_key("b") == "b"
    journal.done(entries[1][0])
    assert len(journal) == 1 and journal.pending("b")
    assert journal.remote_key("b") == "a"  # the last a->b is still to do
    journal.done(entries[2][0])
    assert len(journal) == 0 and not journal.pending("a")
    assert journal.remote_key("b") == "b"


def test_a_stale_sidecar_moves_still_describing_the_old_version() -> None:
    """Attributes were set on ``c``'s first version; another writer replaced the
    object (the sidecar now describes no object); the mount, which took the new
    version with the default attributes, renames it. The sidecar moves as it is: on
    a store whose copy makes a new ETag (MemoryStore, Azure) it was rebound to the
    copy, giving the new bytes the old version's attributes (found by the reference
    model, seed 777). A sidecar of the version moved is still rebound."""
    store = Store.open("memory://")
    old = store.put_bytes("c", b"v1", if_match=None, create=True)
    sidecar = Sidecar("file", 0o640, 0, 0, 5, xattrs={"user.k1": b"v"}, etag=old)
    store.put_bytes(sidecar_key("c"), sidecar.encode(), if_match=None, create=True)
    theirs = store.put_bytes("c", b"theirs", if_match=None, create=False)
    result = replay_one(store, "rename", "c", "a", {"": Version(theirs, True, None)})
    assert result.clashes == [] and store.get("a") == b"theirs"
    moved = Sidecar.decode(store.get(sidecar_key("a")), sidecar_key("a"))
    assert moved is not None and moved.etag == old != store.etag_or_none("a")

    mine = store.put_bytes("d", b"mine", if_match=None, create=True)
    own = Sidecar("file", 0o600, 0, 0, 5, etag=mine)
    store.put_bytes(sidecar_key("d"), own.encode(), if_match=None, create=True)
    replay_one(store, "rename", "d", "e", {"": Version(mine, True, None)})
    copied = Sidecar.decode(store.get(sidecar_key("e")), sidecar_key("e"))
    assert copied is not None and copied.etag == store.etag_or_none("e") != mine
