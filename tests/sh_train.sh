#!/usr/bin/env bash
# tests/sh_train.sh - `unlearn train` and `unlearn eval` end to end on a small synthetic dataset (4 classes of
# 1x12x12 images): 1 vs 2 ranks, the same run twice, rank0 vs replicated mode, a stop request and resume, the RT
# reference (train.on: retain), eval against an independent numpy/scikit-learn computation, report.json against
# docs/report.md, metrics.jsonl, a NaN-inducing job and bad input under 2 ranks, and data_tools/plot_run.py.
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
T=$TU_TMP
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
NP2="$MPIRUN -np 2"

$PY data_tools/synth.py --out "$T/s.h5" --n-train 480 --n-test 160 --classes 4 --channels 1 --size 12 >/dev/null

# A dataset whose inputs overflow float32 in the first layer: the loss is Inf/NaN within the first steps.
$PY tests/overflow_dataset.py "$T/s.h5" "$T/huge.h5"

cat >"$T/mlp.yaml" <<EOF
name: t-mlp
run_dir: $T/runs/mlp
data: {path: $T/s.h5, augment: crop_flip}
model: {arch: mlp, hidden: [24]}
forget: {classes: [1]}
train: {epochs: 2, batch_size: 30, optimizer: sgd, lr: 0.01, momentum: 0.9, schedule: cosine}
runtime: {threads: 1, progress: false}
EOF
cat >"$T/cnn.yaml" <<EOF
name: t-cnn
run_dir: $T/runs/cnn
data: {path: $T/s.h5, augment: flip}
model: {arch: fmnist-cnn}
forget: {fraction: 0.1, seed: 3}
train: {epochs: 2, batch_size: 40, optimizer: adamw, lr: 0.003, weight_decay: 0.01, schedule: linear}
runtime: {threads: 1, progress: false}
EOF

# Compares the params/ and buffers/ datasets of two checkpoints.
#   cmp.py A B bitwise        every dataset bitwise equal
#   cmp.py A B RTOL           per dataset max|a - b| <= RTOL * max|a| (+1e-7 for all-zero tensors)
cat >"$T/cmp.py" <<'EOF'
import sys
import h5py, numpy as np
a, b, mode = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r"), sys.argv[3]
names = []
a.visit(lambda n: names.append(n) if isinstance(a[n], h5py.Dataset) and n.split("/")[0] in ("params", "buffers") else None)
bnames = []
b.visit(lambda n: bnames.append(n) if isinstance(b[n], h5py.Dataset) and n.split("/")[0] in ("params", "buffers") else None)
if sorted(names) != sorted(bnames) or not names:
    sys.exit(f"different datasets: {sorted(names)} vs {sorted(bnames)}")
bad = 0
worst = (0.0, "")
for n in sorted(names):
    x, y = a[n][...], b[n][...]
    if x.shape != y.shape:
        sys.exit(f"{n}: shape {x.shape} vs {y.shape}")
    d = np.abs(x.astype(np.float64) - y.astype(np.float64))
    scale = max(float(np.abs(x).max()), 0.0)
    rel = float(d.max()) / scale if scale > 0 else float(d.max())
    if rel > worst[0]:
        worst = (rel, n)
    ok = np.array_equal(x, y) if mode == "bitwise" else float(d.max()) <= float(mode) * scale + 1e-7
    if not ok:
        bad += 1
        i = int(np.argmax(d))
        print(f"  {n}: max_abs {d.max():.3e} rel {rel:.3e} first_bad {int(np.flatnonzero(d.ravel() > 0)[0])} "
              f"got {x.ravel()[i]!r} want {y.ravel()[i]!r}")
print(f"  {len(names)} tensors, worst relative difference {worst[0]:.3e} ({worst[1]}), mode {mode}")
sys.exit(1 if bad else 0)
EOF

