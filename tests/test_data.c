/* test_data.c - the dataset format's validation messages, the loader's values, normalisation, caching and
   augmentation, and the global batch sequence. Creates its small HDF5 files itself (data_write and h5io). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data.h"
#include "h5io.h"
#include "testutil.h"

/* distinct sizes so that a transposed layout cannot pass */
#define NTR 37
#define NTE 11
#define C 3
#define H 5
#define W 6
#define S (C * H * W)
#define K 4

static char dir[256];
static uint8_t tr_u8[NTR * S], te_u8[NTE * S];
static int64_t tr_lab[NTR], te_lab[NTE];
static const float mean3[C] = {0.25f, 0.5f, 0.125f}, std3[C] = {0.2f, 0.3f, 0.45f};
static const char *const names4[K] = {"zero", "one", "two", "three"};

static void path_of(const char *name, char *buf, size_t cap) { snprintf(buf, cap, "%s/%s", dir, name); }

static void expect_error(const char *what, int rc, const UlError *err, const char *n1, const char *n2)
{
    bool ok = rc != 0 && err->failed && (!n1 || strstr(err->msg, n1)) && (!n2 || strstr(err->msg, n2));
    TU_CHECK(ok, "%s: rc %d, message \"%s\" (want \"%s\" and \"%s\")", what, rc, err->msg, n1 ? n1 : "",
             n2 ? n2 : "");
    if (ok) printf("ok   %-40s -> %s\n", what, err->msg);
}

/* The good uint8 file. */
static void write_good_u8(const char *path, bool stats)
{
    DataWriteSplit tr = {NTR, C, H, W, tr_u8, NULL, tr_lab}, te = {NTE, C, H, W, te_u8, NULL, te_lab};
    UlError err = {0};
    TU_CHECK(data_write(path, &tr, &te, K, names4, stats ? mean3 : NULL, stats ? std3 : NULL, 4, &err) == 0,
             "data_write: %s", err.msg);
}

/* A file written piece by piece, with one thing wrong (see the variants in test_errors). */
typedef struct BadSpec {
    const char *format;        /* NULL = omit */
    int64_t version;
    bool omit_test;            /* no 'test' group */
    bool omit_train_labels;
    H5Type image_type;         /* H5IO_U8 normally */
    bool image_int32;          /* store train images as int32 */
    int image_ndim;            /* 4 normally */
    int label_ndim;            /* 1 normally */
    bool label_float;
    int64_t bad_label;         /* >= 0: train label 3 := this */
    int64_t test_labels_n;     /* NTE normally */
    int test_c;                /* C normally */
    int nmean, nstd;           /* values in mean / std (0 = omit) */
    float std0;                /* std[0] */
    int nnames;                /* class names (0 = omit) */
} BadSpec;

static BadSpec good_spec(void)
{
    return (BadSpec){.format = DATA_FORMAT, .version = 1, .image_type = H5IO_U8, .image_ndim = 4, .label_ndim = 1,
                     .bad_label = -1, .test_labels_n = NTE, .test_c = C, .nmean = 0, .nstd = 0, .std0 = 0.2f};
}

