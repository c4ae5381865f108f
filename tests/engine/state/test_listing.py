"""Lazy import of keys other tools wrote, including odd ones, on a real MinIO."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import trio
import trio.testing

from openfiles_engine.bucket.asyncstore import AsyncStore
from openfiles_engine.bucket.layout import Sidecar, sidecar_dir, sidecar_key
from openfiles_engine.bucket.store import ObjectInfo, Store, StoreError
from openfiles_engine.state import listing
from openfiles_engine.state.db import StateDB
from openfiles_engine.state.inode import PERSISTED, ROOT, Node
from openfiles_engine.state.listing import ROWS_LATER, Lister
from openfiles_engine.state.tree import Defaults, Tree

from ..conftest import Backend, MountFactory, fresh


def put(backend: Backend, key: str, data: bytes) -> None:
    """Write with the MinIO SDK, which (unlike obstore) sends keys as given."""
    backend.bucket.server.admin().put_object(backend.bucket.name, key, io.BytesIO(data),
                                             len(data))


@pytest.mark.fuse
@pytest.mark.s3
def test_keys_from_other_tools(mounter: MountFactory, s3_backend: Backend) -> None:
    put(s3_backend, "marker/", b"")  # the console's empty-directory marker
    put(s3_backend, "both", b"object")  # a key that is an object ...
    put(s3_backend, "both/child", b"and a prefix")  # ... and a prefix
    put(s3_backend, "sp ace/é.txt", b"unicode")
    put(s3_backend, "deep/a/b/c/d.txt", b"deep")
    m = mounter(s3_backend)
    names = sorted(os.listdir(m.path))
    assert "marker" in names and "deep" in names and "sp ace" in names
    assert os.listdir(m.path / "marker") == []
    assert (m.path / "sp ace" / "é.txt").read_bytes() == b"unicode"
    assert (m.path / "deep/a/b/c/d.txt").read_bytes() == b"deep"
    # MinIO lists only the object "both", and nothing under "both/" (not even a
    # listing of that prefix finds "both/child"): there is no sign of the directory.
    assert (m.path / "both").read_bytes() == b"object"
    assert "cannot be a file name" not in m.log_text()
    assert m.status()["conflicts"] == 0


@pytest.mark.fuse
@pytest.mark.s3
def test_an_object_over_a_directory_is_hidden_and_counted(mounter: MountFactory,
                                                          s3_backend: Backend) -> None:
    """Another tool writes the object ``x`` where the mount knows the directory ``x``
    (from the prefix of ``x/y``): the directory stays, the object is hidden with a log
    line, ``hidden_keys`` counts it (docs/SEMANTICS.md, "Keys that are not file names")."""
    put(s3_backend, "x/y", b"child")
    m = mounter(s3_backend, "--metadata-ttl", "0")
    assert (m.path / "x" / "y").read_bytes() == b"child"
    put(s3_backend, "x", b"object")
    assert "x" in os.listdir(m.path)  # lists the root again: MinIO shows only the object
    assert (m.path / "x").is_dir()
    assert m.status()["hidden_keys"] == 1
    assert "hiding key 'x': is both an object and a directory" in m.log_text()
    # A directory made through the mount has a sidecar, which says so to a new mount.
    (m.path / "d").mkdir()
    assert m.flush()["ok"]
    put(s3_backend, "d", b"object")
    other = fresh(mounter, s3_backend)
    assert (other.path / "d").is_dir()
    assert other.status()["hidden_keys"] == 1
    assert (other.path / "x").read_bytes() == b"object"  # no sign of x/ is left to it


def test_a_store_that_lists_both_shows_the_directory(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.put("both", b"object")
    rig.put("both/child", b"child")
    assert "both" in rig.list()
    both = rig.tree.find("both")
    assert both is not None and both.kind == "dir"
    assert rig.lister.hidden == {"both"}


@pytest.mark.fuse
@pytest.mark.s3
def test_large_directory_listing(mounter: MountFactory, s3_backend: Backend) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import obstore

    store = s3_backend.bucket.store()
    with ThreadPoolExecutor(8) as pool:  # more than one page of ListObjectsV2 (1000)
        list(pool.map(lambda i: obstore.put(store, f"many/f{i:04d}", b"x"), range(1200)))
    m = mounter(s3_backend)
    assert len(os.listdir(m.path / "many")) == 1200
    st = os.stat(m.path / "many" / "f1199")
    assert st.st_size == 1 and st.st_mode & 0o777 == 0o644


class Rig:
    """A Lister on a MemoryStore (no FUSE)."""

    def __init__(self, tmp_path: Path, url: str = "memory://") -> None:
        self.store = Store.open(url)
        self.tree = Tree(StateDB(str(tmp_path / "m.sqlite")), Defaults(1, 2, 0o644, 0o755), "t")
        self.pending: set[str] = set()
        self.gone: list[str] = []
        self.changed: list[str] = []
        self.replays = 0
        self.lister = Lister(self.tree, AsyncStore(self.store), lambda k: k in self.pending,
                             on_change=lambda n: self.changed.append(n.name),
                             on_gone=self._gone, replayed=lambda: self.replays)

    def _gone(self, node: Node) -> None:
        self.gone.append(node.name)
        self.tree.detach(node)

    def put(self, key: str, data: bytes = b"x") -> str | None:
        return self.store.put_bytes(key, data, if_match=None, create=False)

    def list(self, node: Node | None = None, ttl: float = 0.0) -> list[str]:
        node = node or self.tree.nodes[ROOT]
        trio.run(self.lister.ensure, node, ttl)
        return self.tree.names(node.ino)


def test_listing_imports_objects_prefixes_and_sidecars(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    etag = rig.put("plain.txt", b"abc")
    rig.put("dir/inner")
    link_etag = rig.put("link", b"plain.txt")
    rig.put(sidecar_key("link"), Sidecar("symlink", 0o777, 0, 0, 5, target="plain.txt",
                                         etag=link_etag).encode())
    rig.put(sidecar_key("empty"), Sidecar("dir", 0o700, 3, 4, 5).encode())
    names = rig.list()
    assert names == [".openfiles-lost+found-t", "dir", "empty", "link", "plain.txt"]
    plain = rig.tree.find("plain.txt")
    assert plain is not None and (plain.size, plain.etag, plain.mode, plain.uid) == (
        3, etag, 0o644, 1)
    link = rig.tree.find("link")
    assert link is not None and link.kind == "symlink" and link.target == "plain.txt"
    empty = rig.tree.find("empty")
    assert empty is not None and empty.kind == "dir" and (empty.mode, empty.uid) == (0o700, 3)


def test_a_prefix_with_nothing_under_it_is_not_a_directory(tmp_path: Path) -> None:
    """MinIO lists an object being written or deleted as a prefix for a moment ("f0/"
    for "f0"); an empty directory of a file:// bucket lists the same way. Taken for a
    directory, it hid the object "f0" once it was there, for good."""
    rig = Rig(tmp_path, f"file://{tmp_path}/bucket")
    rig.put("real/inner")
    (tmp_path / "bucket" / "f0").mkdir()
    assert "f0" in rig.store.list_dir("")[1]  # the store lists it as a prefix
    assert "f0" not in rig.list() and "real" in rig.list()
    (tmp_path / "bucket" / "f0").rmdir()
    rig.put("f0", b"object")
    assert "f0" in rig.list()
    f0 = rig.tree.find("f0")
    assert f0 is not None and f0.kind == "file" and rig.lister.hidden == set()


def test_a_stale_sidecar_is_ignored(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.put("f", b"v1")
    rig.put(sidecar_key("f"), Sidecar("file", 0o600, 9, 9, 5, etag='"old"').encode())
    rig.list()
    node = rig.tree.find("f")
    assert node is not None and (node.mode, node.uid) == (0o644, 1)


def test_relisting_follows_remote_changes_but_keeps_local_work(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.put("changed", b"1")
    rig.put("deleted", b"1")
    rig.put("dirty", b"1")
    rig.put("moving", b"1")
    rig.list()
    dirty = rig.tree.find("dirty")
    changed = rig.tree.find("changed")
    assert dirty is not None and changed is not None
    dirty.dirty = True
    changed.lookups = 1
    rig.put("changed", b"22")
    rig.store.delete("deleted")
    rig.store.delete("dirty")
    rig.store.delete("moving")
    rig.pending.add("moving")  # a journal entry still owns this key
    rig.put("new", b"n")
    names = rig.list()
    assert "new" in names and "dirty" in names and "moving" in names
    assert rig.gone == ["deleted"]
    assert changed.size == 2 and rig.changed == ["changed"]


def test_reserved_and_pending_keys_are_not_shown(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.put(".openfiles-lost+found-other/x")
    rig.put("ok")
    rig.put("renamed-away")
    rig.pending.add("renamed-away")
    assert rig.list() == [".openfiles-lost+found-t", "ok"]


def test_unchanged_sidecars_are_not_fetched_again(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    etag = rig.put("f", b"data")
    rig.put(sidecar_key("f"), Sidecar("file", 0o600, 5, 5, 1, etag=etag).encode())
    gets: list[str] = []
    real = rig.store.get

    def counting(key: str) -> bytes:
        gets.append(key)
        return real(key)

    rig.store.get = counting  # type: ignore[method-assign]
    rig.list()
    rig.list()
    assert gets == [sidecar_key("f")]
    node = rig.tree.find("f")
    assert node is not None and node.mode == 0o600
    # another mount changes only the attributes: the bytes (and their ETag) stay
    rig.put(sidecar_key("f"), Sidecar("file", 0o640, 5, 5, 1, etag=etag).encode())
    rig.list()
    assert node.mode == 0o640 and len(gets) == 2


def test_a_rename_replayed_while_a_listing_is_in_flight_is_not_taken_as_gone(
        tmp_path: Path) -> None:
    """The listing read the bucket before the journal's copy of ``a`` to ``c`` landed,
    and merged after the entry was done: ``c`` is in neither and must stay, and ``a``
    must not come back (found by the reference model: the renamed directory vanished
    from ``ls`` until the next listing)."""
    rig = Rig(tmp_path)
    rig.put("a/f")
    rig.list()
    moved = rig.tree.find("a")
    assert moved is not None and moved.etag is None
    rig.tree.move(moved, ROOT, "c")
    rig.pending |= {"a", "c"}  # the journal's renamedir a -> c, not replayed yet
    listed = rig.lister.store.list_dir

    async def list_then_replay(prefix: str) -> tuple[list[ObjectInfo], list[str]]:
        reply = await listed(prefix)
        if prefix == "" and rig.pending:  # read before the copy; now the replay runs
            rig.put("c/f")
            rig.store.delete("a/f")
            rig.pending -= {"a", "c"}
            rig.replays += 1
        return reply

    rig.lister.store.list_dir = list_then_replay  # type: ignore[method-assign]
    rig.list()
    assert rig.gone == [] and rig.tree.find("c") is moved
    assert rig.tree.find("a") is None  # nor does the renamed directory come back


def test_a_failed_sidecar_list_costs_a_confirmation_only_its_prefetch(tmp_path: Path) -> None:
    """The sidecars' LIST sent with a new prefix's confirmation fails: the parent's
    listing still succeeds and has the directory, whose own listing reads both LISTs
    again (nothing half read is kept for it)."""
    rig = Rig(tmp_path)
    rig.put("dir/a")
    rig.put(sidecar_key("dir/a"), Sidecar("file", 0o600, 0, 0, 5, etag=rig.put("dir/a")).encode())
    lists: list[str] = []
    real = rig.store.list_dir
    failed = [False]

    def flaky(prefix: str) -> tuple[list[ObjectInfo], list[str]]:
        lists.append(prefix)
        if prefix == sidecar_dir("dir") and not failed[0]:
            failed[0] = True
            raise StoreError("connection reset (a test's)")
        return real(prefix)

    rig.store.list_dir = flaky  # type: ignore[method-assign]
    assert "dir" in rig.list(ttl=60) and failed[0]
    node = rig.tree.find("dir")
    assert node is not None and rig.list(node, ttl=60) == ["a"]
    assert lists.count("dir/") == 2 and lists.count(sidecar_dir("dir")) == 2
    child = rig.tree.find("dir/a")
    assert child is not None and child.mode == 0o600  # the sidecar was read after all


def test_a_new_object_is_made_as_adopting_it_would_make_it(tmp_path: Path) -> None:
    """A new object without a sidecar is made in one step (the common case of a
    large new directory); the node is the one adopt() makes of an existing node."""
    rig = Rig(tmp_path)
    rig.put("new", b"abcd")
    rig.list()
    made = rig.tree.find("new")
    assert made is not None and made.etag is not None
    info = next(o for o in rig.store.list_dir("")[0] if o.key == "new")
    other = rig.tree.add(ROOT, "other", "dir", mode=0o700, uid=9, gid=9, xattrs={"a": b"b"},
                         dirty=True, custom=True, atime_ns=5, ranges=[[0, 1]])
    rig.lister.adopt(other, info, None, False)
    skip = {"ino", "name", "last_access", "validated"}
    assert {k: v for k, v in vars(made).items() if k not in skip} == \
        {k: v for k, v in vars(other).items() if k not in skip}
    loaded = {n.name: n for n in rig.tree.db.load_nodes()}
    assert {k: getattr(loaded["new"], k) for k in PERSISTED if k not in skip} == \
        {k: getattr(made, k) for k in PERSISTED if k not in skip}


def test_the_list_that_confirms_a_new_directory_is_its_listing(tmp_path: Path) -> None:
    """A new prefix is listed to confirm it (see the test above), with the LIST of
    its sidecars; an ``ls`` of the directory right after takes both instead of
    sending the same LISTs again."""
    rig = Rig(tmp_path)
    rig.put("dir/a")
    rig.put("dir/b")
    lists: list[str] = []
    real = rig.store.list_dir

    def counting(prefix: str) -> tuple[list[ObjectInfo], list[str]]:
        lists.append(prefix)
        return real(prefix)

    rig.store.list_dir = counting  # type: ignore[method-assign]
    rig.list(ttl=60)
    node = rig.tree.find("dir")
    assert node is not None and lists.count("dir/") == lists.count(sidecar_dir("dir")) == 1
    sent = len(lists)
    rig.put("dir/c")  # lands meanwhile, elsewhere: within the 2 s, like a listing's TTL
    assert rig.list(node, ttl=60) == ["a", "b"] and len(lists) == sent  # no LIST at all

    rig.tree.nodes[ROOT].listed = node.listed = 0  # both listed again
    rig.store.delete("dir/a")
    rig.store.delete("dir/b")
    rig.store.delete("dir/c")
    rig.put("new/x")
    rig.list(ttl=60)
    rig.replays += 1  # one of the engine's own changes lands after that LIST
    assert rig.list(rig.tree.find("new"), ttl=60) == ["x"] and lists.count("new/") == 2

    rig.put("zero/x")  # a metadata TTL of 0 promises a LIST for every listing
    rig.tree.nodes[ROOT].listed = 0
    rig.list()
    rig.list(rig.tree.find("zero"))
    assert lists.count("zero/") == 2


class Gate:
    """Holds the LISTs of the prefixes given until their event is set (slow LISTs)."""

    def __init__(self, rig: Rig, *held: str, fail: bool = False) -> None:
        self.fail = fail
        self.events = {prefix: trio.Event() for prefix in held}
        self.lists: list[str] = []
        self.real = rig.lister.store.list_dir
        rig.lister.store.list_dir = self.list_dir  # type: ignore[method-assign]

    async def list_dir(self, prefix: str) -> tuple[list[ObjectInfo], list[str]]:
        self.lists.append(prefix)
        if prefix in self.events:
            await self.events[prefix].wait()
            if self.fail:
                raise StoreError("connection reset (a test's)")
        return await self.real(prefix)


async def finished(*events: trio.Event) -> None:
    with trio.fail_after(10):  # the LISTs run in threads
        for event in events:
            await event.wait()


def test_a_lookup_waits_only_for_the_new_prefix_it_asks_for(tmp_path: Path) -> None:
    """Three new prefixes at the root: the lookup of ``files`` returns once ``files/``
    is confirmed, while the LISTs of ``out/`` and ``gone/`` are still out. A lookup
    of ``out`` waits for ``out/`` only, a readdir of the root for both; ``out`` shows
    when its LIST ends, ``gone`` (nothing under it by then) never. Until then the root
    is saved as never listed, so that a crash does not leave it listed without them."""
    rig = Rig(tmp_path)
    rig.put("files/a")
    rig.put("out/b")
    rig.put("gone/c")
    gate = Gate(rig, "out/", "gone/")
    root = rig.tree.nodes[ROOT]

    def saved_listed() -> float:
        return next(n.listed for n in rig.tree.db.load_nodes() if n.ino == ROOT)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            rig.lister.nursery = nursery
            await rig.lister.ensure(root, 60, "files")
            assert rig.tree.find("files") is not None
            assert rig.tree.find("out") is None and rig.tree.find("gone") is None
            assert root.listed and saved_listed() == 0
            rig.store.delete("gone/c")
            waiting = {"out": trio.Event(), "readdir": trio.Event()}

            async def wait(name: str | None) -> None:
                await rig.lister.ensure(root, 60, name)
                waiting[name or "readdir"].set()

            nursery.start_soon(wait, "out")
            nursery.start_soon(wait, None)
            await trio.testing.wait_all_tasks_blocked()
            assert not any(e.is_set() for e in waiting.values())
            assert "out/" in gate.lists and "gone/" in gate.lists
            await rig.lister.ensure(root, 60, "nothing")  # not a new prefix: no wait
            gate.events["out/"].set()
            await finished(waiting["out"])
            assert rig.tree.find("out") is not None and not waiting["readdir"].is_set()
            assert saved_listed() == 0  # gone/ is not settled yet
            gate.events["gone/"].set()
            await finished(waiting["readdir"])
        assert rig.tree.names(ROOT) == [".openfiles-lost+found-t", "files", "out"]
        assert saved_listed() == root.listed
        assert gate.lists.count("") == 1  # the root was listed once

    trio.run(main)


def test_a_listing_meanwhile_waits_for_a_running_confirmation_or_leaves_it_running(
        tmp_path: Path) -> None:
    """The root is listed again (a TTL of 0) while ``out/``'s confirmation runs: a
    lookup of another name leaves it running and does not take ``out`` for gone once
    it is added; a readdir waits for it and shows ``out``."""
    rig = Rig(tmp_path)
    rig.put("files/a")
    rig.put("out/b")
    gate = Gate(rig, "out/")
    root = rig.tree.nodes[ROOT]

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            rig.lister.nursery = nursery
            await rig.lister.ensure(root, 0, "files")
            await trio.testing.wait_all_tasks_blocked()
            await rig.lister.ensure(root, 0, "files")  # lists again, leaves out/ running
            assert gate.lists.count("") == 2 and gate.lists.count("out/") == 1
            readdir = trio.Event()

            async def listing() -> None:
                await rig.lister.ensure(root, 0, None)
                readdir.set()

            nursery.start_soon(listing)
            await trio.testing.wait_all_tasks_blocked()
            assert not readdir.is_set() and gate.lists.count("") == 3
            gate.events["out/"].set()
            await finished(readdir)
            assert rig.tree.find("out") is not None and rig.gone == []
            assert gate.lists.count("out/") == 1  # one confirmation for all three

    trio.run(main)


def test_a_confirmation_that_fails_later_fails_its_waiters_and_the_next_look_lists_again(
        tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.put("files/a")
    rig.put("out/b")
    gate = Gate(rig, "out/", fail=True)
    root = rig.tree.nodes[ROOT]

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            rig.lister.nursery = nursery
            await rig.lister.ensure(root, 60, "files")
            gate.events["out/"].set()
            with pytest.raises(StoreError):  # the root had never been listed
                await rig.lister.ensure(root, 60, None)
            assert root.listed == 0 and rig.tree.find("out") is None
            gate.fail = False
            await rig.lister.ensure(root, 60, None)
            assert rig.tree.find("out") is not None and gate.lists.count("") == 2

    trio.run(main)


def test_with_the_engines_nursery_a_listing_writes_its_new_rows_after_it(
        tmp_path: Path) -> None:
    """The rows of the nodes a listing imports are written ROWS_LATER after its merge.
    Until then SQLite holds the directory as it was before (not listed), so what a
    crash leaves lists it again rather than showing it without those entries."""
    rig = Rig(tmp_path)
    for n in range(3):
        rig.put(f"d/f{n}")
    rig.list()
    d = rig.tree.find("d")
    assert d is not None and not d.listed

    def after_a_crash() -> Tree:
        return Tree(StateDB(str(tmp_path / "m.sqlite")), Defaults(1, 2, 0o644, 0o755), "t")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            rig.lister.nursery = nursery
            await rig.lister.ensure(d, 0.0)
            assert rig.tree.names(d.ino) == ["f0", "f1", "f2"] and d.listed
            crashed = after_a_crash()
            assert crashed.names(d.ino) == [] and crashed.nodes[d.ino].listed == 0.0
            await trio.sleep(ROWS_LATER * 2)
            written = after_a_crash()
            assert written.names(d.ino) == ["f0", "f1", "f2"]
            assert written.nodes[d.ino].listed == d.listed
            f0 = written.find("d/f0")
            assert f0 is not None and (f0.size, f0.etag) == (1, rig.tree.find("d/f0").etag)
            rig.lister.nursery = None

    trio.run(main)


def test_a_directory_is_saved_as_listed_only_once_its_rows_and_prefixes_are_both_done(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A listing that saves its new rows later and also confirms a new prefix in the
    background: the directory's row says listed only once the prefix is settled, and
    that save writes the rows first, so a crash at any point never leaves it listed
    without them. (The rows' own task is put off past the test.)"""
    monkeypatch.setattr(listing, "ROWS_LATER", 3600.0)
    rig = Rig(tmp_path)
    rig.put("files/a")
    rig.put("out/b")
    rig.put("top.txt")
    gate = Gate(rig, "out/")
    root = rig.tree.nodes[ROOT]

    def saved() -> dict[int, Node]:
        return {n.ino: n for n in rig.tree.db.load_nodes()}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            rig.lister.nursery = nursery
            await rig.lister.ensure(root, 60, "files")
            top = rig.tree.find("top.txt")
            assert top is not None and rig.tree.find("out") is None
            assert saved()[ROOT].listed == 0 and top.ino not in saved()
            gate.events["out/"].set()
            with trio.fail_after(10):
                await rig.lister.ensure(root, 60)  # a readdir waits for out/
            rows = saved()
            assert rows[ROOT].listed == root.listed > 0 and top.ino in rows
            assert rig.tree.find("out") is not None
            rig.lister.nursery = None
            nursery.cancel_scope.cancel()  # the rows' task, put off

    trio.run(main)


