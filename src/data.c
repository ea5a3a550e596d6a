/* data.c - dataset validation, the global batch sequence and sharded loading; see include/data.h. */
#include "data.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

#define DATA_MAX_CLASSES (1 << 24)
#define DATA_MAX_CHANNELS 4096
/* Cached splits are read in pieces of about this many bytes (keeps every single read far below 2 GiB). */
#define DATA_CACHE_PIECE_BYTES ((size_t)256 << 20)

static const char *const split_names[DATA_NSPLITS] = {"train", "test"};

void data_options_default(DataOptions *o)
{
    memset(o, 0, sizeof *o);
    o->normalize = true;
    o->cache = false;
    o->cache_max_bytes = (size_t)4 << 30;
}

static void shape_str(const H5Info *in, char *buf, size_t cap)
{
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < in->ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)in->shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

/* Root attributes: format, format_version, num_classes, class_names. */
static int open_root_attrs(Dataset *ds, UlError *err)
{
    H5File *f = ds->file;
    const char *p = ds->path;
    if (!h5_attr_exists(f, "/", "format")) {
        ul_error_set(err, "%s: no attribute 'format' on the root group: not an unlearn dataset (expected format = "
                     "\"%s\"; convert it with data_tools/convert_*.py)", p, DATA_FORMAT);
        return -1;
    }
    char fmt[128];
    if (h5_read_attr_str(f, "/", "format", fmt, sizeof fmt, err)) return -1;
    if (strcmp(fmt, DATA_FORMAT) != 0) {
        ul_error_set(err, "%s: attribute 'format' is \"%s\"; expected \"%s\"", p, fmt, DATA_FORMAT);
        return -1;
    }
    int64_t v = 0, cnt = 0;
    if (!h5_attr_exists(f, "/", "format_version")) {
        ul_error_set(err, "%s: no attribute 'format_version' on the root group (expected %d)", p, DATA_FORMAT_VERSION);
        return -1;
    }
    if (h5_read_attr(f, "/", "format_version", H5IO_I64, &v, 1, &cnt, err)) return -1;
    if (cnt != 1 || v != DATA_FORMAT_VERSION) {
        ul_error_set(err, "%s: attribute 'format_version' is %lld; this build reads version %d", p, (long long)v,
                     DATA_FORMAT_VERSION);
        return -1;
    }
    if (!h5_attr_exists(f, "/", "num_classes")) {
        ul_error_set(err, "%s: no attribute 'num_classes' on the root group", p);
        return -1;
    }
    if (h5_read_attr(f, "/", "num_classes", H5IO_I64, &v, 1, &cnt, err)) return -1;
    if (cnt != 1 || v < 1 || v > DATA_MAX_CLASSES) {
        ul_error_set(err, "%s: attribute 'num_classes' is %lld; expected an integer in [1, %d]", p, (long long)v,
                     DATA_MAX_CLASSES);
        return -1;
    }
    ds->num_classes = (int)v;
    if (h5_attr_exists(f, "/", "class_names")) {
        int n = 0;
        if (h5_read_attr_strs(f, "/", "class_names", &ds->class_names, &n, err)) return -1;
        if (n != ds->num_classes) {
            ul_error_set(err, "%s: attribute 'class_names' has %d names but num_classes is %d", p, n, ds->num_classes);
            h5_free_strings(ds->class_names, n);
            ds->class_names = NULL;
            return -1;
        }
    }
    return 0;
}

/* Optional mean/std (validated against the channel count later). */
static int open_stats(Dataset *ds, int64_t *nmean, UlError *err)
{
    H5File *f = ds->file;
    bool hm = h5_attr_exists(f, "/", "mean"), hs = h5_attr_exists(f, "/", "std");
    if (hm != hs) {
        ul_error_set(err, "%s: the root group has attribute '%s' but not '%s' (give both or neither)", ds->path,
                     hm ? "mean" : "std", hm ? "std" : "mean");
        return -1;
    }
    if (!hm) return 0;
    ds->mean = UL_MALLOC(DATA_MAX_CHANNELS * sizeof(float));
    ds->std = UL_MALLOC(DATA_MAX_CHANNELS * sizeof(float));
    int64_t ns = 0;
    if (h5_read_attr(f, "/", "mean", H5IO_F32, ds->mean, DATA_MAX_CHANNELS, nmean, err)) return -1;
    if (h5_read_attr(f, "/", "std", H5IO_F32, ds->std, DATA_MAX_CHANNELS, &ns, err)) return -1;
    if (ns != *nmean) {
        ul_error_set(err, "%s: attribute 'mean' has %lld values but 'std' has %lld", ds->path, (long long)*nmean,
                     (long long)ns);
        return -1;
    }
    for (int64_t c = 0; c < ns; c++) {
        if (!isfinite(ds->mean[c]) || !isfinite(ds->std[c]) || !(ds->std[c] > 0.0f)) {
            ul_error_set(err, "%s: channel %lld has mean %g and std %g; both must be finite and std > 0", ds->path,
                         (long long)c, (double)ds->mean[c], (double)ds->std[c]);
            return -1;
        }
    }
    ds->has_stats = true;
    return 0;
}

