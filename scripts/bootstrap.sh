#!/usr/bin/env bash
# Idempotent setup of what the main job needs (`openfiles demo`, `openfiles
# mount`), on a fresh Debian 12 machine or a warm one, in about a minute:
#   1. Debian packages: FUSE and what pyfuse3 compiles against;
#   2. uv and the project venv (.venv), from uv.lock.
# The test tools are scripts/bootstrap-tests.sh's job. One line per step is
# printed, with its time. Environment: see scripts/toolcache.sh.
set -euo pipefail
# shellcheck source=scripts/toolcache.sh
source "$(dirname "${BASH_SOURCE[0]}")/toolcache.sh"

MAIN_PACKAGES=(fuse3 libfuse3-dev pkg-config gcc)

python_venv() {
  local start uv=(uv)
  start=$(date +%s)
  if ! command -v uv >/dev/null 2>&1; then
    python3 -m pip install --quiet --user "uv>=0.5,<1" >"$TOOLS_DIR/uv.log" 2>&1 ||
      python3 -m pip install --quiet "uv>=0.5,<1" >>"$TOOLS_DIR/uv.log" 2>&1 || {
      cat "$TOOLS_DIR/uv.log" >&2
      exit 1
    }
    # Wherever pip put the script, the module runs from this interpreter.
    uv=(python3 -m uv)
  fi
  (cd "$ROOT" && "${uv[@]}" sync --locked --quiet) || exit 1
  log "venv" "$(cd "$ROOT" && .venv/bin/python --version)" "ready in $(($(date +%s) - start))s"
}

main() {
  local start
  start=$(date +%s)
  echo "bootstrap: the main job (Debian packages, .venv)"
  apt_packages debian "${MAIN_PACKAGES[@]}"
  python_venv
  echo "bootstrap: done in $(($(date +%s) - start))s"
}

main "$@"