UL=$UNLEARN
# check for a shell function (check's timeout cannot run one): passes when it returns 0
check_fn() {
    local what=$1 out; shift
    if out=$("$@" 2>&1); then tu_pass "$what"; else tu_fail "$what"; echo "$out" | tail -20 | sed 's/^/     | /'; fi
}
# ---- 1 rank vs 2 ranks, the same run twice, rank0 vs replicated ----
check "train mlp, 1 rank" $UL train "$T/mlp.yaml" --set run_dir=$T/runs/mlp1
check "train mlp, 1 rank again" $UL train "$T/mlp.yaml" --set run_dir=$T/runs/mlp1b
check "train mlp, 2 ranks" $NP2 $UL train "$T/mlp.yaml" --set run_dir=$T/runs/mlp2
check "train fmnist-cnn, 1 rank" $UL train "$T/cnn.yaml" --set run_dir=$T/runs/cnn1
check "train fmnist-cnn, 2 ranks, rank0 mode" $NP2 $UL train "$T/cnn.yaml" --set run_dir=$T/runs/cnn2
check "train fmnist-cnn, 2 ranks, rank0 mode again" $NP2 $UL train "$T/cnn.yaml" --set run_dir=$T/runs/cnn2b
check "train fmnist-cnn, 2 ranks, replicated mode" $NP2 $UL train "$T/cnn.yaml" --set run_dir=$T/runs/cnn2r \
    --set runtime.dist_mode=replicated

# Tolerances. 1 vs 2 ranks differ only in summation order: the global-batch gradient is one float32 sum per rank
# plus the allreduce instead of one serial sum, and BatchNorm's batch statistics are sums in double over the same
# values. After 32 SGD steps the mlp stays within 1e-5 of each tensor's scale (measured ~1e-7); the cnn runs AdamW,
# whose normalised step m/sqrt(v) amplifies last-bit differences of near-zero gradients (measured ~2e-5 after 24
# steps), so it gets 1e-3. A scaling bug (1/G per rank instead of global, BN over the local batch) shows up as
# differences of order 1e-1 and fails both.
check "mlp: 1 rank vs 2 ranks within 1e-5 of each tensor's scale" $PY "$T/cmp.py" $T/runs/mlp1/model.h5 \
    $T/runs/mlp2/model.h5 1e-5
check "fmnist-cnn: 1 rank vs 2 ranks within 1e-3 of each tensor's scale" $PY "$T/cmp.py" $T/runs/cnn1/model.h5 \
    $T/runs/cnn2/model.h5 1e-3
check "mlp: the same 1-rank run twice is bitwise identical" $PY "$T/cmp.py" $T/runs/mlp1/model.h5 \
    $T/runs/mlp1b/model.h5 bitwise
check "fmnist-cnn: the same 2-rank run twice is bitwise identical" $PY "$T/cmp.py" $T/runs/cnn2/model.h5 \
    $T/runs/cnn2b/model.h5 bitwise
# With 2 ranks every gradient element is a + b in either mode (reduce to rank 0 or allreduce) and the same
# optimizer step runs on the same values: the modes must agree bitwise.
check "fmnist-cnn: rank0 and replicated modes give bitwise identical parameters" $PY "$T/cmp.py" \
    $T/runs/cnn2/model.h5 $T/runs/cnn2r/model.h5 bitwise

rerun_done() {   # a finished run resumes from its final checkpoint: no step is redone, the model is the same
    cp $T/runs/mlp1/model.h5 $T/mlp1-first.h5
    $UL train "$T/mlp.yaml" --set run_dir=$T/runs/mlp1 >"$T/rerun.log" 2>&1 || { cat "$T/rerun.log"; return 1; }
    grep -q "resumed from iteration 32" "$T/rerun.log" || { cat "$T/rerun.log"; return 1; }
    $PY "$T/cmp.py" $T/runs/mlp1/model.h5 $T/mlp1-first.h5 bitwise
}
check_fn "re-running a finished run resumes at its end and rewrites the same model" rerun_done
changed_cfg() { # an edited job in the same run_dir ignores the old checkpoint (noted) and starts afresh
    $UL train "$T/mlp.yaml" --set run_dir=$T/runs/mlp1b --set train.lr=0.02 >"$T/changed.log" 2>&1 ||
        { cat "$T/changed.log"; return 1; }
    grep -q "note: ignoring .*written by another job configuration" "$T/changed.log" || { cat "$T/changed.log"; return 1; }
    ! grep -q "resumed from" "$T/changed.log"
}
check_fn "an edited job ignores the old run checkpoint and starts afresh" changed_cfg

