/*
 * data.h - the dataset: validation of the on-disk format, the global batch sequence, and sharded loading.
 *
 * Format ("unlearn-dataset" version 1; docs/formats.md is the full description). One HDF5 file:
 *   /                 attributes  format = "unlearn-dataset" (string), format_version = 1 (integer),
 *                                 num_classes (integer >= 1),
 *                                 class_names (optional: num_classes strings),
 *                                 mean, std (optional, both or neither: float arrays of length C, std > 0; in the
 *                                 units the loader produces before normalising, i.e. uint8 images / 255)
 *   /train, /test     groups, each with
 *       images        [N, C, H, W] uint8 (converted to float / 255) or float32 (latents, used as stored)
 *       labels        [N] any integer type, every value in [0, num_classes)
 * Both splits hold N >= 1 samples of the same C, H, W. Datasets should be chunked along N (the loader reads
 * individual rows); contiguous storage works too.
 *
 * The global batch sequence (the same at any rank count):
 *   pool = the train indices to draw from (e.g. the retain or the forget set), n of them;
 *   perm = data_permute(seed, epoch, n)  (Fisher-Yates on the counter RNG: a pure function of seed, epoch, n);
 *   global batch b of the epoch = pool[perm[b*G .. min(b*G+G, n))];
 *   rank r of R takes its contiguous part of that batch (data_rank_part: sizes differ by at most one, lower ranks
 *   get the extra samples), so the concatenation over ranks is the global batch whatever R is.
 *
 * Example (every rank):
 *     Dataset ds; DataOptions opt; data_options_default(&opt);
 *     if (data_open(&ds, path, &opt, &err)) ...;                    // validates; err names file + dataset
 *     DataSampler s; data_sampler_init(&s, retain, nretain, 128, seed, true, false);
 *     int64_t cap = data_sampler_local_max(&s, R);                 // allocate idx [cap], x [cap, C, H, W], y [cap]
 *     for (int64_t b = 0; b < data_sampler_batches(&s); b++) {
 *         int64_t n = data_sampler_local(&s, epoch, b, rank, R, idx);   // my global sample indices
 *         if (data_load(&ds, DATA_TRAIN, idx, n, epoch, true, x, y, &err)) ...;   // x [n, C, H, W], y [n]
 *     }
 *
 * Reads: each rank reads only its own samples: the batch's indices are sorted, de-duplicated and grouped into runs
 * of consecutive rows, one HDF5 hyperslab read per run (never the whole dataset; Fashion-MNIST, 128 random rows:
 * about 1.3 ms with conversion), unless DataOptions.cache asks to keep a split in memory and it fits
 * cache_max_bytes (then the split is read once, at data_open, in its stored type).
 * Every function here is local (no collectives); errors are UlErrors for the caller to agree on across ranks.
 * Call from one thread per process (HDF5 is not thread-safe); a Dataset holds an open file until data_close.
 */
#ifndef UL_DATA_H
#define UL_DATA_H

#include "common.h"
#include "h5io.h"

#define DATA_FORMAT "unlearn-dataset"
#define DATA_FORMAT_VERSION 1
#define DATA_PATH_MAX 1024

typedef enum DataSplitId { DATA_TRAIN = 0, DATA_TEST = 1, DATA_NSPLITS = 2 } DataSplitId;

typedef struct DataOptions {
    bool normalize;          /* apply (x - mean[c]) / std[c] when the file has mean/std (default true) */
    bool cache;              /* keep each split in memory when it fits (default false) */
    size_t cache_max_bytes;  /* per split, in the stored type (default 4 GiB) */
    /* Augmentation, applied by data_load when its `augment` flag is set (the job sets it for training batches),
       in torchvision's order RandomCrop(padding) then RandomHorizontalFlip. Random draws are keyed by
       (aug_seed, epoch, global sample index): independent of ranks and batch order. Pass a constant epoch for a
       flip fixed per image for the whole run (the DiT reference's behaviour). */
    bool aug_flip;           /* horizontal flip with probability 1/2 */
    int aug_crop_pad;        /* > 0: zero-pad by this many pixels (raw zeros, normalised like any pixel), then
                                crop H x W at offsets drawn uniformly from [0, 2 * pad] per axis */
    uint64_t aug_seed;
} DataOptions;

typedef struct DataSplit {
    const char *name;        /* "train" or "test" */
    int64_t n;               /* samples */
    int c, h, w;
    size_t sample_elems;     /* c * h * w */
    bool is_u8;              /* stored uint8 (else float32) */
    char label_type[24];     /* stored label type, e.g. "int64" */
    int *labels;             /* [n], validated, owned */
    int64_t *class_counts;   /* [num_classes] samples per class, owned */
    int64_t chunk_rows;      /* images chunk length along N (0 = contiguous) */
    int nfilters;            /* compression filters on images */
    H5Dset *images;          /* open images dataset */
    void *cache;             /* [n, c, h, w] in the stored type when cached, else NULL; owned */
} DataSplit;

