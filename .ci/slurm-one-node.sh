#!/usr/bin/env bash
# Start a one-node SLURM (Debian's 22.05 packages: slurmctld, slurmd, munge) on this machine, for the
# profiles/slurm test. Needs root. Installs the packages with apt when they are missing.
# No accounting daemon (slurmdbd): accounting_storage/none, and the executor plugin asks squeue for job
# states (profiles/slurm: status_command squeue), which needs finished jobs kept by slurmctld for a while
# (MinJobAge=600 here; the plugin recommends at least 120 s).
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "slurm-one-node: needs root" >&2; exit 1; }
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi
host="$(hostname -s)"
if ! getent hosts "$host" >/dev/null; then echo "127.0.0.1 $host" >> /etc/hosts; fi
node="$(slurmd -C | head -1)"   # NodeName=<host> CPUs=... RealMemory=... as slurmd sees this machine
memory="$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")"
node="${node/RealMemory=$memory/RealMemory=$((memory * 9 / 10))}"   # leave room for the daemons
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
cat > /etc/slurm/slurm.conf <<EOF
ClusterName=whisperbench
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=600
ReturnToService=2
MpiDefault=none
$node State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile /etc/munge/munge.key
chown munge:munge /etc/munge/munge.key /run/munge && chmod 400 /etc/munge/munge.key
pgrep -x munged >/dev/null || runuser -u munge -- munged
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qx idle; then sinfo; exit 0; fi
    sleep 1
done
echo "slurm-one-node: the node did not become idle; see /var/log/slurm/" >&2
sinfo >&2 || true
exit 1
