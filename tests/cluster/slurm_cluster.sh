#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for kdzoo's cluster tests and by hand.
#
#   tests/cluster/slurm_cluster.sh up STATE_DIR     # start munged, slurmctld, slurmd; prints the env file
#   source STATE_DIR/env                            # SLURM_CONF (and the munge socket) for sbatch/squeue
#   tests/cluster/slurm_cluster.sh down STATE_DIR   # stop them by the PIDs this start recorded
#
# Debian's slurm-wlm and munge (apt-get install slurm-wlm munge). No systemd, no cgroups
# (proctrack/linuxproc, task/none), no accounting database (job states come from squeue/scontrol).
# Every start has its own munge key, ports and state folder, so several can run side by side and
# nothing of the machine's own Slurm or munge (if any) is touched. The node offers this machine's
# CPUs (at most 2) with consumable CPUs, so two one-CPU jobs run at once.
set -euo pipefail

action=${1:-}
state=${2:-}
if [ -z "$action" ] || [ -z "$state" ]; then
    echo "usage: $0 up|down STATE_DIR" >&2
    exit 2
fi

stop() {
    for name in slurmd slurmctld munged; do
        pidfile="$state/$name.pid"
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$pidfile"
    done
}

if [ "$action" = down ]; then
    stop
    exit 0
fi
if [ "$action" != up ]; then
    echo "$0: unknown action '$action' (up, down)" >&2
    exit 2
fi

for tool in munged mungekey slurmctld slurmd sbatch squeue; do
    command -v "$tool" >/dev/null || { echo "$0: $tool not found: apt-get install slurm-wlm munge" >&2; exit 2; }
done

mkdir -p "$state"/{munge,ctld,spool,log}
state=$(cd "$state" && pwd)
chmod 700 "$state/munge"
mungekey --create --keyfile="$state/munge/munge.key" --force
chmod 400 "$state/munge/munge.key"
socket="$state/munge/munge.socket"

# two free TCP ports: slurmctld and slurmd
read -r ctld_port d_port < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOF
)
host=$(hostname -s)
cpus=$(nproc)
[ "$cpus" -gt 2 ] && cpus=2
user=$(id -un)

cat > "$state/slurm.conf" <<EOF
ClusterName=kdzoo-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/ctld/slurmctld.pid
SlurmdPidFile=$state/spool/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=600
SchedulerTimeSlice=5
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=kdzoo-node NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=kdzoo-node Default=YES MaxTime=INFINITE State=UP
EOF

cat > "$state/env" <<EOF
export SLURM_CONF=$state/slurm.conf
EOF

munged --force --socket="$socket" --key-file="$state/munge/munge.key" --pid-file="$state/munge/munged.pid" \
    --log-file="$state/log/munged.log" --seed-file="$state/munge/munged.seed"
for _ in $(seq 50); do [ -S "$socket" ] && [ -f "$state/munge/munged.pid" ] && break; sleep 0.1; done
cp "$state/munge/munged.pid" "$state/munged.pid"

export SLURM_CONF="$state/slurm.conf"
slurmctld -D -c -f "$state/slurm.conf" > "$state/log/slurmctld.out" 2>&1 &
echo $! > "$state/slurmctld.pid"
slurmd -D -N kdzoo-node -f "$state/slurm.conf" > "$state/log/slurmd.out" 2>&1 &
echo $! > "$state/slurmd.pid"

for _ in $(seq 150); do
    if sinfo -h -N -o "%T" 2>/dev/null | grep -qx idle; then
        echo "$state/env"
        exit 0
    fi
    sleep 0.2
done
echo "$0: the Slurm node did not come up within 30 s; logs in $state/log" >&2
sinfo -N -l >&2 || true
tail -n 20 "$state/log/slurmctld.log" "$state/log/slurmd.log" >&2 || true
stop
exit 1
