from __future__ import annotations

import errno
import stat

import pyfuse3
import pytest

from openfiles_engine.fuse.entry import checked_name, entry
from openfiles_engine.state.inode import Node


def test_entry_attributes() -> None:
    n = Node(ino=9, parent=1, name="l", kind="symlink", mode=0o777, uid=3, gid=4, size=5,
             mtime_ns=10, ctime_ns=20)
    a = entry(n, 5.0)
    assert (a.entry_timeout, a.attr_timeout) == (5.0, 5.0)
    assert stat.S_ISLNK(a.st_mode) and a.st_mode & 0o777 == 0o777
    assert (a.st_ino, a.st_uid, a.st_gid, a.st_size, a.st_mtime_ns, a.st_ctime_ns) == (
        9, 3, 4, 5, 10, 20)
    d = entry(Node(ino=2, parent=1, name="d", kind="dir", mode=0o755, uid=0, gid=0), 0.0)
    assert stat.S_ISDIR(d.st_mode) and d.st_nlink == 2


def test_names() -> None:
    assert checked_name("é".encode()) == "é"
    for raw, code in [(b"\xff\xfe", errno.EILSEQ), (b"n" * 256, errno.ENAMETOOLONG)]:
        with pytest.raises(pyfuse3.FUSEError) as info:
            checked_name(raw)
        assert info.value.errno == code
