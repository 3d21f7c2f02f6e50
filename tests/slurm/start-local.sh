#!/usr/bin/env bash
# Starts a one-node SLURM cluster on this machine (as root, Debian): munge, slurmctld and slurmd,
# with a partition `debug` of this machine's cores, so that `hydra/launcher=slurm_cpu` can be tested
# for real (submit, scontrol requeue, cancel): tests/test_slurm_cluster.py calls it. Installs the
# Debian packages slurmd, slurmctld, slurm-client and munge on first use. Idempotent: a second call
# finds it up and does nothing. There is no accounting database, so submitit warns that sacct fails
# and reads job state otherwise.
set -eu
if sinfo -h >/dev/null 2>&1; then echo "slurm is up: $(sinfo -h -o '%P %a %D %T')"; exit 0; fi
if ! command -v slurmctld >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq slurmd slurmctld slurm-client munge >/dev/null
fi
host=$(hostname); cpus=$(nproc); mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=local
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmUser=root
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
[ -f /etc/munge/munge.key ] || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
chown munge:munge /etc/munge/munge.key /run/munge; chmod 400 /etc/munge/munge.key
pgrep -x munged >/dev/null || su -s /bin/sh munge -c /usr/sbin/munged
/usr/sbin/slurmctld; sleep 2; /usr/sbin/slurmd
for _ in $(seq 30); do sinfo -h -o '%T' 2>/dev/null | grep -q idle && break; sleep 1; done
echo "slurm is up: $(sinfo -h -o '%P %a %D %T')"