static int open_split(Dataset *ds, DataSplitId s, UlError *err)
{
    DataSplit *sp = &ds->split[s];
    H5File *f = ds->file;
    const char *p = ds->path, *g = split_names[s];
    sp->name = g;
    H5Kind k = h5_kind(f, g);
    if (k != H5IO_GROUP) {
        if (k == H5IO_MISSING) ul_error_set(err, "%s: no group '%s' (the file needs groups 'train' and 'test')", p, g);
        else ul_error_set(err, "%s: '%s' is not a group", p, g);
        return -1;
    }
    char iname[32], lname[32], shp[160];
    snprintf(iname, sizeof iname, "%s/images", g);
    snprintf(lname, sizeof lname, "%s/labels", g);

    sp->images = h5_dset_open(f, iname, err);
    if (!sp->images) return -1;
    const H5Info *ii = h5_dset_info(sp->images);
    shape_str(ii, shp, sizeof shp);
    bool u8 = ii->cls == H5IO_CLASS_INT && ii->size == 1 && !ii->is_signed;
    bool f32 = ii->cls == H5IO_CLASS_FLOAT && ii->size == 4;
    if (!u8 && !f32) {
        ul_error_set(err, "%s: dataset '%s' has type %s; expected uint8 (images) or float32 (images or latents)", p,
                     iname, ii->type_name);
        return -1;
    }
    if (ii->ndim != 4) {
        ul_error_set(err, "%s: dataset '%s' has %d dimensions %s; expected 4 ([N, C, H, W])", p, iname, ii->ndim, shp);
        return -1;
    }
    if (ii->shape[0] < 1 || ii->shape[1] < 1 || ii->shape[2] < 1 || ii->shape[3] < 1) {
        ul_error_set(err, "%s: dataset '%s' has shape %s; every dimension must be at least 1", p, iname, shp);
        return -1;
    }
    if (ii->shape[1] > DATA_MAX_CHANNELS || ii->shape[2] > 65536 || ii->shape[3] > 65536 ||
        ii->shape[1] * ii->shape[2] * ii->shape[3] > INT_MAX) {
        ul_error_set(err, "%s: dataset '%s' has shape %s; samples that large are not supported", p, iname, shp);
        return -1;
    }
    sp->is_u8 = u8;
    sp->n = ii->shape[0];
    sp->c = (int)ii->shape[1];
    sp->h = (int)ii->shape[2];
    sp->w = (int)ii->shape[3];
    sp->sample_elems = (size_t)sp->c * (size_t)sp->h * (size_t)sp->w;
    sp->chunk_rows = ii->chunk_ndim > 0 ? ii->chunk[0] : 0;
    sp->nfilters = ii->nfilters;

    H5Dset *ld = h5_dset_open(f, lname, err);
    if (!ld) return -1;
    const H5Info *li = h5_dset_info(ld);
    snprintf(sp->label_type, sizeof sp->label_type, "%s", li->type_name);
    int rc = -1;
    if (li->cls != H5IO_CLASS_INT) {
        ul_error_set(err, "%s: dataset '%s' has type %s; expected an integer type", p, lname, li->type_name);
    } else if (li->ndim != 1) {
        shape_str(li, shp, sizeof shp);
        ul_error_set(err, "%s: dataset '%s' has %d dimensions %s; expected 1 ([N])", p, lname, li->ndim, shp);
    } else if (li->shape[0] != sp->n) {
        ul_error_set(err, "%s: dataset '%s' has %lld labels but '%s' has %lld samples", p, lname,
                     (long long)li->shape[0], iname, (long long)sp->n);
    } else {
        int64_t *raw = UL_MALLOC(ul_mul_size((size_t)sp->n, sizeof *raw));
        if (h5_dset_read_all(ld, H5IO_I64, raw, err) == 0) {
            sp->labels = UL_MALLOC(ul_mul_size((size_t)sp->n, sizeof *sp->labels));
            sp->class_counts = UL_CALLOC((size_t)ds->num_classes, sizeof *sp->class_counts);
            int64_t bad = 0, first = -1;
            for (int64_t i = 0; i < sp->n; i++) {
                if (raw[i] < 0 || raw[i] >= ds->num_classes) {
                    if (first < 0) first = i;
                    bad++;
                    continue;
                }
                sp->labels[i] = (int)raw[i];
                sp->class_counts[raw[i]]++;
            }
            if (bad)
                ul_error_set(err, "%s: dataset '%s': label %lld at index %lld is outside [0, %d) (num_classes = %d; "
                             "%lld of %lld labels are out of range)", p, lname, (long long)raw[first],
                             (long long)first, ds->num_classes, ds->num_classes, (long long)bad, (long long)sp->n);
            else
                rc = 0;
        }
        free(raw);
    }
    h5_dset_close(ld);
    return rc;
}

