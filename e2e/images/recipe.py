"""How each e2e image is made: pause, a sidecar, OpenFiles.

Each recipe returns an :class:`Image`: its reference, the inputs its cache key
hashes, and ``make``, which writes the archive. The OpenFiles recipe keeps two
caches of its own next to the archives, so that a change of the project's code
redoes only the wheel, the venv and the layer: the dependency wheels
(``wheels-<key>``, keyed by uv.lock and the pyprojects) and the Debian base
(``base-<suite>-<key>.tar``, keyed by the suite, the package list and
debian.py).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import debian
import ociarchive
from ociarchive import File, ImageConfig

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PASSWD = b"root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n"
GROUP = b"root:x:0:\nnogroup:x:65534:\n"
VENV_PATH = f"PATH={debian.VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Image:
    """One image: its short name, full reference, cache inputs and recipe.

    ``make(out, work, log)`` writes the archive ``out`` (scratch space in
    ``work``, build output appended to ``log``) and returns the manifest digest."""

    name: str
    reference: str
    inputs: tuple[Path | bytes, ...]
    make: Callable[[Path, Path, Path], str]


def log(message: str) -> None:
    print(f"[images {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def digest(items: list[Path | bytes]) -> str:
    """A short hex key over files (their path under the repository and content)
    and byte strings, in order."""
    sha = hashlib.sha256()
    for item in items:
        if isinstance(item, Path):
            name = item.relative_to(ROOT) if item.is_relative_to(ROOT) else item
            sha.update(f"{name}\0".encode())
            with open(item, "rb") as data:
                sha.update(hashlib.file_digest(data, "sha256").digest())
        else:
            sha.update(hashlib.sha256(item).digest())
    return sha.hexdigest()[:20]


def prune(cache: Path, pattern: str, keep: Path) -> None:
    """Delete the cache entries matching ``pattern`` (older builds) except ``keep``."""
    for stale in cache.glob(pattern):
        if stale != keep:
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()


def passwd_files() -> list[File]:
    return [File("etc/passwd", data=PASSWD), File("etc/group", data=GROUP)]


def is_static(binary: Path) -> bool:
    """True for a 64-bit ELF executable without a program interpreter (PT_INTERP)."""
    with open(binary, "rb") as f:
        head = f.read(65536)
    if head[:5] != b"\x7fELF\x02":
        return False
    phoff = int.from_bytes(head[0x20:0x28], "little")
    size, count = (int.from_bytes(head[o:o + 2], "little") for o in (0x36, 0x38))
    types = {int.from_bytes(head[phoff + i * size:phoff + i * size + 4], "little")
             for i in range(count)}
    return 3 not in types


def pause_image(reference: str) -> Image:
    """Our own pause program (pause.c), static, as ``/pause`` running as 65535."""
    source = HERE / "pause.c"

    def make(out: Path, work: Path, log_file: Path) -> str:
        binary = work / "pause"
        debian.run(["gcc", "-static", "-O2", "-s", "-Wall", "-Werror", "-o", str(binary),
                    str(source)], log=log_file)
        return ociarchive.write_archive(
            out, reference, ImageConfig(entrypoint=["/pause"], user="65535:65535"),
            files=[File("pause", 0o755, source=binary), *passwd_files()])

    return Image("pause", reference, (source,), make)


def sidecar_image(binary: Path, reference: str) -> Image:
    """A static Go binary as ``/<name>``, its entry point, and a minimal /etc/passwd."""
    if not os.access(binary, os.X_OK):
        raise debian.BuildError(f"{binary} is not built: run scripts/bootstrap.sh")
    if not is_static(binary):
        raise debian.BuildError(f"{binary} is not a static executable: the image has no libc")

    def make(out: Path, work: Path, log_file: Path) -> str:
        return ociarchive.write_archive(
            out, reference, ImageConfig(entrypoint=[f"/{binary.name}"]),
            files=[File(binary.name, 0o755, source=binary), *passwd_files()])

    return Image(binary.name, reference, (binary,), make)


def containerfile_sources() -> list[Path]:
    """Files the Containerfile's build stage copies (sorted, no bytecode)."""
    sources: list[str] = []
    stage = 0
    for line in (ROOT / "Containerfile").read_text().splitlines():
        words = line.split()
        stage += words[:1] == ["FROM"]
        if stage == 1 and words[:1] == ["COPY"]:
            sources += words[1:-1]
    found: set[Path] = set()
    for source in sources:
        path = ROOT / source
        if path.is_dir():
            found |= {p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                      and p.suffix != ".pyc"}
        else:
            found.add(path)
    return sorted(found)


def app_version() -> str:
    """The chart's appVersion: the OpenFiles image's tag."""
    chart = (ROOT / "charts/openfiles/Chart.yaml").read_text()
    match = re.search(r"^appVersion:\s*[\"']?([^\"'\s]+)", chart, re.MULTILINE)
    if not match:
        raise debian.BuildError("no appVersion in charts/openfiles/Chart.yaml")
    return match.group(1)


def uv_command() -> list[str]:
    found = shutil.which("uv") or shutil.which("uv", path=str(Path.home() / ".local/bin"))
    return [found] if found else [sys.executable, "-m", "uv"]


def openfiles_image(repository: str, suite: str, packages: list[str], cache: Path) -> Image:
    """The Containerfile's image: Debian ``suite`` with ``packages`` and the
    project's wheels in a venv; entry point ``openfiles``; tag the appVersion."""
    reference = f"{repository}:{app_version()}"
    sources = containerfile_sources()
    settings = f"{suite}\0{' '.join(packages)}\0{debian.PYTHON}".encode()
    locks: list[Path | bytes] = [ROOT / "uv.lock", ROOT / "pyproject.toml",
                                 ROOT / "bench/pyproject.toml", settings]

    def make(out: Path, work: Path, log_file: Path) -> str:
        context = work / "src"
        for path in sources:
            (context / path.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, context / path.relative_to(ROOT))
        deps = cache / f"wheels-{digest([*locks, HERE / 'debian.py'])}"
        if not deps.is_dir():
            log("building the dependency wheels (pyfuse3 compiles, about a minute)")
            debian.dependency_wheels(context, work / "deps", uv_command(), log_file)
            (work / "deps").rename(deps)
            prune(cache, "wheels-*", keep=deps)
        rootfs = work / "rootfs"
        base = cache / f"base-{suite}-{digest([settings, HERE / 'debian.py'])}.tar"
        if base.exists():
            log(f"Debian base cached: {base.name}")
            debian.load_tree(base, rootfs, log_file)
        else:
            log(f"debootstrap {suite} and apt-get install {' '.join(packages)}")
            debian.make_base(rootfs, suite=suite, packages=packages, log=log_file)
            debian.save_tree(rootfs, base, log_file)
            prune(cache, f"base-{suite}-*.tar", keep=base)
        wheels = sorted(deps.glob("*.whl"))
        wheels.append(debian.project_wheel(context, work / "project", uv_command(), log_file))
        log("installing the wheels")
        debian.install_wheels(rootfs, wheels, log_file)
        log("packing the layer")
        config = ImageConfig(entrypoint=["openfiles"], env=[VENV_PATH, "LANG=C.UTF-8"],
                             labels={"org.opencontainers.image.title": "openfiles",
                                     "org.opencontainers.image.version": app_version()})
        return ociarchive.write_archive(out, reference, config, root=rootfs)

    return Image("openfiles", reference, (*locks, *sources), make)
