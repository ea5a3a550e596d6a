/* h5io.c - see include/h5io.h. The only file that includes hdf5.h. */
#define _POSIX_C_SOURCE 200809L
#include "h5io.h"

#include <hdf5.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct H5File {
    hid_t id;
    bool writable;
    char *path;          /* owned copy */
};

struct H5Dset {
    hid_t id;
    H5File *file;        /* not owned */
    char *name;          /* owned copy */
    H5Info info;
    hsize_t row_elems;   /* elements per index of dimension 0 */
};

/* Silences HDF5's own error stack printing: every failure is reported through UlError instead. */
static void h5_quiet(void)
{
    static int done = 0;
    if (!done) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        done = 1;
    }
}

static char *h5_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = UL_MALLOC(n);
    memcpy(p, s, n);
    return p;
}

static hid_t mem_type_id(H5Type t)
{
    switch (t) {
    case H5IO_U8: return H5T_NATIVE_UINT8;
    case H5IO_I32: return H5T_NATIVE_INT32;
    case H5IO_I64: return H5T_NATIVE_INT64;
    case H5IO_U64: return H5T_NATIVE_UINT64;
    case H5IO_F32: return H5T_NATIVE_FLOAT;
    case H5IO_F64: return H5T_NATIVE_DOUBLE;
    }
    UL_CHECK(0, "bad H5Type %d", (int)t);
}

static hid_t file_type_id(H5Type t)
{
    switch (t) {
    case H5IO_U8: return H5T_STD_U8LE;
    case H5IO_I32: return H5T_STD_I32LE;
    case H5IO_I64: return H5T_STD_I64LE;
    case H5IO_U64: return H5T_STD_U64LE;
    case H5IO_F32: return H5T_IEEE_F32LE;
    case H5IO_F64: return H5T_IEEE_F64LE;
    }
    UL_CHECK(0, "bad H5Type %d", (int)t);
}

size_t h5_type_size(H5Type t)
{
    switch (t) {
    case H5IO_U8: return 1;
    case H5IO_I32: return 4;
    case H5IO_I64: return 8;
    case H5IO_U64: return 8;
    case H5IO_F32: return 4;
    case H5IO_F64: return 8;
    }
    UL_CHECK(0, "bad H5Type %d", (int)t);
}

static bool type_is_int(H5Type t) { return t == H5IO_U8 || t == H5IO_I32 || t == H5IO_I64 || t == H5IO_U64; }

const char *h5_library_version(void)
{
    static char buf[64];
    unsigned maj = 0, min = 0, rel = 0;
    H5get_libversion(&maj, &min, &rel);
#ifdef H5_HAVE_PARALLEL
    const char *kind = "parallel";
#else
    const char *kind = "serial";
#endif
    snprintf(buf, sizeof buf, "%u.%u.%u (%s)", maj, min, rel, kind);
    return buf;
}

/* Fills class, type name, element size and shape from an HDF5 type and dataspace. */
static void fill_info(hid_t type, hid_t space, H5Info *info)
{
    memset(info, 0, sizeof *info);
    H5T_class_t cls = H5Tget_class(type);
    info->size = H5Tget_size(type);
    switch (cls) {
    case H5T_INTEGER:
        info->cls = H5IO_CLASS_INT;
        info->is_signed = H5Tget_sign(type) == H5T_SGN_2;
        snprintf(info->type_name, sizeof info->type_name, "%sint%zu", info->is_signed ? "" : "u", 8 * info->size);
        break;
    case H5T_FLOAT:
        info->cls = H5IO_CLASS_FLOAT;
        snprintf(info->type_name, sizeof info->type_name, "float%zu", 8 * info->size);
        break;
    case H5T_STRING:
        info->cls = H5IO_CLASS_STRING;
        snprintf(info->type_name, sizeof info->type_name, "string");
        break;
    default:
        info->cls = H5IO_CLASS_OTHER;
        snprintf(info->type_name, sizeof info->type_name, "%s",
                 cls == H5T_COMPOUND ? "compound" : cls == H5T_ENUM ? "enum (bool?)" :
                 cls == H5T_ARRAY ? "array" : cls == H5T_VLEN ? "vlen" : cls == H5T_OPAQUE ? "opaque" :
                 cls == H5T_REFERENCE ? "reference" : cls == H5T_BITFIELD ? "bitfield" : "unknown");
        break;
    }
    int nd = H5Sget_simple_extent_ndims(space);
    hsize_t dims[H5S_MAX_RANK];
    if (nd < 0) nd = 0;
    H5Sget_simple_extent_dims(space, dims, NULL);
    info->ndim = nd;
    for (int i = 0; i < nd && i < H5IO_MAX_DIMS; i++) info->shape[i] = (int64_t)dims[i];
    hssize_t np = H5Sget_simple_extent_npoints(space);
    info->nelem = np < 0 ? 0 : (int64_t)np;
}

