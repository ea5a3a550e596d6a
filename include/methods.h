/*
 * methods.h - the unlearning methods as configurations of ONE loop (shared/reference/sfr-on.md §1.2, §2.3): the
 * step functions that `unlearn forget` (src/forget.c) drives over the dataset and tests/test_methods.c drives over
 * in-memory batches. Nothing here reads files or knows about the Job: batches come in loaded, and everything
 * that crosses ranks goes through the tape's allreduce_sum (scalar sums, BatchNorm statistics) or the hooks
 * (gradient reduction, parameter broadcast).
 *
 * One iteration t of the loop (T = unlearn.iters, lr_t = sched_value(unlearn.schedule, unlearn.lr, t, T)):
 *   1. forget step, when unl_has_forget_step(u, t):
 *        zero grad; loss on a forget batch, backward            (local, seeds w_i / G: job.h's convention)
 *        reduce grad over ranks                                  (hooks.reduce_grad)
 *        [applying ranks] mask (plan.forget_masked) -> global L2 clip (unlearn.clip; 0 = off) -> optimizer step
 *        [rank0 mode] broadcast the parameters                   (hooks.bcast_model)
 *   2. retain step, when the method has one: the same with a retain (or joint) batch, masked only for salun,
 *      clipped only when unlearn.clip_remain > 0, plus the l1 subgradient for l1.
 *   3. merge (in the last step of the iteration, before its broadcast): theta = (1-beta)*theta_prev + beta*theta,
 *      theta_prev = theta (unlearn.beta; beta = 1 leaves theta bit-identical but runs the same code).
 * ONE optimizer (unlearn.optimizer) serves both kinds of step; its state, the slow copy and the mask live on the
 * applying ranks only (rank 0 in rank0 mode, every rank in replicated mode).
 *
 * The methods (unlearn.method) and the knobs each one reads (alpha_t = sched_value(alpha_schedule, alpha, t, T)):
 *   sfron  forget step every K = forget_freq iterations (t mod K == 0), train-mode BN:
 *            loss = -alpha_t * sum_i p_i l_i, l_i = CE, p_i = c_i / sum_j c_j over the GLOBAL forget batch,
 *            c_i = 1 / (max(l_i, loss_floor)^lambda + 1e-15)   (loss_floor 0 = the reference exactly);
 *          mask: unlearn.mask (fisher: ratio >= gamma from fisher_batches per pass; topk: mask_topk; none);
 *          retain step every iteration: remain_alpha * mean CE, train-mode BN.
 *   ft     retain steps only (remain_alpha * mean CE).
 *   ga     forget step EVERY iteration, eval-mode BN (sfr-on.md §2.1), plain mean (lambda ignored: p_i = 1/G),
 *          scale alpha_t, unlearn.mask as for sfron, clip; no retain step.
 *   rl     retain step on JOINT batches of retain ∪ forget (batch_size) whose forget labels were replaced once by
 *          unl_random_label (the caller does it when loading), remain_alpha * mean CE; no forget step.
 *   salun  rl + a top-k mask (mask_topk) of |sum over forget batches of grad(-CE)| (eval mode, fisher_batches
 *          forget batches) applied to the joint gradient.
 *   l1     ft + l1_t * sign(theta) added to the reduced gradient (d/dtheta of l1_t * ||theta||_1),
 *          l1_t = l1 * (1 - t/T) (the l1-sparse paper's linear decay, per iteration instead of per epoch).
 *   scrub  teacher = the original model, frozen, eval mode; KL_T(p, q) = T^2 * sum_c p_c (log p_c - log q_c) with
 *          p = softmax(teacher / T), q = softmax(student / T), T = scrub_kd_t.
 *          max (forget) step every K iterations while t < scrub_msteps * retain_epoch_iters (the first msteps
 *          epochs of the retain stream): loss = -mean_i KL_T (unscaled, as the reference); unmasked, clip.
 *          min (retain) step every iteration: loss = mean_i (scrub_gamma * CE_i + scrub_alpha * KL_T,i).
 *          (The reference runs a whole forget pass before each retain epoch; here the max steps are interleaved
 *          every K iterations: the same loop, a documented difference.)
 *   bt     retain step on joint batches: loss = mean over B x C of the KL(teacher || student) at bt_temperature
 *          (torch kl_div's default 'mean' reduction), the teacher being a randomly initialised ("incompetent")
 *          model of the same architecture for forget samples and the original model for retain samples.
 * scrub's CE and KL weights on retain batches are unlearn.scrub_gamma and unlearn.scrub_alpha (reference values
 * 0.99 and 0.001, sfr-on.md §2.1).
 *
 * Example (one process, in-memory batches; tests/test_methods.c):
 *     Unlearner u;
 *     unl_init(&u, &(UnlSetup){.cfg = cfg, .model = m, .tape = &tape, .batch_cap = 16, .retain_epoch_iters = 4});
 *     for (b = 0; b < nfb; b++) unl_mask_batch(&u, UNL_PASS_FORGET, &fisher_forget[b]);
 *     for (b = 0; b < nrb; b++) unl_mask_batch(&u, UNL_PASS_RETAIN, &fisher_retain[b]);
 *     unl_mask_finish(&u);
 *     for (t = 0; t < T; t++)
 *         unl_iteration(&u, t, unl_has_forget_step(&u, t) ? &fb[t] : NULL, &rb[t]);
 *     unl_free(&u);
 */
