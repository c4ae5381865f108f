"""Extended attributes: which names a bucket can keep, and how many bytes.

Only ``user.*`` and ``trusted.*``; ACLs (``system.*``) and security labels
(``security.*``) are ENOTSUP. They persist in the sidecar (layout.py).
"""

from __future__ import annotations

import errno
import os

from openfiles_engine.fuse.errors import fail
from openfiles_engine.state.inode import Node

VALUE_MAX = 64 * 1024
TOTAL_MAX = 256 * 1024


def checked_name(name: bytes) -> str:
    text = os.fsdecode(name)
    if not text.startswith(("user.", "trusted.")):
        fail(errno.ENOTSUP)  # no ACLs or security labels in a bucket
    if len(name) > 255:
        fail(errno.ERANGE)
    return text


def put(node: Node, name: bytes, value: bytes) -> None:
    """Set one xattr in memory, within the size limits (E2BIG, ENOSPC)."""
    text = checked_name(name)
    if len(value) > VALUE_MAX:
        fail(errno.E2BIG)
    others = sum(len(v) for k, v in node.xattrs.items() if k != text)
    if others + len(value) > TOTAL_MAX:
        fail(errno.ENOSPC)
    node.xattrs[text] = bytes(value)