/* ---- files ---- */

/* Collects HDF5's error stack descriptions into buf (innermost last). */
typedef struct WalkBuf {
    char text[512];
    char truncated[256];
} WalkBuf;

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    (void)n;
    WalkBuf *w = data;
    if (!e->desc || !e->desc[0]) return 0;
    if (strstr(e->desc, "truncated") && !w->truncated[0]) snprintf(w->truncated, sizeof w->truncated, "%s", e->desc);
    snprintf(w->text, sizeof w->text, "%s", e->desc);
    return 0;
}

static void error_stack(WalkBuf *w)
{
    memset(w, 0, sizeof *w);
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_cb, w);
    H5Eclear2(H5E_DEFAULT);
}

/* True when the HDF5 signature is at offset 0, 512, 1024, ... (where HDF5 looks for it). */
static bool has_hdf5_signature(const char *path, int64_t size)
{
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    FILE *fp = fopen(path, "rb");
    if (!fp) return false;
    bool found = false;
    for (int64_t off = 0; off + 8 <= size && !found; off = off ? off * 2 : 512) {
        unsigned char b[8];
        if (fseeko(fp, (off_t)off, SEEK_SET) != 0 || fread(b, 1, 8, fp) != 8) break;
        found = memcmp(b, sig, 8) == 0;
    }
    fclose(fp);
    return found;
}

/* Read opens skip file locks where the library allows it (1.10.7+, 1.12.1+): many ranks read the same file and
   some parallel file systems have no flock. */
static hid_t fapl_for(bool writable)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
#if (H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10 && H5_VERS_RELEASE >= 7) || \
    (H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 12 && H5_VERS_RELEASE >= 1) || \
    (H5_VERS_MAJOR == 1 && H5_VERS_MINOR >= 13) || H5_VERS_MAJOR > 1
    H5Pset_file_locking(fapl, writable ? 1 : 0, 1);
#else
    (void)writable;
#endif
    return fapl;
}

H5File *h5_open(const char *path, H5Mode mode, UlError *err)
{
    h5_quiet();
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) ul_error_set(err, "%s: no such file", path);
        else ul_error_set(err, "%s: cannot access the file (%s)", path, strerror(errno));
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        ul_error_set(err, "%s: is a directory, not an HDF5 file", path);
        return NULL;
    }
    if (!has_hdf5_signature(path, (int64_t)st.st_size)) {
        ul_error_set(err, "%s: not an HDF5 file (no HDF5 signature; %lld bytes)", path, (long long)st.st_size);
        return NULL;
    }
    bool writable = mode == H5IO_RDWR;
    hid_t fapl = fapl_for(writable);
    hid_t id = H5Fopen(path, writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl);
    WalkBuf w;
    if (id < 0) error_stack(&w);  /* before any other call: every API call clears the error stack */
    H5Pclose(fapl);
    if (id < 0) {
        if (w.truncated[0])
            ul_error_set(err, "%s: the file is truncated (%lld bytes on disk; HDF5: %s)", path,
                         (long long)st.st_size, w.truncated);
        else
            ul_error_set(err, "%s: cannot open the HDF5 file%s (HDF5: %s)", path,
                         writable ? " for writing" : "", w.text[0] ? w.text : "unknown error");
        return NULL;
    }
    H5File *f = UL_CALLOC(1, sizeof *f);
    f->id = id;
    f->writable = writable;
    f->path = h5_strdup(path);
    return f;
}

