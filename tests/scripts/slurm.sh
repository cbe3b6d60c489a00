#!/usr/bin/env bash
# A private one-node Slurm cluster (munged + slurmctld + slurmd) on this
# machine, for the tests of the Slurm backend and for CI. Works as root
# without systemd: the daemons are started by hand and everything they write
# (config, munge key and socket, state, spool, logs, pid files) lives under
# STATE_DIR, so nothing under /etc, /var or /run is used.
#   tests/scripts/slurm.sh install                     # apt-get slurm-wlm + munge
#   tests/scripts/slurm.sh start STATE_DIR [OWNER_PID] # idempotent; prints the env
#                                                      # to eval; stops it all when
#                                                      # OWNER_PID exits
#   tests/scripts/slurm.sh stop STATE_DIR              # exit 0 if already stopped
# Clients (sbatch, squeue, scontrol, ...) need only SLURM_CONF: the munge
# socket is named in slurm.conf (AuthInfo=socket=...).
#   eval "$(tests/scripts/slurm.sh start /tmp/sparsa-slurm $$)"
# Finished jobs stay visible to `scontrol show job` for MinJobAge (10 min),
# and every finished job (each array task too) is appended, with its JobState
# and ExitCode, to STATE_DIR/jobcomp.txt (JobCompType=jobcomp/filetxt).
# The cluster listens on TCP ports 6817 and 6818 (SLURM_SH_PORT and
# SLURM_SH_PORT+1 if set): one cluster per pair of ports on a machine.
set -euo pipefail

me=$(readlink -f "$0")
port=${SLURM_SH_PORT:-6817}

say() { echo "slurm.sh: $*" >&2; }

# die REASON [LOG...]: a one-line reason (with the last fatal error of the
# logs, if any) plus the tails of the logs, without the errors every start
# logs (no PMIx library, no state files of an earlier run).
die() {
  local reason=$1 f fatal
  shift
  # </dev/null: with no log given, cat must not read the caller's stdin.
  fatal=$(cat -- "$@" </dev/null 2>/dev/null | grep -E 'fatal:|Error:|error:' | grep -vE "$benign" | tail -n 1 || true)
  say "$reason${fatal:+: ${fatal#*] }}"
  for f in "$@"; do
    [ -s "$f" ] || continue
    echo "--- tail of $f:" >&2
    grep -vE "$benign" "$f" | tail -n 15 >&2 || true
  done
  exit 1
}
benign='pmix|PMIx|MPI: Cannot create|state file|Trying backup state|Configured MailProg'


# running PID: whether the process exists and is not a zombie (an exited
# daemon stays a zombie until PID 1 reaps it).
running() {
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [ "${st%% *}" != Z ]
}

# alive NAME PIDFILE: whether the pid in PIDFILE is running and is NAME (not
# a recycled pid of something else).
alive() {
  local pid
  pid=$(cat "$2" 2>/dev/null) || return 1
  [ -n "$pid" ] && running "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]
}

# descendants PID...: those pids and all their descendants.
descendants() {
  local all=" $* " added=1 pid ppid
  while ((added)); do
    added=0
    while read -r pid ppid; do
      if [[ "$all" == *" $ppid "* && "$all" != *" $pid "* ]]; then
        all+="$pid "
        added=1
      fi
    done < <(ps -e -o pid=,ppid=)
  done
  echo "$all"
}