static int cache_split(Dataset *ds, DataSplit *sp, UlError *err)
{
    size_t elem = sp->is_u8 ? 1 : 4;
    size_t row = ul_mul_size(sp->sample_elems, elem);
    size_t bytes = ul_mul_size((size_t)sp->n, row);
    if (bytes > ds->opt.cache_max_bytes) return 0;  /* does not fit: hyperslab reads */
    sp->cache = UL_MALLOC(bytes);
    int64_t per = (int64_t)(DATA_CACHE_PIECE_BYTES / row);
    if (per < 1) per = 1;
    for (int64_t r = 0; r < sp->n; r += per) {
        int64_t cnt = sp->n - r < per ? sp->n - r : per;
        if (h5_dset_read_rows(sp->images, r, cnt, sp->is_u8 ? H5IO_U8 : H5IO_F32, (char *)sp->cache + (size_t)r * row,
                              err))
            return -1;
    }
    return 0;
}

int data_open(Dataset *ds, const char *path, const DataOptions *opt, UlError *err)
{
    memset(ds, 0, sizeof *ds);
    ds->opt = *opt;
    if (!ul_strlcpy(ds->path, path, sizeof ds->path)) {
        ul_error_set(err, "dataset path too long (%zu characters, at most %d)", strlen(path), DATA_PATH_MAX - 1);
        return -1;
    }
    if (opt->aug_crop_pad < 0) {
        ul_error_set(err, "%s: augmentation crop padding %d is negative", path, opt->aug_crop_pad);
        return -1;
    }
    ds->file = h5_open(path, H5IO_READ, err);
    if (!ds->file) return -1;
    int64_t nmean = 0;
    int rc = open_root_attrs(ds, err);
    if (!rc) rc = open_stats(ds, &nmean, err);
    for (int s = 0; s < DATA_NSPLITS && !rc; s++) rc = open_split(ds, (DataSplitId)s, err);
    if (!rc) {
        DataSplit *a = &ds->split[DATA_TRAIN], *b = &ds->split[DATA_TEST];
        if (a->c != b->c || a->h != b->h || a->w != b->w) {
            ul_error_set(err, "%s: train samples are [C, H, W] = [%d, %d, %d] but test samples are [%d, %d, %d]",
                         path, a->c, a->h, a->w, b->c, b->h, b->w);
            rc = -1;
        }
        ds->channels = a->c;
    }
    if (!rc && ds->has_stats && nmean != ds->channels) {
        ul_error_set(err, "%s: attributes 'mean' and 'std' have %lld values but the images have %d channels", path,
                     (long long)nmean, ds->channels);
        rc = -1;
    }
    if (!rc && opt->aug_crop_pad > ds->split[DATA_TRAIN].h) {
        ul_error_set(err, "%s: augmentation crop padding %d exceeds the image height %d", path, opt->aug_crop_pad,
                     ds->split[DATA_TRAIN].h);
        rc = -1;
    }
    ds->normalizing = ds->has_stats && opt->normalize;
    for (int s = 0; s < DATA_NSPLITS && !rc && opt->cache; s++) rc = cache_split(ds, &ds->split[s], err);
    if (rc) {
        data_close(ds);
        return -1;
    }
    return 0;
}

