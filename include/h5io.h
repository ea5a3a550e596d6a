/*
 * h5io.h - the HDF5 layer. src/h5io.c is the only file that includes hdf5.h. Works with the serial and the
 * parallel HDF5 library alike: every rank opens files independently (read-only) and only rank 0 writes.
 *
 * Every reader validates and reports through UlError with the file and dataset named, e.g.
 *     "data/fmnist.h5: dataset 'train/labels': expected 1 dimension, found 2".
 */
#ifndef UL_H5IO_H
#define UL_H5IO_H

#include "common.h"
#include "tensor.h"

/* Reads a whole dataset (any numeric type, converted) into a malloc'd float array; *ndim and shape[0..*ndim)
   receive its dimensions (at most max_dims). Returns NULL and fills err on failure. Caller frees. */
float *h5_read_floats(const char *path, const char *dset, int max_dims, int *ndim, int64_t *shape, UlError *err);
/* The same for integer datasets (any integer type, range-checked into int). */
int *h5_read_ints(const char *path, const char *dset, int max_dims, int *ndim, int64_t *shape, UlError *err);
/* True when the dataset exists in the file (false on a missing file too). */
bool h5_has(const char *path, const char *dset);

#endif
