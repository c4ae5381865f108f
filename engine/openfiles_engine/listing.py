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
  an object and a prefix shows as the directory, and the object is hidden.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import trio

from .layout import META_SUFFIX, Sidecar, is_reserved, join, sidecar_dir, sidecar_key, valid_name
from .meta import ROOT, Node
from .store import AsyncStore, NotFound, ObjectInfo
from .tree import Tree

log = logging.getLogger(__name__)


class Lister:
    """Imports directories and revalidates files against the bucket."""

    def __init__(self, tree: Tree, store: AsyncStore, pending: Callable[[str], bool],
                 on_change: Callable[[Node], None], on_gone: Callable[[Node], None]) -> None:
        self.tree = tree
        self.store = store
        self.pending = pending
        self.on_change = on_change
        self.on_gone = on_gone
        self._locks: dict[int, trio.Lock] = {}
        self.hidden: set[str] = set()

    async def ensure(self, node: Node, ttl: float) -> None:
        """List ``node`` (a directory) unless it was listed less than ``ttl`` seconds ago."""
        if node.kind != "dir" or node.lost:
            return
        if node.listed and time.time() - node.listed < ttl:
            return
        lock = self._locks.setdefault(node.ino, trio.Lock())
        async with lock:
            if node.listed and time.time() - node.listed < ttl:
                return
            await self._list(node)

    async def _list(self, node: Node) -> None:
        path = self.tree.path(node)
        prefix = f"{path}/" if path else ""
        objects, prefixes = await self.store.run(self.store.sync.list_dir, prefix)
        try:
            metas, _ = await self.store.run(self.store.sync.list_dir, sidecar_dir(path))
        except NotFound:
            metas = []
        sidecars: dict[str, Sidecar] = {}
        async with trio.open_nursery() as nursery:
            for info in metas:
                name = info.key.rsplit("/", 1)[-1]
                if name.endswith(META_SUFFIX):
                    nursery.start_soon(self._fetch_sidecar, info.key,
                                       name[: -len(META_SUFFIX)], sidecars)
        files: dict[str, ObjectInfo] = {}
        for info in objects:
            if info.key == path:
                continue  # a "dir/" marker made by another tool (obstore drops the slash)
            name = info.key[len(prefix):]
            if self._visible(node, name, info.key):
                files[name] = info
        dirs = {p[len(prefix):] for p in prefixes}
        dirs |= {name for name, sc in sidecars.items() if sc.kind == "dir"}
        dirs = {d for d in dirs if self._visible(node, d, join(path, d))}
        for name in dirs & set(files):
            self._hide(join(path, name), "is both an object and a prefix; showing the directory")
            del files[name]
        seen = set(files) | dirs
        for name in sorted(dirs):
            self._merge_dir(node, name, sidecars.get(name))
        for name, info in sorted(files.items()):
            self._merge_file(node, name, info, sidecars.get(name))
        for name in self.tree.names(node.ino):
            child = self.tree.child(node.ino, name)
            if child is not None and name not in seen:
                self._maybe_gone(child)
        node.listed = time.time()
        self.tree.save(node)

    async def _fetch_sidecar(self, key: str, name: str, out: dict[str, Sidecar]) -> None:
        try:
            sc = Sidecar.decode(await self.store.run(self.store.sync.get, key), key)
        except NotFound:
            return
        if sc is not None:
            out[name] = sc

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

    def _merge_dir(self, parent: Node, name: str, sc: Sidecar | None) -> None:
        child = self.tree.child(parent.ino, name)
        if child is not None:
            if child.kind == "dir" and sc is not None and not child.dirty:
                self._apply(child, sc)
                self.tree.save(child)
            return
        d = self.tree.defaults
        child = self.tree.add(parent.ino, name, "dir", mode=d.dir_mode, uid=d.uid, gid=d.gid)
        if sc is not None:
            self._apply(child, sc)
            child.sidecar = True
        self.tree.save(child)

    def _merge_file(self, parent: Node, name: str, info: ObjectInfo, sc: Sidecar | None) -> None:
        child = self.tree.child(parent.ino, name)
        if child is not None and (child.dirty or child.kind == "dir"):
            return  # export decides; a local directory shadows a remote object
        if child is not None and child.etag == info.etag:
            child.validated = time.time()
            return
        if child is None:
            d = self.tree.defaults
            child = self.tree.add(parent.ino, name, "file", mode=d.file_mode, uid=d.uid,
                                  gid=d.gid)
        self.adopt(child, info, sc)
        if child.lookups:
            self.on_change(child)

    def adopt(self, node: Node, info: ObjectInfo, sc: Sidecar | None) -> None:
        """Make ``node`` a clean copy of the remote ``info`` with no cached bytes."""
        d = self.tree.defaults
        node.kind, node.mode, node.uid, node.gid = "file", d.file_mode, d.uid, d.gid
        node.target, node.xattrs, node.explicit_mtime = "", {}, False
        node.size, node.mtime_ns, node.ctime_ns = info.size, info.mtime_ns, info.mtime_ns
        node.etag, node.dirty, node.full, node.ranges = info.etag, False, info.size == 0, []
        node.validated = time.time()
        node.sidecar = sc is not None
        if sc is not None and sc.kind in ("file", "symlink") and sc.etag == info.etag:
            self._apply(node, sc)
        self.tree.save(node)

    def _apply(self, node: Node, sc: Sidecar) -> None:
        node.mode, node.uid, node.gid = sc.mode, sc.uid, sc.gid
        node.mtime_ns, node.xattrs = sc.mtime_ns, dict(sc.xattrs)
        node.custom = True
        node.explicit_mtime = True
        if sc.kind == "symlink" and node.kind == "file":
            node.kind, node.target = "symlink", sc.target

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
            info = await self.store.run(self.store.sync.head, key)
        except NotFound:
            if not self.pending(key):
                self.on_gone(node)
                return False
            return True
        if info.etag == node.etag:
            node.validated = time.time()
            return True
        sc = None
        if node.sidecar or node.custom:
            try:
                sc = Sidecar.decode(await self.store.run(self.store.sync.get, sidecar_key(key)),
                                    key)
            except NotFound:
                sc = None
        self.adopt(node, info, sc)
        self.on_change(node)
        return True