#ifndef UL_METHODS_H
#define UL_METHODS_H

#include "config.h"
#include "dist.h"
#include "model.h"
#include "optim.h"

/* rng.h stream of the random relabelling (rl, salun) and of the incompetent teacher's initialisation (bt). */
#define UNL_STREAM_RELABEL 0x72656c6162656c00ULL
#define UNL_SEED_BAD_TEACHER 0x6261647465616368ULL

/* One step's batch, as this rank holds it. */
typedef struct UnlBatch {
    float *x;                        /* [n, C, H, W] inputs (read only; non-const for tensor_wrap) */
    const int *y;                    /* [n] labels as the step must use them (rl/salun: forget labels replaced) */
    const unsigned char *is_forget;  /* [n] 1 for forget samples of a joint batch (bt needs it), or NULL */
    int64_t n;                       /* this rank's samples; 0 allowed only for eval-mode work (ga, mask passes) */
    int64_t global_n;                /* G: the global batch size, the sum of n over ranks */
} UnlBatch;

/* How the loop talks to the rest of the run. All NULL / false except `applies` in a single process. */
typedef struct UnlHooks {
    void *ctx;
    /* COLLECTIVE: sums m->grad over ranks, onto every rank (replicated) or rank 0 (rank0 mode). NULL: one rank. */
    void (*reduce_grad)(void *ctx, Model *m);
    /* COLLECTIVE: copies rank 0's parameters and buffers to every rank. NULL: every rank updates itself. */
    void (*bcast_model)(void *ctx, Model *m);
    DistTimers *timers;  /* per-phase times (COMPUTE around forward/backward and the update); NULL: not timed */
    bool rank0_phase;    /* time the update as DIST_PHASE_RANK0 (rank0 mode with several ranks) */
    bool passive;        /* this rank does NOT apply updates (rank0 mode, rank > 0): no optimizer, mask, slow copy */
} UnlHooks;

/* What a method does: a configuration of the one loop (filled by unl_init from unlearn.method). */
typedef enum UnlLoss {
    UNL_LOSS_NONE,
    UNL_LOSS_CE,          /* per-sample cross-entropy */
    UNL_LOSS_SCRUB_MAX,   /* T^2 KL(teacher || student) (forget, ascent) */
    UNL_LOSS_SCRUB_MIN,   /* scrub_gamma * CE + scrub_alpha * T^2 KL (retain) */
    UNL_LOSS_BAD_TEACHER  /* KL(teacher_i || student) / C, teacher by is_forget */
} UnlLoss;

typedef enum UnlPass { UNL_PASS_FORGET, UNL_PASS_RETAIN } UnlPass;

