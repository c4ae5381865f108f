"""Remote renames and deletes, replayed in order from the SQLite journal.

Entries (``op``, ``src``, ``dst``, ``seen``), all idempotent so a crash can replay them:

- ``delete``  src: delete the object and its sidecar;
- ``rmdir``   src: delete the directory's sidecar;
- ``rename``  src -> dst: copy object and sidecar, then delete the sources;
- ``renamedir`` src -> dst: the same for every key under the prefix and its sidecars.

A rename is never atomic in the bucket: for a moment both keys may exist.

Every change is conditional on ``seen``: the :class:`Version` (object ETag,
sidecar ETag) of each key the engine last saw when the entry was made. A key
whose version changed since is left as the bucket has it and reported as a
:class:`Clash` (SEMANTICS.md, "Conflicts"). A rename's target must be absent:
the rename over an existing file is journalled as a conditional delete of the
target first. S3's DELETE and COPY take no If-Match: a delete is made
conditional by a fence (:meth:`Store.delete_if`, bucket/fence.py), a copy's
check is a HEAD just before it (:meth:`Store.copy_if`).
Entries written by an engine from before ``seen`` replay unconditionally.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import NamedTuple

from openfiles_engine.bucket.layout import META_DIR, META_SUFFIX, Sidecar, sidecar_key
from openfiles_engine.bucket.store import Conflict, ObjectInfo, ObjectNotFound, Store
from openfiles_engine.state.db import StateDB
from openfiles_engine.state.inode import Node
from openfiles_engine.state.tree import Tree

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Version:
    """What the engine last saw at one key."""

    etag: str | None
    """The object's ETag; None: no object (a directory, or never exported)."""
    sidecar: bool
    """A sidecar was there."""
    sidecar_etag: str | None = None
    """Its ETag; None with ``sidecar``: not known, so any sidecar there is taken as seen."""


class Entry(NamedTuple):
    id: int
    op: str
    src: str
    dst: str
    seen: dict[str, Version] | None
    """Path relative to ``src`` ("" = ``src`` itself) -> its version; None: not recorded."""


def version(node: Node) -> Version:
    return Version(node.etag, node.sidecar, node.sidecar_etag if node.sidecar else None)


def versions(tree: Tree, node: Node) -> dict[str, Version]:
    """What the bucket holds for ``node`` (and everything below a directory), as last seen."""
    out = {"": version(node)}
    if node.kind == "dir":
        base = len(tree.path(node)) + 1
        for n in tree.descendants(node):
            if not n.lost and (n.etag is not None or n.sidecar):
                out[tree.path(n)[base:]] = version(n)
    return out


def encode_seen(seen: dict[str, Version]) -> str:
    return json.dumps({k: [v.etag, v.sidecar, v.sidecar_etag] for k, v in seen.items()})


def decode_seen(text: str) -> dict[str, Version] | None:
    return {k: Version(*v) for k, v in json.loads(text).items()} if text else None


def pending_entries(db: StateDB) -> list[Entry]:
    """The journal in replay order, with what each entry saw."""
    return [Entry(i, op, s, d, decode_seen(seen)) for i, op, s, d, seen in db.journal_seen()]


def under(key: str, rel: str) -> str:
    """The key at ``rel`` below ``key`` ("" = ``key`` itself)."""
    return f"{key}/{rel}" if rel else key


def related(a: str, b: str) -> bool:
    """Is one of two keys the other, or a directory above it? ("" is no key)"""
    return bool(a and b) and (a == b or a.startswith(b + "/") or b.startswith(a + "/"))


def needed(entries: list[Entry], key: str) -> list[Entry]:
    """The entries an export of ``key`` must wait for, in order: those that touch
    ``key`` or a directory above it, and the earlier ones those depend on."""
    keys, out = {key}, []
    for entry in reversed(entries):
        touched = {entry.src, entry.dst} - {""}
        if any(related(k, t) for k in keys for t in touched):
            out.append(entry)
            keys |= touched
    return out[::-1]


def retag(db: StateDB, after: int, key: str, now: Version) -> None:
    """``key`` was just written as ``now`` by entry ``after``: later entries saw it
    as the version that was copied there, which is this one."""
    for entry in pending_entries(db):
        if entry.id <= after or entry.seen is None:
            continue
        for rel in entry.seen:
            if under(entry.src, rel) == key:
                entry.seen[rel] = now
                db.journal_set_seen(entry.id, encode_seen(entry.seen))
                break


