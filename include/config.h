/*
 * config.h - the job file: a typed configuration read from YAML, with a default, a range and a help text per key.
 * src/config.c is the only file that includes yaml.h.
 *
 * A job file (jobs/fmnist-sfron.yaml):
 *     name: fmnist-sfron
 *     data: {path: data/fashion-mnist.h5}
 *     model: {arch: fmnist-cnn, checkpoint: runs/fmnist-train/model.h5}
 *     forget: {classes: [9]}              # or {fraction: 0.1, seed: 3} or {indices: forget.txt}
 *     unlearn: {method: sfron, iters: 50, alpha: 5}
 *
 * Reading it (every rank does the same; see main.c):
 *     Config *cfg = UL_MALLOC(sizeof *cfg);   // big (fixed-size strings and lists): keep it off the stack
 *     UlError err = {0};
 *     config_load(cfg, "jobs/x.yaml", nset, sets, &err);     // local; sets = {"unlearn.lr=0.02", ...} from --set
 *     if (dist_agree_error(&err)) dist_exit(2);
 *     config_same_on_all_ranks(cfg, &err);                   // COLLECTIVE
 *     if (dist_agree_error(&err)) dist_exit(2);
 *     double lr = cfg->unlearn.lr;  Method m = cfg->unlearn.method;  const SplitSpec *s = &cfg->split;
 *
 * Every key is ONE line of the lists below: X(section, field, KIND, default, min, max, flags, help).
 *   - The key's dotted path is "section.field" and its C field cfg->section.field; the section `top` holds the
 *     top-level keys, whose path is "field" and C field cfg->field.
 *   - KIND is INT (int), INT64 (int64_t), DOUBLE (double), BOOL (bool), STRING (CfgString, at most
 *     CFG_STRING_MAX - 1 bytes), ENUM(Type) (an enum declared below, with its names in config.c),
 *     INTS (CfgIntList) or FLOATS (CfgFloatList), lists of at most CFG_LIST_MAX elements.
 *   - default is YAML text parsed and validated exactly like a value from a job file ("0.5", "[256]", "cosine",
 *     "runs/${name}"); NULL means "no default": the key is then CFG_REQUIRED or belongs to the forget split.
 *   - [min, max] bounds numbers (each element of a list; ignored for other kinds); CFG_OPEN_MIN / CFG_OPEN_MAX
 *     make a bound exclusive.
 *   - Strings may refer to other keys as ${key} (e.g. "runs/${name}") and to environment variables as
 *     ${env:VAR}; they are expanded after every source has been applied.
 * To add a key: add its line to its section's list. A new section also needs its list in CFG_SECTIONS, a struct
 * line in Config and a line in config.c's table (a static assert there counts the rows); a new ENUM type needs its
 * enum here and its names in config.c (cfg_names_Type; a load-time check finds a missing name).
 *
 * Errors (UlError, never fatal; the caller agrees them across ranks) name the file and line or the --set:
 *     "jobs/x.yaml:7: unknown key 'unlearn.lamda'; did you mean 'unlearn.lambda'?"
 *     "jobs/x.yaml:9: unlearn.iters: expected an integer, got 'many'"
 *     "--set unlearn.lr=-1: unlearn.lr: -1 is out of range (0, 10]"
 *     "jobs/x.yaml: missing required key 'data.path' (the HDF5 dataset ...)"
 */
#ifndef UL_CONFIG_H
#define UL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "optim.h"
#include "split.h"

#define CFG_STRING_MAX 1024
#define CFG_LIST_MAX 256

typedef char CfgString[CFG_STRING_MAX];
typedef struct CfgIntList { int n; int v[CFG_LIST_MAX]; } CfgIntList;
typedef struct CfgFloatList { int n; double v[CFG_LIST_MAX]; } CfgFloatList;

