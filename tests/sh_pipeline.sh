#!/usr/bin/env bash
# tests/sh_pipeline.sh - the whole pipeline of `make demo`, small, on 2 MPI ranks (what CI runs): a synthetic
# dataset (data_tools/synth.py: 5 classes of 1x10x10 images), train the original fmnist-cnn, retrain RT without
# class 2, evaluate the original against RT (`unlearn eval`), forget class 2 with SFR-on (a few iterations, Fisher
# mask from a subset of batches) evaluated against RT, and data_tools/summarize_runs.py's table of all of them.
# Checks: every step exits 0; every report.json has the metrics the table needs; the original remembers the class
# and RT does not; SFR-on's forget accuracy dropped; the table prints one row per run with the values of the
# reports; summarize_runs.py rejects a missing report.
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
T=$TU_TMP
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
NP2="$MPIRUN -np 2"
UL=$UNLEARN
R=$T/runs

check "synthetic dataset (5 classes, 1x10x10, 500 train + 150 test)" \
    $PY data_tools/synth.py --out "$T/s.h5" --n-train 500 --n-test 150 --classes 5 --channels 1 --size 10 --seed 4

common="data: {path: $T/s.h5}
runtime: {threads: 1, progress: false}"
cat >"$T/train.yaml" <<EOF
name: p-train
run_dir: $R/train
$common
model: {arch: fmnist-cnn}
forget: {classes: [2]}
train: {epochs: 3, batch_size: 50, optimizer: sgd, lr: 0.05, momentum: 0.9, weight_decay: 5e-4, schedule: cosine}
EOF
cat >"$T/eval.yaml" <<EOF
name: p-eval
run_dir: $R/eval
$common
model: {arch: fmnist-cnn, checkpoint: $R/train/model.h5}
forget: {classes: [2]}
eval: {rt_checkpoint: $R/retrain/model.h5}
EOF
# SFR-on as in jobs/demo/sfron.yaml, scaled down: 20 iterations, alpha0 = 5, Fisher from 2 batches per set. The
# synthetic classes are learnt with losses near 0, so it takes K = 2 (10 forget steps; 4 steps at K = 5 leave FA at
# 100%, measured) to forget.
cat >"$T/sfron.yaml" <<EOF
name: p-sfron
run_dir: $R/sfron
$common
model: {arch: fmnist-cnn, checkpoint: $R/train/model.h5}
forget: {classes: [2]}
unlearn: {method: sfron, iters: 20, forget_freq: 2, batch_size: 50, forget_batch_size: 50, lr: 0.01, alpha: 5,
          fisher_batches: 2}
eval: {rt_checkpoint: $R/retrain/model.h5}
EOF

check "train the original (2 ranks)" $NP2 $UL train "$T/train.yaml"
check "retrain RT without class 2 (2 ranks)" $NP2 $UL train "$T/train.yaml" --set name=p-retrain \
    --set run_dir=$R/retrain --set train.on=retain
check "unlearn eval: the original against RT (2 ranks)" $NP2 $UL eval "$T/eval.yaml"
check "unlearn forget: SFR-on (2 ranks)" $NP2 $UL forget "$T/sfron.yaml"

check "report.json files hold the metrics; the original remembers class 2, RT does not, SFR-on forgot it" \
    $PY - "$R" <<'EOF'
import json, math, sys
R = sys.argv[1]
rep = {n: json.load(open(f"{R}/{n}/report.json")) for n in ("train", "retrain", "eval", "sfron")}
for n, r in rep.items():
    assert r["format"] == "unlearn-report" and r["status"] == "ok", n
    for k in ("forget_acc", "retain_acc", "test_acc", "test_acc_remaining", "mia"):
        v = r["metrics"][k]
        assert isinstance(v, (int, float)) and 0 <= v <= 100, (n, k, v)
    assert r["wall_seconds"] > 0, n
for n in ("eval", "sfron"):
    m = rep[n]["metrics"]
    assert isinstance(m["avg_gap"], (int, float)) and isinstance(m["kl_to_rt"], (int, float)), n
