#!/usr/bin/env bash
# scripts/demo.sh - the end-to-end demo behind `make demo`: Fashion-MNIST class 9 ("Ankle boot") forgotten by
# SFR-on, GA and SalUn on 2 MPI ranks, compared with the original model and RT (retrained without the class).
#
#   make demo                       # installs missing packages, builds, then runs this script
#   BUILD=build scripts/demo.sh     # the same, with unlearn already built in $BUILD
#
# Steps (the job files are in jobs/demo/; every output under runs/demo/):
#   1. data/fashion-mnist.h5 from Debian's dataset-fashion-mnist (skipped when present and valid)
#   2. the original fmnist-cnn: 2 epochs SGD lr 0.025 momentum 0.9 wd 5e-4 batch 128 cosine -> runs/demo/train/
#   3. RT: the same recipe on the retain set (class 9 left out)                               -> runs/demo/retrain/
#      Both jobs name the class-9 split, so their final evaluation gives the table's Original and RT rows (FA, RA,
#      TA, MIA). 2 and 3 are cached: skipped when model.h5 exists, is valid and was written by the same resolved
#      job (its config hash); an interrupted training resumes from its last epoch checkpoint.
#   4. SFR-on forgets class 9 (always rerun)                                                  -> runs/demo/sfron/
#   5. the baselines GA and SalUn forget class 9                                              -> runs/demo/{ga,salun}/
#      cached: rerun unless runs/demo/<m>/ was made by the same resolved job, the same unlearn binary and the same
#      original model (DEMO_RERUN=all reruns them anyway)
#   6. the table (data_tools/summarize_runs.py; Avg.Gap against RT's metrics of step 3)      -> runs/demo/summary.*
# Environment: BUILD (default build), DEMO_NP (ranks, default 2), DEMO_THREADS (BLAS threads per rank, default 1),
# DEMO_FORCE=1 (ignore every cache), DEMO_RERUN=all (rerun the baselines even when cached).
# Exit status: 0 when every step succeeded, else the failing step's status.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
UL=$BUILD/unlearn
NP=${DEMO_NP:-2}
THREADS=${DEMO_THREADS:-1}
FORCE=${DEMO_FORCE:-0}
RERUN=${DEMO_RERUN:-}
CACHED=""
PY=/usr/bin/python3
OUT=runs/demo
DATA=data/fashion-mnist.h5
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
MPIRUN=(mpirun --oversubscribe -np "$NP" -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM
        -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS)
SET=(--set "runtime.threads=$THREADS")

T0=$SECONDS
STEP="start"
step() { STEP=$1; printf '\n=== [demo %3ds] %s\n' $((SECONDS - T0)) "$1"; }
fail() { printf '\ndemo: FAILED at step "%s" (exit %s); logs are in %s/logs/\n' "$STEP" "$1" "$OUT" >&2; exit "$1"; }
trap 'fail $?' ERR
note() { printf '    %s\n' "$*"; }

[ -x "$UL" ] || { echo "demo: $UL is not built (run 'make demo', or 'make BUILD=$BUILD' first)" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "demo: mpirun not found (scripts/install-deps.sh installs openmpi-bin)" >&2; exit 1; }
mkdir -p "$OUT/logs"
: >"$OUT/logs/timings.txt"

# run LOG CMD...: runs CMD with its output shown and kept in $OUT/logs/LOG.log; fails the demo when CMD fails.
run() {
    local log=$OUT/logs/$1.log t=$SECONDS rc=0; shift
    echo "    \$ $*" | tee "$log"
    "$@" </dev/null 2>&1 | tee -a "$log" || rc=$?   # pipefail: the command's status (tee does not fail)
    printf '%-10s %5ds\n' "$(basename "$log" .log)" $((SECONDS - t)) >>"$OUT/logs/timings.txt"
    if [ "$rc" -ne 0 ]; then echo "demo: '$*' exited $rc (log: $log)" >&2; return "$rc"; fi
}

# The 16-hex prefix of the resolved job's SHA-256 as `unlearn check` prints it.
job_hash() { "$UL" check "$@" | sed -n 's/.*resolved job sha256 \([0-9a-f]*\).*/\1/p' | head -1; }
# The config hash a checkpoint was written with (empty when the file is missing or not a valid checkpoint).
ckpt_hash() { [ -f "$1" ] && "$UL" info "$1" 2>/dev/null | sed -n 's/^ *config hash *\([0-9a-f]*\).*/\1/p' | head -1 || true; }
# The checkpoint's content checksum (empty when missing or invalid).
ckpt_sum() { [ -f "$1" ] && "$UL" info "$1" 2>/dev/null | sed -n 's/.*checksum sha256 \([0-9a-f]*\).*verified.*/\1/p' || true; }

# ---- 1. data -----------------------------------------------------------------------------------------------
step "1/6 data: $DATA"
if [ "$FORCE" != 1 ] && "$UL" info "$DATA" >"$OUT/logs/data-info.log" 2>&1 &&
   grep -Eq '^ *train +60000 ' "$OUT/logs/data-info.log" && grep -Eq '^ *test +10000 ' "$OUT/logs/data-info.log"; then
    note "present and valid (60000 train + 10000 test); skipped"
