#!/usr/bin/env bash
# scripts/quality.sh - the unlearning-quality experiments of issue 4; their tables go to docs/benchmarks.md
# ("Unlearning quality (issue 4)"), which records the numbers of one run of this script.
#
#   BUILD=build scripts/quality.sh [class|random|all]      (default all; about 1 hour on the 2-core machine)
#
# class   Fashion-MNIST, forget class 9 from an fmnist-cnn trained with the issue's reference recipe (3 epochs;
#         jobs/quality/class-{train,retrain,eval}.yaml -> runs/quality/class/{train,retrain,eval}, cached):
#           - the original's test accuracy (target >= 91%);
#           - SFR-on (jobs/demo/sfron.yaml on this original) over the settings of QUALITY_CLASS_GRID (alpha0 x
#             iterations, and a few other knobs): the fewest iterations with FA <= 1% and the test accuracy on the
#             9 remaining classes within 1 point of RT's, at a cost <= RT's / 20;
#           - every baseline (ft, ga, rl, salun, l1, scrub, bt) at the settings of jobs/fmnist-forget-<m>.yaml.
# random  forget a random 10% from an original that memorises its training set: data/fashion-mnist-10k.h5 (the
#         first 10000 train samples and the whole test set, written here), jobs/quality/random-{train,retrain,eval}.yaml:
#           - the original's train accuracy (>= 99%);
#           - SFR-on (jobs/quality/random-sfron.yaml) over the settings of QUALITY_RANDOM_GRID: Avg.Gap to RT at most
#             1/3 of the original's at a cost <= RT's / 10;
#           - every baseline, with jobs/fmnist-forget-<m>.yaml's settings and iterations scaled to this set's size.
# "cost" is the seconds that produced a model: wall_seconds - eval_seconds of its run (training, or the mask passes
# plus the unlearning loop), from report.json; data_tools/summarize_runs.py prints the tables.
# Outputs: runs/quality/{class,random}/<run>/, runs/quality/{class,random}.{txt,md,json}, targets-{class,random}.txt.
# Everything runs on 2 ranks x 1 thread, one run at a time. Exit status nonzero when a run fails (not when a target
# is missed: targets-*.txt say which were met).
set -Eeuo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
UL=$BUILD/unlearn
PART=${1:-all}
PY=/usr/bin/python3
Q=runs/quality
# The SFR-on settings searched: ALPHA0:ITERS[:KEY=VALUE...] on top of the job file (keys without "unlearn.", except
# seed=N: the job's top-level seed, which draws other forget and retain batches; the target setting of each part
# also runs at seeds 1 and 2, and targets-*.txt give its mean and worst case over the seeds).
# Class forgetting: jobs/demo/sfron.yaml (K = 5, gamma 1, 2 Fisher batches per set) at alpha0 5 and 10 over 20..50
# iterations, alpha0 2 and the reference's 25, and the stricter mask gamma 3. (A wider grid on the 3-epoch original
# is in docs/benchmarks.md; each run here costs ~15 s of unlearning and ~60 s of evaluation against RT.)
CLASS_GRID=${QUALITY_CLASS_GRID-5:20 5:30 5:40 5:50 10:20 10:30 10:40 2:50 25:20 5:50:gamma=3 5:50:seed=1 5:50:seed=2}
# Random forgetting: jobs/quality/random-sfron.yaml (K = 5, 2 Fisher batches, loss floor 1e-4) over alpha0 at 100
# iterations, K = 1 and 2 variants, and the reference semantics without the loss floor; alpha0 275 at 3 seeds (of
# 200-275 at 3 seeds each, 275 is the one whose mean Avg.Gap over the seeds meets the target: docs/benchmarks.md).
RANDOM_GRID=${QUALITY_RANDOM_GRID-5:100 25:100 100:100 200:100 225:100 250:100 275:100 300:100 100:60:forget_freq=1
100:90:forget_freq=2 200:100:loss_floor=0 275:100:seed=1 275:100:seed=2}
BASELINES=${QUALITY_BASELINES-ft ga rl salun l1 scrub bt}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
MPIRUN=(mpirun --oversubscribe -np 2 -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM
        -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS)
SET=(--set runtime.threads=1)
case "$PART" in class|random|all) ;; *) echo "usage: scripts/quality.sh [class|random|all]" >&2; exit 2 ;; esac
[ -x "$UL" ] || { echo "quality: $UL is not built (make BUILD=$BUILD)" >&2; exit 1; }

T0=$SECONDS
trap 'echo "quality: FAILED (exit $?) after $((SECONDS - T0)) s; logs in $Q/logs/" >&2' ERR
mkdir -p "$Q/logs" data
say() { printf '[quality %5ds] %s\n' $((SECONDS - T0)) "$*"; }

