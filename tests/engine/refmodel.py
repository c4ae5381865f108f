"""The reference model behind test_reference_model.py: what a mount must show, what the
bucket must hold, what lost+found must hold, following docs/SEMANTICS.md.

Plain Python, no I/O. Paths are relative to the mount root ("d/a"). A node is a
file, a symlink (``data`` is the target) or a directory. Second-writer versions
the engine has not seen yet are kept in ``Node.remote``; ``export`` applies the
conflict rule to them (bucket wins, the local bytes go to lost+found).
"""

from __future__ import annotations

from dataclasses import dataclass, field

FILE_MODE, DIR_MODE = 0o644, 0o755
GONE = None
"""``Node.remote`` / ``Model.unseen`` value: the second writer deleted the key."""


@dataclass
class Node:
    kind: str  # "file" | "dir" | "symlink"
    data: bytes = b""
    mode: int = FILE_MODE
    uid: int = 0
    gid: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)
    mtime_ns: int | None = None
    """Set by utimens, None once anything may have changed it (not checked then)."""
    dirty: bool = True
    """Data (bytes, target, existence) changed locally since the last export."""
    attr_dirty: bool = True
    exported: bool = False
    """The bucket holds a version of this key that the engine knows."""
    remote: bytes | bool | None = False
    """A second-writer version the engine has not seen: bytes, GONE, or False (none)."""

    def view(self) -> tuple[object, ...]:
        return (self.kind, self.data, self.mode, self.uid, self.gid, dict(self.xattrs))