o, rt, f = rep["eval"]["metrics"], rep["eval"]["rt_metrics"], rep["sfron"]["metrics"]
print(f"  original FA {o['forget_acc']:.1f} TA-rem {o['test_acc_remaining']:.1f}; RT FA {rt['forget_acc']:.1f}; "
      f"SFR-on FA {f['forget_acc']:.1f} TA-rem {f['test_acc_remaining']:.1f} Avg.Gap {f['avg_gap']:.2f} "
      f"(original's {o['avg_gap']:.2f})")
# RT's eval metrics are the same computation on the same model whichever run made them.
for k in ("forget_acc", "retain_acc", "test_acc", "mia"):
    assert abs(rep["sfron"]["rt_metrics"][k] - rt[k]) < 1e-9, k
    assert abs(rep["retrain"]["metrics"][k] - rt[k]) < 1e-9, k
assert rep["sfron"]["method"]["name"] == "sfron" and rep["sfron"]["iterations"] == 20
assert rep["sfron"]["forget"]["forget_steps"] == 10
assert rep["sfron"]["mask"]["fisher_batches_forget"] == 2 and rep["sfron"]["mask"]["fisher_batches_retain"] == 2
# The synthetic classes are easy: the original knows class 2 (>= 90%), RT never saw it (<= 10%: an unseen class
# is predicted as one of the other 4), and 20 SFR-on iterations (10 forget steps at alpha0 = 5) must drop FA by at
# least 50 points while the remaining classes stay >= 80% on the test set (measured: 100 -> 0, remaining 100).
assert o["forget_acc"] >= 90 and rt["forget_acc"] <= 10, (o["forget_acc"], rt["forget_acc"])
assert f["forget_acc"] <= o["forget_acc"] - 50, (f["forget_acc"], o["forget_acc"])
assert f["test_acc_remaining"] >= 80, f["test_acc_remaining"]
EOF

table() {
    $PY data_tools/summarize_runs.py --rt RT --cost-ref RT Original="$R/eval+$R/train" RT="$R/eval#rt+$R/retrain" \
        SFR-on="$R/sfron" --json "$T/summary.json" >"$T/table.txt" || return 1
    cat "$T/table.txt"
    $PY - "$R" "$T/table.txt" "$T/summary.json" <<'EOF'
import json, sys
R, table, js = sys.argv[1], open(sys.argv[2]).read().splitlines(), json.load(open(sys.argv[3]))
head = table[0].split()
assert head[:8] == ["method", "FA", "RA", "TA", "TA-rem", "MIA", "MIA-rem", "Avg.Gap"], head
rows = {l.split()[0]: l.split() for l in table[2:]}
assert list(rows) == ["Original", "RT", "SFR-on"], list(rows)
ev, sf, rt = (json.load(open(f"{R}/{n}/report.json")) for n in ("eval", "sfron", "retrain"))
want = {"Original": ev["metrics"], "RT": ev["rt_metrics"], "SFR-on": sf["metrics"]}
for name, m in want.items():
    for col, key in (("FA", "forget_acc"), ("RA", "retain_acc"), ("TA", "test_acc"), ("MIA", "mia")):
        shown = float(rows[name][head.index(col)])
        assert abs(shown - m[key]) <= 0.005 + 1e-9, (name, col, shown, m[key])
by = {r["label"]: r for r in js}
assert by["RT"]["avg_gap"] == 0 and abs(by["SFR-on"]["avg_gap"] - sf["metrics"]["avg_gap"]) < 1e-9
assert abs(by["RT"]["cost_seconds"] - (rt["wall_seconds"] - rt["eval_seconds"])) < 1e-9
print("  table rows and columns match the reports")
EOF
}
check_fn() {
    local what=$1 out; shift
    if out=$("$@" 2>&1); then tu_pass "$what"; echo "$out" | sed 's/^/     /'; else
        tu_fail "$what"; echo "$out" | tail -20 | sed 's/^/     | /'; fi
}
check_fn "summarize_runs.py prints the table of Original, RT and SFR-on with the reports' values" table
check_fails "summarize_runs.py: a missing report is one error naming it" "summarize_runs: $T/nope: cannot read" \
    $PY data_tools/summarize_runs.py "$T/nope"

tu_finish sh_pipeline
