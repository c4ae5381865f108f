# Sourced by scripts/bootstrap.sh and scripts/bootstrap-tests.sh: where the
# tool cache lives, the one-line-per-step report, version stamps, and the
# install of missing Debian packages.
#
# Environment:
#   OPENFILES_TOOLS_DIR  cache root (default ~/.cache/openfiles-tools);
#                        binaries go to $OPENFILES_TOOLS_DIR/bin
#   OPENFILES_SKIP_APT=1 do not touch Debian packages (non-root development)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${OPENFILES_TOOLS_DIR:-$HOME/.cache/openfiles-tools}"
BIN="$TOOLS_DIR/bin"
STAMPS="$TOOLS_DIR/stamps"
SRC="$TOOLS_DIR/src"
mkdir -p "$BIN" "$STAMPS" "$SRC"

log() { printf '%-26s %-44s %s\n' "$1" "$2" "$3"; }

timed() { # timed NAME VERSION CMD...: run CMD (a command or a function), print one line with its time
  local name=$1 version=$2 start rc=0
  shift 2
  start=$(date +%s)
  # In the background, CMD runs in a subshell (its cd stays there) with errexit
  # in force: a function would ignore it inside an `if` or a `||`.
  "$@" >"$TOOLS_DIR/$name.log" 2>&1 &
  wait $! || rc=$?
  if ((rc != 0)); then
    log "$name" "$version" "FAILED after $(($(date +%s) - start))s (log: $TOOLS_DIR/$name.log)"
    tail -n 30 "$TOOLS_DIR/$name.log" >&2
    exit 1
  fi
  log "$name" "$version" "built in $(($(date +%s) - start))s"
}

fresh() { # fresh NAME VERSION BINARY...: true when the stamp matches and binaries exist
  local name=$1 version=$2 b
  shift 2
  [[ -f "$STAMPS/$name" && "$(cat "$STAMPS/$name")" == "$version" ]] || return 1
  for b in "$@"; do [[ -x "$BIN/$b" ]] || return 1; done
  log "$name" "$version" "cached"
}

stamp() { echo "$2" >"$STAMPS/$1"; }

apt_packages() { # apt_packages NAME PACKAGE...: install the packages that are missing
  local name=$1 missing=() p start sudo=()
  shift
  for p in "$@"; do
    [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == *"install ok installed"* ]] || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    log "$name" "$# packages" "cached"
    return
  fi
  if [[ "${OPENFILES_SKIP_APT:-}" == 1 ]]; then
    log "$name" "missing: ${missing[*]}" "skipped (OPENFILES_SKIP_APT=1)"
    return
  fi
  start=$(date +%s)
  ((EUID == 0)) || sudo=(sudo)
  # Debian's `fuse` (FUSE 2) would remove fuse3: never let a dependency pull it in.
  "${sudo[@]}" apt-get update -qq >"$TOOLS_DIR/$name.log" 2>&1
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" fuse- >>"$TOOLS_DIR/$name.log" 2>&1 || {
    tail -n 30 "$TOOLS_DIR/$name.log" >&2
    exit 1
  }
  log "$name" "${missing[*]}" "installed in $(($(date +%s) - start))s"
}
