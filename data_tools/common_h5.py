"""common_h5.py - the writer of the unlearn-dataset HDF5 format, shared by data_tools/convert_*.py and synth.py.

The format (docs/formats.md is the full description; every tool of the project accepts at least this):

    /                       attributes: format = "unlearn-dataset" (fixed-length ASCII string, NUL-terminated)
                                        format_version = 1 (int64 scalar)
                                        num_classes (int64 scalar)
                                        class_names (optional; 1-D, num_classes fixed-length NUL-terminated ASCII)
                                        mean, std (optional; float32 [C], per channel, in the units of the stored
                                                   images: uint8 images are measured after division by 255)
                                        source (optional; ASCII string saying what the file was converted from)
    /train/images, /test/images   [N, C, H, W] uint8 (images) or float32 (images or latents)
    /train/labels, /test/labels   [N] int64, every value in [0, num_classes)

Datasets are chunked along N only (images: min(N, 256, samples per MiB) samples per chunk; labels: min(N, 131072)),
uncompressed unless the writer is given a gzip level (1..4). Both splits hold at least one sample.

Usage (what every converter does):
    w = DatasetWriter(out, {"train": (N, C, H, W), "test": (M, C, H, W)}, np.uint8, num_classes, stats=True)
    w.write("train", start, images, labels)      # any number of times, any block sizes, each sample exactly once
    w.finish(class_names=..., source=...)        # checks completeness, writes attributes, renames into place
Anything that goes wrong before finish() leaves no output file: the writer works on OUT.tmp-PID and removes it.

Bad input is reported by raising InputError with a message that names the file and what is wrong; main_guard()
turns it into one line "PROG: error: MESSAGE" on stderr and exit code 1.
"""
import os
import sys

import numpy as np
import h5py

FORMAT_NAME = "unlearn-dataset"
FORMAT_VERSION = 1
IMAGE_CHUNK_SAMPLES = 256          # at most this many samples per images chunk ...
IMAGE_CHUNK_BYTES = 1 << 20        # ... and at most ~1 MiB per chunk (at least one sample)
LABEL_CHUNK_SAMPLES = 1 << 17      # 131072 int64 labels = 1 MiB
SPLITS = ("train", "test")


class InputError(Exception):
    """Bad user input (a source file, a folder, an option). The message names the file and what is wrong."""


def main_guard(prog, fn):
    """Runs fn() and exits: 0 on success, 1 with one line 'PROG: error: ...' on InputError or an OS error."""
    try:
        fn()
    except BrokenPipeError:         # stdout closed early (e.g. piped into head): the output file is complete
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except InputError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"{prog}: error: {where}{e.strerror or e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(0)


