#!/usr/bin/env bash
# tests/sh_converters.sh - the dataset converters (data_tools/convert_*.py) and the synthetic generator (synth.py).
#   * real Fashion-MNIST (/usr/share/datasets/fashion-mnist, Debian's dataset-fashion-mnist) -> HDF5, checked
#     against the raw IDX bytes and the published per-class counts and mean/std;
#   * synthetic CIFAR-10/100 folders, IDX folders (gzipped and plain), latent folders and .npz files in the real
#     formats -> HDF5, each checked sample for sample against its source, read independently of the converters;
#   * bad inputs: each a nonzero exit with exactly one clear message;
#   * `unlearn info` accepts every converted file (skipped with a note while build/unlearn lacks `info`).
# The HDF5 checks are done by an independent reader below ($CHK), which does not import data_tools/common_h5.py.
cd "$(dirname "$0")/.." || exit 1
source tests/lib.sh
D=data_tools
T=$TU_TMP
CHK=$T/check_h5.py
FMNIST=/usr/share/datasets/fashion-mnist

cat >"$CHK" <<'EOF'
# check_h5.py FILE JSON - validates one unlearn-dataset file against docs/formats.md and the expectations in JSON:
#   n_train, n_test, classes, dtype, chw        sizes and types
#   counts: "balanced"                          class i has n // K + (i < n % K) samples in each split
#           "balanced_total"                    the same for train + test together (a random held-out split)
#           [[train counts], [test counts]]     exact counts
#   stats: true/false                           mean/std present and equal to a recomputation, or absent
#   names: [...]                                class_names
#   ref: {"kind": "idx"|"cifar"|"latent_folder"|"npz", ...}  compare every sample with the source files
import gzip, json, os, pickle, struct, sys
import numpy as np, h5py

path, want = sys.argv[1], json.loads(sys.argv[2])
bad = []
def expect(cond, what):
    if not cond:
        bad.append(what)

def as_str(v):
    return v.decode() if isinstance(v, bytes) else str(v)

def balanced(n, k):
    return [n // k + (1 if i < n % k else 0) for i in range(k)]

def read_idx(p):
    raw = (gzip.open(p) if p.endswith(".gz") else open(p, "rb")).read()
    nd = raw[3]
    dims = struct.unpack(f">{nd}I", raw[4:4 + 4 * nd])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * nd).reshape(dims)

def splitmix64(x):
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))

def compare(name, got, ref):
    if got.shape != ref.shape:
        bad.append(f"{name}: shape {got.shape} vs source {ref.shape}")
        return
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64)).reshape(-1)
    if diff.size and diff.max() > 0:          # a conversion copies values: exact equality is required
        i = int(np.argmax(diff > 0))
        bad.append(f"{name}: differs from its source, max abs err {diff.max():.3g}, first bad flat index {i}")
    else:
        print(f"  {name}: equal to its source ({got.size} values, max abs err 0)")

