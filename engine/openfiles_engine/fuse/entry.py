"""FUSE entry attributes of a node, and the names a new entry may have."""

from __future__ import annotations

import errno
import os

import pyfuse3

from openfiles_engine.bucket.layout import NAME_MAX
from openfiles_engine.fuse.errors import fail
from openfiles_engine.state.inode import ROOT, Node


def entry(node: Node, timeout: float, subdirs: int = 0) -> pyfuse3.EntryAttributes:
    """The attributes of ``node``, which the kernel may keep for ``timeout`` seconds.

    ``subdirs``: the directories the tree holds in ``node`` (a directory's link
    count is 2 + that). A node unlinked while open has no link. The atime is
    the mtime until one is set (utimensat); reads never move it.

    The engine passes ``--metadata-ttl``: its own view of the bucket is no
    fresher than that, and what it learns sooner (a remote change found by a
    listing or at open) it pushes to the kernel with an invalidation.
    """
    a = pyfuse3.EntryAttributes()
    a.st_ino = node.ino
    a.generation = 0
    a.entry_timeout = timeout
    a.attr_timeout = timeout
    a.st_mode = node.st_mode
    if node.parent == 0 and node.ino != ROOT:
        a.st_nlink = 0  # unlinked, still open
    else:
        a.st_nlink = 2 + subdirs if node.kind == "dir" else 1
    a.st_uid = node.uid
    a.st_gid = node.gid
    a.st_rdev = node.rdev
    a.st_size = node.size
    a.st_blksize = 128 * 1024
    a.st_blocks = (node.size + 511) // 512
    a.st_atime_ns = node.mtime_ns if node.atime_ns is None else node.atime_ns
    a.st_mtime_ns = node.mtime_ns
    a.st_ctime_ns = node.ctime_ns
    return a


def checked_name(raw: bytes) -> str:
    """A new entry's name: UTF-8 (EILSEQ) and at most 255 bytes (ENAMETOOLONG)."""
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        fail(errno.EILSEQ)  # keys must be UTF-8
    return existing_name(raw, name)


def existing_name(raw: bytes, name: str | None = None) -> str:
    """The name to look up: ENAMETOOLONG over 255 bytes, as a local file system
    says before it looks (so stat, unlink, rename... of such a name never say ENOENT)."""
    if len(raw) > NAME_MAX:
        fail(errno.ENAMETOOLONG)
    return name if name is not None else os.fsdecode(raw)