/* ---- enum-valued keys: the names (in config.c) are the values a job file uses, in this order ---------------- */
typedef enum Augment { AUGMENT_NONE, AUGMENT_FLIP, AUGMENT_CROP_FLIP, AUGMENT_COUNT } Augment; /* none flip crop_flip */
/* mlp fmnist-cnn resnet18-cifar */
typedef enum Arch { ARCH_MLP, ARCH_FMNIST_CNN, ARCH_RESNET18_CIFAR, ARCH_COUNT } Arch;
typedef enum DistMode { DIST_MODE_RANK0, DIST_MODE_REPLICATED, DIST_MODE_COUNT } DistMode; /* rank0 replicated */
typedef enum TrainOn { TRAIN_ON_ALL, TRAIN_ON_RETAIN, TRAIN_ON_COUNT } TrainOn;             /* all retain */
typedef enum Method {                                                  /* sfron ft ga rl salun l1 scrub bt */
    METHOD_SFRON, METHOD_FT, METHOD_GA, METHOD_RL, METHOD_SALUN, METHOD_L1, METHOD_SCRUB, METHOD_BT, METHOD_COUNT
} Method;
typedef enum MaskKind { MASK_FISHER, MASK_TOPK, MASK_NONE, MASK_COUNT } MaskKind;         /* fisher topk none */
typedef enum ResumeMode { RESUME_AUTO, RESUME_NEVER, RESUME_COUNT } ResumeMode;           /* auto never */
/* OptimKind (sgd adam adamw) and SchedKind (constant linear cosine) come from optim.h. */

/* Key flags. */
#define CFG_REQUIRED 1u  /* no default: the job must give it */
#define CFG_OPEN_MIN 2u  /* value > min (else >= min) */
#define CFG_OPEN_MAX 4u  /* value < max (else <= max) */

#define CFG_I32MAX 2147483647.0
#define CFG_BIG 1e18

/* ---- the keys ---------------------------------------------------------------------------------------------- */
/* X(section, field, KIND, default, min, max, flags, help) */

#define CFG_KEYS_TOP(X)                                                                                               \
    X(top, name, STRING, NULL, 0, 0, CFG_REQUIRED, "run name; other strings can use it as ${name}")                   \
    X(top, run_dir, STRING, "runs/${name}", 0, 0, 0, "directory for the run's outputs (resolved config, report)")     \
    X(top, seed, INT64, "0", 0, CFG_BIG, 0, "seed of every random draw (init, shuffling, augmentation)")

#define CFG_KEYS_DATA(X)                                                                                              \
    X(data, path, STRING, NULL, 0, 0, CFG_REQUIRED, "HDF5 dataset from data_tools/ (`unlearn info` checks one)")      \
    X(data, cache, BOOL, "false", 0, 0, 0, "hold the whole train set in memory instead of reading batches")           \
    X(data, normalize, BOOL, "true", 0, 0, 0, "standardise inputs with the dataset's per-channel mean and std")       \
    X(data, augment, ENUM(Augment), "none", 0, 0, 0, "training augmentation: none, flip, crop_flip")

#define CFG_KEYS_MODEL(X)                                                                                             \
    X(model, arch, ENUM(Arch), NULL, 0, 0, CFG_REQUIRED, "network: mlp, fmnist-cnn, resnet18-cifar")                  \
    X(model, hidden, INTS, "[256]", 1, 1048576, 0, "mlp hidden layer widths")                                         \
    X(model, checkpoint, STRING, "\"\"", 0, 0, 0, "weights to start from (forget, eval: the trained model)")

#define CFG_KEYS_FORGET(X)                                                                                            \
    X(forget, classes, INTS, NULL, 0, CFG_I32MAX, 0, "forget every train sample of these classes")                    \
    X(forget, fraction, DOUBLE, NULL, 0, 1, CFG_OPEN_MIN | CFG_OPEN_MAX, "forget a random fraction of the train set") \
    X(forget, seed, INT64, "0", 0, CFG_BIG, 0, "seed of the random fraction (independent of the run seed)")           \
    X(forget, indices, STRING, NULL, 0, 0, 0, "file of train indices to forget (text, one per line, .npy or .h5)")

#define CFG_KEYS_RUNTIME(X)                                                                                           \
    X(runtime, threads, INT, "0", 0, 4096, 0,                                                                         \
      "BLAS/OpenMP threads per rank; 0 = SLURM_CPUS_PER_TASK, else OMP_NUM_THREADS, else 1")                          \
    X(runtime, arena_mb, INT, "2048", 1, 16777216, 0, "activation arena per rank, MiB")                               \
    X(runtime, dist_mode, ENUM(DistMode), "rank0", 0, 0, 0,                                                           \
      "rank0: gradients reduced to rank 0, which steps and broadcasts; replicated: allreduce, every rank steps")      \
    X(runtime, progress, BOOL, "true", 0, 0, 0, "rank 0 prints a progress line now and then")