typedef struct UnlPlan {
    Method method;
    UnlLoss forget_loss;        /* NONE: the method has no forget step */
    int64_t forget_every;       /* K */
    int64_t forget_until;       /* forget steps only while t < forget_until (scrub); INT64_MAX otherwise */
    bool forget_train_bn;       /* BatchNorm batch statistics in the forget step (false: eval mode, ga) */
    bool forget_adaptive;       /* the lambda weights (sfron); else the plain mean */
    bool forget_scaled;         /* multiply by alpha_t (sfron, ga) */
    bool forget_masked;
    UnlLoss retain_loss;        /* NONE: no retain step */
    bool retain_joint;          /* batches of retain ∪ forget (rl, salun, bt) */
    bool retain_masked;         /* salun */
    bool l1;
    MaskKind mask;              /* the mask to compute before the loop */
    bool needs_teacher, needs_bad_teacher;
} UnlPlan;

/* The numbers of the last iteration. Losses are global (every rank has them); gradient norms and the
   learning rate only on applying ranks (NAN elsewhere). */
typedef struct UnlStats {
    bool did_forget, did_retain;
    double forget_loss;          /* global mean per-sample forget loss (CE; scrub: T^2 KL); NAN without a step */
    double retain_loss;          /* the retain step's loss value; NAN without a step */
    double forget_gnorm;         /* forget gradient L2 norm after the mask, before clipping */
    double retain_gnorm;         /* retain gradient L2 norm after mask/l1, before clipping */
    double alpha, lr, l1;        /* alpha_t, lr_t, l1_t */
} UnlStats;

/* The mask and how it was made (valid on applying ranks after unl_mask_finish or a restore). */
typedef struct UnlMaskInfo {
    MaskKind kind;
    int64_t forget_batches, retain_batches;   /* batches accumulated per pass */
    int64_t forget_samples, retain_samples;   /* samples in them (global) */
    size_t kept, total;                       /* ones in the mask, params.total */
    bool finite;                              /* the statistics were finite (else the mask is not usable) */
} UnlMaskInfo;

typedef struct UnlSetup {
    const Config *cfg;           /* cfg->unlearn.* and cfg->seed (read at unl_init; not kept) */
    Model *model;                /* trained in place; its weights at unl_init are theta_0 (the teachers copy them) */
    Tape *tape;                  /* the step tape; its allreduce_sum (when set) sums over ranks */
    int64_t batch_cap;           /* the largest local batch (n) any step or mask pass will see */
    int64_t retain_epoch_iters;  /* global retain (or joint) batches per epoch: scrub's max-step window; >= 1 */
    UnlHooks hooks;
} UnlSetup;

typedef struct Unlearner {
    UnlPlan plan;
    Model *m;
    Tape *tape;
    UnlHooks hooks;
    int64_t T;                     /* unlearn.iters */
    /* knobs (copied from the config at unl_init) */
    double lr, alpha, lambda, loss_floor, gamma, mask_topk, clip, clip_remain, beta, remain_alpha, l1;
    double scrub_t, scrub_gamma, scrub_alpha, bt_t;
    SchedKind schedule, alpha_schedule;
    /* state on applying ranks (NULL / unused on passive ranks) */
    Optim opt;
    float *slow;                   /* [params.total] theta_prev of the merge */
    float *mask;                   /* [params.total] 0/1, or NULL when plan.mask == MASK_NONE */
    float *acc_f, *acc_r;          /* [params.total] mask statistics, only between the first unl_mask_batch and
                                      unl_mask_finish */
    UnlMaskInfo mask_info;
    /* frozen teachers (scrub, bt), owned */
    Model *teacher, *bad_teacher;
    /* step scratch, sized for batch_cap once */
    int64_t cap;
    float *seed;                   /* [cap] backward seeds */
    float *seed2;                  /* [cap] */
    double *cw;                    /* [cap] adaptive weights c_i */
    float *tlogp, *tlogp2;         /* [cap, classes] teacher log-probabilities */
    UnlStats last;
} Unlearner;

/* Local. Validates the knob combination for the method (e.g. salun needs mask_topk; K >= 1) and fills err; the
   caller agrees it across ranks. Does not allocate. */