H5File *h5_create(const char *path, bool exclusive, UlError *err)
{
    h5_quiet();
    hid_t fapl = fapl_for(true);
    errno = 0;
    hid_t id = H5Fcreate(path, exclusive ? H5F_ACC_EXCL : H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    int saved = errno;
    WalkBuf w;
    if (id < 0) error_stack(&w);
    H5Pclose(fapl);
    if (id < 0) {
        ul_error_set(err, "%s: cannot create the file (%s; HDF5: %s)", path, saved ? strerror(saved) : "?",
                     w.text[0] ? w.text : "unknown error");
        return NULL;
    }
    H5File *f = UL_CALLOC(1, sizeof *f);
    f->id = id;
    f->writable = true;
    f->path = h5_strdup(path);
    return f;
}

H5File *h5_create_in_memory(const char *path, size_t expected_bytes, UlError *err)
{
    h5_quiet();
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    size_t increment = expected_bytes < ((size_t)1 << 20) ? (size_t)1 << 20 : expected_bytes;
    H5Pset_fapl_core(fapl, increment, 0);
    hid_t id = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    WalkBuf w;
    if (id < 0) error_stack(&w);
    H5Pclose(fapl);
    if (id < 0) {
        ul_error_set(err, "%s: cannot create the file in memory (HDF5: %s)", path, w.text);
        return NULL;
    }
    H5File *f = UL_CALLOC(1, sizeof *f);
    f->id = id;
    f->writable = true;
    f->path = h5_strdup(path);
    return f;
}

int h5_save_image(H5File *f, const char *path, UlError *err)
{
    ssize_t size = H5Fget_file_image(f->id, NULL, 0);
    if (size <= 0) {
        WalkBuf w;
        error_stack(&w);
        ul_error_set(err, "%s: cannot take the in-memory file's image (HDF5: %s)", path, w.text);
        return -1;
    }
    char *buf = UL_MALLOC((size_t)size);
    if (H5Fget_file_image(f->id, buf, (size_t)size) != size) {
        WalkBuf w;
        error_stack(&w);
        ul_error_set(err, "%s: cannot take the in-memory file's image (HDF5: %s)", path, w.text);
        free(buf);
        return -1;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        ul_error_set(err, "%s: cannot create (%s)", path, strerror(errno));
        free(buf);
        return -1;
    }
    size_t done = 0;
    int rc = 0;
    while (done < (size_t)size) {
        ssize_t k = write(fd, buf + done, (size_t)size - done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            ul_error_set(err, "%s: write failed after %zu of %zu bytes (%s)", path, done, (size_t)size,
                         k < 0 ? strerror(errno) : "no progress");
            rc = -1;
            break;
        }
        done += (size_t)k;
    }
    if (!rc && fsync(fd) != 0) {
        ul_error_set(err, "%s: fsync failed (%s)", path, strerror(errno));
        rc = -1;
    }
    if (close(fd) != 0 && !rc) {
        ul_error_set(err, "%s: close failed (%s)", path, strerror(errno));
        rc = -1;
    }
    free(buf);
    if (rc) unlink(path);
    return rc;
}

int h5_flush(H5File *f, UlError *err)
{
    if (H5Fflush(f->id, H5F_SCOPE_GLOBAL) < 0) {
        WalkBuf w;
        error_stack(&w);
        ul_error_set(err, "%s: writing the file failed (disk full or file size limit?; HDF5: %s)", f->path, w.text);
        return -1;
    }
    return 0;
}

int h5_close(H5File *f, UlError *err)
{
    if (!f) return 0;
    int rc = 0;
    if (H5Fclose(f->id) < 0) {
        WalkBuf w;
        error_stack(&w);
        if (err)
            ul_error_set(err, "%s: closing the file failed (disk full or file size limit?; HDF5: %s)", f->path,
                         w.text);
        rc = -1;
    }
    free(f->path);
    free(f);
    return rc;
}

const char *h5_file_path(const H5File *f) { return f->path; }

/* ---- names ---- */

H5Kind h5_kind(H5File *f, const char *name)
{
    h5_quiet();
    const char *p = name;
    while (*p == '/') p++;
    if (!*p) return H5IO_GROUP;
    size_t len = strlen(p);
    char *buf = UL_MALLOC(len + 1);
    /* every prefix ending before a '/' must exist (H5Lexists fails on a missing parent) */
    for (size_t i = 0; i <= len; i++) {
        if (p[i] != '/' && p[i] != '\0') continue;
        memcpy(buf, p, i);
        buf[i] = '\0';
        if (H5Lexists(f->id, buf, H5P_DEFAULT) <= 0) {
            H5Eclear2(H5E_DEFAULT);
            free(buf);
            return H5IO_MISSING;
        }
    }
    free(buf);
    hid_t o = H5Oopen(f->id, p, H5P_DEFAULT);
    if (o < 0) {
        H5Eclear2(H5E_DEFAULT);
        return H5IO_MISSING;  /* a dangling soft or external link */
    }
    H5I_type_t t = H5Iget_type(o);
    H5Oclose(o);
    return t == H5I_GROUP ? H5IO_GROUP : t == H5I_DATASET ? H5IO_DATASET : H5IO_OTHER;
}

static hid_t lcpl_parents(void)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    return lcpl;
}