# wait_gone SECONDS PID...: wait until none of the pids exists; 1 on timeout.
wait_gone() {
  local deadline=$((SECONDS + $1)) pid left
  shift
  while :; do
    left=0
    for pid in "$@"; do running "$pid" && left=1; done
    ((left)) || return 0
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# terminate PID...: SIGTERM, then SIGKILL whatever is left after 10 s.
terminate() {
  (($#)) || return 0
  kill "$@" 2>/dev/null || true
  wait_gone 10 "$@" || { kill -9 "$@" 2>/dev/null || true; wait_gone 5 "$@" || true; }
}

# The slurmstepd processes (one per running job step) of this cluster: they
# outlive slurmd, and are recognised by the SLURM_CONF they inherited from it.
stepds() {
  local pid
  for pid in $(pgrep -x slurmstepd || true); do
    tr '\0' '\n' 2>/dev/null < "/proc/$pid/environ" | grep -qxF "SLURM_CONF=$conf" && echo "$pid"
  done
  return 0
}

# watcher: prints the pid of the owner watcher of this STATE_DIR if it runs.
watcher() {
  local pid
  pid=$(cat "$state/watch.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && running "$pid" &&
    tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -qF " $state " && echo "$pid"
}

# detach LOG CMD...: execs CMD with stdin from /dev/null, stdout and stderr
# appended to LOG and none of our other file descriptors: a daemon or the
# watcher holding the caller's pipe open would make the caller wait forever.
# It replaces the shell, so call it in a subshell: (detach ...) or detach ... &
detach() {
  local log=$1 fd
  shift
  for fd in /proc/"$BASHPID"/fd/*; do
    fd=${fd##*/}
    if ((fd > 2)); then exec {fd}>&-; fi
  done
  exec "$@" </dev/null >>"$log" 2>&1
}

# Absolute paths of everything under STATE_DIR.
setup_paths() {
  [ -n "${1:-}" ] || { say "usage: $0 start|stop STATE_DIR [OWNER_PID]"; exit 2; }
  mkdir -p "$1"
  state=$(cd "$1" && pwd -P)
  conf=$state/slurm.conf
  sock=$state/munge/munge.socket
  node=$(hostname -s)
}

do_install() {
  local missing=0 c
  for c in slurmctld slurmd munged sbatch; do command -v "$c" >/dev/null || missing=1; done
  ((missing)) || return 0
  local sudo="" policy=/usr/sbin/policy-rc.d
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  # Keep the packages' postinst from starting munge/slurm as system services
  # (there may be no init system; and we start our own copies anyway).
  if [ ! -e "$policy" ]; then
    # shellcheck disable=SC2064 # expand now
    trap "$sudo rm -f $policy" EXIT
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
  fi
  say "installing slurm-wlm munge"
  $sudo apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    slurm-wlm munge >/dev/null || die "apt-get install slurm-wlm munge failed"
  for c in slurmctld slurmd munged sbatch; do
    command -v "$c" >/dev/null || die "$c is still missing after apt-get install"
  done
}

write_config() {
  local cpus mem_mb
  cpus=$(nproc)
  # A bit under the machine's memory: slurmd drains a node that claims more
  # than it has.
  mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
  cat > "$conf" <<EOF
# Generated by tests/scripts/slurm.sh: a private one-node test cluster.
ClusterName=sparsa-test
# 127.0.0.1 rather than the host name, which may not resolve on a CI machine.
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# Our own munged; clients read the socket from here too.
AuthInfo=socket=$sock
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/slurmd
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No /etc/slurm/plugstack.conf (SPANK plugins of the host).
PlugStackConfig=$state/plugstack.conf
# No cgroups: plain /proc process tracking, and CPU binding by sched_setaffinity.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
MailProg=/bin/true
# Cores are the consumable: two 1-CPU jobs run at once on two cores.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# No slurmdbd; but a text record of every finished job (state, exit code).
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$state/jobcomp.txt
# Fast turnaround. A job that cannot start at once on submission (e.g. the
# node still cleans up the previous one) or whose dependency was just
# satisfied waits for the next periodic pass of the main or the backfill
# scheduler: 1 s (the minimum) rather than the default 60 s and 30 s; and
# batch jobs are scheduled at once on events (batch_sched_delay=0,
# sched_min_interval=0): 4 serial 3 s jobs + a dependent one took 14.3 s
# instead of 17.0 s.
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1,batch_sched_delay=0,sched_min_interval=0
# A job whose dependency failed (afterok on a failed job) is cancelled rather
# than left pending forever: waiting for an empty queue always ends. (22.05
# ignores kill_invalid_depend in SchedulerParameters.)
DependencyParameters=kill_invalid_depend
# Finished jobs stay in scontrol's view (with JobState and ExitCode) for 10 min.
MinJobAge=600
# Quick kill of cancelled jobs; a node that was down comes back by itself.
KillWait=2
ReturnToService=2
InactiveLimit=0
SlurmdTimeout=60
MessageTimeout=10
# The node is whatever 'nproc' says, whatever slurmd thinks the topology is.
SlurmdParameters=config_overrides
NodeName=$node NodeAddr=127.0.0.1 NodeHostname=$node CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  : > "$state/plugstack.conf"
}

start_munged() {
  mkdir -p "$state/munge"
  # munged refuses a key, socket, log or seed whose directory, or any
  # ancestor, is writable by group/others without the sticky bit; --force
  # makes that a warning (a CI checkout may be group-writable), as long as
  # our own directories are private.
  chmod 755 "$state/munge"
  [ -s "$state/munge/munge.key" ] || mungekey --create --keyfile="$state/munge/munge.key" 2>/dev/null ||
    dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 status=none
  chmod 600 "$state/munge/munge.key"
  rm -f "$sock" "$sock.lock"
  # It forks itself and reports start-up failures in its exit status.
  (detach "$state/munged.out" munged --force --socket="$sock" --key-file="$state/munge/munge.key" \
    --pid-file="$state/munged.pid" --log-file="$state/munged.log" \
    --seed-file="$state/munge/munged.seed") ||
    die "munged failed to start" "$state/munged.out" "$state/munged.log"
  for _ in $(seq 100); do
    munge -n -S "$sock" 2>/dev/null | unmunge -S "$sock" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "munged does not answer on $sock" "$state/munged.out" "$state/munged.log"
}

start_slurmctld() {
  # A fresh controller: no jobs or node states of an earlier run.
  rm -rf "$state/ctld"
  mkdir -p "$state/ctld"
  (detach "$state/slurmctld.out" slurmctld -f "$conf") ||
    die "slurmctld failed to start" "$state/slurmctld.out" "$state/slurmctld.log"
  local deadline=$((SECONDS + 30))
  while :; do
    [ -s "$state/slurmctld.pid" ] && ! alive slurmctld "$state/slurmctld.pid" &&
      die "slurmctld exited during start-up" "$state/slurmctld.out" "$state/slurmctld.log"
    timeout 2 scontrol ping 2>/dev/null | grep -q UP && return 0
    ((SECONDS < deadline)) || die "slurmctld does not answer within 30 s" "$state/slurmctld.log"
    sleep 0.1
  done
}

start_slurmd() {
  rm -rf "$state/slurmd"
  mkdir -p "$state/slurmd"
  (detach "$state/slurmd.out" slurmd -f "$conf" -N "$node") ||
    die "slurmd failed to start" "$state/slurmd.out" "$state/slurmd.log"
  local deadline=$((SECONDS + 60)) st=""
  while :; do
    [ -s "$state/slurmd.pid" ] && ! alive slurmd "$state/slurmd.pid" &&
      die "slurmd exited during start-up" "$state/slurmd.out" "$state/slurmd.log"
    # It keeps running when it cannot listen, the node never comes up.
    grep -q 'Unable to bind listen port' "$state/slurmd.log" 2>/dev/null &&
      die "slurmd cannot listen on port $((port + 1))" "$state/slurmd.log"
    st=$(timeout 5 sinfo -h -n "$node" -o %T 2>/dev/null || true)
    [ "$st" = idle ] && return 0
    ((SECONDS < deadline)) ||
      die "node $node is '${st:-unknown}', not idle, after 60 s (reason: $(timeout 5 sinfo -h -n "$node" -o %E 2>/dev/null))" \
        "$state/slurmd.log" "$state/slurmctld.log"
    sleep 0.1
  done
}

do_start() {
  setup_paths "${1:-}"
  local owner=${2:-}
  export SLURM_CONF=$conf
  # Unix socket paths have at most 107 bytes; the longest are slurmd's step
  # sockets, SlurmdSpoolDir/NODE_JOBID.STEPID.
  ((${#state} + ${#node} + 30 <= 107)) || die "STATE_DIR is too long a path for Unix sockets: $state"
  command -v slurmctld >/dev/null || die "slurm is not installed: run $0 install"
  local st
  st=$(alive slurmctld "$state/slurmctld.pid" && timeout 5 sinfo -h -n "$node" -o %T 2>/dev/null) || true
  if ! { alive munged "$state/munged.pid" && alive slurmd "$state/slurmd.pid" &&
    [[ "$st" =~ ^(idle|mixed|allocated|completing)$ ]]; }; then
    # Partly up or stale files of a killed run: start from scratch.
    do_stop "$state" >/dev/null 2>&1 || true
    # If start-up fails, stop what did start.
    trap 'do_stop "$state" >/dev/null 2>&1 || true' EXIT
    mkdir -p "$state"
    chmod 755 "$state"
    rm -f "$state"/{munged,slurmctld,slurmd}.{out,log} "$state/jobcomp.txt"
    # Ports taken (most likely by another cluster of this script): say so
    # rather than time out.
    local p
    for p in "$port" $((port + 1)); do
      ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null ||
        die "TCP port $p is in use (another Slurm cluster? SLURM_SH_PORT picks other ports)"
    done
    write_config
    start_munged
    start_slurmctld
    start_slurmd
    trap - EXIT
  fi
  # With an owner pid (the tests pass theirs), the cluster is stopped once
  # that process is gone. The latest owner wins, so the watcher of an earlier
  # test binary still winding down never stops a cluster a later one uses.
  if [ -n "$owner" ]; then
    echo "$owner" > "$state/owner"
    if ! watcher >/dev/null; then
      # In its own session: a Ctrl-C meant for the tests must not kill it.
      # shellcheck disable=SC2016 # expanded by the inner shell
      detach "$state/watch.log" setsid bash -c 'while :; do
          o=$(cat "$1/owner" 2>/dev/null) || exit 0
          st=$(cat "/proc/$o/stat" 2>/dev/null) || break
          st=${st##*) }
          [ "${st%% *}" != Z ] || break
          sleep 1
        done
        exec bash "$2" stop "$1"' watcher "$state" "$me" &
      echo $! > "$state/watch.pid"
    fi
  fi
  echo "export SLURM_CONF=$conf"
}

do_stop() {
  [ -n "${1:-}" ] && [ ! -d "$1" ] && return 0 # nothing was ever started there
  setup_paths "${1:-}"
  local pids=() pid d
  # Cancel the jobs so slurmd takes their processes down with their steps.
  if alive slurmctld "$state/slurmctld.pid" && alive slurmd "$state/slurmd.pid"; then
    SLURM_CONF=$conf timeout 5 scancel --quiet --partition=debug >/dev/null 2>&1 || true
    for _ in $(seq 50); do
      [ -z "$(stepds)" ] && break
      sleep 0.1
    done
  fi
  # Whatever job steps are left, with their processes.
  mapfile -t pids < <(stepds)
  if ((${#pids[@]})); then
    # shellcheck disable=SC2046 # a list of pids
    terminate $(descendants "${pids[@]}")
  fi
  for d in slurmd slurmctld munged; do
    alive "$d" "$state/$d.pid" && terminate "$(cat "$state/$d.pid")"
  done
  # The watcher, unless it is the one calling us.
  if pid=$(watcher) && [ "$pid" != "$$" ]; then
    kill "$pid" 2>/dev/null || true
  fi
  rm -f "$state"/{slurmd,slurmctld,munged,watch}.pid "$state/owner" "$sock" "$sock.lock"
  return 0
}

case "${1:-}" in
install) do_install ;;
start) do_start "${2:-}" "${3:-}" ;;
stop) do_stop "${2:-}" ;;
*)
  say "usage: $0 install | start STATE_DIR [OWNER_PID] | stop STATE_DIR"
  exit 2
  ;;
esac
