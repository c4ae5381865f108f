#!/usr/bin/env bash
# A real single-node Kubernetes for the end-to-end suites: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy
# and Debian's containerd with CNI, all inside a network namespace this script
# makes, so that no cluster address (node, pods, Services, MinIO) ever exists
# in the machine's own namespace.
#
#   e2e/cluster.sh up          start it (a no-op when it is already up; cleans a
#                              crashed run first); imports every image archive
#   e2e/cluster.sh down        stop it and undo every change to the machine, then
#                              check that nothing is left (exit 1 if something is)
#   e2e/cluster.sh status      one line per daemon, the API and the node
#   e2e/cluster.sh env         shell lines to eval: KUBECONFIG and the addresses
#   e2e/cluster.sh minio-up    a MinIO for the pods (see e2e/cluster/minio.sh)
#   e2e/cluster.sh minio-down
#   e2e/cluster.sh azurite-up  an Azurite for the az:// scenario (see e2e/cluster/azurite.sh)
#   e2e/cluster.sh azurite-down
#   e2e/cluster.sh restart-kubelet   stop the kubelet and start it again (pods keep running)
#   e2e/cluster.sh purge       down, then delete the state dir (certs, images)
#
# Layout: the node IP 10.200.0.1 sits on a port-less bridge in the namespace,
# pods get 10.88.0.0/16 from a CNI bridge there, the Service range
# 10.96.0.0/16 is routed into the node bridge. kubectl and helm on the machine
# reach the API server through a forwarder on 127.0.0.1:$OPENFILES_E2E_API_PORT;
# `env` prints the KUBECONFIG that uses it.
#
# Environment:
#   OPENFILES_E2E_STATE       state dir (default /var/lib/openfiles-e2e): certs,
#                             configs, etcd, containerd, logs/<component>.log
#   OPENFILES_E2E_IMAGES      image archive cache of e2e/images/build.py (default
#                             $OPENFILES_TOOLS_DIR/images); each must name its image
#   OPENFILES_E2E_NETNS       network namespace (default openfiles-e2e)
#   OPENFILES_E2E_API_PORT    forwarder to the API server (default 16443)
#   OPENFILES_E2E_MINIO_PORT  forwarder to MinIO (default 19000)
#   OPENFILES_E2E_AZURITE_PORT  forwarder to Azurite (default 19100)
#   OPENFILES_E2E_KEEP_ON_FAIL=1  leave a failed `up` running for inspection
#   OPENFILES_TOOLS_DIR       where scripts/bootstrap.sh put the binaries
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOLS_DIR="${OPENFILES_TOOLS_DIR:-$HOME/.cache/openfiles-tools}"
BIN="$TOOLS_DIR/bin"
STATE="${OPENFILES_E2E_STATE:-/var/lib/openfiles-e2e}"
IMAGES="${OPENFILES_E2E_IMAGES:-$TOOLS_DIR/images}"
NETNS="${OPENFILES_E2E_NETNS:-openfiles-e2e}"
HOST_API_PORT="${OPENFILES_E2E_API_PORT:-16443}"
HOST_MINIO_PORT="${OPENFILES_E2E_MINIO_PORT:-19000}"
HOST_AZURITE_PORT="${OPENFILES_E2E_AZURITE_PORT:-19100}"

NODE_NAME=openfiles-e2e
NODE_IP=10.200.0.1
NODE_BRIDGE=ofe2e-node
POD_BRIDGE=ofe2e-pods
CNI_NETWORK=openfiles-e2e
POD_CIDR=10.88.0.0/16
SERVICE_CIDR=10.96.0.0/16
KUBE_SERVICE_IP=10.96.0.1
MINIO_PORT=9000
PAUSE_IMAGE=registry.k8s.io/pause:3.10
# the chart's kubeletDir defaults to it, so the kubelet's root cannot move
KUBELET_DIR=/var/lib/kubelet
# directories outside the state dir that the daemons use whatever their
# settings (containerd 1.6 puts shim sockets in /run/containerd and the CNI
# results in /var/lib/cni; the kubelet links logs into /var/log/containers);
# the ones the cluster creates are removed at down
MACHINE_DIRS=("$KUBELET_DIR" /var/log/containers /run/containerd /var/lib/cni)
# the host settings the kubelet changes; saved at up, restored at down
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.netfilter.nf_conntrack_max)

PKI="$STATE/pki"
CONF="$STATE/config"
LOGS="$STATE/logs"
RUN="$STATE/run"
SOCK="$STATE/containerd/containerd.sock"
DAEMONS=(etcd kube-apiserver containerd kube-controller-manager kube-scheduler kubelet kube-proxy api-forward)

