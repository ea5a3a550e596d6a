/* h5io.c - see include/h5io.h. The only file that includes hdf5.h. */
#include "h5io.h"

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

/* Silences HDF5's own error stack printing: every failure is reported through UlError instead. */
static void h5_quiet(void)
{
    static int done = 0;
    if (!done) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        done = 1;
    }
}

static hid_t h5_open_dataset(const char *path, const char *dset, hid_t *file, UlError *err)
{
    h5_quiet();
    *file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*file < 0) {
        ul_error_set(err, "%s: cannot open as an HDF5 file (missing, unreadable or not HDF5)", path);
        return -1;
    }
    if (H5Lexists(*file, dset, H5P_DEFAULT) <= 0) {
        ul_error_set(err, "%s: no dataset '%s'", path, dset);
        H5Fclose(*file);
        return -1;
    }
    hid_t d = H5Dopen2(*file, dset, H5P_DEFAULT);
    if (d < 0) {
        ul_error_set(err, "%s: '%s' is not a dataset", path, dset);
        H5Fclose(*file);
    }
    return d;
}

static void *h5_read_all(const char *path, const char *dset, int max_dims, int *ndim, int64_t *shape,
                         hid_t mem_type, size_t elem, H5T_class_t want_class, UlError *err)
{
    hid_t file;
    hid_t d = h5_open_dataset(path, dset, &file, err);
    if (d < 0) return NULL;
    void *buf = NULL;
    hid_t space = H5Dget_space(d), type = H5Dget_type(d);
    H5T_class_t cls = H5Tget_class(type);
    int nd = H5Sget_simple_extent_ndims(space);
    if (want_class == H5T_INTEGER && cls != H5T_INTEGER) {
        ul_error_set(err, "%s: dataset '%s' must have an integer type", path, dset);
    } else if (cls != H5T_INTEGER && cls != H5T_FLOAT) {
        ul_error_set(err, "%s: dataset '%s' is not numeric", path, dset);
    } else if (nd < 0 || nd > max_dims) {
        ul_error_set(err, "%s: dataset '%s' has %d dimensions, at most %d expected", path, dset, nd, max_dims);
    } else {
        hsize_t dims[H5S_MAX_RANK];
        H5Sget_simple_extent_dims(space, dims, NULL);
        size_t n = 1;
        for (int i = 0; i < nd; i++) {
            shape[i] = (int64_t)dims[i];
            n = ul_mul_size(n, (size_t)dims[i]);
        }
        *ndim = nd;
        buf = UL_MALLOC(ul_mul_size(n ? n : 1, elem));
        if (H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
            ul_error_set(err, "%s: reading dataset '%s' failed (truncated file or out-of-range values?)", path, dset);
            free(buf);
            buf = NULL;
        }
    }
    H5Tclose(type);
    H5Sclose(space);
    H5Dclose(d);
    H5Fclose(file);
    return buf;
}

float *h5_read_floats(const char *path, const char *dset, int max_dims, int *ndim, int64_t *shape, UlError *err)
{
    return h5_read_all(path, dset, max_dims, ndim, shape, H5T_NATIVE_FLOAT, sizeof(float), H5T_NO_CLASS, err);
}

int *h5_read_ints(const char *path, const char *dset, int max_dims, int *ndim, int64_t *shape, UlError *err)
{
    return h5_read_all(path, dset, max_dims, ndim, shape, H5T_NATIVE_INT, sizeof(int), H5T_INTEGER, err);
}

bool h5_has(const char *path, const char *dset)
{
    h5_quiet();
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) return false;
    bool ok = H5Lexists(file, dset, H5P_DEFAULT) > 0;
    H5Fclose(file);
    return ok;
}