def test_without_a_nursery_a_listing_confirms_every_new_prefix_itself(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.put("files/a")
    rig.put("out/b")
    trio.run(rig.lister.ensure, rig.tree.nodes[ROOT], 60, "files")
    assert rig.tree.find("out") is not None


def test_a_lookup_sends_the_list_of_its_name_beside_the_directory_s_own(
        tmp_path: Path) -> None:
    """In a directory not listed yet, the LIST that confirms the looked-up name as a
    new prefix goes out beside the directory's LIST, not after it, and the listing of
    the new directory then takes it instead of sending it again. A name that is a
    file costs that LIST in vain and nothing else; one that fails is sent again."""
    rig = Rig(tmp_path)
    rig.put("files/a")
    rig.put("plain")
    gate = Gate(rig, "")
    root = rig.tree.nodes[ROOT]

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            rig.lister.nursery = nursery
            done = trio.Event()

            async def lookup() -> None:
                await rig.lister.ensure(root, 60, "files")
                done.set()

            nursery.start_soon(lookup)
            await trio.testing.wait_all_tasks_blocked()
            assert "files/" in gate.lists and not done.is_set()  # the root's LIST is held
            gate.events[""].set()
            await finished(done)
            files = rig.tree.find("files")
            assert files is not None and files.kind == "dir"
            await rig.lister.ensure(files, 60)
            assert rig.tree.names(files.ino) == ["a"]
            assert gate.lists.count("files/") == 1  # its listing took the early LIST

    trio.run(main)
    plain = rig.tree.find("plain")
    assert plain is not None and plain.kind == "file"


def test_an_early_list_that_fails_is_sent_again_by_the_confirmation(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.put("files/a")
    real = rig.lister.store.list_dir
    calls: list[str] = []

    async def flaky(prefix: str) -> tuple[list[ObjectInfo], list[str]]:
        calls.append(prefix)
        if prefix == "files/" and calls.count(prefix) == 1:
            raise StoreError("connection reset (a test's)")
        return await real(prefix)

    rig.lister.store.list_dir = flaky  # type: ignore[method-assign]
    root = rig.tree.nodes[ROOT]
    trio.run(rig.lister.ensure, root, 60, "files")
    files = rig.tree.find("files")
    assert files is not None and files.kind == "dir" and calls.count("files/") == 2


def test_an_early_list_a_replay_may_have_made_stale_is_sent_again(tmp_path: Path) -> None:
    """A journal entry replayed while the directory was read (a rename of the very
    name looked up, say) may have changed what the early LIST saw: the confirmation
    does not trust it and lists the name again."""
    rig = Rig(tmp_path)
    rig.put("files/a")
    gate = Gate(rig, "")
    root = rig.tree.nodes[ROOT]

    async def main() -> None:
        done = trio.Event()

        async def lookup() -> None:
            await rig.lister.ensure(root, 60, "files")
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(lookup)
            await trio.testing.wait_all_tasks_blocked()
            assert "files/" in gate.lists
            rig.replays += 1  # the journal moved a key meanwhile
            gate.events[""].set()
            await finished(done)

    trio.run(main)
    files = rig.tree.find("files")
    assert files is not None and files.kind == "dir"
    assert gate.lists.count("files/") == 2
