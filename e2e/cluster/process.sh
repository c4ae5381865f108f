# Processes of the e2e cluster: started detached inside the network namespace,
# recorded by PID and start time, stopped by that record only.
# Sourced by e2e/cluster.sh; uses $RUN, $LOGS and $NETNS.
#
# Functions that list things return 0 whatever they find: they run in pipes
# and process substitutions, where `set -e` and pipefail still apply.

# The daemons' parent is PID 1, which reaps slowly: a zombie has stopped even
# though `kill -0` still succeeds on it.
proc_state() { # proc_state PID: the one-letter state, empty when gone
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  printf '%s' "${stat%% *}"
}

alive() { # alive PID: some thread of it has not ended
  # Not the first thread's state alone: it shows Z as soon as that thread ends,
  # while the others may still run, or be exiting, and hold the process's files.
  # A kubelet stopped that way still held its ports, and the one started after
  # it could not listen (test_06_upgrade's restart-kubelet, session 14).
  local t s
  for t in "/proc/$1/task/"[0-9]*; do
    [[ -e "$t" ]] || continue # no match: the pattern itself
    s=$(proc_state "$1/task/${t##*/}")
    [[ -n "$s" && "$s" != Z && "$s" != X ]] && return 0
  done
  return 1
}

start_time() { # start_time PID: field 22 of /proc/PID/stat (clock ticks since boot)
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  # after the comm, field 3 (state) is word 1, so field 22 is word 20
  awk '{print $20}' <<<"$stat"
}

DAEMON_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

start_daemon() { # start_daemon NAME [VAR=VALUE...] CMD...: run CMD in the netns, detached
  local name=$1
  shift
  local envs=()
  while [[ $# -gt 0 && "$1" == *=* && "$1" != /* ]]; do envs+=("$1"); shift; done
  (
    # a clean environment; the values go through it, never through an argv
    for v in $(compgen -e); do unset "$v" 2>/dev/null || true; done
    export PATH=$DAEMON_PATH HOME="$STATE"
    for v in "${envs[@]}"; do export "${v?}"; done
    # setsid: its own session, out of reach of terminal and job-control
    # signals; setsid and nsenter exec, so the recorded PID is the daemon's.
    exec setsid nsenter --net="/run/netns/$NETNS" -- "$@"
  ) >>"$LOGS/$name.log" 2>&1 </dev/null &
  record "$name" $!
}

start_host() { # start_host NAME CMD...: run CMD in the machine's own namespace, detached
  local name=$1
  shift
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  record "$name" $!
}

record() { # record NAME PID: remember PID and its start time in $RUN/NAME.pid
  local t="" _
  for _ in 1 2 3 4 5; do
    t=$(start_time "$2")
    [[ -n "$t" ]] && break
    sleep 0.05
  done
  echo "$2 $t" >"$RUN/$1.pid"
}

recorded_pid() { # recorded_pid NAME: the PID, if that very process still exists
  local file="$RUN/$1.pid" pid t
  [[ -f "$file" ]] || return 1
  read -r pid t <"$file" || return 1
  [[ -n "$pid" && "$(start_time "$pid")" == "$t" ]] || return 1
  echo "$pid"
}

running() { # running NAME: the recorded process is alive
  local pid
  pid=$(recorded_pid "$1") || return 1
  alive "$pid"
}

wait_gone() { # wait_gone SECONDS PID...: true once every PID is gone or a zombie
  local deadline=$((SECONDS + $1)) p left
  shift
  while :; do
    left=0
    for p in "$@"; do alive "$p" && left=1; done
    [[ $left == 0 ]] && return 0
    [[ $SECONDS -ge $deadline ]] && return 1
    sleep 0.1
  done
}

stop_daemon() { # stop_daemon NAME [GRACE]: TERM, then KILL after GRACE seconds
  local name=$1 grace=${2:-10} pid
  if pid=$(recorded_pid "$name") && alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$grace" "$pid"; then
      echo "  $name (pid $pid) ignored TERM for ${grace}s: KILL"
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone 5 "$pid" || echo "  $name (pid $pid) still alive after KILL" >&2
    fi
  fi
  rm -f "$RUN/$name.pid"
}

kill_pids() { # kill_pids WHAT PID...: KILL each PID that is alive, and wait
  local what=$1 p killed=()
  shift
  for p in "$@"; do
    [[ "$p" == "$$" || "$p" == "$BASHPID" ]] && continue
    if alive "$p"; then kill -KILL "$p" 2>/dev/null && killed+=("$p"); fi
  done
  if [[ ${#killed[@]} -gt 0 ]]; then
    echo "  killed ${#killed[@]} leftover process(es) ($what): ${killed[*]}"
    wait_gone 10 "${killed[@]}" || echo "  some of ${killed[*]} survived KILL" >&2
  fi
}

pids_in_netns() { # pids_in_netns FILE: processes whose network namespace is FILE's
  local p
  [[ -e "$1" ]] || return 0
  for p in /proc/[0-9]*; do
    # -ef compares device and inode: the same namespace
    [[ "$p/ns/net" -ef "$1" ]] && echo "${p#/proc/}"
  done
  return 0
}

pids_in_cgroups() { # pids_in_cgroups NAME...: processes in /NAME (any v1 controller, any depth)
  local name c
  for name in "$@"; do
    for c in /sys/fs/cgroup/*/"$name" /sys/fs/cgroup/"$name"; do
      if [[ -d "$c" ]]; then find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null || true; fi
    done
  done | sort -un
}

pids_with_arg() { # pids_with_arg TEXT: processes whose command line contains TEXT
  local p args
  for p in /proc/[0-9]*; do
    mapfile -d '' -t args 2>/dev/null <"$p/cmdline" || continue
    [[ "${args[*]}" == *"$1"* ]] && echo "${p#/proc/}"
  done
  return 0
}
