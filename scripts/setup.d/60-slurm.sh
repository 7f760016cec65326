#!/usr/bin/env bash
# A real single-node Slurm cluster for the Slurm executor's tests (gate check --executor slurm): installs Debian's
# slurm-wlm and munge, writes a minimal slurm.conf (this machine as the only node, 2 CPUs, one partition), and starts
# munged, slurmctld and slurmd. Idempotent: a cluster that already answers is left as it is. A failure is only an
# error when GATE_REQUIRE_SLURM=1 (CI), where the Slurm tests may not be skipped.
set -uo pipefail
fail() { echo "60-slurm: $*" >&2; [ "${GATE_REQUIRE_SLURM:-0}" = "1" ] && exit 1; exit 0; }

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  echo "60-slurm: installing slurm-wlm and munge"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null; } || fail "apt-get install slurm-wlm munge failed"
fi

node="$(hostname -s)"
conf_dir=/etc/slurm
mkdir -p "$conf_dir" /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm /run/munge
if [ ! -f "$conf_dir/slurm.conf" ] || ! grep -q "^# gate single-node cluster" "$conf_dir/slurm.conf"; then
  cat > "$conf_dir/slurm.conf" <<CONF
# gate single-node cluster (scripts/setup.d/60-slurm.sh): this machine is controller and only node.
ClusterName=gate
SlurmctldHost=$node
AuthType=auth/munge
SlurmUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$node CPUs=2 State=UNKNOWN
PartitionName=gate Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
fi

if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  if command -v mungekey >/dev/null 2>&1; then mungekey --create --keyfile=/etc/munge/munge.key --force >/dev/null
  else dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; fi
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 0400 /etc/munge/munge.key; chmod 0755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- munged 2>/dev/null || munged --force || fail "munged did not start"
  sleep 1
fi
munge -n | unmunge >/dev/null 2>&1 || fail "munge does not work"

pgrep -x slurmctld >/dev/null || slurmctld || fail "slurmctld did not start (see /var/log/slurm/slurmctld.log)"
pgrep -x slurmd >/dev/null || slurmd || fail "slurmd did not start (see /var/log/slurm/slurmd.log)"
for _ in $(seq 1 30); do
  state="$(sinfo -h -n "$node" -o %t 2>/dev/null | head -1)"
  case "$state" in
    idle|mix|alloc) echo "60-slurm: node $node is $state"; exit 0 ;;
    down*|drain*|drng*) scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true ;;
  esac
  sleep 1
done
fail "node $node did not become idle (state '${state:-none}'; see /var/log/slurm/)"