int h5_create_group(H5File *f, const char *name, UlError *err)
{
    H5Kind k = h5_kind(f, name);
    if (k == H5IO_GROUP) return 0;
    if (k != H5IO_MISSING) {
        ul_error_set(err, "%s: cannot create group '%s': the name exists and is not a group", f->path, name);
        return -1;
    }
    hid_t lcpl = lcpl_parents();
    hid_t g = H5Gcreate2(f->id, name, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    WalkBuf w;
    if (g < 0) error_stack(&w);
    H5Pclose(lcpl);
    if (g < 0) {
        ul_error_set(err, "%s: cannot create group '%s' (HDF5: %s)", f->path, name, w.text);
        return -1;
    }
    H5Gclose(g);
    return 0;
}

typedef struct ListCtx {
    const char *prefix;  /* group path + '/' ("" for the root) */
    char **names;
    int count, cap;
    int failed;
} ListCtx;

static herr_t list_cb(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    ListCtx *c = data;
    if (info->type != H5L_TYPE_HARD) return 0;
    hid_t o = H5Oopen(g, name, H5P_DEFAULT);
    if (o < 0) {
        H5Eclear2(H5E_DEFAULT);
        return 0;
    }
    bool is_dset = H5Iget_type(o) == H5I_DATASET;
    H5Oclose(o);
    if (!is_dset) return 0;
    if (c->count == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->names = UL_REALLOC(c->names, ul_mul_size((size_t)c->cap, sizeof *c->names));
    }
    size_t lp = strlen(c->prefix), ln = strlen(name);
    char *s = UL_MALLOC(lp + ln + 1);
    memcpy(s, c->prefix, lp);
    memcpy(s + lp, name, ln + 1);
    c->names[c->count++] = s;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int h5_list_datasets(H5File *f, const char *group, char ***names, int *count, UlError *err)
{
    *names = NULL;
    *count = 0;
    if (h5_kind(f, group) != H5IO_GROUP) {
        ul_error_set(err, "%s: no group '%s'", f->path, group);
        return -1;
    }
    const char *p = group;
    while (*p == '/') p++;
    size_t lp = strlen(p);
    char *prefix = UL_MALLOC(lp + 2);
    memcpy(prefix, p, lp);
    if (lp && p[lp - 1] != '/') prefix[lp++] = '/';
    prefix[lp] = '\0';
    ListCtx c = {.prefix = prefix};
    hid_t g = H5Gopen2(f->id, *p ? p : "/", H5P_DEFAULT);
    int rc = 0;
    if (g < 0 || H5Lvisit(g, H5_INDEX_NAME, H5_ITER_INC, list_cb, &c) < 0) {
        WalkBuf w;
        error_stack(&w);
        ul_error_set(err, "%s: cannot list group '%s' (damaged file?; HDF5: %s)", f->path, group, w.text);
        rc = -1;
    }
    if (g >= 0) H5Gclose(g);
    free(prefix);
    if (rc) {
        h5_free_strings(c.names, c.count);
        return -1;
    }
    if (c.count > 1) qsort(c.names, (size_t)c.count, sizeof *c.names, cmp_str);
    *names = c.names;
    *count = c.count;
    return 0;
}

void h5_free_strings(char **s, int count)
{
    if (!s) return;
    for (int i = 0; i < count; i++) free(s[i]);
    free(s);
}

/* ---- datasets ---- */

H5Dset *h5_dset_open(H5File *f, const char *name, UlError *err)
{
    H5Kind k = h5_kind(f, name);
    if (k == H5IO_MISSING) {
        ul_error_set(err, "%s: no dataset '%s'", f->path, name);
        return NULL;
    }
    if (k != H5IO_DATASET) {
        ul_error_set(err, "%s: '%s' is a %s, not a dataset", f->path, name, k == H5IO_GROUP ? "group" : "named type");
        return NULL;
    }
    hid_t id = H5Dopen2(f->id, name, H5P_DEFAULT);
    if (id < 0) {
        WalkBuf w;
        error_stack(&w);
        ul_error_set(err, "%s: cannot open dataset '%s' (HDF5: %s)", f->path, name, w.text);
        return NULL;
    }
    H5Dset *d = UL_CALLOC(1, sizeof *d);
    d->file = f;
    d->name = h5_strdup(name);
    hid_t type = H5Dget_type(id), space = H5Dget_space(id), dcpl = H5Dget_create_plist(id);
    fill_info(type, space, &d->info);
    d->info.nfilters = H5Pget_nfilters(dcpl);
    if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
        hsize_t cd[H5S_MAX_RANK];
        int nc = H5Pget_chunk(dcpl, H5S_MAX_RANK, cd);
        d->info.chunk_ndim = nc < 0 ? 0 : nc;
        for (int i = 0; i < nc && i < H5IO_MAX_DIMS; i++) d->info.chunk[i] = (int64_t)cd[i];
    }
    H5Tclose(type);
    H5Sclose(space);
    H5Pclose(dcpl);
    /* Chunk cache: uncompressed chunks are read directly (only the selected rows) when the cache is empty;
       compressed chunks must be decompressed whole, so keep the recent ones. Reopen with the chosen cache. */
    H5Dclose(id);
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    if (d->info.chunk_ndim > 0) {
        if (d->info.nfilters > 0) H5Pset_chunk_cache(dapl, 100003, (size_t)64 << 20, 1.0);
        else H5Pset_chunk_cache(dapl, H5D_CHUNK_CACHE_NSLOTS_DEFAULT, 0, 1.0);
    }
    d->id = H5Dopen2(f->id, name, dapl);
    H5Pclose(dapl);
    UL_CHECK(d->id >= 0, "%s: reopening dataset '%s' failed", f->path, name);
    d->row_elems = 1;
    for (int i = 1; i < d->info.ndim; i++) d->row_elems *= (hsize_t)d->info.shape[i];
    return d;
}

void h5_dset_close(H5Dset *d)
{
    if (!d) return;
    H5Dclose(d->id);
    free(d->name);
    free(d);
}

const H5Info *h5_dset_info(const H5Dset *d) { return &d->info; }
const char *h5_dset_name(const H5Dset *d) { return d->name; }

static int dset_read_fail(H5Dset *d, UlError *err)
{
    WalkBuf w;
    error_stack(&w);
    if (w.truncated[0] || strstr(w.text, "addr overflow") || strstr(w.text, "read failed"))
        ul_error_set(err, "%s: reading dataset '%s' failed: the file is truncated or damaged (HDF5: %s)",
                     d->file->path, d->name, w.truncated[0] ? w.truncated : w.text);
    else
        ul_error_set(err, "%s: reading dataset '%s' failed (damaged file or values that do not convert?; HDF5: %s)",
                     d->file->path, d->name, w.text);
    return -1;
}

int h5_dset_read_runs(H5Dset *d, const int64_t *starts, const int64_t *counts, int nruns, H5Type mem, void *out,
                      UlError *err)
{
    const H5Info *in = &d->info;
    UL_CHECK(in->ndim >= 1 && in->ndim <= H5IO_MAX_DIMS, "%s: row reads need a 1-%d dimensional dataset",
             d->name, H5IO_MAX_DIMS);
    for (int k = 0; k < nruns; k++) {
        UL_CHECK(counts[k] >= 0, "negative run length %lld", (long long)counts[k]);
        if (starts[k] < 0 || starts[k] + counts[k] > in->shape[0]) {
            ul_error_set(err, "%s: dataset '%s': rows [%lld, %lld) outside [0, %lld)", d->file->path, d->name,
                         (long long)starts[k], (long long)(starts[k] + counts[k]), (long long)in->shape[0]);
            return -1;
        }
        UL_CHECK(k == 0 || starts[k] >= starts[k - 1] + counts[k - 1], "row runs must be ascending and disjoint");
    }
    /* One H5Dread per run, each a single hyperslab with a memory space of the same shape: HDF5 1.10 then copies
       whole rows (measured on Fashion-MNIST, 128 random rows: 0.5 ms; one read of the union of the runs: 9 ms;
       a 1-D memory space: 30x slower still). */
    hid_t fspace = H5Dget_space(d->id);
    hsize_t start[H5IO_MAX_DIMS] = {0}, count[H5IO_MAX_DIMS];
    for (int i = 0; i < in->ndim; i++) count[i] = (hsize_t)in->shape[i];
    char *dst = out;
    size_t row_bytes = (size_t)d->row_elems * h5_type_size(mem);
    int rc = 0;
    for (int k = 0; k < nruns && rc == 0; k++) {
        if (counts[k] == 0) continue;
        start[0] = (hsize_t)starts[k];
        count[0] = (hsize_t)counts[k];
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL);
        hid_t mspace = H5Screate_simple(in->ndim, count, NULL);
        if (H5Dread(d->id, mem_type_id(mem), mspace, fspace, H5P_DEFAULT, dst) < 0) rc = dset_read_fail(d, err);
        H5Sclose(mspace);
        dst += ul_mul_size((size_t)counts[k], row_bytes);
    }
    H5Sclose(fspace);
    return rc;
}

