#!/usr/bin/python3
"""synth.py - synthetic datasets for tests: an unlearn-dataset HDF5 file, or source folders in the real formats.

    /usr/bin/python3 data_tools/synth.py --out /tmp/s.h5 --n-train 600 --n-test 100 --classes 5 --channels 1 --size 12
    /usr/bin/python3 data_tools/synth.py --cifar-folder /tmp/c10 --n-train 500 --n-test 100            # CIFAR-10
    /usr/bin/python3 data_tools/synth.py --cifar-folder /tmp/c100 --cifar-layout 100 --n-train 400 --n-test 100
    /usr/bin/python3 data_tools/synth.py --idx-folder /tmp/idx --n-train 300 --n-test 50              # gzipped IDX
    /usr/bin/python3 data_tools/synth.py --latent-folder /tmp/lat --n-train 200 --classes 7            # fast-DiT .npy
    /usr/bin/python3 data_tools/synth.py --latent-npz /tmp/lat.npz --n-train 200 --classes 7

Samples: class k has a fixed prototype pattern P_k (a sum of two 2-D sinusoids per channel with class-dependent
frequencies and phases, values in [-1, 1]; a function of k and the shape only, not of --seed, so that pools made
with different seeds share their classes); a sample is P_k + 0.5 * Gaussian noise (float32), or for uint8
clip(round(127.5 + 80 * (P_k + 0.5 * noise)), 0, 255). A linear classifier separates the classes well.
Labels are balanced: of n samples, class i gets n // K + (1 if i < n % K else 0), in an order shuffled by --seed.

Modes (exactly one):
  --out FILE             an unlearn-dataset file (mean/std stored for uint8, and for float32 with --stats)
  --cifar-folder DIR     CIFAR-10 layout (data_batch_1..5, test_batch, batches.meta; --n-train split over 5
                         batches) or, with --cifar-layout 100, CIFAR-100 (train, test, meta; coarse = fine // 5);
                         pickled dicts with bytes keys exactly as the real files; images 3x32x32 uint8
  --idx-folder DIR       the four (Fashion-)MNIST IDX files, gzipped (plain with --idx-plain); 10 classes, 1 channel
  --latent-folder DIR    DIR/imagenet256_features/<i>.npy [1, C, H, W] float32 and DIR/imagenet256_labels/<i>.npy
                         [1] int64, i = 0 .. n-1 (fast-DiT layout); --n-train samples, no test split (write a
                         second pool with another --seed, or let convert_latents.py hold out a fraction)
  --latent-npz FILE      one .npz with `latents` (or --npz-key features) [N, C, H, W] float32 and `labels` [N]
"""
import argparse
import gzip
import os
import pickle
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common_h5 import DatasetWriter, InputError, main_guard  # noqa: E402

PROG = "synth"
PROTOTYPE_SEED = 0x5EED
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def prototypes(classes, c, h, w):
    """float64 [K, C, H, W] in [-1, 1]: per class and channel, the mean of two sinusoids."""
    rng = np.random.default_rng([PROTOTYPE_SEED, classes, c, h, w])
    yy, xx = np.meshgrid(np.arange(h) / h, np.arange(w) / w, indexing="ij")
    out = np.empty((classes, c, h, w))
    for k in range(classes):
        for ch in range(c):
            f = rng.uniform(0.5, 3.0, size=(2, 2))
            ph = rng.uniform(0, 2 * np.pi, size=2)
            out[k, ch] = 0.5 * (np.sin(2 * np.pi * (f[0, 0] * xx + f[0, 1] * yy) + ph[0]) +
                                np.sin(2 * np.pi * (f[1, 0] * xx - f[1, 1] * yy) + ph[1]))
    return out


def balanced_labels(rng, n, classes):
    """int64 [n], class i appearing n // K + (i < n % K) times, shuffled."""
    return rng.permutation(np.arange(n, dtype=np.int64) % classes)


def make_samples(rng, n, classes, c, size, dtype):
    """(images [n, C, size, size] of dtype, labels int64 [n])."""
    labels = balanced_labels(rng, n, classes)
    x = prototypes(classes, c, size, size)[labels] + 0.5 * rng.standard_normal((n, c, size, size))
    if np.dtype(dtype) == np.uint8:
        return np.clip(np.round(127.5 + 80.0 * x), 0, 255).astype(np.uint8), labels
    return x.astype(np.float32), labels


