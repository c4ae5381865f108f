#!/usr/bin/env bash
# Idempotent setup of everything the tests need, on a fresh Debian 12 machine
# or a warm one:
#   1. Debian packages (FUSE, build headers, the benchmark anchors);
#   2. uv and the project venv (.venv), from uv.lock;
#   3. the pinned test tools, built from the Go module proxy into a cache
#      directory outside the repository.
# Each tool is skipped when its version stamp matches and its binary exists,
# so a warm run only checks stamps. One line per tool is printed, with its time.
#
# Environment:
#   OPENFILES_TOOLS_DIR  cache root (default ~/.cache/openfiles-tools);
#                        binaries go to $OPENFILES_TOOLS_DIR/bin
#   OPENFILES_SKIP_APT=1 do not touch Debian packages (non-root development)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${OPENFILES_TOOLS_DIR:-$HOME/.cache/openfiles-tools}"
BIN="$TOOLS_DIR/bin"
STAMPS="$TOOLS_DIR/stamps"
SRC="$TOOLS_DIR/src"
mkdir -p "$BIN" "$STAMPS" "$SRC"

# ---- pinned versions -------------------------------------------------------
# MinIO publishes no semver tags; this pseudo-version is the RELEASE of
# 2026-02-12 as the Go module proxy names it.
MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
CSI_TEST_VERSION="v5.4.0"
HELM_VERSION="v3.19.0"
KUBECONFORM_VERSION="v0.7.0"
ETCD_VERSION="v3.6.6"
# Kubernetes 1.34.x: the last minor line that pairs with Debian's containerd 1.6.
KUBERNETES_VERSION="v1.34.10"
DEBIAN_PACKAGES=(fuse3 libfuse3-dev pkg-config gcc openssl mount psmisc util-linux rclone s3fs)

# Build with the Go on the machine; never download another toolchain.
export GOTOOLCHAIN=local
# AWS_CA_BUNDLE is set on some hosts and breaks Go's TLS setup for nothing here.
unset AWS_CA_BUNDLE

log() { printf '%-16s %-44s %s\n' "$1" "$2" "$3"; }

timed() { # timed NAME VERSION CMD...: run CMD, print one line with its time
  local name=$1 version=$2 start
  shift 2
  start=$(date +%s)
  if ! "$@" >"$TOOLS_DIR/$name.log" 2>&1; then
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

# ---- 1. Debian packages ----------------------------------------------------
apt_packages() {
  local missing=() p start
  for p in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    log "debian" "${#DEBIAN_PACKAGES[@]} packages" "cached"
    return
  fi
  if [[ "${OPENFILES_SKIP_APT:-}" == 1 ]]; then
    log "debian" "missing: ${missing[*]}" "skipped (OPENFILES_SKIP_APT=1)"
    return
  fi
  start=$(date +%s)
  local sudo=()
  ((EUID == 0)) || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq >"$TOOLS_DIR/apt.log" 2>&1
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >>"$TOOLS_DIR/apt.log" 2>&1 || {
    tail -n 30 "$TOOLS_DIR/apt.log" >&2
    exit 1
  }
  log "debian" "${missing[*]}" "installed in $(($(date +%s) - start))s"
}

# ---- 2. Python venv ----------------------------------------------------------
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

# ---- 3. Go tools -------------------------------------------------------------
go_install() { # go_install NAME VERSION PACKAGE@VERSION BINARY
  local name=$1 version=$2 pkg=$3 binary=$4
  fresh "$name" "$version" "$binary" && return
  timed "$name" "$version" env GOBIN="$BIN" go install "$pkg"
  stamp "$name" "$version"
}

# Modules whose go.mod carries replace directives cannot be `go install`ed.
# They are built from a small wrapper module under $SRC that requires them.
etcd_build() {
  fresh etcd "$ETCD_VERSION" etcd && return
  local dir="$SRC/etcd"
  mkdir -p "$dir"
  cat >"$dir/go.mod" <<EOF
module openfiles.local/tools/etcd

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
  timed etcd "$ETCD_VERSION" bash -c "cd '$dir' && go mod tidy -e >/dev/null 2>&1; \
    go get go.etcd.io/etcd/server/v3@$ETCD_VERSION && \
    go build -o '$BIN/etcd' go.etcd.io/etcd/server/v3"
  stamp etcd "$ETCD_VERSION"
}

# Every Kubernetes binary the tests run: the API server and kubectl for the
# control-plane tests, the rest for the single-node cluster of the e2e tests.
KUBERNETES_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

kube_ldflags() { # the version stamp upstream's release build writes into each binary
  local minor=${KUBERNETES_VERSION#v1.} date pkg flags=()
  minor=${minor%%.*}
  # The tag's time as the module proxy reports it: fixed, so builds repeat.
  date=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' \
    "$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$KUBERNETES_VERSION.info")
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=("-X $pkg.gitVersion=$KUBERNETES_VERSION" "-X $pkg.gitMajor=1" "-X $pkg.gitMinor=$minor"
      "-X $pkg.gitTreeState=clean" "-X $pkg.buildDate=${date:-1970-01-01T00:00:00Z}")
  done
  echo "${flags[*]}"
}

kubernetes_build() {
  local dir="$SRC/kube" minor="v0.${KUBERNETES_VERSION#v1.}" modfile ldflags version b pkgs=()
  go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" >/dev/null
  ldflags=$(kube_ldflags)
  # The stamp names the ldflags too, so a binary built without them is rebuilt.
  version="$KUBERNETES_VERSION+ldflags.$(printf %s "$ldflags" | sha256sum | cut -c1-12)"
  fresh kubernetes "$version" "${KUBERNETES_BINARIES[@]}" && return
  mkdir -p "$dir"
  modfile="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$KUBERNETES_VERSION.mod"
  # k8s.io/kubernetes points every k8s.io/* staging module at ./staging; the
  # same code is published as k8s.io/<name> v0.N.x, so replace each with that.
  {
    printf 'module openfiles.local/tools/kube\n\ngo 1.24.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' \
      "$KUBERNETES_VERSION"
    sed -n '/^replace (/,/^)/p' "$modfile" | grep -o 'k8s.io/[a-z0-9-]* =>' |
      awk -v v="$minor" '{print "\t" $1 " => " $1 " " v}'
    printf ')\n'
  } >"$dir/go.mod"
  echo 'package tools' >"$dir/tools.go"
  for b in "${KUBERNETES_BINARIES[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  # One `go build` for all of them: shared packages compile once, in parallel.
  timed kubernetes "$version" bash -c "cd '$dir' && \
    go get ${pkgs[*]/%/@$KUBERNETES_VERSION} && \
    go build -ldflags '$ldflags' -o '$BIN/' ${pkgs[*]}"
  stamp kubernetes "$version"
}

go_tools() {
  command -v go >/dev/null 2>&1 || {
    echo "bootstrap: Go >= 1.24 is required to build the test tools (the machine image ships it)" >&2
    exit 1
  }
  go_install minio "$MINIO_VERSION" "github.com/minio/minio@$MINIO_VERSION" minio
  go_install csi-sanity "$CSI_TEST_VERSION" \
    "github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@$CSI_TEST_VERSION" csi-sanity
  go_install helm "$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" helm
  go_install kubeconform "$KUBECONFORM_VERSION" \
    "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" kubeconform
  etcd_build
  kubernetes_build
}

main() {
  local start
  start=$(date +%s)
  echo "bootstrap: tools cache $TOOLS_DIR"
  apt_packages
  python_venv
  go_tools
  echo "bootstrap: done in $(($(date +%s) - start))s"
}

main "$@"
