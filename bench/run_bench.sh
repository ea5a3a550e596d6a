#!/usr/bin/env bash
# run_bench.sh - issue 2's core benchmarks: C (bench/bench_core.c) against PyTorch (bench/bench_torch.py), same
# machine, same run, same shapes, same thread count. `make bench` calls it with BUILD set; docs/benchmarks.md
# records the results.
#
#   BUILD=build bench/run_bench.sh
#
# Prints one line per case:
#   bench <case> c_ms=<x> torch_ms=<y> ratio=<x/y> gflops=<z> [sgemm_frac=<f>]
# c_ms, torch_ms: the median over BENCH_ROUNDS rounds of each round's median time (see below);
# gflops: the C side's GEMM-like flops (bench_core.c) over c_ms;
# sgemm_frac (linear and conv cases): the time of the raw kern_sgemm calls of the same GEMM shapes, timed alternately
# with the op in the same process, divided by the op's time, i.e. the op's rate as a fraction of the sgemm rate.
# Every other line starts with '#': the provenance header and (BENCH_PROFILE=1, the default) per-op profiles.
#
# Rounds: each group of cases runs BENCH_ROUNDS times, C and PyTorch back to back, the order alternating between
# rounds (C first, then PyTorch first, ...), so that a load change on a shared machine hits both sides alike.
#
# Environment (all optional):
#   BENCH_THREADS      thread counts, one pass each, in this order          (default "2 1")
#   BENCH_GROUPS       groups of the first pass                             (default "linear conv fmnist dit")
#   BENCH_GROUPS_REST  groups of the later passes (the DiT step is long)    (default "linear conv fmnist")
#   BENCH_ROUNDS       rounds per group                                     (default 2)
#   BENCH_REPS         timed runs per layer case and round, after 2 warmups (default 5)
#   BENCH_STEP_REPS    timed fmnist-cnn steps per round, after 1 warmup     (default 3)
#   BENCH_DIT_REPS     timed DiT-S/2 steps per round, after 1 warmup        (default 1)
#   BENCH_PROFILE      1: per-op profiles of the training steps in the first round, one extra step each (C:
#                      through the tape; PyTorch: torch.autograd.profiler); 0: none        (default 1)
set -euo pipefail

BUILD=${BUILD:-build}
CBIN=$BUILD/bench/bench_core
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
THREADS=${BENCH_THREADS:-"2 1"}
GROUPS_FIRST=${BENCH_GROUPS:-"linear conv fmnist dit"}
GROUPS_REST=${BENCH_GROUPS_REST:-"linear conv fmnist"}
ROUNDS=${BENCH_ROUNDS:-2}
REPS=${BENCH_REPS:-5}
STEP_REPS=${BENCH_STEP_REPS:-3}
DIT_REPS=${BENCH_DIT_REPS:-1}
PROFILE=${BENCH_PROFILE:-1}

[ -x "$CBIN" ] || { echo "run_bench.sh: $CBIN is missing (run 'make BUILD=$BUILD bench')" >&2; exit 1; }
[ -x "$PY" ] || { echo "run_bench.sh: $PY is missing (Debian's python3 with python3-torch)" >&2; exit 1; }

cores=$(nproc)
echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(hostname)  cores: $cores"
echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "# git: $(git -C "$HERE/.." describe --always --dirty 2>/dev/null || echo unknown)"
echo "# compiler: $(${MPICC:-mpicc} --version 2>/dev/null | head -1)"
echo "# openblas: $(dpkg-query -W -f='${Version}' libopenblas0-pthread 2>/dev/null || echo '?')"
echo "# torch: $($PY -c 'import torch; print(torch.__version__)')"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# timing: wall clock; per round the median of $REPS runs after 2 warmups (layers), of $STEP_REPS (fmnist step)"
echo "#   or $DIT_REPS (DiT step) after 1 warmup; reported: the median over $ROUNDS rounds, C/PyTorch order alternating"

# join_group: the C lines ("c <case> ms= flops= [sgemm_ms=]") and PyTorch lines ("torch <case> ms=") of every
# round on stdin -> one bench line per case, in the C order; anything else is passed through behind '# '.
join_group() {
    awk '
    function field(line, key,   i, n, kv) {
        n = split(line, kv, " ")
        for (i = 1; i <= n; i++) if (index(kv[i], key "=") == 1) return substr(kv[i], length(key) + 2)
        return ""
    }
    function median(list,   v, n, i, j, x) {  # list: space-separated numbers
        n = split(list, v, " ")
        for (i = 2; i <= n; i++) { x = v[i] + 0; for (j = i - 1; j >= 1 && v[j] + 0 > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
        return n % 2 ? v[(n + 1) / 2] + 0 : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    $1 == "c" {
        if (!($2 in cms)) { order[++nc] = $2; flops[$2] = field($0, "flops") + 0 }
        cms[$2] = cms[$2] " " field($0, "ms"); s = field($0, "sgemm_ms"); if (s != "") sms[$2] = sms[$2] " " s
        next
    }
    $1 == "torch" { tms[$2] = tms[$2] " " field($0, "ms"); next }
    { print "# " $0 }
    END {
        bad = 0
        for (i = 1; i <= nc; i++) {
            name = order[i]
            if (!(name in tms)) { print "run_bench.sh: no PyTorch time for " name > "/dev/stderr"; bad = 1; continue }
            c = median(cms[name]); t = median(tms[name])
            out = sprintf("bench %s c_ms=%.2f torch_ms=%.2f ratio=%.3f gflops=%.1f", name, c, t, c / t,
                          flops[name] / (c * 1e6))
            if (name in sms) out = out sprintf(" sgemm_frac=%.3f", median(sms[name]) / c)
            print out
        }
        exit bad
    }'
}

start=$(date +%s)
pass=0
for th in $THREADS; do
    if [ "$th" -gt "$cores" ]; then
        echo "# skipping $th threads: more than the $cores cores (ranks x threads <= cores)"
        continue
    fi
    pass=$((pass + 1))
    groups=$GROUPS_FIRST
    [ $pass -gt 1 ] && groups=$GROUPS_REST
    echo "# --- $th thread(s): OMP_NUM_THREADS=$th OMP_WAIT_POLICY=PASSIVE, kern_set_threads($th) / torch.set_num_threads($th)"
    export OMP_NUM_THREADS=$th OMP_WAIT_POLICY=PASSIVE
    for g in $groups; do
        steps=$STEP_REPS
        [ "$g" = dit ] && steps=$DIT_REPS
        {
            for r in $(seq 1 "$ROUNDS"); do
                prof=()
                [ "$PROFILE" = 1 ] && [ "$r" = 1 ] && prof=(--profile)
                args=(--threads "$th" --group "$g" --reps "$REPS" --step-reps "$steps" "${prof[@]}")
                if [ $((r % 2)) = 1 ]; then
                    "$CBIN" "${args[@]}"
                    "$PY" "$HERE/bench_torch.py" "${args[@]}"
                else
                    "$PY" "$HERE/bench_torch.py" "${args[@]}"
                    "$CBIN" "${args[@]}"
                fi
            done
        } | join_group
    done
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)  elapsed: $(( $(date +%s) - start )) s"
