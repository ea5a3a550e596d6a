# tests/lib.sh - helpers for shell tests (sourced). Each shell test counts its checks and ends with tu_finish.
#   check "what" cmd...          passes when cmd exits 0
#   check_fails "what" pattern cmd...
#                                passes when cmd exits nonzero within the time limit AND its output matches pattern
#                                (grep -E), and the pattern is printed exactly once (one message, not one per rank)
set -u
TU_PASSED=0
TU_FAILED=0
BUILD=${BUILD:-build}
UNLEARN=${UNLEARN:-$BUILD/unlearn}
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN="mpirun --oversubscribe -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"
TU_TMP=$(mktemp -d /tmp/unlearn-test.XXXXXX)
trap 'rm -rf "$TU_TMP"' EXIT

tu_pass() { TU_PASSED=$((TU_PASSED + 1)); echo "ok   $1"; }
tu_fail() { TU_FAILED=$((TU_FAILED + 1)); echo "FAIL $1"; }

check() {
    local what=$1; shift
    local out
    if out=$(timeout 600 "$@" 2>&1); then tu_pass "$what"; else
        tu_fail "$what (exit $?)"; echo "$out" | tail -20 | sed 's/^/     | /'; fi
}

check_fails() {
    local what=$1 pattern=$2; shift 2
    local out rc count
    out=$(timeout 120 "$@" 2>&1); rc=$?
    count=$(printf '%s\n' "$out" | grep -cE -- "$pattern" || true)
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$count" -eq 1 ]; then tu_pass "$what"; else
        tu_fail "$what (exit $rc, pattern '$pattern' seen $count times; want a nonzero exit and exactly one message)"
        printf '%s\n' "$out" | tail -20 | sed 's/^/     | /'
    fi
}

tu_finish() { echo "RESULT $1 passed=$TU_PASSED failed=$TU_FAILED"; [ "$TU_FAILED" -eq 0 ]; }