def image_chunk(shape, dtype):
    """Chunk shape for an images dataset of this shape: (k, C, H, W), k samples, k >= 1."""
    n, c, h, w = shape
    sample_bytes = c * h * w * np.dtype(dtype).itemsize
    k = max(1, min(n, IMAGE_CHUNK_SAMPLES, IMAGE_CHUNK_BYTES // max(1, sample_bytes)))
    return (k, c, h, w)


class _ChannelStats:
    """Per-channel mean and population std (ddof 0) over every pixel of every sample added.
    uint8: exact, from per-channel histograms of the 256 values, reported in [0,1] units (value / 255).
    float: float64 sums of x - shift and (x - shift)^2, shift = the first block's per-channel mean (keeps the
    subtraction well conditioned when the mean is large compared with the spread)."""

    def __init__(self, channels, dtype):
        self.c = channels
        self.is_u8 = np.dtype(dtype) == np.uint8
        self.hist = np.zeros((channels, 256), dtype=np.int64)
        self.shift = None
        self.s1 = np.zeros(channels, dtype=np.float64)
        self.s2 = np.zeros(channels, dtype=np.float64)
        self.count = 0

    def add(self, images):                      # images: [n, C, H, W]
        per_c = np.moveaxis(images, 1, 0).reshape(self.c, -1)
        if self.is_u8:
            for ch in range(self.c):
                self.hist[ch] += np.bincount(per_c[ch], minlength=256)
        else:
            x = per_c.astype(np.float64)
            if self.shift is None:
                self.shift = x.mean(axis=1)
            x -= self.shift[:, None]
            self.s1 += x.sum(axis=1)
            self.s2 += (x * x).sum(axis=1)
        self.count += per_c.shape[1]

    def result(self):
        """(mean, std) as float32 [C]."""
        if self.is_u8:
            v = np.arange(256, dtype=np.float64) / 255.0
            n = self.hist.sum(axis=1).astype(np.float64)
            mean = (self.hist * v).sum(axis=1) / n
            var = (self.hist * (v[None, :] - mean[:, None]) ** 2).sum(axis=1) / n
        else:
            m = self.s1 / self.count
            mean = self.shift + m
            var = np.maximum(self.s2 / self.count - m * m, 0.0)
        return mean.astype(np.float32), np.sqrt(var).astype(np.float32)


def _ascii(what, s):
    try:
        return s.decode("ascii").encode("ascii") if isinstance(s, bytes) else str(s).encode("ascii")
    except UnicodeError:
        raise InputError(f"{what} {s!r} is not ASCII") from None


def write_string_attr(obj, name, strings, scalar=False):
    """Attribute `name` on obj (a File or Group): fixed-length ASCII strings, NUL-terminated (H5T_STR_NULLTERM),
    size = longest + 1 bytes, so a C reader gets terminated strings. scalar: one string in a scalar dataspace;
    otherwise a 1-D array of len(strings)."""
    data = [_ascii(name, s) for s in strings]
    size = max(len(s) for s in data) + 1
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(size)
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    tid.set_cset(h5py.h5t.CSET_ASCII)
    space = h5py.h5s.create(h5py.h5s.SCALAR) if scalar else h5py.h5s.create_simple((len(data),))
    if name in obj.attrs:
        del obj.attrs[name]
    aid = h5py.h5a.create(obj.id, name.encode(), tid, space)
    aid.write(np.array(data[0] if scalar else data, dtype=f"S{size}"))


class DatasetWriter:
    """Writes one unlearn-dataset file. shapes: {"train": (N, C, H, W), "test": (M, C, H, W)}, N, M >= 1, the same
    C, H, W. dtype: np.uint8 or np.float32 (the stored images type). num_classes: labels must lie in [0, K).
    stats: compute per-channel mean/std over the train images and store them. gzip: 0 (none) or 1..4.
    Owns OUT.tmp-PID until finish() renames it to OUT or abort()/an exception removes it."""

    def __init__(self, out, shapes, dtype, num_classes, stats=False, gzip=0):
        self.out = os.fspath(out)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.uint8), np.dtype(np.float32)):
            raise ValueError(f"unsupported image dtype {self.dtype}")
        if not 0 <= gzip <= 4:
            raise InputError(f"--gzip {gzip}: the level must be 0 (none) to 4")
        if int(num_classes) < 1:
            raise InputError(f"num_classes {num_classes}: must be at least 1")
        self.num_classes = int(num_classes)
        chw = None
        for split in SPLITS:
            n, c, h, w = shapes[split]
            if n < 1:
                raise InputError(f"the {split} split would be empty: every dataset needs at least one {split} sample")
            if chw is not None and (c, h, w) != chw:
                raise InputError(f"train samples are {chw} but test samples are {(c, h, w)}: they must match")
            chw = (c, h, w)
        parent = os.path.dirname(os.path.abspath(self.out))
        if not os.path.isdir(parent):
            raise InputError(f"{self.out}: the output folder {parent} does not exist")
        self.shapes = {s: tuple(int(v) for v in shapes[s]) for s in SPLITS}
        self.written = {s: 0 for s in SPLITS}
        self.counts = {s: np.zeros(self.num_classes, dtype=np.int64) for s in SPLITS}
        self.stats = _ChannelStats(chw[0], self.dtype) if stats else None
        self.gzip = gzip
        self.tmp = f"{self.out}.tmp-{os.getpid()}"
        self.f = h5py.File(self.tmp, "w")
        comp = dict(compression="gzip", compression_opts=gzip) if gzip else {}
        self.d_img, self.d_lab = {}, {}
        for split in SPLITS:
            g = self.f.create_group(split)
            shp = self.shapes[split]
            self.d_img[split] = g.create_dataset("images", shape=shp, dtype=self.dtype,
                                                 chunks=image_chunk(shp, self.dtype), **comp)
            self.d_lab[split] = g.create_dataset("labels", shape=(shp[0],), dtype=np.int64,
                                                 chunks=(min(shp[0], LABEL_CHUNK_SAMPLES),), **comp)

    def write(self, split, start, images, labels):
        """Stores images [n, C, H, W] (already of the file's dtype) and labels [n] at rows [start, start + n)."""
        images = np.asarray(images)
        labels = np.asarray(labels).astype(np.int64, copy=False).reshape(-1)
        n = images.shape[0]
        if images.dtype != self.dtype or images.shape[1:] != self.shapes[split][1:] or labels.shape[0] != n:
            raise ValueError(f"write({split}): got images {images.dtype}{images.shape}, labels {labels.shape}; "
                             f"want {self.dtype}[n,{self.shapes[split][1:]}] and [n]")
        if start < 0 or start + n > self.shapes[split][0]:
            raise ValueError(f"write({split}): rows [{start}, {start + n}) outside [0, {self.shapes[split][0]})")
        bad = (labels < 0) | (labels >= self.num_classes)
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(f"{split} sample {start + i}: label {labels[i]} outside [0, {self.num_classes})")
        if self.dtype == np.float32 and not np.isfinite(images).all():
            i = int(np.argmax(~np.isfinite(images.reshape(n, -1)).all(axis=1)))
            raise InputError(f"{split} sample {start + i}: contains NaN or Inf")
        self.d_img[split][start:start + n] = images
        self.d_lab[split][start:start + n] = labels
        self.counts[split] += np.bincount(labels, minlength=self.num_classes)
        self.written[split] += n
        if self.stats is not None and split == "train":
            self.stats.add(images)

    def finish(self, class_names=None, source=None, quiet=False):
        """Checks that every row was written once, writes the root attributes, prints the per-class counts and
        renames the file into place. Returns (mean, std) or (None, None)."""
        for split in SPLITS:
            if self.written[split] != self.shapes[split][0]:
                raise ValueError(f"{split}: wrote {self.written[split]} of {self.shapes[split][0]} samples")
        a = self.f.attrs
        write_string_attr(self.f, "format", [FORMAT_NAME], scalar=True)
        a["format_version"] = np.int64(FORMAT_VERSION)
        a["num_classes"] = np.int64(self.num_classes)
        if class_names is not None:
            if len(class_names) != self.num_classes:
                raise InputError(f"{len(class_names)} class names for {self.num_classes} classes")
            write_string_attr(self.f, "class_names", class_names)
        if source:
            write_string_attr(self.f, "source", [source], scalar=True)
        mean = std = None
        if self.stats is not None:
            mean, std = self.stats.result()
            if not (std > 0).all():
                ch = int(np.argmax(~(std > 0)))
                raise InputError(f"train images: channel {ch} is constant (std 0), so mean/std cannot normalise it; "
                                 "convert without statistics")
            a["mean"] = mean
            a["std"] = std
        self.f.close()
        os.replace(self.tmp, self.out)
        self.f = None
        if not quiet:
            print_summary(self.out, self.shapes, self.dtype, self.counts, class_names, mean, std, self.gzip)
        return mean, std

    def abort(self):
        """Removes the temporary file (idempotent)."""
        if self.f is not None:
            try:
                self.f.close()
            finally:
                self.f = None
                if os.path.exists(self.tmp):
                    os.remove(self.tmp)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.abort()
        return False


