#!/usr/bin/env bash
# Idempotent setup of everything the tests need, on a fresh Debian 12 machine
# or a warm one (README's test command runs it first):
#   1. scripts/bootstrap.sh: what the main job needs (FUSE packages, .venv);
#   2. the Debian packages of the tests: the benchmark anchors (rclone, s3fs)
#      and the single-node cluster of e2e/ (containerd, runc, CNI plugins,
#      iptables, conntrack, socat, debootstrap, busybox-static);
#   3. the pinned test tools, built from the Go module proxy into the cache
#      directory (scripts/toolcache.sh): MinIO, csi-sanity, helm, kubeconform,
#      etcd, the Kubernetes binaries with their version stamped in, and the
#      CSI sidecars, the Google Cloud Storage emulator (fake-gcs-server's
#      library with the XML API uploads obstore sends, tools/gcsemulator/) and
#      nats-server (the broker of the mutation-event tests);
#   4. Azurite (the Azure Blob emulator) from npm, with the lock file of
#      tools/azurite/, into $OPENFILES_TOOLS_DIR/azurite.
# Each tool is skipped when its version stamp matches and its binary exists,
# so a warm run only checks stamps. One line per tool is printed, with its time.
set -euo pipefail
# shellcheck source=scripts/toolcache.sh
source "$(dirname "${BASH_SOURCE[0]}")/toolcache.sh"

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
# Every Kubernetes binary the tests run: the API server and kubectl for the
# control-plane tests, the rest for the single-node cluster of e2e/.
KUBERNETES_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
PROVISIONER_VERSION="v5.2.0"
# The registrar and the liveness probe are OpenFiles' own (tools/sidecar/):
# the Go module proxy serves no version of the kubernetes-csi modules.
SIDECAR_VERSION="v0.1.0"
# The newest release on the Go module proxy (checked 2026-12-04: v1.56.1 is the
# latest). It serves no XML API upload, so tools/gcsemulator/ wraps its library
# and adds them; its go.mod requires this same version (test_tools.py checks).
FAKE_GCS_VERSION="v1.56.1"
# Azurite 3.36 and later need Node >= 21; Debian 12's machine image ships Node 20.
# The same version is in tools/azurite/package.json (test_tools.py checks both).
AZURITE_VERSION="3.35.0"
# The NATS broker the mutation-event tests start on 127.0.0.1 (issue 15).
NATS_SERVER_VERSION="v2.15.3"
TEST_PACKAGES=(openssl mount psmisc util-linux iproute2 rclone s3fs
  containerd runc containernetworking-plugins iptables conntrack socat debootstrap busybox-static)

# Build with the Go on the machine; never download another toolchain.
export GOTOOLCHAIN=local
# AWS_CA_BUNDLE is set on some hosts and breaks Go's TLS setup for nothing here.
unset AWS_CA_BUNDLE

go_install() { # go_install NAME VERSION PACKAGE@VERSION BINARY
  local name=$1 version=$2 pkg=$3 binary=$4
  fresh "$name" "$version" "$binary" && return
  timed "$name" "$version" env GOBIN="$BIN" go install "$pkg"
  stamp "$name" "$version"
}

# Modules whose go.mod carries replace directives cannot be `go install`ed.
# etcd and Kubernetes are built from a small wrapper module under $SRC that
# requires them; the CSI provisioner in a writable copy of its own module.
etcd_compile() {
  local dir="$SRC/etcd"
  mkdir -p "$dir"
  printf 'module openfiles.local/tools/etcd\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 %s\n' \
    "$ETCD_VERSION" >"$dir/go.mod"
  cd "$dir"
  go mod tidy -e >/dev/null 2>&1 || true
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go build -o "$BIN/etcd" go.etcd.io/etcd/server/v3
}

etcd_build() {
  fresh etcd "$ETCD_VERSION" etcd && return
  timed etcd "$ETCD_VERSION" etcd_compile
  stamp etcd "$ETCD_VERSION"
}

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

kube_compile() { # kube_compile LDFLAGS
  local dir="$SRC/kube" minor="v0.${KUBERNETES_VERSION#v1.}" modfile b pkgs=()
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
  cd "$dir"
  go get "${pkgs[@]/%/@$KUBERNETES_VERSION}"
  # One `go build` for all of them: shared packages compile once, in parallel.
  go build -ldflags "$1" -o "$BIN/" "${pkgs[@]}"
}

kubernetes_build() {
  local ldflags version
  go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" >/dev/null
  ldflags=$(kube_ldflags)
  # The stamp names the ldflags too, so a binary built without them is rebuilt.
  version="$KUBERNETES_VERSION+ldflags.$(printf %s "$ldflags" | sha256sum | cut -c1-12)"
  fresh kubernetes "$version" "${KUBERNETES_BINARIES[@]}" && return
  timed kubernetes "$version" kube_compile "$ldflags"
  stamp kubernetes "$version"
}