# ---- report.json against docs/report.md; metrics.jsonl ----
cat >"$T/check_report.py" <<'EOF'
import json, re, sys
doc, run, cmd = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
def keys_of(section_start, section_end):
    part = doc[doc.index(section_start):doc.index(section_end)]
    return re.findall(r"^\| `(\w+)` \|", part, re.M)
top = keys_of("## `report.json`", "### `metrics` and `rt_metrics`")
metric_keys = keys_of("### `metrics` and `rt_metrics`", "### `mia_attack`")
assert len(top) >= 20 and len(metric_keys) >= 10, (top, metric_keys)
def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        sys.exit(f"report.json: duplicate keys {dup}")
    return dict(pairs)
r = json.load(open(f"{run}/report.json"), object_pairs_hook=no_duplicates)
missing = [k for k in top if k not in r] + ["metrics." + k for k in metric_keys if k not in r["metrics"]]
if missing:
    sys.exit(f"report.json lacks documented keys: {missing}")
for k in ("compute", "allreduce", "rank0", "bcast", "io", "other"):
    assert isinstance(r["phase_seconds"][k], (int, float)), k
for k in ("version", "git", "compiler", "flags", "hdf5", "blas", "mpi", "ranks", "threads", "host"):
    assert r["provenance"][k] not in (None, ""), k
assert r["format"] == "unlearn-report" and r["format_version"] == 1 and r["command"] == cmd
assert r["arena_high_water_mib"] > 0 and r["wall_seconds"] > 0
lines = [json.loads(l) for l in open(f"{run}/metrics.jsonl") if l.strip()]
steps = [l for l in lines if l["event"] == "step"]
if cmd == "train":
    assert len(steps) == r["iterations"], (len(steps), r["iterations"])
    assert [l["step"] for l in steps] == list(range(r["iterations"]))
    assert all(isinstance(l["loss"], float) and l["lr"] > 0 and l["grad_norm"] > 0 for l in steps)
    assert len([l for l in lines if l["event"] == "epoch"]) == r["epochs"]
    for k in ("on", "samples", "batch_size", "steps_per_epoch", "optimizer", "lr", "schedule"):
        assert k in r["train"], k
assert [l for l in lines if l["event"] == "eval"], "no eval line"
print(f"  {len(top)} top-level and {len(metric_keys)} metric keys present; {len(lines)} metrics lines parse")
EOF
check "report.json of a 2-rank train run has every documented key; metrics.jsonl parses" \
    $PY "$T/check_report.py" docs/report.md $T/runs/cnn2 train
check "report.json of a 1-rank train run has every documented key" \
    $PY "$T/check_report.py" docs/report.md $T/runs/mlp1 train

# ---- RT: train.on retain (class 1 never seen), train.subset ----
check "train RT (train.on: retain), 2 ranks" $NP2 $UL train "$T/mlp.yaml" --set run_dir=$T/runs/rt \
    --set train.on=retain --set train.epochs=4 --set train.lr=0.05 --set data.augment=none
