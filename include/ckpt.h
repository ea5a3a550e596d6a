/*
 * ckpt.h - checkpoints: named flat-buffer sections (ParamTable views) plus run metadata in one HDF5 file.
 * Independent of the model code: a section is any ParamTable with a flat float buffer.
 *
 * Layout ("unlearn-checkpoint" version 1; readable with h5py, e.g. f["params/conv1.weight"][...]):
 *   /                          attributes (strings are NUL-terminated fixed-length ASCII; integers int64):
 *       format = "unlearn-checkpoint", format_version = 1,
 *       arch (the model architecture, e.g. "fmnist-cnn"), model_spec (free text describing the model),
 *       config_hash (hex digest of the job's resolved config; "" = none), split_sha256 (the forget set's digest,
 *       split.h; "" = none), step, epoch, batch (the data position to resume from: the next batch to run),
 *       rng_state (uint64 [k], absent when k = 0), checksum (see below)
 *   /params/<name>             float32, the view's shape (e.g. [32, 3, 3, 3]), one dataset per parameter
 *   /buffers/<name>            float32, non-trained state (BatchNorm running statistics, frozen embeddings)
 *   /state/<kind>/<name>       float32, per-parameter state stored per view with the parameter's name and shape,
 *                              kind e.g. "m", "v" (optimizer moments), "slow" (the slow copy), "mask" (saliency)
 * A name containing '/' becomes nested groups; readers address it by the same path. Datasets are contiguous and
 * uncompressed. Other datasets or groups outside params/, buffers/ and state/ are ignored by readers.
 *
 * Checksum (attribute `checksum`, 64 lowercase hex characters): SHA-256 over every float32 dataset below params/,
 * buffers/ and state/, in strcmp order of the full path without a leading '/', each contributing
 *     path bytes, one 0 byte, int64 little-endian ndim, int64 little-endian dims..., the data as float32 LE
 * (numpy: h.update(p.encode() + b"\0"); h.update(np.array([a.ndim, *a.shape], "<i8").tobytes());
 *  h.update(np.ascontiguousarray(a, "<f4").tobytes())). Loads verify it.
 *
 * Writing is atomic and done by ONE process (rank 0): the file is built in memory (HDF5's core driver; HDF5 1.10
 * cannot close a disk file after a failed write), flushed, written to <path>.tmp.<pid> with write(2), fsync'ed,
 * closed, renamed to <path>, and the directory is fsync'ed. On any error the temporary file is removed and the
 * previous file under <path>, if any, is untouched. Memory: about twice the file size, transiently, on that rank.
 *
 * Example:
 *     CkptSection sec[] = {{"params", &m->params, m->param}, {"buffers", &m->buffers, m->buf},
 *                          {"state/m", &m->params, opt_m, .optional = true}};
 *     CkptContent c = {.sections = sec, .nsections = 3};
 *     snprintf(c.meta.arch, sizeof c.meta.arch, "fmnist-cnn"); c.meta.step = step;
 *     if (ckpt_save("run/ckpt.h5", &c, &err)) ...;
 *     if (ckpt_load("run/ckpt.h5", "fmnist-cnn", &c, &err)) ...;     // fills every section buffer and c.meta
 */
#ifndef UL_CKPT_H
#define UL_CKPT_H

#include "common.h"
#include "tensor.h"

#define CKPT_FORMAT "unlearn-checkpoint"
#define CKPT_FORMAT_VERSION 1
#define CKPT_RNG_MAX 16
#define CKPT_STR_MAX 256
#define CKPT_SPEC_MAX 16384
#define CKPT_NAME_MAX (PARAM_NAME_MAX + 64)

typedef struct CkptMeta {
    char arch[CKPT_STR_MAX];
    char model_spec[CKPT_SPEC_MAX];
    char config_hash[CKPT_STR_MAX];
    char split_sha256[CKPT_STR_MAX];
    int64_t step, epoch, batch;
    uint64_t rng[CKPT_RNG_MAX];
    int nrng;                          /* 0..CKPT_RNG_MAX */
} CkptMeta;

typedef struct CkptSection {
    const char *group;                 /* "params", "buffers" or "state/<kind>" */
    const ParamTable *table;           /* names and shapes */
    float *data;                       /* [table->total] flat buffer: read on save, written on load */
    bool optional;                     /* load: a missing group is not an error (data untouched, loaded = false) */
    bool loaded;                       /* load output */
} CkptSection;

typedef struct CkptContent {
    CkptMeta meta;
    CkptSection *sections;
    int nsections;
} CkptContent;

/* Saves atomically (see above). Call on one process only. Returns 0, or -1 + err (the file system's message,
   e.g. "No space left on device", and the path) with no file left under <path>.tmp.<pid> and <path> untouched. */
int ckpt_save(const char *path, const CkptContent *c, UlError *err);

/* Loads a checkpoint into c's sections and c->meta. Checks, in order: the file opens (a truncated file says so),
   format and format_version, the arch (when expect_arch is not NULL), that every section's group exists (unless
   optional; a group may be absent when its table is empty), that every view exists with the same shape and that
   the group holds nothing else ("ckpt.h5: parameter 'conv1.weight' has shape [32, 1, 3, 3], the model expects
   [32, 3, 3, 3]"), that the data are float32, and the checksum. Local (every rank may load; or rank 0 loads and
   broadcasts). On error the section buffers are unspecified. */
int ckpt_load(const char *path, const char *expect_arch, CkptContent *c, UlError *err);

/* What a checkpoint holds, without a model (unlearn info). */
typedef struct CkptEntry {
    char name[CKPT_NAME_MAX];          /* full path, e.g. "params/conv1.weight" */
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t n;
} CkptEntry;

typedef struct CkptInfo {
    CkptMeta meta;
    char checksum[65];
    CkptEntry *entries;                /* sorted by name; owned */
    int nentries;
} CkptInfo;

/* Reads and validates a checkpoint like ckpt_load (format, version, float32 data, checksum) plus its internal
   consistency (every state/<kind>/<name> matches a params/<name> of the same shape). Reads all data once. */
int ckpt_inspect(const char *path, CkptInfo *info, UlError *err);
void ckpt_info_free(CkptInfo *info);

#endif