int h5_dset_read_rows(H5Dset *d, int64_t start, int64_t count, H5Type mem, void *out, UlError *err)
{
    return h5_dset_read_runs(d, &start, &count, 1, mem, out, err);
}

int h5_dset_read_all(H5Dset *d, H5Type mem, void *out, UlError *err)
{
    if (d->info.nelem == 0) return 0;
    if (H5Dread(d->id, mem_type_id(mem), H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) return dset_read_fail(d, err);
    return 0;
}

int h5_write_dataset(H5File *f, const char *name, H5Type file_type, H5Type mem_type, int ndim, const int64_t *shape,
                     const void *data, int64_t chunk_rows, int gzip, UlError *err)
{
    UL_CHECK(ndim >= 0 && ndim <= H5IO_MAX_DIMS, "dataset rank %d outside [0, %d]", ndim, H5IO_MAX_DIMS);
    UL_CHECK(gzip >= 0 && gzip <= 9, "gzip level %d outside [0, 9]", gzip);
    if (h5_kind(f, name) != H5IO_MISSING) {
        ul_error_set(err, "%s: cannot create dataset '%s': the name exists", f->path, name);
        return -1;
    }
    hsize_t dims[H5IO_MAX_DIMS], cdims[H5IO_MAX_DIMS];
    bool all_positive = ndim >= 1;
    for (int i = 0; i < ndim; i++) {
        UL_CHECK(shape[i] >= 0, "negative dimension %lld", (long long)shape[i]);
        dims[i] = cdims[i] = (hsize_t)shape[i];
        if (shape[i] == 0) all_positive = false;
    }
    hid_t space = ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndim, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if ((chunk_rows > 0 || gzip > 0) && all_positive) {
        int64_t r = chunk_rows > 0 ? chunk_rows : shape[0];
        cdims[0] = (hsize_t)(r < shape[0] ? r : shape[0]);
        H5Pset_chunk(dcpl, ndim, cdims);
        if (gzip > 0) H5Pset_deflate(dcpl, (unsigned)gzip);
    }
    hid_t lcpl = lcpl_parents();
    hid_t id = H5Dcreate2(f->id, name, file_type_id(file_type), space, lcpl, dcpl, H5P_DEFAULT);
    WalkBuf w;
    if (id < 0) error_stack(&w);
    H5Pclose(lcpl);
    H5Pclose(dcpl);
    H5Sclose(space);
    if (id < 0) {
        ul_error_set(err, "%s: cannot create dataset '%s' (HDF5: %s)", f->path, name, w.text);
        return -1;
    }
    int rc = 0;
    if (data && H5Dwrite(id, mem_type_id(mem_type), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        error_stack(&w);
        ul_error_set(err, "%s: writing dataset '%s' failed (disk full or file size limit?; HDF5: %s)", f->path, name,
                     w.text);
        rc = -1;
    }
    H5Dclose(id);
    return rc;
}

/* ---- attributes ---- */

bool h5_attr_exists(H5File *f, const char *obj, const char *name)
{
    if (h5_kind(f, obj) == H5IO_MISSING) return false;
    htri_t e = H5Aexists_by_name(f->id, obj, name, H5P_DEFAULT);
    if (e < 0) H5Eclear2(H5E_DEFAULT);
    return e > 0;
}

static const char *obj_label(const char *obj) { return (!obj[0] || strcmp(obj, "/") == 0) ? "the root group" : obj; }

/* Opens attribute `name` of `obj` and fills info; -1 + err when the object or attribute is missing. */
static hid_t attr_open(H5File *f, const char *obj, const char *name, H5Info *info, UlError *err)
{
    if (!h5_attr_exists(f, obj, name)) {
        ul_error_set(err, "%s: no attribute '%s' on %s", f->path, name, obj_label(obj));
        return -1;
    }
    hid_t a = H5Aopen_by_name(f->id, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) {
        WalkBuf w;
        error_stack(&w);
        ul_error_set(err, "%s: cannot open attribute '%s' on %s (HDF5: %s)", f->path, name, obj_label(obj), w.text);
        return -1;
    }
    hid_t type = H5Aget_type(a), space = H5Aget_space(a);
    fill_info(type, space, info);
    H5Tclose(type);
    H5Sclose(space);
    return a;
}

int h5_attr_info(H5File *f, const char *obj, const char *name, H5Info *info, UlError *err)
{
    hid_t a = attr_open(f, obj, name, info, err);
    if (a < 0) return -1;
    H5Aclose(a);
    return 0;
}

int h5_read_attr(H5File *f, const char *obj, const char *name, H5Type mem, void *out, int64_t max, int64_t *count,
                 UlError *err)
{
    H5Info in;
    hid_t a = attr_open(f, obj, name, &in, err);
    if (a < 0) return -1;
    int rc = -1;
    if (type_is_int(mem) && in.cls != H5IO_CLASS_INT)
        ul_error_set(err, "%s: attribute '%s' on %s has type %s; an integer is expected", f->path, name,
                     obj_label(obj), in.type_name);
    else if (in.cls != H5IO_CLASS_INT && in.cls != H5IO_CLASS_FLOAT)
        ul_error_set(err, "%s: attribute '%s' on %s has type %s; a number is expected", f->path, name, obj_label(obj),
                     in.type_name);
    else if (in.ndim > 1)
        ul_error_set(err, "%s: attribute '%s' on %s has %d dimensions; a scalar or a 1-D array is expected", f->path,
                     name, obj_label(obj), in.ndim);
    else if (in.nelem > max)
        ul_error_set(err, "%s: attribute '%s' on %s has %lld values; at most %lld expected", f->path, name,
                     obj_label(obj), (long long)in.nelem, (long long)max);
    else if (in.nelem > 0 && H5Aread(a, mem_type_id(mem), out) < 0) {
        WalkBuf w;
        error_stack(&w);
        ul_error_set(err, "%s: reading attribute '%s' on %s failed (HDF5: %s)", f->path, name, obj_label(obj), w.text);
    } else {
        *count = in.nelem;
        rc = 0;
    }
    H5Aclose(a);
    return rc;
}

int h5_read_attr_strs(H5File *f, const char *obj, const char *name, char ***strs, int *count, UlError *err)
{
    *strs = NULL;
    *count = 0;
    H5Info in;
    hid_t a = attr_open(f, obj, name, &in, err);
    if (a < 0) return -1;
    if (in.cls != H5IO_CLASS_STRING || in.ndim > 1 || in.nelem > INT_MAX) {
        ul_error_set(err, "%s: attribute '%s' on %s has type %s%s; a string (or 1-D array of strings) is expected",
                     f->path, name, obj_label(obj), in.type_name, in.ndim > 1 ? " with more than one dimension" : "");
        H5Aclose(a);
        return -1;
    }
    int n = (int)in.nelem;
    char **out = UL_CALLOC((size_t)n + 1, sizeof *out);
    hid_t ftype = H5Aget_type(a);
    int rc = 0;
    WalkBuf w;
    if (H5Tis_variable_str(ftype) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(ftype));
        char **ptrs = UL_CALLOC((size_t)n + 1, sizeof *ptrs);
        if (n > 0 && H5Aread(a, mt, ptrs) < 0) {
            error_stack(&w);
            rc = -1;
        } else {
            for (int i = 0; i < n; i++) {
                out[i] = h5_strdup(ptrs[i] ? ptrs[i] : "");
                if (ptrs[i]) H5free_memory(ptrs[i]);
            }
        }
        free(ptrs);
        H5Tclose(mt);
    } else {
        size_t size = H5Tget_size(ftype);
        H5T_str_t pad = H5Tget_strpad(ftype);
        char *buf = UL_MALLOC(ul_mul_size((size_t)n + 1, size));
        if (n > 0 && H5Aread(a, ftype, buf) < 0) {
            error_stack(&w);
            rc = -1;
        } else {
            for (int i = 0; i < n; i++) {
                const char *s = buf + (size_t)i * size;
                size_t len = strnlen(s, size);
                if (pad == H5T_STR_SPACEPAD)
                    while (len > 0 && s[len - 1] == ' ') len--;
                out[i] = UL_MALLOC(len + 1);
                memcpy(out[i], s, len);
                out[i][len] = '\0';
            }
        }
        free(buf);
    }
    H5Tclose(ftype);
    H5Aclose(a);
    if (rc) {
        ul_error_set(err, "%s: reading attribute '%s' on %s failed (HDF5: %s)", f->path, name, obj_label(obj), w.text);
        h5_free_strings(out, n);
        return -1;
    }
    *strs = out;
    *count = n;
    return 0;
}

int h5_read_attr_str(H5File *f, const char *obj, const char *name, char *buf, size_t cap, UlError *err)
{
    char **s;
    int n;
    if (h5_read_attr_strs(f, obj, name, &s, &n, err)) return -1;
    int rc = 0;
    if (n != 1) {
        ul_error_set(err, "%s: attribute '%s' on %s holds %d strings; one is expected", f->path, name, obj_label(obj),
                     n);
        rc = -1;
    } else if (!ul_strlcpy(buf, s[0], cap)) {
        ul_error_set(err, "%s: attribute '%s' on %s is %zu characters long; at most %zu are accepted", f->path, name,
                     obj_label(obj), strlen(s[0]), cap - 1);
        rc = -1;
    }
    h5_free_strings(s, n);
    return rc;
}

/* Creates attribute `name` on obj (replacing an existing one) with the given file type and dataspace and writes
   `values` of memory type mt. */
static int attr_create_write(H5File *f, const char *obj, const char *name, hid_t ftype, hid_t space, hid_t mt,
                             const void *values, UlError *err)
{
    if (h5_kind(f, obj) == H5IO_MISSING) {
        ul_error_set(err, "%s: cannot write attribute '%s': no object '%s'", f->path, name, obj);
        return -1;
    }
    if (h5_attr_exists(f, obj, name) && H5Adelete_by_name(f->id, obj, name, H5P_DEFAULT) < 0) {
        WalkBuf w;
        error_stack(&w);
        ul_error_set(err, "%s: cannot replace attribute '%s' on %s (HDF5: %s)", f->path, name, obj_label(obj), w.text);
        return -1;
    }
    hid_t a = H5Acreate_by_name(f->id, obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = 0;
    if (a < 0 || H5Awrite(a, mt, values) < 0) {
        WalkBuf w;
        error_stack(&w);
        ul_error_set(err, "%s: writing attribute '%s' on %s failed (HDF5: %s)", f->path, name, obj_label(obj), w.text);
        rc = -1;
    }
    if (a >= 0) H5Aclose(a);
    return rc;
}

int h5_write_attr(H5File *f, const char *obj, const char *name, H5Type type, int64_t n, const void *values,
                  UlError *err)
{
    UL_CHECK(n >= 0, "negative attribute length");
    hsize_t dim = (hsize_t)n;
    hid_t space = n == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL);
    int rc = attr_create_write(f, obj, name, file_type_id(type), space, mem_type_id(type), values, err);
    H5Sclose(space);
    return rc;
}

/* Fixed-length, NUL-terminated ASCII strings of the longest length + 1: scalar when scalar, else 1-D [n]. */
static int write_strs(H5File *f, const char *obj, const char *name, const char *const *values, int n, bool scalar,
                      UlError *err)
{
    size_t size = 1;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(values[i]) + 1;
        if (l > size) size = l;
    }
    char *buf = UL_CALLOC((size_t)(n ? n : 1), size);
    for (int i = 0; i < n; i++) memcpy(buf + (size_t)i * size, values[i], strlen(values[i]));
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, size);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    H5Tset_cset(t, H5T_CSET_ASCII);
    hsize_t dim = (hsize_t)n;
    hid_t space = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL);
    int rc = attr_create_write(f, obj, name, t, space, t, buf, err);
    H5Sclose(space);
    H5Tclose(t);
    free(buf);
    return rc;
}