with h5py.File(path, "r") as f:
    a = f.attrs
    expect(as_str(a.get("format", b"")) == "unlearn-dataset", f"format attribute is {a.get('format')!r}")
    for key in ("format_version", "num_classes"):
        v = a.get(key)
        expect(v is not None and np.ndim(v) == 0 and np.issubdtype(np.asarray(v).dtype, np.integer),
               f"{key} is not an integer scalar: {v!r}")
    expect(int(a.get("format_version", -1)) == 1, "format_version != 1")
    k = int(a.get("num_classes", -1))
    expect(k == want["classes"], f"num_classes {k}, want {want['classes']}")
    data = {}
    for split in ("train", "test"):
        x, y = f[f"{split}/images"], f[f"{split}/labels"]
        n = want["n_" + split]
        expect(x.shape == (n, *want["chw"]), f"{split}/images shape {x.shape}, want {(n, *want['chw'])}")
        expect(x.dtype == np.dtype(want["dtype"]), f"{split}/images dtype {x.dtype}, want {want['dtype']}")
        expect(y.shape == (n,) and y.dtype == np.int64, f"{split}/labels {y.dtype}{y.shape}, want int64[{n}]")
        for d in (x, y):
            c = d.chunks
            expect(c is not None and c[1:] == d.shape[1:] and 1 <= c[0] <= max(256, 131072 * (d.ndim == 1)),
                   f"{d.name}: chunks {c} are not along N")
        if x.ndim == 4:
            expect(x.chunks[0] == 1 or np.prod(x.chunks) * x.dtype.itemsize <= (1 << 20),
                   f"{x.name}: chunk {x.chunks} exceeds 1 MiB")
        data[split] = (x[()], y[()])
        yv = data[split][1]
        expect(yv.size == 0 or (yv.min() >= 0 and yv.max() < k), f"{split}/labels outside [0, {k})")
    counts = [np.bincount(data[s][1], minlength=k).tolist() for s in ("train", "test")]
    if want.get("counts") == "balanced":
        expect(counts[0] == balanced(want["n_train"], k), f"train counts {counts[0]}")
        expect(counts[1] == balanced(want["n_test"], k), f"test counts {counts[1]}")
    elif want.get("counts") == "balanced_total":
        tot = [p + q for p, q in zip(*counts)]
        expect(tot == balanced(want["n_train"] + want["n_test"], k), f"train+test counts {tot}")
    elif want.get("counts") is not None:
        expect(counts == want["counts"], f"counts {counts}, want {want['counts']}")
    print(f"  counts train {counts[0][:12]}{'...' if k > 12 else ''} test {counts[1][:12]}{'...' if k > 12 else ''}")
    if want.get("names") is not None:
        names = [as_str(s) for s in a.get("class_names", [])]
        expect(names == want["names"], f"class_names {names}, want {want['names']}")
    if want.get("stats"):
        xt = data["train"][0].astype(np.float64)
        if want["dtype"] == "uint8":
            xt /= 255.0
        m, s = xt.mean(axis=(0, 2, 3)), xt.std(axis=(0, 2, 3))
        gm, gs = np.asarray(a.get("mean", [])), np.asarray(a.get("std", []))
        ok = gm.shape == m.shape and gs.shape == s.shape and gm.dtype == np.float32 and gs.dtype == np.float32
        expect(ok, f"mean/std attributes {gm.dtype}{gm.shape} {gs.dtype}{gs.shape}, want float32[{m.size}]")
        if ok:
            # float32 storage (rel 6e-8) plus float64 summation order: 1e-5 relative is ample and still tight
            err = max(np.max(np.abs(gm - m) / np.maximum(np.abs(m), 1e-3)), np.max(np.abs(gs - s) / s))
            print(f"  mean/std vs recomputation: max rel err {err:.2e}")
            expect(err < 1e-5, f"mean/std differ from a recomputation by rel {err:.2e}")
        if "published_mean" in want:
            # published Fashion-MNIST statistics are rounded to 4 decimals: 5e-4 covers the rounding
            expect(abs(float(gm[0]) - want["published_mean"]) < 5e-4 and abs(float(gs[0]) - want["published_std"])
                   < 5e-4, f"mean/std {gm} {gs} differ from the published {want['published_mean']}/"
                   f"{want['published_std']}")
    else:
        expect("mean" not in a and "std" not in a, "mean/std present but not requested")

ref = want.get("ref")
if ref and ref["kind"] == "idx":
    src = ref["src"]
    for split, pre in (("train", "train"), ("test", "t10k")):
        ext = ".gz" if os.path.exists(f"{src}/{pre}-images-idx3-ubyte.gz") else ""
        compare(f"{split}/images", data[split][0][:, 0], read_idx(f"{src}/{pre}-images-idx3-ubyte{ext}"))
        compare(f"{split}/labels", data[split][1], read_idx(f"{src}/{pre}-labels-idx1-ubyte{ext}"))
elif ref and ref["kind"] == "cifar":
    src, c10 = ref["src"], os.path.exists(os.path.join(ref["src"], "data_batch_1"))
    key = b"labels" if c10 else ref["labels"].encode() + b"_labels"
    for split, files in (("train", [f"data_batch_{i}" for i in range(1, 6)] if c10 else ["train"]),
                         ("test", ["test_batch"] if c10 else ["test"])):
        ds = [pickle.load(open(os.path.join(src, n), "rb"), encoding="bytes") for n in files]
        compare(f"{split}/images", data[split][0].reshape(len(data[split][0]), -1),
                np.concatenate([d[b"data"] for d in ds]))
        compare(f"{split}/labels", data[split][1], np.concatenate([np.asarray(d[key]) for d in ds]))