#define CFG_KEYS_TRAIN(X)                                                                                             \
    X(train, epochs, INT, "10", 1, 1000000, 0, "passes over the training set")                                        \
    X(train, batch_size, INT, "128", 1, 16777216, 0, "global batch size (split over ranks)")                          \
    X(train, optimizer, ENUM(OptimKind), "sgd", 0, 0, 0, "sgd, adam, adamw")                                          \
    X(train, lr, DOUBLE, "0.1", 0, 10, CFG_OPEN_MIN, "base learning rate")                                            \
    X(train, momentum, DOUBLE, "0.9", 0, 1, CFG_OPEN_MAX, "SGD momentum")                                             \
    X(train, weight_decay, DOUBLE, "5e-4", 0, 10, 0, "weight decay (decoupled for adamw)")                            \
    X(train, beta1, DOUBLE, "0.9", 0, 1, CFG_OPEN_MAX, "Adam beta1")                                                  \
    X(train, beta2, DOUBLE, "0.999", 0, 1, CFG_OPEN_MAX, "Adam beta2")                                                \
    X(train, schedule, ENUM(SchedKind), "cosine", 0, 0, 0, "learning-rate schedule: constant, linear, cosine")        \
    X(train, subset, INT, "0", 0, CFG_I32MAX, 0, "train on the first N samples only; 0 = all")                        \
    X(train, on, ENUM(TrainOn), "all", 0, 0, 0, "all: the whole train set; retain: without the forget set (RT)")      \
    X(train, out, STRING, "${run_dir}/model.h5", 0, 0, 0, "where the trained model is written")

/* Defaults: the CIFAR-10 SFR-on settings of shared/reference/sfr-on.md §1.5 and §1.10. */
#define CFG_KEYS_UNLEARN(X)                                                                                           \
    X(unlearn, method, ENUM(Method), "sfron", 0, 0, 0, "sfron, ft, ga, rl, salun, l1, scrub, bt")                     \
    X(unlearn, iters, INT, "1500", 1, 1000000000, 0, "iterations T (one retain step each)")                           \
    X(unlearn, forget_freq, INT, "5", 1, 1000000000, 0, "K: one forget step every K iterations")                      \
    X(unlearn, batch_size, INT, "128", 1, 16777216, 0, "global retain batch size")                                    \
    X(unlearn, forget_batch_size, INT, "128", 1, 16777216, 0, "global forget batch size")                             \
    X(unlearn, optimizer, ENUM(OptimKind), "sgd", 0, 0, 0, "sgd, adam, adamw (one optimizer for both steps)")         \
    X(unlearn, lr, DOUBLE, "0.01", 0, 10, CFG_OPEN_MIN, "base learning rate")                                         \
    X(unlearn, momentum, DOUBLE, "0.9", 0, 1, CFG_OPEN_MAX, "SGD momentum")                                           \
    X(unlearn, weight_decay, DOUBLE, "5e-4", 0, 10, 0, "weight decay")                                                \
    X(unlearn, schedule, ENUM(SchedKind), "cosine", 0, 0, 0, "learning-rate schedule over iters")                     \
    X(unlearn, alpha, DOUBLE, "25", 0, 1e9, 0, "forget-loss scale alpha0")                                            \
    X(unlearn, alpha_schedule, ENUM(SchedKind), "cosine", 0, 0, 0, "decay of alpha over iters")                       \
    X(unlearn, lambda, DOUBLE, "0.5", 0, 100, 0, "temperature of the adaptive forget weights (0 = plain mean)")       \
    X(unlearn, gamma, DOUBLE, "1", 0, 1e30, 0, "saliency threshold on F_forget / F_retain")                           \
    X(unlearn, mask, ENUM(MaskKind), "fisher", 0, 0, 0, "fisher (ratio >= gamma), topk (mask_topk), none")            \
    X(unlearn, mask_topk, DOUBLE, "0.5", 0, 1, CFG_OPEN_MIN, "fraction of weights a topk mask keeps")                 \
    X(unlearn, clip, DOUBLE, "7", 0, 1e30, 0, "global L2 clip of the forget gradient; 0 = off")                       \
    X(unlearn, clip_remain, DOUBLE, "0", 0, 1e30, 0, "global L2 clip of the retain gradient; 0 = off")                \
    X(unlearn, beta, DOUBLE, "1", 0, 1, CFG_OPEN_MIN, "merge: theta = (1-beta)*theta_prev + beta*theta")              \
    X(unlearn, fisher_batches, INT, "0", 0, 1000000000, 0, "batches per Fisher pass; 0 = one full pass")              \
    X(unlearn, loss_floor, DOUBLE, "0", 0, 1e30, 0, "floor on the loss inside the adaptive weight; 0 = reference")    \
    X(unlearn, remain_alpha, DOUBLE, "1", 0, 1e9, 0, "retain-loss scale")                                             \
    X(unlearn, l1, DOUBLE, "5e-4", 0, 1e9, 0, "l1: sparsity penalty strength")                                        \
    X(unlearn, scrub_kd_t, DOUBLE, "4", 0, 1e6, CFG_OPEN_MIN, "scrub: distillation temperature")                      \
    X(unlearn, scrub_msteps, INT, "2", 0, 1000000000, 0, "scrub: epochs with a max (forget) pass")                    \
    X(unlearn, bt_temperature, DOUBLE, "1", 0, 1e6, CFG_OPEN_MIN, "bt: bad-teacher temperature")               \
    X(unlearn, scrub_gamma, DOUBLE, "0.99", 0, 1e9, 0, "scrub: weight of CE in the min steps")                     \
    X(unlearn, scrub_alpha, DOUBLE, "0.001", 0, 1e9, 0, "scrub: weight of KL_T in the min steps")                  \
    X(unlearn, beta1, DOUBLE, "0.9", 0, 1, CFG_OPEN_MAX, "Adam beta1")                                             \
    X(unlearn, beta2, DOUBLE, "0.999", 0, 1, CFG_OPEN_MAX, "Adam beta2")

