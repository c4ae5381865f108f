"""FUSE entry attributes of a node, and the names a new entry may have."""

from __future__ import annotations

import errno

import pyfuse3

from openfiles_engine.fuse.errors import fail
from openfiles_engine.state.inode import Node


def entry(node: Node, timeout: float) -> pyfuse3.EntryAttributes:
    """The attributes of ``node``, which the kernel may keep for ``timeout`` seconds.

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
    a.st_nlink = 2 if node.kind == "dir" else 1
    a.st_uid = node.uid
    a.st_gid = node.gid
    a.st_rdev = 0
    a.st_size = node.size
    a.st_blksize = 128 * 1024
    a.st_blocks = (node.size + 511) // 512
    a.st_atime_ns = node.mtime_ns
    a.st_mtime_ns = node.mtime_ns
    a.st_ctime_ns = node.ctime_ns
    return a


def checked_name(raw: bytes) -> str:
    """A new entry's name: UTF-8 (EILSEQ) and at most 255 bytes (ENAMETOOLONG)."""
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        fail(errno.EILSEQ)  # keys must be UTF-8
    if len(raw) > 255:
        fail(errno.ENAMETOOLONG)
    return name
