/*
 * h5io.h - the HDF5 layer. src/h5io.c is the only file that includes hdf5.h. Works with the serial and the
 * parallel HDF5 library alike: only the serial API is used, every rank opens files independently (read-only,
 * without file locks, so parallel file systems that lack flock work) and only one process writes a file.
 *
 * Every function validates and reports through UlError with the file and object named, e.g.
 *     "data/fmnist.h5: dataset 'train/labels': expected 1 dimension, found 2".
 *
 * Two levels:
 *   - whole-dataset readers for fixtures and small inputs (h5_read_floats, h5_read_ints, h5_has): open, read,
 *     close in one call;
 *   - handles (H5File, H5Dset: opaque, hid_t stays inside h5io.c) for the dataset loader and checkpoints:
 *
 *     UlError err = {0};
 *     H5File *f = h5_open(path, H5IO_READ, &err);                 // NULL + "path: no such file" etc.
 *     H5Dset *d = h5_dset_open(f, "train/images", &err);
 *     const H5Info *info = h5_dset_info(d);                        // class, element size, ndim, shape, chunking
 *     h5_dset_read_runs(d, starts, counts, nruns, H5IO_U8, buf, &err);   // rows of several runs, one read
 *     h5_dset_close(d); h5_close(f, NULL);
 *
 * Names are paths from the root ("train/images", "params/conv1.weight"); "/" names the root group itself.
 * Strings are written as fixed-length, NUL-terminated ASCII (as data_tools/common_h5.py writes them); readers
 * accept fixed-length (any padding) and variable-length strings (h5py's default for str attributes).
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

/* ---- handles ------------------------------------------------------------------------------------------------- */

#define H5IO_MAX_DIMS 8

typedef struct H5File H5File;
typedef struct H5Dset H5Dset;

typedef enum H5Mode { H5IO_READ, H5IO_RDWR } H5Mode;

/* Element types in memory (and, for writers, in the file: little-endian). */
typedef enum H5Type { H5IO_U8, H5IO_I32, H5IO_I64, H5IO_U64, H5IO_F32, H5IO_F64 } H5Type;

typedef enum H5Class { H5IO_CLASS_INT, H5IO_CLASS_FLOAT, H5IO_CLASS_STRING, H5IO_CLASS_OTHER } H5Class;

/* What a dataset or attribute holds. A scalar has ndim 0 and one element. */
typedef struct H5Info {
    H5Class cls;
    size_t size;                       /* bytes per element in the file */
    bool is_signed;                    /* integers only */
    char type_name[24];                /* "uint8", "int64", "float32", "string", "compound", ... */
    int ndim;
    int64_t shape[H5IO_MAX_DIMS];
    int64_t nelem;                     /* product of shape (1 for a scalar) */
    int chunk_ndim;                    /* 0 when not chunked (datasets only) */
    int64_t chunk[H5IO_MAX_DIMS];
    int nfilters;                      /* compression and other filters (datasets only) */
} H5Info;

/* Opens an existing file. Errors distinguish a missing file, a file that is not HDF5, and a damaged one (a
   truncated file says so, with the sizes HDF5 reports). Returns NULL and fills err on failure. */
H5File *h5_open(const char *path, H5Mode mode, UlError *err);
/* Creates a file for writing: exclusive (fails when path exists) or truncating. NULL + err on failure. */
H5File *h5_create(const char *path, bool exclusive, UlError *err);
/* Creates a file that lives in memory (HDF5's core driver, no backing store): nothing touches the disk until
   h5_save_image. expected_bytes sizes the buffer up front (it grows when needed). `path` names it in messages.
   Used for files that must be written all-or-nothing: HDF5 1.10 cannot close a disk file after a failed write
   (it crashes then, or at exit), so checkpoint writes never let HDF5 meet a disk error. */
H5File *h5_create_in_memory(const char *path, size_t expected_bytes, UlError *err);
/* Writes the complete image of an in-memory file (h5_create_in_memory) to `path` (created or truncated) with
   write(2), then fsync(2) and close(2). Returns 0, or -1 + err with the file system's reason (e.g. "No space left
   on device") after removing the partial file. The in-memory file stays open (close it with h5_close). */
int h5_save_image(H5File *f, const char *path, UlError *err);
/* Flushes a writable file's buffers to the operating system (not to the disk). */
int h5_flush(H5File *f, UlError *err);
/* Closes the file and frees the handle (NULL is a no-op). Returns 0, or -1 + err (err may be NULL) when HDF5
   could not write everything out. Open H5Dset handles of the file must be closed first. */
int h5_close(H5File *f, UlError *err);
/* The path the file was opened with (owned by the handle). */
const char *h5_file_path(const H5File *f);

