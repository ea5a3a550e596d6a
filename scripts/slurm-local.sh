#!/usr/bin/env bash
# scripts/slurm-local.sh - a private single-node Slurm (munged + slurmctld + slurmd on 127.0.0.1) for trying and
# testing slurm/*.sbatch on one machine. Everything it creates (config, munge key and socket, spool, state, logs,
# pid files) lives under ONE directory, and `stop` ends exactly the daemons it started, by the PIDs in their pid
# files. No systemd, no cgroups (proctrack/linuxproc, task/none), no accounting daemon.
#
# Usage (as root: slurmd must run as root):
#   scripts/slurm-local.sh start    install slurm-wlm + munge with apt if missing, write the config, start the
#                                   daemons (idempotent), wait until the node is idle
#   scripts/slurm-local.sh stop     cancel this cluster's jobs, then stop its daemons by PID
#   scripts/slurm-local.sh status   daemon PIDs, sinfo, squeue
#   scripts/slurm-local.sh env      print the line clients need:  eval "$(scripts/slurm-local.sh env)"
# Settings (environment):
#   SLURM_LOCAL_DIR    state directory                       (default /tmp/unlearn-slurm)
#   SLURM_LOCAL_PORT   slurmctld port; slurmd uses PORT + 1  (default 6817)
#   SLURM_LOCAL_CPUS   CPUs to advertise (default: detected). More than the machine has is allowed
#                      (SlurmdParameters=config_overrides), e.g. 4 to run `sbatch -n 2 -c 2` on a 2-core box.
# Then:   eval "$(scripts/slurm-local.sh env)"; sbatch --wait -n 2 slurm/unlearn.sbatch forget jobs/x.yaml
# Facts about this setup (Slurm 22.05, Open MPI 4.1): `srun --mpi=pmix` works (MpiDefault=pmix), pmi2/none do not;
# `sbatch --wait` returns the job's exit code; finished jobs stay visible to `scontrol show job` for 5 minutes
# (MinJobAge) and are logged in $SLURM_LOCAL_DIR/log/jobcomp.txt; a requeued job is held about 120 s unless
# `scontrol update JobId=ID StartTime=now`.
set -euo pipefail

DIR=${SLURM_LOCAL_DIR:-/tmp/unlearn-slurm}
PORT=${SLURM_LOCAL_PORT:-6817}
DPORT=$((PORT + 1))
NODE=localhost
CONF=$DIR/etc/slurm.conf
MUNGE_SOCKET=$DIR/munge/socket
ME=slurm-local

say() { printf '%s: %s\n' "$ME" "$*"; }
die() { printf '%s: error: %s\n' "$ME" "$*" >&2; exit 1; }

# pid_alive PID NAME: true while process PID exists, is not a zombie, and is named NAME.
pid_alive() {
    local state
    [[ -r /proc/$1/stat ]] || return 1
    state=$(sed -E 's/^[0-9]+ \(.*\) ([A-Z]).*/\1/' "/proc/$1/stat" 2>/dev/null || echo Z)
    [[ $state != Z && $(cat "/proc/$1/comm" 2>/dev/null) == "$2"* ]]
}

# The PID in pid file $1 if that process is alive, not a zombie, and named $2; else nothing.
alive() {
    local pid
    [[ -s $1 ]] || return 0
    pid=$(tr -dc '0-9' <"$1")
    [[ -n $pid ]] && pid_alive "$pid" "$2" && echo "$pid"
    return 0
}

# Waits up to 5 s for a daemon to write its pid file; prints the PID.
pid_of_started() {
    for _ in $(seq 50); do [[ -s $1 ]] && break; sleep 0.1; done
    tr -dc '0-9' <"$1" 2>/dev/null || echo '?'
}

# stop_pid PID NAME: SIGTERM, then SIGKILL after 10 s; returns once the process is gone (or after 15 s).
stop_pid() {
    local pid=$1 name=$2
    say "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do pid_alive "$pid" "$name" || return 0; sleep 0.2; done
    say "$name (pid $pid) still running after 10 s: SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
    for _ in $(seq 25); do pid_alive "$pid" "$name" || return 0; sleep 0.2; done
    say "warning: $name (pid $pid) did not exit"
}

# stop_daemon PIDFILE NAME: stops the daemon of that pid file (a daemon removes its pid file when it starts
# shutting down, so the PID is read once and followed, not the file).
stop_daemon() {
    local pid; pid=$(alive "$1" "$2")
    [[ -n $pid ]] && stop_pid "$pid" "$2"
    rm -f "$1"
}

