#!/usr/bin/env bash
# tests/sh_config.sh - `unlearn check` and the command line under mpirun -np 2:
#   * every jobs/*.yaml and jobs/*/*.yaml (the demo's and scripts/quality.sh's) passes `unlearn check` as written
#     (all in one call), run from a folder whose data/ holds the datasets the jobs name (Fashion-MNIST converted
#     from Debian's dataset-fashion-mnist when installed, else synthetic of the same shape; its 10000-sample
#     subset and CIFAR-10 synthetic): one "is valid" line per job (rank 0 only), exit 0;
#   * bad jobs, bad --set, a bad dataset path, a forget class the dataset lacks, ranks that resolve different jobs:
#     exit 2, exactly one "unlearn: error:" line naming the file and line (or the --set), and no hang;
#   * bad command lines (one rank). Every config error message itself is unit-tested in tests/test_config.c.
cd "$(dirname "$0")/.." || exit 1
source tests/lib.sh
REPO=$PWD
UN=$REPO/$UNLEARN
if [ ! -x "$UN" ]; then
    tu_fail "$UN is not built"
    tu_finish sh_config
    exit 1
fi
W=$TU_TMP/work
mkdir -p "$W/data"
cd "$W" || exit 1
if [ -d /usr/share/datasets/fashion-mnist ]; then
    $PY "$REPO/data_tools/convert_idx.py" --out data/fashion-mnist.h5 >/dev/null ||
        tu_fail "convert_idx.py failed"
else
    echo "note: dataset-fashion-mnist is not installed; a synthetic 1x28x28 10-class set stands in"
    $PY "$REPO/data_tools/synth.py" --out data/fashion-mnist.h5 --n-train 300 --n-test 50 --classes 10 \
        --channels 1 --size 28 >/dev/null || tu_fail "synth.py failed"
fi
$PY "$REPO/data_tools/synth.py" --out data/fashion-mnist-10k.h5 --n-train 10000 --n-test 50 --classes 10 \
    --channels 1 --size 28 >/dev/null || tu_fail "synth.py (fashion-mnist-10k) failed"
$PY "$REPO/data_tools/synth.py" --out data/cifar10.h5 --n-train 200 --n-test 50 --classes 10 --channels 3 \
    --size 32 >/dev/null || tu_fail "synth.py (cifar) failed"

# bad NAME PATTERN CMD...: exit 2, exactly one "unlearn: error:" line and it matches PATTERN (grep -E), < 60 s
bad() {
    local what=$1 pattern=$2; shift 2
    local out rc n m t0=$SECONDS
    out=$(timeout 120 "$@" 2>&1); rc=$?
    n=$(printf '%s\n' "$out" | grep -c 'unlearn: error:' || true)
    m=$(printf '%s\n' "$out" | grep -cE -- "$pattern" || true)
    if [ "$rc" -eq 2 ] && [ "$n" -eq 1 ] && [ "$m" -eq 1 ] && [ $((SECONDS - t0)) -lt 60 ]; then
        tu_pass "$what: $(printf '%s\n' "$out" | grep 'unlearn: error:')"
    else
        tu_fail "$what (exit $rc, want 2; $n error lines, pattern '$pattern' seen $m times; $((SECONDS - t0))s)"
        printf '%s\n' "$out" | tail -15 | sed 's/^/     | /'
    fi
}

# ---- the example jobs, as written ----
jobs=("$REPO"/jobs/*.yaml "$REPO"/jobs/*/*.yaml)
out=$(timeout 120 $MPIRUN -np 2 "$UN" check "${jobs[@]}" 2>&1); rc=$?
for j in "${jobs[@]}"; do
    n=$(printf '%s\n' "$out" | grep -c "^unlearn check: $j is valid" || true)
    if [ "$rc" -eq 0 ] && [ "$n" -eq 1 ]; then tu_pass "check ${j#"$REPO"/}"; else
        tu_fail "check ${j#"$REPO"/} (exit $rc, 'is valid' seen $n times)"; fi
done
[ "$rc" -eq 0 ] || printf '%s\n' "$out" | tail -15 | sed 's/^/     | /'
out=$(timeout 120 $MPIRUN -np 2 "$UN" check "$REPO/jobs/fmnist-sfron.yaml" --set unlearn.iters=10 \
    --set=unlearn.alpha=2.5 --print 2>&1)
if printf '%s\n' "$out" | grep -q '^  iters: 10$' && printf '%s\n' "$out" | grep -q '^  alpha: 2.5$' &&
    [ "$(printf '%s\n' "$out" | grep -c '^name: "fmnist-sfron"$')" -eq 1 ]; then
    tu_pass "--set and --print show the resolved job once"
else
    tu_fail "--set/--print"; printf '%s\n' "$out" | tail -15 | sed 's/^/     | /'
fi
check "singleton run without mpirun" "$UN" check "$REPO/jobs/fmnist-train.yaml"
check "keys lists every key" bash -c "'$UN' keys | grep -q '^unlearn.lambda  *float  *0.5 '"