def print_summary(out, shapes, dtype, counts, class_names, mean, std, gzip):
    """Prints what was written and the per-class counts (a table up to 100 classes, compact rows beyond)."""
    n_tr, c, h, w = shapes["train"]
    n_te = shapes["test"][0]
    comp = f"gzip {gzip}" if gzip else "uncompressed"
    print(f"wrote {out}: train {n_tr} x [{c},{h},{w}] {dtype}, test {n_te}, {len(counts['train'])} classes, {comp}")
    if mean is not None:
        print("  mean " + " ".join(f"{v:.6f}" for v in mean) + "   std " + " ".join(f"{v:.6f}" for v in std))
    k = len(counts["train"])
    if k <= 100:
        print(f"  {'class':>5}  {'name':<24} {'train':>8} {'test':>8}")
        for i in range(k):
            name = ""
            if class_names is not None:
                name = class_names[i].decode() if isinstance(class_names[i], bytes) else str(class_names[i])
            print(f"  {i:>5}  {name[:24]:<24} {counts['train'][i]:>8} {counts['test'][i]:>8}")
    else:
        print("  per-class counts, class:train/test")
        cells = [f"{i}:{counts['train'][i]}/{counts['test'][i]}" for i in range(k)]
        for j in range(0, k, 8):
            print("  " + "  ".join(f"{s:<16}" for s in cells[j:j + 8]).rstrip())
    empty = [i for i in range(k) if counts["train"][i] == 0]
    if empty:
        print(f"  note: {len(empty)} classes have no train samples (first: {empty[0]})")


def add_common_args(p):
    """--out and --gzip, the same in every converter."""
    p.add_argument("--out", required=True, metavar="FILE",
                   help="output HDF5 file (written as FILE.tmp-PID, renamed into place on success)")
    p.add_argument("--gzip", type=int, default=0, metavar="LEVEL",
                   help="gzip level 1..4 for the datasets; 0 (default) stores them uncompressed, which reads fastest")
