"""Bucket layout: how paths become keys, and the metadata sidecar scheme (version 1).

- A file ``a/b.txt`` is the object ``<prefix>/a/b.txt`` holding its bytes.
- A symlink is an object holding the target bytes, plus a sidecar saying so.
- A FIFO, socket or device node is a zero-byte object plus a sidecar with its
  kind (and ``rdev`` for a device): metadata only, the kernel does its I/O.
- Directories are key prefixes. A directory made through the mount also gets a
  sidecar, which keeps it when empty.
- POSIX attributes that differ from the mount defaults live in a sidecar object
  ``<prefix>/.openfiles-meta/<path>.meta`` (``META_DIR``, a reserved name of
  :mod:`openfiles_contracts.name`): JSON, ``{"v": 1, "kind", "mode",
  "uid", "gid", "mtime_ns", "target", "xattrs": {name: base64}, "etag"}``,
  and, only when set, ``"atime_ns"`` and ``"rdev"``. Those two came later
  without a new version: they are optional, a sidecar without them still
  reads, and an older engine ignores keys it does not know (it shows a
  special node as an empty regular file). The version changes only for a
  change an older engine would misread in a harmful way.
  ``etag`` is the data object's ETag the sidecar describes; a sidecar whose
  ETag no longer matches (someone overwrote the object with a plain S3 tool) is
  ignored. Object user metadata is not used: obstore's LocalStore cannot store
  it, and one scheme for every store keeps the bucket portable.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field

# The reserved names are a contract with the CSI controller; the engine's modules
# import them from here, with the rest of the layout.
from openfiles_contracts.name import LOSTFOUND_PREFIX as LOSTFOUND_PREFIX
from openfiles_contracts.name import META_DIR as META_DIR
from openfiles_contracts.name import is_reserved as is_reserved

log = logging.getLogger(__name__)

META_SUFFIX = ".meta"
SIDECAR_VERSION = 1
NAME_MAX = 255
KEY_MAX = 1024
"""Bytes: S3's key limit; longer keys fail with ENAMETOOLONG."""


def valid_name(name: str) -> bool:
    """Can a key segment be shown as a file name? (odd keys are hidden, with a log line)."""
    return name not in ("", ".", "..") and "/" not in name and "\0" not in name and len(
        name.encode("utf-8", "surrogateescape")
    ) <= NAME_MAX


def sidecar_key(path: str) -> str:
    return f"{META_DIR}/{path}{META_SUFFIX}"


def sidecar_dir(dirpath: str) -> str:
    """Prefix that holds the sidecars of the entries of ``dirpath`` ("" = root)."""
    return f"{META_DIR}/{dirpath}/" if dirpath else f"{META_DIR}/"


def join(dirpath: str, name: str) -> str:
    return f"{dirpath}/{name}" if dirpath else name


@dataclass
class Sidecar:
    kind: str  # "file" | "dir" | "symlink" | "fifo" | "socket" | "chardev" | "blockdev"
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    target: str = ""
    xattrs: dict[str, bytes] = field(default_factory=dict)
    etag: str | None = None
    atime_ns: int | None = None
    rdev: int = 0

    def encode(self) -> bytes:
        optional: dict[str, int] = {}
        if self.atime_ns is not None:
            optional["atime_ns"] = self.atime_ns
        if self.rdev:
            optional["rdev"] = self.rdev
        return json.dumps({
            **optional,
            "v": SIDECAR_VERSION,
            "kind": self.kind,
            "mode": self.mode,
            "uid": self.uid,
            "gid": self.gid,
            "mtime_ns": self.mtime_ns,
            "target": self.target,
            "xattrs": {k: base64.b64encode(v).decode() for k, v in self.xattrs.items()},
            "etag": self.etag,
        }, sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes, key: str) -> Sidecar | None:
        """Parse a sidecar; None (and a log line) if it is not one we understand."""
        try:
            doc = json.loads(data)
            if doc.get("v") != SIDECAR_VERSION:
                log.warning("ignoring sidecar %s with unknown version %r", key, doc.get("v"))
                return None
            return cls(
                kind=str(doc["kind"]), mode=int(doc["mode"]) & 0o7777, uid=int(doc["uid"]),
                gid=int(doc["gid"]), mtime_ns=int(doc["mtime_ns"]), target=str(doc["target"]),
                xattrs={k: base64.b64decode(v) for k, v in doc.get("xattrs", {}).items()},
                etag=doc.get("etag"),
                atime_ns=None if doc.get("atime_ns") is None else int(doc["atime_ns"]),
                rdev=int(doc.get("rdev", 0)),
            )
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed sidecar %s", key)
            return None