elif ref and ref["kind"] in ("latent_folder", "npz"):
    def load_pool(p):
        if p.endswith(".npz"):
            z = np.load(p)
            return z["latents" if "latents" in z.files else "features"], z["labels"]
        n = len(os.listdir(f"{p}/imagenet256_features"))
        return (np.stack([np.load(f"{p}/imagenet256_features/{i}.npy")[0] for i in range(n)]),
                np.array([int(np.load(f"{p}/imagenet256_labels/{i}.npy")[0]) for i in range(n)]))
    x, y = load_pool(ref["src"])
    if "test" in ref:
        parts = {"train": (x, y), "test": load_pool(ref["test"])}
    else:   # the documented rule: the round(F*N) smallest splitmix64(splitmix64(seed) ^ i) are test
        n = len(y)
        keys = splitmix64(splitmix64(np.array([ref["seed"]], np.uint64)) ^ np.arange(n, dtype=np.uint64))
        mask = np.zeros(n, bool)
        mask[np.argsort(keys, kind="stable")[:int(round(ref["fraction"] * n))]] = True
        parts = {"train": (x[~mask], y[~mask]), "test": (x[mask], y[mask])}
    for split in ("train", "test"):
        compare(f"{split}/images", data[split][0], parts[split][0].astype(np.float32))
        compare(f"{split}/labels", data[split][1], parts[split][1])

for b in bad:
    print("  BAD " + b)
sys.exit(1 if bad else 0)
EOF

h5check() {  # what file json: converted file passes $CHK
    check "$1" "$PY" "$CHK" "$2" "$3"
}

# ---------------------------------------------------------------- real Fashion-MNIST
FM_NAMES='["T-shirt/top","Trouser","Pullover","Dress","Coat","Sandal","Shirt","Sneaker","Bag","Ankle boot"]'
FM_COUNTS='[[6000,6000,6000,6000,6000,6000,6000,6000,6000,6000],[1000,1000,1000,1000,1000,1000,1000,1000,1000,1000]]'
if [ -d "$FMNIST" ]; then
    check "convert real Fashion-MNIST" "$PY" $D/convert_idx.py --out "$T/fmnist.h5"
    # published Fashion-MNIST train statistics: mean 0.2860, std 0.3530
    h5check "Fashion-MNIST: 60000/10000, 6000/1000 per class, uint8 [1,28,28], attrs, bytes equal the IDX files" \
        "$T/fmnist.h5" "{\"n_train\":60000,\"n_test\":10000,\"classes\":10,\"dtype\":\"uint8\",\"chw\":[1,28,28],
        \"counts\":$FM_COUNTS,\"stats\":true,\"names\":$FM_NAMES,\"published_mean\":0.2860,\"published_std\":0.3530,
        \"ref\":{\"kind\":\"idx\",\"src\":\"$FMNIST\"}}"
    CONVERTED="$T/fmnist.h5"
else
    echo "note: $FMNIST not found (Debian package dataset-fashion-mnist): real Fashion-MNIST check not run"
    CONVERTED=""
fi

# ---------------------------------------------------------------- synthetic sources in the real formats
check "synth: CIFAR-10 folder" "$PY" $D/synth.py --cifar-folder "$T/c10" --n-train 503 --n-test 97 --seed 1
check "convert CIFAR-10" "$PY" $D/convert_cifar.py --src "$T/c10" --out "$T/c10.h5"
h5check "CIFAR-10: shapes, counts, names, stats, samples equal the batches" "$T/c10.h5" \
    "{\"n_train\":503,\"n_test\":97,\"classes\":10,\"dtype\":\"uint8\",\"chw\":[3,32,32],\"counts\":\"balanced\",
    \"stats\":true,\"names\":[\"airplane\",\"automobile\",\"bird\",\"cat\",\"deer\",\"dog\",\"frog\",\"horse\",
    \"ship\",\"truck\"],\"ref\":{\"kind\":\"cifar\",\"src\":\"$T/c10\"}}"
