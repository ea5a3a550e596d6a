#!/usr/bin/env bash
# tests/sh_info.sh - `unlearn info FILE` on datasets and checkpoints:
#   * a dataset from data_tools/synth.py (fixed-length strings, uint8, mean/std) and one written with plain h5py
#     defaults (variable-length strings, float32 latents, int32 labels, no mean/std): exit 0 and a description
#     with the splits, shapes, dtypes and per-class counts (compared with counts computed here by numpy);
#   * a checkpoint written by Python from the layout and checksum formula in include/ckpt.h (an independent
#     implementation): exit 0, arch, position and parameter table;
#   * bad files: each a nonzero exit and exactly one message naming the file and the problem, also under mpirun
#     with 2 ranks (one message, not one per rank).
cd "$(dirname "$0")/.." || exit 1
source tests/lib.sh
T=$TU_TMP
if [ ! -x "$UNLEARN" ]; then
    tu_fail "$UNLEARN is not built (make BUILD=$BUILD)"
    tu_finish sh_info
    exit 1
fi

# ---------------------------------------------------------------- good datasets
check "synth.py writes a dataset" $PY data_tools/synth.py --out "$T/synth.h5" --n-train 90 --n-test 31 \
    --classes 4 --channels 3 --size 6
out=$("$UNLEARN" info "$T/synth.h5" 2>&1); rc=$?
want_counts=$($PY - "$T/synth.h5" <<'PYEOF'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
tr = np.bincount(f["train/labels"][...], minlength=4); te = np.bincount(f["test/labels"][...], minlength=4)
print(" ".join(f"{k}:{tr[k]}/{te[k]}" for k in range(4)))
PYEOF
)
got_counts=$(printf '%s\n' "$out" | awk '$1 ~ /^[0-9]+$/ && NF >= 3 {print $1 ":" $(NF-1) "/" $NF}' |
    tr '\n' ' ' | sed 's/ $//')
if [ "$rc" -eq 0 ] && printf '%s\n' "$out" | grep -q 'unlearn-dataset version 1, valid' &&
   printf '%s\n' "$out" | grep -qE '^  train +90 +\[90, 3, 6, 6\] +uint8' &&
   printf '%s\n' "$out" | grep -qE '^  test +31 +\[31, 3, 6, 6\] +uint8' &&
   printf '%s\n' "$out" | grep -q '^  mean ' && [ "$got_counts" = "$want_counts" ]; then
    tu_pass "info on the synth.py dataset (per-class counts $got_counts)"
else
    tu_fail "info on the synth.py dataset: exit $rc, counts '$got_counts' want '$want_counts'"
    printf '%s\n' "$out" | head -30 | sed 's/^/     | /'
fi

$PY - "$T" <<'PYEOF'
import sys, h5py, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(1)
def latents(path, labels_tr, fmt="unlearn-dataset", version=1, classes=3, drop=None):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = fmt                        # h5py default: variable-length UTF-8 string
        f.attrs["format_version"] = version
        f.attrs["num_classes"] = classes
        f.attrs["class_names"] = ["cat", "dog", "bird"]
        for split, lab in (("train", labels_tr), ("test", np.array([0, 1, 2, 1], np.int32))):
            if split == drop:
                continue
            g = f.create_group(split)
            g.create_dataset("images", data=rng.standard_normal((len(lab), 4, 2, 3)).astype(np.float32),
                             chunks=(2, 4, 2, 3))
            g.create_dataset("labels", data=lab)
good = np.array([0, 1, 2, 2, 1, 0, 2], np.int32)
latents(f"{d}/latents.h5", good)
latents(f"{d}/bad_label.h5", np.array([0, 1, 2, 3, 1, 0, 2], np.int32))
latents(f"{d}/bad_format.h5", good, fmt="something-else")
latents(f"{d}/bad_version.h5", good, version=2)
latents(f"{d}/no_test.h5", good, drop="test")
open(f"{d}/text.h5", "w").write("this is not HDF5\n")
PYEOF
out=$("$UNLEARN" info "$T/latents.h5" 2>&1); rc=$?
if [ "$rc" -eq 0 ] && printf '%s\n' "$out" | grep -qE '^  train +7 +\[7, 4, 2, 3\] +float32 .*int32' &&
   printf '%s\n' "$out" | grep -qE '^ +2  bird +3 +1$' && printf '%s\n' "$out" | grep -q 'normalisation  none'; then
    tu_pass "info on an h5py-default latent dataset (variable-length strings, int32 labels)"
else
    tu_fail "info on the latent dataset: exit $rc"; printf '%s\n' "$out" | head -30 | sed 's/^/     | /'
fi

