"""Export: dirty files go to the bucket as conditional PUTs, renames from the journal.

A dirty file is exported after ``export_delay`` seconds without writes (at least
OPEN_WRITER_DELAY while a handle that may write is open), at once on fsync and
flush, and at unmount. The PUT is If-Match on the last seen ETag,
or If-None-Match for a new key; so is the sidecar's. A failed precondition is a
conflict: unless the bucket already holds the same bytes, the local version
moves to lost+found. Journal entries (renames, deletes) are conditional too;
a refused one is a conflict counted here (:meth:`Exporter._clash`). Other store
errors are retried with exponential backoff (1 s to 30 s).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from functools import partial

import trio

from openfiles_engine.bucket.asyncstore import AsyncStore
from openfiles_engine.bucket.layout import Sidecar, sidecar_key
from openfiles_engine.bucket.store import Conflict, ObjectNotFound, StoreError
from openfiles_engine.cache.datafile import DataFiles
from openfiles_engine.config import Policy
from openfiles_engine.export.lostfound import LostFound
from openfiles_engine.export.sidecars import SidecarLists
from openfiles_engine.export.stream import Streams
from openfiles_engine.state.inode import Node
from openfiles_engine.state.journal import (
    Clash,
    Entry,
    Journal,
    Version,
    needed,
    pending_entries,
    related,
    replay_one,
    retag,
)
from openfiles_engine.state.tree import Tree

log = logging.getLogger(__name__)

COMPARE_LIMIT = 64 * 2**20
"""Bytes: on a failed precondition, files up to this size are compared with the bucket."""
CONCURRENCY = 8
BIG = 8 * 2**20
"""Bytes: a file at least this big is a big export. Its body is in memory for the one
PUT of a file up to 64 MiB, and its parts in flight above (``bucket/store.py``)."""
BIG_AT_ONCE = 2
"""Big exports at once per pass: 8 files of 64 MiB closed together held 512 MiB."""
MAX_BACKOFF = 30.0
"""Seconds: the longest wait between export retries while the bucket is unreachable."""
OPEN_WRITER_DELAY = 5.0
"""Seconds without writes before a file that is still open for writing is exported.

