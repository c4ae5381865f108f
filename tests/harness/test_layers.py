"""The import layers of STYLE.md and docs/ARCHITECTURE.md, checked on the source
(static and lazy imports).

Between packages:
- the engine, the CSI package and the operator never import each other;
- the engine never imports asyncio, grpc, kopf or kubernetes;
- the CSI package and the operator never import trio or pyfuse3;
- the CLI dispatcher imports none of them statically (it loads them by name);
- the benchmark drives the product through its command line and control
  socket, so it imports none of the three either;
- ``openfiles_contracts`` imports the standard library only (not asyncio,
  which the engine may not load), and every package may import it;
- in each package, one module at most imports obstore, and one at most the
  Kubernetes client: the single place that talks to a bucket or the API.

Inside a package:
- the engine's subsystems import downwards only (LAYERS below);
- the CSI mounter (``openfiles_csi.mounter``) imports neither grpc nor the
  plugin: it is a program of its own that must outlive the plugin.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "openfiles_cli": ROOT / "cli" / "openfiles_cli",
    "openfiles_contracts": ROOT / "contracts" / "openfiles_contracts",
    "openfiles_engine": ROOT / "engine" / "openfiles_engine",
    "openfiles_csi": ROOT / "csi" / "openfiles_csi",
    "openfiles_operator": ROOT / "operator" / "openfiles_operator",
    "openfiles_bench": ROOT / "bench" / "openfiles_bench",
}
THREE = {"openfiles_engine", "openfiles_csi", "openfiles_operator"}
FORBIDDEN = {
    "openfiles_cli": THREE | {"openfiles_bench"},
    "openfiles_engine": {"openfiles_csi", "openfiles_operator", "openfiles_bench", "asyncio",
                         "grpc", "kopf", "kubernetes", "nats"},
    "openfiles_csi": {"openfiles_engine", "openfiles_operator", "openfiles_bench", "trio",
                      "pyfuse3"},
    "openfiles_operator": {"openfiles_engine", "openfiles_csi", "openfiles_bench", "trio",
                           "pyfuse3"},
    "openfiles_bench": THREE,
}
SINGLE_CALLER = {"obstore", "kubernetes"}

# The engine's subsystems, lowest first. A module may import its own layer and
# the layers below; the top-level modules not named here (settings, metrics,
# mount point checks) sit below every subsystem, and the wiring (engine.py,
# cli.py, demo.py, control.py) above all of them.
LAYERS = [
    {"openfiles_engine.config", "openfiles_engine.metrics", "openfiles_engine.mountpoint"},
    {"openfiles_engine.bucket"},
    {"openfiles_engine.state"},
    {"openfiles_engine.cache"},
    {"openfiles_engine.read", "openfiles_engine.export"},
    {"openfiles_engine.fuse"},
    {"openfiles_engine.engine", "openfiles_engine.control", "openfiles_engine.cli",
     "openfiles_engine.demo", "openfiles_engine.relay"},
]


def imported_modules(path: Path) -> set[str]:
    """Dotted names of every module ``path`` imports, anywhere in the file.

    ``from a.b import c`` yields ``a.b.c`` (``c`` may be a module or a name in
    ``a.b``; callers compare prefixes). Relative imports are resolved against
    the module's own package.
    """
    package = module_name(path).rpartition(".")[0] if path.name != "__init__.py" \
        else module_name(path)
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names |= {f"{base}.{alias.name}" for alias in node.names}
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names.add(node.args[0].value)
    return names


def imported_roots(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports, anywhere in the file."""
    return {name.split(".")[0] for name in imported_modules(path) if name}


def module_name(path: Path) -> str:
    for package, folder in PACKAGES.items():
        if path.is_relative_to(folder):
            rel = path.relative_to(folder).with_suffix("").parts
            return ".".join((package, *rel)).removesuffix(".__init__")
    return ""  # outside the packages (a sample file): relative imports stay unresolved


