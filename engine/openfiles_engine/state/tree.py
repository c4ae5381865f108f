"""The in-memory inode tree, written through to :class:`~openfiles_engine.state.db.StateDB`.

All mutation happens on the trio thread; no locking is needed for the maps.

Inside a :meth:`StateDB.transaction <openfiles_engine.state.db.StateDB.transaction>`
every node the tree adds, moves, detaches, removes or saves is snapshotted at its
first change, and a rollback puts it back (fields and place in the maps). A
caller that changes a node's fields inside a transaction before handing it to
the tree calls :meth:`Tree.will_change` first.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from openfiles_engine.bucket.layout import LOSTFOUND_PREFIX, join
from openfiles_engine.state.db import StateDB
from openfiles_engine.state.inode import ROOT, Node

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Defaults:
    """Ownership and modes given to objects imported from the bucket."""

    uid: int
    gid: int
    file_mode: int
    dir_mode: int


class Tree:
    """Nodes by inode number and by (parent, name)."""

    def __init__(self, db: StateDB, defaults: Defaults, fsid: str) -> None:
        self.db = db
        self.defaults = defaults
        self.nodes: dict[int, Node] = {}
        self.children: dict[int, dict[str, int]] = {}
        self._subdirs: dict[int, int] = {}
        for node in db.load_nodes():
            self.nodes[node.ino] = node
        for node in self.nodes.values():
            if node.parent and node.parent in self.nodes:
                self._link(node)
        self._next_ino = db.max_ino() + 1
        now = time.time_ns()
        if ROOT not in self.nodes:
            root = Node(ino=ROOT, parent=0, name="", kind="dir", mode=defaults.dir_mode,
                        uid=defaults.uid, gid=defaults.gid, mtime_ns=now, ctime_ns=now)
            self.nodes[ROOT] = root
            db.save(root)
        self._drop_orphans()
        name = LOSTFOUND_PREFIX + fsid
        existing = self.child(ROOT, name)
        if existing is None:
            existing = self.add(ROOT, name, "dir", mode=0o700, uid=defaults.uid,
                                gid=defaults.gid)
            existing.lost = True
            existing.listed = time.time()
            self.save(existing)
        self.lostfound = existing

    def _drop_orphans(self) -> None:
        """Unlinked-but-open nodes from before a crash are gone for good now."""
        self.orphans: list[int] = []
        for node in list(self.nodes.values()):
            if node.ino != ROOT and (node.parent == 0 or node.parent not in self.nodes):
                self.db.delete(node.ino)
                del self.nodes[node.ino]
                self.orphans.append(node.ino)

    def get(self, ino: int) -> Node | None:
        return self.nodes.get(ino)

    def child(self, parent: int, name: str) -> Node | None:
        ino = self.children.get(parent, {}).get(name)
        return self.nodes.get(ino) if ino is not None else None

    def names(self, parent: int) -> list[str]:
        return sorted(self.children.get(parent, {}))

    def path(self, node: Node) -> str:
        """Volume-relative key of ``node`` ("" for the root)."""
        parts: list[str] = []
        while node.ino != ROOT:
            parts.append(node.name)
            parent = self.nodes.get(node.parent)
            if parent is None:
                raise KeyError(f"inode {node.ino} is detached")
            node = parent
        return "/".join(reversed(parts))

    def find(self, path: str) -> Node | None:
        node = self.nodes[ROOT]
        for part in path.split("/") if path else []:
            found = self.child(node.ino, part)
            if found is None:
                return None
            node = found
        return node

    def add(self, parent: int, name: str, kind: str, *, mode: int, uid: int, gid: int,
            **attrs: object) -> Node:
        """Create and persist a node under ``parent`` (which must not have ``name``)."""
        now = time.time_ns()
        fields: dict[str, Any] = {"mtime_ns": now, "ctime_ns": now, "last_access": time.time()}
        node = Node(ino=self._next_ino, parent=parent, name=name, kind=kind, mode=mode,
                    uid=uid, gid=gid, **(fields | attrs))
        self._next_ino += 1
        with self.db.transaction():  # inside a listing's merge, this joins its transaction
            self._enter(node)
        return node

    def add_files(self, parent: int, files: list[tuple[str, int, int, str | None, bool]],
                  *, mode: int, uid: int, gid: int, later: bool = False) -> None:
        """What :meth:`add` does for each ``(name, size, mtime_ns, etag, has_sidecar)``:
        a clean file imported from a listing, of ``parent`` (which has none of the
        names), with no byte cached and its ctime its mtime, in one transaction.
        ``later``: their rows are saved ``later`` (:meth:`StateDB.save`).

        A listing of 1000 new objects made them one :meth:`add` each, a third of the
        merge that ``opendir`` waits for (docs/ENGINE.md, "Metadata path"): here each
        costs a node, copied from one made for the call, its undo step and its row.
        """
        now = time.time()
        model = vars(Node(ino=0, parent=parent, name="", kind="file", mode=mode, uid=uid,
                          gid=gid, validated=now, last_access=now))
        new = object.__new__
        with self.db.transaction():
            for name, size, mtime_ns, etag, sidecar in files:
                node = new(Node)
                node.__dict__ = model | {
                    "ino": self._next_ino, "name": name, "size": size, "mtime_ns": mtime_ns,
                    "ctime_ns": mtime_ns, "etag": etag, "full": size == 0,
                    "sidecar": sidecar, "xattrs": {}, "ranges": []}
                self._next_ino += 1
                self._enter(node, later=later)

    def _enter(self, node: Node, *, later: bool = False) -> None:
        """Put the new ``node`` in the tree and save it, inside a transaction: a
        rollback forgets it."""
        self.db.on_rollback(partial(self._unplace, node, forget=True), key=("node", node.ino))
        self.nodes[node.ino] = node
        self._link(node)
        self.db.save(node, later=later)

    def will_change(self, node: Node) -> None:
        """Inside a transaction: snapshot ``node`` unless done already; a rollback restores it.

        Outside a transaction it does nothing: each change commits on its own.
        """
        if self.db.in_transaction and not self.db.has_undo(("node", node.ino)):
            saved: dict[str, Any] = dict(vars(node))
            saved["xattrs"] = dict(node.xattrs)
            saved["ranges"] = [list(r) for r in node.ranges]
            placed = self.children.get(node.parent, {}).get(node.name) == node.ino
            present = self.nodes.get(node.ino) is node
            self.db.on_rollback(partial(self._restore, node, saved, placed, present),
                                key=("node", node.ino))

    def _restore(self, node: Node, saved: dict[str, Any], placed: bool, present: bool) -> None:
        self._unplace(node, forget=False)
        vars(node).update(saved)
        if present:
            self.nodes[node.ino] = node
        if placed:
            self._link(node)

    def _unplace(self, node: Node, *, forget: bool) -> None:
        """Take ``node`` out of its directory's map (and out of the tree if ``forget``)."""
        self._unlink(node)
        if forget:
            self.nodes.pop(node.ino, None)

    def save(self, node: Node) -> None:
        if node.ino in self.nodes:
            self.will_change(node)
            self.db.save(node)
            node.unsaved = False

    def detach(self, node: Node) -> None:
        """Take ``node`` out of its directory; it lives on while the kernel holds it."""
        with self.db.transaction():
            self.will_change(node)
            self._unplace(node, forget=False)
            node.parent = 0
            self.db.save(node)

    def move(self, node: Node, parent: int, name: str) -> None:
        with self.db.transaction():
            self.will_change(node)
            self._unplace(node, forget=False)
            node.parent, node.name = parent, name
            self._link(node)
            self.db.save(node)

    def remove(self, node: Node) -> None:
        """Forget ``node`` entirely (caller drops its data file, after the commit).

        A directory's entries should be gone already (detached or removed before
        it); any still linked are forgotten with it, and a rollback brings the
        directory's entries and subdirectory count back with the node.
        """
        with self.db.transaction():
            self.will_change(node)
            entries, subdirs = self.children.get(node.ino), self._subdirs.get(node.ino)
            self.db.on_rollback(partial(self._relist, node.ino, entries, subdirs),
                                key=("entries", node.ino))
            self._unplace(node, forget=True)
            self.children.pop(node.ino, None)
            self._subdirs.pop(node.ino, None)
            self.db.delete(node.ino)

    def _relist(self, ino: int, entries: dict[str, int] | None, subdirs: int | None) -> None:
        """Undo of :meth:`remove`: directory ``ino``'s entry map and count as they were."""
        if entries is not None:
            self.children[ino] = dict(entries)
        if subdirs is not None:
            self._subdirs[ino] = subdirs

    def subdirs(self, ino: int) -> int:
        """How many directories the tree holds in directory ``ino`` (kept as a count)."""
        return self._subdirs.get(ino, 0)

    def _link(self, node: Node) -> None:
        """Enter ``node`` under its name in its parent (``children`` and the counts)."""
        self.children.setdefault(node.parent, {})[node.name] = node.ino
        if node.kind == "dir":
            self._subdirs[node.parent] = self._subdirs.get(node.parent, 0) + 1

    def _unlink(self, node: Node) -> None:
        """Take ``node``'s name out of its parent, if the name is ``node``'s."""
        names = self.children.get(node.parent, {})
        if names.get(node.name) == node.ino:
            del names[node.name]
            if node.kind == "dir":
                self._subdirs[node.parent] -= 1

    def descendants(self, node: Node) -> list[Node]:
        out: list[Node] = []
        stack = [node.ino]
        while stack:
            for ino in self.children.get(stack.pop(), {}).values():
                child = self.nodes[ino]
                out.append(child)
                stack.append(ino)
        return out

    def needs_sidecar(self, node: Node) -> bool:
        """Does ``node`` carry attributes that only a sidecar can hold?"""
        d = self.defaults
        default_mode = d.dir_mode if node.kind == "dir" else d.file_mode
        return (
            (node.kind != "file" and node.custom)
            or node.kind == "symlink"
            or node.mode != default_mode
            or node.uid != d.uid
            or node.gid != d.gid
            or bool(node.xattrs)
            or node.explicit_mtime
            or node.explicit_atime
        )

    def unique_lost_name(self, name: str) -> str:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        n = 0
        while True:
            candidate = f"{name[:200]}.{stamp}.{n}" if n else f"{name[:200]}.{stamp}"
            if self.child(self.lostfound.ino, candidate) is None:
                return candidate
            n += 1


__all__ = ["ROOT", "Defaults", "Node", "Tree", "join"]