static void write_bad(const char *path, const BadSpec *b)
{
    UlError err = {0};
    H5File *f = h5_create(path, false, &err);
    TU_CHECK(f != NULL, "create %s: %s", path, err.msg);
    if (!f) return;
    if (b->format) h5_write_attr_str(f, "/", "format", b->format, &err);
    h5_write_attr(f, "/", "format_version", H5IO_I64, 0, &b->version, &err);
    int64_t k = K;
    h5_write_attr(f, "/", "num_classes", H5IO_I64, 0, &k, &err);
    float m[8] = {0.1f, 0.2f, 0.3f, 0.4f}, s[8] = {0.5f, 0.5f, 0.5f, 0.5f};
    s[0] = b->std0;
    if (b->nmean) h5_write_attr(f, "/", "mean", H5IO_F32, b->nmean, m, &err);
    if (b->nstd) h5_write_attr(f, "/", "std", H5IO_F32, b->nstd, s, &err);
    if (b->nnames) h5_write_attr_strs(f, "/", "class_names", (const char *const *)names4, b->nnames, &err);
    /* train */
    int64_t shape4[4] = {NTR, C, H, W}, shape3[3] = {NTR, C, H * W};
    if (b->image_int32) {
        int32_t *tmp = malloc(sizeof(int32_t) * NTR * S);
        for (int i = 0; i < NTR * S; i++) tmp[i] = tr_u8[i];
        h5_write_dataset(f, "train/images", H5IO_I32, H5IO_I32, 4, shape4, tmp, 4, 0, &err);
        free(tmp);
    } else if (b->image_ndim == 3) {
        h5_write_dataset(f, "train/images", H5IO_U8, H5IO_U8, 3, shape3, tr_u8, 4, 0, &err);
    } else {
        h5_write_dataset(f, "train/images", b->image_type, H5IO_U8, 4, shape4, tr_u8, 4, 0, &err);
    }
    int64_t lab[NTR];
    memcpy(lab, tr_lab, sizeof lab);
    if (b->bad_label >= 0) lab[3] = b->bad_label;
    int64_t lshape1[1] = {NTR}, lshape2[2] = {NTR, 1};
    if (!b->omit_train_labels) {
        if (b->label_float) {
            double dl[NTR];
            for (int i = 0; i < NTR; i++) dl[i] = (double)lab[i];
            h5_write_dataset(f, "train/labels", H5IO_F64, H5IO_F64, 1, lshape1, dl, 0, 0, &err);
        } else {
            h5_write_dataset(f, "train/labels", H5IO_I64, H5IO_I64, b->label_ndim,
                             b->label_ndim == 1 ? lshape1 : lshape2, lab, 0, 0, &err);
        }
    }
    if (!b->omit_test) {
        int64_t ts[4] = {NTE, b->test_c, H, W}, tl[1] = {b->test_labels_n};
        uint8_t *img = calloc((size_t)NTE * (size_t)b->test_c * H * W, 1);
        h5_write_dataset(f, "test/images", H5IO_U8, H5IO_U8, 4, ts, img, 4, 0, &err);
        int64_t *l = calloc((size_t)b->test_labels_n, sizeof *l);
        h5_write_dataset(f, "test/labels", H5IO_I64, H5IO_I64, 1, tl, l, 0, 0, &err);
        free(img);
        free(l);
    }
    TU_CHECK(!err.failed, "writing %s: %s", path, err.msg);
    h5_close(f, &err);
}

static void try_open(const char *what, const char *name, const BadSpec *b, const char *n1, const char *n2)
{
    char path[400];
    path_of(name, path, sizeof path);
    write_bad(path, b);
    Dataset ds;
    DataOptions opt;
    data_options_default(&opt);
    UlError err = {0};
    int rc = data_open(&ds, path, &opt, &err);
    expect_error(what, rc, &err, path, n1);
    if (n2) expect_error(what, rc, &err, path, n2);
    if (!rc) data_close(&ds);
}

