"""Remote renames and deletes, replayed in order from the SQLite journal.

Entries (``op``, ``src``, ``dst``), all idempotent so a crash can replay them:

- ``delete``  src: delete the object and its sidecar;
- ``rmdir``   src: delete the directory's sidecar;
- ``rename``  src -> dst: copy object and sidecar, then delete the sources;
- ``renamedir`` src -> dst: the same for every key under the prefix and its sidecars.

A rename is never atomic in the bucket: for a moment both keys may exist.
"""

from __future__ import annotations

import logging

from openfiles_engine.bucket.layout import META_DIR, sidecar_key
from openfiles_engine.bucket.store import ObjectNotFound, Store
from openfiles_engine.state.db import StateDB

log = logging.getLogger(__name__)


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
        self._load()

    def _load(self) -> None:
        """Memory from the committed rows (at start, and after a rollback)."""
        rows = self.db.journal()
        self._keys = {entry_id: (s, d) for entry_id, _, s, d in rows}
        self._moves = {entry_id: (op, s, d) for entry_id, op, s, d in rows
                       if op in ("rename", "renamedir")}

    def add(self, op: str, src: str, dst: str = "") -> None:
        entry_id = self.db.journal_add(op, src, dst)
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

    def entries(self) -> list[tuple[int, str, str, str]]:
        return self.db.journal()

    def done(self, entry_id: int, src: str, dst: str) -> None:
        """Drop the entry ``entry_id`` (``src`` and ``dst`` are its keys), and no other."""
        self.db.journal_done(entry_id)
        self.db.on_rollback(self._load, key=self)
        self._keys.pop(entry_id, None)
        self._moves.pop(entry_id, None)


def replay_one(store: Store, op: str, src: str, dst: str) -> list[str]:
    """Run one journal entry against the bucket (sync, in a worker thread).

    Returns the destination keys written (so callers can refresh their ETags).
    """
    if op == "delete":
        store.delete(src)
        store.delete(sidecar_key(src))
        return []
    if op == "rmdir":
        store.delete(sidecar_key(src))
        return []
    if op == "rename":
        try:
            store.copy(src, dst)
        except ObjectNotFound:
            # Replay after the data moved: the destination's sidecar is already right.
            log.info("rename %r -> %r: source already gone (replay)", src, dst)
            store.delete(sidecar_key(src))
            return []
        try:
            store.copy(sidecar_key(src), sidecar_key(dst))
        except ObjectNotFound:
            store.delete(sidecar_key(dst))  # attributes at dst were the old target's
        store.delete(src)
        store.delete(sidecar_key(src))
        return [dst]
    if op == "renamedir":
        written = []
        pairs = [(o.key, dst + o.key[len(src):]) for o in store.list_all(src + "/")]
        meta_src = f"{META_DIR}/{src}"
        meta_dst = f"{META_DIR}/{dst}"
        pairs += [(o.key, meta_dst + o.key[len(meta_src):])
                  for o in store.list_all(meta_src + "/")]
        for a, b in pairs:
            try:
                store.copy(a, b)
                if not b.startswith(META_DIR + "/"):
                    written.append(b)
            except ObjectNotFound:
                continue
            store.delete(a)
        try:
            store.copy(sidecar_key(src), sidecar_key(dst))
            store.delete(sidecar_key(src))
        except ObjectNotFound:
            pass
        return written
    raise ValueError(f"unknown journal op {op!r}")