check "RT never saw the forget class: FA < 5%, RA > 80%, 360 training samples" $PY - $T/runs/rt <<'EOF'
import json, sys
r = json.load(open(sys.argv[1] + "/report.json"))
m = r["metrics"]
print(f"  RT: FA {m['forget_acc']:.2f} RA {m['retain_acc']:.2f} TA {m['test_acc']:.2f} samples {r['train']['samples']}")
assert r["train"]["samples"] == 360 and r["train"]["on"] == "retain"
assert m["forget_acc"] < 5 and m["retain_acc"] > 80
assert abs(m["train_acc"] - m["retain_acc"]) < 1e-9
EOF
check "train.subset: 100 samples" $UL train "$T/mlp.yaml" --set run_dir=$T/runs/sub --set train.subset=100 \
    --set train.batch_size=25
check "train.subset: the report says 100 samples, 4 steps per epoch" $PY -c "
import json; r = json.load(open('$T/runs/sub/report.json'))
assert r['train']['samples'] == 100 and r['train']['steps_per_epoch'] == 4 and r['iterations'] == 8, r['train']"

# ---- eval (2 ranks) against numpy + scikit-learn on the same checkpoints ----
cat >"$T/ev.yaml" <<EOF
name: t-ev
run_dir: $T/runs/ev
data: {path: $T/s.h5}
model: {arch: mlp, hidden: [24], checkpoint: $T/runs/mlp1/model.h5}
forget: {classes: [1]}
eval: {rt_checkpoint: $T/runs/rt/model.h5, batch_size: 50}
runtime: {threads: 1}
EOF
check "eval with an RT checkpoint, 2 ranks" $NP2 $UL eval "$T/ev.yaml"
check "report.json of eval has every documented key" $PY "$T/check_report.py" docs/report.md $T/runs/ev eval
# The reference computation: the mlp in float64 numpy, softmax entropies, sklearn's LogisticRegression exactly as
# the reference's evaluation/mia.py, and KL with 1e-20 inside the logs. Tolerances: accuracies and MIA may differ
# by one sample (a float32 vs float64 near-tie in argmax or at the attack threshold), KL by 1e-4 relative (float32
# logits), Avg.Gap follows from them.
check "eval metrics match numpy/scikit-learn" $PY - "$T" <<'EOF'
import json, sys, warnings
import h5py, numpy as np
from sklearn.linear_model import LogisticRegression
T = sys.argv[1]
r = json.load(open(f"{T}/runs/ev/report.json"))
with h5py.File(f"{T}/s.h5") as f:
    mean, std = float(f.attrs["mean"][0]), float(f.attrs["std"][0])
    data = {s: ((f[s + "/images"][...].astype(np.float64) / 255.0 - mean) / std, f[s + "/labels"][...]) for s in ("train", "test")}
forget = np.loadtxt(f"{T}/runs/ev/forget_indices.txt", dtype=np.int64, comments="#")
retain = np.setdiff1d(np.arange(len(data["train"][1])), forget)
def logits(ckpt, x):
    with h5py.File(ckpt) as f:
        p = {k: f["params"][k][...].astype(np.float64) for k in f["params"]}
    h = np.maximum(x.reshape(len(x), -1) @ p["fc1.weight"].T + p["fc1.bias"], 0)
    return h @ p["fc2.weight"].T + p["fc2.bias"]
def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True)); return e / e.sum(1, keepdims=True)
def entropy(z):
    p = softmax(z); return -np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0).sum(1)