# ---------------------------------------------------------------- bad datasets: one message each
check_fails "label out of range" \
    "^unlearn: error: $T/bad_label.h5: dataset 'train/labels': label 3 at index 3 is outside \[0, 3\)" \
    "$UNLEARN" info "$T/bad_label.h5"
check_fails "wrong format attribute" "^unlearn: error: $T/bad_format.h5: attribute 'format' is \"something-else\"" \
    "$UNLEARN" info "$T/bad_format.h5"
check_fails "wrong format version" "^unlearn: error: $T/bad_version.h5: attribute 'format_version' is 2" \
    "$UNLEARN" info "$T/bad_version.h5"
check_fails "missing test group" "^unlearn: error: $T/no_test.h5: no group 'test'" "$UNLEARN" info "$T/no_test.h5"
check_fails "not an HDF5 file" "^unlearn: error: $T/text.h5: not an HDF5 file" "$UNLEARN" info "$T/text.h5"
check_fails "missing file" "^unlearn: error: $T/none.h5: no such file" "$UNLEARN" info "$T/none.h5"
check_fails "bad dataset under mpirun -np 2: one message" \
    "^unlearn: error: $T/bad_label.h5: dataset 'train/labels'" $MPIRUN -np 2 "$UNLEARN" info "$T/bad_label.h5"

# ---------------------------------------------------------------- checkpoints written from the documented layout
$PY - "$T" <<'PYEOF'
import sys, hashlib, h5py, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(2)
def write(path, tamper=None, bad_state=False):
    data = {
        "params/fc1.weight": rng.standard_normal((5, 12)).astype(np.float32),
        "params/fc1.bias": rng.standard_normal(5).astype(np.float32),
        "params/fc2.weight": rng.standard_normal((3, 5)).astype(np.float32),
        "buffers/bn.running_mean": np.zeros(5, np.float32),
        "state/m/fc1.weight": np.zeros((5, 12), np.float32),
        "state/m/fc1.bias": np.zeros(5 if not bad_state else 4, np.float32),
        "state/m/fc2.weight": np.zeros((3, 5), np.float32),
    }
    h = hashlib.sha256()
    for p in sorted(data):
        a = data[p]
        h.update(p.encode() + b"\0")
        h.update(np.array([a.ndim, *a.shape], "<i8").tobytes())
        h.update(np.ascontiguousarray(a, "<f4").tobytes())
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "unlearn-checkpoint"
        f.attrs["format_version"] = np.int64(1)
        f.attrs["arch"] = "mlp"
        f.attrs["model_spec"] = "mlp 12-5-3"
        f.attrs["step"] = np.int64(77)
        f.attrs["epoch"] = np.int64(2)
        f.attrs["batch"] = np.int64(5)
        f.attrs["rng_state"] = np.array([1, 2**64 - 1], np.uint64)
        f.attrs["checksum"] = h.hexdigest()
        for p, a in data.items():
            if p == tamper:
                a = a.copy(); a.flat[0] += 1.0
            f.create_dataset(p, data=a)
write(f"{d}/ckpt.h5")
write(f"{d}/ckpt_tampered.h5", tamper="params/fc2.weight")
write(f"{d}/ckpt_badstate.h5", bad_state=True)
PYEOF
out=$("$UNLEARN" info "$T/ckpt.h5" 2>&1); rc=$?
has() { printf '%s\n' "$out" | grep -qE -- "$1"; }
if [ "$rc" -eq 0 ] && has 'unlearn-checkpoint version 1, valid \(checksum sha256 .* verified\)' &&
   has '^  arch +mlp$' && has 'step 77, epoch 2, batch 5' && has 'parameters: 3 tensors, 80 values' &&
   has '^ +fc1.weight +\[5, 12\] +60$' && has 'state/m \(per parameter\): 3 tensors'; then
    tu_pass "info on a checkpoint written by Python from the documented layout and checksum"
else
    tu_fail "info on the Python checkpoint: exit $rc"; printf '%s\n' "$out" | head -30 | sed 's/^/     | /'
fi
check_fails "checkpoint with a modified value" "^unlearn: error: $T/ckpt_tampered.h5: checksum mismatch" \
    "$UNLEARN" info "$T/ckpt_tampered.h5"
check_fails "checkpoint with a state that does not match its parameter" \
    "^unlearn: error: $T/ckpt_badstate.h5: 'state/m/fc1.bias' has shape \[4\] but parameter 'fc1.bias' has \[5\]" \
    "$UNLEARN" info "$T/ckpt_badstate.h5"
head -c 3000 "$T/ckpt.h5" >"$T/ckpt_truncated.h5"
check_fails "truncated checkpoint" "^unlearn: error: $T/ckpt_truncated.h5: the file is truncated" \
    "$UNLEARN" info "$T/ckpt_truncated.h5"
check_fails "no arguments" "^usage: unlearn info FILE" "$UNLEARN" info

tu_finish sh_info
