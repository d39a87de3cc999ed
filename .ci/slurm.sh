#!/usr/bin/env bash
# Starts a throwaway Slurm cluster on this machine for the Slurm tests and prints what they need.
# shellcheck shell=bash
#
#     eval "$(bash .ci/slurm.sh [DIR])"   # starts it; prints `export NAME=VALUE` lines on stdout
#     sbatch --gres=gpu:2 --wrap 'echo $CUDA_VISIBLE_DEVICES'
#     bash .ci/slurm.sh stop [DIR]        # stops it and removes DIR
#
# DIR is the argument, else $MODAL_SLURM_DIR, else /tmp/modal-ci-slurm. Starting again in the same
# DIR first stops what was started there before. `cargo xtask ci` starts one this way itself
# (unless MODAL_TEST_SLURM is set already) and stops it after the tests.
#
# The test run gets:
#     SLURM_CONF=DIR/etc/slurm.conf   the config sbatch, squeue, scancel, sinfo and scontrol read
#     MODAL_SLURM_DIR=DIR             logs under DIR/log, `stop` takes it
#     MODAL_TEST_SLURM=1              tells the tests that a cluster is there
#
# The cluster, for tests only (everything runs as root, nothing is secured):
# - slurm-wlm and munge from Debian's packages (apt-get install; apt-get update only when the
#   install fails without it). Slurm 22.05 on Debian 12.
# - A private munged (its own socket DIR/munge/munge.socket, as the munge user, the package's
#   /etc/munge/munge.key), so a system munged is neither needed nor touched.
# - One slurmctld and TWO nodes, modal-n1 and modal-n2: two slurmd daemons on 127.0.0.1 with their
#   own Port, spool dir, pid file and log (`slurmd -N NAME`). Debian's build has no
#   --enable-multiple-slurmd, but that only matters for port ranges on one NodeName line or one
#   slurmd serving several nodes; separate NodeName lines with their own Port work (tested:
#   both nodes idle, jobs spread over both, CUDA_VISIBLE_DEVICES per node).
# - Each node advertises the machine's CPUs (nproc, one thread per core) and 95% of its memory
#   (so the two nodes together promise twice what the machine has: fine for tests, which ask for
#   little), DefMemPerCPU so jobs do not take a node's whole memory, and 4 fake GPUs
#   (`gres/gpu:fake:4`, char devices c 1 3 made with mknod, that is /dev/null) each:
#   `--gres=gpu:2` gets CUDA_VISIBLE_DEVICES=0,1; `--gres=gpu:5` is refused with "Requested node
#   configuration is not available".
# - Partitions `debug` (the default) and `spot`, both over both nodes; `sbatch -p nosuch` is
#   refused with "Invalid partition name specified".
# - SchedulerParameters=batch_sched_delay=0: an sbatch job starts at the scheduler's next tick,
#   within a second of its submission (measured: 71-978 ms, median 0.73 s, 18 jobs), instead of
#   after three. The scheduler's first tick comes about 3 s after slurmctld starts, so the start
#   runs one job through it before it reports the cluster ready (about 3.5 s in all).
# - KillWait=5: scancel sends SIGTERM to all the job's processes at once (measured: 8 ms later),
#   SIGKILL to what is left 5 s later (the default is 30 s).
# - `sbatch --output=PATH` writes where it says; PATH's directory must exist (the job fails with
#   JobLaunchFailure otherwise).
# - Ports: the first free ones from $MODAL_SLURM_PORT (default 56817): slurmctld, then a node each.
#
# `stop` cancels the cluster's jobs, then stops exactly the daemons this started (their pid files
# under DIR, checked against their command lines) and waits until they have exited, so a new
# slurmctld never overlaps an old one; what a daemon that went down under a running job left
# behind (slurmstepd working in DIR/log, job processes with SLURM_CONF=DIR/etc/slurm.conf and
# SLURM_JOB_ID in their environment) is killed. It removes DIR when it is under /tmp. Neither mode
# touches a DIR that holds anything but this script's cluster.

set -uo pipefail

MODAL_SLURM_NODES="modal-n1 modal-n2"
MODAL_SLURM_GPUS=4

_say() {
    echo "slurm.sh: $*" >&2
}