void data_close(Dataset *ds)
{
    for (int s = 0; s < DATA_NSPLITS; s++) {
        DataSplit *sp = &ds->split[s];
        h5_dset_close(sp->images);
        free(sp->labels);
        free(sp->class_counts);
        free(sp->cache);
    }
    if (ds->class_names) h5_free_strings(ds->class_names, ds->num_classes);
    free(ds->mean);
    free(ds->std);
    free(ds->scratch_pairs);
    free(ds->scratch_starts);
    free(ds->scratch_counts);
    free(ds->scratch_rows);
    h5_close(ds->file, NULL);
    char path[DATA_PATH_MAX];
    memcpy(path, ds->path, sizeof path);
    memset(ds, 0, sizeof *ds);
    memcpy(ds->path, path, sizeof path);
}

/* ---- conversion ---- */

/* One sample from its stored row (uint8 or float32) into dst [C, H, W]: /255 for uint8, normalisation, then the
   augmentation (crop from the zero-padded image, then flip) keyed by (aug_seed, epoch, gidx). */
static void convert_sample(const Dataset *ds, const DataSplit *sp, const void *src, float *dst, int64_t gidx,
                           int64_t epoch, bool augment)
{
    const int C = sp->c, H = sp->h, W = sp->w, P = ds->opt.aug_crop_pad;
    const uint8_t *s8 = src;
    const float *s32 = src;
    bool flip = false;
    int oy = P, ox = P;  /* crop offset into the padded image; P, P = the original image */
    if (augment) {
        uint64_t seed = ds->opt.aug_seed, stream = DATA_STREAM_AUG + (uint64_t)epoch, g = (uint64_t)gidx;
        if (ds->opt.aug_flip) flip = (rng_u64(seed, stream, 3 * g) >> 63) != 0;
        if (P > 0) {
            oy = (int)rng_below(seed, stream, 3 * g + 1, (uint64_t)(2 * P + 1));
            ox = (int)rng_below(seed, stream, 3 * g + 2, (uint64_t)(2 * P + 1));
        }
    }
    for (int c = 0; c < C; c++) {
        const float m = ds->normalizing ? ds->mean[c] : 0.0f, sd = ds->normalizing ? ds->std[c] : 1.0f;
        const float pad = ds->normalizing ? (0.0f - m) / sd : 0.0f;  /* a zero pixel, normalised */
        const size_t base = (size_t)c * (size_t)H * (size_t)W;
        float *out = dst + base;
        if (!flip && oy == P && ox == P) {
            for (size_t i = 0; i < (size_t)H * (size_t)W; i++) {
                float v = sp->is_u8 ? (float)s8[base + i] / 255.0f : s32[base + i];
                out[i] = ds->normalizing ? (v - m) / sd : v;
            }
            continue;
        }
        for (int i = 0; i < H; i++) {
            int si = i + oy - P;
            for (int j = 0; j < W; j++) {
                int sj = (flip ? W - 1 - j : j) + ox - P;
                float v;
                if (si < 0 || si >= H || sj < 0 || sj >= W) {
                    v = pad;
                } else {
                    size_t at = base + (size_t)si * (size_t)W + (size_t)sj;
                    v = sp->is_u8 ? (float)s8[at] / 255.0f : s32[at];
                    if (ds->normalizing) v = (v - m) / sd;
                }
                out[(size_t)i * (size_t)W + (size_t)j] = v;
            }
        }
    }
}

static int cmp_pair(const void *a, const void *b)
{
    const int64_t *x = a, *y = b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return (x[1] > y[1]) - (x[1] < y[1]);
}

