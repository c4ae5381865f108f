"""Lazy import: list a directory once (with delimiter) and merge it into the tree.

Merge rules (bucket wins, local work is never dropped):
- a remote entry with no local node becomes a node (attributes from its sidecar
  when the sidecar's ETag matches the object, otherwise the mount defaults);
- a clean local file whose remote ETag changed takes the new attributes and
  loses its cached data;
- a clean local file that vanished remotely is removed;
- dirty files, lost+found, and keys with a pending journal entry are left alone;
- odd keys (``a//b``, ``.``, ``..``, names over 255 bytes, the engine's
  reserved names at the root) are hidden with a log line; a key that is both
  an object and a directory (a prefix in the listing, a directory sidecar, or
  a directory the tree already has) shows as the directory, and the object is
  hidden with a log line and counted in ``hidden``. A store that lists only
  the object (MinIO) and gives no other sign shows the file: nothing under it
  can be listed there. A prefix that is the only sign of a new directory
  counts only if a listing under it finds an object (MinIO lists an object
  being written or deleted as a prefix for a moment).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import trio

from openfiles_engine.bucket.asyncstore import AsyncStore
from openfiles_engine.bucket.layout import (
    META_SUFFIX,
    Sidecar,
    is_reserved,
    join,
    sidecar_dir,
    sidecar_key,
    valid_name,
)
from openfiles_engine.bucket.store import ObjectInfo, ObjectNotFound, StoreError
from openfiles_engine.state.inode import ROOT, SPECIAL, Node
from openfiles_engine.state.tree import Tree

log = logging.getLogger(__name__)

RELIST_TRIES = 5
"""LISTs of one directory in a row while journal replays or exports keep landing in between."""
PREFETCH_TTL = 2.0
"""Seconds the listing of a new directory, read to confirm it, may stand in for its own
LIST (``Lister._confirmed``): an ``ls -l`` of it comes right after."""
ROWS_LATER = 0.1
"""Seconds after a listing's merge that the rows of the nodes it imported are written
(``StateDB.save`` with ``later``): after the ``ls`` that asked for it, not before
its ``opendir`` is answered."""

Listed = tuple[list[ObjectInfo], list[str], list[ObjectInfo]]
"""A directory as two LISTs read it: its objects, its prefixes, its sidecars."""
Peeked = tuple[int, float, Listed, bool]
"""A new prefix's confirmation LISTs: ``replayed()`` before them, ``time.monotonic()``
once they were read, what they read, and whether the sidecars' LIST was read
(``Lister._peek``)."""


@dataclass
class Settling:
    """The confirmation of one new prefix that runs after its parent's listing ended
    (``Lister._confirmed``)."""

    done: trio.Event
    first: bool
    """The parent had never been listed: a failure fails whoever waits for it."""
    kept: bool = False
    failed: StoreError | None = None


async def _at_once(calls: list[Callable[[], Awaitable[None]]]) -> None:
    """Run ``calls`` concurrently; the first StoreError comes out as itself (not inside
    an ExceptionGroup), so that callers keep telling an unreachable bucket apart."""
    failed: list[StoreError] = []

    async def run(call: Callable[[], Awaitable[None]]) -> None:
        try:
            await call()
        except StoreError as exc:
            failed.append(exc)

    async with trio.open_nursery() as nursery:
        for call in calls:
            nursery.start_soon(run, call)
    if failed:
        raise failed[0]


class Lister:
    """Imports directories and revalidates files against the bucket."""

    def __init__(self, tree: Tree, store: AsyncStore, pending: Callable[[str], bool],
                 on_change: Callable[[Node], None], on_gone: Callable[[Node], None],
                 replayed: Callable[[], int] = lambda: 0) -> None:
        """``pending(key)``: does a journal entry still own ``key``; ``replayed()``: a
        count that moves whenever the engine's own change reaches the bucket (a
        journal entry, an export)."""
        self.tree = tree
        self.store = store
        self.pending = pending
        self.replayed = replayed
        self.on_change = on_change
        self.on_gone = on_gone
        self._locks: dict[int, trio.Lock] = {}
        self.hidden: set[str] = set()
        self._prefetched: dict[str, tuple[int, float, Listed]] = {}
        """prefix -> (``replayed()`` before it was read, when, its listing)."""
        self.nursery: trio.Nursery | None = None
        """Where confirmations nobody waits for run (the engine's); None: a listing
        waits for all of its own."""
        self._settling: dict[int, dict[str, Settling]] = {}
        """Directory inode -> name -> the confirmation of that new prefix, running."""
        self._writing = False
        """A task will write the rows saved ``later`` (``_write_soon``)."""

    def forget(self, ino: int) -> None:
        """Drop per-inode state of a node that is gone for good."""
        self._locks.pop(ino, None)

    async def ensure(self, node: Node, ttl: float, name: str | None = None) -> None:
        """List ``node`` (a directory) unless it was listed less than ``ttl`` seconds ago.

        ``name``: only that entry must be settled (a lookup); the confirmations of
        other new prefixes may still run when this returns (``_confirmed``). None:
        the whole directory (a readdir, a create, an rmdir's check).
        """
        if node.kind != "dir" or node.lost:
            return
        if not (node.listed and time.time() - node.listed < ttl):
            lock = self._locks.setdefault(node.ino, trio.Lock())
            async with lock:
                if not (node.listed and time.time() - node.listed < ttl):
                    try:
                        await self._list(node, ttl, name)
                    except StoreError as exc:
                        if not node.listed or isinstance(exc, ObjectNotFound):
                            raise
                        # Bucket unreachable: keep serving what we know; try again later.
                        log.info("re-listing %r failed, using the cached listing: %s",
                                 self.tree.path(node), exc)
        await self._settled(node, name)

    async def _settled(self, node: Node, name: str | None) -> None:
        """Wait for the confirmations still running in ``node`` (of ``name`` only, if
        given); one that failed fails a directory never listed before, as its
        listing would have."""
        running = self._settling.get(node.ino, {})
        if name is None:
            waits = list(running.values())
        else:
            waits = [running[name]] if name in running else []
        for settling in waits:
            await settling.done.wait()
            if settling.failed is not None and settling.first:
                failed = settling.failed  # a new exception each time: several tasks raise it
                raise type(failed)(str(failed)) from failed

    async def _read(self, node: Node, path: str, prefix: str,
                    listed: Listed | None) -> tuple[
            list[ObjectInfo], list[str], dict[str, tuple[Sidecar, str | None]], set[str],
            set[str]]:
        """One read of a directory in the bucket: its objects and prefixes, the
        sidecars (fetched unless their ETag is the one already applied), the names
        that have a sidecar, and the directories known only by an applied sidecar.
        ``listed``: the two LISTs, already read."""
        if listed is None:
            listed, _ = await self._list_both(path, prefix)
        objects, prefixes, metas = listed
        sidecars: dict[str, tuple[Sidecar, str | None]] = {}
        with_sidecar: set[str] = set()
        marked_dirs: set[str] = set()
        async with trio.open_nursery() as nursery:
            for info in metas:
                base = info.key.rsplit("/", 1)[-1]
                if not base.endswith(META_SUFFIX):
                    continue
                name = base[: -len(META_SUFFIX)]
                with_sidecar.add(name)
                child = self.tree.child(node.ino, name)
                if child is not None and info.etag and child.sidecar_etag == info.etag:
                    if child.kind == "dir":
                        marked_dirs.add(name)
                    continue  # seen this sidecar already: no GET
                nursery.start_soon(self._fetch_sidecar, info, name, sidecars)
        return objects, prefixes, sidecars, with_sidecar, marked_dirs

    async def _list_both(self, path: str, prefix: str,
                         sidecars_may_fail: bool = False) -> tuple[Listed, bool]:
        """The LIST of a directory's objects and that of its sidecars, sent at once;
        and whether the sidecars' LIST was read. With ``sidecars_may_fail`` its
        failure leaves it unread instead of raising (a prefix's confirmation needs
        only the objects' LIST: the sidecars' is read for the listing after it)."""
        read: list[tuple[list[ObjectInfo], list[str]]] = []
        metas: list[ObjectInfo] = []
        sidecars_read = True

        async def objects_of() -> None:
            read.append(await self.store.list_dir(prefix))

        async def sidecars_of() -> None:
            nonlocal sidecars_read
            try:
                metas.extend((await self.store.list_dir(sidecar_dir(path)))[0])
            except ObjectNotFound:
                pass
            except StoreError as exc:
                if not sidecars_may_fail:
                    raise
                log.debug("the sidecars' LIST of %r failed: %s", path, exc)
                sidecars_read = False

        await _at_once([objects_of, sidecars_of])
        return (read[0][0], read[0][1], metas), sidecars_read

    async def _list(self, node: Node, ttl: float, want: str | None = None) -> None:
        path = self.tree.path(node)
        previous = node.listed
        prefix = f"{path}/" if path else ""
        # A journal entry replayed while the listing reads the bucket (a rename's copy
        # and delete) makes what it read stale for the keys it moved, which are no
        # longer pending when the listing merges: the moved entry would look gone and
        # its source would come back. So does an export (a new file clean by then
        # would look gone, an updated one would take the older ETag read). So such a
        # listing is read again.
        ahead: dict[str, Peeked] = {}
        wanted = want is not None and self.tree.child(node.ino, want) is None and \
            want not in self._settling.get(node.ino, {})

        async def read_it() -> None:
            for _ in range(RELIST_TRIES):
                replayed, listed = self.replayed(), None
                early = self._prefetched.pop(prefix, None)
                if early is not None and time.monotonic() - early[1] < min(PREFETCH_TTL, ttl):
                    replayed, listed = early[0], early[2]
                read.append(await self._read(node, path, prefix, listed))
                if self.replayed() == replayed:
                    return
            log.info("listing %r raced the journal %d times; merging it as read",
                     path, RELIST_TRIES)

        async def peek_wanted() -> None:
            # A lookup in a directory not listed yet: the name it asks for is most
            # often a new prefix (``cd``, ``ls dir``), whose confirmation LIST would
            # follow the listing's. Sent beside it instead; if the name is a file,
            # two LISTs that find nothing were sent in vain.
            assert want is not None
            key = join(path, want)
            try:
                ahead[key] = await self._peek(key)
            except StoreError as exc:  # the confirmation, if one is needed, asks again
                log.debug("the early LIST of %r failed: %s", key, exc)

        read: list[tuple[list[ObjectInfo], list[str], dict[str, tuple[Sidecar, str | None]],
                         set[str], set[str]]] = []
        if wanted:
            await _at_once([read_it, peek_wanted])
            # A journal entry replayed since the early LIST began (a rename of that very
            # name) may have made it stale: the confirmation then sends it again.
            ahead = {k: v for k, v in ahead.items() if v[0] == self.replayed()}
        else:
            await read_it()
        objects, prefixes, sidecars, with_sidecar, marked_dirs = read[-1]
        prefixes, later = await self._confirmed(node, prefixes, sidecars, objects, want, ahead)
        files: dict[str, ObjectInfo] = {}
        for info in objects:
            if info.key == path:
                continue  # a "dir/" marker made by another tool (obstore drops the slash)
            name = info.key[len(prefix):]
            if self._visible(node, name, info.key):
                files[name] = info
        dirs = {p[len(prefix):] for p in prefixes}
        dirs |= marked_dirs | {name for name, (sc, _) in sidecars.items() if sc.kind == "dir"}
        dirs = {d for d in dirs if self._visible(node, d, join(path, d))}
        for name in dirs & set(files):
            self._hide(join(path, name), "is both an object and a prefix; showing the directory")
            del files[name]
        seen = set(files) | dirs | later
        # One commit for the whole merge, not one per entry: a listing of 1000
        # objects was 2000 SQLite commits. Nothing awaits in here, so no other
        # handler sees the tree half merged.
        with self.tree.db.transaction():
            self.tree.will_change(node)
            for name in sorted(dirs):
                self._merge_dir(node, name, sidecars.get(name))
            new: list[tuple[str, int, int, str | None, bool]] = []
            for name, info in sorted(files.items()):
                found = sidecars.get(name)
                if found is None and self.tree.child(node.ino, name) is None:
                    # A new object with no sidecar (the common case, 1000 of them in a
                    # new directory): made as adopt() would leave it, all at once.
                    new.append((name, info.size, info.mtime_ns, info.etag,
                                name in with_sidecar))
                else:
                    self._merge_file(node, name, info, found, name in with_sidecar)
            d = self.tree.defaults
            # With the engine's nursery, the new rows are written after the reply
            # (ROWS_LATER): SQLite took a third of this merge's time.
            deferred = bool(new) and self.nursery is not None
            self.tree.add_files(node.ino, new, mode=d.file_mode, uid=d.uid, gid=d.gid,
                                later=deferred)
            for name in self.tree.names(node.ino):
                child = self.tree.child(node.ino, name)
                if child is not None and name not in seen:
                    self._maybe_gone(child)
            node.listed = time.time()
            if later or deferred:
                # Saved as listed before, until those prefixes are settled and those
                # rows written: after a crash before then the directory is listed
                # again, and if that fails, it is not shown as if it had none of them.
                node.listed, stamp = previous, node.listed
                self.tree.save(node)
                node.listed = stamp
                if deferred and not later:
                    self.tree.db.save(node, later=True)
            else:
                self.tree.save(node)
        if deferred:
            self._write_soon()
        running = self._settling.get(node.ino, {})
        for name in sorted(later):
            # One an earlier listing started goes on; one that ended meanwhile added its
            # directory already.
            if name not in running and self.tree.child(node.ino, name) is None:
                self._settle_later(node, f"{prefix}{name}", name, sidecars.get(name),
                                   previous)
        if later and not self._settling.get(node.ino):
            self.tree.save(node)

    def _write_soon(self) -> None:
        """Write the rows saved ``later`` in ROWS_LATER seconds (any other write first
        writes them at once)."""
        if self._writing or self.nursery is None:
            return

        async def run() -> None:
            try:
                await trio.sleep(ROWS_LATER)
                self.tree.db.write_later()
            except Exception as exc:  # kept: the next write tries them again
                log.warning("writing the rows of imported entries failed: %s", exc)
            finally:
                self._writing = False

        try:
            self.nursery.start_soon(run)
        except RuntimeError:  # the engine is stopping: its close writes them
            return
        self._writing = True

    async def _confirmed(self, node: Node, prefixes: list[str],
                         sidecars: dict[str, tuple[Sidecar, str | None]],
                         objects: list[ObjectInfo], want: str | None,
                         ahead: dict[str, Peeked] | None = None) -> tuple[list[str], set[str]]:
        """``prefixes`` without those of new directories that hold nothing when
        listed, and without those confirmed later; and the names of the latter.

        MinIO lists an object being written or deleted as a prefix for a moment
        (``f0/`` for ``f0``; measured: 12 of 1500 listings during PUTs and
        DELETEs of ``f0``). Taken for a directory, it shadowed the object for good
        and a chmod exported it as a directory sidecar. So a prefix that is the
        only sign of a directory the tree does not have yet is listed (only on its
        first sight) and kept if anything is under it. That LIST is the directory's
        own (one level, with delimiter), sent with the LIST of its sidecars; both
        are kept for a moment so that the listing of the directory, which usually
        follows, takes them instead of sending them again (``PREFETCH_TTL``). Only
        prefixes under it (no object) are checked with a recursive LIST.

        A lookup (``want``: the name it asks for) waits only for its own name's
        confirmation. The others run on in the engine's nursery (``later``), each
        adding its directory when it ends: the lookup of ``files`` at the root of
        a bucket whose ``out/`` holds 3000 objects waited 100-150 ms for ``out/``'s
        LIST. Until they end, a readdir of the directory, a create in it and a
        lookup of one of those names wait for them (``_settled``). A prefix that
        is also an object's name is confirmed at once (which of the two shows is
        decided in the listing's merge). ``ahead``: LISTs of new prefixes already
        read (:meth:`_peek`), used instead of sending them again.
        """
        empty: set[str] = set()
        later: set[str] = set()
        running = self._settling.get(node.ino, {})
        names = {o.key.rsplit("/", 1)[-1] for o in objects}
        now: list[str] = []
        waits: list[tuple[str, Settling]] = []
        for key in prefixes:
            name = key.rsplit("/", 1)[-1]
            if self.tree.child(node.ino, name) is not None or \
                    not self._visible(node, name, key) or \
                    (name in sidecars and sidecars[name][0].kind == "dir"):
                continue
            if name in running:  # started by an earlier listing
                if want is None or name == want or name in names:
                    waits.append((key, running[name]))
                else:
                    later.add(name)
            elif self.nursery is None or want is None or name == want or name in names:
                now.append(key)
            else:
                later.add(name)

        async def check(key: str) -> None:
            if not await self._holds(key, (ahead or {}).get(key)):
                empty.add(key)

        await _at_once([partial(check, key) for key in now])
        for _key, settling in waits:
            await settling.done.wait()
        # One that failed is tried again here: this listing fails only if it fails too.
        await _at_once([partial(check, key) for key, settling in waits
                        if settling.failed is not None])
        empty |= {key for key, settling in waits
                  if settling.failed is None and not settling.kept}
        kept = [key for key in prefixes
                if key not in empty and key.rsplit("/", 1)[-1] not in later]
        return kept, later

    async def _peek(self, key: str) -> Peeked:
        """The LISTs that confirm the new prefix ``key`` (see :meth:`_holds`)."""
        replayed = self.replayed()
        listed, whole = await self._list_both(key, f"{key}/", sidecars_may_fail=True)
        return replayed, time.monotonic(), listed, whole

    async def _holds(self, key: str, peeked: Peeked | None = None) -> bool:
        """Whether anything is under the new prefix ``key`` (see ``_confirmed``);
        ``peeked``: its LISTs, read already."""
        replayed, read_at, listed, whole = peeked if peeked is not None else \
            await self._peek(key)
        objects, prefixes, _ = listed
        if (objects or prefixes) and whole:
            now = time.monotonic()
            for old in [k for k, v in self._prefetched.items() if now - v[1] > PREFETCH_TTL]:
                del self._prefetched[old]  # never listed: a directory nobody opened
            self._prefetched[f"{key}/"] = (replayed, read_at, listed)  # aged from its read
        if not objects and not (prefixes and await self.store.any_under(f"{key}/")):
            log.info("ignoring the prefix %r: nothing is under it", key)
            return False
        return True

    def _settle_later(self, node: Node, key: str, name: str,
                      found: tuple[Sidecar, str | None] | None, previous: float) -> None:
        """Confirm the new prefix ``key`` in the background; add its directory if
        anything is under it and the directory is still where the listing found it
        with nothing at that name."""
        assert self.nursery is not None
        settling = Settling(trio.Event(), first=not previous)

        async def run() -> None:
            ended = False
            try:
                try:
                    settling.kept = await self._holds(key)
                    ended = True
                except StoreError as exc:
                    log.info("confirming the prefix %r failed; its parent is listed again "
                             "next time: %s", key, exc)
                    settling.failed = exc
                finally:
                    running = self._settling.get(node.ino, {})
                    if running.get(name) is settling:
                        del running[name]
                    if not running:
                        self._settling.pop(node.ino, None)
                    if not ended:  # failed or cancelled: the listing is not whole
                        node.listed = min(node.listed, previous)
                if self._placed(node, key) and settling.kept and \
                        self.tree.child(node.ino, name) is None and \
                        self._visible(node, name, key):
                    with self.tree.db.transaction():
                        self._merge_dir(node, name, found)
                if not running and self._placed(node, key):
                    self.tree.save(node)  # saved as listed only now (see _list)
            except Exception as exc:  # a bug or a full disk must not end the engine
                log.exception("confirming the prefix %r failed", key)
                node.listed = min(node.listed, previous)
                if settling.failed is None:
                    settling.failed = StoreError(f"confirming {key!r} failed: {exc}")
            finally:
                settling.done.set()

        self.nursery.start_soon(run)
        self._settling.setdefault(node.ino, {})[name] = settling

    def _placed(self, node: Node, key: str) -> bool:
        """Is the directory ``node`` still in the tree, at the parent path of ``key``?"""
        if self.tree.get(node.ino) is not node or (node.ino != ROOT and not node.parent):
            return False
        try:
            return join(self.tree.path(node), key.rsplit("/", 1)[-1]) == key
        except KeyError:
            return False

    async def _fetch_sidecar(self, info: ObjectInfo, name: str,
                             out: dict[str, tuple[Sidecar, str | None]]) -> None:
        try:
            sc = Sidecar.decode(await self.store.get(info.key), info.key)
        except ObjectNotFound:
            return
        if sc is not None:
            out[name] = (sc, info.etag)

    def _visible(self, parent: Node, name: str, key: str) -> bool:
        if parent.ino == ROOT and is_reserved(name):
            return False
        if not valid_name(name):
            self._hide(key, "cannot be a file name")
            return False
        return not self.pending(key)

    def _hide(self, key: str, why: str) -> None:
        if key not in self.hidden:
            self.hidden.add(key)
            log.warning("hiding key %r: %s", key, why)

    def _merge_dir(self, parent: Node, name: str,
                   found: tuple[Sidecar, str | None] | None) -> None:
        child = self.tree.child(parent.ino, name)
        if child is not None:
            if child.kind == "dir" and found is not None and not child.dirty:
                self.tree.will_change(child)
                self._apply(child, *found)
                self.tree.save(child)
            return
        d = self.tree.defaults
        child = self.tree.add(parent.ino, name, "dir", mode=d.dir_mode, uid=d.uid, gid=d.gid)
        if found is not None:
            self._apply(child, *found)
        self.tree.save(child)

    def _merge_file(self, parent: Node, name: str, info: ObjectInfo,
                    found: tuple[Sidecar, str | None] | None, has_sidecar: bool) -> None:
        child = self.tree.child(parent.ino, name)
        if child is not None and child.kind == "dir":
            # MinIO lists only the object when a key is also a prefix: the tree's
            # directory (made here, or known from a sidecar) shadows the object.
            self._hide(info.key, "is both an object and a directory; showing the directory")
            return
        if child is not None and child.dirty:
            return  # export decides
        if child is not None and child.etag == info.etag:
            child.validated = time.time()
            if found is not None and found[0].etag == info.etag:
                self.tree.will_change(child)
                self._apply(child, *found)  # attributes changed elsewhere, bytes did not
                self.tree.save(child)
            return
        if child is None:
            d = self.tree.defaults
            child = self.tree.add(parent.ino, name, "file", mode=d.file_mode, uid=d.uid,
                                  gid=d.gid)
        self.adopt(child, info, found, has_sidecar)
        if child.lookups:
            self.on_change(child)

    def adopt(self, node: Node, info: ObjectInfo, found: tuple[Sidecar, str | None] | None,
              has_sidecar: bool) -> None:
        """Make ``node`` a clean copy of the remote ``info`` with no cached bytes."""
        self.tree.will_change(node)
        d = self.tree.defaults
        node.kind, node.mode, node.uid, node.gid = "file", d.file_mode, d.uid, d.gid
        node.target, node.xattrs, node.explicit_mtime = "", {}, False
        node.atime_ns, node.explicit_atime, node.rdev = None, False, 0
        node.size, node.mtime_ns, node.ctime_ns = info.size, info.mtime_ns, info.mtime_ns
        node.etag, node.dirty, node.full, node.ranges = info.etag, False, info.size == 0, []
        node.validated = time.time()
        node.sidecar, node.sidecar_etag, node.custom = has_sidecar, None, False
        if found is not None and found[0].kind in ("file", "symlink", *SPECIAL) and \
                found[0].etag == info.etag:
            self._apply(node, *found)
        self.tree.save(node)

    def _apply(self, node: Node, sc: Sidecar, sidecar_etag: str | None) -> None:
        node.mode, node.uid, node.gid = sc.mode, sc.uid, sc.gid
        node.mtime_ns, node.xattrs = sc.mtime_ns, dict(sc.xattrs)
        node.custom = node.sidecar = True
        node.sidecar_etag = sidecar_etag
        node.explicit_mtime = True
        node.atime_ns, node.explicit_atime = sc.atime_ns, sc.atime_ns is not None
        if sc.kind in ("symlink", *SPECIAL) and node.kind == "file":
            node.kind, node.target, node.rdev = sc.kind, sc.target, sc.rdev

    def _maybe_gone(self, child: Node) -> None:
        if child.dirty or child.lost or (child.etag is None and child.kind != "dir"):
            return
        key = self.tree.path(child)
        if self.pending(key):
            return
        if child.kind == "dir":
            if child.dirty or (child.custom and not child.sidecar):
                return  # made here, not exported yet
            if any(n.dirty or (n.etag is None and n.kind != "dir")
                   for n in self.tree.descendants(child)):
                return
        self.on_gone(child)

    async def revalidate(self, node: Node, ttl: float) -> bool:
        """Check a clean file against the bucket if its attributes are older than ``ttl``.

        Returns False if the object is gone (the node was removed).
        """
        if node.kind != "file" or node.dirty or node.etag is None or node.lost:
            return True
        if time.time() - node.validated < ttl:
            return True
        key = self.tree.path(node)
        try:
            info = await self.store.head(key)
        except ObjectNotFound:
            if not self.pending(key):
                self.on_gone(node)
                return False
            return True
        except StoreError as exc:
            log.info("revalidating %r failed, using the cached copy: %s", key, exc)
            return True
        if info.etag == node.etag:
            node.validated = time.time()
            return True
        found = None
        if node.sidecar or node.custom:
            try:
                data = await self.store.get(sidecar_key(key))
                sc = Sidecar.decode(data, key)
                found = (sc, None) if sc is not None else None
            except ObjectNotFound:
                found = None
        self.adopt(node, info, found, found is not None)
        self.on_change(node)
        return True