# PIDs of the slurmstepd processes of THIS cluster: each holds a file under $DIR open (its slurmd log).
our_stepds() {
    local p
    for p in /proc/[0-9]*; do
        [[ $(cat "$p/comm" 2>/dev/null) == slurmstepd ]] || continue
        find "$p/fd" -maxdepth 1 -lname "$DIR/*" 2>/dev/null | grep -q . && echo "${p#/proc/}"
    done
    return 0
}

need_packages() {
    local c
    for c in slurmctld slurmd munged munge unmunge sbatch srun scontrol sinfo squeue scancel; do
        command -v "$c" >/dev/null 2>&1 || return 0
    done
    return 1
}

install_packages() {
    need_packages || return 0
    [[ $(id -u) -eq 0 ]] || die "slurm-wlm and munge are not installed; as root: apt-get install -y slurm-wlm munge"
    say "installing slurm-wlm and munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # Without an init system apt cannot start the distribution's services, which is what we want here.
    apt-get install -y -qq slurm-wlm munge >/dev/null ||
        { apt-get update -qq >/dev/null && apt-get install -y -qq slurm-wlm munge >/dev/null; } ||
        die "apt-get install slurm-wlm munge failed"
}

port_in_use() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

start_munged() {
    mkdir -p "$DIR/munge"
    chmod 0755 "$DIR/munge"   # munged insists: socket directory not writable by group/others
    if [[ ! -s $DIR/munge/munge.key ]]; then
        (umask 077; head -c 1024 /dev/urandom >"$DIR/munge/munge.key")
    fi
    chmod 0400 "$DIR/munge/munge.key"
    local pid; pid=$(alive "$DIR/munge/munged.pid" munged)
    if [[ -n $pid ]]; then
        say "munged already running (pid $pid)"
    else
        rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock" "$DIR/munge/munged.pid"
        munged --key-file="$DIR/munge/munge.key" --socket="$MUNGE_SOCKET" --pid-file="$DIR/munge/munged.pid" \
            --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/munged.seed" ||
            die "munged did not start; see $DIR/munge/munged.log"
        say "munged started (pid $(pid_of_started "$DIR/munge/munged.pid"))"
    fi
    munge -n -S "$MUNGE_SOCKET" | unmunge -S "$MUNGE_SOCKET" >/dev/null || die "munge/unmunge round trip failed"
}

# Writes the config; sets CONF_CHANGED=1 when it differs from the one already there.
write_config() {
    mkdir -p "$DIR/etc" "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run" "$DIR/pmix"
    local hw cpus mem overrides=""
    hw=$(slurmd -C | head -n 1)
    cpus=$(sed -nE 's/.* CPUs=([0-9]+).*/\1/p' <<<"$hw")
    mem=$(sed -nE 's/.*RealMemory=([0-9]+).*/\1/p' <<<"$hw")
    mem=$((mem * 9 / 10))
    if [[ -n ${SLURM_LOCAL_CPUS:-} && ${SLURM_LOCAL_CPUS} != "$cpus" ]]; then
        [[ $SLURM_LOCAL_CPUS =~ ^[1-9][0-9]*$ ]] || die "SLURM_LOCAL_CPUS='$SLURM_LOCAL_CPUS' is not a positive integer"
        cpus=$SLURM_LOCAL_CPUS
        overrides="SlurmdParameters=config_overrides"
    fi
    local new=$DIR/etc/slurm.conf.new
    cat >"$new" <<EOF
# written by scripts/slurm-local.sh: one node, no cgroups, no accounting daemon; all state under $DIR
ClusterName=unlearnlocal
SlurmctldHost=$NODE
SlurmctldPort=$PORT
SlurmdPort=$DPORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=pmix
JobRequeue=1
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
ReturnToService=2
SlurmdTimeout=300
InactiveLimit=0
KillWait=30
MinJobAge=300
$overrides
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus Boards=1 SocketsPerBoard=1 CoresPerSocket=$cpus ThreadsPerCore=1 RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    printf 'PMIxCliTmpDirBase=%s\n' "$DIR/pmix" >"$DIR/etc/mpi.conf"   # PMIx client files under DIR, not /tmp
    if [[ -f $CONF ]] && cmp -s "$new" "$CONF"; then
        rm -f "$new"; CONF_CHANGED=0
    else
        mv "$new" "$CONF"; CONF_CHANGED=1
    fi
}