static void ensure_scratch(Dataset *ds, size_t n, size_t sample_elems)
{
    size_t row = ul_mul_size(sample_elems, sizeof(float));  /* the widest stored type */
    if (n <= ds->scratch_n && row <= ds->scratch_row_bytes) return;
    if (n < ds->scratch_n) n = ds->scratch_n;
    if (row < ds->scratch_row_bytes) row = ds->scratch_row_bytes;
    free(ds->scratch_pairs);
    free(ds->scratch_starts);
    free(ds->scratch_counts);
    free(ds->scratch_rows);
    ds->scratch_pairs = UL_MALLOC(ul_mul_size(2 * n, sizeof(int64_t)));
    ds->scratch_starts = UL_MALLOC(ul_mul_size(n, sizeof(int64_t)));
    ds->scratch_counts = UL_MALLOC(ul_mul_size(n, sizeof(int64_t)));
    ds->scratch_rows = UL_MALLOC(ul_mul_size(n, row));
    ds->scratch_n = n;
    ds->scratch_row_bytes = row;
}

int data_load(Dataset *ds, DataSplitId s, const int64_t *idx, int64_t n, int64_t epoch, bool augment, float *x, int *y,
              UlError *err)
{
    UL_CHECK(s >= 0 && s < DATA_NSPLITS && ds->file, "data_load on a closed dataset or a bad split %d", (int)s);
    DataSplit *sp = &ds->split[s];
    UL_CHECK(n >= 0, "negative sample count %lld", (long long)n);
    for (int64_t i = 0; i < n; i++)
        UL_CHECK(idx[i] >= 0 && idx[i] < sp->n, "%s sample index %lld outside [0, %lld)", sp->name,
                 (long long)idx[i], (long long)sp->n);
    if (y)
        for (int64_t i = 0; i < n; i++) y[i] = sp->labels[idx[i]];
    if (n == 0) return 0;
    const size_t S = sp->sample_elems, row = S * (sp->is_u8 ? 1 : 4);
    if (sp->cache) {
        for (int64_t i = 0; i < n; i++)
            convert_sample(ds, sp, (const char *)sp->cache + (size_t)idx[i] * row, x + (size_t)i * S, idx[i], epoch,
                           augment);
        return 0;
    }
    ensure_scratch(ds, (size_t)n, S);
    int64_t *pairs = ds->scratch_pairs;
    for (int64_t i = 0; i < n; i++) {
        pairs[2 * i] = idx[i];
        pairs[2 * i + 1] = i;
    }
    qsort(pairs, (size_t)n, 2 * sizeof(int64_t), cmp_pair);
    /* runs of consecutive distinct rows */
    int nruns = 0;
    int64_t prev = -2;
    for (int64_t i = 0; i < n; i++) {
        int64_t g = pairs[2 * i];
        if (g == prev) continue;
        if (g == prev + 1) {
            ds->scratch_counts[nruns - 1]++;
        } else {
            ds->scratch_starts[nruns] = g;
            ds->scratch_counts[nruns] = 1;
            nruns++;
        }
        prev = g;
    }
    if (h5_dset_read_runs(sp->images, ds->scratch_starts, ds->scratch_counts, nruns, sp->is_u8 ? H5IO_U8 : H5IO_F32,
                          ds->scratch_rows, err))
        return -1;
    int64_t k = -1;
    prev = -1;
    for (int64_t i = 0; i < n; i++) {
        int64_t g = pairs[2 * i], pos = pairs[2 * i + 1];
        if (g != prev) k++;
        prev = g;
        convert_sample(ds, sp, (const char *)ds->scratch_rows + (size_t)k * row, x + (size_t)pos * S, g, epoch,
                       augment);
    }
    return 0;
}

/* ---- the global batch sequence ---- */

