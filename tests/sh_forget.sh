#!/usr/bin/env bash
# tests/sh_forget.sh - `unlearn forget` end to end on a small synthetic dataset (4 classes of 1x8x8 images) with a
# fmnist-cnn trained by `unlearn train`: 1 vs 2 ranks, the same run twice, rank0 vs replicated mode, a class-forgetting
# SFR-on run that drives the forget accuracy down, report.json and metrics.jsonl, every method, two stop requests
# and resumes against an uninterrupted run (bitwise), a NaN/Inf run, and bad input under 2 ranks.
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
T=$TU_TMP
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
NP2="$MPIRUN -np 2"
UL=$UNLEARN

$PY data_tools/synth.py --out "$T/s.h5" --n-train 480 --n-test 160 --classes 4 --channels 1 --size 8 >/dev/null
# A copy whose inputs overflow float32 in the first layer: eval-mode passes (BatchNorm with running statistics)
# give Inf/NaN losses at once.
$PY tests/overflow_dataset.py "$T/s.h5" "$T/huge.h5"
: >"$T/empty.txt"

cat >"$T/train.yaml" <<EOF
name: t-orig
run_dir: $T/runs/orig
data: {path: $T/s.h5}
model: {arch: fmnist-cnn}
train: {epochs: 3, batch_size: 32, lr: 0.05}
runtime: {threads: 1, progress: false}
EOF
cat >"$T/mlp.yaml" <<EOF
name: t-mlp
run_dir: $T/runs/mlp
data: {path: $T/s.h5}
model: {arch: mlp, hidden: [16]}
train: {epochs: 1, batch_size: 32, lr: 0.05}
runtime: {threads: 1, progress: false}
EOF
# The forget job: class 1 of 4, the SFR-on loop of sfr-on.md §1.5 at a small budget (K = 2, alpha0 = 5, §9).
forget_job() {  # forget_job FILE NAME FORGET-SECTION
    cat >"$1" <<EOF
name: $2
run_dir: $T/runs/$2
data: {path: $T/s.h5}
model: {arch: fmnist-cnn, checkpoint: $T/runs/orig/model.h5}
forget: $3
unlearn: {method: sfron, iters: 30, forget_freq: 2, batch_size: 32, forget_batch_size: 32, alpha: 5, lr: 0.01,
          fisher_batches: 4}
runtime: {threads: 1, progress: false}
EOF
}
forget_job "$T/f.yaml" f "{classes: [1]}"
forget_job "$T/f-empty.yaml" f-empty "{indices: $T/empty.txt}"
forget_job "$T/f-range.yaml" f-range "{classes: [7]}"
sed -e '/^forget:/d' "$T/f.yaml" >"$T/f-none.yaml"

# Compares the params/ and buffers/ datasets of two checkpoints.
#   cmp.py A B bitwise        every dataset bitwise equal
#   cmp.py A B RTOL           per dataset max|a - b| <= RTOL * max|a| (+1e-7 for all-zero tensors)
cat >"$T/cmp.py" <<'EOF'
import sys
import h5py, numpy as np
a, b, mode = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r"), sys.argv[3]
def names(f):
    out = []
    f.visit(lambda n: out.append(n) if isinstance(f[n], h5py.Dataset) and n.split("/")[0] in ("params", "buffers") else None)
    return sorted(out)
if names(a) != names(b) or not names(a):
    sys.exit(f"different datasets: {names(a)} vs {names(b)}")
bad, worst = 0, (0.0, "")
for n in names(a):
    x, y = a[n][...], b[n][...]
    d = np.abs(x.astype(np.float64) - y.astype(np.float64))
    scale = float(np.abs(x).max())
    rel = float(d.max()) / scale if scale > 0 else float(d.max())
    worst = max(worst, (rel, n))
    ok = np.array_equal(x, y) if mode == "bitwise" else float(d.max()) <= float(mode) * scale + 1e-7
    if not ok:
        bad += 1
        i = int(np.argmax(d))
        print(f"  {n}: max_abs {d.max():.3e} rel {rel:.3e} at {i}: {x.ravel()[i]!r} vs {y.ravel()[i]!r}")
