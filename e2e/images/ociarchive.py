"""Write a one-layer OCI image archive from a directory tree or a list of files.

Standard library only, so it runs before any venv exists. The archive is an
uncompressed tar of an OCI image layout (``oci-layout``, ``index.json``,
``blobs/sha256/...``) that ``ctr images import`` reads:

- one layer, a gzip'd tar whose entries are sorted (a directory before its
  contents, siblings by name), with mtime 0, no user or group names and the
  owners' numeric ids kept; hard links stay hard links; the contents of
  ``dev``, ``proc`` and ``sys`` are left out (the runtime provides them);
- the config, manifest and index as compact JSON with sorted keys, dated
  1970-01-01;
- ``index.json`` names the image twice: ``io.containerd.image.name`` holds the
  full reference (containerd names the imported image with it) and
  ``org.opencontainers.image.ref.name`` the tag, as the OCI layout spec says.

The same input therefore gives a byte-identical archive, and its manifest
digest identifies the image.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
CONTAINERD_NAME = "io.containerd.image.name"
REF_NAME = "org.opencontainers.image.ref.name"
EPOCH = "1970-01-01T00:00:00Z"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Left empty in a layer made from a root file system: the runtime mounts them.
RUNTIME_DIRS = frozenset({"dev", "proc", "sys"})


@dataclass(frozen=True)
class ImageConfig:
    """The runtime part of an image config (the OCI config's ``config`` object)."""

    entrypoint: list[str]
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=lambda: [DEFAULT_PATH])
    user: str = ""
    workdir: str = "/"
    labels: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        body: dict[str, object] = {"Entrypoint": self.entrypoint, "Env": self.env,
                                   "WorkingDir": self.workdir}
        if self.cmd:
            body["Cmd"] = self.cmd
        if self.user:
            body["User"] = self.user
        if self.labels:
            body["Labels"] = self.labels
        return body


@dataclass(frozen=True)
class File:
    """One entry of a layer made from a list: a regular file (``source`` or ``data``)
    or a directory (neither). ``path`` is relative to the image root."""

    path: str
    mode: int = 0o644
    source: Path | None = None
    data: bytes | None = None
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class Blob:
    """A content-addressed blob: ``digest`` is ``sha256:<hex>``, ``size`` in bytes."""

    digest: str
    size: int

    def descriptor(self, media_type: str) -> dict[str, object]:
        return {"mediaType": media_type, "digest": self.digest, "size": self.size}


class ArchiveError(ValueError):
    """The input cannot become an image (a bad path, reference or file)."""


class _Hashing(io.RawIOBase):
    """A writable stream that hashes and counts what passes through to ``sink``."""

    def __init__(self, sink: IO[bytes]) -> None:
        self.sink, self.sha, self.size = sink, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        view = memoryview(data)
        self.sha.update(view)
        self.size += len(view)
        self.sink.write(view)
        return len(view)

    def tell(self) -> int:  # tarfile asks where it is; the stream only goes forward
        return self.size

    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


def _clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = 0
    info.uname = info.gname = ""
    return info


def _walk(root: Path, relative: str = "") -> Iterable[str]:
    """Paths under ``root`` (relative, '/'-separated): each directory before its
    contents, siblings sorted by name; runtime directories stay empty."""
    directory = root / relative if relative else root
    for name in sorted(os.listdir(directory)):
        path = f"{relative}/{name}" if relative else name
        yield path
        full = root / path
        if full.is_dir() and not full.is_symlink() and path not in RUNTIME_DIRS:
            yield from _walk(root, path)


def _tree_entries(tar: tarfile.TarFile, root: Path) -> None:
    if not root.is_dir():
        raise ArchiveError(f"not a directory: {root}")
    for path in _walk(root):
        info = tar.gettarinfo(str(root / path), arcname=path)
        if info is None:  # a socket: nothing a layer can hold
            continue
        if info.isreg():
            with open(root / path, "rb") as source:
                tar.addfile(_clean(info), source)
        else:
            tar.addfile(_clean(info))


def _list_entries(tar: tarfile.TarFile, files: Iterable[File]) -> None:
    by_path: dict[str, File] = {}
    for item in files:
        path = item.path.strip("/")
        if not path or ".." in path.split("/") or path in by_path:
            raise ArchiveError(f"bad or repeated path in the file list: {item.path!r}")
        if item.source is not None and item.data is not None:
            raise ArchiveError(f"{item.path}: give source or data, not both")
        by_path[path] = item
        parts = path.split("/")
        for depth in range(1, len(parts)):  # parents the list did not name
            by_path.setdefault("/".join(parts[:depth]), File("/".join(parts[:depth]), 0o755))
    for path in sorted(by_path, key=lambda p: p.split("/")):
        item = by_path[path]
        info = tarfile.TarInfo(path)
        info.mode, info.uid, info.gid = item.mode & 0o7777, item.uid, item.gid
        if item.source is None and item.data is None:
            info.type = tarfile.DIRTYPE
            tar.addfile(_clean(info))
            continue
        if item.data is not None:
            info.size = len(item.data)
            tar.addfile(_clean(info), io.BytesIO(item.data))
            continue
        with open(str(item.source), "rb") as source:
            info.size = os.fstat(source.fileno()).st_size
            tar.addfile(_clean(info), source)