void data_permute(uint64_t seed, int64_t epoch, int64_t n, int64_t *perm)
{
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    uint64_t stream = DATA_STREAM_PERM + (uint64_t)epoch;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)rng_below(seed, stream, (uint64_t)i, (uint64_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

void data_rank_part(int64_t gsize, int rank, int nranks, int64_t *offset, int64_t *count)
{
    UL_CHECK(nranks >= 1 && rank >= 0 && rank < nranks && gsize >= 0, "bad batch part (gsize %lld, rank %d of %d)",
             (long long)gsize, rank, nranks);
    int64_t q = gsize / nranks, r = gsize % nranks;
    *count = q + (rank < r ? 1 : 0);
    *offset = (int64_t)rank * q + (rank < r ? rank : r);
}

void data_sampler_init(DataSampler *s, const int64_t *pool, int64_t npool, int64_t global_batch, uint64_t seed,
                       bool shuffle, bool drop_last)
{
    UL_CHECK(global_batch >= 1 && npool >= 0, "bad sampler (batch %lld, pool %lld)", (long long)global_batch,
             (long long)npool);
    memset(s, 0, sizeof *s);
    s->pool = pool;
    s->npool = npool;
    s->global_batch = global_batch;
    s->seed = seed;
    s->shuffle = shuffle;
    s->drop_last = drop_last;
    s->perm = shuffle ? UL_MALLOC(ul_mul_size((size_t)(npool ? npool : 1), sizeof *s->perm)) : NULL;
    s->perm_epoch = INT64_MIN;
}

void data_sampler_free(DataSampler *s)
{
    free(s->perm);
    memset(s, 0, sizeof *s);
}

int64_t data_sampler_batches(const DataSampler *s)
{
    int64_t G = s->global_batch;
    return s->drop_last ? s->npool / G : (s->npool + G - 1) / G;
}

int64_t data_sampler_batch_size(const DataSampler *s, int64_t b)
{
    UL_CHECK(b >= 0 && b < data_sampler_batches(s), "batch %lld outside [0, %lld)", (long long)b,
             (long long)data_sampler_batches(s));
    int64_t left = s->npool - b * s->global_batch;
    return left < s->global_batch ? left : s->global_batch;
}

int64_t data_sampler_local_max(const DataSampler *s, int nranks)
{
    int64_t g = s->npool < s->global_batch ? s->npool : s->global_batch;
    return (g + nranks - 1) / nranks;
}

int64_t data_sampler_local(DataSampler *s, int64_t epoch, int64_t b, int rank, int nranks, int64_t *idx)
{
    int64_t gsize = data_sampler_batch_size(s, b), off, cnt;
    data_rank_part(gsize, rank, nranks, &off, &cnt);
    if (s->shuffle && s->perm_epoch != epoch) {
        data_permute(s->seed, epoch, s->npool, s->perm);
        s->perm_epoch = epoch;
    }
    int64_t base = b * s->global_batch + off;
    for (int64_t k = 0; k < cnt; k++) {
        int64_t p = s->shuffle ? s->perm[base + k] : base + k;
        idx[k] = s->pool ? s->pool[p] : p;
    }
    return cnt;
}

/* ---- writing ---- */

static int write_split(H5File *f, const char *g, const DataWriteSplit *sp, int64_t chunk_rows, UlError *err)
{
    char name[32];
    snprintf(name, sizeof name, "%s/images", g);
    int64_t shape[4] = {sp->n, sp->c, sp->h, sp->w};
    UL_CHECK((sp->u8 != NULL) != (sp->f32 != NULL), "data_write: give exactly one of u8 and f32 images");
    if (h5_write_dataset(f, name, sp->u8 ? H5IO_U8 : H5IO_F32, sp->u8 ? H5IO_U8 : H5IO_F32, 4, shape,
                         sp->u8 ? (const void *)sp->u8 : (const void *)sp->f32, chunk_rows, 0, err))
        return -1;
    snprintf(name, sizeof name, "%s/labels", g);
    return h5_write_dataset(f, name, H5IO_I64, H5IO_I64, 1, shape, sp->labels, chunk_rows, 0, err);
}

int data_write(const char *path, const DataWriteSplit *train, const DataWriteSplit *test, int num_classes,
               const char *const *class_names, const float *mean, const float *std, int64_t chunk_rows,
               UlError *err)
{
    H5File *f = h5_create(path, false, err);
    if (!f) return -1;
    int64_t version = DATA_FORMAT_VERSION, k = num_classes;
    int rc = h5_write_attr_str(f, "/", "format", DATA_FORMAT, err);
    if (!rc) rc = h5_write_attr(f, "/", "format_version", H5IO_I64, 0, &version, err);
    if (!rc) rc = h5_write_attr(f, "/", "num_classes", H5IO_I64, 0, &k, err);
    if (!rc && class_names) rc = h5_write_attr_strs(f, "/", "class_names", class_names, num_classes, err);
    if (!rc && mean) rc = h5_write_attr(f, "/", "mean", H5IO_F32, train->c, mean, err);
    if (!rc && std) rc = h5_write_attr(f, "/", "std", H5IO_F32, train->c, std, err);
    if (!rc) rc = write_split(f, "train", train, chunk_rows, err);
    if (!rc) rc = write_split(f, "test", test, chunk_rows, err);
    if (h5_close(f, err)) rc = -1;
    return rc;
}
