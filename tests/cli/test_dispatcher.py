"""The ``openfiles`` dispatcher (``openfiles_cli``): lazy subcommands, and a clear
word when a subcommand's package is not installed."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

import openfiles_cli
from openfiles_cli import main


def fake_module(monkeypatch: pytest.MonkeyPatch, name: str, entry: object) -> None:
    module = types.ModuleType(name)
    module.main = entry  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, name, module)


def test_a_subcommand_gets_its_name_and_arguments_and_returns_its_status(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[list[str]] = []

    def entry(argv: list[str]) -> int:
        seen.append(argv)
        return 7

    fake_module(monkeypatch, "openfiles_bench.cli", entry)
    assert main(["bench", "--quick", "--targets", "raw"]) == 7
    assert seen == [["bench", "--quick", "--targets", "raw"]]


def test_bench_dispatches_to_the_benchmark_package() -> None:
    run = subprocess.run([sys.executable, "-m", "openfiles_cli", "bench", "--help"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage: openfiles bench")
    assert openfiles_cli.COMMANDS["bench"][0] == "openfiles_bench.cli"


def test_bench_without_its_package_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    # None in sys.modules makes the import fail as if the package were absent.
    monkeypatch.setitem(sys.modules, "openfiles_bench", None)
    monkeypatch.delitem(sys.modules, "openfiles_bench.cli", raising=False)
    assert main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "openfiles bench needs the openfiles-bench package" in err
    assert "`uv sync`" in err and "`pip install ./bench`" in err


def test_the_console_script_without_the_benchmark_exits_2_without_a_traceback() -> None:
    code = ("import runpy, sys; sys.modules['openfiles_bench'] = None; "
            "sys.argv = ['openfiles', 'bench']; "
            "runpy.run_module('openfiles_cli', run_name='__main__')")
    run = subprocess.run([sys.executable, "-c", code],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.startswith("openfiles: openfiles bench needs the openfiles-bench package")
    assert "Traceback" not in run.stderr


def test_another_missing_package_is_not_available_in_this_build(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "openfiles_operator", None)
    monkeypatch.delitem(sys.modules, "openfiles_operator.cli", raising=False)
    assert main(["operator"]) == 2
    err = capsys.readouterr().err
    assert err == "openfiles: command 'operator' is not available in this build\n"


def test_a_missing_dependency_inside_a_package_is_not_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def import_module(name: str) -> types.ModuleType:
        raise ModuleNotFoundError("No module named 'minio'", name="minio")

    monkeypatch.setattr(openfiles_cli.importlib, "import_module", import_module)
    with pytest.raises(ModuleNotFoundError, match="minio"):
        main(["bench"])


def test_usage_and_unknown_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in openfiles_cli.COMMANDS)
    assert main(["nfs"]) == 2
    assert "unknown command 'nfs'" in capsys.readouterr().err