static void test_errors(void)
{
    char path[400], good[400];
    Dataset ds;
    DataOptions opt;
    data_options_default(&opt);
    UlError err = {0};

    BadSpec b = good_spec();
    path_of("spec_good.h5", path, sizeof path);
    write_bad(path, &b);
    int rc = data_open(&ds, path, &opt, &err);
    TU_CHECK(rc == 0, "the BadSpec baseline must be valid: %s", err.msg);
    if (!rc) data_close(&ds);

    path_of("missing.h5", path, sizeof path);
    err = (UlError){0};
    expect_error("missing file", data_open(&ds, path, &opt, &err), &err, path, "no such file");
    path_of("text.h5", path, sizeof path);
    FILE *fp = fopen(path, "w");
    if (fp) {
        fputs("not hdf5\n", fp);
        fclose(fp);
    }
    err = (UlError){0};
    expect_error("not an HDF5 file", data_open(&ds, path, &opt, &err), &err, path, "not an HDF5 file");

    b = good_spec();
    b.omit_test = true;
    try_open("missing group", "nogroup.h5", &b, "no group 'test'", NULL);
    b = good_spec();
    b.omit_train_labels = true;
    try_open("missing dataset", "nolabels.h5", &b, "no dataset 'train/labels'", NULL);
    b = good_spec();
    b.image_int32 = true;
    try_open("wrong image dtype", "int32img.h5", &b, "dataset 'train/images' has type int32",
             "expected uint8 (images) or float32");
    b = good_spec();
    b.image_type = H5IO_F64;
    try_open("float64 images", "f64img.h5", &b, "dataset 'train/images' has type float64", NULL);
    b = good_spec();
    b.image_ndim = 3;
    try_open("wrong image ndim", "ndim3.h5", &b, "dataset 'train/images' has 3 dimensions [37, 3, 30]",
             "expected 4 ([N, C, H, W])");
    b = good_spec();
    b.label_ndim = 2;
    try_open("wrong label ndim", "lab2d.h5", &b, "dataset 'train/labels' has 2 dimensions", "expected 1 ([N])");
    b = good_spec();
    b.label_float = true;
    try_open("float labels", "labf.h5", &b, "dataset 'train/labels' has type float64", "integer type");
    b = good_spec();
    b.bad_label = 7;
    try_open("label out of range", "lab7.h5", &b, "dataset 'train/labels': label 7 at index 3 is outside [0, 4)",
             NULL);
    b = good_spec();
    b.bad_label = 4;
    try_open("label == num_classes", "lab4.h5", &b, "label 4 at index 3 is outside [0, 4)", NULL);
    b = good_spec();
    b.test_labels_n = NTE - 1;
    try_open("N mismatch", "nmis.h5", &b, "dataset 'test/labels' has 10 labels but 'test/images' has 11 samples",
             NULL);
    b = good_spec();
    b.format = "something-else";
    try_open("wrong format", "fmt.h5", &b, "attribute 'format' is \"something-else\"", "\"unlearn-dataset\"");
    b = good_spec();
    b.format = NULL;
    try_open("no format attribute", "nofmt.h5", &b, "no attribute 'format'", NULL);
    b = good_spec();
    b.version = 2;
    try_open("wrong version", "v2.h5", &b, "attribute 'format_version' is 2", "version 1");
    b = good_spec();
    b.test_c = 2;
    try_open("channel mismatch", "cmis.h5", &b, "train samples are [C, H, W] = [3, 5, 6]", "[2, 5, 6]");
    b = good_spec();
    b.nmean = 2;
    b.nstd = 2;
    try_open("mean/std length", "mean2.h5", &b, "'mean' and 'std' have 2 values but the images have 3 channels",
             NULL);
    b = good_spec();
    b.nmean = 3;
    try_open("mean without std", "meanonly.h5", &b, "has attribute 'mean' but not 'std'", NULL);
    b = good_spec();
    b.nmean = 3;
    b.nstd = 3;
    b.std0 = 0.0f;
    try_open("std zero", "std0.h5", &b, "channel 0 has mean", "std > 0");
    b = good_spec();
    b.nnames = 3;
    try_open("class_names count", "names3.h5", &b, "'class_names' has 3 names but num_classes is 4", NULL);

    /* a truncated copy of a good file */
    path_of("good_for_trunc.h5", good, sizeof good);
    write_good_u8(good, true);
    path_of("trunc.h5", path, sizeof path);
    FILE *in = fopen(good, "rb"), *out = fopen(path, "wb");
    if (in && out) {
        fseek(in, 0, SEEK_END);
        long size = ftell(in);
        fseek(in, 0, SEEK_SET);
        char *buf = malloc((size_t)size);
        if (fread(buf, 1, (size_t)size, in) == (size_t)size) fwrite(buf, 1, (size_t)size / 2, out);
        free(buf);
    }
    if (in) fclose(in);
    if (out) fclose(out);
    err = (UlError){0};
    expect_error("truncated file", data_open(&ds, path, &opt, &err), &err, path, "truncated");
}

/* ---- values ---- */

static float ref_value(const uint8_t *img, int64_t i, int c, int y, int x, bool norm)
{
    float v = (float)img[(size_t)i * S + (size_t)c * H * W + (size_t)y * W + (size_t)x] / 255.0f;
    return norm ? (v - mean3[c]) / std3[c] : v;
}

