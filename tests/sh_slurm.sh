#!/usr/bin/env bash
# tests/sh_slurm.sh - Slurm-native runs (slurm/unlearn.sbatch, slurm/sweep.sbatch) on a private single-node Slurm
# started here (scripts/slurm-local.sh, 4 advertised CPUs, state under /tmp, free ports) and ALWAYS stopped by the
# EXIT trap, whatever happens. Also runs tests/mpi_runctl (the run-control plumbing) under mpirun and srun.
#
#   without a job binary:  the scripts refuse outside Slurm, with a bad COMMAND, a missing job file or a missing
#                          binary (inside Slurm, naming `make`); the sweep's index -> combination table;
#                          mpi_runctl with 2 and 3 ranks (mpirun) and 2 ranks (srun --mpi=pmix in a batch job);
#   with build/unlearn:    train a small MLP on a synthetic dataset through the template, then
#     (a) forget with -n 2 -c 2: exit 0, report.json, the log in the run directory, 2 ranks x 2 threads;
#     (b) preemption of forget, three ways: srun + SIGUSR1 to the batch shell (--signal=B:USR1 path), srun + SIGUSR1
#         straight to the ranks (--signal=USR1 path), mpirun + SIGUSR1 to every process of the batch step; and of
#         train (srun, batch shell). Each is stopped mid-run, requeued, resumes ("resumed from iteration k",
#         0 < k < iters) and ends with a checkpoint (forget) / model (train) bitwise equal, every dataset, to an
#         uninterrupted 2-rank run's;
#     (c) SIGKILL to rank 1 of a 2-rank run, with srun and with mpirun: the job ends nonzero within 60 s and its
#         output names task/rank 1;
#     (d) a job array of 2 runs (seeds 0 and 1, throttled with %1) completes, each in its own run directory;
#     (e) a NaN/Inf loss (a model checkpoint with an Inf weight): exit 4 on every rank, one message,
#         <run_dir>/nonfinite.json, no requeue;
#     (f) scancel of a running job: CANCELLED, not requeued (the ranks' SIGTERM does not trigger a requeue).
# Tunables (environment): SLURM_TEST_ITERS (forget iterations of the long runs in (b), (c), (f); default 3000),
# SLURM_TEST_TRAIN_EPOCHS (epochs of the long train runs in (b); default 150, 10 steps each), SLURM_TEST_HIDDEN
# (MLP hidden widths, default [256,256]): a long run must last several seconds.
cd "$(dirname "$0")/.." || exit 1
source tests/lib.sh
REPO=$(pwd)
T=$TU_TMP
BIN=$(realpath -m "$UNLEARN")
RUNCTL_TEST=$(realpath -m "$BUILD/tests/mpi_runctl")
TEMPLATE=$REPO/slurm/unlearn.sbatch
SWEEP=$REPO/slurm/sweep.sbatch
ITERS=${SLURM_TEST_ITERS:-3000}
TRAIN_EPOCHS=${SLURM_TEST_TRAIN_EPOCHS:-150}
HIDDEN=${SLURM_TEST_HIDDEN:-[256,256]}

