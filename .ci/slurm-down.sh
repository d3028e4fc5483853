#!/usr/bin/env bash
# Stop the single-node Slurm cluster started by .ci/slurm-up.sh: cancel jobs, then stop slurmd,
# slurmctld and munged by their PID files (never by name), remove the state folder and the
# slurm.conf slurm-up.sh wrote.
set -uo pipefail
DIR=${COME_SLURM_DIR:-/tmp/come-slurm}

command -v scancel >/dev/null && scancel --full --user "$(id -un)" 2>/dev/null || true

stop() {  # pidfile
  local pidfile=$1 pid
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$pidfile"
}
stop "$DIR/slurmd.pid"
stop "$DIR/slurmctld.pid"
stop /run/munge/munged.pid
[ "${COME_SLURM_KEEP:-0}" = 1 ] || rm -rf "$DIR/state" "$DIR/spool"
# Remove our slurm.conf: with it and no controller, every `scontrol` (which the Snakemake Slurm
# plugin runs when snakemake starts) waits 10 s for the dead controller.
if grep -q "written by .ci/slurm-up.sh" /etc/slurm/slurm.conf 2>/dev/null; then
  rm -f /etc/slurm/slurm.conf
fi
echo "slurm-down: stopped (logs kept in $DIR/log)"