static void test_values(void)
{
    char path[400];
    path_of("good.h5", path, sizeof path);
    write_good_u8(path, true);
    Dataset ds, dc;
    DataOptions opt;
    data_options_default(&opt);
    UlError err = {0};
    TU_CHECK(data_open(&ds, path, &opt, &err) == 0, "open good.h5: %s", err.msg);
    if (err.failed) return;
    TU_CHECK(ds.num_classes == K && ds.channels == C && ds.has_stats && ds.normalizing, "metadata");
    TU_CHECK(ds.split[DATA_TRAIN].n == NTR && ds.split[DATA_TEST].n == NTE && ds.split[DATA_TRAIN].is_u8 &&
                 ds.split[DATA_TRAIN].h == H && ds.split[DATA_TRAIN].w == W && ds.split[DATA_TRAIN].chunk_rows == 4,
             "split shapes");
    TU_CHECK(ds.class_names && strcmp(ds.class_names[2], "two") == 0, "class names");
    int64_t counts[K] = {0};
    for (int i = 0; i < NTR; i++) counts[tr_lab[i]]++;
    bool cok = true;
    for (int k = 0; k < K; k++) cok = cok && counts[k] == ds.split[DATA_TRAIN].class_counts[k];
    TU_CHECK(cok, "per-class counts");

    /* unsorted, with a duplicate, a run (2,3,4), the first and the last sample */
    const int64_t idx[] = {5, 2, 3, 4, NTR - 1, 0, 5, 17};
    const int n = 8;
    float x[8 * S], want[8 * S];
    int y[8];
    TU_CHECK(data_load(&ds, DATA_TRAIN, idx, n, 0, false, x, y, &err) == 0, "data_load: %s", err.msg);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < C; c++)
            for (int yy = 0; yy < H; yy++)
                for (int xx = 0; xx < W; xx++)
                    want[(size_t)i * S + (size_t)c * H * W + (size_t)yy * W + (size_t)xx] =
                        ref_value(tr_u8, idx[i], c, yy, xx, true);
    /* exact: the loader computes (u8 / 255 - mean) / std in float32, the same operations as the reference
       (and torchvision's ToTensor + Normalize) */
    tu_compare("train batch, normalised (exact)", x, want, (size_t)n * S, 0.0, 0.0);
    bool lok = true;
    for (int i = 0; i < n; i++) lok = lok && y[i] == tr_lab[idx[i]];
    TU_CHECK(lok, "labels of the batch");

    const int64_t tidx[] = {NTE - 1, 3};
    float tx[2 * S], tw[2 * S];
    int ty[2];
    TU_CHECK(data_load(&ds, DATA_TEST, tidx, 2, 0, false, tx, ty, &err) == 0, "test split load: %s", err.msg);
    for (int i = 0; i < 2; i++)
        for (int c = 0; c < C; c++)
            for (int p = 0; p < H * W; p++)
                tw[(size_t)i * S + (size_t)c * H * W + (size_t)p] = ref_value(te_u8, tidx[i], c, p / W, p % W, true);
    tu_compare("test batch, normalised (exact)", tx, tw, 2 * S, 0.0, 0.0);
    TU_CHECK(ty[0] == te_lab[NTE - 1] && ty[1] == te_lab[3], "test labels");

    /* the cache gives the same bytes; a cache limit below the split's size falls back to row reads */
    opt.cache = true;
    TU_CHECK(data_open(&dc, path, &opt, &err) == 0 && dc.split[DATA_TRAIN].cache != NULL, "cached open: %s", err.msg);
    float xc[8 * S];
    TU_CHECK(data_load(&dc, DATA_TRAIN, idx, n, 0, false, xc, y, &err) == 0 && memcmp(xc, x, sizeof x) == 0,
             "cached batch differs from the row reads");
    data_close(&dc);
    opt.cache_max_bytes = NTR * S - 1;
    TU_CHECK(data_open(&dc, path, &opt, &err) == 0 && dc.split[DATA_TRAIN].cache == NULL &&
                 dc.split[DATA_TEST].cache != NULL, "cache limit: train must not be cached, test must");
    TU_CHECK(data_load(&dc, DATA_TRAIN, idx, n, 0, false, xc, y, &err) == 0 && memcmp(xc, x, sizeof x) == 0,
             "batch differs with a partial cache");
    data_close(&dc);

    /* normalisation off: plain /255 */
    data_options_default(&opt);
    opt.normalize = false;
    TU_CHECK(data_open(&dc, path, &opt, &err) == 0 && !dc.normalizing, "open without normalisation");
    TU_CHECK(data_load(&dc, DATA_TRAIN, idx, n, 0, false, xc, NULL, &err) == 0, "load: %s", err.msg);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < C; c++)
            for (int p = 0; p < H * W; p++)
                want[(size_t)i * S + (size_t)c * H * W + (size_t)p] = ref_value(tr_u8, idx[i], c, p / W, p % W, false);
    tu_compare("train batch, /255 only (exact)", xc, want, (size_t)n * S, 0.0, 0.0);
    data_close(&dc);

    /* a file without mean/std is never normalised */
    char path2[400];
    path_of("nostats.h5", path2, sizeof path2);
    write_good_u8(path2, false);
    data_options_default(&opt);
    TU_CHECK(data_open(&dc, path2, &opt, &err) == 0 && !dc.has_stats && !dc.normalizing, "no stats");
    TU_CHECK(data_load(&dc, DATA_TRAIN, idx, n, 0, false, xc, NULL, &err) == 0, "load: %s", err.msg);
    tu_compare("file without mean/std: /255 only (exact)", xc, want, (size_t)n * S, 0.0, 0.0);
    data_close(&dc);
    data_close(&ds);

    /* the existing whole-dataset readers still work on these files */
    int nd;
    int64_t shape[8];
    int *labs = h5_read_ints(path, "train/labels", 2, &nd, shape, &err);
    TU_CHECK(labs && nd == 1 && shape[0] == NTR && labs[NTR - 1] == tr_lab[NTR - 1], "h5_read_ints: %s", err.msg);
    free(labs);
    float *imgs = h5_read_floats(path, "test/images", 4, &nd, shape, &err);
    TU_CHECK(imgs && nd == 4 && shape[1] == C && shape[3] == W && imgs[5] == (float)te_u8[5], "h5_read_floats: %s",
             err.msg);
    free(imgs);
    TU_CHECK(h5_has(path, "train/images") && !h5_has(path, "train/nothing") && !h5_has(path, "nope/x"), "h5_has");
}