def parent_of(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def under(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/")


@dataclass
class Model:
    nodes: dict[str, Node] = field(default_factory=dict)
    lost: list[tuple[str, bytes]] = field(default_factory=list)
    """(original path, bytes) that lost+found must hold."""
    maybe_lost: list[tuple[str, bytes]] = field(default_factory=list)
    """(original path, bytes) that lost+found may hold (spec allows either)."""
    maybe_absent: set[str] = field(default_factory=set)
    """Paths that may not show yet (a second-writer key behind a pending journal delete)."""
    unseen: dict[str, bytes | None] = field(default_factory=dict)
    """Second-writer versions the engine could not have seen yet: after the next
    flush the bucket must still hold them (nothing overwritten or deleted unseen)."""
    journaled: set[str] = field(default_factory=set)
    """Paths unlinked or removed locally since the last flush (journal deletes)."""
    renamed: set[str] = field(default_factory=set)
    """Tops of subtrees renamed (both ends) since the last flush: no second writer there."""
    unsure: set[str] = field(default_factory=set)
    """Paths whose dirty state is unknown (an unacknowledged write before a crash)."""

    # queries
    def dirs(self) -> list[str]:
        return ["", *sorted(p for p, n in self.nodes.items() if n.kind == "dir")]

    def files(self, kinds: tuple[str, ...] = ("file",)) -> list[str]:
        return sorted(p for p, n in self.nodes.items() if n.kind in kinds)

    def children(self, path: str) -> list[str]:
        return [p for p in self.nodes if parent_of(p) == path]

    def subtree(self, top: str) -> list[str]:
        return [p for p in self.nodes if under(p, top)]

    def free_names(self, parent: str, names: list[str]) -> list[str]:
        out = []
        for name in names:
            path = f"{parent}/{name}" if parent else name
            if path not in self.nodes and path not in self.maybe_absent:
                out.append(path)
        return out

    def second_writer_ok(self, path: str) -> bool:
        """May the second writer touch ``path``? Not where a rename since the last flush
        makes the outcome depend on journal timing (see the test's docstring)."""
        return not any(under(path, top) or under(top, path) for top in self.renamed) \
            and path not in self.unsure

    def _touch_parent(self, path: str) -> None:
        parent = self.nodes.get(parent_of(path))
        if parent is not None:
            parent.mtime_ns = None

    # local operations (all acknowledged: they return, and files are closed or fsynced)
    def create(self, path: str, kind: str, data: bytes = b"") -> None:
        mode = DIR_MODE if kind == "dir" else FILE_MODE if kind == "file" else 0o777
        if path in self.unseen and self.unseen[path] is GONE:
            # A second writer deleted the key and the mount then dropped its own entry
            # (an unlink or a rename away): a new entry here is a new key, exported
            # create-only (If-None-Match, SEMANTICS.md). It fills the absence the second
            # writer left and overwrites nothing.
            del self.unseen[path]
        self.nodes[path] = Node(kind, data, mode)
        self._touch_parent(path)

    def write(self, path: str, offset: int, data: bytes) -> None:
        node = self.nodes[path]
        if not data:
            return  # a write of no bytes changes nothing, not even the size
        old = node.data
        if offset > len(old):
            old += b"\0" * (offset - len(old))
        node.data = old[:offset] + data + old[offset + len(data):]
        node.dirty, node.mtime_ns = True, None

    def truncate(self, path: str, size: int) -> None:
        node = self.nodes[path]
        node.data = node.data[:size] + b"\0" * max(0, size - len(node.data))
        node.dirty, node.mtime_ns = True, None

    def remove(self, path: str) -> None:
        node = self.nodes.pop(path)
        if node.exported or node.kind == "dir":
            self.journaled.add(path)
        self._touch_parent(path)
        if isinstance(node.remote, bytes):
            # A second writer's object the engine never saw: the local delete must not
            # destroy it. With no journal entry it shows at once; behind a (conditional)
            # journal delete it may show only once that entry is done.
            if node.exported:
                self.maybe_absent.add(path)
            else:
                self.unseen.pop(path, None)  # shows at once: the next look sees it
            self.nodes[path] = Node("file", node.remote, dirty=False, attr_dirty=False,
                                    exported=True)

    def has_remote(self, top: str) -> bool:
        """Is a second-writer version pending at ``top`` or under it?"""
        return any(n.remote is not False for p, n in self.nodes.items() if under(p, top)) \
            or any(under(p, top) for p in self.unseen)

    def rename(self, src: str, dst: str) -> None:
        if dst in self.nodes:
            self.remove(dst)
        for path in sorted(self.subtree(src)):
            node = self.nodes.pop(path)
            self.nodes[dst + path[len(src):]] = node
        self.renamed |= {src, dst}
        self._touch_parent(src)
        self._touch_parent(dst)

    def setattr(self, path: str, **values: object) -> None:
        node = self.nodes[path]
        for key, value in values.items():
            setattr(node, key, value)
        node.attr_dirty = True

    # the second writer (a plain S3 client on the same keys)
    def remote_put(self, path: str, data: bytes) -> None:
        node = self.nodes.get(path)
        if node is not None and (node.dirty or node.attr_dirty):
            # Dirty here: the engine does not look at the bucket for this path before
            # its export, where the precondition fails (the bucket wins).
            node.remote = data
            self.unseen[path] = data
            return
        if node is None and path in self.journaled:
            # A journal delete may or may not have reached the bucket yet; either way the
            # second writer's object must survive it and show after the next flush.
            self.maybe_absent.add(path)
            self.unseen[path] = data
        self.nodes[path] = Node("file", data, dirty=False, attr_dirty=False, exported=True)
        self._touch_parent(path)

    def remote_delete(self, path: str) -> None:
        node = self.nodes[path]
        if (node.dirty or node.attr_dirty) and not node.exported:
            # The engine never knew a version of this key: absent again is what it last
            # saw, so its create-only PUT succeeds (a put and a delete since are unseen
            # and undetectable, and destroy nothing).
            node.remote = False
            self.unseen.pop(path, None)
            return
        if node.dirty or node.attr_dirty:
            node.remote = GONE
            self.unseen[path] = GONE
            return
        del self.nodes[path]  # clean: the next listing drops it
        if path in self.unseen:
            self.unseen[path] = GONE
        self.maybe_absent.discard(path)
        self._touch_parent(path)

    # export
    def export(self, path: str) -> bool:
        """Export one node (fsync or flush); returns False on a conflict."""
        node = self.nodes[path]
        ok = True
        if node.remote is not False:
            remote = node.remote
            self.unseen.pop(path, None)
            if node.kind == "file" and node.dirty and remote == node.data:
                node.remote = False  # equal bytes: the engine adopts the ETag
            else:
                if node.kind == "file" and node.dirty:
                    self.lost.append((path, node.data))
                    ok = False
                elif node.kind == "file":
                    # Only attributes changed here: no local bytes are lost. Whether the
                    # engine calls it a conflict and keeps a copy anyway is left open.
                    self.maybe_lost.append((path, node.data))
                else:
                    ok = False
                del self.nodes[path]
                if remote is not GONE:
                    assert isinstance(remote, bytes)
                    self.nodes[path] = Node("file", remote, dirty=False, attr_dirty=False,
                                            exported=True)
                return ok
        node.dirty = node.attr_dirty = False
        node.exported = True
        return ok

    def flush(self) -> list[tuple[str, bytes]]:
        """Export everything; returns the obligations: every acknowledged local version
        that was not exported yet, which must now be in the bucket or in lost+found."""
        owed = [(p, n.data) for p, n in self.nodes.items()
                if n.kind == "file" and n.dirty]
        for path in sorted(self.nodes, key=lambda p: p.count("/")):
            if path in self.nodes:
                self.export(path)
        # The flush's check of ``unseen`` (the test copies it first) is the last: from
        # now on the mount shows those versions (maybe_absent is cleared), so the
        # engine has seen them, and a later local create at that path after a second
        # writer's delete is a new key (If-None-Match, SEMANTICS.md), not an overwrite.
        self.unseen.clear()
        self.maybe_absent.clear()
        self.journaled.clear()
        self.renamed.clear()
        self.unsure.clear()
        return owed

    def expected_view(self) -> dict[str, tuple[object, ...]]:
        return {p: n.view() for p, n in self.nodes.items()}