#define CFG_KEYS_EVAL(X)                                                                                              \
    X(eval, rt_checkpoint, STRING, "\"\"", 0, 0, 0, "retrained (RT) model to compare with; empty = none")             \
    X(eval, mia, BOOL, "true", 0, 0, 0, "run the membership-inference attack")                                        \
    X(eval, batch_size, INT, "512", 1, 16777216, 0, "evaluation batch size")

#define CFG_KEYS_CHECKPOINT(X)                                                                                        \
    X(checkpoint, every, INT, "0", 0, 1000000000, 0, "checkpoint every N iterations (or epochs); 0 = at the end")     \
    X(checkpoint, resume, ENUM(ResumeMode), "auto", 0, 0, 0, "auto: resume from the run's checkpoint if present")

/* Every section, in the order of the resolved file (config.c's table lists them in the same order). */
#define CFG_SECTIONS(S)                                                                                               \
    S(CFG_KEYS_TOP) S(CFG_KEYS_DATA) S(CFG_KEYS_MODEL) S(CFG_KEYS_FORGET) S(CFG_KEYS_RUNTIME) S(CFG_KEYS_TRAIN)       \
    S(CFG_KEYS_UNLEARN) S(CFG_KEYS_EVAL) S(CFG_KEYS_CHECKPOINT)

/* C types of the kinds. */
#define CFG_CTYPE_INT int
#define CFG_CTYPE_INT64 int64_t
#define CFG_CTYPE_DOUBLE double
#define CFG_CTYPE_BOOL bool
#define CFG_CTYPE_STRING CfgString
#define CFG_CTYPE_INTS CfgIntList
#define CFG_CTYPE_FLOATS CfgFloatList
#define CFG_CTYPE_ENUM(T) T
#define CFG_FIELD(sec, field, kind, def, lo, hi, flags, help) CFG_CTYPE_##kind field;
#define CFG_COUNT_ONE(sec, field, kind, def, lo, hi, flags, help) +1
#define CFG_COUNT_SECTION(list) list(CFG_COUNT_ONE)

enum { CFG_KEY_COUNT = 0 CFG_SECTIONS(CFG_COUNT_SECTION) };

/* Where a key's value came from. */
typedef enum CfgOrigin { CFG_FROM_DEFAULT, CFG_FROM_FILE, CFG_FROM_SET } CfgOrigin;

