#!/usr/bin/env bash
# The whole test suite, from a fresh machine or a warm one:
#   bootstrap-tests (Debian packages, venv, pinned tools) -> ruff -> mypy --strict
#   -> pytest (import layers, stub freshness, unit, FUSE, MinIO, API server,
#   csi-sanity, chart).
# Extra arguments go to pytest (e.g. scripts/test.sh tests/engine -x).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n=== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "bootstrap"
scripts/bootstrap-tests.sh
export PATH="$PWD/.venv/bin:$PATH"

step "ruff"
ruff check .

step "mypy --strict"
mypy cli/openfiles_cli contracts/openfiles_contracts engine/openfiles_engine csi/openfiles_csi \
    operator/openfiles_operator bench/openfiles_bench

step "pytest"
python -m pytest "$@"
