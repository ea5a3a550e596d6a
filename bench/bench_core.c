/*
 * bench_core.c - issue 2's core benchmarks, C side. bench/bench_torch.py times the same cases with the same shapes
 * in PyTorch and bench/run_bench.sh joins both into one `bench ...` line per case (see docs/benchmarks.md).
 *
 *   build/bench/bench_core [--threads N] [--group all|linear|conv|fmnist|dit] [--reps R] [--warmup W]
 *                          [--step-reps R] [--profile] [--case SUBSTRING]
 *
 * Cases (the case name ends in _t<threads>; keep them in step with bench_torch.py's CASES):
 *   linear_*   op_linear with bias, x [M, K] -> [M, N], forward + backward (dx, dW, db), next to the raw kern_sgemm
 *              time of the same three GEMMs: y = x W^T (M, N, K), dx = dy W (M, K, N), dW = dy^T x (N, K, M).
 *   conv_*     op_conv2d 3x3 pad 1 stride 1, forward + backward, next to the raw kern_sgemm time of the conv written
 *              as whole-batch GEMMs with P = B*H*W and Kc = Cin*9:  y = W[Cout, Kc] cols[Kc, P];
 *              dW = dy[Cout, P] cols^T;  dcols = W^T dy  (the last only when x needs a gradient).
 *   fmnist_step_b128   model "fmnist-cnn" 1x28x28, 10 classes: zero grads, forward, mean cross-entropy,
 *              backward, SGD (lr 0.01, momentum 0.9).
 *   fmnist_eval_b512   the same model in evaluation mode, forward only (no tape records, BatchNorm on running
 *              statistics), batch 512: what `unlearn eval` and the end-of-run evaluations do per batch.
 *   dit_s2_step_b8     model "dit" hidden 384, depth 12, 6 heads, patch 2, 4x32x32 (256 tokens), 1000 classes:
 *              zero grads, forward, MSE to a fixed random target over the whole output, backward, AdamW
 *              (lr 1e-4, weight decay 0, DiT's settings).
 * Output (stdout), per case:
 *   c <case> ms=<median> gflops=<rate> flops=<count> [sgemm_ms=<median> sgemm_gflops=<rate>]
 * gflops counts the GEMM-like work only (linear, conv, matmul, attention: 2 flops per multiply-add, backward
 * products included); for the steps it is summed from the tape's nodes (step_flops).
 * --case runs only the cases whose name contains SUBSTRING (for perf record on one case).
 * --profile adds, for the two steps, per-op-kind times measured through the tape (prof_step):
 *   prof <case> <what> ...
 *
 * Timing: wall clock (ul_now), `warmup` untimed runs, then the median of `reps` timed runs; a layer and its raw
 * GEMMs are timed alternately, run by run (time_pair_median_ms). Every case touches its memory during warmup, so
 * page faults are not timed. The thread count is set with kern_set_threads
 * (OpenBLAS and OpenMP).
 */
#include "kern.h"
#include "model.h"
#include "optim.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Opts {
    int threads;
    int reps, warmup;        /* layer cases */
    int step_reps;           /* step cases (warmup 1) */
    bool profile;
    const char *group;
    const char *only;        /* run only the cases whose name contains this, or NULL */
} Opts;

#define MAX_REPS 64

/* ------------------------------------------------------------------------------------------------ helpers */

static void fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * rng_uniform(seed, 0, i);
}

static float *new_buf(size_t n, uint64_t seed)
{
    float *p = UL_MALLOC(ul_mul_size(n, sizeof(float)));
    fill_uniform(p, n, seed, -1.0f, 1.0f);
    return p;
}

/* A malloc'd tensor (outside any arena), data uniform in [-1, 1), grad zeroed when with_grad. */
static Tensor *new_tensor(int ndim, const int *shape, uint64_t seed, bool with_grad)
{
    Tensor *t = UL_CALLOC(1, sizeof *t);
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof(int));
    t->n = tensor_numel(ndim, shape);
    t->data = new_buf(t->n, seed);
    t->grad = with_grad ? UL_CALLOC(t->n, sizeof(float)) : NULL;
    return t;
}

