"""The OpenFiles image's root file system: Debian, Python, fuse3 and the wheels.

The same contents as the repository's ``Containerfile``, made without a
container engine (needs root and ``debootstrap``), in two parts so that a
change of the project's code does not redo the first:

1. the base (:func:`make_base`): ``debootstrap --variant=minbase`` of the
   suite from the mirror this machine's apt uses (read from its sources at run
   time, so no mirror host is written into the repository); the chroot's apt
   gets the suite, its updates and its security suite from the same sources;
   then, in the chroot under ``env -i`` (the host's pip and apt settings must
   not leak in), ``apt-get install`` of the runtime packages with ``/proc``
   mounted for their scripts; apt's cache and lists, docs, man pages, locales
   and the host's resolv.conf and hostname dropped;
2. the wheels (:func:`install_wheels`), built on the host
   (:func:`dependency_wheels`, :func:`project_wheel`), installed into a venv
   at ``/opt/openfiles`` with ``pip install --no-index``: no compiler, no
   download and, afterwards, no pip in the image; every ``.pyc`` recompiled as
   an unchecked-hash pyc, which stays valid in a layer whose mtimes are all 0
   (timestamp pycs would be stale there and recompiled at every start, or on
   a read-only root file system at every import).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

PYTHON = "3.11"  # bookworm's python3; the host wheels must be built for the same
VENV = "/opt/openfiles"
CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
EMPTIED = ("var/lib/apt/lists", "var/cache/apt", "usr/share/doc", "usr/share/man",
           "usr/share/info", "usr/share/lintian", "usr/share/locale", "var/log")


class BuildError(RuntimeError):
    """A step of the image build failed; the message names it."""


def run(command: list[str], *, log: Path, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> None:
    """Run ``command``, appending its output to ``log``; a failure raises with
    the log's last lines."""
    with open(log, "ab") as sink:
        sink.write(("$ " + " ".join(command) + "\n").encode())
        sink.flush()
        done = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, env=env,
                              cwd=cwd, check=False)
    if done.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-25:]
        raise BuildError(f"{command[0]} failed ({done.returncode}); log {log}:\n"
                         + "\n".join(tail))


def _sources_entries(text: str, deb822: bool) -> Iterator[tuple[str, list[str], list[str]]]:
    """(uri, suites, components) of each ``deb`` entry of one apt sources file."""
    if not deb822:
        for line in text.splitlines():
            words = [w for w in line.split("#")[0].split() if not w.startswith("[")]
            if len(words) >= 4 and words[0] == "deb":
                yield words[1], [words[2]], words[3:]
        return
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            key, colon, value = line.partition(":")
            if colon and not line.startswith(("#", " ")):
                fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
            for uri in fields.get("uris", "").split():
                yield uri, fields.get("suites", "").split(), fields.get("components", "").split()


def apt_sources(suite: str, etc: Path = Path("/etc/apt")) -> list[tuple[str, str]]:
    """(mirror uri, suite) for ``suite``, its ``-updates`` and ``-security``
    suites with component main, as this machine's apt has them; the first is
    the suite itself (debootstrap's mirror). None for the suite raises."""
    files = [(etc / "sources.list", False)]
    files += [(p, False) for p in sorted((etc / "sources.list.d").glob("*.list"))]
    files += [(p, True) for p in sorted((etc / "sources.list.d").glob("*.sources"))]
    wanted = (suite, f"{suite}-updates", f"{suite}-security")
    found: list[tuple[str, str]] = []
    for path, deb822 in files:
        if not path.is_file():
            continue
        for uri, suites, components in _sources_entries(path.read_text(), deb822):
            for name in suites:
                if name in wanted and "main" in components and (uri, name) not in found:
                    found.append((uri.rstrip("/"), name))
    found.sort(key=lambda entry: wanted.index(entry[1]))
    if not found or found[0][1] != suite:
        raise BuildError(f"no apt source for {suite} main in {etc}: cannot pick a mirror")
    return found


def pip_python() -> str:
    """A Python {PYTHON} (the image's) with pip, for ``pip wheel``: the one running
    this, ``python{PYTHON}`` on PATH, or Debian's (package python3-pip)."""
    tried = [sys.executable, shutil.which(f"python{PYTHON}"), f"/usr/bin/python{PYTHON}"]
    probe = f"import sys, pip; assert sys.version_info[:2] == {tuple(map(int, PYTHON.split('.')))}"
    for python in tried:
        if python and subprocess.run([python, "-c", probe], capture_output=True,
                                     check=False).returncode == 0:
            return python
    raise BuildError(f"no Python {PYTHON} with pip among {tried}: install python3-pip")


def dependency_wheels(context: Path, out: Path, uv: list[str], log: Path) -> None:
    """Build the locked runtime dependencies of the project at ``context`` into
    wheels in ``out`` (pyfuse3 compiles against the host's libfuse3-dev, the
    same 3.14 as bookworm's) with a Python of the image's version."""
    python = pip_python()
    out.mkdir(parents=True, exist_ok=True)
    requirements = out / "requirements.txt"
    run([*uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--no-header",
         "-o", str(requirements)], log=log, cwd=context)
    run([python, "-m", "pip", "wheel", "--no-cache-dir", "-q", "-w", str(out),
         "-r", str(requirements)], log=log, cwd=context)


