#!/usr/bin/env bash
# A one-node SLURM cluster for the test suite (Debian's slurm 22.05 + munge, run as root),
# with one fake GPU, no accounting daemon.
#
#   tests/slurm/cluster.sh start DIR   write the configuration, start munged, slurmctld and
#                                      slurmd, wait until the node is idle (bounded)
#   tests/slurm/cluster.sh stop DIR    stop the daemons by the PID files in DIR
#
# slurm.conf must be /etc/slurm/slurm.conf: the job-step plugin drops SLURM_CONF. An
# existing one is kept aside as slurm.conf.trm-saved and put back by `stop`.
set -euo pipefail

action=${1:?usage: cluster.sh start|stop DIR}
dir=$(realpath -m "${2:?usage: cluster.sh start|stop DIR}")
conf=/etc/slurm/slurm.conf

stop_pid() {  # stop_pid FILE: TERM the process, wait up to 10 s, then KILL
    local file=$1 pid
    [ -s "$file" ] || return 0
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

if [ "$action" = stop ]; then
    # Jobs first (a test that failed may leave some), then the daemons.
    if [ -s "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null; then
        scancel --full --quiet --user=root 2>/dev/null || true
        for _ in $(seq 60); do
            [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
    stop_pid "$dir/slurmd.pid"
    stop_pid "$dir/slurmctld.pid"
    stop_pid "$dir/munged.pid"
    if [ -f "$conf.trm-saved" ]; then mv -f "$conf.trm-saved" "$conf"; else rm -f "$conf"; fi
    rm -f /etc/slurm/gres.conf
    pkill -KILL slurmstepd 2>/dev/null || true  # a job step outliving its daemon
    exit 0
fi

[ "$action" = start ] || { echo "unknown action $action" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 2; }
for tool in munged slurmctld slurmd sinfo sbatch; do
    command -v "$tool" >/dev/null || { echo "$tool not installed" >&2; exit 3; }
done

host=$(hostname -s)
mkdir -p "$dir/state" "$dir/spool"
# munged runs as the munge user, who cannot enter a private test folder: its socket and
# PID file live in /run/munge.
mkdir -p /run/munge
chown munge:munge /run/munge
ln -sfn /dev/null "$dir/nvidia0"  # the fake GPU: a device file that exists
cpus=$(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p')
memory=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
memory=$((memory * 8 / 10))

[ -f "$conf" ] && [ ! -f "$conf.trm-saved" ] && mv "$conf" "$conf.trm-saved"
mkdir -p /etc/slurm
cat > "$conf" <<EOF
ClusterName=trmtest
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
MinJobAge=600
ReturnToService=2
MailProg=/bin/true
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
GresTypes=gpu
NodeName=$host CPUs=$cpus RealMemory=$memory Gres=gpu:1 State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
echo "NodeName=$host Name=gpu File=$dir/nvidia0" > /etc/slurm/gres.conf

runuser -u munge -- munged --pid-file=/run/munge/trm-test-munged.pid
cp /run/munge/trm-test-munged.pid "$dir/munged.pid"
slurmctld -c -i
slurmd
for _ in $(seq 120); do
    state=$(sinfo -h -N -o %T 2>/dev/null | head -1 || true)
    [ "$state" = idle ] && exit 0
    sleep 0.5
done
echo "the node did not become idle (state: ${state:-none}); see $dir/*.log" >&2
exit 4