static void free_tensor(Tensor *t)
{
    if (!t) return;
    free(t->data);
    free(t->grad);
    free(t);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef void (*RunFn)(void *ctx);

/* Times fa(ctx) and fb(ctx) alternately (a, b, a, b, ...) after `warmup` runs of each, so that a load change on a
   shared machine hits both alike; returns the medians in ms. */
static void time_pair_median_ms(RunFn fa, RunFn fb, void *ctx, int warmup, int reps, double *ms_a, double *ms_b)
{
    double ta[MAX_REPS], tb[MAX_REPS];
    for (int r = 0; r < warmup; r++) fa(ctx), fb(ctx);
    for (int r = 0; r < reps; r++) {
        double t0 = ul_now();
        fa(ctx);
        double t1 = ul_now();
        fb(ctx);
        ta[r] = (t1 - t0) * 1e3;
        tb[r] = (ul_now() - t1) * 1e3;
    }
    *ms_a = median(ta, reps);
    *ms_b = median(tb, reps);
}

/* Runs fn(ctx) warmup + reps times; returns the median time of the timed runs in ms. */
static double time_median_ms(RunFn fn, void *ctx, int warmup, int reps)
{
    double t[MAX_REPS];
    for (int r = 0; r < warmup; r++) fn(ctx);
    for (int r = 0; r < reps; r++) {
        double t0 = ul_now();
        fn(ctx);
        t[r] = (ul_now() - t0) * 1e3;
    }
    return median(t, reps);
}

static void print_case(const Opts *o, const char *name, double ms, double flops, double sgemm_ms)
{
    printf("c %s_t%d ms=%.3f gflops=%.2f flops=%.6e", name, o->threads, ms, flops / (ms * 1e6), flops);
    if (sgemm_ms > 0) printf(" sgemm_ms=%.3f sgemm_gflops=%.2f", sgemm_ms, flops / (sgemm_ms * 1e6));
    printf("\n");
    fflush(stdout);
}

/* ------------------------------------------------------------------------------------------ linear layers */

typedef struct LinearCase {
    const char *name;
    int M, K, N;
} LinearCase;

typedef struct LinearCtx {
    Tape *tape;
    Tensor *x, *w, *b;
    /* raw GEMM operands */
    int M, K, N;
    float *X, *W, *Y, *dY, *dX, *dW;
} LinearCtx;

static void linear_op_run(void *p)
{
    LinearCtx *c = p;
    tape_reset(c->tape);
    Tensor *y = op_linear(c->tape, c->x, c->w, c->b);  /* [M, N] */
    tape_backward(c->tape, y, NULL);                      /* dy = 1 */
}

static void linear_gemm_run(void *p)
{
    LinearCtx *c = p;
    int M = c->M, K = c->K, N = c->N;
    kern_sgemm(false, true, M, N, K, 1.0f, c->X, K, c->W, K, 0.0f, c->Y, N);    /* y = x W^T   [M, N] */
    kern_sgemm(false, false, M, K, N, 1.0f, c->dY, N, c->W, K, 1.0f, c->dX, K); /* dx += dy W  [M, K] */
    kern_sgemm(true, false, N, K, M, 1.0f, c->dY, N, c->X, K, 1.0f, c->dW, K);  /* dW += dy^T x [N, K] */
}

static void bench_linear(const Opts *o, const LinearCase *lc)
{
    Arena arena;
    arena_init(&arena, (size_t)1 << 32);
    Tape tape;
    tape_init(&tape, &arena, 16);
    int M = lc->M, K = lc->K, N = lc->N;
    LinearCtx c = {.tape = &tape, .M = M, .K = K, .N = N};
    c.x = new_tensor(2, (int[]){M, K}, 1, true);
    c.w = new_tensor(2, (int[]){N, K}, 2, true);
    c.b = new_tensor(1, (int[]){N}, 3, true);
    c.X = new_buf((size_t)M * K, 4);
    c.W = new_buf((size_t)N * K, 5);
    c.Y = new_buf((size_t)M * N, 6);
    c.dY = new_buf((size_t)M * N, 7);
    c.dX = new_buf((size_t)M * K, 8);
    c.dW = new_buf((size_t)N * K, 9);
    double ms, gemm_ms;
    time_pair_median_ms(linear_op_run, linear_gemm_run, &c, o->warmup, o->reps, &ms, &gemm_ms);

    print_case(o, lc->name, ms, 3.0 * 2.0 * M * (double)N * K, gemm_ms);
    free(c.X), free(c.W), free(c.Y), free(c.dY), free(c.dX), free(c.dW);
    free_tensor(c.x), free_tensor(c.w), free_tensor(c.b);
    tape_free(&tape);
    arena_free(&arena);
}

/* ---------------------------------------------------------------------------------------------- conv layers */

typedef struct ConvCase {
    const char *name;
    int B, Cin, Cout, H, W;  /* 3x3, pad 1, stride 1: output [B, Cout, H, W] */
    bool bias, x_grad;       /* x_grad false: an input layer (no dx, as in training) */
} ConvCase;

typedef struct ConvCtx {
    Tape *tape;
    Tensor *x, *w, *b;
    bool x_grad;
    int Cout, Kc, P;
    float *Wm, *cols, *Y, *dY, *dW, *dcols;
} ConvCtx;

static void conv_op_run(void *p)
{
    ConvCtx *c = p;
    tape_reset(c->tape);
    Tensor *y = op_conv2d(c->tape, c->x, c->w, c->b, 1, 1);  /* [B, Cout, H, W] */
    tape_backward(c->tape, y, NULL);
}

static void conv_gemm_run(void *p)
{
    ConvCtx *c = p;
    int M = c->Cout, Kc = c->Kc, P = c->P;
    kern_sgemm(false, false, M, P, Kc, 1.0f, c->Wm, Kc, c->cols, P, 0.0f, c->Y, P);   /* y = W cols   [Cout, P] */
    kern_sgemm(false, true, M, Kc, P, 1.0f, c->dY, P, c->cols, P, 1.0f, c->dW, Kc);   /* dW += dy cols^T */
    if (c->x_grad)
        kern_sgemm(true, false, Kc, P, M, 1.0f, c->Wm, Kc, c->dY, P, 0.0f, c->dcols, P); /* dcols = W^T dy */
}

static void bench_conv(const Opts *o, const ConvCase *cc)
{
    Arena arena;
    arena_init(&arena, (size_t)1 << 33);
    Tape tape;
    tape_init(&tape, &arena, 16);
    ConvCtx c = {.tape = &tape, .x_grad = cc->x_grad, .Cout = cc->Cout, .Kc = cc->Cin * 9,
                 .P = cc->B * cc->H * cc->W};
    c.x = new_tensor(4, (int[]){cc->B, cc->Cin, cc->H, cc->W}, 1, cc->x_grad);
    c.w = new_tensor(4, (int[]){cc->Cout, cc->Cin, 3, 3}, 2, true);
    c.b = cc->bias ? new_tensor(1, (int[]){cc->Cout}, 3, true) : NULL;
    size_t kp = (size_t)c.Kc * c.P, mp = (size_t)c.Cout * c.P;
    c.Wm = new_buf((size_t)c.Cout * c.Kc, 4);
    c.cols = new_buf(kp, 5);
    c.Y = new_buf(mp, 6);
    c.dY = new_buf(mp, 7);
    c.dW = new_buf((size_t)c.Cout * c.Kc, 8);
    c.dcols = cc->x_grad ? new_buf(kp, 9) : NULL;
    double ms, gemm_ms;
    time_pair_median_ms(conv_op_run, conv_gemm_run, &c, o->warmup, o->reps, &ms, &gemm_ms);

    double flops = (cc->x_grad ? 3.0 : 2.0) * 2.0 * cc->Cout * (double)c.Kc * c.P;
    print_case(o, cc->name, ms, flops, gemm_ms);
    free(c.Wm), free(c.cols), free(c.Y), free(c.dY), free(c.dW), free(c.dcols);
    free_tensor(c.x), free_tensor(c.w), free_tensor(c.b);
    tape_free(&tape);
    arena_free(&arena);
}

/* ---------------------------------------------------------------------------------------- training steps */

typedef struct StepCtx {
    const char *name;
    Model *m;
    Optim opt;
    double lr;
    Arena arena;
    Tape tape;
    bool generative;       /* MSE to target (dit) instead of cross-entropy to labels */
    int xshape[4];
    float *x;              /* [B, C, H, W] */
    int *labels;           /* [B] */
    float *timesteps;      /* [B] (generative) */
    float *target;         /* [B, out_channels, H, W] (generative) */
    float *seed;           /* [B] = 1/B: tape_backward's seed, the batch mean */
    Tensor *loss;          /* of the last step, arena-owned */
} StepCtx;

/* zero grads, forward, loss (per-sample [B]) */
static Tensor *step_forward(StepCtx *s)
{
    Model *m = s->m;
    tape_reset(&s->tape);
    memset(m->grad, 0, m->params.total * sizeof(float));
    Tensor *x = tensor_wrap(s->tape.arena, s->x, NULL, 4, s->xshape);
    if (!s->generative) {
        Tensor *logits = model_forward(m, &s->tape, x, NULL);                     /* [B, classes] */
        return op_cross_entropy(&s->tape, logits, s->labels);                     /* [B] */
    }
    ModelCond cond = {.timesteps = s->timesteps, .labels = s->labels, .seed = 1};
    Tensor *out = model_forward(m, &s->tape, x, &cond);                          /* [B, out, H, W] */
    Tensor *tgt = tensor_wrap(s->tape.arena, s->target, NULL, 4, out->shape);
    return op_mse(&s->tape, out, tgt, true);                                      /* [B] */
}

static void step_run(void *p)
{
    StepCtx *s = p;
    s->loss = step_forward(s);
    tape_backward(&s->tape, s->loss, s->seed);
    optim_step(&s->opt, s->m->param, s->m->grad, s->lr);
}

static void step_init(StepCtx *s, const char *name, const ModelSpec *spec, int B, const OptimConfig *oc)
{
    memset(s, 0, sizeof *s);
    s->name = name;
    UlError err = {0};
    s->m = model_create(spec, &err);
    UL_CHECK(s->m, "bench %s: %s", name, err.msg);
    model_init(s->m, 1234);
    const ModelSpec *r = &s->m->spec;
    optim_init(&s->opt, oc, s->m->params.total);
    s->lr = oc->lr;
    arena_init(&s->arena, (size_t)1 << 34);
    tape_init(&s->tape, &s->arena, 8192);
    s->generative = strcmp(r->arch, "dit") == 0;
    s->xshape[0] = B, s->xshape[1] = r->in_channels, s->xshape[2] = r->height, s->xshape[3] = r->width;
    size_t nx = tensor_numel(4, s->xshape);
    s->x = UL_MALLOC(nx * sizeof(float));
    for (size_t i = 0; i < nx; i++) s->x[i] = rng_normal(11, 0, i);
    s->labels = UL_MALLOC((size_t)B * sizeof(int));
    s->timesteps = UL_MALLOC((size_t)B * sizeof(float));
    s->seed = UL_MALLOC((size_t)B * sizeof(float));
    for (int i = 0; i < B; i++) {
        s->labels[i] = (int)(rng_u64(12, 0, (uint64_t)i) % (uint64_t)r->num_classes);
        s->timesteps[i] = (float)(rng_u64(13, 0, (uint64_t)i) % 1000);
        s->seed[i] = 1.0f / (float)B;
    }
    if (s->generative) {
        size_t nt = (size_t)B * r->out_channels * r->height * r->width;
        s->target = UL_MALLOC(nt * sizeof(float));
        for (size_t i = 0; i < nt; i++) s->target[i] = rng_normal(14, 0, i);
    }
}

static void step_free(StepCtx *s)
{
    tape_free(&s->tape);
    arena_free(&s->arena);
    optim_free(&s->opt);
    model_free(s->m);
    free(s->x), free(s->labels), free(s->timesteps), free(s->target), free(s->seed);
}

/* GEMM-like flops of one recorded node: forward, and backward given which inputs take gradients. */
static void node_flops(const TapeNode *nd, double *fwd, double *bwd)
{
    *fwd = *bwd = 0;
    const Tensor *x = nd->in[0], *y = nd->in[1], *out = nd->out;
    int ngrad = 0;
    switch (nd->op) {
    case OP_LINEAR:  /* x [.., K], w [N, K] */
        *fwd = 2.0 * (double)out->n * x->shape[x->ndim - 1];
        ngrad = (x->grad != NULL) + (y->grad != NULL);
        break;
    case OP_CONV2D:  /* w [Cout, Cin, kh, kw] */
        *fwd = 2.0 * (double)out->n * y->shape[1] * y->shape[2] * y->shape[3];
        ngrad = (x->grad != NULL) + (y->grad != NULL);
        break;
    case OP_MATMUL: { /* a [.., M, K] or [.., K, M]; out [.., M, N] */
        int M = out->shape[out->ndim - 2];
        int K = x->shape[x->ndim - 2] == M ? x->shape[x->ndim - 1] : x->shape[x->ndim - 2];
        *fwd = 2.0 * (double)out->n * K;
        ngrad = (x->grad != NULL) + (y->grad != NULL);
        break;
    }
    case OP_ATTENTION: { /* q, k, v [B, T, C]: S = q k^T and O = P v per head: 2 * 2*B*T*T*C */
        double B = x->shape[0], T = x->shape[1], C = x->shape[2];
        *fwd = 4.0 * B * T * T * C;
        ngrad = 2;  /* dP = dO v^T, dv = P^T dO, dq = dS k, dk = dS^T q: twice the forward */
        break;
    }
    default:
        return;
    }
    *bwd = *fwd * ngrad;
}

static double step_flops(const Tape *t, bool with_backward)
{
    double total = 0;
    for (int i = 0; i < t->count; i++) {
        double f, b;
        node_flops(&t->nodes[i], &f, &b);
        total += f + (with_backward ? b : 0.0);
    }
    return total;
}

typedef struct OpProf {
    int op, count;
    double fwd_ms, bwd_ms, fwd_flops, bwd_flops;
} OpProf;

static int cmp_prof(const void *a, const void *b)
{
    const OpProf *x = a, *y = b;
    double tx = x->fwd_ms + x->bwd_ms, ty = y->fwd_ms + y->bwd_ms;
    return (tx < ty) - (tx > ty);
}

/*
 * Per-op-kind times of one step, measured through the tape: the step's forward runs as usual (timed as a whole),
 * then every recorded node's fast forward is run again, timed one by one (the ops are pure functions of their
 * inputs and attrs; BatchNorm updates its running statistics once more, which does not matter here); then the
 * backward sweep of tape_backward is run node by node with a timer around each op's backward; then the optimizer.
 * "fwd overhead" = the whole forward minus the replayed nodes: constructors (arena allocation, zeroing every
 * output's gradient buffer), the ops that record no node, and the gradient zeroing of the model.
 */
static void prof_step(const Opts *o, StepCtx *s)
{
    Tape *t = &s->tape;
    double t0 = ul_now();
    s->loss = step_forward(s);
    double fwd_whole = (ul_now() - t0) * 1e3;

    OpProf prof[OP__COUNT];
    memset(prof, 0, sizeof prof);
    for (int k = 0; k < OP__COUNT; k++) prof[k].op = k;
    double replay = 0;
    for (int i = 0; i < t->count; i++) {
        TapeNode *nd = &t->nodes[i];
        double f, b;
        node_flops(nd, &f, &b);
        double a = ul_now();
        op_table[nd->op].forward(nd);
        double dt = (ul_now() - a) * 1e3;
        prof[nd->op].fwd_ms += dt;
        prof[nd->op].count++;
        prof[nd->op].fwd_flops += f;
        prof[nd->op].bwd_flops += b;
        replay += dt;
    }

    /* tape_backward, node by node (the same sweep: seed, then every recorded node in reverse) */
    double b0 = ul_now();
    for (size_t i = 0; i < s->loss->n; i++) s->loss->grad[i] += s->seed[i];
    for (int i = t->count - 1; i >= 0; i--) {
        TapeNode *nd = &t->nodes[i];
        if (!nd->out->grad) continue;
        double a = ul_now();
        op_table[nd->op].backward(nd);
        prof[nd->op].bwd_ms += (ul_now() - a) * 1e3;
    }
    double bwd_whole = (ul_now() - b0) * 1e3;
    double o0 = ul_now();
    optim_step(&s->opt, s->m->param, s->m->grad, s->lr);
    double opt_ms = (ul_now() - o0) * 1e3;

    double total = fwd_whole + bwd_whole + opt_ms;
    printf("prof %s_t%d step_ms=%.1f fwd_ms=%.1f (nodes %.1f, overhead %.1f) bwd_ms=%.1f optim_ms=%.1f "
           "nodes=%d arena_MB=%.0f\n",
           s->name, o->threads, total, fwd_whole, replay, fwd_whole - replay, bwd_whole, opt_ms, t->count,
           (double)arena_high_water(&s->arena) / 1048576.0);
    qsort(prof, OP__COUNT, sizeof prof[0], cmp_prof);
    for (int k = 0; k < OP__COUNT; k++) {
        const OpProf *p = &prof[k];
        if (p->count == 0) continue;
        double ms = p->fwd_ms + p->bwd_ms;
        printf("prof %s_t%d op=%-14s n=%-4d fwd_ms=%8.2f bwd_ms=%8.2f share=%5.1f%%", s->name, o->threads,
               op_table[p->op].name, p->count, p->fwd_ms, p->bwd_ms, 100.0 * ms / total);
        if (p->fwd_flops > 0)
            printf(" fwd_gflops=%.1f bwd_gflops=%.1f", p->fwd_flops / (p->fwd_ms * 1e6),
                   p->bwd_ms > 0 ? p->bwd_flops / (p->bwd_ms * 1e6) : 0.0);
        printf("\n");
    }
    fflush(stdout);
}

/* forward only, evaluation mode: logits of the batch */
static void eval_run(void *p)
{
    StepCtx *s = p;
    tape_reset(&s->tape);
    s->tape.training = false;
    s->tape.record = false;
    Tensor *x = tensor_wrap(s->tape.arena, s->x, NULL, 4, s->xshape);
    s->loss = model_forward(s->m, &s->tape, x, NULL); /* [B, classes] */
}

static void bench_eval(const Opts *o, const char *name, const ModelSpec *spec, int B)
{
    StepCtx s;
    OptimConfig oc = optim_config_default(OPTIM_SGD);
    step_init(&s, name, spec, B, &oc);
    double ms = time_median_ms(eval_run, &s, 1, o->step_reps);
    float l0 = s.loss->data[0];
    UL_CHECK(isfinite(l0), "bench %s: non-finite logit %g", name, (double)l0);
    s.tape.training = true, s.tape.record = true; /* a recorded step, to count the forward's GEMM-like work */
    step_run(&s);
    print_case(o, name, ms, step_flops(&s.tape, false), 0);
    step_free(&s);
}

static void bench_step(const Opts *o, const char *name, const ModelSpec *spec, int B, const OptimConfig *oc)
{
    StepCtx s;
    step_init(&s, name, spec, B, oc);
    double ms = time_median_ms(step_run, &s, 1, o->step_reps);
    float l0 = s.loss->data[0];
    UL_CHECK(isfinite(l0), "bench %s: non-finite loss %g", name, (double)l0);
    double flops = step_flops(&s.tape, true);
    print_case(o, name, ms, flops, 0);
    if (o->profile) prof_step(o, &s);
    step_free(&s);
}

/* ------------------------------------------------------------------------------------------------- main */

static const LinearCase LINEAR_CASES[] = {
    {"linear_b256_784x1024", 256, 784, 1024},
    {"linear_b256_1024x1024", 256, 1024, 1024},
    {"linear_b256_3136x128", 256, 3136, 128},
    {"linear_dit_qkv_2048x384x1152", 2048, 384, 1152},   /* DiT-S/2 batch 8: 8 x 256 tokens */
    {"linear_dit_fc2_2048x1536x384", 2048, 1536, 384},
};

static const ConvCase CONV_CASES[] = {
    {"conv_fmnist1_b128_1x32_28", 128, 1, 32, 28, 28, false, false},
    {"conv_fmnist2_b128_32x32_28", 128, 32, 32, 28, 28, false, true},
    {"conv_fmnist3_b128_32x64_14", 128, 32, 64, 14, 14, false, true},
    {"conv_fmnist4_b128_64x64_14", 128, 64, 64, 14, 14, false, true},
    {"conv_unet_b8_128x128_32", 8, 128, 128, 32, 32, true, true},
    {"conv_unet_b8_256x256_16", 8, 256, 256, 16, 16, true, true},
};

static bool group_on(const Opts *o, const char *g) { return strcmp(o->group, "all") == 0 || strcmp(o->group, g) == 0; }
static bool case_on(const Opts *o, const char *name) { return !o->only || strstr(name, o->only) != NULL; }

static int parse_int(const char *flag, const char *v, int lo, int hi)
{
    char *end = NULL;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || x < lo || x > hi) {
        fprintf(stderr, "bench_core: %s needs an integer in [%d, %d], got '%s'\n", flag, lo, hi, v ? v : "");
        exit(2);
    }
    return (int)x;
}