# Installs slurm-wlm and munge when a command of theirs is missing.
_modal_slurm_install() {
    local missing="" c
    for c in slurmctld slurmd sbatch squeue scancel sinfo scontrol munged munge unmunge; do
        command -v "$c" >/dev/null 2>&1 || missing="$missing $c"
    done
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        _say "missing:$missing, and this is not root: apt-get install slurm-wlm munge"
        return 1
    fi
    _say "installing slurm-wlm and munge (apt-get), missing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq slurm-wlm munge >/dev/null 2>&1; then
        apt-get update -qq >&2 && apt-get install -y -qq slurm-wlm munge >&2 || return 1
    fi
    for c in slurmctld slurmd sbatch squeue scancel sinfo scontrol munged munge unmunge; do
        command -v "$c" >/dev/null 2>&1 || {
            _say "$c is still missing after apt-get install slurm-wlm munge"
            return 1
        }
    done
}

# Whether something accepts TCP connections on 127.0.0.1:$1.
_modal_slurm_port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Whether process $1 is alive (a zombie counts as exited).
_modal_slurm_alive() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# The pid in pid file $1 when that process is alive and its command line contains $2.
_modal_slurm_pid() {
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    case "$pid" in '' | *[!0-9]*) return 1 ;; esac
    _modal_slurm_alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2" || return 1
    echo "$pid"
}

# Sends SIGTERM to process $1 and waits (up to 15 s, then SIGKILL and 5 s more) until it exited.
_modal_slurm_kill() {
    local pid=$1 tries=0
    kill -TERM "$pid" 2>/dev/null || return 0
    while _modal_slurm_alive "$pid"; do
        tries=$((tries + 1))
        if [ "$tries" -eq 150 ]; then
            _say "pid $pid ($2) ignored SIGTERM for 15 s; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        elif [ "$tries" -ge 200 ]; then
            _say "pid $pid ($2) did not exit"
            return 1
        fi
        sleep 0.1
    done
}

