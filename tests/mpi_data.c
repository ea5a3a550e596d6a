/*
 * mpi_data.c - sharded loading under MPI; run by tests/sh_data.sh at several rank counts.
 *
 *   mpi_data make FILE             rank 0 writes a small uint8 dataset (mean/std, chunks of 7 rows, N = 203)
 *   mpi_data read FILE OUT MODE    every rank resolves a fraction split (the same on every rank), then walks two
 *                                  epochs of global batches (G = 16) over the retain set and one over the forget
 *                                  set, loading its own part of each batch (MODE "rows": hyperslab reads, "cache":
 *                                  the split read once) with augmentation on. Rank r writes OUT.r, one line per
 *                                  sample: "pool epoch batch rank pos gidx label hash(sample)". Sorting the
 *                                  concatenation by (pool, epoch, batch, rank, pos) and dropping rank and pos gives
 *                                  the global batch sequence, which must not depend on the rank count.
 * Also checks, with collectives, that the ranks' samples add up to every pool entry once per epoch.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "dist.h"
#include "sha256.h"
#include "split.h"
#include "testutil.h"

enum { NTR = 203, NTE = 20, C = 2, H = 5, W = 3, S = C * H * W, G = 16 };

static int make(const char *path)
{
    UlError err = {0};
    if (dist_rank() == 0) {
        uint8_t *tr = malloc(NTR * S), *te = malloc(NTE * S);
        int64_t ltr[NTR], lte[NTE];
        unsigned long long st = 4242;
        for (int i = 0; i < NTR * S; i++) tr[i] = (uint8_t)tu_rand(&st, 0.0f, 256.0f);
        for (int i = 0; i < NTE * S; i++) te[i] = (uint8_t)tu_rand(&st, 0.0f, 256.0f);
        for (int i = 0; i < NTR; i++) ltr[i] = (i * 5 + i / 7) % 6;
        for (int i = 0; i < NTE; i++) lte[i] = i % 6;
        const float mean[C] = {0.4f, 0.6f}, std[C] = {0.25f, 0.2f};
        DataWriteSplit a = {NTR, C, H, W, tr, NULL, ltr}, b = {NTE, C, H, W, te, NULL, lte};
        data_write(path, &a, &b, 6, NULL, mean, std, 7, &err);
        free(tr);
        free(te);
    }
    if (dist_agree_error(&err)) return 2;
    return 0;
}

/* Walks `epochs` epochs of pool, writing this rank's samples; returns how many samples this rank loaded. */
static int64_t walk(Dataset *ds, FILE *out, const char *name, const int64_t *pool, int64_t npool, int epochs,
                    uint64_t seed, UlError *err)
{
    int rank = dist_rank(), R = dist_size();
    DataSampler s;
    data_sampler_init(&s, pool, npool, G, seed, true, false);
    int64_t cap = data_sampler_local_max(&s, R), total = 0;
    int64_t *idx = malloc((size_t)(cap ? cap : 1) * sizeof *idx);
    float *x = malloc((size_t)(cap ? cap : 1) * S * sizeof *x);
    int *y = malloc((size_t)(cap ? cap : 1) * sizeof *y);
    for (int e = 0; e < epochs && !err->failed; e++)
        for (int64_t b = 0; b < data_sampler_batches(&s) && !err->failed; b++) {
            int64_t n = data_sampler_local(&s, e, b, rank, R, idx);
            if (data_load(ds, DATA_TRAIN, idx, n, e, true, x, y, err)) break;
            for (int64_t i = 0; i < n; i++) {
                char hex[65];
                sha256_hex_of(x + i * S, S * sizeof(float), hex);
                fprintf(out, "%s %d %lld %d %lld %lld %d %.16s\n", name, e, (long long)b, rank, (long long)i,
                        (long long)idx[i], y[i], hex);
            }
            total += n;
        }
    free(idx);
    free(x);
    free(y);
    data_sampler_free(&s);
    return total;
}

static int readback(const char *path, const char *outp, const char *mode)
{
    UlError err = {0};
    Dataset ds;
    DataOptions opt;
    data_options_default(&opt);
    opt.cache = strcmp(mode, "cache") == 0;
    opt.aug_flip = true;
    opt.aug_crop_pad = 1;
    opt.aug_seed = 5;
    int opened = data_open(&ds, path, &opt, &err) == 0;
    if (opened && opt.cache && !ds.split[DATA_TRAIN].cache) ul_error_set(&err, "cache mode did not cache the split");
    Split sp = {0};
    SplitSpec spec = {.kind = SPLIT_FRACTION, .fraction = 0.25, .seed = 3};
    if (opened && !err.failed)
        split_resolve(&sp, &spec, ds.split[DATA_TRAIN].labels, ds.split[DATA_TRAIN].n, ds.num_classes, &err);
    if (dist_agree_error(&err)) {
        if (opened) data_close(&ds);
        return 2;
    }
    char name[600];
    snprintf(name, sizeof name, "%s.%d", outp, dist_rank());
    FILE *out = fopen(name, "w");
    if (!out) ul_error_set(&err, "%s: cannot create", name);
    if (dist_agree_error(&err)) return 2;
    fprintf(out, "# split %s\n", sp.sha256);
    int64_t counts[2];
    counts[0] = walk(&ds, out, "retain", sp.retain, sp.nretain, 2, 11, &err);
    counts[1] = walk(&ds, out, "forget", sp.forget, sp.nforget, 1, 12, &err);
    fclose(out);
    if (dist_agree_error(&err)) return 2;
    dist_allreduce_sum_int64(counts, 2);
    TU_CHECK(counts[0] == 2 * sp.nretain && counts[1] == sp.nforget,
             "ranks loaded %lld retain and %lld forget samples; want %lld and %lld", (long long)counts[0],
             (long long)counts[1], (long long)(2 * sp.nretain), (long long)sp.nforget);
    split_free(&sp);
    data_close(&ds);
    return tu_failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    dist_init(&argc, &argv);
    int rc = 2;
    if (argc == 3 && strcmp(argv[1], "make") == 0) rc = make(argv[2]);
    else if (argc == 5 && strcmp(argv[1], "read") == 0) rc = readback(argv[2], argv[3], argv[4]);
    else if (dist_rank() == 0) fprintf(stderr, "usage: mpi_data make FILE | read FILE OUT rows|cache\n");
    int64_t failed = rc != 0;
    dist_allreduce_sum_int64(&failed, 1);  /* every rank leaves with the same code */
    dist_exit(failed ? 1 : 0);
}
