#!/usr/bin/env bash
# A private Slurm cluster on this one host, for the fleet tests: munged (own socket and key), one slurmctld and
# three slurmd (node1..node3, `slurmd -N nodeK`, a port each), everything under one folder (config, spool, state,
# pid and log files); nothing is written under /etc and no systemd is needed. Debian 12's slurm-wlm (22.05) and
# munge are installed first if missing (as root).
#
#   bash scripts/ci/start-slurm.sh [start]   start what is not running (idempotent); the last line printed is
#                                            `export SLURM_CONF=...` for the clients (srun, sinfo, scontrol)
#   bash scripts/ci/start-slurm.sh stop      stop the daemons, by the pids in their pid files
#   bash scripts/ci/start-slurm.sh status    sinfo, or exit 1 when the controller does not answer
#
# MLDOCTOR_SLURM_DIR (default /tmp/mldoctor-slurm) is the folder; ports 16817 (slurmctld) and 16818-16820 (slurmd)
# on 127.0.0.1 only. Slurm runs $B/prolog before a job's first task on a node: it runs every executable in
# $B/prolog.d/ (empty here; a test puts its prolog there and removes it).
set -euo pipefail

B=${MLDOCTOR_SLURM_DIR:-/tmp/mldoctor-slurm}
NODES=(node1 node2 node3)
CTLD_PORT=16817
FIRST_SLURMD_PORT=16818
export SLURM_CONF=$B/slurm.conf

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

install() {
  if command -v slurmctld >/dev/null && command -v munged >/dev/null; then
    return
  fi
  echo "installing Debian's slurm-wlm and munge" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null 2>&1 || {
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
  }
}

write_config() {
  mkdir -p "$B"/{munge,state,spool,run,log,prolog.d}
  chmod 700 "$B/munge"
  if [ ! -s "$B/munge/munge.key" ]; then
    dd if=/dev/urandom of="$B/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$B/munge/munge.key"
  fi
  cat >"$B/prolog" <<EOF
#!/bin/bash
# Runs every executable in $B/prolog.d/ in name order; the first that fails fails the prolog.
export SLURM_CONF=$B/slurm.conf PATH=\${PATH:-/usr/sbin:/usr/bin:/sbin:/bin}:/usr/sbin:/usr/bin:/sbin:/bin
for script in $B/prolog.d/*; do
  [ -x "\$script" ] || continue
  "\$script" || exit \$?
done
exit 0
EOF
  chmod 755 "$B/prolog"
  local host nodes="" port=$FIRST_SLURMD_PORT
  host=$(hostname -s)
  for node in "${NODES[@]}"; do
    nodes+="NodeName=$node NodeHostname=$host NodeAddr=127.0.0.1 Port=$port CPUs=1 RealMemory=1000 State=UNKNOWN"$'\n'
    port=$((port + 1))
  done
  cat >"$B/slurm.conf.new" <<EOF
ClusterName=mldoctor
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$FIRST_SLURMD_PORT
AuthType=auth/munge
AuthInfo=socket=$B/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$B/state
SlurmdSpoolDir=$B/spool/%n
SlurmctldPidFile=$B/run/slurmctld.pid
SlurmdPidFile=$B/run/slurmd-%n.pid
SlurmctldLogFile=$B/log/slurmctld.log
SlurmdLogFile=$B/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
Prolog=$B/prolog
${nodes}PartitionName=debug Nodes=node[1-${#NODES[@]}] Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$B/slurm.conf.new" "$B/slurm.conf"
}

start() {
  install
  write_config
  if ! alive "$B/munge/munged.pid"; then
    /usr/sbin/munged --force --socket="$B/munge/munge.socket" --key-file="$B/munge/munge.key" \
      --pid-file="$B/munge/munged.pid" --log-file="$B/munge/munged.log" --seed-file="$B/munge/munge.seed"
  fi
  alive "$B/run/slurmctld.pid" || /usr/sbin/slurmctld -f "$SLURM_CONF" -i
  for node in "${NODES[@]}"; do
    alive "$B/run/slurmd-$node.pid" || /usr/sbin/slurmd -f "$SLURM_CONF" -N "$node"
  done
  local _
  for _ in $(seq 1 60); do
    if [ "$(sinfo -h -o '%D %t' 2>/dev/null | awk '$2 ~ /^(idle|mix|alloc|drain|drng)$/ {n += $1} END {print n + 0}')" \
      -ge "${#NODES[@]}" ]; then
      sinfo >&2
      echo "export SLURM_CONF=$SLURM_CONF"
      return 0
    fi
    sleep 0.5
  done
  echo "Slurm did not come up in 30 s; logs in $B/log and $B/munge" >&2
  sinfo >&2 || true
  tail -n 5 "$B"/log/*.log >&2 || true
  return 1
}

stop() {
  local pidfile pid pids=()
  for pidfile in "$B"/run/slurmd-*.pid "$B/run/slurmctld.pid" "$B/munge/munged.pid"; do
    if alive "$pidfile"; then
      pid=$(cat "$pidfile")
      kill "$pid"
      pids+=("$pid")
    fi
  done
  local _ left=()
  for _ in $(seq 1 40); do
    left=()
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left+=("$pid"); done
    [ ${#left[@]} -eq 0 ] && return 0
    sleep 0.25
  done
  kill -9 "${left[@]}" 2>/dev/null || true
}

case ${1:-start} in
  start) start ;;
  stop) stop ;;
  status) sinfo ;;
  *)
    echo "usage: $0 [start|stop|status]" >&2
    exit 2
    ;;
esac