check "synth: CIFAR-100 folder" "$PY" $D/synth.py --cifar-folder "$T/c100" --cifar-layout 100 --n-train 400 \
    --n-test 200 --seed 2
check "convert CIFAR-100 fine" "$PY" $D/convert_cifar.py --src "$T/c100" --out "$T/c100f.h5" --gzip 1
h5check "CIFAR-100 fine: 100 classes, gzip, samples equal the source" "$T/c100f.h5" \
    "{\"n_train\":400,\"n_test\":200,\"classes\":100,\"dtype\":\"uint8\",\"chw\":[3,32,32],\"counts\":\"balanced\",
    \"stats\":true,\"ref\":{\"kind\":\"cifar\",\"src\":\"$T/c100\",\"labels\":\"fine\"}}"
check "convert CIFAR-100 coarse" "$PY" $D/convert_cifar.py --src "$T/c100" --labels coarse --out "$T/c100c.h5"
h5check "CIFAR-100 coarse: 20 classes, coarse names, samples equal the source" "$T/c100c.h5" \
    "{\"n_train\":400,\"n_test\":200,\"classes\":20,\"dtype\":\"uint8\",\"chw\":[3,32,32],\"counts\":\"balanced\",
    \"stats\":true,\"names\":[$(seq -f '"coarse_%02g"' 0 19 | paste -sd,)],
    \"ref\":{\"kind\":\"cifar\",\"src\":\"$T/c100\",\"labels\":\"coarse\"}}"
check "the gzip level is stored" "$PY" -c "import h5py,sys; d=h5py.File(sys.argv[1])['train/images'];
sys.exit(0 if d.compression == 'gzip' and d.compression_opts == 1 else 1)" "$T/c100f.h5"

check "synth: gzipped IDX folder" "$PY" $D/synth.py --idx-folder "$T/idx" --n-train 301 --n-test 53 --size 20
check "convert synthetic IDX (mnist names)" "$PY" $D/convert_idx.py --src "$T/idx" --name mnist --out "$T/idx.h5"
h5check "IDX gz: 20x20, counts, digit names, samples equal the source" "$T/idx.h5" \
    "{\"n_train\":301,\"n_test\":53,\"classes\":10,\"dtype\":\"uint8\",\"chw\":[1,20,20],\"counts\":\"balanced\",
    \"stats\":true,\"names\":[\"0\",\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"],
    \"ref\":{\"kind\":\"idx\",\"src\":\"$T/idx\"}}"
check "synth: plain IDX folder" "$PY" $D/synth.py --idx-folder "$T/idxp" --idx-plain --n-train 40 --n-test 12
check "convert plain IDX" "$PY" $D/convert_idx.py --src "$T/idxp" --out "$T/idxp.h5"
h5check "IDX plain: samples equal the source" "$T/idxp.h5" \
    "{\"n_train\":40,\"n_test\":12,\"classes\":10,\"dtype\":\"uint8\",\"chw\":[1,28,28],\"counts\":\"balanced\",
    \"stats\":true,\"ref\":{\"kind\":\"idx\",\"src\":\"$T/idxp\"}}"

check "synth: latent folder" "$PY" $D/synth.py --latent-folder "$T/lat" --n-train 230 --classes 7 --seed 4
check "convert latent folder, --test-fraction 0.1" "$PY" $D/convert_latents.py --src "$T/lat" \
    --test-fraction 0.1 --seed 5 --stats --out "$T/lat.h5"
h5check "latents (folder): 207/23 by the documented rule, float32 [4,32,32], stats" "$T/lat.h5" \
    "{\"n_train\":207,\"n_test\":23,\"classes\":7,\"dtype\":\"float32\",\"chw\":[4,32,32],
    \"counts\":\"balanced_total\",\"stats\":true,
    \"ref\":{\"kind\":\"latent_folder\",\"src\":\"$T/lat\",\"fraction\":0.1,\"seed\":5}}"
check "same seed, same split; another seed, another split" "$PY" -c "
import subprocess, sys, h5py, numpy as np
def run(seed, out):
    subprocess.run([sys.executable, '$D/convert_latents.py', '--src', '$T/lat', '--test-fraction', '0.1',
                    '--seed', str(seed), '--out', out], check=True, stdout=subprocess.DEVNULL)
    with h5py.File(out) as f:
        return f['test/images'][()]
