#!/usr/bin/env bash
# Runs the whole test suite and ends with the line "N passed, M failed".
#   1. regenerates the PyTorch fixtures (data_tools/fixtures_*.py --out $BUILD/fixtures), so they cannot go stale;
#   2. runs every unit test binary ($BUILD/tests/test_*);
#   3. runs every shell test (tests/sh_*.sh: MPI ranks, command line, bad input, Slurm).
# Each test prints "RESULT name passed=P failed=F"; a test that crashes or prints no RESULT counts as one failure.
# ONLY=pattern runs the tests whose name contains pattern (the fixtures are always regenerated).
set -uo pipefail
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build}
export FIXTURES=$BUILD/fixtures
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
ONLY=${ONLY:-}
passed=0; failed=0; broken=""
mkdir -p "$FIXTURES" "$BUILD/test-logs"

run_one() {  # name, command...
    local name=$1; shift
    case "$name" in *"$ONLY"*) ;; *) return ;; esac
    local log=$BUILD/test-logs/$name.log t0=$SECONDS
    timeout 1200 "$@" >"$log" 2>&1
    local rc=$?
    local line; line=$(grep -E '^RESULT ' "$log" | tail -1)
    if [ -z "$line" ]; then
        failed=$((failed + 1)); broken="$broken $name"
        echo "FAIL $name: exit $rc and no RESULT line; last lines of $log:"; tail -15 "$log" | sed 's/^/     | /'
        return
    fi
    local p f
    p=$(echo "$line" | sed -E 's/.*passed=([0-9]+).*/\1/'); f=$(echo "$line" | sed -E 's/.*failed=([0-9]+).*/\1/')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p)); failed=$((failed + f))
    printf '%-28s passed=%-4s failed=%-3s (%ds)\n' "$name" "$p" "$f" $((SECONDS - t0))
    if [ "$f" -ne 0 ]; then broken="$broken $name"; grep -E '^(FAIL|     \|)' "$log" | head -30 | sed 's/^/     /'; fi
}

for gen in data_tools/fixtures_*.py; do
    [ -e "$gen" ] || continue
    name=fixtures:$(basename "$gen" .py)   # always regenerated (also under ONLY): the C tests read them
    if ! /usr/bin/python3 "$gen" --out "$FIXTURES" >"$BUILD/test-logs/$(basename "$gen").log" 2>&1; then
        failed=$((failed + 1)); broken="$broken $name"; echo "FAIL $name"; tail -15 "$BUILD/test-logs/$(basename "$gen").log"
    fi
done

for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    ASAN_OPTIONS=${ASAN_OPTIONS} run_one "$(basename "$t")" "$t"
done
for t in tests/sh_*.sh; do
    [ -e "$t" ] || continue
    run_one "$(basename "$t" .sh)" bash "$t"
done

[ -z "$broken" ] || echo "failing:$broken"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