def show(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def sources(package: str) -> list[Path]:
    return [p for p in sorted(PACKAGES[package].rglob("*.py")) if "_proto" not in p.parts]


def layer_of(name: str) -> int | None:
    for index, layer in enumerate(LAYERS):
        if any(name == unit or name.startswith(unit + ".") for unit in layer):
            return index
    return None


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_forbidden_imports(package: str) -> None:
    offences = {
        show(path): sorted(imported_roots(path) & FORBIDDEN.get(package, set()))
        for path in sources(package)
    }
    assert {k: v for k, v in offences.items() if v} == {}


def test_contracts_import_the_standard_library_only() -> None:
    allowed = (set(sys.stdlib_module_names) - {"asyncio"}) | {"openfiles_contracts", "__future__"}
    offences = {
        show(path): sorted(imported_roots(path) - allowed)
        for path in sources("openfiles_contracts")
    }
    assert {k: v for k, v in offences.items() if v} == {}


@pytest.mark.parametrize("package", sorted(THREE | {"openfiles_bench"}))
@pytest.mark.parametrize("library", sorted(SINGLE_CALLER))
def test_one_module_talks_to_each_service(package: str, library: str) -> None:
    names = [show(p) for p in sources(package) if library in imported_roots(p)]
    assert len(names) <= 1, f"{library} is imported by several modules of {package}: {names}"


def test_every_engine_module_has_a_layer() -> None:
    assert [module_name(p) for p in sources("openfiles_engine")
            if p.name != "__init__.py" and layer_of(module_name(p)) is None] == []


def test_engine_subsystems_import_downwards() -> None:
    offences = []
    for path in sources("openfiles_engine"):
        own = layer_of(module_name(path))
        if own is None:
            continue
        for name in imported_modules(path):
            layer = layer_of(name)
            if layer is not None and layer > own:
                offences.append(f"{module_name(path)} imports {name}")
    assert offences == []


def test_the_mounter_stays_apart_from_the_plugin() -> None:
    mounter = PACKAGES["openfiles_csi"] / "mounter"
    offences = {
        module_name(path): sorted(name for name in imported_modules(path)
                                  if name.split(".")[0] == "grpc"
                                  or name.startswith("openfiles_csi.plugin")
                                  or name.startswith("openfiles_csi._proto"))
        for path in sorted(mounter.rglob("*.py"))
    }
    assert {k: v for k, v in offences.items() if v} == {}


def test_the_checker_sees_lazy_imports(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    import trio.lowlevel\n    from grpc import aio\n"
                      "    importlib.import_module('kopf.on')\n")
    assert imported_roots(sample) == {"trio", "grpc", "kopf"}


def test_the_checker_fails_on_a_wrong_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             ) -> None:
    """Each rule above fails on a planted offence (a copy of the tree, one bad line)."""
    fake = tmp_path / "engine" / "openfiles_engine"
    (fake / "bucket").mkdir(parents=True)
    (fake / "bucket" / "store.py").write_text("from openfiles_engine.fuse import operations\n")
    (fake / "state.py").write_text("import asyncio\n")
    csi = tmp_path / "csi" / "openfiles_csi" / "mounter"
    csi.mkdir(parents=True)
    (csi / "mounts.py").write_text("from ..plugin import errors\n")
    contracts = tmp_path / "contracts" / "openfiles_contracts"
    contracts.mkdir(parents=True)
    (contracts / "wire.py").write_text("import trio\n")
    monkeypatch.setitem(PACKAGES, "openfiles_engine", fake)
    monkeypatch.setitem(PACKAGES, "openfiles_csi", csi.parent)
    monkeypatch.setitem(PACKAGES, "openfiles_contracts", contracts)
    for check in (lambda: test_forbidden_imports("openfiles_engine"),
                  test_engine_subsystems_import_downwards,
                  test_the_mounter_stays_apart_from_the_plugin,
                  test_contracts_import_the_standard_library_only):
        with pytest.raises(AssertionError):
            check()
