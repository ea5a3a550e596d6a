#!/usr/bin/python3
"""convert_idx.py - Fashion-MNIST or MNIST (IDX files, gzipped or plain) to an unlearn-dataset HDF5 file.

    /usr/bin/python3 data_tools/convert_idx.py --out data/fashion-mnist.h5
    /usr/bin/python3 data_tools/convert_idx.py --name mnist --src ~/mnist --out data/mnist.h5

The source folder holds train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
t10k-labels-idx1-ubyte, each either gzipped (NAME.gz, preferred when both exist) or plain. The default folder is
Debian's dataset-fashion-mnist package. Output: uint8 [N, 1, H, W] images, int64 labels, 10 classes, class names,
per-channel mean/std of the train images in [0,1] units.

IDX: a big-endian header, magic 0x0000 TT DD (TT = 0x08: unsigned byte data, DD = number of dimensions), then DD
uint32 sizes, then the data. Images must be 0x00000803 [N, rows, cols], labels 0x00000801 [N], labels < 10.
"""
import argparse
import gzip
import os
import struct
import sys
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common_h5 import DatasetWriter, InputError, add_common_args, main_guard  # noqa: E402

PROG = "convert_idx"
DEFAULT_SRC = "/usr/share/datasets/fashion-mnist"
CLASS_NAMES = {
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    "mnist": [str(d) for d in range(10)],
}
FILES = {  # split -> (images stem, labels stem)
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MAGIC_IMAGES = 0x00000803
MAGIC_LABELS = 0x00000801


def find_file(src, stem):
    """src/stem.gz, else src/stem; InputError naming both when neither exists."""
    for name in (stem + ".gz", stem):
        path = os.path.join(src, name)
        if os.path.isfile(path):
            return path
    raise InputError(f"{src}: missing {stem}.gz (or {stem})")


def read_bytes(path):
    """The whole (decompressed) content of path."""
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        with open(path, "rb") as f:
            return f.read()
    except EOFError:
        raise InputError(f"{path}: truncated gzip stream (the file ends before the end-of-stream marker)") from None
    except (gzip.BadGzipFile, zlib.error) as e:
        raise InputError(f"{path}: not a valid gzip file ({e})") from None


def read_idx(path, magic, ndim):
    """Parses one IDX file: returns a uint8 array of the header's shape. Checks magic, sizes and length."""
    data = read_bytes(path)
    if len(data) < 4 + 4 * ndim:
        raise InputError(f"{path}: truncated: {len(data)} bytes, shorter than the {4 + 4 * ndim}-byte IDX header")
    (got,) = struct.unpack(">I", data[:4])
    if got != magic:
        raise InputError(f"{path}: wrong magic number 0x{got:08x}, expected 0x{magic:08x} "
                         f"(unsigned-byte IDX with {ndim} dimension{'s' if ndim > 1 else ''})")
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    if any(d == 0 for d in dims):
        raise InputError(f"{path}: header has a zero size {list(dims)}")
    want = int(np.prod(dims, dtype=np.int64))
    have = len(data) - (4 + 4 * ndim)
    if have < want:
        raise InputError(f"{path}: truncated: header says {' x '.join(map(str, dims))} = {want} data bytes, "
                         f"the file holds {have}")
    if have > want:
        raise InputError(f"{path}: {have - want} bytes of trailing data after the {want} the header describes")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(src, split, num_classes):
    """(images [N, 1, H, W] uint8, labels [N] int64, image path) for one split, validated."""
    img_path = find_file(src, FILES[split][0])
    lab_path = find_file(src, FILES[split][1])
    images = read_idx(img_path, MAGIC_IMAGES, 3)
    labels = read_idx(lab_path, MAGIC_LABELS, 1).astype(np.int64)
    if images.shape[0] != labels.shape[0]:
        raise InputError(f"{lab_path}: {labels.shape[0]} labels but {img_path} holds {images.shape[0]} images")
    if labels.max() >= num_classes:
        i = int(np.argmax(labels >= num_classes))
        raise InputError(f"{lab_path}: label {labels[i]} at index {i} is outside [0, {num_classes})")
    return images[:, None, :, :], labels, img_path


def main():
    p = argparse.ArgumentParser(
        prog=PROG, description=__doc__.split("\n\n")[0].split(" - ", 1)[1],
        epilog="Exit status: 0 on success, 1 on bad input (one line naming the file and the problem), 2 on bad "
               "options. See docs/formats.md for the output format.")
    p.add_argument("--src", default=DEFAULT_SRC, metavar="DIR",
                   help=f"folder with the four IDX files, gzipped or plain (default {DEFAULT_SRC})")
    p.add_argument("--name", choices=sorted(CLASS_NAMES), default="fashion-mnist",
                   help="which dataset this is; sets the class names (default fashion-mnist)")
    add_common_args(p)
    args = p.parse_args()

    if not os.path.isdir(args.src):
        raise InputError(f"{args.src}: no such folder (install Debian's dataset-fashion-mnist or pass --src DIR)")
    names = CLASS_NAMES[args.name]
    tr_x, tr_y, tr_path = load_split(args.src, "train", len(names))
    te_x, te_y, te_path = load_split(args.src, "test", len(names))
    if tr_x.shape[1:] != te_x.shape[1:]:
        raise InputError(f"{te_path}: test images are {te_x.shape[2]}x{te_x.shape[3]}, "
                         f"train images ({tr_path}) are {tr_x.shape[2]}x{tr_x.shape[3]}")
    shapes = {"train": tr_x.shape, "test": te_x.shape}
    with DatasetWriter(args.out, shapes, np.uint8, len(names), stats=True, gzip=args.gzip) as w:
        w.write("train", 0, tr_x, tr_y)
        w.write("test", 0, te_x, te_y)
        w.finish(class_names=names, source=f"{args.name} IDX files from {os.path.abspath(args.src)}")


if __name__ == "__main__":
    main_guard(PROG, main)