# ---- bad jobs: each names the file and line ----
J=$W/jobs
mkdir -p "$J"
cat >"$J/base.yaml" <<'EOF'
name: t
data:
  path: data/fashion-mnist.h5
model:
  arch: fmnist-cnn
EOF
mk() { cp "$J/base.yaml" "$J/$1.yaml"; cat >>"$J/$1.yaml"; }   # lines 1-5 are base.yaml
mk unknown <<'EOF'
unlearn:
  iters: 10
  lamda: 0.5
EOF
mk type <<'EOF'
unlearn:
  iters: ten
EOF
mk enum <<'EOF'
unlearn:
  method: sfro
EOF
mk split2 <<'EOF'
forget:
  classes: [1]
  fraction: 0.5
EOF
mk classrange <<'EOF'
forget:
  classes: [3, 12]
EOF
mk hidden <<'EOF'
runtime: {threads: 1}
EOF
printf 'name: t\ndata:\n  path: data/fashion-mnist.h5\nmodel: {arch: mlp\n' >"$J/malformed.yaml"
printf 'name: t\nmodel:\n  arch: mlp\n' >"$J/missing.yaml"
printf 'name: t\ndata:\n  path: data/nope.h5\nmodel: {arch: mlp}\n' >"$J/nodata.yaml"
printf 'name: t\nrun_dir: runs/${env:UNLEARN_RANK_TAG}\ndata: {path: data/fashion-mnist.h5}\nmodel: {arch: mlp}\n' \
    >"$J/env.yaml"

M="$MPIRUN -np 2 $UN"
bad "second of two jobs invalid" "jobs/type\.yaml:7: unlearn\.iters" $M check "$J/base.yaml" "$J/type.yaml"
bad "unknown key" "jobs/unknown\.yaml:8: unknown key 'unlearn\.lamda'; did you mean 'unlearn\.lambda'\?$" \
    $M check "$J/unknown.yaml"
bad "wrong type" "jobs/type\.yaml:7: unlearn\.iters: expected an integer, got 'ten'$" $M check "$J/type.yaml"
bad "bad enum" "jobs/enum\.yaml:7: unlearn\.method: 'sfro' is not one of sfron, .*; did you mean 'sfron'\?$" \
    $M check "$J/enum.yaml"
bad "malformed YAML" "jobs/malformed\.yaml:[45]: malformed YAML: " $M check "$J/malformed.yaml"
bad "missing required key" "jobs/missing\.yaml: missing required key 'data\.path'" $M check "$J/missing.yaml"
bad "two forget kinds" \
    "jobs/split2\.yaml:8: forget: give exactly one of classes, fraction, indices \('forget\.classes' is given at line 7\)$" \
    $M check "$J/split2.yaml"
bad "class outside the dataset" "jobs/classrange\.yaml:7: forget\.classes: .*12" $M check "$J/classrange.yaml"
bad "missing dataset" "jobs/nodata\.yaml:3: data\.path: .*data/nope\.h5" $M check "$J/nodata.yaml"
bad "mlp with 5 hidden layers" "--set model\.hidden: model\.hidden: at most 4 widths" \
    $M check "$J/hidden.yaml" --set model.arch=mlp --set 'model.hidden=[8,8,8,8,8]'
bad "--set unknown key" "--set unlearn\.lamda=1: unknown key 'unlearn\.lamda'; did you mean 'unlearn\.lambda'\?$" \
    $M check "$J/base.yaml" --set unlearn.lamda=1
bad "missing job file" "jobs/none\.yaml: cannot open the job file: No such file or directory$" $M check "$J/none.yaml"
# MPMD: rank 0 and rank 1 see different environments, so ${env:...} resolves differently
bad "ranks resolve different jobs" \
    "\(rank 1\) .*env\.yaml: the resolved job differs from rank 0's at line 3: 'run_dir: \"runs/b\"' here, 'run_dir: \"runs/a\"'" \
    $MPIRUN -np 1 env UNLEARN_RANK_TAG=a "$UN" check "$J/env.yaml" : -np 1 env UNLEARN_RANK_TAG=b "$UN" check "$J/env.yaml"

# ---- the command line (argument errors are the same on every rank: one rank suffices) ----
bad "train validates its job first" "jobs/type\.yaml:7: unlearn\.iters" $M train "$J/type.yaml"
bad "forget validates its job first" "jobs/type\.yaml:7: unlearn\.iters" $M forget "$J/type.yaml"
bad "unknown command" "unknown command 'chek'" "$UN" chek "$J/base.yaml"
bad "no job file" "unlearn check: missing the job file" "$UN" check
bad "unknown option" "unlearn check: unknown option '--sett'" "$UN" check "$J/base.yaml" --sett x=1
bad "no arguments" "no command given" "$UN"
check "--version" bash -c "'$UN' --version | grep -q '^unlearn [0-9]'"
check "--help" bash -c "'$UN' --help | grep -q 'unlearn check JOB.yaml'"

tu_finish sh_config
