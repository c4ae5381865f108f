# Teardown of the e2e cluster and the check that nothing is left behind.
# Sourced by e2e/cluster.sh. Every step tolerates a half-made or crashed
# cluster, so `up` runs the same code to clean the leftovers of a crash.

mount_points() { # mount_points PREFIX: mount points at or under PREFIX, deepest first
  local prefix=$1 point
  while read -r _ _ _ _ point _; do
    point=$(printf '%b' "${point//\\/\\0}") # mountinfo escapes space, tab, newline as \0NN
    if [[ "$point" == "$prefix" || "$point" == "$prefix"/* ]]; then echo "$point"; fi
  done </proc/self/mountinfo | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-
}

unmount_under() { # unmount_under PREFIX: unmount everything at or under PREFIX
  local point points _
  for _ in 1 2 3 4 5; do
    mapfile -t points < <(mount_points "$1")
    [[ ${#points[@]} -eq 0 ]] && return 0
    for point in "${points[@]}"; do
      umount "$point" 2>/dev/null || umount -l "$point" 2>/dev/null || true
    done
  done
  [[ -z "$(mount_points "$1")" ]] || echo "  still mounted under $1: $(mount_points "$1" | tr '\n' ' ')" >&2
}

remove_containers() { # with containerd still up: kill and delete every container it has
  running containerd || return 0
  local ctr=(ctr -n k8s.io -a "$SOCK" --timeout 10s) id n
  n=$("${ctr[@]}" containers ls -q 2>/dev/null | grep -c . || true)
  [[ "$n" -gt 0 ]] || return 0
  echo "  removing $n container(s) from containerd"
  "${ctr[@]}" containers ls -q >>"$RUN/container-ids" 2>/dev/null
  for id in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
    "${ctr[@]}" tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
  done
  for id in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
    "${ctr[@]}" tasks delete -f "$id" >/dev/null 2>&1 || true
  done
  for id in $("${ctr[@]}" containers ls -q 2>/dev/null); do
    "${ctr[@]}" containers delete "$id" >/dev/null 2>&1 || true
  done
}

shim_ids() { # the container ids in the argv of our containerd's shims (-id ID)
  local p args i
  for p in $(pids_with_arg "$SOCK"); do
    mapfile -d '' -t args 2>/dev/null <"/proc/$p/cmdline" || continue
    for ((i = 0; i + 1 < ${#args[@]}; i++)); do
      [[ "${args[i]}" == -id ]] && echo "${args[i + 1]}"
    done
  done
  return 0
}

shim_sockets() { # the sockets of the shims of the containers ever seen at down
  local id h
  [[ -f "$RUN/container-ids" ]] || return 0
  sort -u "$RUN/container-ids" | while read -r id; do
    # containerd 1.6 names them by a hash of its address, the namespace and the id,
    # under /run/containerd/s whatever its settings
    h=$(printf '%s' "$SOCK/k8s.io/$id" | sha256sum)
    if [[ -e "/run/containerd/s/${h%% *}" ]]; then echo "/run/containerd/s/${h%% *}"; fi
  done
  return 0
}

our_pids() { # the cluster's processes, whatever their records say
  local p exe
  pids_in_cgroups kubepods k8s.io # pods
  pids_in_netns "/run/netns/$NETNS" # daemons, host-network pods, their children
  pids_with_arg "-address $SOCK" # containerd's shims
  pids_with_arg "cluster/connect.sh $NETNS " # forwarders and their connections
  for p in $(pids_with_arg "$STATE"); do # daemons, should the namespace be gone
    exe=$(readlink "/proc/$p/exe" 2>/dev/null) || continue
    case "${exe##*/}" in
      etcd | kube-apiserver | kube-controller-manager | kube-scheduler | kubelet | kube-proxy | containerd | minio)
        echo "$p" ;;
    esac
  done
  return 0
}

sweep_processes() { # KILL whatever the daemons left behind
  local pids
  shim_ids >>"$RUN/container-ids"
  mapfile -t pids < <(our_pids | sort -un)
  kill_pids "left by the cluster" "${pids[@]}"
}

remove_pod_netns() { # the pods' namespaces containerd made (cni-*), not ones that were there before
  local ns
  for ns in /run/netns/cni-*; do
    [[ -e "$ns" ]] || continue
    grep -qxF "${ns##*/}" "$RUN/netns-before" 2>/dev/null && continue
    umount "$ns" 2>/dev/null || umount -l "$ns" 2>/dev/null || true
    rm -f "$ns"
  done
}

remove_netns() {
  remove_pod_netns
  if [[ -e "/run/netns/$NETNS" ]]; then
    ip netns del "$NETNS" 2>/dev/null || { umount -l "/run/netns/$NETNS" 2>/dev/null; rm -f "/run/netns/$NETNS"; }
  fi
  # `ip netns add` made /run/netns a mount point; undo that when it is ours and empty
  if [[ -d /run/netns && -z "$(ls -A /run/netns)" ]]; then
    if [[ -f "$RUN/made-netns-mount" ]]; then unmount_under /run/netns; fi
    if [[ -f "$RUN/made-netns-dir" ]]; then rmdir /run/netns 2>/dev/null || true; fi
  fi
}