# run NAME CMD...: one run, its output in $Q/logs/NAME.log; fails the script when the run fails.
run() {
    local name=$1 log=$Q/logs/$1.log rc=0; shift
    say "$name: $*"
    "$@" </dev/null >"$log" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then echo "quality: $name exited $rc; the end of $log:" >&2; tail -20 "$log" >&2; return "$rc"; fi
}
job_hash() { "$UL" check "$@" | sed -n 's/.*resolved job sha256 \([0-9a-f]*\).*/\1/p' | head -1; }
ckpt_hash() { [ -f "$1" ] && "$UL" info "$1" 2>/dev/null | sed -n 's/^ *config hash *\([0-9a-f]*\).*/\1/p' | head -1 || true; }
# train_cached RUN_DIR JOB: trains (2 ranks) unless RUN_DIR/model.h5 was written by the same resolved job.
train_cached() {
    local dir=$1 job=$2 want have
    want=$(job_hash "$job" "${SET[@]}")
    have=$(ckpt_hash "$dir/model.h5")
    if [ -n "$have" ] && [ "${have:0:16}" = "$want" ] && [ -f "$dir/report.json" ]; then
        say "cached: $dir/model.h5 ($job, config hash $want)"
    else
        run "$(echo "$dir" | tr / _)" "${MPIRUN[@]}" "$UL" train "$job" "${SET[@]}"
    fi
}
# eval_cached RUN_DIR JOB MODEL RT: `unlearn eval` unless RUN_DIR/report.json is of the same job and model files.
eval_cached() {
    local dir=$1 job=$2 key
    key="$(job_hash "$job" "${SET[@]}") $(sha256sum "$3" "$4" | cut -c1-64 | tr '\n' ' ')"
    if [ -f "$dir/report.json" ] && [ "$(cat "$dir/quality-cache.key" 2>/dev/null)" = "$key" ]; then
        say "cached: $dir/report.json"
    else
        rm -f "$dir/quality-cache.key"
        run "$(echo "$dir" | tr / _)" "${MPIRUN[@]}" "$UL" eval "$job" "${SET[@]}"
        echo "$key" >"$dir/quality-cache.key"
    fi
}
# forget NAME JOB [--set ...]: an unlearning run into $Q/NAME (never resumed from an older checkpoint).
forget() {
    local name=$1 job=$2; shift 2
    run "$(echo "$name" | tr / _)" "${MPIRUN[@]}" "$UL" forget "$job" "${SET[@]}" --set "run_dir=$Q/$name" \
        --set "name=q-$(echo "$name" | tr / -)" --set checkpoint.resume=never "$@"
}
# grid_run PART JOB ALPHA0:ITERS[:KEY=VALUE...] [--set ...]: one SFR-on run of the grid into $Q/PART/sfron-<spec>,
# added to the table's entries as "SFR-on a<alpha0> it<iters> [key value ...]".
grid_run() {
    local part=$1 job=$2 spec=$3 a it rest tag label kv
    local -a sets
    shift 3
    IFS=: read -r a it rest <<<"$spec"
    sets=(--set "unlearn.alpha=$a" --set "unlearn.iters=$it")
    tag="a$a-it$it" label="SFR-on a$a it$it"
    if [ -n "$rest" ]; then
        for kv in ${rest//:/ }; do
            if [ "${kv%%=*}" = seed ]; then sets+=(--set "$kv"); else sets+=(--set "unlearn.$kv"); fi
            tag="$tag-${kv//=/}" label="$label ${kv/=/ }"
        done
    fi
    forget "$part/sfron-$tag" "$job" "${sets[@]}" "$@"
    entries+=("$label=$Q/$part/sfron-$tag")
}
# references PART: the original and RT of a part (jobs/quality/PART-{train,retrain}.yaml, cached), `unlearn eval`
# of the one against the other (PART-eval.yaml), and the table's first two entries from them.
references() {
    local d=$Q/$1
    train_cached "$d/train" "jobs/quality/$1-train.yaml"
    train_cached "$d/retrain" "jobs/quality/$1-retrain.yaml"
    eval_cached "$d/eval" "jobs/quality/$1-eval.yaml" "$d/train/model.h5" "$d/retrain/model.h5"
    entries=(Original="$d/eval+$d/train" RT="$d/eval#rt+$d/retrain")
}
# targets KIND TABLE_JSON: prints (and writes to targets-KIND.txt) which targets the runs of a part met.
targets() {
    "$PY" - "$1" "$2" <<'EOF' | tee "$Q/targets-$1.txt"
import json, sys
kind, rows = sys.argv[1], {r["label"]: r for r in json.load(open(sys.argv[2]))}
rt, orig = rows["RT"], rows["Original"]
ok = lambda b: "MET" if b else "MISSED"
sf = sorted((r for r in rows.values() if r["label"].startswith("SFR-on")), key=lambda r: r["iterations"])
if kind == "class":
    print(f"class forgetting (Fashion-MNIST class 9):")
    print(f"  original test accuracy {orig['test_acc']:.2f}% (target >= 91%): {ok(orig['test_acc'] >= 91)}")
    best = None
    for r in sf:
        dta = r["test_acc_remaining"] - rt["test_acc_remaining"]
        good = r["forget_acc"] <= 1 and abs(dta) <= 1
        fast = r["cost_seconds"] * 20 <= rt["cost_seconds"]
        print(f"  {r['label']:<18} FA {r['forget_acc']:6.2f}  TA-rem {r['test_acc_remaining']:6.2f} ({dta:+.2f} vs RT)"
              f"  cost {r['cost_seconds']:6.1f}s = RT/{rt['cost_seconds'] / r['cost_seconds']:.1f}"
              f"  forgets+keeps: {'yes' if good else 'no '}  <= RT/20: {'yes' if fast else 'no'}")
        if good and fast and (best is None or r["iterations"] < best["iterations"]):
            best = r
    print(f"  fewest SFR-on iterations with FA <= 1%, |TA-rem - RT's| <= 1 and cost <= RT/20: "
          f"{best['label'] + ' (' + str(best['iterations']) + ' iterations; target <= 50): ' + ok(best['iterations'] <= 50) if best else 'none: MISSED'}")
else:
    print(f"random forgetting (10% of a 10000-sample Fashion-MNIST set, memorising original):")
    print(f"  original train accuracy {orig['train_acc']:.2f}% (want >= 99%): {ok(orig['train_acc'] >= 99)}")
    print(f"  original Avg.Gap {orig['avg_gap']:.2f}; target: SFR-on <= {orig['avg_gap'] / 3:.2f} at cost <= RT/10 "
          f"({rt['cost_seconds'] / 10:.1f}s)")
    best = None
    for r in sf:
        good, fast = r["avg_gap"] <= orig["avg_gap"] / 3, r["cost_seconds"] * 10 <= rt["cost_seconds"]
        print(f"  {r['label']:<18} Avg.Gap {r['avg_gap']:6.2f}  cost {r['cost_seconds']:6.1f}s = "
              f"RT/{rt['cost_seconds'] / r['cost_seconds']:.1f}  gap target: {'yes' if good else 'no '}  "
              f"<= RT/10: {'yes' if fast else 'no'}")
        if good and fast and (best is None or r["avg_gap"] < best["avg_gap"]):
            best = r
    print(f"  SFR-on meeting both: {best['label'] + ' (Avg.Gap ' + format(best['avg_gap'], '.2f') + '): MET' if best else 'none: MISSED'}")
# Settings run at several seeds ("... seed N" rows next to the seed-0 row): mean and worst case of what the target
# judges, and at how many seeds the whole target holds.
groups = {}
for r in sf:
    base = r["label"].split(" seed ")[0]
    groups.setdefault(base, []).append(r)
for base, rs in groups.items():
    if len(rs) < 2:
        continue
    mean = lambda k: sum(r[k] for r in rs) / len(rs)
    ratio = [rt["cost_seconds"] / r["cost_seconds"] for r in rs]
    if kind == "class":
        dta = [r["test_acc_remaining"] - rt["test_acc_remaining"] for r in rs]
        held = sum(r["forget_acc"] <= 1 and abs(d) <= 1 and q >= 20 for r, d, q in zip(rs, dta, ratio))
        fa_max = max(r["forget_acc"] for r in rs)
        print(f"  {base} over {len(rs)} seeds: FA mean {mean('forget_acc'):.2f} (max {fa_max:.2f}),"
              f" TA-rem vs RT mean {sum(dta) / len(dta):+.2f} (worst {max(dta, key=abs):+.2f}),"
              f" cost RT/{min(ratio):.1f}-RT/{max(ratio):.1f}; the whole target held at {held} of {len(rs)} seeds")
    else:
        held = sum(r["avg_gap"] <= orig["avg_gap"] / 3 and q >= 10 for r, q in zip(rs, ratio))
        worst = max(r["avg_gap"] for r in rs)
        print(f"  {base} over {len(rs)} seeds: Avg.Gap mean {mean('avg_gap'):.2f} (worst {worst:.2f};"
              f" target {orig['avg_gap'] / 3:.2f}), cost RT/{min(ratio):.1f}-RT/{max(ratio):.1f}; the whole target held"
              f" at {held} of {len(rs)} seeds")
EOF
}
# table PART ENTRY...: the part's table as text, Markdown and JSON.
table() {
    local part=$1; shift
    "$PY" data_tools/summarize_runs.py --rt RT --cost-ref RT --json "$Q/$part.json" "$@" | tee "$Q/$part.txt"
    "$PY" data_tools/summarize_runs.py --rt RT --cost-ref RT --markdown "$@" >"$Q/$part.md"
}

if [ "$PART" = class ] || [ "$PART" = all ]; then
    say "=== class forgetting: Fashion-MNIST class 9"
    if ! "$UL" info data/fashion-mnist.h5 >/dev/null 2>&1; then
        run convert "$PY" data_tools/convert_idx.py --out data/fashion-mnist.h5
    fi
    C=$Q/class
    references class
    for spec in $CLASS_GRID; do
        grid_run class jobs/demo/sfron.yaml "$spec" --set model.checkpoint=$C/train/model.h5 \
            --set eval.rt_checkpoint=$C/retrain/model.h5
    done
    for m in $BASELINES; do
        forget "class/$m" "jobs/fmnist-forget-$m.yaml" --set model.checkpoint=$C/train/model.h5 \
            --set eval.rt_checkpoint=$C/retrain/model.h5
        entries+=("$m=$C/$m")
    done
    table class "${entries[@]}"
    targets class "$Q/class.json"
fi

if [ "$PART" = random ] || [ "$PART" = all ]; then
    say "=== random forgetting: 10% of the first 10000 Fashion-MNIST train samples"
    D10=data/fashion-mnist-10k.h5
    if ! "$UL" info "$D10" 2>/dev/null | grep -Eq '^ *train +10000 '; then
        "$UL" info data/fashion-mnist.h5 >/dev/null 2>&1 || run convert "$PY" data_tools/convert_idx.py --out data/fashion-mnist.h5
        run subset10k "$PY" - data/fashion-mnist.h5 "$D10" <<'EOF'
# The first 10000 train samples (what train.subset 10000 trains on) and the whole test set, with the full train
# set's mean/std (the normalisation train.subset would use), as an unlearn-dataset file.
import os, sys
import h5py, numpy as np
sys.path.insert(0, "data_tools")
from common_h5 import DatasetWriter
src, out, n = sys.argv[1], sys.argv[2], 10000
with h5py.File(src, "r") as f:
    x, y = f["train/images"][:n], f["train/labels"][:n]
    tx, ty = f["test/images"][...], f["test/labels"][...]
    k, names = int(f.attrs["num_classes"]), [s.decode() if isinstance(s, bytes) else s for s in f.attrs["class_names"]]
    mean, std = f.attrs["mean"], f.attrs["std"]
with DatasetWriter(out, {"train": x.shape, "test": tx.shape}, np.uint8, k) as w:
    w.write("train", 0, x, y)
    w.write("test", 0, tx, ty)
    w.finish(class_names=names, source=f"the first {n} train samples and the test set of {os.path.abspath(src)}")
with h5py.File(out, "r+") as f:
    f.attrs["mean"], f.attrs["std"] = mean, std
print("class counts of the train part:", np.bincount(y, minlength=k).tolist())
EOF
        "$UL" info "$D10" >/dev/null
    fi
    R=$Q/random
    references random
    for spec in $RANDOM_GRID; do
        grid_run random jobs/quality/random-sfron.yaml "$spec"
    done
    # The baselines' iterations for this set's 1000 forget / 9000 retain samples (batch 128, full batches): one
    # pass over the retain set (70) or the whole train set (78, joint batches), GA's 9 passes over the forget set
    # (9 x 7 = 63), SCRUB's 2 retain passes (140) with a max step every 10 iterations (7 forget batches per 70).
    declare -A ITERS=([ft]=70 [ga]=63 [rl]=78 [salun]=78 [l1]=70 [scrub]=140 [bt]=78)
    for m in $BASELINES; do
        extra=()
        [ "$m" = scrub ] && extra=(--set unlearn.forget_freq=10)
        forget "random/$m" "jobs/fmnist-forget-$m.yaml" --set data.path=$D10 --set forget.fraction=0.1 \
            --set forget.seed=1 --set model.checkpoint=$R/train/model.h5 --set eval.rt_checkpoint=$R/retrain/model.h5 \
            --set "unlearn.iters=${ITERS[$m]}" "${extra[@]}"
        entries+=("$m=$R/$m")
    done
    table random "${entries[@]}"
    targets random "$Q/random.json"
fi
say "done in $((SECONDS - T0)) s: tables in $Q/{class,random}.{txt,md,json}, targets in $Q/targets-{class,random}.txt"
