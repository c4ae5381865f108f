"""The import layers of STYLE.md, checked on the source (static and lazy imports).

- the three packages never import each other;
- the engine never imports asyncio, grpc, kopf or kubernetes;
- the CSI plugin and the operator never import trio or pyfuse3;
- the CLI dispatcher imports none of them statically (it loads them by name);
- in each package, one module at most imports obstore, and one at most the
  Kubernetes client: the single place that talks to a bucket or the API.
  The engine's benchmark (``bench*.py``) counts as a unit of its own: its raw
  object-store anchor must call obstore directly, not through the engine.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "openfiles_cli": ROOT / "cli" / "openfiles_cli",
    "openfiles_engine": ROOT / "engine" / "openfiles_engine",
    "openfiles_csi": ROOT / "csi" / "openfiles_csi",
    "openfiles_operator": ROOT / "operator" / "openfiles_operator",
}
THREE = {"openfiles_engine", "openfiles_csi", "openfiles_operator"}
FORBIDDEN = {
    "openfiles_cli": THREE,
    "openfiles_engine": {"openfiles_csi", "openfiles_operator", "asyncio", "grpc", "kopf",
                         "kubernetes"},
    "openfiles_csi": {"openfiles_engine", "openfiles_operator", "trio", "pyfuse3"},
    "openfiles_operator": {"openfiles_engine", "openfiles_csi", "trio", "pyfuse3"},
}
SINGLE_CALLER = {"obstore", "kubernetes"}


def imported_roots(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports, anywhere in the file."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            roots.add(node.args[0].value.split(".")[0])
    return roots


def sources(package: str) -> list[Path]:
    return [p for p in sorted(PACKAGES[package].rglob("*.py")) if "_proto" not in p.parts]


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_forbidden_imports(package: str) -> None:
    offences = {
        str(path.relative_to(ROOT)): sorted(imported_roots(path) & FORBIDDEN[package])
        for path in sources(package)
    }
    assert {k: v for k, v in offences.items() if v} == {}


@pytest.mark.parametrize("package", sorted(THREE))
@pytest.mark.parametrize("library", sorted(SINGLE_CALLER))
def test_one_module_talks_to_each_service(package: str, library: str) -> None:
    callers = [p for p in sources(package) if library in imported_roots(p)]
    for unit in (True, False):
        names = [str(p.relative_to(ROOT)) for p in callers if p.name.startswith("bench") is unit]
        assert len(names) <= 1, f"{library} is imported by several modules of {package}: {names}"


def test_the_checker_sees_lazy_imports(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    import trio.lowlevel\n    from grpc import aio\n"
                      "    importlib.import_module('kopf.on')\n")
    assert imported_roots(sample) == {"trio", "grpc", "kopf"}
