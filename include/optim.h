/*
 * optim.h - optimizers, gradient utilities and schedules over ONE flat float buffer (STYLE habit 2).
 *
 * Parameters, gradients and every optimizer state are flat buffers of the same length n (ParamTable.total, see
 * tensor.h). Every function here is one loop over that length (OpenMP-parallel for large n), allocates nothing
 * after optim_init, and is LOCAL: no communication. In data-parallel runs every rank holds the full, already
 * allreduced gradient and calls these functions identically, so the replicas stay bit-identical.
 *
 * The semantics are PyTorch 1.13's (torch.optim.SGD / Adam / AdamW with foreach=False, and
 * torch.nn.utils.clip_grad_norm_), as the SFR-on reference code runs them (../shared/reference/sfr-on.md §1.11):
 *
 *   SGD   d = g + wd*theta;  buf = mu*buf + d (buf = d on the first step);
 *         d = nesterov ? d + mu*buf : buf;  theta -= lr*d.               (momentum 0: no buffer, theta -= lr*d)
 *   Adam  k += 1 (EVERY call);  g' = g + wd*theta (L2 penalty in the gradient);
 *         m = b1*m + (1-b1)*g';  v = b2*v + (1-b2)*g'^2;
 *         denom = sqrt(v)/sqrt(1-b2^k) + eps;  theta -= (lr/(1-b1^k)) * m/denom.
 *   AdamW k += 1;  theta *= 1 - lr*wd (decoupled);  then Adam's update with g' = g.
 *
 * Scalars (lr, betas, bias corrections, step size) are computed in double, as PyTorch does in Python, and rounded
 * to float once before the float32 elementwise loop. A zero (masked) gradient does NOT freeze a parameter: weight
 * decay, the momentum buffer and Adam's moments keep moving it (sfr-on.md §1.11, §7.8).
 *
 * One SFR-on forget step, in the reference order (sfr-on.md §1.11):
 *     // grad = d(-alpha_t * L_forget)/d(theta) from tape_backward
 *     grad_apply_mask(grad, mask, n);                       // g *= M
 *     double norm = grad_clip_global(grad, n, max_norm);    // global L2 clip, returns the pre-clip norm
 *     double lr = sched_value(SCHED_COSINE, lr0, t, T);
 *     optim_step(&opt, param, grad, lr);                     // shares opt's state with the retain steps
 *
 * Checkpoints: the whole optimizer state is Optim.step plus the buffers Optim.m and Optim.v (NULL when the kind
 * has none, see Optim). Save them as they are; restore by optim_init with the same config and n, then copy the
 * buffers back and set step.
 */
#ifndef UL_OPTIM_H
#define UL_OPTIM_H

#include "common.h"

typedef enum OptimKind { OPTIM_SGD, OPTIM_ADAM, OPTIM_ADAMW, OPTIM_KIND_COUNT } OptimKind;

/* Hyperparameters. Doubles so that the per-step scalars match PyTorch's Python-float arithmetic exactly. */
typedef struct OptimConfig {
    OptimKind kind;
    double lr;            /* base learning rate; informational: optim_step takes the lr of each step */
    double momentum;      /* SGD only, in [0, 1); 0 means plain SGD with no buffer */
    double weight_decay;  /* >= 0; SGD and Adam: L2 term in the gradient; AdamW: decoupled decay */
    double beta1, beta2;  /* Adam/AdamW only, each in [0, 1) */
    double eps;           /* Adam/AdamW only, > 0; added after sqrt(v_hat) */
    bool nesterov;        /* SGD only; requires momentum > 0 (as PyTorch) */
} OptimConfig;

/* The optimizer and its state. All fields are public so checkpoints can save and restore them. */
typedef struct Optim {
    OptimConfig cfg;
    size_t n;             /* length of every flat buffer passed to optim_step */
    float *m;             /* [n] SGD momentum buffer (NULL when momentum == 0) or Adam exp_avg; owned */
    float *v;             /* [n] Adam exp_avg_sq; NULL for SGD; owned */
    int64_t step;         /* optim_step calls so far; Adam's bias-correction count k after a call equals step.
                             SGD: step == 0 means the buffer is not yet initialised (the first step sets buf = d) */
} Optim;

/* PyTorch's constructor defaults for `kind`: SGD lr 0.01 (PyTorch has no default; this is the SFR-on CIFAR-10 one),
   momentum 0, wd 0; Adam lr 1e-3, betas (0.9, 0.999), eps 1e-8, wd 0; AdamW the same with wd 1e-2. */
OptimConfig optim_config_default(OptimKind kind);
/* Validates the ranges documented in OptimConfig; on failure fills err naming the field (prefix `where`, e.g.
   the config file and key) and returns false. */
bool optim_config_check(const OptimConfig *cfg, const char *where, UlError *err);

/* Allocates zeroed, 64-byte-aligned state for buffers of n floats (m and/or v per the kind) and sets step = 0.
   Fatal on an invalid cfg (validate user input with optim_config_check first) or when out of memory. */
void optim_init(Optim *o, const OptimConfig *cfg, size_t n);
/* One optimizer step with learning rate lr (the caller evaluates schedules):
   param [n] is updated in place; grad [n] is read only (weight decay is applied on the fly); o->step += 1.
   No allocation; deterministic for a given thread count. */
void optim_step(Optim *o, float *param, const float *grad, double lr);
/* Frees the state buffers; o may be reinitialised afterwards. */
void optim_free(Optim *o);

/* "sgd", "adam", "adamw" (case-insensitive) -> OptimKind, or -1 for an unknown name. */
int optim_kind_from_name(const char *name);
/* The canonical lowercase name of a kind ("sgd", "adam", "adamw"). */
const char *optim_kind_name(OptimKind kind);

/* ---- gradient utilities (all in place, local) ---- */

/* sqrt(sum_i g[i]^2) over the whole buffer (zeros included), accumulated in double. g [n]. */
double grad_global_norm(const float *g, size_t n);
/* torch.nn.utils.clip_grad_norm_(max_norm, norm_type=2) over the whole buffer g [n]: with norm =
   grad_global_norm(g, n) and c = max_norm / (norm + 1e-6) (in double), multiplies g by (float)c only when c < 1.
   Returns the norm BEFORE clipping. max_norm must be > 0. A NaN/Inf norm leaves g untouched (and is returned) so
   the caller's finiteness check sees it. */
double grad_clip_global(float *g, size_t n, double max_norm);
/* g[i] *= mask[i] (mask [n] holds 0/1). */
void grad_apply_mask(float *g, const float *mask, size_t n);

/* ---- schedules (pure functions, used for the learning rate and for the forget scale alpha_t) ---- */

typedef enum SchedKind { SCHED_CONSTANT, SCHED_LINEAR, SCHED_COSINE, SCHED_KIND_COUNT } SchedKind;

/* The value at step t of a schedule from v0 over T steps (T >= 1, t >= 0; t > T is treated as t = T):
     constant  v0
     linear    v0 * (1 - t/T)                      (reaches 0 at t = T)
     cosine    v0 * (1 + cos(pi*t/T)) / 2          (torch CosineAnnealingLR closed form, eta_min 0)
   Fatal on T < 1, t < 0 or an unknown kind. */
double sched_value(SchedKind kind, double v0, int64_t t, int64_t T);
/* "constant", "linear", "cosine" (case-insensitive) -> SchedKind, or -1 for an unknown name. */
int sched_kind_from_name(const char *name);
const char *sched_kind_name(SchedKind kind);

#endif