else
    mkdir -p data
    run convert "$PY" data_tools/convert_idx.py --out "$DATA"
    run data-info "$UL" info "$DATA"
fi

# ---- 2, 3. the original model and RT (cached) --------------------------------------------------------------
train_cached() {  # NAME JOB: trains unless RUN/model.h5 was written by the same resolved job
    local name=$1 job=$2 model want have
    model=$OUT/$name/model.h5
    want=$(job_hash "$job" "${SET[@]}")
    [ -n "$want" ] || { echo "demo: $job does not validate" >&2; "$UL" check "$job" "${SET[@]}"; return 2; }
    have=$(ckpt_hash "$model")
    if [ "$FORCE" = 1 ]; then
        note "DEMO_FORCE=1: removing $OUT/$name/ and training from scratch"
        rm -rf "${OUT:?}/$name"
    elif [ -n "$have" ] && [ "${have:0:16}" = "$want" ] && [ -f "$OUT/$name/report.json" ]; then
        note "cached: $model (config hash $want matches); skipped"
        return 0
    elif [ -n "$have" ]; then
        note "$model was written by another job configuration ($have); training again"
    fi
    run "$name" "${MPIRUN[@]}" "$UL" train "$job" "${SET[@]}"
}
step "2/6 train the original fmnist-cnn (2 epochs, $NP ranks)"
train_cached train jobs/demo/train.yaml
step "3/6 retrain RT without class 9 (same recipe, $NP ranks)"
train_cached retrain jobs/demo/retrain.yaml

# ---- 4, 5. forget -------------------------------------------------------------------------------------------
# forget_run M: `unlearn forget jobs/demo/M.yaml` into $OUT/M/, whose demo-cache.key records what made it.
forget_run() {
    local m=$1 key
    key="$(job_hash "jobs/demo/$m.yaml" "${SET[@]}") $(sha256sum "$UL" | cut -c1-16) $(ckpt_sum "$OUT/train/model.h5")"
    if [ "${2:-}" = cached ] && [ "$FORCE" != 1 ] && [ "$RERUN" != all ] && [ -f "$OUT/$m/report.json" ] &&
       [ -f "$OUT/$m/demo-cache.key" ] && [ "$(cat "$OUT/$m/demo-cache.key")" = "$key" ]; then
        note "cached: $OUT/$m/ (same job, same unlearn binary, same original model); skipped (DEMO_RERUN=all reruns it)"
        CACHED="$CACHED $m"
        return 0
    fi
    rm -f "$OUT/$m/demo-cache.key"
    note "--- $m (jobs/demo/$m.yaml)"
    run "$m" "${MPIRUN[@]}" "$UL" forget "jobs/demo/$m.yaml" "${SET[@]}"
    echo "$key" >"$OUT/$m/demo-cache.key"
}
step "4/6 SFR-on forgets class 9 ($NP ranks x $THREADS thread)"
forget_run sfron
step "5/6 the baselines GA and SalUn forget class 9 ($NP ranks x $THREADS thread)"
forget_run ga cached
forget_run salun cached

# ---- 6. the table -------------------------------------------------------------------------------------------
step "6/6 summary"
ENTRIES=(Original="$OUT/train" RT="$OUT/retrain"
         SFR-on="$OUT/sfron" GA="$OUT/ga" SalUn="$OUT/salun")
"$PY" data_tools/summarize_runs.py --rt RT --cost-ref RT --markdown --json "$OUT/summary.json" "${ENTRIES[@]}" \
    >"$OUT/summary.md"
"$PY" data_tools/summarize_runs.py --rt RT --cost-ref RT "${ENTRIES[@]}" | tee "$OUT/summary.txt"
cat <<EOF

FA/RA/TA: accuracy (%) on the forgotten class-9 train samples / the retain set / the test set; TA-rem: test accuracy
on the 9 remaining classes; MIA (MIA-rem): entropy membership attack on the forget set, non-members = the whole test
set (its 9 remaining classes), %; Avg.Gap: mean |FA, RA, TA, MIA - RT's| (lower is better); batches: forward+backward
batch passes that made the model; cost s: seconds that produced the model (training, or mask passes + unlearning
loop; without the final evaluation); wall s: the whole command; x RT: RT's cost / the row's. KL(RT || model) needs
an evaluation against RT: scripts/quality.sh gives it (docs/benchmarks.md).${CACHED:+
Reused from an earlier run (same job, binary and model):$CACHED; DEMO_RERUN=all reruns them.}

demo: done in $((SECONDS - T0)) s. Outputs in $OUT/:
  summary.txt, summary.md, summary.json   the table above
  train/, retrain/                        the original model and RT (model.h5, report.json, metrics.jsonl)
  sfron/, ga/, salun/                     the unlearned models (model.h5, report.json, metrics.jsonl)
  logs/                                   each step's output; logs/timings.txt: seconds per step
Curves of a run: $PY data_tools/plot_run.py $OUT/sfron
EOF