int main(int argc, char **argv)
{
    Opts o = {.threads = 2, .reps = 7, .warmup = 2, .step_reps = 5, .profile = false, .group = "all"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--threads") == 0) o.threads = parse_int(a, v, 1, 1024), i++;
        else if (strcmp(a, "--reps") == 0) o.reps = parse_int(a, v, 1, MAX_REPS), i++;
        else if (strcmp(a, "--warmup") == 0) o.warmup = parse_int(a, v, 0, 100), i++;
        else if (strcmp(a, "--step-reps") == 0) o.step_reps = parse_int(a, v, 1, MAX_REPS), i++;
        else if (strcmp(a, "--profile") == 0) o.profile = true;
        else if (strcmp(a, "--group") == 0 && v) o.group = v, i++;
        else if (strcmp(a, "--case") == 0 && v) o.only = v, i++;
        else {
            fprintf(stderr, "usage: bench_core [--threads N] [--group all|linear|conv|fmnist|dit] [--reps R] "
                            "[--warmup W] [--step-reps R] [--profile] [--case SUBSTRING]\n");
            return 2;
        }
    }
    const char *groups[] = {"all", "linear", "conv", "fmnist", "dit"};
    bool known = false;
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) known |= strcmp(o.group, groups[i]) == 0;
    if (!known) {
        fprintf(stderr, "bench_core: unknown group '%s' (all, linear, conv, fmnist, dit)\n", o.group);
        return 2;
    }
    kern_set_threads(o.threads);

    if (group_on(&o, "linear"))
        for (size_t i = 0; i < sizeof LINEAR_CASES / sizeof LINEAR_CASES[0]; i++)
            if (case_on(&o, LINEAR_CASES[i].name)) bench_linear(&o, &LINEAR_CASES[i]);
    if (group_on(&o, "conv"))
        for (size_t i = 0; i < sizeof CONV_CASES / sizeof CONV_CASES[0]; i++)
            if (case_on(&o, CONV_CASES[i].name)) bench_conv(&o, &CONV_CASES[i]);
    if (group_on(&o, "fmnist") && case_on(&o, "fmnist_step_b128")) {
        ModelSpec spec = {.arch = "fmnist-cnn", .in_channels = 1, .height = 28, .width = 28, .num_classes = 10};
        OptimConfig oc = optim_config_default(OPTIM_SGD);
        oc.lr = 0.01, oc.momentum = 0.9;
        bench_step(&o, "fmnist_step_b128", &spec, 128, &oc);
    }
    if (group_on(&o, "fmnist") && case_on(&o, "fmnist_eval_b512")) {
        ModelSpec spec = {.arch = "fmnist-cnn", .in_channels = 1, .height = 28, .width = 28, .num_classes = 10};
        bench_eval(&o, "fmnist_eval_b512", &spec, 512);
    }
    if (group_on(&o, "dit") && case_on(&o, "dit_s2_step_b8")) {
        ModelSpec spec = {.arch = "dit", .in_channels = 4, .height = 32, .width = 32, .num_classes = 1000,
                          .width_ch = 384, .depth = 12, .heads = 6, .patch = 2};
        OptimConfig oc = optim_config_default(OPTIM_ADAMW);
        oc.lr = 1e-4, oc.weight_decay = 0.0;
        bench_step(&o, "dit_s2_step_b8", &spec, 8, &oc);
    }
    return 0;
}