bool unl_check_config(const Config *cfg, UlError *err);

/* The plan of cfg->unlearn.method (what unl_init will run), for callers that set up batch streams first. */
UnlPlan unl_plan(const Config *cfg);

/* Local. Builds the plan from cfg->unlearn.method, copies the knobs, allocates the optimizer state, slow copy
   (= the current parameters) and mask on applying ranks, the teachers and the step scratch. */
void unl_init(Unlearner *u, const UnlSetup *s);
void unl_free(Unlearner *u);

/* ---- the mask (before the loop) ---- */

/* Whether unl_mask_batch must see forget batches / retain batches (plan.mask: fisher both, topk forget only). */
bool unl_mask_needs(const Unlearner *u, UnlPass pass);
/* COLLECTIVE (hooks.reduce_grad). One batch of a mask pass: eval mode, zero grad, gradient of the batch's mean
   CE (seeds 1/G), reduced; applying ranks accumulate g^2 (fisher) or g (topk). A rank with b->n == 0 contributes
   zero. Leaves m->grad dirty. */
void unl_mask_batch(Unlearner *u, UnlPass pass, const UnlBatch *b);
/* Local. Turns the statistics into the mask (fisher: mean over batches, ratio >= gamma; topk: the top mask_topk
   fraction) on applying ranks, frees them, and fills mask_info. Statistics that are not finite give
   mask_info.finite = false and an all-zero mask: the caller stops with a diagnostic. */
void unl_mask_finish(Unlearner *u);

/* ---- the loop ---- */

bool unl_has_forget_step(const Unlearner *u, int64_t t);
bool unl_has_retain_step(const Unlearner *u);
/* Forget batches consumed by iterations [0, t) (the forget stream's position at iteration t). */
int64_t unl_forget_steps_before(const Unlearner *u, int64_t t);
/* Optimizer steps taken by iterations [0, t). */
int64_t unl_optim_steps_before(const Unlearner *u, int64_t t);

/* COLLECTIVE. Iteration t: the forget step (fb, required when unl_has_forget_step(u, t), else ignored), the retain
   step (rb, required when the method has one), and the merge, as described at the top. Fills u->last. */
void unl_iteration(Unlearner *u, int64_t t, const UnlBatch *fb, const UnlBatch *rb);

/* Local. After loading a checkpoint of iteration t into the parameters, buffers, u->opt.m/v, u->slow and u->mask:
   sets the optimizer's step count (unl_optim_steps_before(u, t)) and marks the mask as made. */
void unl_restore(Unlearner *u, int64_t t);

/* The adaptive forget weight c = 1 / (max(loss, floor)^lambda + 1e-15) (floor 0: loss itself, the reference). */
double unl_adaptive_weight(double loss, double lambda, double floor);

/* The random different label of sample `index` (a global train index) with label y in [0, classes), classes >= 2:
   (y + 1 + rng_below(seed, UNL_STREAM_RELABEL, index, classes - 1)) mod classes. A pure function. */
int unl_random_label(uint64_t seed, int64_t index, int y, int classes);

/* The method's name ("sfron", ...). */
const char *unl_method_name(Method m);
/* One knob a run's method reads, for the report: its dotted key and resolved value. */
typedef enum UnlKnobKind { UNL_KNOB_NUM, UNL_KNOB_INT, UNL_KNOB_TEXT } UnlKnobKind;
typedef struct UnlKnob {
    const char *key;      /* "unlearn.lr", "seed", ... (static storage) */
    UnlKnobKind kind;
    double num;           /* NUM */
    int64_t i;            /* INT (and BOOL as 0/1) */
    const char *text;     /* TEXT: an enum value's name (static storage) */
} UnlKnob;
#define UNL_MAX_KNOBS 40
/* Local. Fills out[0..UNL_MAX_KNOBS) with the knobs this run's method reads (a knob read through unl_knob's
   fallback shows the value used) and returns their count. */
int unl_knobs(const Unlearner *u, const Config *cfg, UnlKnob *out);

#endif