module_compile() { # module_compile NAME MODULE@VERSION PACKAGE BINARY: build in a copy of the module
  local dir="$SRC/$1" from
  from=$(go mod download -json "$2" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -n "$from" ]] || { go mod download -json "$2"; return 1; }
  rm -rf "$dir"
  cp -r "$from" "$dir"
  chmod -R u+w "$dir"
  # Its vendor/ holds only modules.txt in the module zip; -mod=mod ignores it.
  cd "$dir"
  CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "-X main.version=${2##*@}" -o "$BIN/$4" "./$3"
}

provisioner_build() {
  fresh csi-provisioner "$PROVISIONER_VERSION" csi-provisioner && return
  timed csi-provisioner "$PROVISIONER_VERSION" module_compile csi-provisioner \
    "github.com/kubernetes-csi/external-provisioner/v5@$PROVISIONER_VERSION" cmd/csi-provisioner \
    csi-provisioner
  stamp csi-provisioner "$PROVISIONER_VERSION"
}

sidecar_compile() {
  cd "$ROOT/tools/sidecar"
  CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=$SIDECAR_VERSION" -o "$BIN/" ./cmd/...
}

sidecar_build() { # the registrar and the liveness probe of tools/sidecar, keyed by their sources
  local version
  version="$SIDECAR_VERSION+src.$(cd "$ROOT/tools/sidecar" &&
    find . -type f \( -name '*.go' -o -name 'go.*' \) | LC_ALL=C sort | xargs sha256sum | sha256sum |
    cut -c1-12)"
  fresh sidecar "$version" csi-node-driver-registrar livenessprobe && return
  timed sidecar "$version" sidecar_compile
  stamp sidecar "$version"
}

gcs_emulator_compile() {
  cd "$ROOT/tools/gcsemulator"
  CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=$FAKE_GCS_VERSION" -o "$BIN/gcs-emulator" .
}

gcs_emulator_build() { # fake-gcs-server plus obstore's XML API writes, keyed by its sources
  local version
  version="$FAKE_GCS_VERSION+src.$(cd "$ROOT/tools/gcsemulator" &&
    find . -type f \( -name '*.go' -o -name 'go.*' \) | LC_ALL=C sort | xargs sha256sum | sha256sum |
    cut -c1-12)"
  fresh gcs-emulator "$version" gcs-emulator && return
  timed gcs-emulator "$version" gcs_emulator_compile
  stamp gcs-emulator "$version"
}

go_tools() {
  command -v go >/dev/null 2>&1 || {
    echo "bootstrap-tests: Go >= 1.24 is required to build the test tools (the machine image ships it)" >&2
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
  provisioner_build
  sidecar_build
  gcs_emulator_build
  nats_server_build
}

nats_server_build() { # static (no cgo): the e2e's NATS image (e2e/images) has no libc
  local version="$NATS_SERVER_VERSION+static"
  fresh nats-server "$version" nats-server && return
  timed nats-server "$version" env CGO_ENABLED=0 GOBIN="$BIN" go install \
    "github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION"
  stamp nats-server "$version"
}

azurite_compile() { # npm ci of tools/azurite/ in the cache; its script linked into $BIN
  local dir="$TOOLS_DIR/azurite"
  rm -rf "$dir"
  mkdir -p "$dir"
  cp "$ROOT/tools/azurite/package.json" "$ROOT/tools/azurite/package-lock.json" "$dir/"
  npm ci --prefix "$dir" --no-audit --no-fund --ignore-scripts
  ln -sfn "$dir/node_modules/.bin/azurite-blob" "$BIN/azurite-blob"
}

azurite_install() { # keyed by the lock file, so any change of a dependency reinstalls
  local version
  command -v npm >/dev/null 2>&1 || {
    echo "bootstrap-tests: Node.js and npm are required for Azurite (the machine image ships them)" >&2
    exit 1
  }
  version="$AZURITE_VERSION+lock.$(sha256sum "$ROOT/tools/azurite/package-lock.json" | cut -c1-12)"
  fresh azurite "$version" azurite-blob && return
  timed azurite "$version" azurite_compile
  stamp azurite "$version"
}

main() {
  local start
  start=$(date +%s)
  "$ROOT/scripts/bootstrap.sh"
  echo "bootstrap-tests: the test tools (cache $TOOLS_DIR)"
  apt_packages debian-tests "${TEST_PACKAGES[@]}"
  go_tools
  azurite_install
  echo "bootstrap-tests: done in $(($(date +%s) - start))s"
}

main "$@"