# shellcheck source=e2e/cluster/process.sh
source "$HERE/cluster/process.sh"
# shellcheck source=e2e/cluster/pki.sh
source "$HERE/cluster/pki.sh"
# shellcheck source=e2e/cluster/config.sh
source "$HERE/cluster/config.sh"
# shellcheck source=e2e/cluster/teardown.sh
source "$HERE/cluster/teardown.sh"
# shellcheck source=e2e/cluster/minio.sh
source "$HERE/cluster/minio.sh"
# shellcheck source=e2e/cluster/azurite.sh
source "$HERE/cluster/azurite.sh"

die() { echo "$*" >&2; exit 1; }

in_netns() { nsenter --net="/run/netns/$NETNS" -- "$@"; }

kubectl_in() { in_netns "$BIN/kubectl" --kubeconfig "$STATE/kubeconfigs/admin" "$@"; }

# No `cmd | grep -q` here: under pipefail, grep's early exit can kill cmd with
# SIGPIPE and fail the whole pipeline (a race: it made CI's `up` fail once).
port_free() { local out; out=$(ss -Htln "sport = :$1"); [[ -z "$out" ]]; }
# the kubelet's healthz and server ports, in the namespace
kubelet_ports_free() {
  local out
  out=$(in_netns ss -Htln "( sport = :10248 or sport = :10250 )")
  [[ -z "$out" ]]
}