static void test_float32(void)
{
    /* latents: float32 [N, 4, 3, 2], used as stored (no /255, no stats) */
    enum { N2 = 9, C2 = 4, H2 = 3, W2 = 2, S2 = C2 * H2 * W2 };
    float img[N2 * S2], timg[2 * S2];
    int64_t lab[N2], tlab[2] = {1, 0};
    tu_fill(img, N2 * S2, 21, -3.0f, 3.0f);
    tu_fill(timg, 2 * S2, 22, -3.0f, 3.0f);
    for (int i = 0; i < N2; i++) lab[i] = i % 2;
    DataWriteSplit tr = {N2, C2, H2, W2, NULL, img, lab}, te = {2, C2, H2, W2, NULL, timg, tlab};
    char path[400];
    path_of("latents.h5", path, sizeof path);
    UlError err = {0};
    TU_CHECK(data_write(path, &tr, &te, 2, NULL, NULL, NULL, 3, &err) == 0, "write latents: %s", err.msg);
    Dataset ds;
    DataOptions opt;
    data_options_default(&opt);
    TU_CHECK(data_open(&ds, path, &opt, &err) == 0 && !ds.split[DATA_TRAIN].is_u8, "open latents: %s", err.msg);
    if (err.failed) return;
    int64_t idx[] = {8, 0, 4};
    float x[3 * S2], want[3 * S2];
    int y[3];
    TU_CHECK(data_load(&ds, DATA_TRAIN, idx, 3, 0, false, x, y, &err) == 0, "load latents: %s", err.msg);
    for (int i = 0; i < 3; i++) memcpy(want + i * S2, img + idx[i] * S2, S2 * sizeof(float));
    tu_compare("float32 latents as stored (exact)", x, want, 3 * S2, 0.0, 0.0);
    TU_CHECK(y[0] == 0 && y[1] == 0 && y[2] == 0, "latent labels");
    data_close(&ds);
}

/* True when out [C, H, W] is img sample i cropped at (oy, ox) from the zero-padded image and maybe flipped. */
static bool is_crop_of(const float *out, int64_t i, int P, bool *flip_out)
{
    for (int flip = 0; flip < 2; flip++)
        for (int oy = 0; oy <= 2 * P; oy++)
            for (int ox = 0; ox <= 2 * P; ox++) {
                bool ok = true;
                for (int c = 0; c < C && ok; c++)
                    for (int y = 0; y < H && ok; y++)
                        for (int x = 0; x < W && ok; x++) {
                            int xs = (flip ? W - 1 - x : x) + ox - P, ys = y + oy - P;
                            bool outside = ys < 0 || ys >= H || xs < 0 || xs >= W;
                            float want = outside ? (0.0f - mean3[c]) / std3[c] : ref_value(tr_u8, i, c, ys, xs, true);
                            ok = out[(size_t)c * H * W + (size_t)y * W + (size_t)x] == want;
                        }
                if (ok) {
                    *flip_out = flip;
                    return true;
                }
            }
    return false;
}