print(f"  {len(names(a))} tensors, worst relative difference {worst[0]:.3e} ({worst[1]}), mode {mode}")
sys.exit(1 if bad else 0)
EOF
# check for a shell function (check's timeout cannot run one): passes when it returns 0
check_fn() {
    local what=$1 out; shift
    if out=$("$@" 2>&1); then tu_pass "$what"; else tu_fail "$what"; echo "$out" | tail -20 | sed 's/^/     | /'; fi
}

check "train the original fmnist-cnn (1 rank)" $UL train "$T/train.yaml"
check "train an mlp (another model)" $UL train "$T/mlp.yaml"

# ---- 1 rank vs 2 ranks, the same run twice, rank0 vs replicated ----
# These five runs use lr 0.005: at the job's 0.01 the ascent on this tiny memorised set can turn chaotic, and then
# rounding differences grow by orders of magnitude within a few iterations. Measured 2026-11-27 on two originals
# (trained by the im2col and by the Winograd conv builds): at lr 0.01 the worst 1-vs-2-rank difference was 1.0e-6
# on one and 2.7e-4 on the other (the trajectories agree to 1e-5 until iteration 18, then a retain-loss spike
# amplifies them); at lr 0.005 it was 1.6e-7 and 1.9e-7; 20 iterations or alpha0 2 gave 2.6e-7-6.5e-7.
CMP=(--set unlearn.lr=0.005)
check "sfron, 1 rank" $UL forget "$T/f.yaml" --set run_dir=$T/runs/f1 "${CMP[@]}"
check "sfron, 1 rank again" $UL forget "$T/f.yaml" --set run_dir=$T/runs/f1b "${CMP[@]}"
check "sfron, 2 ranks, rank0 mode" $NP2 $UL forget "$T/f.yaml" --set run_dir=$T/runs/f2 "${CMP[@]}"
check "sfron, 2 ranks, rank0 mode again" $NP2 $UL forget "$T/f.yaml" --set run_dir=$T/runs/f2b "${CMP[@]}"
check "sfron, 2 ranks, replicated mode" $NP2 $UL forget "$T/f.yaml" --set run_dir=$T/runs/f2r \
    --set runtime.dist_mode=replicated "${CMP[@]}"
# Tolerance: 1 and 2 ranks differ only in summation order (the gradient is one float32 sum per rank plus the
# reduction; BatchNorm statistics and the adaptive weights' normaliser are double sums over the same values); 30
# iterations of SGD with momentum keep that within 1e-5 of each tensor's scale (measured ~1e-6). Normalising the
# adaptive weights per rank instead of over the global forget batch, or BatchNorm over the local batch, moves the
# parameters by 1e-3 and more.
check "sfron: 1 rank vs 2 ranks within 1e-5 of each tensor's scale" $PY "$T/cmp.py" $T/runs/f1/model.h5 \
    $T/runs/f2/model.h5 1e-5
check "sfron: the same 1-rank run twice is bitwise identical" $PY "$T/cmp.py" $T/runs/f1/model.h5 \
    $T/runs/f1b/model.h5 bitwise
check "sfron: the same 2-rank run twice is bitwise identical" $PY "$T/cmp.py" $T/runs/f2/model.h5 \
    $T/runs/f2b/model.h5 bitwise
# With 2 ranks every gradient element is a + b in either mode and the same update runs on the same values.
check "sfron: rank0 and replicated modes give bitwise identical parameters" $PY "$T/cmp.py" $T/runs/f2/model.h5 \
    $T/runs/f2r/model.h5 bitwise

# ---- the class is forgotten; report.json and metrics.jsonl ----
cat >"$T/ev.yaml" <<EOF
name: t-ev
run_dir: $T/runs/ev
data: {path: $T/s.h5}
model: {arch: fmnist-cnn, checkpoint: $T/runs/orig/model.h5}
forget: {classes: [1]}
runtime: {threads: 1, progress: false}
EOF
check "evaluate the original model on the forget split" $UL eval "$T/ev.yaml"
check "sfron drives the forget accuracy of class 1 from >= 90% to <= 10% and keeps RA >= 90%" $PY - $T/runs <<'EOF'
import json, sys
o = json.load(open(sys.argv[1] + "/ev/report.json"))["metrics"]
f = json.load(open(sys.argv[1] + "/f2/report.json"))["metrics"]
print(f"  original FA {o['forget_acc']:.2f} RA {o['retain_acc']:.2f}; sfron FA {f['forget_acc']:.2f} RA {f['retain_acc']:.2f}")
assert o["forget_acc"] >= 90 and f["forget_acc"] <= 10 and f["retain_acc"] >= 90
EOF
check "report.json: method, knobs, mask and Fisher batches, phases; metrics.jsonl: one line per iteration" \
    $PY - $T/runs/f2 <<'EOF'