a, b, c = run(5, '$T/s5a.h5'), run(5, '$T/s5b.h5'), run(6, '$T/s6.h5')
sys.exit(0 if np.array_equal(a, b) and a.shape == c.shape and not np.array_equal(a, c) else 1)"
check "synth: latent npz ('features' key)" "$PY" $D/synth.py --latent-npz "$T/lat.npz" --npz-key features \
    --n-train 61 --classes 7 --seed 9 --channels 4 --size 8
check "synth: small latent folder" "$PY" $D/synth.py --latent-folder "$T/lat8" --n-train 90 --classes 7 \
    --size 8 --seed 8
check "convert latent folder + --test npz" "$PY" $D/convert_latents.py --src "$T/lat8" --test "$T/lat.npz" \
    --out "$T/lat2.h5"
h5check "latents (folder + npz test): 90/61, no stats, samples equal the sources" "$T/lat2.h5" \
    "{\"n_train\":90,\"n_test\":61,\"classes\":7,\"dtype\":\"float32\",\"chw\":[4,8,8],\"counts\":\"balanced\",
    \"stats\":false,\"ref\":{\"kind\":\"npz\",\"src\":\"$T/lat8\",\"test\":\"$T/lat.npz\"}}"
check "convert latent npz, --test-fraction, --num-classes 9" "$PY" $D/convert_latents.py --src "$T/lat.npz" \
    --test-fraction 0.25 --seed 1 --num-classes 9 --out "$T/lat3.h5"
h5check "latents (npz): 46/15, 9 classes" "$T/lat3.h5" \
    "{\"n_train\":46,\"n_test\":15,\"classes\":9,\"dtype\":\"float32\",\"chw\":[4,8,8],\"stats\":false,
    \"ref\":{\"kind\":\"npz\",\"src\":\"$T/lat.npz\",\"fraction\":0.25,\"seed\":1}}"

check "synth: direct float32 dataset" "$PY" $D/synth.py --out "$T/s.h5" --n-train 150 --n-test 40 --classes 6 \
    --channels 2 --size 9 --dtype float32 --stats
h5check "synth direct: schema, balanced counts, stats" "$T/s.h5" \
    "{\"n_train\":150,\"n_test\":40,\"classes\":6,\"dtype\":\"float32\",\"chw\":[2,9,9],\"counts\":\"balanced\",
    \"stats\":true,\"names\":[\"class_0\",\"class_1\",\"class_2\",\"class_3\",\"class_4\",\"class_5\"]}"
# synth's classes must be learnable: nearest class mean on train predicts test far above chance (1/6)
check "synth classes are learnable (nearest class mean > 90% on test)" "$PY" -c "
import h5py, sys, numpy as np
f = h5py.File('$T/s.h5')
x, y = f['train/images'][()].reshape(150, -1), f['train/labels'][()]
xt, yt = f['test/images'][()].reshape(40, -1), f['test/labels'][()]
m = np.stack([x[y == k].mean(0) for k in range(6)])
acc = (np.argmin(((xt[:, None] - m[None]) ** 2).sum(-1), 1) == yt).mean()
print('accuracy', acc); sys.exit(0 if acc > 0.9 else 1)"

# ---------------------------------------------------------------- bad inputs: nonzero exit, one clear message
check_fails "missing source folder" "/nonexistent-src: no such folder" \
    "$PY" $D/convert_idx.py --src /nonexistent-src --out "$T/bad.h5"
