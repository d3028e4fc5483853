#!/usr/bin/env bash
# Start a real single-node Slurm cluster on this machine (CI; Debian/Ubuntu; run as root):
# installs slurmctld slurmd slurm-client munge with apt-get when missing, writes
# /etc/slurm/slurm.conf (the Snakemake Slurm executor's job step drops SLURM_CONF, so the
# config must be at the default path), starts munged, slurmctld and slurmd, and waits until the
# node is idle. No accounting (slurmdbd): the profile in slurm/ uses `squeue` for job status.
# Stop it with .ci/slurm-down.sh. State, spool, logs and PID files: $COME_SLURM_DIR.
set -euo pipefail
DIR=${COME_SLURM_DIR:-/tmp/come-slurm}
WAIT=${COME_SLURM_WAIT:-60}

[ "$(id -u)" -eq 0 ] || { echo "slurm-up: must run as root (starts system daemons)" >&2; exit 1; }

need=()
for bin in slurmctld slurmd sinfo munged; do command -v "$bin" >/dev/null || need+=("$bin"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "slurm-up: installing slurmctld slurmd slurm-client munge (missing: ${need[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

mkdir -p "$DIR"/{state,spool,log} /etc/slurm /run/munge /var/log/munge /var/lib/munge /etc/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
chmod 0700 /etc/munge /var/log/munge /var/lib/munge
chmod 0400 /etc/munge/munge.key
chmod 0755 /run/munge

cpus=$(nproc)
mem_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
cat > /etc/slurm/slurm.conf <<CONF
# written by .ci/slurm-up.sh (single-node CI cluster)
ClusterName=come-ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MinJobAge=600
ReturnToService=2
SchedulerType=sched/backfill
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF

if ! pgrep -u munge -x munged >/dev/null; then
  runuser -u munge -- munged --pid-file=/run/munge/munged.pid
fi
for i in $(seq 1 20); do munge -n </dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
munge -n </dev/null | unmunge >/dev/null || { echo "slurm-up: munge does not work" >&2; exit 1; }

[ -s "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null || slurmctld
[ -s "$DIR/slurmd.pid" ] && kill -0 "$(cat "$DIR/slurmd.pid")" 2>/dev/null || slurmd -N localhost

deadline=$(( $(date +%s) + WAIT ))
until sinfo -h -N -o '%T' 2>/dev/null | grep -qx idle; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "slurm-up: node not idle after ${WAIT}s" >&2
    sinfo -N -l >&2 || true
    tail -n 20 "$DIR"/log/*.log >&2 || true
    exit 1
  fi
  scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true
  sleep 1
done
sinfo -N -l
echo "slurm-up: single-node Slurm cluster ready ($cpus CPUs, ${mem_mb} MB; state in $DIR)"
