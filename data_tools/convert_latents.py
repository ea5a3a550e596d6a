#!/usr/bin/python3
"""convert_latents.py - VAE latents (e.g. ImageNet 256x256 -> [4, 32, 32]) to an unlearn-dataset HDF5 file.

    # a fast-DiT feature folder, 5% of it held out as the test split:
    /usr/bin/python3 data_tools/convert_latents.py --src features/ --test-fraction 0.05 --seed 0 \\
        --out data/imagenet-latents.h5
    # separate train and test sources, with per-channel statistics:
    /usr/bin/python3 data_tools/convert_latents.py --src train.npz --test val.npz --stats --out data/in-lat.h5

A source is one of
  * a folder of per-sample .npy files, the layout of fast-DiT's extract_features.py:
        SRC/<prefix>_features/<name>.npy   one latent, [1, C, H, W] or [C, H, W], any float type
        SRC/<prefix>_labels/<name>.npy     its integer label, shape [], [1] or [1, 1]
    (e.g. imagenet256_features/ and imagenet256_labels/; plain features/ and labels/ work too). Feature and label
    files are matched by file name; every feature file needs its label file and vice versa. Samples are ordered by
    file name, numerically when every name is an integer (0.npy, 1.npy, ..., 10.npy), else lexicographically.
  * one .npz file with an array `latents` or `features` [N, C, H, W] (or [N, 1, C, H, W]) and `labels` [N].
The test split comes either from a second source (--test) or from --test-fraction F of the --src samples: the
round(F * N) samples whose keys splitmix64(splitmix64(seed) XOR index) are smallest, index = position in the order
above, so the split is a pure function of (seed, N) and stays in source order. Output: float32 images [N, C, H, W],
int64 labels; per-channel mean/std of the train split only with --stats; num_classes = --num-classes, or the
largest label + 1. A folder source is streamed (memory stays small); an .npz is loaded whole.
"""
import argparse
import os
import sys
import zipfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common_h5 import DatasetWriter, InputError, add_common_args, main_guard  # noqa: E402

PROG = "convert_latents"
BLOCK = 1024            # samples per write when streaming a folder


