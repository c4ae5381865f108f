from __future__ import annotations

from openfiles_engine.bucket.layout import (
    Sidecar,
    is_reserved,
    join,
    sidecar_dir,
    sidecar_key,
    valid_name,
)


def test_sidecar_round_trip_and_version() -> None:
    sc = Sidecar(kind="symlink", mode=0o777, uid=1, gid=2, mtime_ns=3, target="t",
                 xattrs={"user.a": b"\x00\xff"}, etag='"abc"')
    data = sc.encode()
    assert b'"v": 1' in data
    assert Sidecar.decode(data, "k") == sc
    assert Sidecar.decode(data.replace(b'"v": 1', b'"v": 2'), "k") is None
    assert Sidecar.decode(b"not json", "k") is None
    assert Sidecar.decode(b'{"v": 1}', "k") is None


def test_keys_and_names() -> None:
    assert sidecar_key("a/b.txt") == ".openfiles-meta/a/b.txt.meta"
    assert sidecar_dir("") == ".openfiles-meta/"
    assert sidecar_dir("a") == ".openfiles-meta/a/"
    assert join("", "x") == "x" and join("a", "x") == "a/x"
    assert is_reserved(".openfiles-meta") and is_reserved(".openfiles-lost+found-n1")
    assert not is_reserved("meta")
    for bad in ("", ".", "..", "a/b", "x" * 256, "nul\0"):
        assert not valid_name(bad)
    assert valid_name("é" * 127) and not valid_name("é" * 128)  # 255 bytes, not characters


def test_atime_and_rdev_are_optional_fields_of_version_1() -> None:
    fifo = Sidecar(kind="chardev", mode=0o600, uid=0, gid=0, mtime_ns=3, atime_ns=2,
                   rdev=0x103)
    assert Sidecar.decode(fifo.encode(), "k") == fifo
    plain = Sidecar(kind="file", mode=0o644, uid=0, gid=0, mtime_ns=3).encode()
    assert b"atime_ns" not in plain and b"rdev" not in plain  # only when set
    old = b'{"v": 1, "kind": "file", "mode": 420, "uid": 0, "gid": 0, "mtime_ns": 3,' \
          b' "target": "", "xattrs": {}, "etag": null}'  # written before the fields existed
    got = Sidecar.decode(old, "k")
    assert got is not None and (got.atime_ns, got.rdev) == (None, 0)