def project_wheel(context: Path, out: Path, uv: list[str], log: Path) -> Path:
    """Build the project's own wheel (pure Python) from ``context`` into ``out``."""
    run([*uv, "build", "--wheel", "-o", str(out)], log=log, cwd=context)
    (wheel,) = out.glob("openfiles-*.whl")
    return wheel


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root``, deepest first."""
    prefix = str(root.resolve())
    points = []
    with open("/proc/self/mountinfo") as table:
        for line in table:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def unmount_all(root: Path) -> None:
    """Unmount everything under ``root`` (debootstrap's or ours); raise if any stays."""
    for point in mounts_under(root):
        subprocess.run(["umount", "--lazy", point], check=False)
    left = mounts_under(root)
    if left:
        raise BuildError(f"mounts left under {root}: {left}")


def remove_tree(root: Path) -> None:
    """Delete a build directory, never through a mount still inside it."""
    if root.exists():
        unmount_all(root)
        shutil.rmtree(root)


def _chroot(root: Path, command: list[str], log: Path) -> None:
    env = {"PATH": CHROOT_PATH, "DEBIAN_FRONTEND": "noninteractive", "LANG": "C.UTF-8",
           "HOME": "/root"}
    run(["chroot", str(root), *command], log=log, env=env)


@contextlib.contextmanager
def _proc(root: Path) -> Iterator[None]:
    """/proc mounted in the chroot for the packages' scripts; unmounted after."""
    subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
    try:
        yield
    finally:
        unmount_all(root)


def make_base(root: Path, *, suite: str, packages: list[str], log: Path) -> None:
    """Fill the empty directory ``root`` with Debian ``suite`` and ``packages``,
    without caches, lists or docs (root only). Needs the mirror, nothing else."""
    if os.geteuid() != 0:
        raise BuildError("debootstrap and chroot need root")
    if shutil.which("debootstrap") is None:
        raise BuildError("debootstrap is not installed (Debian package debootstrap)")
    sources = apt_sources(suite)
    run(["debootstrap", "--variant=minbase", suite, str(root), sources[0][0]], log=log,
        env={"PATH": CHROOT_PATH, "LANG": "C.UTF-8"})
    (root / "etc/apt/sources.list").write_text(
        "".join(f"deb {uri} {name} main\n" for uri, name in sources))
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
    policy = root / "usr/sbin/policy-rc.d"  # no service starts inside the chroot
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    with _proc(root):
        _chroot(root, ["apt-get", "update", "-qq"], log)
        _chroot(root, ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                       *packages], log)
        _chroot(root, ["apt-get", "clean"], log)
        _compile(root, ["/usr/lib/python3", f"/usr/lib/python{PYTHON}"], log)
    for relative in EMPTIED:
        target = root / relative
        if target.is_dir():
            shutil.rmtree(target)
            target.mkdir(mode=0o755)
    for path in (policy, root / "etc/resolv.conf", root / "etc/hostname"):
        path.unlink(missing_ok=True)
    (root / "etc/resolv.conf").touch()  # the runtime mounts its own over it


def save_tree(root: Path, archive: Path, log: Path) -> None:
    """Keep the tree ``root`` (owners, modes, links, xattrs) as the tar ``archive``."""
    partial = archive.with_name(archive.name + ".partial")
    run(["tar", "-C", str(root), "--numeric-owner", "--xattrs", "-cf", str(partial), "."],
        log=log)
    os.replace(partial, archive)


def load_tree(archive: Path, root: Path, log: Path) -> None:
    """Unpack a tree kept by :func:`save_tree` into the new directory ``root``."""
    root.mkdir()
    run(["tar", "-C", str(root), "--numeric-owner", "--xattrs", "-xpf", str(archive)],
        log=log)


def install_wheels(root: Path, wheels: list[Path], log: Path) -> None:
    """Install ``wheels`` (no index, no download) into a venv at /opt/openfiles in the
    base ``root``, without pip and setuptools, and compile every module to an
    unchecked-hash pyc."""
    stage = root / "tmp/wheels"
    stage.mkdir()
    for wheel in wheels:
        shutil.copyfile(wheel, stage / wheel.name)
    with _proc(root):
        _chroot(root, ["python3", "-m", "venv", VENV], log)
        _chroot(root, [f"{VENV}/bin/python", "-m", "pip", "install", "--no-index",
                       "--no-cache-dir", "--no-compile", "--disable-pip-version-check", "-q",
                       "--find-links", "/tmp/wheels",
                       *[f"/tmp/wheels/{w.name}" for w in wheels]], log)
        _chroot(root, [f"{VENV}/bin/python", "-m", "pip", "uninstall", "-y", "-q", "pip",
                       "setuptools"], log)
        _compile(root, [f"{VENV}/lib"], log)
    shutil.rmtree(stage)


def _compile(root: Path, targets: list[str], log: Path) -> None:
    """Replace every pyc under ``targets`` (absolute in the chroot) by an
    unchecked-hash one."""
    for target in targets:
        for top, dirs, _ in os.walk(root / target.lstrip("/")):
            if "__pycache__" in dirs:
                dirs.remove("__pycache__")
                shutil.rmtree(Path(top) / "__pycache__")
    _chroot(root, ["python3", "-m", "compileall", "-q", "-j", "0", "--invalidation-mode",
                   "unchecked-hash", *targets], log)
