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

#endif