def write_layer(out: IO[bytes], *, root: Path | None = None,
                files: Iterable[File] = ()) -> tuple[Blob, str]:
    """Write one gzip'd layer tar to ``out`` from ``root`` (a directory tree) and
    ``files`` (added after it). Returns the compressed blob and the diff id
    (digest of the uncompressed tar)."""
    blob = _Hashing(out)
    with gzip.GzipFile(filename="", mode="wb", fileobj=blob, mtime=0, compresslevel=6) as gz:
        plain = _Hashing(gz)  # type: ignore[arg-type]
        with tarfile.open(fileobj=plain, mode="w", format=tarfile.PAX_FORMAT) as tar:
            if root is not None:
                _tree_entries(tar, root)
            _list_entries(tar, files)
    return Blob(blob.digest(), blob.size), plain.digest()


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _blob(data: bytes) -> Blob:
    return Blob("sha256:" + hashlib.sha256(data).hexdigest(), len(data))


def split_reference(reference: str) -> tuple[str, str]:
    """``registry/path:tag`` -> (``registry/path``, ``tag``); a bad reference raises."""
    name, colon, tag = reference.rpartition(":")
    if not colon or "/" in tag or not tag or not name or name != name.lower():
        raise ArchiveError(f"image reference needs a lower-case name and a tag: {reference!r}")
    if "." not in name.split("/")[0] and name.split("/")[0] != "localhost":
        raise ArchiveError(f"name the registry in the reference (e.g. localhost/...): "
                           f"{reference!r}")
    return name, tag


def _add_bytes(tar: tarfile.TarFile, path: str, data: bytes) -> None:
    info = tarfile.TarInfo(path)
    info.size, info.mode = len(data), 0o644
    tar.addfile(_clean(info), io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, path: str) -> None:
    info = tarfile.TarInfo(path)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    tar.addfile(_clean(info))


def write_archive(out: Path, reference: str, config: ImageConfig, *,
                  root: Path | None = None, files: Iterable[File] = (),
                  architecture: str = "amd64") -> str:
    """Write the image ``reference`` (``registry/name:tag``) as an OCI archive at
    ``out``, replacing it atomically. Returns the manifest digest."""
    _, tag = split_reference(reference)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=out.parent) as layer_file:
        layer, diff_id = write_layer(layer_file, root=root, files=files)
        image = {"architecture": architecture, "os": "linux", "created": EPOCH,
                 "config": config.as_json(),
                 "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                 "history": [{"created": EPOCH, "created_by": "e2e/images/ociarchive.py"}]}
        config_bytes = _json(image)
        config_blob = _blob(config_bytes)
        manifest_bytes = _json({"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
                                "config": config_blob.descriptor(CONFIG_TYPE),
                                "layers": [layer.descriptor(LAYER_TYPE)]})
        manifest = _blob(manifest_bytes)
        entry = manifest.descriptor(MANIFEST_TYPE)
        entry["platform"] = {"architecture": architecture, "os": "linux"}
        entry["annotations"] = {CONTAINERD_NAME: reference, REF_NAME: tag}
        index = _json({"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": [entry]})

        partial = out.with_name(out.name + ".partial")
        with tarfile.open(partial, mode="w", format=tarfile.PAX_FORMAT) as tar:
            _add_dir(tar, "blobs")
            _add_dir(tar, "blobs/sha256")
            blobs = {config_blob.digest: config_bytes, manifest.digest: manifest_bytes}
            for digest in sorted({*blobs, layer.digest}):
                path = "blobs/sha256/" + digest.removeprefix("sha256:")
                if digest != layer.digest:
                    _add_bytes(tar, path, blobs[digest])
                    continue
                layer_file.seek(0)
                info = tarfile.TarInfo(path)
                info.size, info.mode = layer.size, 0o644
                tar.addfile(_clean(info), layer_file)
            _add_bytes(tar, "index.json", index)
            _add_bytes(tar, "oci-layout", _json({"imageLayoutVersion": "1.0.0"}))
        os.replace(partial, out)
    return manifest.digest


def read_index(archive: Path) -> dict[str, object]:
    """The ``index.json`` of an archive written here (its first manifest entry)."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        if member is None:
            raise ArchiveError(f"{archive}: no index.json")
        index = json.loads(member.read())
    manifests = index.get("manifests") or [{}]
    first: dict[str, object] = manifests[0]
    return first