def write_pickle(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar(folder, layout, rng, n_train, n_test):
    os.makedirs(folder, exist_ok=True)
    k = 10 if layout == 10 else 100
    tr_x, tr_y = make_samples(rng, n_train, k, 3, 32, np.uint8)
    te_x, te_y = make_samples(rng, n_test, k, 3, 32, np.uint8)

    def files(prefix, n):
        return [f"{prefix}_{i:05d}.png".encode() for i in range(n)]

    if layout == 10:
        parts = np.array_split(np.arange(n_train), 5)
        for b, rows in enumerate(parts, start=1):
            write_pickle(os.path.join(folder, f"data_batch_{b}"), {
                b"batch_label": f"training batch {b} of 5".encode(), b"labels": [int(v) for v in tr_y[rows]],
                b"data": tr_x[rows].reshape(len(rows), -1), b"filenames": files(f"synth_train{b}", len(rows))})
        write_pickle(os.path.join(folder, "test_batch"), {
            b"batch_label": b"testing batch 1 of 1", b"labels": [int(v) for v in te_y],
            b"data": te_x.reshape(n_test, -1), b"filenames": files("synth_test", n_test)})
        write_pickle(os.path.join(folder, "batches.meta"), {
            b"num_cases_per_batch": len(parts[0]), b"label_names": [s.encode() for s in CIFAR10_NAMES],
            b"num_vis": 3072})
    else:
        for name, x, y in (("train", tr_x, tr_y), ("test", te_x, te_y)):
            write_pickle(os.path.join(folder, name), {
                b"filenames": files(f"synth_{name}", len(y)), b"batch_label": f"{name}ing batch 1 of 1".encode(),
                b"fine_labels": [int(v) for v in y], b"coarse_labels": [int(v) // 5 for v in y],
                b"data": x.reshape(len(y), -1)})
        write_pickle(os.path.join(folder, "meta"), {
            b"fine_label_names": [f"fine_{i:02d}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse_{i:02d}".encode() for i in range(20)]})
    print(f"wrote CIFAR-{layout} layout to {folder}: train {n_train}, test {n_test}, {k} classes")


def write_idx_file(path, array, plain):
    magic = 0x00000800 | array.ndim
    blob = struct.pack(f">I{array.ndim}I", magic, *array.shape) + np.ascontiguousarray(array, np.uint8).tobytes()
    if plain:
        with open(path, "wb") as f:
            f.write(blob)
    else:
        with gzip.open(path + ".gz", "wb", compresslevel=1) as f:
            f.write(blob)


def write_idx(folder, rng, n_train, n_test, size, plain):
    os.makedirs(folder, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x, y = make_samples(rng, n, 10, 1, size, np.uint8)
        write_idx_file(os.path.join(folder, f"{prefix}-images-idx3-ubyte"), x[:, 0], plain)
        write_idx_file(os.path.join(folder, f"{prefix}-labels-idx1-ubyte"), y.astype(np.uint8), plain)
    print(f"wrote IDX files ({'plain' if plain else 'gzipped'}) to {folder}: train {n_train}, test {n_test}, "
          f"{size}x{size}")


def write_latent_folder(folder, rng, n, classes, c, size):
    x, y = make_samples(rng, n, classes, c, size, np.float32)
    fdir = os.path.join(folder, "imagenet256_features")
    ldir = os.path.join(folder, "imagenet256_labels")
    os.makedirs(fdir, exist_ok=True)
    os.makedirs(ldir, exist_ok=True)
    for i in range(n):
        np.save(os.path.join(fdir, f"{i}.npy"), x[i:i + 1])          # [1, C, H, W], as fast-DiT writes them
        np.save(os.path.join(ldir, f"{i}.npy"), y[i:i + 1])          # [1]
    print(f"wrote {n} latent/label .npy pairs to {folder}: [{c},{size},{size}] float32, {classes} classes")


def main():
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0].split(" - ", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--out", metavar="FILE", help="write an unlearn-dataset HDF5 file")
    mode.add_argument("--cifar-folder", metavar="DIR", help="write a CIFAR python-version folder")
    mode.add_argument("--idx-folder", metavar="DIR", help="write (Fashion-)MNIST IDX files")
    mode.add_argument("--latent-folder", metavar="DIR", help="write per-sample latent/label .npy files")
    mode.add_argument("--latent-npz", metavar="FILE", help="write one .npz of latents and labels")
    p.add_argument("--n-train", type=int, default=1000, help="train samples (default 1000)")
    p.add_argument("--n-test", type=int, help="test samples (default 200; not for the latent modes)")
    p.add_argument("--classes", type=int, help="number of classes (default 10; fixed by --cifar-layout)")
    p.add_argument("--channels", type=int, help="channels (default 3, latent modes 4, IDX 1)")
    p.add_argument("--size", type=int, help="height = width (default 32, IDX 28)")
    p.add_argument("--dtype", choices=["uint8", "float32"], default="uint8", help="--out only (default uint8)")
    p.add_argument("--stats", action="store_true", help="--out with float32: store mean/std too")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise and the label order (default 0)")
    p.add_argument("--cifar-layout", type=int, choices=[10, 100], default=10, help="CIFAR-10 (default) or 100")
    p.add_argument("--idx-plain", action="store_true", help="write the IDX files without gzip")
    p.add_argument("--npz-key", choices=["latents", "features"], default="latents", help="latents array name")
    args = p.parse_args()

    rng = np.random.default_rng(args.seed)
    if args.n_train < 1 or (args.n_test is not None and args.n_test < 1):
        raise InputError("--n-train and --n-test must be at least 1")
    n_test = 200 if args.n_test is None else args.n_test
    if args.cifar_folder or args.idx_folder:
        fixed_c, fixed_k = (3, None) if args.cifar_folder else (1, 10)
        if args.cifar_folder:
            fixed_k = args.cifar_layout
        if args.channels not in (None, fixed_c) or args.classes not in (None, fixed_k) or \
                (args.cifar_folder and args.size not in (None, 32)):
            raise InputError(f"this layout fixes {fixed_c} channels and {fixed_k} classes"
                             f"{' and 32x32 images' if args.cifar_folder else ''}")
        if args.cifar_folder:
            if args.cifar_layout == 10 and args.n_train < 5:
                raise InputError("--n-train must be at least 5 for the 5 CIFAR-10 train batches")
            write_cifar(args.cifar_folder, args.cifar_layout, rng, args.n_train, n_test)
        else:
            write_idx(args.idx_folder, rng, args.n_train, n_test, args.size or 28, args.idx_plain)
        return
    k = args.classes or 10
    size = args.size or 32
    if k < 1 or size < 1 or (args.channels is not None and args.channels < 1):
        raise InputError("--classes, --channels and --size must be at least 1")
    if args.latent_folder or args.latent_npz:
        if args.n_test is not None:
            raise InputError("--n-test does not apply to the latent modes: they write one pool of --n-train samples")
        c = args.channels or 4
        if args.latent_folder:
            write_latent_folder(args.latent_folder, rng, args.n_train, k, c, size)
        else:
            x, y = make_samples(rng, args.n_train, k, c, size, np.float32)
            with open(args.latent_npz, "wb") as f:
                np.savez(f, **{args.npz_key: x, "labels": y})
            print(f"wrote {args.latent_npz}: '{args.npz_key}' [{args.n_train},{c},{size},{size}] float32, "
                  f"'labels' [{args.n_train}] int64, {k} classes")
        return
    c = args.channels or 3
    dtype = np.uint8 if args.dtype == "uint8" else np.float32
    tr = make_samples(rng, args.n_train, k, c, size, dtype)
    te = make_samples(rng, n_test, k, c, size, dtype)
    shapes = {"train": tr[0].shape, "test": te[0].shape}
    stats = dtype == np.uint8 or args.stats
    with DatasetWriter(args.out, shapes, dtype, k, stats=stats) as w:
        w.write("train", 0, *tr)
        w.write("test", 0, *te)
        w.finish(class_names=[f"class_{i}" for i in range(k)],
                 source=f"synth.py seed {args.seed}: {k} classes, {c}x{size}x{size} {args.dtype}")


if __name__ == "__main__":
    main_guard(PROG, main)
