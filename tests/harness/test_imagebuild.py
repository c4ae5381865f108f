"""e2e/images/build.py: images that containerd imports and runs, cached by their inputs.

A throwaway containerd (Debian's, its own root, state and socket in a
temporary directory, no CRI plugin) imports the pause image and a sidecar
image made from a static program compiled here, and runs both: pause must
keep running until SIGTERM and then exit 0, the sidecar must print what its
entry point prints. The OpenFiles image (debootstrap, minutes) is left to the
e2e suite, which imports it into its cluster.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from fixtures.prereq import missing

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "e2e" / "images"
if str(IMAGES) not in sys.path:
    sys.path.insert(0, str(IMAGES))
debian = importlib.import_module("debian")

FAKE_SIDECAR = r"""
#include <stdio.h>
int main(int argc, char **argv) {
    printf("fake sidecar %s\n", argc > 1 ? argv[1] : "-");
    return 0;
}
"""


def build(*args: str, cache: Path, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(IMAGES / "build.py"), *args, "--cache",
                           str(cache), "--bin", str(bin_dir)],
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """A directory holding ``livenessprobe``: a static C program, not the real one."""
    for program in ("containerd", "ctr", "gcc"):
        if shutil.which(program) is None:
            missing(f"{program} is not installed: run scripts/bootstrap.sh")
    source = tmp_path / "fake.c"
    source.write_text(FAKE_SIDECAR)
    out = tmp_path / "bin"
    out.mkdir()
    done = subprocess.run(["gcc", "-static", "-o", str(out / "livenessprobe"), str(source)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        missing(f"gcc cannot link a static program (libc6-dev): {done.stderr}")
    return out


@pytest.mark.root
def test_pause_and_a_sidecar_import_and_run_then_come_from_the_cache(
        tmp_path: Path, bin_dir: Path) -> None:
    cache = tmp_path / "cache"
    first = build("check", "--only", "pause", "--only", "livenessprobe", cache=cache,
                  bin_dir=bin_dir)
    assert first.returncode == 0, first.stderr
    archives = dict(line.split() for line in first.stdout.splitlines())
    assert set(archives) == {"registry.k8s.io/pause:3.10",
                             "localhost/openfiles-sidecar/livenessprobe:v0.1.0"}
    assert "registry.k8s.io/pause:3.10 pause ran in" in first.stderr
    assert "exit 0 on SIGTERM" in first.stderr
    assert "fake sidecar --version" in first.stderr
    with tarfile.open(archives["registry.k8s.io/pause:3.10"]) as tar:
        assert "index.json" in tar.getnames()
    before = {path: Path(path).read_bytes() for path in archives.values()}

    again = build("build", "--only", "pause", "--only", "livenessprobe", cache=cache,
                  bin_dir=bin_dir)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count(": cached") == 2, again.stderr
    assert dict(line.split() for line in again.stdout.splitlines()) == archives
    assert {path: Path(path).read_bytes() for path in archives.values()} == before

    (bin_dir / "livenessprobe").write_bytes((bin_dir / "livenessprobe").read_bytes() + b"\0")
    changed = build("build", "--only", "livenessprobe", cache=cache, bin_dir=bin_dir)
    assert changed.returncode == 0, changed.stderr
    assert "built in" in changed.stderr
    (archive,) = [line.split()[1] for line in changed.stdout.splitlines()]
    assert archive != archives["localhost/openfiles-sidecar/livenessprobe:v0.1.0"]
    assert sorted(p.name for p in cache.glob("*livenessprobe*.tar")) == [Path(archive).name]
    assert not list(cache.glob("work-*"))
    assert not list(Path(tempfile.gettempdir()).glob("openfiles-ctr-*"))


@pytest.mark.root
def test_import_skips_an_image_already_there(tmp_path: Path, bin_dir: Path) -> None:
    containerd = importlib.import_module("containerd")
    cache = tmp_path / "cache"
    with containerd.ScratchContainerd(namespace="openfiles-test-import") as scratch:
        args = ("import", "--only", "pause", "--address", scratch.address,
                "--namespace", scratch.namespace)
        first = build(*args, cache=cache, bin_dir=bin_dir)
        assert first.returncode == 0, first.stderr
        assert "registry.k8s.io/pause:3.10: imported" in first.stderr
        second = build(*args, cache=cache, bin_dir=bin_dir)
        assert second.returncode == 0, second.stderr
        assert "registry.k8s.io/pause:3.10: already there" in second.stderr
        listing = scratch.ctr("images", "ls", "-q")
        assert listing.split() == ["registry.k8s.io/pause:3.10"]
    assert not Path(scratch.address).exists()


def test_a_dynamic_or_missing_binary_is_refused(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    absent = build("build", "--only", "livenessprobe", cache=tmp_path / "c", bin_dir=bin_dir)
    assert absent.returncode == 1
    assert "livenessprobe is not built: run scripts/bootstrap.sh" in absent.stderr
    shutil.copy("/bin/true", bin_dir / "livenessprobe")
    dynamic = build("build", "--only", "livenessprobe", cache=tmp_path / "c", bin_dir=bin_dir)
    assert dynamic.returncode == 1
    assert "is not a static executable" in dynamic.stderr
    unknown = build("build", "--only", "etcd", cache=tmp_path / "c", bin_dir=bin_dir)
    assert unknown.returncode == 1 and "unknown image ['etcd']" in unknown.stderr


def test_the_mirror_comes_from_apt_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# a comment\ndeb [arch=amd64] http://mirror.example/debian bookworm main contrib\n"
        "deb-src http://src.example/debian bookworm main\n")
    (tmp_path / "sources.list.d/debian.sources").write_text(
        "Types: deb\nURIs: http://other.example/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\n"
        "Types: deb\nURIs: http://sec.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\n"
        "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm-security\n"
        "Components: main\nEnabled: no\n")
    assert debian.apt_sources("bookworm", tmp_path) == [
        ("http://mirror.example/debian", "bookworm"),
        ("http://other.example/debian", "bookworm"),
        ("http://other.example/debian", "bookworm-updates"),
        ("http://sec.example/debian-security", "bookworm-security")]
    with pytest.raises(debian.BuildError, match="no apt source for trixie main"):
        debian.apt_sources("trixie", tmp_path)


@pytest.mark.root
def test_a_build_directory_is_removed_with_the_mounts_inside_it(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "rootfs/proc").mkdir(parents=True)
    (work / "rootfs/dev").mkdir()
    subprocess.run(["mount", "-t", "proc", "proc", str(work / "rootfs/proc")], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(work / "rootfs/dev")], check=True)
    (work / "rootfs/dev/file").write_text("on the tmpfs")
    assert len(debian.mounts_under(work)) == 2
    debian.remove_tree(work)
    assert not work.exists()
    assert debian.mounts_under(tmp_path) == []
