/*
 * split.h - forget/retain splits of a dataset's train set, as a job file describes them:
 *     forget: {classes: [9]}                   every train sample of these classes
 *     forget: {fraction: 0.1, seed: 1}         a random subset (a pure function of seed and N)
 *     forget: {indices: path/to/file}          explicit train indices (text, one per line, or .npy/.h5)
 * The resolved forget indices are sorted ascending; retain = all other train indices.
 */
#ifndef UL_SPLIT_H
#define UL_SPLIT_H

#include "common.h"

#define SPLIT_MAX_CLASSES 1024
#define SPLIT_PATH_MAX 1024

typedef enum SplitKind { SPLIT_NONE = 0, SPLIT_CLASSES, SPLIT_FRACTION, SPLIT_INDICES } SplitKind;

typedef struct SplitSpec {
    SplitKind kind;
    int classes[SPLIT_MAX_CLASSES];     /* SPLIT_CLASSES */
    int nclasses;
    double fraction;                    /* SPLIT_FRACTION, in (0, 1) */
    uint64_t seed;                      /* SPLIT_FRACTION */
    char indices_path[SPLIT_PATH_MAX];  /* SPLIT_INDICES */
} SplitSpec;

typedef struct Split {
    int64_t *forget;     /* sorted train indices, owned */
    int64_t nforget;
    int64_t *retain;     /* sorted, owned */
    int64_t nretain;
    char sha256[65];     /* hex SHA-256 of the forget indices as little-endian int64 */
} Split;

/* The resolved forget set's file in the run directory (split_write). */
#define SPLIT_FILE_NAME "forget_indices.txt"
#define SPLIT_STREAM 0x73706c6974000000ULL   /* rng.h stream of the fraction split's permutation */

/*
 * Resolves spec against the train labels [n] (every label in [0, num_classes), as data_open guarantees) into *out
 * (sorted forget and retain indices, owned; the SHA-256). Local and deterministic: every rank gets the same split.
 *   classes:  every train sample whose label is listed; each class must be in [0, num_classes), listed once.
 *   fraction: in (0, 1); perm = Fisher-Yates with j = rng_below(seed, SPLIT_STREAM, i, i + 1) for i = n-1..1
 *             (perm starts as the identity), forget = sort(perm[0 .. round(fraction * n))).
 *   indices:  a file of train indices: text (one integer per line; blank lines and '#' comments allowed),
 *             .npy (1-D int64 or int32, little-endian) or .h5/.hdf5 (a 1-D integer dataset 'indices').
 * Errors (UlError, naming the file and line / entry where there is one): no split given, an empty forget set, a
 * forget set equal to the whole train set, a class out of range or listed twice, an index out of range or
 * duplicated, an unreadable or malformed file. On error *out is left empty (split_free is still allowed).
 */
int split_resolve(Split *out, const SplitSpec *spec, const int *train_labels, int64_t n, int num_classes,
                  UlError *err);
void split_free(Split *s);
/* Hex SHA-256 of idx[0..n) as little-endian int64 (numpy: hashlib.sha256(np.asarray(idx, '<i8').tobytes())). */
void split_sha256(const int64_t *idx, int64_t n, char hex[65]);
/* Writes run_dir/forget_indices.txt: a comment line "# unlearn forget set: N indices, sha256 HEX", then one index
   per line (readable back as an indices file). Written to a temporary name and renamed (never half-written).
   Call on one rank. */
int split_write(const Split *s, const char *run_dir, UlError *err);

#endif
