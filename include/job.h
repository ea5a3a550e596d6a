/*
 * job.h - one run of `unlearn train|forget|eval JOB.yaml`: the resolved config, the dataset, the forget/retain
 * split, the model, the step arena and tape, timers, and the run directory's outputs. Shared by src/train.c,
 * src/forget.c and src/eval.c; implemented in src/job.c.
 *
 * Every rank holds the same Job (same config hash, same split, same model weights); each rank reads only its own
 * part of every global batch (data.h). Bad input anywhere gives ONE message and all ranks exit 2 together.
 *
 *     int cmd_forget(int argc, char **argv) {
 *         Job job;
 *         job_open(&job, argc, argv, "forget");     // COLLECTIVE; exits 2 on bad input, one message
 *         ...                                        // method loop (forget.c)
 *         job_close(&job);                           // COLLECTIVE
 *         return 0;
 *     }
 *
 * Loss scaling convention: a data-parallel step over a global batch of G samples seeds tape_backward with the
 * per-sample weight w_i / G (w_i = 1 for a plain mean, -alpha * p_i * G for weighted ascent...), so that the SUM
 * over ranks of the local gradients is the gradient of the global-batch loss, independent of the rank count.
 */
#ifndef UL_JOB_H
#define UL_JOB_H

#include <stdio.h>

#include "config.h"
#include "data.h"
#include "dist.h"
#include "model.h"
#include "split.h"

#define JOB_PATH_MAX 1024

typedef struct Job {
    const char *command;          /* "train", "forget" or "eval" */
    Config *cfg;                  /* owned; resolved and identical on every rank (hash checked) */
    char config_hash[65];
    char run_dir[JOB_PATH_MAX];   /* created by rank 0; holds config.yaml, report.json, metrics.jsonl, logs */
    int rank, nranks, threads;
    Dataset data;                 /* open on every rank */
    bool has_split;               /* the job names a forget set */
    Split split;                  /* resolved forget/retain train indices (when has_split) */
    ModelSpec spec;               /* from cfg->model and the dataset's shape and class count */
    Model *model;                 /* created; loaded from cfg->model.checkpoint when set, else model_init(seed) */
    Arena arena;                  /* per-step activations: runtime.arena_mb */
    Tape tape;                    /* its allreduce_sum is dist_allreduce_sum_double when nranks > 1 */
    DistTimers timers;
    FILE *metrics;                /* rank 0: <run_dir>/metrics.jsonl, one JSON object per line; NULL elsewhere */
    double t_start;               /* ul_now() at job_open */
    char provenance[2048];        /* version, compiler, flags, HDF5/BLAS/MPI versions, ranks x threads, host */
    /* batch buffers, sized once for the largest local batch (job_reserve_batch); never reallocated in a loop */
    int64_t batch_cap;
    int64_t *bidx;                /* [batch_cap] global sample indices of the local batch */
    float *bx;                    /* [batch_cap, C, H, W] */
    int *by;                      /* [batch_cap] */
    /* run control (job_open fills these; the loops read them) */
    uint64_t step_seed;           /* ModelCond.seed of job_forward (dropout); loops set it per step */
    char checkpoint_path[JOB_PATH_MAX]; /* <run_dir>/checkpoint.h5 (runctl.h): periodic and preemption saves */
    bool resume;                  /* train/forget: checkpoint.resume (or a Slurm requeue) says to continue and
                                     checkpoint_path exists with this job's config hash (rank 0 looked, every rank
                                     takes its answer; a checkpoint of another configuration is ignored, noted) */
    /* progress line state (rank 0) */
    char progress_phase[32];
    double progress_t0, progress_last;
    int64_t progress_done0;
} Job;

/* COLLECTIVE. Installs the stop-signal handlers (runctl_install_signals), parses `JOB.yaml [--set key=value]...`
   (argv[0] is the command name), initialises nothing MPI (main.c called dist_init), loads and agrees the config,
   sets BLAS/OpenMP threads (kern_set_threads from runtime.threads), creates the run directory and writes
   config.yaml there (rank 0), opens the dataset, resolves the split (writes the forget indices and checks the
   SHA-256 is the same on every rank), builds the model and loads model.checkpoint if given (validated: arch,
   names, shapes; "forget" and "eval" require one), sets up the arena and tape, decides whether to resume
   (job->resume) and opens metrics.jsonl on rank 0 (appending when resuming). On any bad input: one message
   naming the file/key/line, all ranks exit 2. */
void job_open(Job *job, int argc, char **argv, const char *command);
/* COLLECTIVE. Frees everything and closes metrics.jsonl. */
void job_close(Job *job);

/* Local. Grows the batch buffers to hold n samples (call before a loop with the sampler's local max). */
void job_reserve_batch(Job *job, int64_t n);
/* Local. Loads the local samples idx[0..n) of split s into job->bx / job->by (augmented when `augment` and the
   config asks for it). Read errors are fatal with the file named (the dataset was validated at job_open). */