With ``--export-delay 0`` a file being written would otherwise be uploaded
again and again, whole, between two writes (the bench's 1 GiB sequential
write until close ran at 107 MiB/s that way, 381 MiB/s without; docs/ENGINE.md).
Closing the file exports it at once."""


class Exporter:
    def __init__(self, tree: Tree, store: AsyncStore, data: DataFiles, journal: Journal,
                 lostfound: LostFound, policy: Policy) -> None:
        self.tree = tree
        self.store = store
        self.data = data
        self.journal = journal
        self.lostfound = lostfound
        self.policy = policy
        self.errors = 0
        self.last_error: str | None = None
        self.last_error_time = 0.0
        """Unix seconds of the last failed export (0: none yet)."""
        self._locks: dict[int, trio.Lock] = {}
        self._wake = trio.Event()
        self._backoff = 0.0
        self._journal_lock = trio.Lock()
        self.exports = 0
        """Moves whenever an export may have changed the bucket (a listing that read it
        before then is read again: see ``Lister``)."""
        self.streams = Streams(store, data.path, tree.path)
        """Files uploaded while they are written (``export/stream.py``)."""
        self._sidecars = SidecarLists(store, lambda: journal.replayed)
        self.announce: Callable[[str, str | None, bool], None] = lambda key, etag, gone: None
        """Called with (key, new ETag or None, gone) once a change of ours reached the
        bucket: the mutation events (``relay.Relay.announce``). Must not block."""

    def lock(self, ino: int) -> trio.Lock:
        return self._locks.setdefault(ino, trio.Lock())

    def forget(self, ino: int) -> None:
        """Drop per-inode state of a node that is gone for good."""
        lock = self._locks.get(ino)
        if lock is not None and not lock.locked():
            del self._locks[ino]
        self.streams.stop(ino, "the file is gone")

    def wake(self) -> None:
        self._wake.set()

    def dirty(self) -> list[Node]:
        return [n for n in self.tree.nodes.values() if n.dirty and not n.lost and n.parent]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Export loop; runs until cancelled (which aborts the uploads while written)."""
        async with trio.open_nursery() as nursery:
            self.streams.nursery = nursery
            task_status.started()
            try:
                while True:
                    try:
                        await self.export_due(force=False)
                        self._backoff = 0.0
                        self.last_error = None
                    except StoreError as exc:
                        self._backoff = min(max(self._backoff * 2, 1.0), MAX_BACKOFF)
                        log.warning("export failed, retrying in %.0f s: %s", self._backoff,
                                    exc)
                    await self._sleep()
            finally:
                self.streams.nursery = None
                self.streams.stop_all()

    async def _sleep(self) -> None:
        delay = self._backoff or 5.0
        now = time.monotonic()
        for node in self.dirty():
            delay = min(delay, max(node.last_write + self._delay(node) - now, 0.05))
        if self._backoff:
            delay = max(delay, self._backoff)
        with trio.move_on_after(delay):
            await self._wake.wait()
        self._wake = trio.Event()

    def _delay(self, node: Node) -> float:
        """Seconds without writes before ``node`` is due."""
        if node.writers > 0:
            return max(self.policy.export_delay, OPEN_WRITER_DELAY)
        return self.policy.export_delay

    async def export_due(self, *, force: bool) -> None:
        """Replay the journal, then export dirty files that are due (all if ``force``).

        Raises the first StoreError after trying everything: an entry that fails
        holds back only the entries and files that depend on it.
        """
        errors: list[StoreError] = []
        try:
            await self.replay_journal()
        except StoreError as exc:
            errors.append(exc)
        self.streams.prune(self._exported)
        now = time.monotonic()
        due = [n for n in self.dirty() if force or now - n.last_write >= self._delay(n)]
        limiter = trio.CapacityLimiter(CONCURRENCY)
        big = trio.CapacityLimiter(BIG_AT_ONCE)

        async def one(node: Node) -> None:
            heavy = node.kind == "file" and node.data_dirty and node.size >= BIG
            # The big slot first: small files never wait behind big ones for a slot.
            async with big if heavy else contextlib.nullcontext(), limiter:
                try:
                    await self.export(node)
                except StoreError as exc:
                    errors.append(exc)
                except Exception as exc:  # a full cache disk, say: retry, never die
                    log.exception("export of inode %d failed", node.ino)
                    errors.append(StoreError(f"local error: {type(exc).__name__}: {exc}"))

        # Parents first, so directory sidecars exist before their children.
        due.sort(key=lambda n: len(self.tree.path(n)))
        async with trio.open_nursery() as nursery:
            for node in due:
                nursery.start_soon(one, node)
        if errors:
            raise errors[0]

    async def flush(self) -> None:
        """Export everything now; raises StoreError if anything is left undone."""
        await self.export_due(force=True)
        left = self.dirty()
        if left or len(self.journal):
            raise StoreError(f"{len(left)} files still dirty after flush")

    async def replay_journal(self, key: str | None = None) -> None:
        """Replay pending journal entries in order (one replayer at a time).

        With ``key``, only those an export of ``key`` needs (:func:`needed`).
        An entry that fails stays pending, and so do the later ones that touch
        its keys; the others run. Raises the first StoreError.
        """
        async with self._journal_lock:
            entries = pending_entries(self.journal.db)
            await self._replay(entries if key is None else needed(entries, key))

    async def _replay(self, entries: list[Entry]) -> None:
        blocked: set[str] = set()
        first: StoreError | None = None
        for entry in entries:
            touched = {entry.src, entry.dst} - {""}
            if any(related(b, t) for b in blocked for t in touched):
                blocked |= touched
                continue
            try:
                result = await self.store.in_thread(partial(
                    replay_one, op=entry.op, src=entry.src, dst=entry.dst, seen=entry.seen))
            except StoreError as exc:
                self._record(exc)
                first = first or exc
                blocked |= touched
                continue
            # One commit: the entry's removal and all it changes locally (a crash
            # in between would leave a node that nothing exports any more).
            with self.tree.db.transaction():
                self.journal.done(entry.id)
                for key, now in result.written.items():
                    self._written(entry.id, key, now)
                for clash in result.clashes:
                    self._clash(clash, entry.id)
            if result.written or not result.clashes:
                self.announce(entry.src, None, True)
                if entry.dst:
                    moved = result.written.get(entry.dst)
                    self.announce(entry.dst, moved.etag if moved else None, False)
        if first is not None:
            raise first

    def _written(self, entry_id: int, key: str, now: Version) -> None:
        """A replay put ``now`` at ``key``: the node there and later entries start from it.

        Not the node there when a later pending entry moves or deletes ``key``: the
        node this entry moved is elsewhere by now (that entry's own replay updates
        it), and the node at ``key`` is another one that took the name.
        """
        retag(self.tree.db, entry_id, key, now)
        if self.journal.moved_on(key, entry_id):
            return
        node = self.tree.find(key)
        if node is None or node.lost:
            return
        self.tree.will_change(node)  # inside the replay's transaction: a rollback restores it
        if node.kind != "dir" and now.etag is not None:
            node.etag = now.etag
        node.sidecar, node.sidecar_etag = now.sidecar, now.sidecar_etag
        self.tree.save(node)

    def _clash(self, clash: Clash, entry_id: int | None = None) -> None:
        """A journalled change the bucket refused: count, log, re-list, and put the
        local node at ``dst`` right (rules in SEMANTICS.md, "Conflicts").

        ``entry_id``: the refused entry. If a later pending entry moves ``dst`` on,
        the node at ``dst`` is not the one refused: that entry is refused in turn
        (nothing reached ``dst``) and puts its own node right. Inside a
        transaction its changes commit (or roll back) with it.
        """
        self.tree.db.bump("conflicts")
        for key in (clash.src, clash.dst):
            parent = self.tree.find(key.rpartition("/")[0]) if key else None
            if parent is not None:
                self.tree.will_change(parent)
                parent.listed = 0.0  # the next lookup shows the bucket's version
                self.tree.save(parent)
        node = self.tree.find(clash.dst) if clash.dst else None
        if node is not None and entry_id is not None and self.journal.moved_on(clash.dst,
                                                                                entry_id):
            node = None
        what = "the bucket's version stays"
        if clash.kind == "source" and node is not None and not node.lost:
            self.tree.will_change(node)
            if node.kind == "dir":
                # Its sidecar did not move: the directory makes a new one at dst.
                node.sidecar, node.sidecar_etag = False, None
                node.mark_dirty(data=False)
                what = "the directory is exported anew at the new path"
            elif node.full:
                # Every byte is in the cache: the file goes to dst as a new object.
                node.etag, node.sidecar, node.sidecar_etag = None, False, None
                node.mark_dirty(data=True)
                node.last_write = 0.0  # due at once
                what = "the local copy is exported anew at the new path"
            self.tree.save(node)
            self.wake()
        log.warning("conflict: %s %r%s %s; %s", clash.kind, clash.src,
                    f" -> {clash.dst!r}" if clash.dst else "", clash.why, what)

    async def export(self, node: Node) -> None:
        """Export one node now, after the journal entries its path needs (no others).

        Raises StoreError (not for conflicts: those go to lost+found).
        """
        if len(self.journal) and node.parent:
            # A pending rename decides which key and ETag this export starts from.
            await self.replay_journal(self.tree.path(node))
        async with self.lock(node.ino):
            if not node.dirty or node.lost or not node.parent:
                return
            try:
                await self._export(node)
            except StoreError as exc:
                self._record(exc)
                raise
            finally:
                self.exports += 1

    async def _export(self, node: Node) -> None:
        key = self.tree.path(node)
        changes = node.changes
        etag = node.etag
        created = False  # a create-only PUT made the key: any sidecar there is stale
        if node.kind != "dir" and node.data_dirty:
            try:
                if node.kind == "symlink":
                    data = node.target.encode("utf-8", "surrogateescape")
                    etag = await self.store.put_bytes(key, data, if_match=node.etag,
                                                     create=node.etag is None)
                else:
                    streamed, etag = await self.streams.finish(node, key)
                    if not streamed:
                        self.data.fd(node.ino)  # a never-written file has no data file yet
                        etag = await self.store.put_file(key, self.data.path(node.ino),
                                                        if_match=node.etag,
                                                        create=node.etag is None)
                created = node.etag is None
            except Conflict:
                if not await self._same_bytes(node, key):
                    self._conflict(node, key)
                    return
                etag = (await self.store.head(key)).etag
            node.etag = etag
            self.tree.save(node)  # the new ETag must survive a crash before the sidecar
        await self._export_sidecar(node, key, etag, created)
        # A change made while this export was in flight keeps the node dirty.
        if node.exported(changes) and node.kind == "file":
            node.ranges, node.full = [[0, node.size]] if node.size else [], True
        node.validated = time.time()
        self.tree.save(node)
        self.announce(key, etag if node.kind != "dir" else None, False)
        log.debug("exported %r", key)

    async def _export_sidecar(self, node: Node, key: str, etag: str | None,
                              created: bool) -> None:
        """PUT or delete the sidecar, If-Match the one last seen (create-only if none).

        ``created``: this export's create-only PUT made the object, so a sidecar found
        at its key was left by a deleted version (stale, SEMANTICS.md): it is replaced,
        or removed when the file needs none. The same bytes have the same ETag, so
        otherwise it would describe the new file.

        On a conflict the bucket's attributes stay and the local change is dropped
        (counted, logged): the next listing reads theirs into the node.
        """
        sc_key = sidecar_key(key)
        seen = node.sidecar_etag if node.sidecar else None
        try:
            if self.tree.needs_sidecar(node):
                data = Sidecar(kind=node.kind, mode=node.mode, uid=node.uid, gid=node.gid,
                               mtime_ns=node.mtime_ns, target=node.target, xattrs=node.xattrs,
                               etag=etag if node.kind != "dir" else None,
                               atime_ns=node.atime_ns, rdev=node.rdev).encode()
                try:
                    node.sidecar_etag = await self.store.put_bytes(
                        sc_key, data, if_match=seen, create=not node.sidecar)
                    self._sidecars.put(sc_key)
                except Conflict:
                    node.sidecar_etag = await self._after_sidecar_conflict(
                        key, data, etag if node.kind != "dir" else None, created)
                node.sidecar = True
            elif node.sidecar:
                if seen is None:  # not known (SEMANTICS.md): the old unconditional delete
                    await self.store.delete(sc_key)
                else:
                    await self.store.delete_if(sc_key, seen)
                node.sidecar, node.sidecar_etag = False, None
            elif created:
                await self._drop_stale_sidecar(sc_key)
        except Conflict:
            self._clash(Clash("kept", key, "", "its attributes (sidecar) changed in the bucket"))
            node.sidecar, node.sidecar_etag = True, None  # the next listing reads theirs

    async def _drop_stale_sidecar(self, sc_key: str) -> None:
        """Delete the sidecar at ``sc_key`` if there is one: when the LIST of its
        directory shows it (``export/sidecars.py``), a HEAD, then the delete."""
        if not await self._sidecars.may_hold(sc_key):
            return
        try:
            info = await self.store.head(sc_key)
        except ObjectNotFound:
            return
        if info.etag is None:
            return
        log.info("removing the stale sidecar %r (its object was deleted)", sc_key)
        await self.store.delete_if(sc_key, info.etag)

    async def _after_sidecar_conflict(self, key: str, data: bytes, etag: str | None,
                                      created: bool = False) -> str | None:
        """A sidecar PUT for ``key`` was refused. Returns the sidecar's ETag when ours is
        in place after all; raises Conflict when another writer's attributes must stay.

        - the bucket holds exactly our bytes: our own PUT, whose ETag a crash lost;
        - the sidecar there is stale by the layout rules, so it is replaced, If-Match
          that stale sidecar: for a file or symlink (``etag`` the version just
          exported) it describes another version; for a directory (``etag`` None) it
          describes a file or symlink version that is no longer at ``key`` (a second
          writer deleted the object and left its sidecar);
        - otherwise it is another writer's change to this version's attributes.
        """
        sc_key = sidecar_key(key)
        try:
            info = await self.store.head(sc_key)
            there = await self.store.get(sc_key)
        except ObjectNotFound:
            raise Conflict(f"{sc_key} changed while it was read") from None
        if there == data:
            return info.etag
        theirs = Sidecar.decode(there, sc_key)
        if created:
            stale = True  # the object did not exist before this export's PUT
        elif etag is not None:
            stale = theirs is None or theirs.etag != etag
        else:
            stale = theirs is not None and theirs.kind != "dir" \
                and await self._described_version_gone(key, theirs.etag)
        if stale:
            log.info("replacing the stale sidecar %r (it describes another version)", sc_key)
            return await self.store.put_bytes(sc_key, data, if_match=info.etag, create=False)
        raise Conflict(f"{sc_key} was changed by another writer")

    async def _described_version_gone(self, key: str, etag: str | None) -> bool:
        """Is the object version ``etag`` no longer at ``key``?"""
        try:
            return (await self.store.head(key)).etag != etag
        except ObjectNotFound:
            return True

    async def _same_bytes(self, node: Node, key: str) -> bool:
        """After a failed precondition: does the bucket already hold exactly our bytes?

        This happens when a crash struck between a PUT and the commit of its ETag.
        """
        if node.kind != "file" or node.size > COMPARE_LIMIT:
            return False
        try:
            remote = await self.store.get(key)
        except ObjectNotFound:
            return False
        return remote == self.data.read(node.ino, 0, node.size + 1)

    def _conflict(self, node: Node, key: str) -> None:
        parent = self.tree.get(node.parent)
        self.lostfound.keep(node, "the bucket changed since this file was last seen")
        if parent is not None:
            parent.listed = 0.0  # the next lookup imports the bucket's version
            self.tree.save(parent)

    def _exported(self, ino: int) -> bool:
        """Is ``ino`` a node the export loop still sends (not gone, not in lost+found)?"""
        node = self.tree.get(ino)
        return node is not None and not node.lost and bool(node.parent)

    def _record(self, exc: StoreError) -> None:
        self.errors += 1
        self.last_error = str(exc)
        self.last_error_time = time.time()
