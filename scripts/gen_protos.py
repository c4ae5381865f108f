#!/usr/bin/env python3
"""Generate the CSI gRPC stubs into csi/openfiles_csi/_proto/.

The proto is staged under ``openfiles_csi/_proto/`` in a temporary include
root so that the generated ``csi_pb2_grpc.py`` imports its sibling as
``from openfiles_csi._proto import csi_pb2`` instead of a flat
``import csi_pb2`` that only works with a particular ``sys.path``.

``--check`` generates into a temporary directory and exits 1 when the result
differs from the committed files (like trio's ``gen_exports.py --test``).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "protos" / "csi.proto"
OUT = ROOT / "csi" / "openfiles_csi" / "_proto"
PACKAGE_DIR = Path("openfiles_csi") / "_proto"
INIT = '"""Generated CSI v1 stubs. Do not edit: run scripts/gen_protos.py."""\n'


def generate(dest: Path) -> None:
    """Write the stubs for ``PROTO`` into ``dest`` (a directory that exists)."""
    with tempfile.TemporaryDirectory() as tmp:
        include = Path(tmp) / "include"
        staged = include / PACKAGE_DIR
        staged.mkdir(parents=True)
        shutil.copyfile(PROTO, staged / "csi.proto")
        out = Path(tmp) / "out"
        out.mkdir()
        builtin = Path(protoc.__file__).parent / "_proto"
        # mypy-protobuf's plugins sit beside this interpreter in the venv,
        # which need not be on PATH.
        bindir = Path(sys.executable).parent
        rc = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{include}",
                f"-I{builtin}",
                f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
                f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
                f"--python_out={out}",
                f"--grpc_python_out={out}",
                f"--mypy_out={out}",
                f"--mypy_grpc_out={out}",
                str(PACKAGE_DIR / "csi.proto"),
            ]
        )
        if rc != 0:
            raise SystemExit(f"protoc failed with exit code {rc}")
        for path in sorted((out / PACKAGE_DIR).iterdir()):
            shutil.copyfile(path, dest / path.name)
        (dest / "__init__.py").write_text(INIT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed stubs differ")
    args = parser.parse_args()
    if not args.check:
        OUT.mkdir(parents=True, exist_ok=True)
        generate(OUT)
        print(f"generated stubs in {OUT.relative_to(ROOT)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        committed = {p.name for p in OUT.iterdir() if p.is_file()} if OUT.is_dir() else set()
        generated = {p.name for p in fresh.iterdir()}
        cmp = filecmp.cmpfiles(fresh, OUT, sorted(generated), shallow=False)
        stale = sorted(set(cmp[1]) | set(cmp[2]) | (committed - generated))
    if stale:
        print(f"stubs are stale, run scripts/gen_protos.py: {', '.join(stale)}", file=sys.stderr)
        return 1
    print("stubs are up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