static void test_augment(void)
{
    char path[400];
    path_of("good.h5", path, sizeof path);
    Dataset ds;
    DataOptions opt;
    data_options_default(&opt);
    opt.aug_flip = true;
    opt.aug_crop_pad = 2;
    opt.aug_seed = 99;
    UlError err = {0};
    TU_CHECK(data_open(&ds, path, &opt, &err) == 0, "open: %s", err.msg);
    if (err.failed) return;
    int64_t all[NTR];
    for (int i = 0; i < NTR; i++) all[i] = NTR - 1 - i;
    float *x = malloc(sizeof(float) * NTR * S), *x2 = malloc(sizeof(float) * NTR * S);
    TU_CHECK(data_load(&ds, DATA_TRAIN, all, NTR, 3, true, x, NULL, &err) == 0, "augmented load: %s", err.msg);
    int valid = 0, flips = 0, moved = 0;
    for (int i = 0; i < NTR; i++) {
        bool fl = false;
        if (is_crop_of(x + (size_t)i * S, all[i], 2, &fl)) valid++;
        flips += fl;
        float plain[S];
        for (int c = 0; c < C; c++)
            for (int p = 0; p < H * W; p++) plain[c * H * W + p] = ref_value(tr_u8, all[i], c, p / W, p % W, true);
        moved += memcmp(plain, x + (size_t)i * S, sizeof plain) != 0;
    }
    TU_CHECK(valid == NTR, "%d of %d augmented samples are a padded crop (+ flip) of their source", valid, NTR);
    /* 37 samples: P(no flip at all or all flipped) = 2^-36; P(every sample untouched) = (1/50)^37 */
    TU_CHECK(flips > 0 && flips < NTR, "flips: %d of %d", flips, NTR);
    TU_CHECK(moved > NTR / 2, "only %d of %d samples changed by augmentation", moved, NTR);
    /* keyed by (seed, epoch, global index): the same sample alone gives the same result; another epoch differs */
    int64_t one = all[5];
    TU_CHECK(data_load(&ds, DATA_TRAIN, &one, 1, 3, true, x2, NULL, &err) == 0 &&
                 memcmp(x2, x + 5 * S, S * sizeof(float)) == 0, "augmentation depends on the batch composition");
    TU_CHECK(data_load(&ds, DATA_TRAIN, all, NTR, 4, true, x2, NULL, &err) == 0 &&
                 memcmp(x2, x, sizeof(float) * NTR * S) != 0, "epoch 4 augments exactly like epoch 3");
    /* augment = false (evaluation) leaves the samples alone */
    TU_CHECK(data_load(&ds, DATA_TRAIN, all, NTR, 3, false, x2, NULL, &err) == 0, "load");
    bool plain_ok = true;
    for (int i = 0; i < NTR && plain_ok; i++)
        for (int p = 0; p < S && plain_ok; p++)
            plain_ok = x2[(size_t)i * S + (size_t)p] == ref_value(tr_u8, all[i], p / (H * W), (p / W) % H, p % W, true);
    TU_CHECK(plain_ok, "augment=false changed samples");
    free(x);
    free(x2);
    data_close(&ds);
}