class Journal:
    """The pending entries, in memory for ``pending`` and ``remote_key``, by entry id.

    Memory follows the committed rows: inside a transaction that rolls back it
    is read again from SQLite (see :meth:`StateDB.transaction
    <openfiles_engine.state.db.StateDB.transaction>`).
    """

    def __init__(self, db: StateDB) -> None:
        self.db = db
        self._keys: dict[int, tuple[str, str]] = {}
        self._moves: dict[int, tuple[str, str, str]] = {}
        self.replayed = 0
        """How many entries have reached the bucket since start: a listing compares it
        before and after its LIST to know whether a replay ran in between."""
        self._load()

    def _load(self) -> None:
        """Memory from the committed rows (at start, and after a rollback)."""
        rows = self.db.journal()
        self._keys = {entry_id: (s, d) for entry_id, _, s, d in rows}
        self._moves = {entry_id: (op, s, d) for entry_id, op, s, d in rows
                       if op in ("rename", "renamedir")}

    def add(self, op: str, src: str, dst: str = "", seen: dict[str, Version] | None = None) -> None:
        """Append an entry; ``seen``: what the engine last saw at ``src`` (:func:`versions`)."""
        entry_id = self.db.journal_add(op, src, dst,
                                       encode_seen(seen) if seen is not None else "")
        self.db.on_rollback(self._load, key=self)
        self._keys[entry_id] = (src, dst)
        if op in ("rename", "renamedir"):
            self._moves[entry_id] = (op, src, dst)

    def remote_key(self, key: str) -> str:
        """Where the bytes of ``key`` are in the bucket while renames are pending."""
        for op, src, dst in reversed(self._moves.values()):
            if op == "rename" and key == dst:
                key = src
            elif op == "renamedir" and key.startswith(dst + "/"):
                key = src + key[len(dst):]
        return key

    def __len__(self) -> int:
        return len(self._keys)

    def pending(self, key: str) -> bool:
        """Is ``key`` (or a directory above it) the source or target of a pending entry?"""
        for src, dst in self._keys.values():
            for k in (src, dst):
                if k and (key == k or key.startswith(k + "/")):
                    return True
        return False

    def moved_on(self, key: str, after: int) -> bool:
        """Is ``key`` (or a directory above it) the source of a pending entry later
        than ``after``? Then what entry ``after`` put at ``key`` belongs to the node
        that entry moves (or deletes), not to whatever node holds the name now."""
        return any(entry_id > after and src and (key == src or key.startswith(src + "/"))
                   for entry_id, (src, _) in self._keys.items())

    def entries(self) -> list[tuple[int, str, str, str]]:
        return self.db.journal()

    def done(self, entry_id: int) -> None:
        """Drop the entry ``entry_id``, and no other."""
        self.db.journal_done(entry_id)
        self.db.on_rollback(self._load, key=self)
        self._keys.pop(entry_id, None)
        self._moves.pop(entry_id, None)
        self.replayed += 1


@dataclass(frozen=True)
class Clash:
    """A journalled change the bucket refused because a key changed there since seen.

    ``kind``: "kept" (the bucket's version stays, nothing local is owed), "source"
    (a rename's source changed or went: nothing moved to ``dst``, where the local
    node now is), "target" (a rename's target is taken: nothing moved).
    """

    kind: str
    src: str
    dst: str
    why: str


@dataclass
class Replayed:
    """What one entry did: keys written (with the version now there) and clashes."""

    written: dict[str, Version] = field(default_factory=dict)
    clashes: list[Clash] = field(default_factory=list)


def replay_one(store: Store, op: str, src: str, dst: str,
               seen: dict[str, Version] | None = None) -> Replayed:
    """Run one journal entry against the bucket (sync, in a worker thread).

    Conditional on ``seen`` (None: on whatever is there now, for old entries).
    Raises StoreError when the bucket cannot be reached; a changed key is not an
    error but a :class:`Clash` in the result, and the entry is done.
    """
    if seen is None:
        seen = _as_now(store, op, src)
    out = Replayed()
    if op in ("delete", "rmdir"):
        _delete(store, src, seen[""], out, data=op == "delete")
    elif op == "rename":
        _move(store, src, dst, seen[""], out)
    elif op == "renamedir":
        _move_dir(store, src, dst, seen, out)
    else:
        raise ValueError(f"unknown journal op {op!r}")
    return out


def _as_now(store: Store, op: str, src: str) -> dict[str, Version]:
    """An entry without ``seen`` (journalled by an older engine) takes the bucket as it is."""
    if op != "renamedir":
        sc = store.etag_or_none(sidecar_key(src))
        return {"": Version(store.etag_or_none(src), sc is not None, sc)}
    seen = {rel: Version(o.etag or "", False) for rel, o in _objects(store, src).items()}
    for rel, etag in _sidecars(store, src).items():
        seen[rel] = Version(seen[rel].etag if rel in seen else None, True, etag)
    seen.setdefault("", Version(None, False))
    return seen


def _objects(store: Store, src: str) -> dict[str, ObjectInfo]:
    return {o.key[len(src) + 1:]: o for o in store.list_all(src + "/")}


def _sidecars(store: Store, src: str) -> dict[str, str]:
    """Relative path ("" = ``src``) -> ETag of every sidecar at or under ``src``."""
    meta = f"{META_DIR}/{src}/"
    out = {o.key[len(meta):-len(META_SUFFIX)]: o.etag or "" for o in store.list_all(meta)
           if o.key.endswith(META_SUFFIX)}
    own = store.etag_or_none(sidecar_key(src))
    if own is not None:
        out[""] = own
    return out