import json, sys
run = sys.argv[1]
r = json.load(open(run + "/report.json"))
m = r["method"]
assert r["command"] == "forget" and r["iterations"] == 30 and r["ranks"] == 2 and r["dist_mode"] == "rank0", r
assert m["name"] == "sfron" and m["alpha"] == 5 and m["forget_freq"] == 2 and m["gamma"] == 1 and m["lambda"] == 0.5
assert m["fisher_batches"] == 4 and m["clip"] == 7 and "scrub_kd_t" not in m, m
k = r["mask"]
assert k["kind"] == "fisher" and k["fisher_batches_forget"] == 4 and k["fisher_batches_retain"] == 4, k
assert k["fisher_samples_forget"] == 4 * 32 - 8 and k["fisher_samples_retain"] == 4 * 32, k   # 120 forget samples
assert 0 < k["kept"] <= k["total"] and abs(k["sparsity"] - (1 - k["kept"] / k["total"])) < 1e-9, k
assert r["forget"]["forget_steps"] == 15 and r["forget"]["optimizer_steps"] == 45, r["forget"]
for p in ("compute", "allreduce", "rank0", "bcast", "io", "mask", "forget_loop"):
    assert r["phase_seconds"][p] >= 0, p
assert r["phase_seconds"]["rank0"] > 0 and r["phase_seconds"]["bcast"] > 0
assert r["checkpoints"]["output"].endswith("/model.h5") and r["checkpoints"]["resumed"] is False
lines = [json.loads(l) for l in open(run + "/metrics.jsonl")]
it = [l for l in lines if l["event"] == "iter"]
assert [l["iter"] for l in it] == list(range(30)), len(it)
assert all((l["loss_forget"] is not None) == (l["iter"] % 2 == 0) for l in it)
assert all(l["loss_retain"] is not None and l["lr"] > 0 and l["grad_norm_retain"] > 0 for l in it)
assert all(l["mask_sparsity"] == k["sparsity"] or abs(l["mask_sparsity"] - k["sparsity"]) < 1e-7 for l in it)
assert it[0]["alpha"] == 5 and it[2]["alpha"] < 5 and it[1]["alpha"] is None
assert [l for l in lines if l["event"] == "eval"]
print(f"  mask keeps {k['kept']} of {k['total']}; {len(it)} iteration lines")
EOF

# ---- every method ----
for m in ft ga rl salun l1 scrub bt; do
    extra=""
    [ $m = ga ] && extra="--set unlearn.mask=none --set unlearn.clip=0.5"
    [ $m = salun ] && extra="--set unlearn.mask_topk=0.3"
    check "$m, 2 ranks" $NP2 $UL forget "$T/f.yaml" --set run_dir=$T/runs/m-$m --set unlearn.method=$m \
        --set unlearn.iters=8 $extra
    check "$m: report.json names the method; 8 iteration lines" $PY -c "
import json
r = json.load(open('$T/runs/m-$m/report.json'))
it = [l for l in map(json.loads, open('$T/runs/m-$m/metrics.jsonl')) if l['event'] == 'iter']
assert r['method']['name'] == '$m' and r['iterations'] == 8 and len(it) == 8, (r['method'], len(it))
assert r['metrics']['forget_acc'] is not None
print('  FA %.2f RA %.2f' % (r['metrics']['forget_acc'], r['metrics']['retain_acc']))"
done

# ---- two stop requests, two resumes: bitwise the uninterrupted run ----
LONG="--set unlearn.iters=120 --set unlearn.forget_freq=3"
check "uninterrupted 120-iteration run, 2 ranks, a checkpoint every 50" $NP2 $UL forget "$T/f.yaml" \
    --set run_dir=$T/runs/full $LONG --set checkpoint.every=50