mkdir -p "$T/trunc" && cp "$T"/idx/* "$T/trunc/"
head -c 2000 "$T/idx/train-images-idx3-ubyte.gz" >"$T/trunc/train-images-idx3-ubyte.gz"
check_fails "truncated gzipped IDX file" "train-images-idx3-ubyte.gz: truncated gzip stream" \
    "$PY" $D/convert_idx.py --src "$T/trunc" --out "$T/bad.h5"
mkdir -p "$T/truncp" && cp "$T"/idxp/* "$T/truncp/"
head -c 5000 "$T/idxp/t10k-images-idx3-ubyte" >"$T/truncp/t10k-images-idx3-ubyte"
check_fails "truncated plain IDX file" "t10k-images-idx3-ubyte: truncated: header says 12 x 28 x 28" \
    "$PY" $D/convert_idx.py --src "$T/truncp" --out "$T/bad.h5"
mkdir -p "$T/magic" && cp "$T"/idxp/* "$T/magic/"
printf '\x00\x00\x08\x03' | dd of="$T/magic/train-labels-idx1-ubyte" conv=notrunc status=none
check_fails "IDX labels file with the images magic" \
    "train-labels-idx1-ubyte: wrong magic number 0x00000803, expected 0x00000801" \
    "$PY" $D/convert_idx.py --src "$T/magic" --out "$T/bad.h5"
mkdir -p "$T/c10bad" && cp "$T"/c10/* "$T/c10bad/"
"$PY" -c "import pickle, sys
p = sys.argv[1]; d = pickle.load(open(p, 'rb'), encoding='bytes'); d[b'data'] = d[b'data'][:, :3000]
pickle.dump(d, open(p, 'wb'), protocol=2)" "$T/c10bad/data_batch_3"
check_fails "CIFAR batch with a wrong size" "data_batch_3: b'data' has shape \[[0-9]+, 3000\], expected \[N, 3072\]" \
    "$PY" $D/convert_cifar.py --src "$T/c10bad" --out "$T/bad.h5"
check_fails "CIFAR-10 folder with --labels coarse" "applies to CIFAR-100 only" \
    "$PY" $D/convert_cifar.py --src "$T/c10" --labels coarse --out "$T/bad.h5"
mkdir -p "$T/c10evil" && cp "$T"/c10/* "$T/c10evil/"
"$PY" -c "import pickle, os, sys
class E:
    def __reduce__(self): return (os.system, ('touch $T/pwned',))
pickle.dump(E(), open(sys.argv[1], 'wb'), protocol=2)" "$T/c10evil/data_batch_1"
check_fails "CIFAR pickle that would run code is refused" "data_batch_1: not a readable CIFAR pickle.*posix.system" \
    "$PY" $D/convert_cifar.py --src "$T/c10evil" --out "$T/bad.h5"
check "... and ran nothing" test ! -e "$T/pwned"
cp -r "$T/lat8" "$T/latbad" && rm "$T/latbad/imagenet256_labels/17.npy" "$T/latbad/imagenet256_labels/3.npy"
check_fails "latent files without labels" "imagenet256_labels: latent files without labels: 2 of 90 .*first: 3.npy" \
    "$PY" $D/convert_latents.py --src "$T/latbad" --test-fraction 0.1 --out "$T/bad.h5"
"$PY" -c "import numpy as np; np.savez('$T/nolab.npz', latents=np.zeros((5, 4, 8, 8), np.float32))"
check_fails "latent npz without labels" "nolab.npz: latent files without labels" \
    "$PY" $D/convert_latents.py --src "$T/nolab.npz" --test-fraction 0.2 --out "$T/bad.h5"
check_fails "latents: no test split given" "one of the arguments --test --test-fraction is required" \
    "$PY" $D/convert_latents.py --src "$T/lat8" --out "$T/bad.h5"
check "no output file is left behind by the failures" test -z "$(ls "$T" | grep -E '^bad\.h5')"

# ---------------------------------------------------------------- help texts
for tool in convert_idx convert_cifar convert_latents synth; do
    check "$tool --help documents --out" bash -c "'$PY' $D/$tool.py --help | grep -q -- '--out'"
done

# ---------------------------------------------------------------- unlearn info accepts the converted files
if [ -x "$UNLEARN" ] && "$UNLEARN" --help 2>&1 | grep -qE '(^|[^[:alnum:]_-])info([^[:alnum:]_-]|$)'; then
    for f in $CONVERTED "$T/c10.h5" "$T/c100f.h5" "$T/c100c.h5" "$T/idx.h5" "$T/lat.h5" "$T/lat2.h5" "$T/s.h5"; do
        check "unlearn info accepts $(basename "$f")" "$UNLEARN" info "$f"
    done
else
    echo "note: $UNLEARN does not offer 'info' yet: the converted files were not checked by unlearn info"
fi

tu_finish sh_converters
