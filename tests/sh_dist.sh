#!/usr/bin/env bash
# tests/sh_dist.sh - the MPI layer at 1, 2 and 3 ranks (tests/mpi_dist.c):
#   * every collective against values computed in the test, on buffers larger than one piece (16 MB) and not a
#     multiple of it (a wrong piece offset or a lost tail changes the result);
#   * agreed errors: one rank reports bad input -> exactly one message, from rank 0, naming the failing rank; every
#     rank leaves through dist_exit with the same code (each prints a line first), within a few seconds (no hang);
#   * an internal error on one rank while the others wait in a barrier: MPI_Abort ends the whole job, one message.
cd "$(dirname "$0")/.." || exit 1
source tests/lib.sh
BIN=$BUILD/tests/mpi_dist
if [ ! -x "$BIN" ]; then
    tu_fail "$BIN is not built (make BUILD=$BUILD tests-build)"
    tu_finish sh_dist
    exit 1
fi

for np in 1 2 3; do
    check "collectives at $np rank(s)" $MPIRUN -np "$np" "$BIN" collectives
done

# agree_check NP BAD_RANK CODE PATTERN: exit code CODE exactly (a clean agreed exit, not an abort), the pattern
# exactly once, every rank's "leaves" line, and well within the time limit.
agree_check() {
    local np=$1 bad=$2 code=$3 pattern=$4 what="agreed error: rank $2 of $1 fails"
    local out rc t0=$SECONDS
    out=$(timeout 60 $MPIRUN -np "$np" "$BIN" agree "$bad" "$code" 2>&1); rc=$?
    local dt=$((SECONDS - t0))
    local msgs leaves
    msgs=$(printf '%s\n' "$out" | grep -cE -- "$pattern" || true)
    leaves=$(printf '%s\n' "$out" | grep -cE "^rank [0-9]+ leaves with $code$" || true)
    local all_errors
    all_errors=$(printf '%s\n' "$out" | grep -c 'unlearn: error:' || true)
    if [ "$rc" -eq "$code" ] && [ "$msgs" -eq 1 ] && [ "$all_errors" -eq 1 ] && [ "$leaves" -eq "$np" ] &&
        [ "$dt" -le 20 ]; then
        tu_pass "$what (exit $rc, one message, $leaves ranks left together, ${dt}s)"
    else
        tu_fail "$what: exit $rc (want $code), message seen $msgs times ($all_errors error lines; want 1)," \
            "$leaves of $np ranks left, ${dt}s"
        printf '%s\n' "$out" | tail -20 | sed 's/^/     | /'
    fi
}

agree_check 2 1 3 '^unlearn: error: \(rank 1\) bad input seen by rank 1$'
agree_check 3 1 3 '^unlearn: error: \(rank 1\) bad input seen by rank 1$'
agree_check 3 2 4 '^unlearn: error: \(rank 2\) bad input seen by rank 2$'
agree_check 3 0 3 '^unlearn: error: bad input seen by rank 0$'
agree_check 3 -1 5 '^unlearn: error: bad input seen by rank 0$'   # every rank fails: the lowest rank's message
agree_check 1 0 3 '^unlearn: error: bad input seen by rank 0$'

# no error: exit 0 and no message
out=$(timeout 60 $MPIRUN -np 3 "$BIN" agree 7 3 2>&1); rc=$?
if [ "$rc" -eq 0 ] && ! printf '%s\n' "$out" | grep -q 'error'; then tu_pass "no failing rank: exit 0, silent"; else
    tu_fail "no failing rank: exit $rc"; printf '%s\n' "$out" | tail -10 | sed 's/^/     | /'; fi

# internal error on rank 1 while ranks 0 and 2 wait in a barrier: the job ends (MPI_Abort), nonzero, one message
t0=$SECONDS
check_fails "fatal on rank 1 aborts all 3 ranks" \
    '^unlearn: rank 1: tests/mpi_dist\.c:[0-9]+: deliberate internal error on rank 1$' $MPIRUN -np 3 "$BIN" fatal 1
dt=$((SECONDS - t0))
if [ "$dt" -le 30 ]; then tu_pass "abort took ${dt}s (no hang)"; else tu_fail "abort took ${dt}s"; fi

tu_finish sh_dist