void job_load_batch(Job *job, DataSplitId s, const int64_t *idx, int64_t n, int64_t epoch, bool augment);
/* Local (but BatchNorm in training mode makes it COLLECTIVE: every rank must call it the same number of times).
   Resets the tape, runs model m on job->bx[0..n) and returns the logits [n, classes]. training: BatchNorm batch
   statistics (synchronised over ranks) and dropout; record: keep the tape for backward. */
Tensor *job_forward(Job *job, Model *m, int64_t n, bool training, bool record);

/* COLLECTIVE. Sums the gradient buffer m->grad over ranks: to every rank when to_all (e.g. statistics every rank
   needs) or in replicated mode, else to rank 0 only (rank0 mode, cfg->runtime.dist_mode; the other ranks' m->grad
   is then left as their local share). One rank: no-op. Timed as DIST_PHASE_ALLREDUCE (the caller must not have
   that phase running; the same holds for every job_* function that names its phase). */
void job_reduce_grad(Job *job, Model *m, bool to_all);
/* COLLECTIVE. Broadcasts rank 0's parameters (and buffers) to every rank. Timed as DIST_PHASE_BCAST. */
void job_bcast_model(Job *job, Model *m);

/* Saves model m (params, buffers; plus optional per-parameter state sections) to path atomically from rank 0,
   with the job's config hash and split digest. COLLECTIVE (the outcome is agreed; a write error -- disk full,
   permission -- is one message and exit 1 on every rank). */
typedef struct JobState {
    const char *kind;             /* "m", "v", "slow", "mask", ... */
    float *data;                  /* [m->params.total] */
} JobState;
void job_save_model(Job *job, Model *m, const char *path, int64_t step, int64_t epoch, int64_t batch,
                    const JobState *states, int nstates);

/* COLLECTIVE. A new model of the job's spec loaded from the checkpoint at path (params and buffers, validated like
   model.checkpoint); `key` names the job key in messages (e.g. "eval.rt_checkpoint"). Bad input: one message,
   all ranks exit 2. The caller frees it with model_free. */
Model *job_load_model(Job *job, const char *path, const char *key);

/* COLLECTIVE. Restores a run checkpoint written by job_save_model into m (params, buffers) and states[0..nstates)
   (each state/<kind> section must be present; data may be NULL on ranks that keep no such state, e.g. the
   optimizer moments of rank0 mode off rank 0); *step, *epoch, *batch receive the saved position. The checkpoint
   must carry this job's config hash (a checkpoint of another configuration is refused with a hint). Bad input:
   one message, all ranks exit 2. Timed as DIST_PHASE_IO. */
void job_load_checkpoint(Job *job, Model *m, const char *path, const JobState *states, int nstates, int64_t *step,
                         int64_t *epoch, int64_t *batch);

/* COLLECTIVE, once per iteration (runctl_agree). ORs local_flags (RUNCTL_* bits; pass RUNCTL_NONFINITE when this
   rank saw a non-finite loss or gradient norm) over the ranks. On RUNCTL_NONFINITE anywhere: rank 0 writes
   <run_dir>/nonfinite.json and prints one message naming `which_loss`, the iteration and grad_norm (rank 0's
   value), and every rank exits UL_EXIT_NONFINITE together. Otherwise returns the agreed flags: RUNCTL_STOP asks
   the caller to write its checkpoint and leave with job_exit_preempted. */
unsigned job_agree_step(Job *job, int64_t iter, unsigned local_flags, const char *which_loss, double grad_norm);
/* COLLECTIVE. After the caller saved its checkpoint at job->checkpoint_path: rank 0 logs the stop (runctl) and all
   ranks exit UL_EXIT_PREEMPTED. `next_iter` is the first iteration a resumed run will do. */
void job_exit_preempted(Job *job, int64_t next_iter) __attribute__((noreturn));

/* Rank 0 writes one JSON object line to metrics.jsonl (fields given as a ready JSON object text without braces,
   e.g. "\"iter\": 3, \"loss\": 0.12"), flushed. Other ranks: no-op. */
void job_metrics_line(Job *job, const char *fields);

/* Rank 0: a progress line "[forget] iter 120/500  24%  loss 0.31  elapsed 12s  ETA 38s" on stdout at most every
   JOB_PROGRESS_SECONDS, and at most about JOB_PROGRESS_LINES lines over a long phase (and at done == total), when
   runtime.progress. `extra` (may be NULL) is printed after the percentage. The ETA uses the rate since the phase's
   first call (so a resumed run estimates correctly); "elapsed" counts from job_open. */
#define JOB_PROGRESS_SECONDS 5.0
#define JOB_PROGRESS_LINES 200.0
void job_progress(Job *job, const char *phase, int64_t done, int64_t total, const char *extra);

#endif