typedef struct Dataset {
    char path[DATA_PATH_MAX];
    H5File *file;
    int num_classes;
    char **class_names;      /* [num_classes] or NULL; owned */
    int channels;
    bool has_stats;          /* the file has mean/std */
    float *mean, *std;       /* [channels] when has_stats; owned */
    bool normalizing;        /* has_stats && opt.normalize */
    DataOptions opt;
    DataSplit split[DATA_NSPLITS];
    /* scratch for data_load, grown on first use to the largest batch seen (then never reallocated) */
    size_t scratch_n;        /* capacity in samples */
    int64_t *scratch_pairs;  /* [2 * scratch_n] (global index, local position) pairs, sorted */
    int64_t *scratch_starts, *scratch_counts;   /* [scratch_n] runs of consecutive rows */
    void *scratch_rows;      /* [scratch_n * scratch_row_bytes] stored-type rows */
    size_t scratch_row_bytes;
} Dataset;

void data_options_default(DataOptions *o);

/* Opens and validates a dataset file: missing file, missing group or dataset, wrong dtype or number of dimensions,
   N mismatch between images and labels, C/H/W mismatch between splits, labels outside [0, num_classes), a wrong
   format attribute or version, bad class_names or mean/std. The message names the file, the dataset or attribute
   and what is wrong. Reads every label (small), not the images (unless opt->cache and a split fits). Local.
   Returns 0, or -1 with err filled and *ds left closed (data_close is still allowed). */
int data_open(Dataset *ds, const char *path, const DataOptions *opt, UlError *err);
void data_close(Dataset *ds);

/* Loads samples idx[0..n) (global indices into the split, any order, duplicates allowed) of split s:
   x [n, C, H, W] (overwritten) gets the images converted to float (uint8 / 255), normalised when ds->normalizing,
   and augmented when `augment` and the options ask for it (keyed by epoch and the global index); y [n]
   (overwritten; may be NULL) gets the labels. An index outside [0, N) is fatal (the sampler never makes one).
   Reads only these rows (or copies from the cache). Returns 0, or -1 + err when the file cannot be read. */
int data_load(Dataset *ds, DataSplitId s, const int64_t *idx, int64_t n, int64_t epoch, bool augment, float *x, int *y,
              UlError *err);

/* ---- the global batch sequence ---- */

/* perm[0..n) := a permutation of 0..n-1, a pure function of (seed, epoch, n): Fisher-Yates with
   j = rng_below(seed, DATA_STREAM_PERM + epoch, i, i + 1) for i = n-1 .. 1. */
#define DATA_STREAM_PERM 0x7065726d00000000ULL
#define DATA_STREAM_AUG 0x6175670000000000ULL
void data_permute(uint64_t seed, int64_t epoch, int64_t n, int64_t *perm);

/* Rank r's part of a global batch of `gsize` samples over R ranks: [*offset, *offset + *count), contiguous;
   count = gsize / R, plus one for r < gsize % R. */
void data_rank_part(int64_t gsize, int rank, int nranks, int64_t *offset, int64_t *count);

typedef struct DataSampler {
    const int64_t *pool;     /* [npool] sorted or not, not owned; NULL = the identity 0..npool-1 */
    int64_t npool;
    int64_t global_batch;    /* G >= 1 */
    uint64_t seed;
    bool shuffle;            /* false: batches in pool order (evaluation) */
    bool drop_last;          /* drop a last batch smaller than G */
    int64_t *perm;           /* [npool] owned; the permutation of perm_epoch */
    int64_t perm_epoch;
} DataSampler;

/* pool must outlive the sampler. global_batch >= 1. Allocates the permutation buffer (npool int64). */
void data_sampler_init(DataSampler *s, const int64_t *pool, int64_t npool, int64_t global_batch, uint64_t seed,
                       bool shuffle, bool drop_last);
void data_sampler_free(DataSampler *s);
/* Global batches per epoch. */
int64_t data_sampler_batches(const DataSampler *s);
/* Size of global batch b (G, or less for a last partial batch). */
int64_t data_sampler_batch_size(const DataSampler *s, int64_t b);
/* The largest local part any rank gets: the capacity idx, x and y need for data_sampler_local / data_load. */
int64_t data_sampler_local_max(const DataSampler *s, int nranks);
/* Rank `rank`'s global sample indices of global batch b (0 <= b < batches) of `epoch` into idx; returns their count
   (possibly 0 when G < R). Recomputes the permutation when the epoch changes (O(npool), no allocation). */
int64_t data_sampler_local(DataSampler *s, int64_t epoch, int64_t b, int rank, int nranks, int64_t *idx);

/* ---- writing (tests, tools) ---- */

/* One split's content for data_write: images [n, c, h, w] of uint8 (u8 != NULL) or float32 (f32 != NULL),
   labels [n]. */
typedef struct DataWriteSplit {
    int64_t n;
    int c, h, w;
    const uint8_t *u8;
    const float *f32;
    const int64_t *labels;
} DataWriteSplit;

/* Writes a minimal valid dataset file (chunked along N, chunk_rows rows per chunk): both splits, format attributes,
   num_classes, and optionally class_names (NULL = none) and mean/std ([c] each, NULL = none). Overwrites path.
   Does not validate the content (tests write bad files this way too). */
int data_write(const char *path, const DataWriteSplit *train, const DataWriteSplit *test, int num_classes,
               const char *const *class_names, const float *mean, const float *std, int64_t chunk_rows,
               UlError *err);

#endif