def _same_sidecar(seen: Version, now: str | None) -> bool:
    if not seen.sidecar:
        return now is None
    return seen.sidecar_etag is None or now == seen.sidecar_etag


def _delete(store: Store, key: str, seen: Version, out: Replayed, *, data: bool) -> None:
    sc_key = sidecar_key(key)
    sc_now = store.etag_or_none(sc_key)
    if data and seen.etag is not None:
        now = store.etag_or_none(key)
        if now is not None and now != seen.etag:
            out.clashes.append(Clash("kept", key, "", "replaced in the bucket"))
            return
    if sc_now is not None and not _same_sidecar(seen, sc_now):
        out.clashes.append(Clash("kept", key, "", "its attributes changed in the bucket"))
        return
    try:
        if data and seen.etag is not None:
            store.delete_if(key, seen.etag)
        if sc_now is not None:
            store.delete_if(sc_key, sc_now)
    except Conflict:
        out.clashes.append(Clash("kept", key, "", "changed in the bucket while deleted"))


def _move(store: Store, src: str, dst: str, seen: Version, out: Replayed) -> None:
    """Copy ``src`` (object and sidecar) to ``dst``, then delete it; each step only on
    the versions seen. An earlier try cut short by a crash is finished, not redone."""
    src_sc, dst_sc = sidecar_key(src), sidecar_key(dst)
    data = seen.etag is not None
    sc_now = store.etag_or_none(src_sc)
    if not data and not seen.sidecar and sc_now is None:
        return  # nothing of it in the bucket
    now = store.etag_or_none(src) if data else None
    if (now is None) if data else (sc_now is None):
        there = store.etag_or_none(dst) if data else store.etag_or_none(dst_sc)
        if there is None or (data and there != seen.etag):
            out.clashes.append(Clash("source", src, dst, "deleted in the bucket"))
            return
        # Moved by an earlier try of this entry: finish it.
        if sc_now is not None and _same_sidecar(seen, sc_now):
            store.delete_if(src_sc, sc_now)
        dst_sc_now = store.etag_or_none(dst_sc)
        out.written[dst] = Version(there if data else None, dst_sc_now is not None, dst_sc_now)
        return
    if data and now != seen.etag:
        out.clashes.append(Clash("source", src, dst, "replaced in the bucket"))
        return
    if not _same_sidecar(seen, sc_now):
        out.clashes.append(Clash("source", src, dst, "its attributes changed in the bucket"))
        return
    there = store.etag_or_none(dst) if data else store.etag_or_none(dst_sc)
    if there is not None and (not data or there != seen.etag):
        out.clashes.append(Clash("target", src, dst, "the target exists in the bucket"))
        return
    new_etag = there
    if data and there is None:
        try:
            new_etag = store.copy_if(src, dst, if_match=seen.etag)
        except (Conflict, ObjectNotFound):
            out.clashes.append(Clash("target", src, dst, "changed in the bucket while moved"))
            return
    new_sc = None
    if sc_now is not None:
        # The target's object was absent: a sidecar there is stale, and replaced.
        new_sc = _copy_sidecar(store, src_sc, dst_sc, new_etag if data else None,
                               source=now if data else None)
    elif data:
        store.delete(dst_sc)
    try:
        if data:
            store.delete_if(src, now or "")
        if sc_now is not None:
            store.delete_if(src_sc, sc_now)
    except Conflict:
        out.clashes.append(Clash("kept", src, "", "changed in the bucket while moved away"))
    out.written[dst] = Version(new_etag, new_sc is not None, new_sc)


def _copy_sidecar(store: Store, src_sc: str, dst_sc: str, etag: str | None, *,
                  source: str | None) -> str | None:
    """Copy a sidecar; returns the copy's ETag. ``etag``: the ETag of the data object's
    copy; ``source``: that of the version copied. Where a copy gets an ETag of its own
    (Azure), a sidecar that described the version copied would describe the source's
    version, and be ignored: it is written anew with ``etag`` instead. A sidecar that
    described another version (the object was replaced by another writer since) is
    copied as it is, still describing that version: bound to the copy, it would give
    the new bytes the attributes set on the old ones."""
    doc = Sidecar.decode(store.get(src_sc), src_sc) if etag is not None else None
    if doc is None or doc.etag != source or doc.etag == etag:
        store.copy(src_sc, dst_sc)
    else:
        doc.etag = etag
        store.put_bytes(dst_sc, doc.encode(), if_match=None, create=False)
    return store.etag_or_none(dst_sc)


def _move_dir(store: Store, src: str, dst: str, seen: dict[str, Version],
              out: Replayed) -> None:
    """Move every key seen under ``src``; keys the engine never saw stay where they are."""
    unseen = (set(_objects(store, src)) | set(_sidecars(store, src))) - set(seen)
    for rel in sorted(unseen):
        out.clashes.append(Clash("kept", under(src, rel), "",
                                 "appeared in the bucket after the listing; left in place"))
    for rel in sorted(seen, key=lambda r: (r == "", r)):  # the directory's own sidecar last
        _move(store, under(src, rel), under(dst, rel), seen[rel], out)
