#!/usr/bin/python3
"""convert_cifar.py - CIFAR-10 or CIFAR-100 ("python version" folders) to an unlearn-dataset HDF5 file.

    /usr/bin/python3 data_tools/convert_cifar.py --src ~/data/cifar-10-batches-py --out data/cifar10.h5
    /usr/bin/python3 data_tools/convert_cifar.py --src ~/data/cifar-100-python --labels coarse --out data/c100c.h5

The layout is recognised from the folder's files:
    CIFAR-10   data_batch_1 .. data_batch_5, test_batch, batches.meta
    CIFAR-100  train, test, meta
(a folder that merely contains cifar-10-batches-py/ or cifar-100-python/ works too). Each batch is a pickled dict
with bytes keys: b'data' uint8 [N, 3072] (1024 red, 1024 green, 1024 blue values, each 32x32 row-major) and
b'labels' (CIFAR-10) or b'fine_labels' and b'coarse_labels' (CIFAR-100); the meta file holds b'label_names'
(CIFAR-10) or b'fine_label_names' and b'coarse_label_names'. Output: uint8 [N, 3, 32, 32], int64 labels, class
names, per-channel mean/std of the train images in [0,1] units.

The pickles are read with a restricted unpickler that only builds numpy arrays and plain containers, so a
tampered file cannot run code.
"""
import argparse
import io
import os
import pickle
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common_h5 import DatasetWriter, InputError, add_common_args, main_guard  # noqa: E402

PROG = "convert_cifar"
CIFAR10_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"], "meta": "batches.meta"}
CIFAR100_FILES = {"train": ["train"], "test": ["test"], "meta": "meta"}
PIXELS = 3 * 32 * 32
# Globals a CIFAR pickle may reference: numpy array/dtype reconstruction and the codec Python 3 uses for bytes
# in protocol-2 pickles.
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refers to {module}.{name}, which a CIFAR batch never does")


def load_pickle(path):
    """The dict stored in a CIFAR pickle file (bytes keys)."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        obj = _SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise InputError(f"{path}: not a readable CIFAR pickle ({e or type(e).__name__})") from None
    if not isinstance(obj, dict):
        raise InputError(f"{path}: holds a {type(obj).__name__}, expected a dict")
    return obj


def get_key(d, key, path):
    if key not in d:
        have = ", ".join(repr(k) for k in sorted(d, key=repr))
        raise InputError(f"{path}: missing key {key!r} (keys present: {have})")
    return d[key]


def load_batch(path, label_key, num_classes):
    """(images uint8 [N, 3, 32, 32], labels int64 [N]) from one batch file, validated."""
    d = load_pickle(path)
    data = np.asarray(get_key(d, b"data", path))
    labels = get_key(d, label_key, path)
    if data.dtype != np.uint8:
        raise InputError(f"{path}: b'data' has dtype {data.dtype}, expected uint8")
    if data.ndim != 2 or data.shape[1] != PIXELS:
        raise InputError(f"{path}: b'data' has shape {list(data.shape)}, expected [N, {PIXELS}] (3x32x32 images)")
    try:
        labels = np.asarray(labels)
    except (ValueError, TypeError):
        labels = None
    if labels is None or labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"{path}: {label_key!r} is not a flat list of integers")
    if labels.shape[0] != data.shape[0]:
        raise InputError(f"{path}: {labels.shape[0]} labels in {label_key!r} but {data.shape[0]} images in b'data'")
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"{path}: label {labels[i]} at index {i} is outside [0, {num_classes})")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def load_names(path, key, count):
    names = get_key(load_pickle(path), key, path)
    if not isinstance(names, (list, tuple)) or len(names) != count:
        raise InputError(f"{path}: {key!r} should list {count} class names")
    out = []
    for s in names:
        if not isinstance(s, (bytes, str)):
            raise InputError(f"{path}: {key!r} holds a {type(s).__name__}, expected strings")
        out.append(s.decode("utf-8", errors="replace") if isinstance(s, bytes) else s)
    return out


def detect_layout(src):
    """(folder, 'cifar10' | 'cifar100') for src or its cifar-10-batches-py / cifar-100-python subfolder."""
    if not os.path.isdir(src):
        raise InputError(f"{src}: no such folder")
    for folder in (src, os.path.join(src, "cifar-10-batches-py"), os.path.join(src, "cifar-100-python")):
        if os.path.isfile(os.path.join(folder, "data_batch_1")):
            return folder, "cifar10"
        if os.path.isfile(os.path.join(folder, "train")) and os.path.isfile(os.path.join(folder, "meta")):
            return folder, "cifar100"
    raise InputError(f"{src}: neither a CIFAR-10 folder (data_batch_1..5, test_batch, batches.meta) nor a "
                     "CIFAR-100 folder (train, test, meta)")


def main():
    p = argparse.ArgumentParser(
        prog=PROG, description=__doc__.split("\n\n")[0].split(" - ", 1)[1],
        epilog="Exit status: 0 on success, 1 on bad input (one line naming the file and the problem), 2 on bad "
               "options. See docs/formats.md for the output format.")
    p.add_argument("--src", required=True, metavar="DIR",
                   help="cifar-10-batches-py or cifar-100-python folder (or a folder containing one)")
    p.add_argument("--labels", choices=["fine", "coarse"], default="fine",
                   help="CIFAR-100 only: 100 fine classes (default) or 20 coarse superclasses")
    add_common_args(p)
    args = p.parse_args()

    folder, layout = detect_layout(args.src)
    if layout == "cifar10":
        if args.labels == "coarse":
            raise InputError(f"{folder}: --labels coarse applies to CIFAR-100 only; this is a CIFAR-10 folder")
        files, label_key, names_key, k, title = CIFAR10_FILES, b"labels", b"label_names", 10, "CIFAR-10"
    else:
        files, label_key, title = CIFAR100_FILES, f"{args.labels}_labels".encode(), "CIFAR-100"
        names_key, k = f"{args.labels}_label_names".encode(), (100 if args.labels == "fine" else 20)
    parts = {}
    for split in ("train", "test"):
        xs, ys = [], []
        for name in files[split]:
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                raise InputError(f"{folder}: missing {title} file {name}")
            x, y = load_batch(path, label_key, k)
            xs.append(x)
            ys.append(y)
        parts[split] = (np.concatenate(xs), np.concatenate(ys))
    meta = os.path.join(folder, files["meta"])
    if not os.path.isfile(meta):
        raise InputError(f"{folder}: missing {title} file {files['meta']}")
    names = load_names(meta, names_key, k)

    shapes = {s: parts[s][0].shape for s in parts}
    with DatasetWriter(args.out, shapes, np.uint8, k, stats=True, gzip=args.gzip) as w:
        for split, (x, y) in parts.items():
            w.write(split, 0, x, y)
        suffix = f" ({args.labels} labels)" if layout == "cifar100" else ""
        w.finish(class_names=names, source=f"{title}{suffix} from {os.path.abspath(folder)}")


if __name__ == "__main__":
    main_guard(PROG, main)