def splitmix64(x):
    """splitmix64 finaliser on a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def test_mask(n, fraction, seed):
    """bool [n]: True for the round(fraction * n) held-out samples (see the module comment)."""
    n_test = int(round(fraction * n))
    if n_test < 1 or n_test > n - 1:
        raise InputError(f"--test-fraction {fraction} of {n} samples gives {n_test} test samples; "
                         "both splits need at least one")
    s = splitmix64(np.array([seed], dtype=np.uint64))
    keys = splitmix64(s ^ np.arange(n, dtype=np.uint64))
    mask = np.zeros(n, dtype=bool)
    mask[np.argsort(keys, kind="stable")[:n_test]] = True
    return mask


def _sort_names(names):
    stems = [os.path.splitext(n)[0] for n in names]
    if all(s.isdigit() for s in stems):
        return [n for _, n in sorted(zip((int(s) for s in stems), names))]
    return sorted(names)


class FolderSource:
    """Per-sample .npy files; loads the labels eagerly (small) and the latents on demand."""

    def __init__(self, path):
        self.path = path
        subdirs = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
        pairs = [(d, d[:-len("features")] + "labels") for d in subdirs if d.endswith("features")]
        pairs = [(f, lab) for f, lab in pairs if lab in subdirs]
        if not pairs:
            feats = [d for d in subdirs if d.endswith("features")]
            if feats:
                raise InputError(f"{os.path.join(path, feats[0])}: latent files without labels "
                                 f"(no {feats[0][:-len('features')]}labels folder next to it)")
            raise InputError(f"{path}: no <prefix>_features/ and <prefix>_labels/ folders "
                             "(e.g. imagenet256_features/, imagenet256_labels/)")
        if len(pairs) > 1:
            raise InputError(f"{path}: several feature folders ({', '.join(f for f, _ in pairs)}); "
                             "point --src at a folder holding one pair")
        self.fdir = os.path.join(path, pairs[0][0])
        self.ldir = os.path.join(path, pairs[0][1])
        fnames = {n for n in os.listdir(self.fdir) if n.endswith(".npy")}
        lnames = {n for n in os.listdir(self.ldir) if n.endswith(".npy")}
        if not fnames:
            raise InputError(f"{self.fdir}: no .npy feature files")
        missing = _sort_names(list(fnames - lnames))
        if missing:
            raise InputError(f"{self.ldir}: latent files without labels: {len(missing)} of {len(fnames)} feature "
                             f"files have no label file of the same name (first: {missing[0]})")
        extra = _sort_names(list(lnames - fnames))
        if extra:
            raise InputError(f"{self.fdir}: labels without latent files: {len(extra)} label files have no feature "
                             f"file of the same name (first: {extra[0]})")
        self.names = _sort_names(list(fnames))
        self.n = len(self.names)
        self.labels = np.empty(self.n, dtype=np.int64)
        for i, name in enumerate(self.names):
            self.labels[i] = _read_label(os.path.join(self.ldir, name))
        self.sample_shape = self._latent(0).shape

    def _latent(self, i):
        path = os.path.join(self.fdir, self.names[i])
        x = _load_npy(path)
        if x.ndim == 4 and x.shape[0] == 1:
            x = x[0]
        if x.ndim != 3:
            raise InputError(f"{path}: latent has shape {list(x.shape)}, expected [1, C, H, W] or [C, H, W]")
        if not np.issubdtype(x.dtype, np.floating):
            raise InputError(f"{path}: latent has dtype {x.dtype}, expected a float type")
        if i > 0 and x.shape != self.sample_shape:
            raise InputError(f"{path}: latent has shape {list(x.shape)}, the first file "
                             f"({self.names[0]}) has {list(self.sample_shape)}")
        return x

    def latents(self, rows):
        """float32 [len(rows), C, H, W]."""
        x = np.stack([self._latent(i) for i in rows]).astype(np.float32)
        bad = ~np.isfinite(x.reshape(len(rows), -1)).all(axis=1)
        if bad.any():
            path = os.path.join(self.fdir, self.names[rows[int(np.argmax(bad))]])
            raise InputError(f"{path}: latent contains NaN or Inf (or a value beyond float32 range)")
        return x


class NpzSource:
    def __init__(self, path):
        self.path = path
        try:
            z = np.load(path, allow_pickle=False)
        except (ValueError, OSError, zipfile.BadZipFile) as e:
            raise InputError(f"{path}: not a readable .npz file ({e})") from None
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise InputError(f"{path}: a single .npy array, expected an .npz with latents and labels")
        with z:
            keys = [k for k in ("latents", "features") if k in z.files]
            if len(keys) != 1:
                raise InputError(f"{path}: needs exactly one of the arrays 'latents' or 'features' "
                                 f"(arrays present: {', '.join(z.files) or 'none'})")
            if "labels" not in z.files:
                raise InputError(f"{path}: latent files without labels: no 'labels' array "
                                 f"(arrays present: {', '.join(z.files)})")
            x, y = z[keys[0]], z["labels"]
        if x.ndim == 5 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 4:
            raise InputError(f"{path}: '{keys[0]}' has shape {list(x.shape)}, expected [N, C, H, W]")
        if not np.issubdtype(x.dtype, np.floating):
            raise InputError(f"{path}: '{keys[0]}' has dtype {x.dtype}, expected a float type")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise InputError(f"{path}: 'labels' has shape {list(y.shape)}, expected [{x.shape[0]}] "
                             f"(one per latent)")
        self.x = x
        self.labels = _as_int_labels(y, f"{path}: 'labels'")
        self.n = x.shape[0]
        if self.n == 0:
            raise InputError(f"{path}: holds no samples")
        self.sample_shape = x.shape[1:]

    def latents(self, rows):
        """float32 [len(rows), C, H, W]."""
        x = self.x[rows].astype(np.float32)
        bad = ~np.isfinite(x.reshape(len(rows), -1)).all(axis=1)
        if bad.any():
            raise InputError(f"{self.path}: latent {rows[int(np.argmax(bad))]} contains NaN or Inf "
                             "(or a value beyond float32 range)")
        return x


def _load_npy(path):
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":
            raise InputError(f"{path}: not a .npy file (it does not start with the \\x93NUMPY magic)")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"{path}: not a readable .npy file ({e})") from None


def _as_int_labels(y, what):
    if np.issubdtype(y.dtype, np.integer):
        return y.astype(np.int64)
    if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        return y.astype(np.int64)
    raise InputError(f"{what} has dtype {y.dtype} and is not integer-valued")


def _read_label(path):
    y = _load_npy(path)
    if y.size != 1:
        raise InputError(f"{path}: label file holds {y.size} values (shape {list(y.shape)}), expected one")
    return int(_as_int_labels(y.reshape(1), path)[0])


def open_source(path):
    if os.path.isdir(path):
        return FolderSource(path)
    if os.path.isfile(path):
        if not path.endswith(".npz"):
            raise InputError(f"{path}: expected a folder of .npy files or an .npz file")
        return NpzSource(path)
    raise InputError(f"{path}: no such file or folder")


def main():
    p = argparse.ArgumentParser(
        prog=PROG, description=__doc__.split("\n\n")[0].split(" - ", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2] + "\nExit status: 0 on success, 1 on bad input (one line naming the "
        "file and the problem), 2 on bad options. See docs/formats.md for the output format.")
    p.add_argument("--src", required=True, metavar="PATH", help="folder of per-sample .npy files, or an .npz file")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--test", metavar="PATH", help="a second source (same kinds as --src) for the test split")
    g.add_argument("--test-fraction", type=float, metavar="F", help="hold out this fraction of --src as test")
    p.add_argument("--seed", type=int, default=0, help="seed of the --test-fraction selection (default 0)")
    p.add_argument("--num-classes", type=int, metavar="K", help="number of classes (default: largest label + 1)")
    p.add_argument("--class-names", metavar="FILE", help="text file with one class name per line (K lines)")
    p.add_argument("--stats", action="store_true", help="store per-channel mean/std of the train latents")
    add_common_args(p)
    args = p.parse_args()
    if args.test_fraction is not None and not 0.0 < args.test_fraction < 1.0:
        raise InputError(f"--test-fraction {args.test_fraction}: must lie strictly between 0 and 1")
    if args.seed < 0 or args.seed >= 1 << 64:
        raise InputError(f"--seed {args.seed}: must lie in [0, 2^64)")

    src = open_source(args.src)
    if args.test is not None:
        test = open_source(args.test)
        if test.sample_shape != src.sample_shape:
            raise InputError(f"{args.test}: test latents are {list(test.sample_shape)}, "
                             f"train latents ({args.src}) are {list(src.sample_shape)}")
        plan = {"train": (src, np.arange(src.n)), "test": (test, np.arange(test.n))}
    else:
        mask = test_mask(src.n, args.test_fraction, args.seed)
        plan = {"train": (src, np.flatnonzero(~mask)), "test": (src, np.flatnonzero(mask))}

    top = max(int(s.labels[rows].max()) for s, rows in plan.values())
    low = min(int(s.labels[rows].min()) for s, rows in plan.values())
    if low < 0:
        raise InputError(f"{args.src}: negative label {low}")
    k = args.num_classes if args.num_classes is not None else top + 1
    if top >= k:
        raise InputError(f"label {top} found but --num-classes is {k}")
    names = None
    if args.class_names:
        with open(args.class_names, encoding="utf-8") as f:
            names = [line.rstrip("\n") for line in f if line.strip()]
        if len(names) != k:
            raise InputError(f"{args.class_names}: {len(names)} class names for {k} classes")

    shapes = {s: (len(rows),) + tuple(src.sample_shape) for s, (_, rows) in plan.items()}
    with DatasetWriter(args.out, shapes, np.float32, k, stats=args.stats, gzip=args.gzip) as w:
        for split, (source, rows) in plan.items():
            for start in range(0, len(rows), BLOCK):
                r = rows[start:start + BLOCK]
                w.write(split, start, source.latents(r), source.labels[r])
        how = f"test = {args.test}" if args.test else f"test = fraction {args.test_fraction}, seed {args.seed}"
        w.finish(class_names=names, source=f"latents from {os.path.abspath(args.src)}; {how}")


if __name__ == "__main__":
    main_guard(PROG, main)
