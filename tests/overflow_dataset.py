"""Copies a dataset SRC to DST with its images scaled to overflow float32 in a network's first layer (and no
mean/std), so that the very first losses are Inf/NaN. Used by the shell tests of the NaN/Inf handling.
Run as /usr/bin/python3 tests/overflow_dataset.py SRC DST."""
import shutil
import sys

import h5py
import numpy as np

shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "r+") as f:
    for s in ("train", "test"):
        x = f[s + "/images"][...].astype(np.float32) / 255.0 * np.float32(1e37)
        del f[s + "/images"]
        f.create_dataset(s + "/images", data=x, chunks=(16,) + x.shape[1:])
    for a in ("mean", "std"):
        if a in f.attrs:
            del f.attrs[a]