check "the periodic run checkpoint holds iteration 100, the optimizer momentum, the slow copy and the mask" $PY -c "
import h5py; f = h5py.File('$T/runs/full/checkpoint.h5', 'r')
assert int(f.attrs['step']) == 100 and all(k in f['state'] for k in ('m', 'slow', 'mask')), (f.attrs['step'], list(f['state']))"
stop_at() {  # stop_at LINES: runs (or resumes) the job and sends SIGUSR1 once metrics.jsonl has LINES lines
    local want=$1 pid rc n=0
    $NP2 $UL forget "$T/f.yaml" --set run_dir=$T/runs/pre $LONG >"$T/pre-$want.log" 2>&1 &
    pid=$!
    for _ in $(seq 600); do
        n=$(grep -c '"event": "iter"' $T/runs/pre/metrics.jsonl 2>/dev/null || true)
        [ "${n:-0}" -ge "$want" ] && break
        sleep 0.1
    done
    kill -USR1 "$pid"
    wait "$pid"
    rc=$?
    if [ "$rc" -ne 3 ]; then echo "exit $rc (want 3) after $n lines"; cat "$T/pre-$want.log"; return 1; fi
    grep -q "^unlearn: stop requested (SIGUSR1) at iteration [0-9]*: complete checkpoint" "$T/pre-$want.log" ||
        { cat "$T/pre-$want.log"; return 1; }
}
check_fn "stop request (SIGUSR1) after >= 25 iterations: checkpoint, exit 3" stop_at 25
check_fn "resume, stop request again after >= 70 iterations: exit 3" stop_at 70
check "resume to the end" $NP2 $UL forget "$T/f.yaml" --set run_dir=$T/runs/pre $LONG
check "after two stops and resumes the model is bitwise the uninterrupted run's" $PY "$T/cmp.py" \
    $T/runs/pre/model.h5 $T/runs/full/model.h5 bitwise
check "the resumed runs said so; metrics.jsonl holds every iteration once or more, ending at 119" $PY - $T <<'EOF'
import json, re, sys
t = sys.argv[1]
logs = open(t + "/pre-70.log").read()
assert re.search(r"^unlearn: resumed from iteration \d+ ", logs, re.M), logs
it = [l["iter"] for l in map(json.loads, open(t + "/runs/pre/metrics.jsonl")) if l["event"] == "iter"]
assert sorted(set(it)) == list(range(120)) and it[-1] == 119, it[-5:]
r = json.load(open(t + "/runs/pre/report.json"))
assert r["checkpoints"]["resumed"] is True and r["forget"]["resumed_from_iter"] > 0, r["forget"]
EOF

# ---- a non-finite loss: one message, diagnostics, exit 4 on every rank ----
check_fails "ga on overflowing inputs: NaN/Inf forget loss, 2 ranks" "non-finite forget loss at iteration [0-9]+ " \
    $NP2 $UL forget "$T/f.yaml" --set run_dir=$T/runs/nan --set data.path=$T/huge.h5 --set unlearn.method=ga \
    --set unlearn.mask=none
check "nonfinite.json names the iteration and the loss" $PY -c "
import json; d = json.load(open('$T/runs/nan/nonfinite.json'))
assert 0 <= d['iteration'] < 30 and d['loss'] == 'forget' and d['ranks'] == 2, d"
check_fails "sfron on overflowing inputs: NaN/Inf in the Fisher pass, 2 ranks" "non-finite Fisher-pass loss" \
    $NP2 $UL forget "$T/f.yaml" --set run_dir=$T/runs/nan2 --set data.path=$T/huge.h5

# ---- bad input under 2 ranks: one message, nonzero exit ----
check_fails "empty forget set" "the forget set would be empty" $NP2 $UL forget "$T/f-empty.yaml"
check_fails "forget class out of range" "forget class 7 is outside" $NP2 $UL forget "$T/f-range.yaml"
check_fails "checkpoint of another model" "checkpoint is for arch 'mlp'" $NP2 $UL forget "$T/f.yaml" \
    --set model.checkpoint=$T/runs/mlp/model.h5
check_fails "no forget set" "needs a forget set" $NP2 $UL forget "$T/f-none.yaml"
check_fails "forget batch smaller than the ranks" "fewer than the 2 ranks" $NP2 $UL forget "$T/f.yaml" \
    --set unlearn.forget_batch_size=1

tu_finish sh_forget