def metrics(ckpt):
    zf, zr = logits(ckpt, data["train"][0][forget]), logits(ckpt, data["train"][0][retain])
    zt = logits(ckpt, data["test"][0])
    yf, yr, yt = data["train"][1][forget], data["train"][1][retain], data["test"][1]
    acc = lambda z, y: 100.0 * (z.argmax(1) == y).mean()
    X = np.concatenate([entropy(zr), entropy(zt)]).astype(np.float32).reshape(-1, 1)
    Y = np.concatenate([np.ones(len(zr)), np.zeros(len(zt))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = LogisticRegression(class_weight="balanced", solver="lbfgs", multi_class="multinomial").fit(X, Y)
        rem = yt != 1
        Xr = np.concatenate([entropy(zr), entropy(zt[rem])]).astype(np.float32).reshape(-1, 1)
        Yr = np.concatenate([np.ones(len(zr)), np.zeros(rem.sum())])
        clf2 = LogisticRegression(class_weight="balanced", solver="lbfgs", multi_class="multinomial").fit(Xr, Yr)
    ef = entropy(zf).astype(np.float32).reshape(-1, 1)
    per = [acc(zt[yt == c], yt[yt == c]) for c in range(4)]
    return dict(forget_acc=acc(zf, yf), retain_acc=acc(zr, yr), test_acc=acc(zt, yt),
                test_acc_remaining=acc(zt[rem], yt[rem]), mia=100.0 * clf.predict(ef).mean(),
                mia_remaining=100.0 * clf2.predict(ef).mean(), per_class_test_acc=per), zf
m, zf_m = metrics(f"{T}/runs/mlp1/model.h5")
rt, zf_rt = metrics(f"{T}/runs/rt/model.h5")
pf, qf = softmax(zf_rt), softmax(zf_m)
kl = (pf * (np.log(pf + 1e-20) - np.log(qf + 1e-20))).sum(1).mean()
gap = np.mean([abs(m[k] - rt[k]) for k in ("forget_acc", "retain_acc", "test_acc", "mia")])
n = {"forget_acc": len(forget), "retain_acc": len(retain), "test_acc": 160, "test_acc_remaining": 120, "mia": len(forget), "mia_remaining": len(forget)}
bad = []
for name, want, got in (("metrics", m, r["metrics"]), ("rt_metrics", rt, r["rt_metrics"])):
    for k, tol_n in n.items():
        tol = 100.0 / tol_n + 1e-9
        print(f"  {name}.{k}: unlearn {got[k]:.4f}, numpy/sklearn {want[k]:.4f} (tolerance {tol:.3f})")
        if abs(got[k] - want[k]) > tol: bad.append(f"{name}.{k}")
    for c in range(4):
        if abs(got["per_class_test_acc"][c] - want["per_class_test_acc"][c]) > 100.0 / 40 + 1e-9: bad.append(f"{name}.per_class[{c}]")
print(f"  kl_to_rt: unlearn {r['metrics']['kl_to_rt']:.6g}, numpy {kl:.6g}; avg_gap {r['metrics']['avg_gap']:.4f} vs {gap:.4f}")
if abs(r["metrics"]["kl_to_rt"] - kl) > 1e-4 * abs(kl) + 1e-7: bad.append("kl_to_rt")
if abs(r["metrics"]["avg_gap"] - gap) > 100.0 / len(forget) + 1e-9: bad.append("avg_gap")
mg = r["metrics"]; rg = r["rt_metrics"]
own = np.mean([abs(mg[k] - rg[k]) for k in ("forget_acc", "retain_acc", "test_acc", "mia")])
# report.json prints 10 significant digits
if abs(own - mg["avg_gap"]) > 1e-6: bad.append("avg_gap vs its own FA/RA/TA/MIA")
if not (0 <= mg["mia"] <= 100 and r["mia_attack"]["converged"]): bad.append("mia_attack")
if bad: sys.exit(f"mismatch: {bad}")
EOF

# ---- a stop request (SIGUSR1 through mpirun) and resume give the uninterrupted result bitwise ----
cat >"$T/long.yaml" <<EOF
name: t-long
run_dir: $T/runs/long
data: {path: $T/s.h5}
model: {arch: fmnist-cnn}
train: {epochs: 4, batch_size: 24, optimizer: sgd, lr: 0.02, momentum: 0.9, schedule: cosine}
runtime: {threads: 1, progress: false}
checkpoint: {every: 0}
EOF
stop_and_resume() {
    $NP2 $UL train "$T/long.yaml" >"$T/long1.log" 2>&1 &
    local pid=$! i rc
    for i in $(seq 1 600); do   # signal once 10 steps are done (the handlers are installed by then)
        [ -s $T/runs/long/metrics.jsonl ] && [ "$(wc -l <$T/runs/long/metrics.jsonl)" -ge 10 ] && break
        sleep 0.1
    done
    kill -USR1 $pid
    wait $pid; rc=$?
    if [ $rc -ne 3 ]; then echo "first run exited $rc, want 3 (stopped)"; cat "$T/long1.log"; return 1; fi
    grep -q "stop requested (SIGUSR1) at iteration" "$T/long1.log" || { cat "$T/long1.log"; return 1; }
    $NP2 $UL train "$T/long.yaml" >"$T/long2.log" 2>&1 || { cat "$T/long2.log"; return 1; }
    grep -q "resumed from iteration" "$T/long2.log" || { cat "$T/long2.log"; return 1; }
    $NP2 $UL train "$T/long.yaml" --set run_dir=$T/runs/longref >/dev/null 2>&1 || return 1
    $PY "$T/cmp.py" $T/runs/long/model.h5 $T/runs/longref/model.h5 bitwise
}
check_fn "2 ranks: stop request (exit 3, checkpoint) and resume equal the uninterrupted run bitwise" stop_and_resume

# ---- failures: one message, every rank exits together, nonzero ----
check_fails "NaN/Inf loss stops both ranks with one diagnostic" "non-finite train loss at iteration" \
    $NP2 $UL train "$T/mlp.yaml" --set run_dir=$T/runs/nan --set data.path=$T/huge.h5
nan_exit() {
    $NP2 $UL train "$T/mlp.yaml" --set run_dir=$T/runs/nan2 --set data.path=$T/huge.h5 >/dev/null 2>&1
    local rc=$?
    [ $rc -eq 4 ] && [ -s $T/runs/nan2/nonfinite.json ] && [ ! -e $T/runs/nan2/model.h5 ] ||
        { echo "exit $rc (want 4), nonfinite.json and no model.h5"; return 1; }
    $PY -c "import json; d = json.load(open('$T/runs/nan2/nonfinite.json')); assert d['loss'] == 'train' and d['ranks'] == 2, d"
}
check_fn "NaN/Inf loss: exit code 4, nonfinite.json, no model written" nan_exit
printf 'name: t-bad\ndata: {path: %s}\nmodel: {arch: mlp}\ntrain: {epochs: 1, lr: 0.1, batchsize: 32}\n' "$T/s.h5" >"$T/bad.yaml"
check_fails "unknown key under 2 ranks: one message" "unknown key 'train.batchsize'" $NP2 $UL train "$T/bad.yaml"
grep -v '^forget:' "$T/cnn.yaml" >"$T/nosplit.yaml"
check_fails "train.on: retain without a forget set: one message" "train.on: retain trains RT" \
    $NP2 $UL train "$T/nosplit.yaml" --set train.on=retain --set run_dir=$T/runs/x
check_fails "batch larger than the training set: one message" "train.batch_size: 1000 is larger" \
    $NP2 $UL train "$T/mlp.yaml" --set train.batch_size=1000 --set run_dir=$T/runs/x
check_fails "eval without model.checkpoint: one message" "needs model.checkpoint" \
    $NP2 $UL eval "$T/mlp.yaml" --set run_dir=$T/runs/x
check_fails "eval of a checkpoint of another architecture: one message" "model.checkpoint" \
    $NP2 $UL eval "$T/cnn.yaml" --set model.checkpoint=$T/runs/mlp1/model.h5 --set run_dir=$T/runs/x

# ---- curves ----
check "plot_run.py draws curves.png" $PY data_tools/plot_run.py $T/runs/cnn2
check "curves.png is a PNG" $PY -c "assert open('$T/runs/cnn2/curves.png','rb').read(8) == b'\x89PNG\r\n\x1a\n'"

tu_finish sh_train