typedef struct Config {
    struct { CFG_KEYS_TOP(CFG_FIELD) };       /* cfg->name, cfg->run_dir, cfg->seed */
    struct { CFG_KEYS_DATA(CFG_FIELD) } data;
    struct { CFG_KEYS_MODEL(CFG_FIELD) } model;
    struct { CFG_KEYS_FORGET(CFG_FIELD) } forget;  /* as given; use `split` */
    struct { CFG_KEYS_RUNTIME(CFG_FIELD) } runtime;
    struct { CFG_KEYS_TRAIN(CFG_FIELD) } train;
    struct { CFG_KEYS_UNLEARN(CFG_FIELD) } unlearn;
    struct { CFG_KEYS_EVAL(CFG_FIELD) } eval;
    struct { CFG_KEYS_CHECKPOINT(CFG_FIELD) } checkpoint;

    SplitSpec split;                 /* the forget split resolved from forget.*; kind SPLIT_NONE when not given */
    CfgString job_path;              /* the job file as given on the command line */
    char sha256[65];                 /* hex SHA-256 of config_to_yaml's text: identifies the resolved config */
    unsigned char origin[CFG_KEY_COUNT]; /* CfgOrigin per key, in table order */
    int line[CFG_KEY_COUNT];         /* line in job_path (CFG_FROM_FILE), else 0 */
} Config;

/* ---- the key table (read-only) ----------------------------------------------------------------------------- */

typedef enum CfgKind { CFG_INT, CFG_INT64, CFG_DOUBLE, CFG_BOOL, CFG_STRING, CFG_ENUM, CFG_INTS, CFG_FLOATS } CfgKind;

typedef struct ConfigKey {
    const char *path;          /* "unlearn.lambda" */
    CfgKind kind;
    size_t offset, size;       /* of the field in Config */
    const char *def;           /* default as YAML text; NULL = none */
    double min, max;
    unsigned flags;
    const char *const *names;  /* ENUM: value names, NULL-terminated; else NULL */
    const char *help;
} ConfigKey;

/* The table in section order: *count receives CFG_KEY_COUNT. */
const ConfigKey *config_keys(int *count);
/* The row of a dotted path, or NULL. */
const ConfigKey *config_find_key(const char *path);
/* The name of an ENUM key's value (e.g. config_enum_name("model.arch", ARCH_MLP) = "mlp"); fatal on a bad key. */
const char *config_enum_name(const char *path, int value);

/* ---- loading ------------------------------------------------------------------------------------------------- */

/* Local. Every key at its default (required keys and the forget split unset). */
void config_defaults(Config *cfg);

/* Local. cfg := defaults, then the YAML job file at path, then each "key=value" of sets[0..nset) in order (values
   are YAML: --set model.hidden=[512,256]), then ${...} expansion, required keys and the forget split are checked,
   and sha256 is computed. Returns true on success; on failure fills err (first error wins) and cfg is unusable. */
bool config_load(Config *cfg, const char *path, int nset, char *const *sets, UlError *err);
/* The same with the job's text in memory; `display` names it in messages (e.g. "jobs/x.yaml"). */
bool config_load_text(Config *cfg, const char *display, const char *text, size_t len, int nset, char *const *sets,
                      UlError *err);

/* COLLECTIVE. Checks that every rank resolved exactly the same config as rank 0 (the text of config_to_yaml is
   broadcast from rank 0 and compared). On a mismatch fills err on the differing ranks with the first differing
   line; agree it with dist_agree_error. Returns true when this rank matches. */
bool config_same_on_all_ranks(const Config *cfg, UlError *err);

/* ---- output ---------------------------------------------------------------------------------------------------- */

/* The resolved config as YAML: every key in table order with its value (defaults filled in; of the forget split
   only the keys given). config_load_text of this text gives back the same config. Malloc'd; caller frees. */
char *config_to_yaml(const Config *cfg);
/* Local (call on one rank). Writes config_to_yaml's text to path atomically (path.tmp, then rename). */
bool config_write_resolved(const Config *cfg, const char *path, UlError *err);
/* Local. Where a key's value came from: "jobs/x.yaml:12", "--set", or "default". Returns buf. */
const char *config_where(const Config *cfg, const char *path, char *buf, size_t cap);
/* Local. The BLAS/OpenMP threads per rank: runtime.threads, or when 0 SLURM_CPUS_PER_TASK, else OMP_NUM_THREADS
   (its first entry), else 1. *source (may be NULL) names where it came from. Returns 0 and fills err when an
   environment variable holds something other than a positive integer. */
int config_threads(const Config *cfg, const char **source, UlError *err);
/* Every key with kind, default, range and help, one per line (for `unlearn keys`). */
void config_print_keys(FILE *out);

#endif