remove_cgroups() { # /kubepods and /k8s.io in every hierarchy, deepest first
  local name c
  for name in kubepods k8s.io; do
    for c in /sys/fs/cgroup/*/"$name" /sys/fs/cgroup/"$name"; do
      [[ -d "$c" ]] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null
    done
  done
  return 0
}

save_sysctls() { # once per run: the values the kubelet is known to change
  [[ -f "$RUN/sysctl.saved" ]] && return 0
  local k
  for k in "${SYSCTLS[@]}"; do echo "$k $(sysctl -n "$k")"; done >"$RUN/sysctl.saved"
}

restore_sysctls() {
  [[ -f "$RUN/sysctl.saved" ]] || return 0
  local k v
  while read -r k v; do
    [[ "$(sysctl -n "$k")" == "$v" ]] || sysctl -q -w "$k=$v"
  done <"$RUN/sysctl.saved"
}

made() { grep -qxF "$1" "$RUN/made-dirs" 2>/dev/null; } # made DIR: the cluster created DIR

remove_machine_dirs() { # what the daemons left outside the state dir
  local link
  unmount_under "$KUBELET_DIR"
  # up made it, so what is in it, under the bind mount, is what a kubelet wrote
  # there while the mount was gone (a crashed teardown)
  if made "$KUBELET_DIR" && [[ -d "$KUBELET_DIR" && -z "$(mount_points "$KUBELET_DIR")" ]]; then
    rm -rf --one-file-system "$KUBELET_DIR"
  fi
  for link in /var/log/containers/*.log; do
    [[ -L "$link" && "$(readlink "$link")" == "$STATE"/* ]] && rm -f "$link"
  done
  made /var/log/containers && rmdir /var/log/containers 2>/dev/null
  # a shim killed rather than stopped leaves its socket
  shim_sockets | xargs -r rm -f
  rm -f /var/lib/cni/results/"$CNI_NETWORK"-*
  # containerd 1.6 puts its shims' sockets there whatever its settings; they
  # go with the shims, and what is left is empty directories, unless another
  # containerd uses them meanwhile
  made /run/containerd && find /run/containerd -depth -type d -empty -delete 2>/dev/null
  made /var/lib/cni && rm -rf --one-file-system /var/lib/cni
  return 0
}

leftovers() { # print one line per thing the cluster left behind; silent when clean
  local p
  for p in $(our_pids | sort -un); do
    alive "$p" && echo "process $p: $(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline")"
  done
  [[ -e "/run/netns/$NETNS" ]] && echo "network namespace $NETNS"
  for p in /run/netns/cni-*; do
    [[ -e "$p" ]] && ! grep -qxF "${p##*/}" "$RUN/netns-before" 2>/dev/null && echo "network namespace ${p##*/}"
  done
  mount_points "$KUBELET_DIR" | sed 's/^/mount /'
  mount_points "$STATE" | sed 's/^/mount /'
  [[ -f "$RUN/made-netns-mount" ]] && mount_points /run/netns | sed 's/^/mount /'
  ip -4 -o addr show | awk '$4 ~ /^10\./ {print "address " $4 " on " $2 " in the machine'"'"'s namespace"}'
  ip -4 route show | awk '$1 ~ /^10\./ {print "route " $0 " in the machine'"'"'s namespace"}'
  iptables-save 2>/dev/null | grep -E '^:(KUBE|CNI)-' | sed 's/^/iptables chain /'
  for p in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/k8s.io /sys/fs/cgroup/kubepods; do
    [[ -d "$p" ]] && echo "cgroup $p"
  done
  if [[ -f "$RUN/sysctl.saved" ]]; then
    local k v
    while read -r k v; do
      [[ "$(sysctl -n "$k")" == "$v" ]] || echo "sysctl $k is $(sysctl -n "$k"), was $v"
    done <"$RUN/sysctl.saved"
  fi
  for p in "${MACHINE_DIRS[@]}"; do
    made "$p" && [[ -e "$p" ]] && echo "directory $p: $(find "$p" | head -3 | tr '\n' ' ')"
  done
  for p in /var/lib/cni/results/"$CNI_NETWORK"-*; do
    [[ -e "$p" ]] && echo "file $p"
  done
  shim_sockets | sed 's/^/socket /'
  return 0
}

teardown() { # stop everything, undo every change to the machine, then check
  echo "down: stopping the daemons"
  local d
  for d in azurite-forward azurite minio-forward minio api-forward kube-proxy kube-scheduler kube-controller-manager; do
    stop_daemon "$d" 10
  done
  stop_daemon kubelet 10
  remove_containers
  stop_daemon containerd 10
  stop_daemon kube-apiserver 15
  stop_daemon etcd 10
  sweep_processes
  echo "down: unmounting and removing namespaces, cgroups, links"
  unmount_under "$STATE"
  remove_machine_dirs
  remove_netns
  remove_cgroups
  restore_sysctls
  local left
  left=$(leftovers)
  if [[ -n "$left" ]]; then
    echo "down: NOT clean, left behind:" >&2
    echo "  ${left//$'\n'/$'\n'  }" >&2
    return 1
  fi
  rm -rf "$RUN"
}
