"""e2e/images/ociarchive.py writes valid, reproducible OCI image archives.

Pure unit tests: archives are written from directory trees and file lists
made here, then read back with tarfile, gzip and hashlib and checked against
the OCI image layout rules (every blob named by the sha256 of its bytes, every
descriptor's size the blob's size, the config's diff id the digest of the
uncompressed layer). That containerd imports and runs them is in
test_imagebuild.py.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import io
import json
import os
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

IMAGES = Path(__file__).resolve().parents[2] / "e2e" / "images"
if str(IMAGES) not in sys.path:
    sys.path.insert(0, str(IMAGES))
ociarchive = importlib.import_module("ociarchive")

REFERENCE = "registry.example.org/team/tool:v1.2"


def make_tree(root: Path, mtime: int) -> Path:
    """A small root file system: nested dirs, a symlink, a hard link, an owner,
    device-like dirs whose contents must stay out; every mtime set to ``mtime``."""
    (root / "usr/bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "dev").mkdir()
    (root / "proc").mkdir()
    (root / "dev/null-ish").write_text("must not be packed")
    (root / "proc/1").mkdir()
    (root / "usr/bin/tool").write_bytes(b"#!/bin/sh\necho tool\n")
    (root / "usr/bin/tool").chmod(0o755)
    os.link(root / "usr/bin/tool", root / "usr/bin/tool-again")
    (root / "usr/bin/alias").symlink_to("tool")
    (root / "etc/owned").write_text("owned by 1234:5678\n")
    (root / "etc/zz-last").write_text("z")
    (root / "etc/AA-first").write_text("A")
    if os.geteuid() == 0:
        os.chown(root / "etc/owned", 1234, 5678)
    for top, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            os.utime(Path(top) / name, (mtime, mtime), follow_symlinks=False)
    return root


def config() -> Any:
    return ociarchive.ImageConfig(entrypoint=["/usr/bin/tool"], cmd=["--serve"],
                                  env=["PATH=/usr/bin", "MODE=test"], user="1000:1000",
                                  workdir="/etc", labels={"purpose": "test"})


def read_layout(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            assert member.mtime == 0 and member.uid == 0 and member.uname == "", member.name
        return {m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
                for m in tar.getmembers() if m.isfile()}


def blob(layout: dict[str, bytes], descriptor: dict[str, Any]) -> bytes:
    data = layout["blobs/sha256/" + descriptor["digest"].removeprefix("sha256:")]
    assert len(data) == descriptor["size"], descriptor
    return data


def check_layout(archive: Path, reference: str) -> tuple[dict[str, Any], tarfile.TarFile]:
    """Check every OCI layout rule; return the image config and the layer."""
    layout = read_layout(archive)
    for name, data in layout.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1], name
    assert json.loads(layout["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(layout["index.json"])
    assert index["schemaVersion"] == 2
    (entry,) = index["manifests"]
    assert entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert entry["annotations"] == {"io.containerd.image.name": reference,
                                    "org.opencontainers.image.ref.name":
                                        reference.rpartition(":")[2]}
    assert entry["platform"] == {"architecture": "amd64", "os": "linux"}
    manifest = json.loads(blob(layout, entry))
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    image = json.loads(blob(layout, manifest["config"]))
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    plain = gzip.decompress(blob(layout, layer))
    assert image["rootfs"] == {"type": "layers",
                               "diff_ids": ["sha256:" + hashlib.sha256(plain).hexdigest()]}
    assert len(layout) == 5  # oci-layout, index.json, config, manifest, layer: nothing else
    return image, tarfile.open(fileobj=io.BytesIO(plain))


def test_the_same_tree_gives_a_byte_identical_archive(tmp_path: Path) -> None:
    first = make_tree(tmp_path / "a", mtime=1_000_000)
    second = make_tree(tmp_path / "b", mtime=2_000_000)  # other mtimes, inodes, directory
    digest_a = ociarchive.write_archive(tmp_path / "a.tar", REFERENCE, config(), root=first)
    digest_b = ociarchive.write_archive(tmp_path / "b.tar", REFERENCE, config(), root=second)
    assert digest_a == digest_b
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    (second / "etc/zz-last").write_text("y")  # one byte changed: another image
    digest_c = ociarchive.write_archive(tmp_path / "c.tar", REFERENCE, config(), root=second)
    assert digest_c != digest_a


def test_a_tree_archive_is_a_valid_layout_with_sorted_clean_entries(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root", mtime=1_000_000)
    archive = tmp_path / "image.tar"
    digest = ociarchive.write_archive(archive, REFERENCE, config(), root=root)
    image, layer = check_layout(archive, REFERENCE)
    assert ociarchive.read_index(archive)["digest"] == digest
    assert image["config"] == {"Entrypoint": ["/usr/bin/tool"], "Cmd": ["--serve"],
                               "Env": ["PATH=/usr/bin", "MODE=test"], "User": "1000:1000",
                               "WorkingDir": "/etc", "Labels": {"purpose": "test"}}
    assert (image["os"], image["architecture"]) == ("linux", "amd64")
    members = {m.name: m for m in layer.getmembers()}
    assert list(members) == [
        "dev", "etc", "etc/AA-first", "etc/owned", "etc/zz-last", "proc", "usr", "usr/bin",
        "usr/bin/alias", "usr/bin/tool", "usr/bin/tool-again"]
    assert all(m.mtime == 0 and m.uname == m.gname == "" for m in members.values())
    assert members["usr/bin/tool"].mode == 0o755 and members["usr/bin/tool"].isreg()
    assert members["usr/bin/tool-again"].islnk()
    assert members["usr/bin/tool-again"].linkname == "usr/bin/tool"
    assert members["usr/bin/alias"].issym() and members["usr/bin/alias"].linkname == "tool"
    if os.geteuid() == 0:
        assert (members["etc/owned"].uid, members["etc/owned"].gid) == (1234, 5678)
    assert layer.extractfile("usr/bin/tool").read() == b"#!/bin/sh\necho tool\n"  # type: ignore[union-attr]


def test_a_file_list_gets_its_parent_directories(tmp_path: Path) -> None:
    binary = tmp_path / "server"
    binary.write_bytes(b"\x7fELF binary")
    files = [ociarchive.File("bin/server", 0o755, source=binary),
             ociarchive.File("etc/passwd", data=b"root:x:0:0::/:/bin/false\n"),
             ociarchive.File("var/data", 0o700, uid=65532, gid=65532)]
    archive = tmp_path / "files.tar"
    ociarchive.write_archive(archive, "localhost/server:1", config(), files=files)
    _, layer = check_layout(archive, "localhost/server:1")
    members = {m.name: m for m in layer.getmembers()}
    assert list(members) == ["bin", "bin/server", "etc", "etc/passwd", "var", "var/data"]
    assert members["bin"].isdir() and members["bin"].mode == 0o755
    assert members["bin/server"].mode == 0o755 and members["bin/server"].size == 11
    assert members["var/data"].isdir()
    assert (members["var/data"].uid, members["var/data"].mode) == (65532, 0o700)
    again = tmp_path / "again.tar"
    ociarchive.write_archive(again, "localhost/server:1", config(), files=reversed(files))
    assert again.read_bytes() == archive.read_bytes()


@pytest.mark.parametrize("path", ["", "/", "a/../../etc", "etc/passwd"])
def test_a_bad_or_repeated_path_is_refused(tmp_path: Path, path: str) -> None:
    files = [ociarchive.File("etc/passwd", data=b""), ociarchive.File(path, data=b"x")]
    with pytest.raises(ociarchive.ArchiveError, match="bad or repeated path"):
        ociarchive.write_archive(tmp_path / "x.tar", "localhost/x:1", config(), files=files)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("reference", ["localhost/x", "Localhost/x:1", "pause:3.10",
                                       "localhost/x:a/b", "localhost/x:"])
def test_a_reference_without_registry_or_tag_is_refused(tmp_path: Path, reference: str) -> None:
    with pytest.raises(ociarchive.ArchiveError, match="reference"):
        ociarchive.write_archive(tmp_path / "x.tar", reference, config(), files=[])


def test_a_missing_root_is_refused_and_leaves_no_archive(tmp_path: Path) -> None:
    with pytest.raises(ociarchive.ArchiveError, match="not a directory"):
        ociarchive.write_archive(tmp_path / "out/x.tar", REFERENCE, config(),
                                 root=tmp_path / "absent")
    assert not list((tmp_path / "out").iterdir())