int h5_write_attr_str(H5File *f, const char *obj, const char *name, const char *value, UlError *err)
{
    return write_strs(f, obj, name, &value, 1, true, err);
}

int h5_write_attr_strs(H5File *f, const char *obj, const char *name, const char *const *values, int n,
                       UlError *err)
{
    UL_CHECK(n >= 1, "a string array attribute needs at least one string");
    return write_strs(f, obj, name, values, n, false, err);
}

/* ---- whole-dataset readers ---- */

static void *h5_read_whole(const char *path, const char *dset, int max_dims, int *ndim, int64_t *shape, bool ints,
                           UlError *err)
{
    H5File *f = h5_open(path, H5IO_READ, err);
    if (!f) return NULL;
    H5Dset *d = h5_dset_open(f, dset, err);
    void *buf = NULL;
    if (d) {
        const H5Info *in = h5_dset_info(d);
        if (ints && in->cls != H5IO_CLASS_INT) {
            ul_error_set(err, "%s: dataset '%s' must have an integer type (found %s)", path, dset, in->type_name);
        } else if (in->cls != H5IO_CLASS_INT && in->cls != H5IO_CLASS_FLOAT) {
            ul_error_set(err, "%s: dataset '%s' is not numeric (found %s)", path, dset, in->type_name);
        } else if (in->ndim > max_dims || in->ndim > H5IO_MAX_DIMS) {
            ul_error_set(err, "%s: dataset '%s' has %d dimensions, at most %d expected", path, dset, in->ndim,
                         max_dims);
        } else {
            *ndim = in->ndim;
            for (int i = 0; i < in->ndim; i++) shape[i] = in->shape[i];
            size_t n = (size_t)in->nelem;
            if (ints) {
                int64_t *tmp = UL_MALLOC(ul_mul_size(n ? n : 1, sizeof *tmp));
                if (h5_dset_read_all(d, H5IO_I64, tmp, err) == 0) {
                    int *out = UL_MALLOC(ul_mul_size(n ? n : 1, sizeof *out));
                    size_t i = 0;
                    for (; i < n; i++) {
                        if (tmp[i] < INT_MIN || tmp[i] > INT_MAX) break;
                        out[i] = (int)tmp[i];
                    }
                    if (i < n) {
                        ul_error_set(err, "%s: dataset '%s': value %lld at element %zu does not fit an int", path,
                                     dset, (long long)tmp[i], i);
                        free(out);
                    } else {
                        buf = out;
                    }
                }
                free(tmp);
            } else {
                float *out = UL_MALLOC(ul_mul_size(n ? n : 1, sizeof *out));
                if (h5_dset_read_all(d, H5IO_F32, out, err) == 0) buf = out;
                else free(out);
            }
        }
        h5_dset_close(d);
    }
    h5_close(f, NULL);
    return buf;
}

float *h5_read_floats(const char *path, const char *dset, int max_dims, int *ndim, int64_t *shape, UlError *err)
{
    return h5_read_whole(path, dset, max_dims, ndim, shape, false, err);
}

int *h5_read_ints(const char *path, const char *dset, int max_dims, int *ndim, int64_t *shape, UlError *err)
{
    return h5_read_whole(path, dset, max_dims, ndim, shape, true, err);
}

bool h5_has(const char *path, const char *dset)
{
    UlError err = {0};
    H5File *f = h5_open(path, H5IO_READ, &err);
    if (!f) return false;
    bool ok = h5_kind(f, dset) == H5IO_DATASET;
    h5_close(f, NULL);
    return ok;
}
