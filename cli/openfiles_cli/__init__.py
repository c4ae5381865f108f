"""The ``openfiles`` command: one console script, subcommands from three packages.

The dispatcher imports none of ``openfiles_engine``, ``openfiles_csi`` or
``openfiles_operator`` at load time. Each subcommand names the module that
implements it, and only that module is imported when the subcommand runs. This
keeps the three runtimes apart: ``openfiles mount`` never loads grpc or kopf,
and ``openfiles csi`` never loads trio or pyfuse3.

``openfiles bench`` lives in a distribution of its own (``openfiles-bench``,
source root ``bench/``), which the runtime wheel and the image do not carry.
When a subcommand's package is not installed, the command says how to get it
and exits with status 2.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

# subcommand -> (module, one-line help). The module must define
# ``main(argv: list[str]) -> int`` that parses its own arguments.
COMMANDS: dict[str, tuple[str, str]] = {
    "mount": ("openfiles_engine.cli", "mount a bucket with the FUSE engine"),
    "flush": ("openfiles_engine.cli", "export every dirty file of a mount now"),
    "status": ("openfiles_engine.cli", "print the state of a mount"),
    "demo": ("openfiles_engine.demo", "mount a local file:// bucket, write, read, flush, list"),
    "bench": ("openfiles_bench.cli", "run the engine benchmark against its anchors"),
    "csi": ("openfiles_csi.plugin.cli", "run the CSI identity/controller/node gRPC server"),
    "mounter": ("openfiles_csi.mounter.cli", "run the per-node mounter that owns the engines"),
    "operator": ("openfiles_operator.cli", "run the kopf operator"),
    "events": ("openfiles_csi.relay.cli", "relay a mount's mutation events to NATS "
               "(the engine starts it)"),
}

# Packages that ship apart from the runtime wheel -> how a user gets them.
INSTALL: dict[str, str] = {
    "openfiles_bench": "openfiles bench needs the openfiles-bench package: "
    "`uv sync` in a clone of the repository, or `pip install ./bench` there",
}


def _usage() -> str:
    lines = ["usage: openfiles COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"openfiles: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, _ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        package = module_name.split(".")[0]
        if exc.name and (exc.name == package or exc.name.startswith(package + ".")):
            why = INSTALL.get(package, f"command {name!r} is not available in this build")
            print(f"openfiles: {why}", file=sys.stderr)
            return 2
        raise
    entry: Callable[[list[str]], int] = module.main
    return entry([name, *rest])


if __name__ == "__main__":
    raise SystemExit(main())
