from __future__ import annotations

import errno

import pyfuse3
import pytest

from openfiles_engine.fuse import xattr
from openfiles_engine.state.inode import Node


def node() -> Node:
    return Node(ino=2, parent=1, name="f", kind="file", mode=0o644, uid=0, gid=0)


def test_limits_and_namespaces() -> None:
    n = node()
    xattr.put(n, b"user.a", b"1")
    xattr.put(n, b"trusted.b", b"2")
    assert n.xattrs == {"user.a": b"1", "trusted.b": b"2"}
    for name, value, code in [
        (b"security.selinux", b"x", errno.ENOTSUP),
        (b"system.posix_acl_access", b"x", errno.ENOTSUP),
        (b"user.big", b"x" * (xattr.VALUE_MAX + 1), errno.E2BIG),
        (b"user." + b"n" * 251, b"x", errno.ERANGE),
    ]:
        with pytest.raises(pyfuse3.FUSEError) as info:
            xattr.put(n, name, value)
        assert info.value.errno == code
    for i in range(3):
        xattr.put(n, f"user.k{i}".encode(), b"v" * xattr.VALUE_MAX)
    with pytest.raises(pyfuse3.FUSEError) as info:
        xattr.put(n, b"user.k4", b"v" * xattr.VALUE_MAX)
    assert info.value.errno == errno.ENOSPC
