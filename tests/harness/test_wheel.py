"""The runtime wheel and the container image carry the product, not the benchmark.

The image builds its wheel from the files its Containerfile copies into the
build stage. These tests copy the same files into a scratch directory, export
the runtime requirements and build the wheel there, as the image does (uv
instead of pip, from uv's cache: no download), and look inside.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from fixtures.prereq import missing

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = {"openfiles_cli", "openfiles_contracts", "openfiles_engine", "openfiles_csi",
           "openfiles_operator"}


def build_copies() -> list[tuple[list[str], str]]:
    """``(sources, destination)`` of every COPY of the Containerfile's build stage."""
    copies, stage = [], 0
    for line in (ROOT / "Containerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["FROM"]:
            stage += 1
        elif words[:1] == ["COPY"] and stage == 1:
            assert not any(w.startswith("--") for w in words), line
            copies.append((words[1:-1], words[-1]))
    return copies


def build_context(into: Path) -> Path:
    """The build stage's /src, made from the repository as the Containerfile copies it."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for sources, destination in build_copies():
        target = into / destination
        for source in sources:
            origin = ROOT / source
            if origin.is_dir():
                shutil.copytree(origin, target, ignore=ignore, dirs_exist_ok=True)
            elif destination.endswith("/"):
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target / origin.name)
            else:
                shutil.copy2(origin, target)
    return into


def uv() -> list[str]:
    """The uv that scripts/bootstrap.sh installed: on PATH, in ~/.local/bin, or a module."""
    found = shutil.which("uv") or shutil.which("uv", path=str(Path.home() / ".local" / "bin"))
    if found:
        return [found]
    probe = subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True,
                           check=False)
    if probe.returncode == 0:
        return [sys.executable, "-m", "uv"]
    missing("uv is not installed: run scripts/bootstrap.sh")
    raise AssertionError("unreachable")


def test_the_image_copies_every_runtime_package_and_no_benchmark_code() -> None:
    copied = {source.rstrip("/") for sources, _ in build_copies() for source in sources}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert {Path(p).name for p in packages} == RUNTIME
    assert {str(Path(p).parent) for p in packages} <= copied
    assert {p for p in copied if p.startswith("bench")} == {"bench/pyproject.toml"}


def test_the_runtime_wheel_carries_no_benchmark(tmp_path: Path) -> None:
    context = build_context(tmp_path / "src")
    assert not list((context / "bench").glob("**/*.py"))
    export = subprocess.run(
        [*uv(), "export", "--frozen", "--no-dev", "--no-emit-project", "--no-header"],
        cwd=context, capture_output=True, text=True, timeout=120, check=False)
    assert export.returncode == 0, export.stderr
    requirements = {line.split("==")[0] for line in export.stdout.splitlines()
                    if "==" in line and not line.startswith(" ")}
    assert "pyfuse3" in requirements and "grpcio" in requirements
    assert not requirements & {"openfiles-bench", "minio", "pytest"}, requirements

    build = [*uv(), "build", "--wheel", "--python", sys.executable, "-o", str(tmp_path / "out")]
    run = subprocess.run([*build, "--offline"], cwd=context, capture_output=True, text=True,
                         timeout=120, check=False)
    if run.returncode != 0:  # the build backend is not in uv's cache yet: fetch it once
        run = subprocess.run(build, cwd=context, capture_output=True, text=True, timeout=300,
                             check=False)
    assert run.returncode == 0, run.stderr
    (wheel,) = (tmp_path / "out").glob("openfiles-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == RUNTIME
    assert "openfiles_contracts/__init__.py" in names
    assert not [name for name in names if "bench" in name.split("/")[0]]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "openfiles = openfiles_cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
