"""Rename rules: what POSIX allows, and what a rename owes the bucket (journal entries).

A rename is instant in the tree. In the bucket it is copy + delete per
object, replayed from the journal (see :mod:`openfiles_engine.state.journal`).
"""

from __future__ import annotations

import errno

import pyfuse3

from openfiles_engine.fuse.errors import fail
from openfiles_engine.state.inode import ROOT, Node
from openfiles_engine.state.journal import Journal, versions
from openfiles_engine.state.listing import Lister
from openfiles_engine.state.tree import Tree


def check(tree: Tree, node: Node, new_dir: Node, target: Node | None, flags: int) -> None:
    """Raise the FUSE error POSIX gives for this rename, if any."""
    if flags & pyfuse3.RENAME_EXCHANGE:
        fail(errno.EINVAL)  # not supported
    if new_dir.lost or node is tree.lostfound:
        fail(errno.EPERM)
    ancestor: Node | None = new_dir
    while ancestor is not None and ancestor.ino != ROOT:
        if ancestor is node:
            fail(errno.EINVAL)  # a directory into its own subtree
        ancestor = tree.get(ancestor.parent)
    if target is None or target is node:
        return
    if flags & pyfuse3.RENAME_NOREPLACE:
        fail(errno.EEXIST)
    if target.kind == "dir" and node.kind != "dir":
        fail(errno.EISDIR)
    if target.kind != "dir" and node.kind == "dir":
        fail(errno.ENOTDIR)


def journal_move(tree: Tree, journal: Journal, node: Node, dst_key: str) -> bool:
    """Record what the bucket must do for ``node`` to move to ``dst_key``.

    Returns True when the node must be exported anew (given back from lost+found).
    Call inside the transaction that moves the node.
    """
    src_key = tree.path(node)
    if node.lost:  # given back from lost+found: a new file at its new path
        tree.will_change(node)
        node.lost, node.etag, node.sidecar, node.sidecar_etag = False, None, False, None
        return True
    # Each copy and delete is conditional on the versions seen now.
    if node.kind == "dir":
        if node.sidecar or not node.custom or any(
            n.etag is not None or n.sidecar for n in tree.descendants(node)
        ):
            journal.add("renamedir", src_key, dst_key, seen=versions(tree, node))
    elif node.etag is not None or node.sidecar:
        journal.add("rename", src_key, dst_key, seen=versions(tree, node))
    return False


async def import_subtree(tree: Tree, lister: Lister, node: Node) -> None:
    """List a whole subtree, so that a directory rename moves everything it holds."""
    stack = [node]
    while stack:
        current = stack.pop()
        await lister.ensure(current, float("inf"))
        stack.extend(c for c in (tree.child(current.ino, n) for n in tree.names(current.ino))
                     if c is not None and c.kind == "dir")
