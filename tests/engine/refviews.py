"""What a mount, its lost+found and its bucket show, as the reference model's views
(tests/engine/refmodel.py): path -> (kind, bytes or target, mode, uid, gid, xattrs)."""

from __future__ import annotations

import collections
import os
from pathlib import Path

import obstore

from openfiles_engine.bucket.layout import META_DIR, META_SUFFIX, Sidecar

from .conftest import Backend
from .refmodel import DIR_MODE, FILE_MODE, parent_of

LOSTFOUND = ".openfiles-lost+found-test"
ORIGINAL = "user.openfiles.original_path"


def mount_view(root: Path) -> dict[str, tuple[object, ...]]:
    """What the mount shows: path -> (kind, bytes or target, mode, uid, gid, xattrs)."""
    out: dict[str, tuple[object, ...]] = {}
    for top, dirs, files in os.walk(root):
        rel = os.path.relpath(top, root)
        if rel == ".":
            dirs[:] = [d for d in dirs if d != LOSTFOUND]
        for name in sorted(dirs + files):
            path = Path(top) / name
            key = str(path.relative_to(root))
            st_ = path.lstat()
            if path.is_symlink():
                out[key] = ("symlink", os.readlink(path).encode(), 0o777, st_.st_uid,
                            st_.st_gid, {})
                continue
            kind = "dir" if path.is_dir() else "file"
            xattrs = {x: os.getxattr(path, x) for x in sorted(os.listxattr(path))
                      if x.startswith("user.")}
            data = path.read_bytes() if kind == "file" else b""
            out[key] = (kind, data, st_.st_mode & 0o7777, st_.st_uid, st_.st_gid, xattrs)
    return out


def lostfound_view(root: Path) -> collections.Counter[tuple[str, bytes]]:
    top = root / LOSTFOUND
    if not top.exists():
        return collections.Counter()
    return collections.Counter((os.getxattr(p, ORIGINAL).decode(), p.read_bytes())
                               for p in top.iterdir())


def bucket_view(backend: Backend) -> dict[str, tuple[object, ...]]:
    """What a fresh mount would show, from the objects and sidecars in the bucket."""
    objects: dict[str, tuple[bytes, str | None]] = {}
    sidecars: dict[str, Sidecar] = {}
    store = backend.bucket.store()
    for batch in obstore.list(store):
        for meta in batch:
            key = meta["path"]
            data = bytes(obstore.get(store, key).bytes())
            if key.startswith(META_DIR + "/"):
                sc = Sidecar.decode(data, key)
                assert sc is not None, key
                sidecars[key[len(META_DIR) + 1:-len(META_SUFFIX)]] = sc
            else:
                objects[key] = (data, meta["e_tag"])
    out: dict[str, tuple[object, ...]] = {}
    dirs = {p for p, sc in sidecars.items() if sc.kind == "dir"}
    for key in objects:
        while "/" in key:
            key = parent_of(key)
            dirs.add(key)
    for path in dirs:
        sc = sidecars.get(path)
        out[path] = ("dir", b"", sc.mode, sc.uid, sc.gid, sc.xattrs) if sc and sc.kind == "dir" \
            else ("dir", b"", DIR_MODE, 0, 0, {})
    for key, (data, etag) in objects.items():
        sc = sidecars.get(key)
        if sc is not None and sc.etag == etag and sc.kind == "symlink":
            out[key] = ("symlink", data, 0o777, sc.uid, sc.gid, {})
        elif sc is not None and sc.etag == etag:
            out[key] = ("file", data, sc.mode, sc.uid, sc.gid, sc.xattrs)
        else:
            out[key] = ("file", data, FILE_MODE, 0, 0, {})
    return out