do_start() {
    [[ $(id -u) -eq 0 ]] || die "run as root (slurmd must run as root)"
    [[ $PORT =~ ^[0-9]+$ ]] || die "SLURM_LOCAL_PORT='$PORT' is not a port number"
    install_packages
    mkdir -p "$DIR"
    start_munged
    write_config
    export SLURM_CONF=$CONF
    local ctld d
    ctld=$(alive "$DIR/run/slurmctld.pid" slurmctld)
    d=$(alive "$DIR/run/slurmd.pid" slurmd)
    if (( CONF_CHANGED )) && [[ -n $ctld || -n $d ]]; then
        say "the configuration changed: restarting the daemons"
        stop_daemon "$DIR/run/slurmd.pid" slurmd
        stop_daemon "$DIR/run/slurmctld.pid" slurmctld
        ctld=""; d=""
    fi
    if [[ -z $ctld ]]; then
        port_in_use "$PORT" && die "port $PORT is in use (another slurmctld?); pick another with SLURM_LOCAL_PORT"
        slurmctld -f "$CONF" || die "slurmctld did not start; see $DIR/log/slurmctld.log"
        say "slurmctld started (pid $(pid_of_started "$DIR/run/slurmctld.pid"), port $PORT)"
    else
        say "slurmctld already running (pid $ctld)"
    fi
    if [[ -z $d ]]; then
        port_in_use "$DPORT" && die "port $DPORT is in use (another slurmd?); pick another with SLURM_LOCAL_PORT"
        slurmd -f "$CONF" -N "$NODE" || die "slurmd did not start; see $DIR/log/slurmd.log"
        say "slurmd started (pid $(pid_of_started "$DIR/run/slurmd.pid"), port $DPORT)"
    else
        say "slurmd already running (pid $d)"
    fi
    local state=""
    for _ in $(seq 60); do
        if scontrol ping >/dev/null 2>&1; then
            state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n 1)
            case $state in
                idle | mixed | allocated | completing) break ;;
                down* | drain* | fail*) scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
            esac
        fi
        sleep 0.5
    done
    case $state in
        idle | mixed | allocated | completing) say "up: node $NODE is $state; clients: export SLURM_CONF=$CONF" ;;
        *) die "node state is '${state:-unknown}' after 30 s; see $DIR/log/slurmctld.log and slurmd.log" ;;
    esac
}

do_stop() {
    export SLURM_CONF=$CONF
    if [[ -n $(alive "$DIR/run/slurmctld.pid" slurmctld) ]] && scontrol ping >/dev/null 2>&1; then
        local jobs
        jobs=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')
        if [[ -n ${jobs// /} ]]; then
            say "cancelling jobs: $jobs"
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            for _ in $(seq 45); do [[ -z $(squeue -h -t R,CG,PD,S -o %i 2>/dev/null) ]] && break; sleep 1; done
        fi
    fi
    # Step daemons finish their cleanup (PMIx, epilog) a moment after a job ends; give them 40 s, then end them.
    local left pid
    for _ in $(seq 200); do left=$(our_stepds); [[ -z $left ]] && break; sleep 0.2; done
    for pid in $left; do pid_alive "$pid" slurmstepd && stop_pid "$pid" slurmstepd; done
    stop_daemon "$DIR/run/slurmd.pid" slurmd
    stop_daemon "$DIR/run/slurmctld.pid" slurmctld
    stop_daemon "$DIR/munge/munged.pid" munged
    say "stopped (state kept in $DIR; remove it for a clean start)"
}

do_status() {
    local pair name file pid
    for pair in "munged:$DIR/munge/munged.pid" "slurmctld:$DIR/run/slurmctld.pid" "slurmd:$DIR/run/slurmd.pid"; do
        name=${pair%%:*}; file=${pair#*:}
        pid=$(alive "$file" "$name")
        printf '%-10s %s\n' "$name" "${pid:-not running}"
    done
    printf '%-10s %s\n' slurmstepd "$(our_stepds | tr '\n' ' ')"
    export SLURM_CONF=$CONF
    if scontrol ping >/dev/null 2>&1; then sinfo; squeue; else say "slurmctld is not answering"; return 1; fi
}

case ${1:-} in
    start) do_start ;;
    stop) do_stop ;;
    status) do_status ;;
    env) printf 'export SLURM_CONF=%q\n' "$CONF" ;;
    *) die "usage: $0 start|stop|status|env   (state in SLURM_LOCAL_DIR=$DIR)" ;;
esac