# Stops what was started in $1 (see the header); removes $1 unless $2 is `keep`.
_modal_slurm_stop() {
    local root=$1 conf="$1/etc/slurm.conf" pid node tries ok=0 jobs p env
    if [ -f "$conf" ] && _modal_slurm_pid "$root/run/slurmctld.pid" "$conf" >/dev/null; then
        jobs=$(SLURM_CONF=$conf timeout 10 squeue -h -o %i 2>/dev/null) || jobs=""
        if [ -n "$jobs" ]; then
            # shellcheck disable=SC2086 # one id a word
            SLURM_CONF=$conf timeout 10 scancel $jobs 2>/dev/null || true
            # KillWait (5 s) and a little more for the jobs to be gone.
            tries=0
            while [ -n "$(SLURM_CONF=$conf timeout 10 squeue -h -o %i 2>/dev/null)" ] \
                && [ "$tries" -lt 100 ]; do
                tries=$((tries + 1))
                sleep 0.1
            done
        fi
    fi
    for node in $MODAL_SLURM_NODES; do
        pid=$(_modal_slurm_pid "$root/run/slurmd-$node.pid" "$conf") \
            && { _modal_slurm_kill "$pid" "slurmd $node" || ok=1; }
    done
    pid=$(_modal_slurm_pid "$root/run/slurmctld.pid" "$conf") \
        && { _modal_slurm_kill "$pid" slurmctld || ok=1; }
    pid=$(_modal_slurm_pid "$root/run/munged.pid" "$root/munge/") \
        && { _modal_slurm_kill "$pid" munged || ok=1; }
    # What the daemons left behind when they went down under a running job (or were killed):
    # slurmstepd processes working in DIR/log (slurmd's working directory), and the jobs'
    # processes (SLURM_CONF=DIR/etc/slurm.conf and SLURM_JOB_ID in their environment).
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        [ "$pid" = "$$" ] && continue
        if [ "$(cat "$p/comm" 2>/dev/null)" = slurmstepd ]; then
            case "$(readlink "$p/cwd" 2>/dev/null)" in
                "$root"/*) kill -KILL "$pid" 2>/dev/null || true ;;
            esac
            continue
        fi
        env=$'\n'$(tr '\0' '\n' 2>/dev/null <"$p/environ")$'\n' || continue
        if [[ $env == *$'\n'"SLURM_CONF=$conf"$'\n'* && $env == *$'\n'SLURM_JOB_ID=* ]]; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    if [ "${2:-}" != keep ]; then
        case "$root" in
            /tmp/?*) rm -rf "$root" ;;
            *) [ -e "$root" ] && _say "left $root in place (not under /tmp)" ;;
        esac
    fi
    return "$ok"
}

# The last lines of each log under $1/log, on stderr.
_modal_slurm_logs() {
    local f
    for f in "$1"/log/*.log; do
        [ -f "$f" ] || continue
        echo "--- tail of $f" >&2
        tail -n 15 "$f" >&2
    done
}

# Polls `$2...` (quietly) every 0.1 s until it succeeds, for at most $1 seconds.
_modal_slurm_until() {
    local limit=$(($1 * 10)) tries=0
    shift
    until "$@" >/dev/null 2>&1; do
        tries=$((tries + 1))
        [ "$tries" -ge "$limit" ] && return 1
        sleep 0.1
    done
}

# Whether the munged on socket $1 makes and checks a credential.
_modal_slurm_munge() {
    munge -n -S "$1" | unmunge -S "$1"
}

# Whether every node of the cluster whose config is $1 is idle.
_modal_slurm_idle() {
    local states
    states=$(SLURM_CONF=$1 timeout 5 sinfo -h -N -o '%N %T' 2>/dev/null | sort -u) || return 1
    [ -n "$states" ] || return 1
    ! echo "$states" | grep -qv ' idle$'
}

# Whether job $2 of the cluster whose config is $1 has completed.
_modal_slurm_done() {
    [ "$(SLURM_CONF=$1 timeout 5 squeue -h -t all -j "$2" -o %T 2>/dev/null)" = COMPLETED ]
}

_modal_slurm_start() {
    local root=$1 conf="$1/etc/slurm.conf" port ports=() tries node i
    local cpus mem real defmem started warmup
    started=${EPOCHREALTIME/[.,]/}
    if [ "$(id -u)" -ne 0 ]; then
        _say "needs root (the daemons run as root; mknod)"
        return 1
    fi
    _modal_slurm_install || return 1
    if ! id munge >/dev/null 2>&1 || [ ! -r /etc/munge/munge.key ]; then
        _say "no munge user or no /etc/munge/munge.key (the munge package makes them)"
        return 1
    fi

    _modal_slurm_stop "$root" || return 1
    mkdir -p "$root"/{etc,state,run,log,dev,munge} || return 1
    for node in $MODAL_SLURM_NODES; do
        mkdir -p "$root/spool/$node" || return 1
    done
    chmod 0755 "$root" && chown munge: "$root/munge" && chmod 0755 "$root/munge" || return 1

    # slurmctld's port, then one per node.
    port=${MODAL_SLURM_PORT:-56817}
    tries=0
    for i in ctld $MODAL_SLURM_NODES; do
        while _modal_slurm_port_busy "$port"; do
            tries=$((tries + 1))
            if [ "$tries" -ge 100 ]; then
                _say "no free ports from ${MODAL_SLURM_PORT:-56817} on"
                return 1
            fi
            port=$((port + 1))
        done
        ports+=("$port")
        port=$((port + 1))
    done

    cpus=$(nproc)
    mem=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
    real=$((mem * 95 / 100))
    defmem=$((real / cpus))
    [ "$defmem" -gt 1024 ] && defmem=1024

    {
        cat <<EOF
# Written by .ci/slurm.sh: a throwaway cluster for tests.
ClusterName=modalci
SlurmctldHost=localhost
SlurmctldPort=${ports[0]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$root/munge/munge.socket
StateSaveLocation=$root/state
SlurmdSpoolDir=$root/spool/%n
SlurmctldPidFile=$root/run/slurmctld.pid
SlurmdPidFile=$root/run/slurmd-%n.pid
SlurmctldLogFile=$root/log/slurmctld.log
SlurmdLogFile=$root/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$defmem
KillWait=5
GresTypes=gpu
EOF
        i=1
        for node in $MODAL_SLURM_NODES; do
            echo "NodeName=$node NodeAddr=127.0.0.1 Port=${ports[$i]} CPUs=$cpus Boards=1" \
                "SocketsPerBoard=1 CoresPerSocket=$cpus ThreadsPerCore=1 RealMemory=$real" \
                "Gres=gpu:fake:$MODAL_SLURM_GPUS State=UNKNOWN"
            i=$((i + 1))
        done
        echo "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
        echo "PartitionName=spot Nodes=ALL MaxTime=INFINITE State=UP"
    } >"$conf" || return 1
    : >"$root/etc/gres.conf" || return 1
    for node in $MODAL_SLURM_NODES; do
        for ((i = 0; i < MODAL_SLURM_GPUS; i++)); do
            mknod "$root/dev/$node-gpu$i" c 1 3 || return 1
        done
        echo "NodeName=$node Name=gpu Type=fake File=$root/dev/$node-gpu[0-$((MODAL_SLURM_GPUS - 1))]" \
            >>"$root/etc/gres.conf" || return 1
    done

    (cd / && runuser -u munge -- munged --socket="$root/munge/munge.socket" \
        --pid-file="$root/munge/munged.pid" --log-file="$root/munge/munged.log" \
        --seed-file="$root/munge/munged.seed" --key-file=/etc/munge/munge.key) || {
        _say "munged did not start:"
        tail -n 15 "$root/munge/munged.log" >&2
        return 1
    }
    ln -sf ../munge/munged.pid "$root/run/munged.pid" \
        && ln -sf ../munge/munged.log "$root/log/munged.log" || return 1
    if ! _modal_slurm_until 10 _modal_slurm_munge "$root/munge/munge.socket"; then
        _say "munged does not answer on $root/munge/munge.socket after 10 s:"
        _modal_slurm_logs "$root"
        return 1
    fi

    SLURM_CONF=$conf slurmctld -f "$conf" || {
        _say "slurmctld did not start:"
        _modal_slurm_logs "$root"
        return 1
    }
    if ! _modal_slurm_until 20 env SLURM_CONF="$conf" scontrol ping; then
        _say "slurmctld is not up after 20 s:"
        _modal_slurm_logs "$root"
        return 1
    fi
    for node in $MODAL_SLURM_NODES; do
        SLURM_CONF=$conf slurmd -f "$conf" -N "$node" || {
            _say "slurmd $node did not start:"
            _modal_slurm_logs "$root"
            return 1
        }
    done
    if ! _modal_slurm_until 30 _modal_slurm_idle "$conf"; then
        _say "the nodes are not idle after 30 s:"
        SLURM_CONF=$conf timeout 5 sinfo -N -o '%N %T %E' >&2 || true
        _modal_slurm_logs "$root"
        return 1
    fi
    # slurmctld's scheduler first runs about 3 s after it starts (whatever batch_sched_delay
    # says): a job through it, which also proves that jobs launch, so that the tests' first job
    # starts as quickly as the others.
    if ! warmup=$(SLURM_CONF=$conf timeout 10 sbatch --parsable -J modal-slurm-warmup \
        -o /dev/null --wrap true 2>&1); then
        _say "sbatch failed: $warmup"
        _modal_slurm_logs "$root"
        return 1
    fi
    if ! _modal_slurm_until 20 _modal_slurm_done "$conf" "$warmup"; then
        _say "the first job ($warmup) did not complete in 20 s:"
        SLURM_CONF=$conf timeout 5 squeue -t all -o '%i %T %R' >&2 || true
        _modal_slurm_logs "$root"
        return 1
    fi

    echo "export SLURM_CONF=$conf"
    echo "export MODAL_SLURM_DIR=$root"
    echo "export MODAL_TEST_SLURM=1"
    _say "$(slurmctld -V) up in $(((${EPOCHREALTIME/[.,]/} - started) / 1000)) ms:" \
        "nodes $MODAL_SLURM_NODES ($cpus CPUs, ${real} MB, gpu:fake:$MODAL_SLURM_GPUS each)," \
        "partitions debug (default) and spot, slurmctld on 127.0.0.1:${ports[0]}; logs in $root/log;" \
        "stop with: bash .ci/slurm.sh stop $root"
}

if [ "${1:-}" = stop ]; then
    shift
    stop=1
fi
dir=${1:-${MODAL_SLURM_DIR:-/tmp/modal-ci-slurm}}
case "$dir" in
    /*) ;;
    *) dir="$PWD/$dir" ;;
esac
case "$dir" in
    *[!A-Za-z0-9._/-]*)
        _say "the directory '$dir' has characters slurm.conf cannot take; use [A-Za-z0-9._/-]"
        exit 1
        ;;
esac
# Neither mode touches (or removes) a directory that holds something else than this script's
# cluster.
if [ -n "$(ls -A "$dir" 2>/dev/null)" ] \
    && ! grep -qs '^# Written by .ci/slurm.sh' "$dir/etc/slurm.conf"; then
    _say "$dir holds something else than a cluster of this script's; choose another directory"
    exit 1
fi
if [ -n "${stop:-}" ]; then
    _modal_slurm_stop "$dir"
    exit
fi
if ! _modal_slurm_start "$dir"; then
    _say "could not start Slurm; stopping what started (logs stay in $dir/log)"
    _modal_slurm_stop "$dir" keep
    exit 1
fi