# ---- the private cluster, stopped on every exit ------------------------------------------------------------
SLURM_LOCAL_DIR=$(mktemp -d /tmp/unlearn-slurm-test.XXXXXX)
chmod 0755 "$SLURM_LOCAL_DIR"
export SLURM_LOCAL_DIR SLURM_LOCAL_CPUS=4
cleanup() {
    echo "---- stopping the test cluster"
    "$REPO/scripts/slurm-local.sh" stop 2>&1 | sed 's/^/     /'
    rm -rf "$TU_TMP" "$SLURM_LOCAL_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
port_free() { ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
for _ in $(seq 50); do
    SLURM_LOCAL_PORT=$((20000 + RANDOM % 20000))
    port_free "$SLURM_LOCAL_PORT" && port_free $((SLURM_LOCAL_PORT + 1)) && break
done
export SLURM_LOCAL_PORT
export SLURM_CONF=$SLURM_LOCAL_DIR/etc/slurm.conf
export UNLEARN_BIN=$BIN UNLEARN_SLURM_DIR=$REPO/slurm

# ---- helpers ----------------------------------------------------------------------------------------------
# job_field JID FIELD: a field of `scontrol show job` (JobState, ExitCode, Restarts, ...)
job_field() { scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
# steps_alive JID: true while a slurmstepd of that job (batch or step) of THIS cluster (it holds a file under
# $SLURM_LOCAL_DIR open) still runs
steps_alive() {
    local p
    while read -r p; do
        p=${p%/cmdline}
        find "$p/fd" -maxdepth 1 -lname "$SLURM_LOCAL_DIR/*" 2>/dev/null | grep -q . && return 0
    done < <(grep -laF "slurmstepd: [$1." /proc/[0-9]*/cmdline 2>/dev/null)
    return 1
}
# wait_job JID SECONDS: waits for the job to end; a requeued job (pending, Restarts > 0) is released with
# StartTime=now once its previous run's step daemons are gone. Sets JOB_STATE, JOB_RC (exit code, 128 + signal
# when killed), JOB_RESTARTS. Returns 1 (and cancels the job) on timeout.
wait_job() {
    local jid=$1 deadline=$((SECONDS + $2)) st ec
    while ((SECONDS < deadline)); do
        st=$(job_field "$jid" JobState)
        case $st in
            COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED)
                JOB_STATE=$st
                ec=$(job_field "$jid" ExitCode)
                JOB_RC=${ec%%:*}
                [[ ${ec#*:} != 0 ]] && JOB_RC=$((128 + ${ec#*:}))
                JOB_RESTARTS=$(job_field "$jid" Restarts)
                return 0
                ;;
            PENDING)
                if [[ $(job_field "$jid" Restarts) != 0 ]] && ! steps_alive "$jid"; then
                    scontrol update JobId="$jid" StartTime=now >/dev/null 2>&1
                fi
                ;;
        esac
        sleep 0.3
    done
    JOB_STATE="still $(job_field "$jid" JobState) after $2 s" JOB_RC=-1 JOB_RESTARTS=unknown
    scancel "$jid" 2>/dev/null
    return 1
}
# expect_job WHAT JID SECONDS WANT_RC [OUTFILE]: one check on a job's outcome
expect_job() {
    local what=$1 jid=$2 secs=$3 want=$4 out=${5:-}
    if wait_job "$jid" "$secs" && [[ $JOB_RC == "$want" ]]; then
        tu_pass "$what (job $jid $JOB_STATE, exit $JOB_RC)"
        return 0
    fi
    tu_fail "$what (job $jid: $JOB_STATE, exit $JOB_RC, want exit $want)"
    [[ -n $out && -f $out ]] && tail -n 25 "$out" | sed 's/^/     | /'
    return 1
}
# submit OUTFILE SBATCH_ARGS...: prints the job id (empty when sbatch failed)
submit() {
    local out=$1; shift
    sbatch --parsable -o "$out" "$@" 2>>"$T/sbatch.err" | cut -d';' -f1
}
# check_count WHAT PATTERN FILE MIN MAX: the number of lines matching PATTERN (grep -E) is in [MIN, MAX]
check_count() {
    local n; n=$(grep -cE -- "$2" "$3" 2>/dev/null); n=${n:-0}
    if ((n >= $4 && n <= $5)); then tu_pass "$1"; else
        tu_fail "$1 (pattern '$2' seen $n times in $3, want $4..$5)"; [[ -f $3 ]] && tail -n 15 "$3" | sed 's/^/     | /'
    fi
}
# rank_pid JID RANK: the PID of that rank of the job's binary (srun: SLURM_PROCID, mpirun: OMPI_COMM_WORLD_RANK)
rank_pid() {
    local p env
    for p in /proc/[0-9]*; do
        [[ $(readlink "$p/exe" 2>/dev/null) == "$BIN" ]] || continue
        env=$(tr '\0' '\n' <"$p/environ" 2>/dev/null) || continue
        grep -qx "SLURM_JOB_ID=$1" <<<"$env" || continue
        grep -qxE "(SLURM_PROCID|OMPI_COMM_WORLD_RANK)=$2" <<<"$env" && { echo "${p#/proc/}"; return 0; }
    done
    return 1
}
# wait_file FILE JID SECONDS: waits until FILE exists; gives up early when job JID has ended
wait_file() {
    local d=$(($3 + SECONDS))
    while ((SECONDS < d)); do
        [[ -s $1 ]] && return 0
        case $(job_field "$2" JobState) in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) return 1 ;; esac
        sleep 0.2
    done
    return 1
}

# ---- without a cluster ----------------------------------------------------------------------------------------
mkdir -p "$T/work" "$T/runs"
cd "$T/work" || exit 1
echo "name: placeholder" >"$T/dummy.yaml"
check_fails "unlearn.sbatch refuses to run outside Slurm" "not inside a Slurm job" \
    env -u SLURM_JOB_ID bash "$TEMPLATE" forget "$T/dummy.yaml"
check_fails "sweep.sbatch refuses to run outside Slurm" "not inside a Slurm job" \
    env -u SLURM_JOB_ID bash "$SWEEP" forget "$T/dummy.yaml"

printf '# a sweep\nmethods: sfron ga rl   # three methods\nseeds: 0 1\n\nranks: 1 2\n' >"$T/s.sweep"
bash "$SWEEP" --list --sweep "$T/s.sweep" forget "$T/dummy.yaml" >"$T/list.txt" 2>&1
# i = (m * 2 + s) * 2 + r for methods (sfron ga rl) x seeds (0 1) x ranks (1 2)
if grep -q '^12 combinations' "$T/list.txt" && grep -qE '^ +0 +method=sfron +seed=0 +ranks=1 ' "$T/list.txt" &&
    grep -qE '^ +7 +method=ga +seed=1 +ranks=2 ' "$T/list.txt" && grep -qE '^ +10 +method=rl +seed=1 +ranks=1 ' "$T/list.txt" &&
    grep -q -- '--array=0-11%4' "$T/list.txt"; then
    tu_pass "sweep --list: 12 combinations, index = (method * 2 + seed) * 2 + ranks"
else
    tu_fail "sweep --list table"; sed 's/^/     | /' "$T/list.txt"
fi
printf 'seeds: 0 1\nmethod: ga\n' >"$T/bad.sweep"
check_fails "a sweep file with an unknown key is refused with its line" "bad.sweep:2: unknown key 'method'" \
    bash "$SWEEP" --list --sweep "$T/bad.sweep" forget "$T/dummy.yaml"

if [[ -x $RUNCTL_TEST ]]; then
    mkdir -p "$T/rc2" "$T/rc3"
    check "mpi_runctl with 2 ranks (mpirun)" $MPIRUN -np 2 "$RUNCTL_TEST" "$T/rc2"
    check "mpi_runctl with 3 ranks (mpirun)" $MPIRUN -np 3 "$RUNCTL_TEST" "$T/rc3"
else
    tu_fail "mpi_runctl: $RUNCTL_TEST is missing (make BUILD=$BUILD tests-build)"
fi

# ---- the cluster ------------------------------------------------------------------------------------------------
if ! "$REPO/scripts/slurm-local.sh" start >"$T/start.log" 2>&1; then
    tu_fail "scripts/slurm-local.sh start (port $SLURM_LOCAL_PORT)"
    sed 's/^/     | /' "$T/start.log"
    tail -n 20 "$SLURM_LOCAL_DIR"/log/*.log 2>/dev/null | sed 's/^/     | /'
    tu_finish sh_slurm
    exit
fi
tu_pass "scripts/slurm-local.sh start: 4 CPUs, port $SLURM_LOCAL_PORT"

if [[ -x $RUNCTL_TEST ]]; then
    mkdir -p "$T/rcs"
    j=$(submit "$T/rcs.out" -n 2 --wrap "srun --mpi=pmix -n 2 $RUNCTL_TEST $T/rcs")
    expect_job "mpi_runctl with 2 ranks under srun --mpi=pmix" "$j" 60 0 "$T/rcs.out" &&
        check_count "mpi_runctl under srun: one RESULT line, nothing failed" '^RESULT mpi_runctl passed=[1-9][0-9]* failed=0$' "$T/rcs.out" 1 1
fi

# Refusals inside Slurm (no binary needed): the default binary path is <submit dir>/build/unlearn.
j1=$(UNLEARN_BIN="" submit "$T/nobin.out" -n 1 "$TEMPLATE" forget "$T/dummy.yaml")
j2=$(submit "$T/badcmd.out" -n 1 "$TEMPLATE" unlearnify "$T/dummy.yaml")
j3=$(submit "$T/nojob.out" -n 1 "$TEMPLATE" forget "$T/missing.yaml")
expect_job "a missing binary is refused inside Slurm (exit 2)" "$j1" 60 2 "$T/nobin.out" &&
    check_count "... naming the default path and telling to run make on the login node" \
        "$T/work/build/unlearn is missing.*never compiles.*make" "$T/nobin.out" 1 1
expect_job "an unknown COMMAND is refused (exit 2)" "$j2" 60 2 "$T/badcmd.out" &&
    check_count "... with one message" "unknown COMMAND 'unlearnify'" "$T/badcmd.out" 1 1
expect_job "a missing job file is refused (exit 2)" "$j3" 60 2 "$T/nojob.out" &&
    check_count "... with one message naming it" "missing.yaml' is not a readable file" "$T/nojob.out" 1 1

# ---- with the job binary --------------------------------------------------------------------------------------
# Everything below runs build/unlearn (train, forget) through the templates.
$PY "$REPO/data_tools/synth.py" --out "$T/data.h5" --n-train 600 --n-test 100 --classes 5 --channels 1 --size 12 \
    --dtype uint8 --seed 3 >"$T/synth.log" 2>&1 || { tu_fail "synth.py"; cat "$T/synth.log"; }
cat >"$T/train.yaml" <<EOF
name: slurm-train
seed: 1
data:
  path: $T/data.h5
model:
  arch: mlp
  hidden: $HIDDEN
train:
  epochs: 1
  batch_size: 64
  lr: 0.05
EOF
forget_yaml() {  # forget_yaml FILE MODEL
    cat >"$1" <<EOF
name: slurm-forget
seed: 2
data:
  path: $T/data.h5
model:
  arch: mlp
  hidden: $HIDDEN
  checkpoint: $2
forget:
  classes: [4]
unlearn:
  method: sfron
  iters: 20
  batch_size: 64
  forget_batch_size: 32
  fisher_batches: 2
  lr: 0.01
EOF
}
forget_yaml "$T/forget.yaml" "$T/runs/train/model.h5"

j=$(submit "$T/train.out" -n 2 "$TEMPLATE" train "$T/train.yaml" --set "run_dir=$T/runs/train")
if ! expect_job "train through the template (-n 2, --set run_dir)" "$j" 120 0 "$T/train.out" ||
    [[ ! -s $T/runs/train/model.h5 ]]; then
    tu_fail "no trained model at $T/runs/train/model.h5: checks (a)-(e) need 'unlearn train' and 'unlearn forget'"
    tu_finish sh_slurm
    exit
fi

# (a) a short forget with 2 ranks x 2 threads, run directory from the template's default (runs/slurm-<job id>)
j=$(submit "$T/a.out" -n 2 -c 2 "$TEMPLATE" forget "$T/forget.yaml")
if expect_job "(a) forget -n 2 -c 2 completes" "$j" 120 0 "$T/a.out"; then
    rd=$T/work/runs/slurm-$j
    check "(a) report.json in the default run directory runs/slurm-$j reports 2 ranks" $PY - "$rd/report.json" <<'EOF'
import json, re, sys
r = json.load(open(sys.argv[1]))
assert isinstance(r, dict), "report.json is not a JSON object"
def ranks(o):   # every "ranks"/"nranks" number, and "ranks=N" in provenance strings
    if isinstance(o, dict):
        for k, v in o.items():
            if k in ("ranks", "nranks") and isinstance(v, int): yield v
            yield from ranks(v)
    elif isinstance(o, list):
        for v in o: yield from ranks(v)
    elif isinstance(o, str):
        yield from (int(n) for n in re.findall(r"\branks=(\d+)", o))
found = set(ranks(r))
assert found == {2}, f"ranks recorded in report.json: {sorted(found)} (want 2)"
EOF
    check_count "(a) the log in the run directory has the template's header: 2 ranks x 2 threads" \
        "job $j restart 0 .*: 2 ranks x 2 threads" "$rd/slurm-$j.log" 1 1
    check_count "(a) threads reach the binary as --set runtime.threads=2" "unlearn forget .*--set runtime.threads=2 " \
        "$rd/slurm-$j.log" 1 1
    check_count "(a) the binary's own output is in the run directory's log" '^[^u]|^u[^n]|^unlearn[^.]' \
        "$rd/slurm-$j.log" 1 100000
fi

# (b) preemption: uninterrupted reference runs and interrupted runs, 2 ranks each, a checkpoint every 10 steps
LONG=(--set "unlearn.iters=$ITERS" --set checkpoint.every=10)
FORGET_LONG=(forget "$T/forget.yaml" "${LONG[@]}")
TRAIN_LONG=(train "$T/train.yaml" --set "train.epochs=$TRAIN_EPOCHS" --set checkpoint.every=10)
# start_run NAME OUT LAUNCHER COMMAND JOB [--set ...]: submits a 2-rank run into runs/NAME; prints the job id
start_run() {
    local name=$1 out=$2 launcher=$3; shift 3
    UNLEARN_LAUNCHER=$launcher submit "$out" -n 2 "$TEMPLATE" "$@" --set "run_dir=$T/runs/$name"
}
# signal_mid_run NAME JID SCANCEL_OPTS...: signals the run as soon as its first checkpoint exists
signal_mid_run() {
    local name=$1 jid=$2; shift 2
    if wait_file "$T/runs/$name/checkpoint.h5" "$jid" 120; then scancel "$@" "$jid"; else
        echo "     (no checkpoint in $T/runs/$name: not signalled)" >>"$T/$name.out"; fi
}
ref=$(start_run ref "$T/ref.out" srun "${FORGET_LONG[@]}")
b1=$(start_run b1 "$T/b1.out" srun "${FORGET_LONG[@]}")
signal_mid_run b1 "$b1" --signal=USR1 --batch    # what --signal=B:USR1@120 does: the batch shell
b2=$(start_run b2 "$T/b2.out" srun "${FORGET_LONG[@]}")
signal_mid_run b2 "$b2" --signal=USR1            # what --signal=USR1@120 does: the ranks only
expect_job "(b) the uninterrupted forget reference run completes" "$ref" 300 0 "$T/ref.out"
b3=$(start_run b3 "$T/b3.out" mpirun "${FORGET_LONG[@]}")
signal_mid_run b3 "$b3" --signal=USR1 --full     # every process of the batch step, mpirun included
tref=$(start_run tref "$T/tref.out" srun "${TRAIN_LONG[@]}")
tb=$(start_run tb "$T/tb.out" srun "${TRAIN_LONG[@]}")
signal_mid_run tb "$tb" --signal=USR1 --batch
# check_preempted NAME JID OUT REF FILE MAXK: the run was requeued, resumed from iteration k (0 < k < MAXK when
# MAXK is given) where it had stopped, and its FILE equals the reference run's, bitwise
check_preempted() {
    local name=$1 jid=$2 out=$3 ref=$4 file=$5 maxk=$6 k
    expect_job "(b:$name) the preempted run completes after its requeue" "$jid" 300 0 "$out" || return
    if [[ $JOB_RESTARTS -ge 1 ]]; then tu_pass "(b:$name) the job was requeued ($JOB_RESTARTS restart)"; else
        tu_fail "(b:$name) the job was not requeued (Restarts=$JOB_RESTARTS): was it signalled too late? (SLURM_TEST_ITERS)"
        return
    fi
    check_count "(b:$name) the template requeued it once" "requeueing job $jid" "$out" 1 1
    k=$(sed -nE 's/^unlearn: resumed from iteration ([0-9]+) .*/\1/p' "$out" | head -n 1)
    if [[ -n $k ]] && ((k > 0 && k < ${maxk:-$((k + 1))})); then tu_pass "(b:$name) resumed from iteration $k"; else
        tu_fail "(b:$name) no 'unlearn: resumed from iteration k' with 0 < k${maxk:+ < $maxk} in the output"
        grep -E 'resum|stop' "$out" | sed 's/^/     | /'
    fi
    check_count "(b:$name) it stopped at that iteration after a complete checkpoint" \
        "^unlearn: stop requested \\((SIGUSR1|SIGTERM|another rank)\\) at iteration $k:" "$out" 1 1
    check "(b:$name) its $file is bitwise equal to the uninterrupted run's" \
        $PY - "$T/runs/$name/$file" "$T/runs/$ref/$file" <<'EOF'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
def datasets(f):
    out = {}
    f.visititems(lambda n, o: out.__setitem__(n, o) if isinstance(o, h5py.Dataset) else None)
    return out
da, db = datasets(a), datasets(b)
assert da.keys() == db.keys(), f"different datasets: only in one: {sorted(set(da) ^ set(db))[:5]}"
assert a.attrs["step"] == b.attrs["step"], f"step {a.attrs['step']} vs {b.attrs['step']}"
n = 0
for name in sorted(da):
    x, y = da[name][()], db[name][()]
    assert x.dtype == y.dtype and x.shape == y.shape, f"{name}: {x.dtype}{x.shape} vs {y.dtype}{y.shape}"
    xb, yb = np.ascontiguousarray(x).view(np.uint8), np.ascontiguousarray(y).view(np.uint8)
    if not np.array_equal(xb, yb):   # bitwise: resuming must not change a single bit
        fx, fy = x.reshape(-1).astype(np.float64), y.reshape(-1).astype(np.float64)
        i = int(np.argmax(fx.view(np.uint64) != fy.view(np.uint64))) if x.dtype.kind == "f" else -1
        d = np.abs(fx - fy)
        sys.exit(f"{name}: differs; max abs diff {d.max():.3e}, first differing index {i}: {fx[i]!r} vs {fy[i]!r}")
    n += x.size
print(f"{len(da)} datasets, {n} values, bitwise equal; step {a.attrs['step']}")
EOF
}
check_preempted b1 "$b1" "$T/b1.out" ref checkpoint.h5 "$ITERS"
check_preempted b2 "$b2" "$T/b2.out" ref checkpoint.h5 "$ITERS"
check_preempted b3 "$b3" "$T/b3.out" ref checkpoint.h5 "$ITERS"
expect_job "(b) the uninterrupted train reference run completes" "$tref" 300 0 "$T/tref.out" &&
    check_preempted tb "$tb" "$T/tb.out" tref model.h5 ""

# (c) SIGKILL to rank 1 while it runs: the job must end nonzero within 60 s and name the rank
kill_rank() {  # kill_rank LAUNCHER OUT PATTERN
    local launcher=$1 out=$2 pattern=$3 jid pid t0
    jid=$(UNLEARN_LAUNCHER=$launcher submit "$out" -n 2 "$TEMPLATE" forget "$T/forget.yaml" \
        --set "run_dir=$T/runs/c-$launcher" "${LONG[@]}")
    if ! wait_file "$T/runs/c-$launcher/checkpoint.h5" "$jid" 120 || ! pid=$(rank_pid "$jid" 1); then
        tu_fail "(c:$launcher) rank 1 of job $jid not found running"; tail -n 5 "$out" | sed 's/^/     | /'
        scancel "$jid"; return
    fi
    kill -9 "$pid"
    t0=$SECONDS
    wait_job "$jid" 90
    if [[ $JOB_RC != 0 && $JOB_RC != -1 ]] && ((SECONDS - t0 <= 60)); then
        tu_pass "(c:$launcher) rank 1 killed: the job ended in $((SECONDS - t0)) s with exit $JOB_RC ($JOB_STATE)"
    else
        tu_fail "(c:$launcher) rank 1 killed: job $jid $JOB_STATE exit $JOB_RC after $((SECONDS - t0)) s (want nonzero within 60 s)"
        tail -n 15 "$out" | sed 's/^/     | /'
    fi
    check_count "(c:$launcher) the output names the killed rank" "$pattern" "$out" 1 5
    if [[ $JOB_RESTARTS == 0 ]]; then tu_pass "(c:$launcher) not requeued"; else tu_fail "(c:$launcher) requeued ($JOB_RESTARTS)"; fi
}
kill_rank srun "$T/c-srun.out" 'task 1: Killed'
kill_rank mpirun "$T/c-mpirun.out" 'rank 1 .*signal 9'

# (d) a job array of two runs (seeds 0 and 1), at most one at a time
arr=$(UNLEARN_SWEEP_SEEDS="0 1" UNLEARN_SWEEP_DIR=$T/runs/sweep submit "$T/d-%a.out" --array=0-1%1 -n 2 \
    "$SWEEP" forget "$T/forget.yaml")
if [[ $(job_field "$arr" ArrayTaskThrottle) == 1 ]]; then tu_pass "(d) the array is throttled to 1 task (%1)"; else
    tu_fail "(d) ArrayTaskThrottle=$(job_field "$arr" ArrayTaskThrottle), want 1"; fi
for t in 0 1; do
    expect_job "(d) array task $t completes" "${arr}_$t" 240 0 "$T/d-$t.out" &&
        check "(d) array task $t: report.json in runs/sweep/seed$t" $PY -c \
            'import json,sys; assert isinstance(json.load(open(sys.argv[1])), dict)' "$T/runs/sweep/seed$t/report.json" &&
        check_count "(d) array task $t ran seed $t" "unlearn forget .*--set seed=$t( |$)" "$T/d-$t.out" 1 1
done

# (e) a non-finite loss: the trained model with one weight set to +Inf (checksum recomputed as ckpt.h documents)
cp "$T/runs/train/model.h5" "$T/inf-model.h5"
$PY - "$T/inf-model.h5" <<'EOF' || tu_fail "(e) could not write a model with an Inf weight"
import hashlib, sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    names = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    first = sorted(n for n in names if n.startswith("params/"))[0]
    d = f[first]; a = d[()]; a.reshape(-1)[0] = np.inf; d[...] = a
    if "checksum" in f.attrs:
        h = hashlib.sha256()
        for n in sorted(n for n in names if n.split("/")[0] in ("params", "buffers", "state")):
            x = f[n][()]
            h.update(n.encode() + b"\0"); h.update(np.array([x.ndim, *x.shape], "<i8").tobytes())
            h.update(np.ascontiguousarray(x, "<f4").tobytes())
        f.attrs["checksum"] = np.bytes_(h.hexdigest())
EOF
forget_yaml "$T/forget-inf.yaml" "$T/inf-model.h5"
j=$(submit "$T/e.out" -n 2 "$TEMPLATE" forget "$T/forget-inf.yaml" --set "run_dir=$T/runs/e")
if expect_job "(e) a NaN/Inf loss ends the job with exit 4" "$j" 120 4 "$T/e.out"; then
    check_count "(e) one message about the non-finite loss" "unlearn: error: non-finite .* loss at iteration" "$T/e.out" 1 1
    check "(e) nonfinite.json names the iteration and the loss" $PY -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["format"] == "unlearn-nonfinite" and r["format_version"] == 1 and r["ranks"] == 2, r
assert isinstance(r["iteration"], int) and r["iteration"] >= 0 and r["loss"], r' "$T/runs/e/nonfinite.json"
    if [[ $JOB_RESTARTS == 0 ]]; then tu_pass "(e) not requeued"; else tu_fail "(e) requeued ($JOB_RESTARTS)"; fi
fi

# (f) scancel while it runs: the ranks get SIGTERM, the job ends CANCELLED and is NOT requeued
j=$(submit "$T/f.out" -n 2 "$TEMPLATE" forget "$T/forget.yaml" --set "run_dir=$T/runs/f" "${LONG[@]}")
if wait_file "$T/runs/f/checkpoint.h5" "$j" 120; then
    scancel "$j"
    wait_job "$j" 90
    if [[ $JOB_STATE == CANCELLED && $JOB_RESTARTS == 0 ]]; then tu_pass "(f) scancel: CANCELLED, not requeued"; else
        tu_fail "(f) scancel: job $j $JOB_STATE, Restarts=$JOB_RESTARTS (want CANCELLED, 0)"; tail -n 15 "$T/f.out" | sed 's/^/     | /'
    fi
    check_count "(f) the template says it does not requeue" "SIGTERM.*not requeueing" "$T/f.out" 1 1
else
    tu_fail "(f) job $j wrote no checkpoint"; tail -n 5 "$T/f.out" | sed 's/^/     | /'; scancel "$j"
fi

tu_finish sh_slurm
