"""Conflicts: the bucket wins, the local version moves to ``.openfiles-lost+found-<fsid>/``.

A node in lost+found keeps its data file and inode, gets a unique name, and
the xattr ``user.openfiles.original_path`` holding the path it had. It is never
exported. Each conflict is logged and counted (``conflicts`` in status); the
last ``RECENT`` are kept in memory (``recent_conflicts`` in status) with where
each local version went, for the node plugin's Events. What lost+found holds now
(:meth:`LostFound.held`: ``lostfound_files``, ``lostfound_bytes`` in status and in
flush-only's answer) tells the mounter to keep the cache directory at unstage.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from openfiles_engine.state.inode import Node
from openfiles_engine.state.tree import Tree

log = logging.getLogger(__name__)

ORIGINAL_PATH_XATTR = "user.openfiles.original_path"
RECENT = 32
"""Conflicts remembered for status; the node plugin reads status every few seconds."""


class LostFound:
    def __init__(self, tree: Tree, invalidate: Callable[[int, str], None]) -> None:
        self.tree = tree
        self.invalidate = invalidate
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
        """``{"seq", "path", "lost_path", "time"}``: ``seq`` is ``count`` just after this
        conflict, ``lost_path`` is relative to the volume root, ``time`` is Unix seconds."""

    @property
    def count(self) -> int:
        return self.tree.db.counter("conflicts")

    def held(self) -> tuple[int, int]:
        """Nodes in lost+found now (given back or deleted ones no longer count) and the
        bytes of its files: what only this node's cache holds."""
        lost = [n for n in self.tree.nodes.values() if n.lost and n is not self.tree.lostfound]
        return len(lost), sum(n.size for n in lost if n.kind == "file")

    def keep(self, node: Node, reason: str) -> str:
        """Move ``node`` into lost+found; returns the path it had. Durable on return."""
        path = self.tree.path(node)
        old_parent, old_name = node.parent, node.name
        name = self.tree.unique_lost_name(node.name)
        with self.tree.db.transaction():
            self.tree.will_change(node)
            node.lost, node.dirty = True, False
            node.xattrs[ORIGINAL_PATH_XATTR] = path.encode("utf-8", "surrogateescape")
            self.tree.move(node, self.tree.lostfound.ino, name)
            self.tree.db.bump("conflicts")
        lost_path = f"{self.tree.lostfound.name}/{name}"
        self.recent.append({"seq": self.count, "path": path, "lost_path": lost_path,
                            "time": time.time()})
        self.invalidate(old_parent, old_name)
        log.warning("conflict on %r (%s): local version kept as %s/%s",
                    path, reason, self.tree.lostfound.name, name)
        return path