wait_for() { # wait_for SECONDS WHAT LOG CMD...: retry CMD until it succeeds; fail with LOG's tail
  local limit=$1 what=$2 log=$3 deadline=$((SECONDS + $1))
  shift 3
  until "$@" >/dev/null 2>&1; do
    if [[ $SECONDS -ge $deadline ]] || { [[ -f "$RUN/$log.pid" ]] && ! running "$log"; }; then
      echo "up: $what: not within ${limit}s (or $log died); last lines of $LOGS/$log.log:" >&2
      tail -n 25 "$LOGS/$log.log" >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

# shellcheck disable=SC2317  # called by minio_up and azurite_up, in the sourced files
server_preflight() { # server_preflight NAME BINARY HOST_PORT SETTING: false when NAME runs already; dies when it cannot start
  local name=$1 binary=$2 port=$3 setting=$4
  [[ -e "/run/netns/$NETNS" ]] || die "$name-up: the cluster is not up (run: $0 up)"
  if running "$name" && running "$name-forward"; then
    echo "$name-up: already running (pid $(recorded_pid "$name"))"
    return 1
  fi
  "${name}_down" quiet
  [[ -x "$BIN/$binary" ]] || die "$name-up: $BIN/$binary missing: run scripts/bootstrap-tests.sh"
  port_free "$port" || die "$name-up: 127.0.0.1:$port is taken (set $setting)"
}

start_forwarder() { # start_forwarder NAME HOST_PORT NODE_PORT: 127.0.0.1:HOST_PORT -> NODE_IP:NODE_PORT
  start_host "$1" socat "TCP-LISTEN:$2,bind=127.0.0.1,reuseaddr,fork" \
    "EXEC:$HERE/cluster/connect.sh $NETNS $NODE_IP $3"
}

preflight() {
  [[ $EUID -eq 0 ]] || die "$0: must run as root (network namespace, mounts, cgroups)"
  local missing=() b
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
    [[ -x "$BIN/$b" ]] || missing+=("$BIN/$b")
  done
  for b in containerd ctr runc socat nsenter iptables conntrack ip openssl curl; do
    command -v "$b" >/dev/null || missing+=("$b (Debian package)")
  done
  [[ -x /usr/lib/cni/bridge ]] || missing+=("/usr/lib/cni/bridge (containernetworking-plugins)")
  [[ ${#missing[@]} -eq 0 ]] || die "up: missing: ${missing[*]}; run scripts/bootstrap.sh"
  [[ -d /sys/fs/cgroup/memory && -d /sys/fs/cgroup/pids ]] \
    || die "up: expects cgroup v1 hierarchies under /sys/fs/cgroup (cgroupfs driver)"
  if [[ -d "$KUBELET_DIR" ]] && ! mountpoint -q "$KUBELET_DIR" \
    && [[ -n "$(ls -A "$KUBELET_DIR")" ]]; then
    die "up: $KUBELET_DIR exists and is not empty: another kubelet's? refusing to cover it"
  fi
  port_free "$HOST_API_PORT" || die "up: 127.0.0.1:$HOST_API_PORT is taken (set OPENFILES_E2E_API_PORT)"
}

foreign() { # why the cluster pieces on the machine may not be this state dir's; silent if ours
  local mounted_from
  if mountpoint -q "$KUBELET_DIR" 2>/dev/null; then
    mounted_from=$(findmnt -n -o SOURCE "$KUBELET_DIR" || true)
    if ! grep -qF "[$STATE/kubelet]" <<<"$mounted_from"; then
      echo "$KUBELET_DIR is mounted from ${mounted_from%%$'\n'*}, not $STATE/kubelet"
    fi
  fi
  if [[ -e "/run/netns/$NETNS" && ! -d "$RUN" ]]; then
    echo "network namespace $NETNS exists, but $STATE has no record of making it"
  fi
}

refuse_foreign() { # refuse_foreign VERB: stop before touching another cluster
  local why
  why=$(foreign)
  [[ -z "$why" ]] || die "$1: another cluster seems to be up (${why//$'\n'/; }); take it down with its own" \
    "OPENFILES_E2E_STATE, or set OPENFILES_E2E_NETNS to use another namespace"
}

healthy() { # every daemon alive and the API answering through the forwarder
  local d
  for d in "${DAEMONS[@]}"; do running "$d" || return 1; done
  "$BIN/kubectl" --kubeconfig "$STATE/kubeconfig" get --raw /readyz >/dev/null 2>&1
}

make_netns() {
  mkdir -p "$RUN"
  [[ -d /run/netns ]] || { mkdir -p /run/netns; touch "$RUN/made-netns-dir"; }
  mountpoint -q /run/netns || touch "$RUN/made-netns-mount"
  find /run/netns -maxdepth 1 -mindepth 1 -printf '%f\n' >"$RUN/netns-before"
  ip netns add "$NETNS"
  ip -n "$NETNS" link set lo up
  # a bridge without ports: the kernel has no dummy driver and cannot load modules
  ip -n "$NETNS" link add "$NODE_BRIDGE" type bridge
  ip -n "$NETNS" addr add "$NODE_IP/32" dev "$NODE_BRIDGE"
  ip -n "$NETNS" link set "$NODE_BRIDGE" up
  # ClusterIP packets get a route, and no way out of the namespace
  ip -n "$NETNS" route add "$SERVICE_CIDR" dev "$NODE_BRIDGE"
  in_netns sysctl -q -w net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
}

share_kubelet_dir() { # the kubelet's root on its own shared mount, so mounts propagate
  local d
  for d in "${MACHINE_DIRS[@]}"; do [[ -e "$d" ]] || echo "$d"; done >"$RUN/made-dirs"
  mkdir -p "$STATE/kubelet" "$KUBELET_DIR"
  mount --bind "$STATE/kubelet" "$KUBELET_DIR"
  mount --make-private "$KUBELET_DIR"
  mount --make-rshared "$KUBELET_DIR"
}

import_images() { # the images e2e/images/images.toml names, built if missing, each imported once
  python3 "$HERE/images/build.py" import --cache "$IMAGES" --address "$SOCK" --namespace k8s.io \
    >>"$LOGS/images.log" 2>&1 || { tail -n 20 "$LOGS/images.log" >&2; die "up: building or importing the images failed (log: $LOGS/images.log)"; }
  local names
  names=$(ctr -n k8s.io -a "$SOCK" images ls -q)
  echo "up: images ready ($(grep -vc '^sha256:' <<<"$names") in containerd)"
  grep -qxF "$PAUSE_IMAGE" <<<"$names" \
    || die "up: $PAUSE_IMAGE is not in containerd: no pod can start without it. Build the image archives (into $IMAGES) first."
}

start_api() { # etcd, then the API server (not waited for)
  start_daemon etcd "$BIN/etcd" --data-dir "$STATE/etcd" --name default \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster default=http://127.0.0.1:2380 --unsafe-no-fsync --log-level warn
  wait_for 30 "etcd healthy" etcd in_netns curl -sf http://127.0.0.1:2379/health
  start_daemon kube-apiserver "$BIN/kube-apiserver" \
    --advertise-address="$NODE_IP" --bind-address="$NODE_IP" --secure-port=6443 \
    --etcd-servers=http://127.0.0.1:2379 --service-cluster-ip-range="$SERVICE_CIDR" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" --kubelet-certificate-authority="$PKI/ca.crt" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" \
    --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --profiling=false --v=1
}

start_controllers() { # once the API server is ready
  local kc="$STATE/kubeconfigs"
  start_daemon kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig="$kc/controller-manager" --authentication-kubeconfig="$kc/controller-manager" \
    --authorization-kubeconfig="$kc/controller-manager" --bind-address=127.0.0.1 \
    --root-ca-file="$PKI/ca.crt" --service-account-private-key-file="$PKI/sa.key" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --use-service-account-credentials=true --service-cluster-ip-range="$SERVICE_CIDR" \
    --cluster-cidr="$POD_CIDR" --allocate-node-cidrs=false \
    --flex-volume-plugin-dir="$STATE/volume-plugins" --leader-elect=false --profiling=false --v=1
  start_daemon kube-scheduler "$BIN/kube-scheduler" \
    --kubeconfig="$kc/scheduler" --authentication-kubeconfig="$kc/scheduler" \
    --authorization-kubeconfig="$kc/scheduler" --bind-address=127.0.0.1 \
    --leader-elect=false --profiling=false --v=1
}

start_kubelet() {
  start_daemon kubelet "$BIN/kubelet" --config="$CONF/kubelet.yaml" \
    --kubeconfig="$STATE/kubeconfigs/kubelet-client" --hostname-override="$NODE_NAME" \
    --node-ip="$NODE_IP" --root-dir="$KUBELET_DIR" --v=1
}

start_runtime() { # containerd with the images, while the API server starts
  start_daemon containerd containerd --config "$CONF/containerd.toml"
  wait_for 30 "containerd answering" containerd ctr -a "$SOCK" version
  # a crashed run can leave containers in containerd's records: a new cluster has none
  remove_containers
  import_images
}

start_node() {
  start_kubelet
  start_daemon kube-proxy "$BIN/kube-proxy" --config="$CONF/kube-proxy.yaml" --v=1
}

fresh_state() { # a new cluster every time; certs, configs and images are kept
  [[ -z "$(mount_points "$STATE")" ]] || die "up: mounts left under $STATE: $(mount_points "$STATE")"
  rm -rf --one-file-system "$STATE/etcd" "$STATE/containerd/state" "$STATE/containerd/runc" "$STATE/kubelet" "$STATE/cni" \
    "$STATE/pod-logs" "$STATE/logs.previous" "$STATE/minio"
  [[ -d "$LOGS" ]] && mv "$LOGS" "$STATE/logs.previous"
  mkdir -p "$LOGS" "$RUN" "$STATE/volume-plugins" "$STATE/pod-logs"
  chmod 700 "$STATE"
}

up_failed() { # EXIT trap of `up`: a failed start is taken down again
  local rc=$?
  trap - EXIT
  [[ $rc -ne 0 ]] || return 0
  echo "up: FAILED${FAILED_AT:+ at $FAILED_AT}; logs in $LOGS" >&2
  if [[ "${OPENFILES_E2E_KEEP_ON_FAIL:-}" == 1 ]]; then
    echo "up: left running for inspection; run: $0 down" >&2
  elif teardown >&2; then
    echo "up: taken down again, nothing left behind" >&2
  fi
  exit "$rc"
}

cmd_up() {
  local start=$SECONDS
  [[ $EUID -eq 0 ]] || die "$0: must run as root (network namespace, mounts, cgroups)"
  refuse_foreign up
  if [[ -d "$RUN" ]] || [[ -e "/run/netns/$NETNS" ]] || mountpoint -q "$KUBELET_DIR" 2>/dev/null; then
    if [[ -d "$RUN" ]] && healthy; then
      echo "up: already running ($0 down to stop it)"
      return 0
    fi
    echo "up: cleaning the leftovers of an earlier run"
    mkdir -p "$RUN"
    teardown || die "up: the leftovers could not all be removed (see above)"
  fi
  preflight
  trap up_failed EXIT
  set -E
  trap 'FAILED_AT="${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND"' ERR
  mkdir -p "$STATE"
  fresh_state
  save_sysctls
  make_pki
  make_kubeconfigs
  write_configs
  make_netns
  share_kubelet_dir
  echo "up: state in $STATE, network namespace $NETNS, node $NODE_IP ($((SECONDS - start))s)"
  start_api
  start_runtime
  wait_for 90 "kube-apiserver ready" kube-apiserver kubectl_in get --raw /readyz
  echo "up: API server ready ($((SECONDS - start))s)"
  start_controllers
  start_node
  start_forwarder api-forward "$HOST_API_PORT" 6443
  wait_for 30 "API server through 127.0.0.1:$HOST_API_PORT" api-forward \
    "$BIN/kubectl" --kubeconfig "$STATE/kubeconfig" get --raw /readyz
  wait_for 120 "node $NODE_NAME Ready" kubelet kubectl_in wait --for=condition=Ready \
    "node/$NODE_NAME" --timeout=5s
  wait_for 60 "ServiceAccount default/default" kube-controller-manager \
    kubectl_in get serviceaccount default --namespace default
  local left
  left=$(ip -4 -o addr show | awk '$4 ~ /^10\./' ; ip -4 route show | awk '$1 ~ /^10\./')
  [[ -z "$left" ]] || die "up: cluster addresses leaked into the machine's namespace: $left"
  trap - EXIT ERR
  echo "up: node $NODE_NAME Ready in $((SECONDS - start))s; export KUBECONFIG=$STATE/kubeconfig"
}

cmd_down() {
  local start=$SECONDS
  [[ $EUID -eq 0 ]] || die "$0: must run as root"
  refuse_foreign down
  mkdir -p "$RUN"
  # best effort: a step that fails does not stop the ones after it
  teardown || exit 1
  echo "down: clean in $((SECONDS - start))s (no process, mount, namespace, address, route," \
    "iptables chain, cgroup or changed sysctl left)"
}

cmd_status() {
  local d pid rc=0
  for d in "${DAEMONS[@]}" minio minio-forward azurite azurite-forward; do
    if pid=$(recorded_pid "$d") && alive "$pid"; then
      printf '%-24s running (pid %s)\n' "$d" "$pid"
    elif [[ -f "$RUN/$d.pid" ]]; then
      printf '%-24s DEAD (log: %s)\n' "$d" "$LOGS/$d.log"; rc=1
    elif [[ "$d" != minio* && "$d" != azurite* ]]; then
      printf '%-24s not running\n' "$d"; rc=1
    fi
  done
  if "$BIN/kubectl" --kubeconfig "$STATE/kubeconfig" get --raw /readyz >/dev/null 2>&1; then
    echo "api                      ready at https://127.0.0.1:$HOST_API_PORT"
    "$BIN/kubectl" --kubeconfig "$STATE/kubeconfig" get nodes --no-headers 2>/dev/null | sed 's/^/node                     /'
  else
    echo "api                      not answering at https://127.0.0.1:$HOST_API_PORT"; rc=1
  fi
  return $rc
}

cmd_env() {
  echo "export KUBECONFIG=$STATE/kubeconfig"
  echo "export OPENFILES_E2E_STATE=$STATE"
  echo "export OPENFILES_E2E_NETNS=$NETNS"
  echo "export OPENFILES_E2E_NODE_IP=$NODE_IP"
  echo "export OPENFILES_E2E_NODE_NAME=$NODE_NAME"
  echo "export OPENFILES_E2E_CONTAINERD=$SOCK"
  echo "export OPENFILES_E2E_LOGS=$LOGS"
  echo "export OPENFILES_E2E_MINIO_ENDPOINT=http://127.0.0.1:$HOST_MINIO_PORT"
  echo "export OPENFILES_E2E_MINIO_POD_ENDPOINT=http://$NODE_IP:$MINIO_PORT"
  echo "export OPENFILES_E2E_MINIO_CREDENTIALS=$STATE/minio/credentials"
  echo "export OPENFILES_E2E_AZURITE_ENDPOINT=http://127.0.0.1:$HOST_AZURITE_PORT/$AZURITE_ACCOUNT"
  echo "export OPENFILES_E2E_AZURITE_POD_ENDPOINT=http://$NODE_IP:$AZURITE_PORT/$AZURITE_ACCOUNT"
  echo "export OPENFILES_E2E_AZURITE_CREDENTIALS=$STATE/azurite/credentials"
}

cmd_restart_kubelet() { # what a node reboot or kubelet upgrade does to running pods
  running kubelet || die "restart-kubelet: the kubelet is not running"
  stop_daemon kubelet 10
  # and its ports closed: the new one dies if it cannot listen on them
  wait_for 30 "the old kubelet's ports closed" kubelet kubelet_ports_free
  start_kubelet
  wait_for 60 "kubelet healthy again" kubelet in_netns curl -sf http://127.0.0.1:10248/healthz
  echo "restart-kubelet: kubelet running again (pid $(recorded_pid kubelet))"
}

cmd_purge() {
  cmd_down
  rm -rf "$STATE"
  echo "purge: removed $STATE"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  minio-up) minio_up ;;
  minio-down) minio_down loud ;;
  azurite-up) azurite_up ;;
  azurite-down) azurite_down loud ;;
  restart-kubelet) cmd_restart_kubelet ;;
  purge) cmd_purge ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