typedef enum H5Kind { H5IO_MISSING, H5IO_GROUP, H5IO_DATASET, H5IO_OTHER } H5Kind;
/* What `name` is (every path component is checked, so a missing parent is H5IO_MISSING, never an error). */
H5Kind h5_kind(H5File *f, const char *name);
/* Creates group `name` and any missing parents; an existing group is fine. */
int h5_create_group(H5File *f, const char *name, UlError *err);
/* Every dataset below group `group` (recursively; "/" for all), as malloc'd full paths without a leading '/'
   ("params/conv1.weight"), sorted by strcmp. *names is malloc'd; free with h5_free_strings. */
int h5_list_datasets(H5File *f, const char *group, char ***names, int *count, UlError *err);
void h5_free_strings(char **s, int count);

/* ---- datasets ---- */

/* Opens a dataset for reading (reads of uncompressed chunks bypass the chunk cache; compressed ones get a
   64 MiB cache so that random rows do not decompress a chunk per row). NULL + err when missing or not a dataset. */
H5Dset *h5_dset_open(H5File *f, const char *name, UlError *err);
void h5_dset_close(H5Dset *d);
const H5Info *h5_dset_info(const H5Dset *d);
const char *h5_dset_name(const H5Dset *d);
/* Reads rows (indices along dimension 0) [starts[k], starts[k] + counts[k]) for k = 0..nruns-1, one read per run,
   into out, converted to `mem`, the runs' rows one after another. The runs must be ascending and disjoint
   (starts[k] + counts[k] <= starts[k+1]; fatal otherwise) and inside the dataset (UlError otherwise). Only the
   selected rows are read. out holds sum(counts) * (elements per row) values of `mem`. */
int h5_dset_read_runs(H5Dset *d, const int64_t *starts, const int64_t *counts, int nruns, H5Type mem, void *out,
                      UlError *err);
/* Rows [start, start + count) (a single run). */
int h5_dset_read_rows(H5Dset *d, int64_t start, int64_t count, H5Type mem, void *out, UlError *err);
/* The whole dataset (nelem values of `mem`). */
int h5_dset_read_all(H5Dset *d, H5Type mem, void *out, UlError *err);

/* Creates dataset `name` (parents created as needed) of `file_type` with the given shape (ndim 0..8; 0 is a
   scalar) and writes data (ndim-shaped, row-major, of `mem_type`; may be NULL to leave it unwritten).
   chunk_rows > 0 chunks it along dimension 0 with that many rows per chunk (clamped to [1, shape[0]]); 0 stores
   it contiguously. gzip 0 (none) or 1..9. Fails if the name exists. */
int h5_write_dataset(H5File *f, const char *name, H5Type file_type, H5Type mem_type, int ndim, const int64_t *shape,
                     const void *data, int64_t chunk_rows, int gzip, UlError *err);

/* ---- attributes of an object ("/" = the root group) ---- */

bool h5_attr_exists(H5File *f, const char *obj, const char *name);
/* Class, type and shape of an attribute. */
int h5_attr_info(H5File *f, const char *obj, const char *name, H5Info *info, UlError *err);
/* Numeric attribute (scalar or 1-D, any numeric type, converted to `mem`): at most max values into out, *count
   receives the element count (1 for a scalar). Integer targets (H5IO_I32/I64/U64/U8) require an integer attribute;
   float targets accept integers too. More than max elements is an error. */
int h5_read_attr(H5File *f, const char *obj, const char *name, H5Type mem, void *out, int64_t max, int64_t *count,
                 UlError *err);
/* Scalar (or single-element) string attribute into buf (cap bytes with the NUL; longer is an error). */
int h5_read_attr_str(H5File *f, const char *obj, const char *name, char *buf, size_t cap, UlError *err);
/* 1-D (or scalar) string attribute: *strs is a malloc'd array of *count malloc'd strings (h5_free_strings). */
int h5_read_attr_strs(H5File *f, const char *obj, const char *name, char ***strs, int *count, UlError *err);
/* Writers replace an existing attribute of the same name. n == 0 writes a scalar (one value). */
int h5_write_attr(H5File *f, const char *obj, const char *name, H5Type type, int64_t n, const void *values,
                  UlError *err);
int h5_write_attr_str(H5File *f, const char *obj, const char *name, const char *value, UlError *err);
int h5_write_attr_strs(H5File *f, const char *obj, const char *name, const char *const *values, int n,
                       UlError *err);

/* Bytes of one element of a memory type. */
size_t h5_type_size(H5Type t);
/* The HDF5 library version, e.g. "1.10.8 (parallel)" or "1.10.10 (serial)" (for provenance). Static storage. */
const char *h5_library_version(void);

#endif
