"""Build the e2e cluster's images as OCI archives, cached by a hash of their inputs.

    python3 e2e/images/build.py [build] [--only NAME]...
        build what is not cached; print "REFERENCE ARCHIVE" per image
    python3 e2e/images/build.py import --address SOCKET [--namespace k8s.io] [--only NAME]...
        build, then ``ctr images import`` each archive not already there
    python3 e2e/images/build.py check [--only NAME]...
        build, import into a throwaway containerd and run each image once

NAME is ``pause``, ``openfiles`` or a sidecar's binary name; images.toml holds
the references and versions. Archives go to $OPENFILES_TOOLS_DIR/images
(default ~/.cache/openfiles-tools/images) named ``<reference>-<key>.tar``; the
key hashes everything that goes in (the build scripts, the pause source, the
sidecar binary, or uv.lock, the package list, the suite and the files the
Containerfile copies), so a warm run builds nothing. Progress goes to stderr.
Needs root and debootstrap for the OpenFiles image, gcc for pause, containerd
for import and check.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterable
from pathlib import Path

import debian
import ociarchive
from containerd import ContainerdError, ScratchContainerd, import_archive
from recipe import HERE, Image, digest, log, openfiles_image, pause_image, prune, sidecar_image

TOOLS_DIR = Path(os.environ.get("OPENFILES_TOOLS_DIR", Path.home() / ".cache" / "openfiles-tools"))


def cache_key(image: Image) -> str:
    """Hash of the image's name, reference and inputs and of every build script."""
    scripts = sorted(p for p in HERE.iterdir() if p.suffix in {".py", ".c", ".toml", ".sh"})
    return digest([f"{image.name}\0{image.reference}".encode(), *scripts, *image.inputs])


def slug(reference: str) -> str:
    return re.sub(r"[/:]", "_", reference)


def catalogue(names: Iterable[str], cache: Path, bin_dir: Path) -> list[Image]:
    """The images of images.toml whose names are in ``names`` (all if empty)."""
    spec = tomllib.loads((HERE / "images.toml").read_text())
    wanted = set(names)
    known = {"pause", "openfiles", *(s["binary"] for s in spec["sidecar"])}
    if wanted - known:
        raise debian.BuildError(f"unknown image {sorted(wanted - known)}; known: {sorted(known)}")
    images: list[Image] = []
    if not wanted or "pause" in wanted:
        images.append(pause_image(spec["pause"]["reference"]))
    for sidecar in spec["sidecar"]:
        if not wanted or sidecar["binary"] in wanted:
            images.append(sidecar_image(bin_dir / sidecar["binary"], sidecar["reference"]))
    if not wanted or "openfiles" in wanted:
        o = spec["openfiles"]
        images.append(openfiles_image(o["repository"], o["suite"], o["packages"], cache))
    return images


def build(image: Image, cache: Path) -> tuple[Path, str]:
    """The archive of ``image`` and its manifest digest, built unless cached."""
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / f"{slug(image.reference)}-{cache_key(image)}.tar"
    with open(cache / f".lock-{slug(image.reference)}", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another build of the same image waits here
        if archive.exists():
            digest = str(ociarchive.read_index(archive)["digest"])
            log(f"{image.reference}: cached ({archive.stat().st_size / 2**20:.1f} MiB)")
            return archive, digest
        started = time.monotonic()
        log_file = cache / f"{slug(image.reference)}.log"
        log_file.write_text("")
        for crashed in cache.glob(f"work-{image.name}-*"):  # a build that was killed
            debian.remove_tree(crashed)
        work = Path(tempfile.mkdtemp(prefix=f"work-{image.name}-", dir=cache))
        try:
            digest = image.make(archive, work, log_file)
        finally:
            debian.remove_tree(work)
        repository = image.reference.rpartition(":")[0]
        prune(cache, f"{slug(repository)}_*-*.tar", keep=archive)
        log(f"{image.reference}: built in {time.monotonic() - started:.1f}s "
            f"({archive.stat().st_size / 2**20:.1f} MiB)")
        return archive, digest


def check(built: list[tuple[Image, Path, str]]) -> None:
    """Import every archive into a throwaway containerd and run each image once."""
    with ScratchContainerd() as scratch:
        for image, archive, digest in built:
            import_archive(scratch.address, scratch.namespace, archive, image.reference, digest)
        log("imported:\n" + scratch.ctr("images", "ls"))
        for image, _, _ in built:
            for what, argv, privileged in trials(image):
                started = time.monotonic()
                if image.name == "pause":
                    check_pause(scratch, image.reference)
                    output = "exit 0 on SIGTERM"
                else:
                    output = scratch.run(image.reference, f"check-{image.name}", *argv,
                                         privileged=privileged).strip()
                log(f"{image.reference} {what} ran in {time.monotonic() - started:.1f}s: "
                    f"{output.splitlines()[-1] if output else '(no output)'}")


def trials(image: Image) -> list[tuple[str, list[str], bool]]:
    """(label, whole command line, privileged) of each run ``check`` makes."""
    if image.name == "pause":
        return [("pause", [], False)]
    if image.name == "openfiles":  # demo: a FUSE mount inside the container
        return [("--help", ["openfiles", "--help"], False),
                ("demo", ["openfiles", "demo"], True)]
    return [("--version", [f"/{image.name}", "--version"], False)]


def check_pause(scratch: ScratchContainerd, reference: str) -> None:
    """pause keeps running until SIGTERM, then exits 0."""
    command = ["ctr", "-a", scratch.address, "-n", scratch.namespace, "run", "--rm",
               reference, "check-pause"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as run:
        deadline = time.monotonic() + 30
        while "RUNNING" not in scratch.ctr("tasks", "ls"):
            if run.poll() is not None or time.monotonic() > deadline:
                output = run.stdout.read() if run.stdout else b""
                raise ContainerdError(f"pause did not start: {output!r}")
            time.sleep(0.1)
        time.sleep(0.5)
        if run.poll() is not None:
            raise ContainerdError("pause exited on its own")
        scratch.ctr("tasks", "kill", "-s", "SIGTERM", "check-pause")
        if run.wait(timeout=30) != 0:
            raise ContainerdError(f"pause exited {run.returncode} on SIGTERM")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", default="build",
                        choices=["build", "import", "check"])
    parser.add_argument("--only", action="append", default=[], metavar="NAME")
    parser.add_argument("--address", help="containerd socket (import)")
    parser.add_argument("--namespace", default="k8s.io", help="containerd namespace (import)")
    parser.add_argument("--cache", type=Path, default=TOOLS_DIR / "images")
    parser.add_argument("--bin", type=Path, default=TOOLS_DIR / "bin",
                        help="where the sidecar binaries are")
    args = parser.parse_args(argv)
    if args.command == "import" and not args.address:
        parser.error("import needs --address SOCKET")
    try:
        built = [(image, *build(image, args.cache))
                 for image in catalogue(args.only, args.cache, args.bin)]
        if args.command == "import":
            for image, archive, digest in built:
                fresh = import_archive(args.address, args.namespace, archive, image.reference,
                                       digest)
                log(f"{image.reference}: {'imported' if fresh else 'already there'}")
        elif args.command == "check":
            check(built)
    except (debian.BuildError, ociarchive.ArchiveError, ContainerdError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for image, archive, _ in built:
        print(image.reference, archive)
    return 0


if __name__ == "__main__":
    sys.exit(main())