static void test_sampler(void)
{
    /* data_rank_part: sizes as equal as possible, lower ranks first */
    int64_t off, cnt, want_cnt[4] = {3, 3, 2, 2}, want_off[4] = {0, 3, 6, 8};
    bool ok = true;
    for (int r = 0; r < 4; r++) {
        data_rank_part(10, r, 4, &off, &cnt);
        ok = ok && off == want_off[r] && cnt == want_cnt[r];
    }
    data_rank_part(2, 3, 4, &off, &cnt);
    ok = ok && cnt == 0;
    TU_CHECK(ok, "data_rank_part");

    /* permutations: valid, deterministic, epoch-dependent */
    enum { NP = 1000 };
    int64_t *p1 = malloc(NP * sizeof *p1), *p2 = malloc(NP * sizeof *p2);
    char *seen = calloc(NP, 1);
    data_permute(5, 2, NP, p1);
    bool perm = true;
    for (int i = 0; i < NP && perm; i++) {
        perm = p1[i] >= 0 && p1[i] < NP && !seen[p1[i]];
        if (perm) seen[p1[i]] = 1;
    }
    TU_CHECK(perm, "data_permute is not a permutation");
    data_permute(5, 2, NP, p2);
    TU_CHECK(memcmp(p1, p2, NP * sizeof *p1) == 0, "data_permute is not deterministic");
    data_permute(5, 3, NP, p2);
    TU_CHECK(memcmp(p1, p2, NP * sizeof *p1) != 0, "epochs 2 and 3 give the same permutation");

    /* a pool of 103 odd indices, G = 16: 7 batches (last 7), every pool entry exactly once per epoch, and the
       concatenation over ranks equals the 1-rank batch for R = 1..5 */
    enum { NPOOL = 103, G = 16 };
    int64_t pool[NPOOL];
    for (int i = 0; i < NPOOL; i++) pool[i] = 2 * i + 1;
    DataSampler s1, sr;
    data_sampler_init(&s1, pool, NPOOL, G, 77, true, false);
    TU_CHECK(data_sampler_batches(&s1) == 7 && data_sampler_batch_size(&s1, 6) == 103 - 96, "batch count");
    memset(seen, 0, NP);
    int64_t g[G], l[G], cat[G];
    bool cover = true, same = true;
    for (int64_t b = 0; b < data_sampler_batches(&s1); b++) {
        int64_t n = data_sampler_local(&s1, 1, b, 0, 1, g);
        for (int64_t i = 0; i < n; i++) {
            cover = cover && !seen[g[i]];
            seen[g[i]] = 1;
        }
        for (int R = 2; R <= 5; R++) {
            data_sampler_init(&sr, pool, NPOOL, G, 77, true, false);
            int64_t m = 0;
            for (int r = 0; r < R; r++) {
                int64_t k = data_sampler_local(&sr, 1, b, r, R, l);
                TU_CHECK(k <= data_sampler_local_max(&sr, R), "local part above local_max");
                memcpy(cat + m, l, (size_t)k * sizeof *l);
                m += k;
            }
            same = same && m == n && memcmp(cat, g, (size_t)n * sizeof *g) == 0;
            data_sampler_free(&sr);
        }
    }
    int covered = 0;
    for (int i = 0; i < NPOOL; i++) covered += seen[2 * i + 1];
    TU_CHECK(cover && covered == NPOOL, "an epoch does not visit every pool entry exactly once (%d)", covered);
    TU_CHECK(same, "rank parts do not concatenate to the global batch");
    data_sampler_local(&s1, 2, 0, 0, 1, l);
    data_sampler_local(&s1, 1, 0, 0, 1, g);
    TU_CHECK(memcmp(l, g, G * sizeof *g) != 0, "epoch 2 starts like epoch 1");
    data_sampler_free(&s1);
    data_sampler_init(&s1, pool, NPOOL, G, 77, true, true);
    TU_CHECK(data_sampler_batches(&s1) == 6, "drop_last batch count");
    data_sampler_free(&s1);
    data_sampler_init(&s1, NULL, 20, 8, 0, false, false);
    int64_t n = data_sampler_local(&s1, 0, 2, 1, 2, l);
    TU_CHECK(n == 2 && l[0] == 18 && l[1] == 19, "unshuffled identity pool: last batch rank 1 of 2");
    data_sampler_free(&s1);
    free(p1);
    free(p2);
    free(seen);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_data.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    unsigned long long st = 12345;
    for (int i = 0; i < NTR * S; i++) tr_u8[i] = (uint8_t)(tu_rand(&st, 0.0f, 256.0f));
    for (int i = 0; i < NTE * S; i++) te_u8[i] = (uint8_t)(tu_rand(&st, 0.0f, 256.0f));
    for (int i = 0; i < NTR; i++) tr_lab[i] = (i * 3) % K;
    for (int i = 0; i < NTE; i++) te_lab[i] = (i + 1) % K;
    test_errors();
    test_values();
    test_float32();
    test_augment();
    test_sampler();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", dir);
    return tu_finish("test_data");
}
