#!/usr/bin/env bash
# tests/sh_data.sh - sharded loading at 1, 2, 3 and 4 ranks (tests/mpi_data.c): every run writes each rank's samples
# of every global batch (retain set, two epochs; forget set, one epoch; augmentation on) with a hash of the loaded
# values; the global batch sequence, reassembled from the ranks' parts, must be identical at every rank count and
# with the split cached in memory. The forget set's digest must be the same on every rank of every run.
cd "$(dirname "$0")/.." || exit 1
source tests/lib.sh
BIN=$BUILD/tests/mpi_data
if [ ! -x "$BIN" ]; then
    tu_fail "$BIN is not built (make BUILD=$BUILD tests-build)"
    tu_finish sh_data
    exit 1
fi
DATA=$TU_TMP/data.h5
check "write the test dataset" $MPIRUN -np 1 "$BIN" make "$DATA"

# global_sequence OUT: the concatenation of OUT.* sorted by (pool, epoch, batch, rank, position), rank and position
# dropped: "pool epoch batch gidx label hash" in global order.
global_sequence() {
    cat "$1".* | grep -v '^#' | sort -k1,1 -k2,2n -k3,3n -k4,4n -k5,5n | awk '{print $1, $2, $3, $6, $7, $8}'
}

runs=""
for spec in 1:rows 2:rows 3:rows 4:rows 2:cache 3:cache; do
    np=${spec%%:*}; mode=${spec##*:}
    out=$TU_TMP/out-$np-$mode
    check "read at $np rank(s), $mode" $MPIRUN -np "$np" "$BIN" read "$DATA" "$out" "$mode"
    n=$(ls "$out".* 2>/dev/null | wc -l)
    if [ "$n" -eq "$np" ]; then tu_pass "$np rank(s) wrote $n files"; else tu_fail "$np rank(s) wrote $n files"; fi
    global_sequence "$out" >"$out.seq"
    runs="$runs $np-$mode"
done

ref=$TU_TMP/out-1-rows.seq
lines=$(wc -l <"$ref")
# 203 samples, forget fraction 0.25 -> 51 forget + 152 retain; two retain epochs + one forget epoch
if [ "$lines" -eq $((2 * 152 + 51)) ]; then tu_pass "1 rank: $lines samples in the sequence"; else
    tu_fail "1 rank: $lines samples in the sequence, want $((2 * 152 + 51))"; fi
for r in $runs; do
    [ "$r" = 1-rows ] && continue
    if cmp -s "$ref" "$TU_TMP/out-$r.seq"; then tu_pass "global batches at $r equal those at 1 rank"; else
        tu_fail "global batches at $r differ from 1 rank"
        diff "$ref" "$TU_TMP/out-$r.seq" | head -10 | sed 's/^/     | /'
    fi
done
# the two epochs of the retain set visit the same samples in different orders
e0=$(awk '$1 == "retain" && $2 == 0 {print $4}' "$ref" | sort -n | md5sum)
e1=$(awk '$1 == "retain" && $2 == 1 {print $4}' "$ref" | sort -n | md5sum)
o0=$(awk '$1 == "retain" && $2 == 0 {print $4}' "$ref" | md5sum)
o1=$(awk '$1 == "retain" && $2 == 1 {print $4}' "$ref" | md5sum)
same_set=$([ "$e0" = "$e1" ] && echo yes || echo no); same_order=$([ "$o0" = "$o1" ] && echo yes || echo no)
if [ "$same_set" = yes ] && [ "$same_order" = no ]; then tu_pass "each epoch visits the retain set once, in a new order"
else tu_fail "epochs 0 and 1: same set $same_set (want yes), same order $same_order (want no)"; fi
digests=$(cat "$TU_TMP"/out-*.[0-9] | grep '^# split' | sort -u | wc -l)
if [ "$digests" -eq 1 ]; then tu_pass "one forget-set digest on every rank of every run"; else
    tu_fail "$digests different forget-set digests"; fi

tu_finish sh_data
