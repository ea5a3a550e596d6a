/*
 * ops_norm.c - normalisation layers, softmax and the per-sample losses (contracts in include/ops.h).
 *
 * Fast kernels: statistics in ONE pass over the data (sums of x and x^2 accumulated in double: a float x and its
 * square are exact in double, so E[x^2] - E[x]^2 only cancels when |mean| / std approaches 1e5), then one pass
 * that normalises with precomputed per-channel/per-row factors (no divisions in inner loops). Backward makes one
 * reduction pass (sum g, sum g * (x - mean)) and one pass that applies dx = A g + B (x - mean) + C.
 * OpenMP runs across channels, groups or rows once a tensor has NORM_PAR_MIN elements.
 *
 * The _ref twins are the textbook versions: two-pass mean and variance in double and the chain rule written out
 * term by term (d var, d mean, then dx), so they share no algebra with the fast closed forms.
 *
 * Backward ACCUMULATES into in[i]->grad wherever in[i] && in[i]->grad. Caller pointers are never kept past the
 * constructor: cross_entropy's labels are copied into the arena; BatchNorm's running statistics are read
 * (eval) or updated in place (training) during the constructor's forward only.
 */
#include "ops.h"

#include <math.h>
#include <string.h>

/* Below this many elements a kernel stays on one thread. */
#define NORM_PAR_MIN 32768
/* LayerNorm's backward splits the rows into this many contiguous chunks (fewer when there are fewer rows); each
   chunk sums its own gamma/beta partials, which are added in chunk order: the result does not depend on the
   thread count. */
#define LN_CHUNKS 16

static void norm_check_param(const char *op, const char *what, const Tensor *p, int C)
{
    char a[64];
    UL_CHECK(p, "op_%s: %s is NULL", op, what);
    UL_CHECK(p->n == (size_t)C, "op_%s: %s must have %d elements (one per channel), got %s", op, what, C,
             tensor_shape_str(p, a, sizeof a));
}

/* ------------------------------------------------------------------ batchnorm2d
 *
 * Training: per-channel mean and biased variance over (B, H, W) normalise the batch; running_mean and running_var
 * move towards the batch mean and the UNBIASED variance (var * N / (N - 1)) with weight momentum (PyTorch's rule).
 * With t->allreduce_sum set, the sums (and N) are taken over the global batch of all ranks (synchronised
 * BatchNorm), so the result does not depend on the rank count; forward then makes one collective call and backward
 * (when x needs a gradient) one more, in node order on every rank.
 * Eval: the running statistics normalise, nothing is updated, and nothing is collective.
 * Gradients of gamma and beta are this rank's contributions (summed across ranks by the gradient allreduce);
 * x's gradient uses the global sums, so it is the exact derivative of the global loss.
 */

typedef struct BatchNormAttr {
    float *running_mean, *running_var;             /* [C] caller-owned; used during the forward call only */
    float momentum, eps;
    bool training;                                 /* batch statistics (true) or running statistics */
    void (*allreduce_sum)(double *buf, size_t n);  /* the tape's cross-rank sum, or NULL */
    double count;                                  /* N: values per channel over the global batch */
    float *mean, *invstd;                          /* [C] the statistics that normalised, saved for backward */
    double *buf;                                   /* [3C + 1] scratch for sums that cross ranks */
} BatchNormAttr;

Tensor *op_batchnorm2d(Tape *t, Tensor *x, Tensor *gamma, Tensor *beta, float *running_mean, float *running_var,
                       float momentum, float eps)
{
    char s[64];
    UL_CHECK(x, "op_batchnorm2d: x is NULL");
    UL_CHECK(x->ndim == 4, "op_batchnorm2d: x must be [B, C, H, W], got %s", tensor_shape_str(x, s, sizeof s));
    int C = x->shape[1];
    norm_check_param("batchnorm2d", "gamma", gamma, C);
    norm_check_param("batchnorm2d", "beta", beta, C);
    UL_CHECK(running_mean && running_var, "op_batchnorm2d: running_mean and running_var must not be NULL");
    UL_CHECK(momentum >= 0.0f && momentum <= 1.0f, "op_batchnorm2d: momentum %g outside [0, 1]", (double)momentum);
    UL_CHECK(eps > 0.0f, "op_batchnorm2d: eps must be positive, got %g", (double)eps);
    BatchNormAttr *a = arena_alloc(t->arena, sizeof *a);
    a->running_mean = running_mean;
    a->running_var = running_var;
    a->momentum = momentum;
    a->eps = eps;
    a->training = t->training;
    a->allreduce_sum = t->allreduce_sum;
    a->count = 0.0;
    a->mean = arena_alloc(t->arena, ul_mul_size((size_t)C, sizeof(float)));
    a->invstd = arena_alloc(t->arena, ul_mul_size((size_t)C, sizeof(float)));
    a->buf = arena_alloc(t->arena, ul_mul_size(ul_add_size(ul_mul_size(3, (size_t)C), 1), sizeof(double)));
    Tensor *in[3] = {x, gamma, beta};
    Tensor *out = tensor_new(t->arena, 4, x->shape, tape_wants_grad(t, in, 3));
    tape_apply(t, OP_BATCHNORM2D, out, in, 3, a);
    return out;
}

/* From the global sums and count: the saved statistics and the running-statistic update (training). */
static void bn_finish_stats(BatchNormAttr *a, int C, const double *mean, const double *var)
{
    double N = a->count, m = a->momentum;
    for (int c = 0; c < C; c++) {
        a->mean[c] = (float)mean[c];
        a->invstd[c] = (float)(1.0 / sqrt(var[c] + (double)a->eps));
        a->running_mean[c] = (float)((1.0 - m) * a->running_mean[c] + m * mean[c]);
        a->running_var[c] = (float)((1.0 - m) * a->running_var[c] + m * var[c] * N / (N - 1.0));
    }
}

static void bn_eval_stats(BatchNormAttr *a, int C)
{
    for (int c = 0; c < C; c++) {
        a->mean[c] = a->running_mean[c];
        a->invstd[c] = (float)(1.0 / sqrt((double)a->running_var[c] + (double)a->eps));
    }
}

/* x [B, C, H, W] -> out [B, C, H, W] */
void op_batchnorm2d_forward(TapeNode *node)
{
    BatchNormAttr *a = node->attr;
    const Tensor *x = node->in[0];
    const float *gamma = node->in[1]->data, *beta = node->in[2]->data;
    int B = x->shape[0], C = x->shape[1];
    size_t S = (size_t)x->shape[2] * (size_t)x->shape[3];
    if (a->training) {
        double *sum = a->buf, *sq = a->buf + C;
#pragma omp parallel for if (x->n >= NORM_PAR_MIN) schedule(static)
        for (int c = 0; c < C; c++) {
            double s1 = 0.0, s2 = 0.0;
            for (int b = 0; b < B; b++) {
                const float *restrict xp = x->data + ((size_t)b * C + c) * S;
#pragma omp simd reduction(+ : s1, s2)
                for (size_t k = 0; k < S; k++) {
                    double v = xp[k];
                    s1 += v;
                    s2 += v * v;
                }
            }
            sum[c] = s1;
            sq[c] = s2;
        }
        a->buf[2 * C] = (double)B * (double)S;
        if (a->allreduce_sum) a->allreduce_sum(a->buf, 2 * (size_t)C + 1);
        a->count = a->buf[2 * C];
        UL_CHECK(a->count > 1.0, "op_batchnorm2d: training needs more than one value per channel (B*H*W = %.0f)",
                 a->count);
        for (int c = 0; c < C; c++) {  /* in place: sum -> mean, sq -> biased variance */
            double mu = sum[c] / a->count, var = sq[c] / a->count - mu * mu;
            sum[c] = mu;
            sq[c] = var > 0.0 ? var : 0.0;
        }
        bn_finish_stats(a, C, sum, sq);
    } else {
        bn_eval_stats(a, C);
    }
    float *out = node->out->data;
#pragma omp parallel for if (x->n >= NORM_PAR_MIN) schedule(static)
    for (int c = 0; c < C; c++) {
        float mu = a->mean[c], sc = gamma[c] * a->invstd[c], sh = beta[c];
        for (int b = 0; b < B; b++) {
            size_t off = ((size_t)b * C + c) * S;
            const float *restrict xp = x->data + off;
            float *restrict op = out + off;
#pragma omp simd
            for (size_t k = 0; k < S; k++) op[k] = (xp[k] - mu) * sc + sh;
        }
    }
}

void op_batchnorm2d_backward(TapeNode *node)
{
    BatchNormAttr *a = node->attr;
    const Tensor *x = node->in[0], *gamma = node->in[1], *beta = node->in[2];
    const float *g = node->out->grad;
    int B = x->shape[0], C = x->shape[1];
    size_t S = (size_t)x->shape[2] * (size_t)x->shape[3];
    bool par = x->n >= NORM_PAR_MIN;
    double *sg = a->buf, *sgc = a->buf + C;  /* per channel: sum g, sum g * (x - mean) */
#pragma omp parallel for if (par) schedule(static)
    for (int c = 0; c < C; c++) {
        double s1 = 0.0, s2 = 0.0, mu = a->mean[c];
        for (int b = 0; b < B; b++) {
            size_t off = ((size_t)b * C + c) * S;
            const float *restrict gp = g + off, *restrict xp = x->data + off;
#pragma omp simd reduction(+ : s1, s2)
            for (size_t k = 0; k < S; k++) {
                s1 += gp[k];
                s2 += (double)gp[k] * ((double)xp[k] - mu);
            }
        }
        sg[c] = s1;
        sgc[c] = s2;
        if (gamma->grad) gamma->grad[c] += (float)(s2 * a->invstd[c]);  /* sum g * xhat */
        if (beta->grad) beta->grad[c] += (float)s1;
    }
    if (!x->grad) return;
    if (a->training && a->allreduce_sum) a->allreduce_sum(a->buf, 2 * (size_t)C);
#pragma omp parallel for if (par) schedule(static)
    for (int c = 0; c < C; c++) {
        /* Training: dx = gamma invstd (g - mean(g) - xhat mean(g xhat)) = A g + Bc (x - mean) + Cc.
           Eval: the statistics are constants, dx = gamma invstd g. */
        double is = a->invstd[c], A = gamma->data[c] * is, Bc = 0.0, Cc = 0.0;
        if (a->training) {
            Bc = -A * is * is * sgc[c] / a->count;
            Cc = -A * sg[c] / a->count;
        }
        float fA = (float)A, fB = (float)Bc, fC = (float)Cc, mu = a->mean[c];
        for (int b = 0; b < B; b++) {
            size_t off = ((size_t)b * C + c) * S;
            const float *restrict gp = g + off, *restrict xp = x->data + off;
            float *restrict dx = x->grad + off;
#pragma omp simd
            for (size_t k = 0; k < S; k++) dx[k] += fA * gp[k] + fB * (xp[k] - mu) + fC;
        }
    }
}

void op_batchnorm2d_forward_ref(TapeNode *node)
{
    BatchNormAttr *a = node->attr;
    const Tensor *x = node->in[0];
    int B = x->shape[0], C = x->shape[1];
    size_t S = (size_t)x->shape[2] * (size_t)x->shape[3];
    if (a->training) {
        /* Two passes, each summed over the global batch: mean first, then the centred squares. */
        double *mean = a->buf, *var = a->buf + C + 1;
        for (int c = 0; c < C; c++) {
            mean[c] = 0.0;
            for (int b = 0; b < B; b++)
                for (size_t k = 0; k < S; k++) mean[c] += x->data[((size_t)b * C + c) * S + k];
        }
        mean[C] = (double)B * (double)S;
        if (a->allreduce_sum) a->allreduce_sum(mean, (size_t)C + 1);
        a->count = mean[C];
        UL_CHECK(a->count > 1.0, "op_batchnorm2d: training needs more than one value per channel (B*H*W = %.0f)",
                 a->count);
        for (int c = 0; c < C; c++) mean[c] /= a->count;
        for (int c = 0; c < C; c++) {
            var[c] = 0.0;
            for (int b = 0; b < B; b++)
                for (size_t k = 0; k < S; k++) {
                    double d = x->data[((size_t)b * C + c) * S + k] - mean[c];
                    var[c] += d * d;
                }
        }
        if (a->allreduce_sum) a->allreduce_sum(var, (size_t)C);
        for (int c = 0; c < C; c++) var[c] /= a->count;
        bn_finish_stats(a, C, mean, var);
    } else {
        bn_eval_stats(a, C);
    }
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (size_t k = 0; k < S; k++) {
                size_t i = ((size_t)b * C + c) * S + k;
                double xhat = ((double)x->data[i] - a->mean[c]) * a->invstd[c];
                node->out->data[i] = (float)(xhat * node->in[1]->data[c] + node->in[2]->data[c]);
            }
}

void op_batchnorm2d_backward_ref(TapeNode *node)
{
    BatchNormAttr *a = node->attr;
    const Tensor *x = node->in[0], *gamma = node->in[1], *beta = node->in[2];
    const float *g = node->out->grad;
    int B = x->shape[0], C = x->shape[1];
    size_t S = (size_t)x->shape[2] * (size_t)x->shape[3];
    /* Per channel: sum dxhat (x - mean), sum dxhat, sum (x - mean), with dxhat = g gamma. */
    double *s_dxc = a->buf, *s_d = a->buf + C, *s_xc = a->buf + 2 * C;
    for (int c = 0; c < C; c++) {
        double dg = 0.0, db = 0.0;
        s_dxc[c] = s_d[c] = s_xc[c] = 0.0;
        for (int b = 0; b < B; b++)
            for (size_t k = 0; k < S; k++) {
                size_t i = ((size_t)b * C + c) * S + k;
                double xc = (double)x->data[i] - a->mean[c], dxhat = (double)g[i] * gamma->data[c];
                s_dxc[c] += dxhat * xc;
                s_d[c] += dxhat;
                s_xc[c] += xc;
                dg += (double)g[i] * xc * a->invstd[c];
                db += g[i];
            }
        if (gamma->grad) gamma->grad[c] += (float)dg;
        if (beta->grad) beta->grad[c] += (float)db;
    }
    if (!x->grad) return;
    if (a->training && a->allreduce_sum) a->allreduce_sum(a->buf, 3 * (size_t)C);
    for (int c = 0; c < C; c++) {
        double is = a->invstd[c], N = a->count;
        double var_eps = 1.0 / (is * is);
        double dvar = a->training ? s_dxc[c] * -0.5 * pow(var_eps, -1.5) : 0.0;
        double dmean = a->training ? -s_d[c] * is + dvar * (-2.0 * s_xc[c] / N) : 0.0;
        for (int b = 0; b < B; b++)
            for (size_t k = 0; k < S; k++) {
                size_t i = ((size_t)b * C + c) * S + k;
                double dxhat = (double)g[i] * gamma->data[c], xc = (double)x->data[i] - a->mean[c];
                double dx = dxhat * is;
                if (a->training) dx += dvar * 2.0 * xc / N + dmean / N;
                x->grad[i] += (float)dx;
            }
    }
}

/* ------------------------------------------------------------------ groupnorm
 *
 * x [B, C, ...] (S = product of the trailing dims): sample b, group k normalises the Cg * S contiguous values of
 * channels k*Cg .. k*Cg + Cg - 1 (Cg = C / groups) by their mean and biased variance; then gamma[c], beta[c].
 */

typedef struct GroupNormAttr {
    int groups;
    float eps;
    float *mean, *invstd;  /* [B * groups] saved for backward */
    double *part;          /* [B * C * 2] backward scratch: per (sample, channel) sum g and sum g (x - mean) */
} GroupNormAttr;

Tensor *op_groupnorm(Tape *t, Tensor *x, Tensor *gamma, Tensor *beta, int groups, float eps)
{
    char s[64];
    UL_CHECK(x, "op_groupnorm: x is NULL");
    UL_CHECK(x->ndim >= 2, "op_groupnorm: x must be [B, C, ...], got %s", tensor_shape_str(x, s, sizeof s));
    int B = x->shape[0], C = x->shape[1];
    UL_CHECK(groups >= 1 && C % groups == 0, "op_groupnorm: %d channels (x %s) are not divisible into %d groups", C,
             tensor_shape_str(x, s, sizeof s), groups);
    norm_check_param("groupnorm", "gamma", gamma, C);
    norm_check_param("groupnorm", "beta", beta, C);
    UL_CHECK(eps > 0.0f, "op_groupnorm: eps must be positive, got %g", (double)eps);
    GroupNormAttr *a = arena_alloc(t->arena, sizeof *a);
    a->groups = groups;
    a->eps = eps;
    size_t bg = ul_mul_size((size_t)B, (size_t)groups);
    a->mean = arena_alloc(t->arena, ul_mul_size(bg, sizeof(float)));
    a->invstd = arena_alloc(t->arena, ul_mul_size(bg, sizeof(float)));
    Tensor *in[3] = {x, gamma, beta};
    bool grad = tape_wants_grad(t, in, 3);
    a->part = grad ? arena_alloc(t->arena, ul_mul_size(ul_mul_size((size_t)B, (size_t)C), 2 * sizeof(double)))
                   : NULL;
    Tensor *out = tensor_new(t->arena, x->ndim, x->shape, grad);
    tape_apply(t, OP_GROUPNORM, out, in, 3, a);
    return out;
}

/* Sizes shared by the groupnorm kernels. */
typedef struct GnDims {
    int B, C, G, Cg;
    size_t S, M;  /* values per channel, per group */
} GnDims;

static GnDims gn_dims(const TapeNode *node)
{
    const Tensor *x = node->in[0];
    GnDims d;
    d.B = x->shape[0];
    d.C = x->shape[1];
    d.G = ((const GroupNormAttr *)node->attr)->groups;
    d.Cg = d.C / d.G;
    d.S = (d.B && d.C) ? x->n / ((size_t)d.B * (size_t)d.C) : 0;
    d.M = (size_t)d.Cg * d.S;
    return d;
}

/* x [B, C, ...] -> out [B, C, ...] */
void op_groupnorm_forward(TapeNode *node)
{
    GroupNormAttr *a = node->attr;
    GnDims d = gn_dims(node);
    const float *gamma = node->in[1]->data, *beta = node->in[2]->data;
#pragma omp parallel for if (node->out->n >= NORM_PAR_MIN) schedule(static)
    for (int bg = 0; bg < d.B * d.G; bg++) {
        int b = bg / d.G, k = bg % d.G;
        size_t off = ((size_t)b * d.C + (size_t)k * d.Cg) * d.S;
        const float *restrict xg = node->in[0]->data + off;
        float *restrict og = node->out->data + off;
        double s1 = 0.0, s2 = 0.0;
#pragma omp simd reduction(+ : s1, s2)
        for (size_t i = 0; i < d.M; i++) {
            double v = xg[i];
            s1 += v;
            s2 += v * v;
        }
        double mu = s1 / (double)d.M, var = s2 / (double)d.M - mu * mu;
        float fm = (float)mu, is = (float)(1.0 / sqrt((var > 0.0 ? var : 0.0) + (double)a->eps));
        a->mean[bg] = fm;
        a->invstd[bg] = is;
        for (int cc = 0; cc < d.Cg; cc++) {
            int c = k * d.Cg + cc;
            float sc = gamma[c] * is, sh = beta[c];
            const float *restrict xc = xg + (size_t)cc * d.S;
            float *restrict oc = og + (size_t)cc * d.S;
#pragma omp simd
            for (size_t i = 0; i < d.S; i++) oc[i] = (xc[i] - fm) * sc + sh;
        }
    }
}

void op_groupnorm_backward(TapeNode *node)
{
    GroupNormAttr *a = node->attr;
    GnDims d = gn_dims(node);
    const Tensor *x = node->in[0], *gamma = node->in[1], *beta = node->in[2];
    const float *g = node->out->grad;
#pragma omp parallel for if (node->out->n >= NORM_PAR_MIN) schedule(static)
    for (int bg = 0; bg < d.B * d.G; bg++) {
        int b = bg / d.G, k = bg % d.G;
        float fm = a->mean[bg];
        double is = a->invstd[bg], s1 = 0.0, s2 = 0.0;  /* sum gamma g, sum gamma g (x - mean) over the group */
        for (int cc = 0; cc < d.Cg; cc++) {
            int c = k * d.Cg + cc;
            size_t off = ((size_t)b * d.C + c) * d.S;
            const float *restrict gp = g + off, *restrict xp = x->data + off;
            double sg = 0.0, sgc = 0.0;
#pragma omp simd reduction(+ : sg, sgc)
            for (size_t i = 0; i < d.S; i++) {
                sg += gp[i];
                sgc += (double)gp[i] * (double)(xp[i] - fm);
            }
            a->part[((size_t)b * d.C + c) * 2] = sg;
            a->part[((size_t)b * d.C + c) * 2 + 1] = sgc;
            s1 += gamma->data[c] * sg;
            s2 += gamma->data[c] * sgc;
        }
        if (!x->grad) continue;
        /* dx = invstd (gamma g - mean(gamma g) - xhat mean(gamma g xhat)) = A_c g + Bk (x - mean) + Ck */
        float fB = (float)(-is * is * is * s2 / (double)d.M), fC = (float)(-is * s1 / (double)d.M);
        for (int cc = 0; cc < d.Cg; cc++) {
            int c = k * d.Cg + cc;
            size_t off = ((size_t)b * d.C + c) * d.S;
            const float *restrict gp = g + off, *restrict xp = x->data + off;
            float *restrict dx = x->grad + off;
            float fA = (float)(is * gamma->data[c]);
#pragma omp simd
            for (size_t i = 0; i < d.S; i++) dx[i] += fA * gp[i] + fB * (xp[i] - fm) + fC;
        }
    }
    if (!gamma->grad && !beta->grad) return;
    for (int c = 0; c < d.C; c++) {
        double dg = 0.0, db = 0.0;
        for (int b = 0; b < d.B; b++) {
            const double *p = a->part + ((size_t)b * d.C + c) * 2;
            dg += p[1] * a->invstd[b * d.G + c / d.Cg];
            db += p[0];
        }
        if (gamma->grad) gamma->grad[c] += (float)dg;
        if (beta->grad) beta->grad[c] += (float)db;
    }
}

void op_groupnorm_forward_ref(TapeNode *node)
{
    GroupNormAttr *a = node->attr;
    GnDims d = gn_dims(node);
    const float *x = node->in[0]->data, *gamma = node->in[1]->data, *beta = node->in[2]->data;
    for (int b = 0; b < d.B; b++)
        for (int k = 0; k < d.G; k++) {
            size_t off = ((size_t)b * d.C + (size_t)k * d.Cg) * d.S;
            double mu = 0.0, var = 0.0;
            for (size_t i = 0; i < d.M; i++) mu += x[off + i];
            mu /= (double)d.M;
            for (size_t i = 0; i < d.M; i++) var += (x[off + i] - mu) * (x[off + i] - mu);
            var /= (double)d.M;
            a->mean[b * d.G + k] = (float)mu;
            a->invstd[b * d.G + k] = (float)(1.0 / sqrt(var + (double)a->eps));
            for (size_t i = 0; i < d.M; i++) {
                int c = k * d.Cg + (int)(i / d.S);
                node->out->data[off + i] = (float)((x[off + i] - mu) / sqrt(var + (double)a->eps) * gamma[c] + beta[c]);
            }
        }
}

void op_groupnorm_backward_ref(TapeNode *node)
{
    GroupNormAttr *a = node->attr;
    GnDims d = gn_dims(node);
    const Tensor *x = node->in[0], *gamma = node->in[1], *beta = node->in[2];
    const float *g = node->out->grad;
    for (int b = 0; b < d.B; b++)
        for (int k = 0; k < d.G; k++) {
            size_t off = ((size_t)b * d.C + (size_t)k * d.Cg) * d.S;
            double mu = a->mean[b * d.G + k], is = a->invstd[b * d.G + k], M = (double)d.M;
            double s_dxc = 0.0, s_d = 0.0, s_xc = 0.0;
            for (size_t i = 0; i < d.M; i++) {
                int c = k * d.Cg + (int)(i / d.S);
                double dxhat = (double)g[off + i] * gamma->data[c], xc = x->data[off + i] - mu;
                s_dxc += dxhat * xc;
                s_d += dxhat;
                s_xc += xc;
                if (gamma->grad) gamma->grad[c] += (float)((double)g[off + i] * xc * is);
                if (beta->grad) beta->grad[c] += g[off + i];
            }
            if (!x->grad) continue;
            double dvar = s_dxc * -0.5 * pow(1.0 / (is * is), -1.5);
            double dmean = -s_d * is + dvar * (-2.0 * s_xc / M);
            for (size_t i = 0; i < d.M; i++) {
                int c = k * d.Cg + (int)(i / d.S);
                double dxhat = (double)g[off + i] * gamma->data[c], xc = x->data[off + i] - mu;
                x->grad[off + i] += (float)(dxhat * is + dvar * 2.0 * xc / M + dmean / M);
            }
        }
}

/* ------------------------------------------------------------------ layernorm
 *
 * x [..., C]: every row of C values is normalised by its mean and biased variance; then gamma, beta [C] when given.
 */

typedef struct LayerNormAttr {
    float eps;
    float *mean, *invstd;  /* [rows] saved for backward */
    double *part;          /* [LN_CHUNKS][2][C] backward scratch: per-chunk sums g xhat and g; NULL without affine */
} LayerNormAttr;

Tensor *op_layernorm(Tape *t, Tensor *x, Tensor *gamma, Tensor *beta, float eps)
{
    UL_CHECK(x, "op_layernorm: x is NULL");
    int C = x->shape[x->ndim - 1];
    UL_CHECK((gamma == NULL) == (beta == NULL), "op_layernorm: gamma and beta must be both given or both NULL");
    if (gamma) {
        norm_check_param("layernorm", "gamma", gamma, C);
        norm_check_param("layernorm", "beta", beta, C);
    }
    UL_CHECK(eps > 0.0f, "op_layernorm: eps must be positive, got %g", (double)eps);
    LayerNormAttr *a = arena_alloc(t->arena, sizeof *a);
    size_t rows = C ? x->n / (size_t)C : 0;
    a->eps = eps;
    a->mean = arena_alloc(t->arena, ul_mul_size(rows, sizeof(float)));
    a->invstd = arena_alloc(t->arena, ul_mul_size(rows, sizeof(float)));
    Tensor *in[3] = {x, gamma, beta};
    bool grad = tape_wants_grad(t, in, 3);
    a->part = grad && gamma ? arena_alloc(t->arena, ul_mul_size(ul_mul_size(LN_CHUNKS, 2 * sizeof(double)), (size_t)C))
                            : NULL;
    Tensor *out = tensor_new(t->arena, x->ndim, x->shape, grad);
    tape_apply(t, OP_LAYERNORM, out, in, 3, a);
    return out;
}

/* x [R, C] -> out [R, C] */
void op_layernorm_forward(TapeNode *node)
{
    LayerNormAttr *a = node->attr;
    const Tensor *x = node->in[0];
    const float *gamma = node->in[1] ? node->in[1]->data : NULL, *beta = node->in[2] ? node->in[2]->data : NULL;
    size_t C = (size_t)x->shape[x->ndim - 1], R = C ? x->n / C : 0;
#pragma omp parallel for if (x->n >= NORM_PAR_MIN) schedule(static)
    for (size_t r = 0; r < R; r++) {
        const float *restrict xr = x->data + r * C;
        float *restrict orow = node->out->data + r * C;
        double s1 = 0.0, s2 = 0.0;
#pragma omp simd reduction(+ : s1, s2)
        for (size_t k = 0; k < C; k++) {
            double v = xr[k];
            s1 += v;
            s2 += v * v;
        }
        double mu = s1 / (double)C, var = s2 / (double)C - mu * mu;
        float fm = (float)mu, is = (float)(1.0 / sqrt((var > 0.0 ? var : 0.0) + (double)a->eps));
        a->mean[r] = fm;
        a->invstd[r] = is;
        if (gamma) {
#pragma omp simd
            for (size_t k = 0; k < C; k++) orow[k] = (xr[k] - fm) * is * gamma[k] + beta[k];
        } else {
#pragma omp simd
            for (size_t k = 0; k < C; k++) orow[k] = (xr[k] - fm) * is;
        }
    }
}

void op_layernorm_backward(TapeNode *node)
{
    LayerNormAttr *a = node->attr;
    const Tensor *x = node->in[0], *gamma = node->in[1], *beta = node->in[2];
    const float *g = node->out->grad;
    size_t C = (size_t)x->shape[x->ndim - 1], R = C ? x->n / C : 0;
    bool affine = gamma && (gamma->grad || beta->grad);
    if (R == 0 || (!affine && !x->grad)) return;
    size_t nch = R < LN_CHUNKS ? R : LN_CHUNKS;
    /* One pass over contiguous rows: each row's data stays in cache between its reduction and its updates. */
#pragma omp parallel for if (x->n >= NORM_PAR_MIN) schedule(static)
    for (size_t ch = 0; ch < nch; ch++) {
        double *restrict pg = affine ? a->part + ch * 2 * C : NULL, *restrict pb = affine ? pg + C : NULL;
        if (affine) memset(pg, 0, 2 * C * sizeof(double));
        for (size_t r = R * ch / nch; r < R * (ch + 1) / nch; r++) {
            const float *restrict xr = x->data + r * C, *restrict gr = g + r * C;
            float fm = a->mean[r];
            double is = a->invstd[r];
            if (affine) {
#pragma omp simd
                for (size_t k = 0; k < C; k++) {
                    pg[k] += (double)gr[k] * (double)(xr[k] - fm) * is;
                    pb[k] += gr[k];
                }
            }
            if (!x->grad) continue;
            float *restrict dx = x->grad + r * C;
            double s1 = 0.0, s2 = 0.0;  /* sum gg, sum gg (x - mean); gg = g gamma */
            if (gamma) {
                const float *restrict gm = gamma->data;
#pragma omp simd reduction(+ : s1, s2)
                for (size_t k = 0; k < C; k++) {
                    double gg = (double)gr[k] * gm[k];
                    s1 += gg;
                    s2 += gg * (double)(xr[k] - fm);
                }
            } else {
#pragma omp simd reduction(+ : s1, s2)
                for (size_t k = 0; k < C; k++) {
                    s1 += gr[k];
                    s2 += (double)gr[k] * (double)(xr[k] - fm);
                }
            }
            /* dx = invstd (gg - mean(gg) - xhat mean(gg xhat)) = invstd gg + Bk (x - mean) + Ck */
            float fis = (float)is, fB = (float)(-is * is * is * s2 / (double)C), fC = (float)(-is * s1 / (double)C);
            if (gamma) {
                const float *restrict gm = gamma->data;
#pragma omp simd
                for (size_t k = 0; k < C; k++) dx[k] += fis * gr[k] * gm[k] + fB * (xr[k] - fm) + fC;
            } else {
#pragma omp simd
                for (size_t k = 0; k < C; k++) dx[k] += fis * gr[k] + fB * (xr[k] - fm) + fC;
            }
        }
    }
    if (!affine) return;
    for (size_t k = 0; k < C; k++) {
        double dg = 0.0, db = 0.0;
        for (size_t ch = 0; ch < nch; ch++) {
            dg += a->part[ch * 2 * C + k];
            db += a->part[ch * 2 * C + C + k];
        }
        if (gamma->grad) gamma->grad[k] += (float)dg;
        if (beta->grad) beta->grad[k] += (float)db;
    }
}

void op_layernorm_forward_ref(TapeNode *node)
{
    LayerNormAttr *a = node->attr;
    const Tensor *x = node->in[0], *gamma = node->in[1], *beta = node->in[2];
    size_t C = (size_t)x->shape[x->ndim - 1], R = C ? x->n / C : 0;
    for (size_t r = 0; r < R; r++) {
        const float *xr = x->data + r * C;
        double mu = 0.0, var = 0.0;
        for (size_t k = 0; k < C; k++) mu += xr[k];
        mu /= (double)C;
        for (size_t k = 0; k < C; k++) var += (xr[k] - mu) * (xr[k] - mu);
        var /= (double)C;
        a->mean[r] = (float)mu;
        a->invstd[r] = (float)(1.0 / sqrt(var + (double)a->eps));
        for (size_t k = 0; k < C; k++) {
            double y = (xr[k] - mu) / sqrt(var + (double)a->eps);
            if (gamma) y = y * gamma->data[k] + beta->data[k];
            node->out->data[r * C + k] = (float)y;
        }
    }
}

void op_layernorm_backward_ref(TapeNode *node)
{
    LayerNormAttr *a = node->attr;
    const Tensor *x = node->in[0], *gamma = node->in[1], *beta = node->in[2];
    const float *g = node->out->grad;
    size_t C = (size_t)x->shape[x->ndim - 1], R = C ? x->n / C : 0;
    for (size_t r = 0; r < R; r++) {
        double mu = a->mean[r], is = a->invstd[r], s_dxc = 0.0, s_d = 0.0, s_xc = 0.0;
        for (size_t k = 0; k < C; k++) {
            size_t i = r * C + k;
            double dxhat = (double)g[i] * (gamma ? gamma->data[k] : 1.0f), xc = x->data[i] - mu;
            s_dxc += dxhat * xc;
            s_d += dxhat;
            s_xc += xc;
            if (gamma && gamma->grad) gamma->grad[k] += (float)((double)g[i] * xc * is);
            if (beta && beta->grad) beta->grad[k] += g[i];
        }
        if (!x->grad) continue;
        double dvar = s_dxc * -0.5 * pow(1.0 / (is * is), -1.5);
        double dmean = -s_d * is + dvar * (-2.0 * s_xc / (double)C);
        for (size_t k = 0; k < C; k++) {
            size_t i = r * C + k;
            double dxhat = (double)g[i] * (gamma ? gamma->data[k] : 1.0f), xc = x->data[i] - mu;
            x->grad[i] += (float)(dxhat * is + dvar * 2.0 * xc / (double)C + dmean / (double)C);
        }
    }
}

/* ------------------------------------------------------------------ softmax, log_softmax (over the last dim) */

Tensor *op_softmax(Tape *t, Tensor *x)
{
    UL_CHECK(x, "op_softmax: x is NULL");
    Tensor *out = tensor_new(t->arena, x->ndim, x->shape, tape_wants_grad(t, &x, 1));
    tape_apply(t, OP_SOFTMAX, out, &x, 1, NULL);
    return out;
}

Tensor *op_log_softmax(Tape *t, Tensor *x)
{
    UL_CHECK(x, "op_log_softmax: x is NULL");
    Tensor *out = tensor_new(t->arena, x->ndim, x->shape, tape_wants_grad(t, &x, 1));
    tape_apply(t, OP_LOG_SOFTMAX, out, &x, 1, NULL);
    return out;
}

static size_t last_dim(const Tensor *x) { return (size_t)x->shape[x->ndim - 1]; }

/* max over a row of C >= 1 values */
static inline float row_max(const float *restrict xr, size_t C)
{
    float mx = xr[0];
#pragma omp simd reduction(max : mx)
    for (size_t k = 1; k < C; k++) mx = xr[k] > mx ? xr[k] : mx;
    return mx;
}

/* x [R, C] -> out [R, C] = exp(x - max) / sum exp(x - max); backward dx = y (g - sum g y). The output is the saved
   value backward reads. */
void op_softmax_forward(TapeNode *node)
{
    const Tensor *x = node->in[0];
    size_t C = last_dim(x), R = C ? x->n / C : 0;
#pragma omp parallel for if (x->n >= NORM_PAR_MIN) schedule(static)
    for (size_t r = 0; r < R; r++) {
        const float *restrict xr = x->data + r * C;
        float *restrict orow = node->out->data + r * C;
        float mx = row_max(xr, C);
        double s = 0.0;
        for (size_t k = 0; k < C; k++) {
            float e = expf(xr[k] - mx);
            orow[k] = e;
            s += e;
        }
        float inv = (float)(1.0 / s);
#pragma omp simd
        for (size_t k = 0; k < C; k++) orow[k] *= inv;
    }
}

void op_softmax_backward(TapeNode *node)
{
    const Tensor *x = node->in[0];
    if (!x->grad) return;
    size_t C = last_dim(x), R = C ? x->n / C : 0;
#pragma omp parallel for if (x->n >= NORM_PAR_MIN) schedule(static)
    for (size_t r = 0; r < R; r++) {
        const float *restrict y = node->out->data + r * C, *restrict g = node->out->grad + r * C;
        float *restrict dx = x->grad + r * C;
        double dot = 0.0;
#pragma omp simd reduction(+ : dot)
        for (size_t k = 0; k < C; k++) dot += (double)g[k] * y[k];
        float fd = (float)dot;
#pragma omp simd
        for (size_t k = 0; k < C; k++) dx[k] += y[k] * (g[k] - fd);
    }
}

void op_softmax_forward_ref(TapeNode *node)
{
    const Tensor *x = node->in[0];
    size_t C = last_dim(x), R = C ? x->n / C : 0;
    for (size_t r = 0; r < R; r++) {
        const float *xr = x->data + r * C;
        double mx = xr[0], s = 0.0;
        for (size_t k = 1; k < C; k++)
            if (xr[k] > mx) mx = xr[k];
        for (size_t k = 0; k < C; k++) s += exp(xr[k] - mx);
        for (size_t k = 0; k < C; k++) node->out->data[r * C + k] = (float)(exp(xr[k] - mx) / s);
    }
}

void op_softmax_backward_ref(TapeNode *node)
{
    const Tensor *x = node->in[0];
    if (!x->grad) return;
    size_t C = last_dim(x), R = C ? x->n / C : 0;
    /* dx_i = sum_j g_j dy_j/dx_i with dy_j/dx_i = y_j (delta_ij - y_i) */
    for (size_t r = 0; r < R; r++) {
        const float *y = node->out->data + r * C, *g = node->out->grad + r * C;
        for (size_t i = 0; i < C; i++) {
            double acc = 0.0;
            for (size_t j = 0; j < C; j++) acc += (double)g[j] * y[j] * ((i == j ? 1.0 : 0.0) - y[i]);
            x->grad[r * C + i] += (float)acc;
        }
    }
}

/* x [R, C] -> out = x - max - log sum exp(x - max); backward dx = g - exp(out) sum g. */
void op_log_softmax_forward(TapeNode *node)
{
    const Tensor *x = node->in[0];
    size_t C = last_dim(x), R = C ? x->n / C : 0;
#pragma omp parallel for if (x->n >= NORM_PAR_MIN) schedule(static)
    for (size_t r = 0; r < R; r++) {
        const float *restrict xr = x->data + r * C;
        float *restrict orow = node->out->data + r * C;
        float mx = row_max(xr, C);
        double s = 0.0;
        for (size_t k = 0; k < C; k++) s += expf(xr[k] - mx);
        float lse = mx + (float)log(s);
#pragma omp simd
        for (size_t k = 0; k < C; k++) orow[k] = xr[k] - lse;
    }
}

void op_log_softmax_backward(TapeNode *node)
{
    const Tensor *x = node->in[0];
    if (!x->grad) return;
    size_t C = last_dim(x), R = C ? x->n / C : 0;
#pragma omp parallel for if (x->n >= NORM_PAR_MIN) schedule(static)
    for (size_t r = 0; r < R; r++) {
        const float *restrict y = node->out->data + r * C, *restrict g = node->out->grad + r * C;
        float *restrict dx = x->grad + r * C;
        double sg = 0.0;
#pragma omp simd reduction(+ : sg)
        for (size_t k = 0; k < C; k++) sg += g[k];
        float fs = (float)sg;
        for (size_t k = 0; k < C; k++) dx[k] += g[k] - expf(y[k]) * fs;
    }
}

void op_log_softmax_forward_ref(TapeNode *node)
{
    const Tensor *x = node->in[0];
    size_t C = last_dim(x), R = C ? x->n / C : 0;
    for (size_t r = 0; r < R; r++) {
        const float *xr = x->data + r * C;
        double mx = xr[0], s = 0.0;
        for (size_t k = 1; k < C; k++)
            if (xr[k] > mx) mx = xr[k];
        for (size_t k = 0; k < C; k++) s += exp(xr[k] - mx);
        for (size_t k = 0; k < C; k++) node->out->data[r * C + k] = (float)(xr[k] - mx - log(s));
    }
}

void op_log_softmax_backward_ref(TapeNode *node)
{
    const Tensor *x = node->in[0];
    if (!x->grad) return;
    size_t C = last_dim(x), R = C ? x->n / C : 0;
    /* dx_i = sum_j g_j (delta_ij - softmax_i) */
    for (size_t r = 0; r < R; r++) {
        const float *y = node->out->data + r * C, *g = node->out->grad + r * C;
        for (size_t i = 0; i < C; i++) {
            double acc = 0.0;
            for (size_t j = 0; j < C; j++) acc += (double)g[j] * ((i == j ? 1.0 : 0.0) - exp((double)y[i]));
            x->grad[r * C + i] += (float)acc;
        }
    }
}

/* ------------------------------------------------------------------ cross_entropy */

typedef struct CrossEntropyAttr {
    int *labels;  /* [B] arena copy of the caller's labels */
    float *lse;   /* [B] log-sum-exp of each row of logits, saved for backward */
} CrossEntropyAttr;

Tensor *op_cross_entropy(Tape *t, Tensor *logits, const int *labels)
{
    char s[64];
    UL_CHECK(logits && labels, "op_cross_entropy: NULL logits or labels");
    UL_CHECK(logits->ndim == 2, "op_cross_entropy: logits must be [B, C], got %s",
             tensor_shape_str(logits, s, sizeof s));
    int B = logits->shape[0], C = logits->shape[1];
    for (int b = 0; b < B; b++)
        UL_CHECK(labels[b] >= 0 && labels[b] < C, "op_cross_entropy: label %d of sample %d outside [0, %d)",
                 labels[b], b, C);
    CrossEntropyAttr *a = arena_alloc(t->arena, sizeof *a);
    a->labels = arena_alloc(t->arena, ul_mul_size((size_t)B, sizeof(int)));
    memcpy(a->labels, labels, (size_t)B * sizeof(int));
    a->lse = arena_alloc(t->arena, ul_mul_size((size_t)B, sizeof(float)));
    Tensor *out = tensor_new(t->arena, 1, (int[]){B}, tape_wants_grad(t, &logits, 1));
    tape_apply(t, OP_CROSS_ENTROPY, out, &logits, 1, a);
    return out;
}

/* logits [B, C] -> loss [B] = logsumexp(x_b) - x_b[label_b]; backward dx = g_b (softmax(x_b) - onehot). */
void op_cross_entropy_forward(TapeNode *node)
{
    CrossEntropyAttr *a = node->attr;
    const Tensor *x = node->in[0];
    int B = x->shape[0];
    size_t C = (size_t)x->shape[1];
#pragma omp parallel for if (x->n >= NORM_PAR_MIN) schedule(static)
    for (int b = 0; b < B; b++) {
        const float *restrict xr = x->data + (size_t)b * C;
        float mx = row_max(xr, C);
        double s = 0.0;
        for (size_t k = 0; k < C; k++) s += expf(xr[k] - mx);
        double ls = log(s);
        a->lse[b] = mx + (float)ls;
        node->out->data[b] = (float)(ls - (double)(xr[a->labels[b]] - mx));
    }
}

void op_cross_entropy_backward(TapeNode *node)
{
    CrossEntropyAttr *a = node->attr;
    const Tensor *x = node->in[0];
    if (!x->grad) return;
    int B = x->shape[0];
    size_t C = (size_t)x->shape[1];
#pragma omp parallel for if (x->n >= NORM_PAR_MIN) schedule(static)
    for (int b = 0; b < B; b++) {
        const float *restrict xr = x->data + (size_t)b * C;
        float *restrict dx = x->grad + (size_t)b * C;
        float g = node->out->grad[b], lse = a->lse[b];
        for (size_t k = 0; k < C; k++) dx[k] += g * expf(xr[k] - lse);
        dx[a->labels[b]] -= g;
    }
}

void op_cross_entropy_forward_ref(TapeNode *node)
{
    CrossEntropyAttr *a = node->attr;
    const Tensor *x = node->in[0];
    int B = x->shape[0], C = x->shape[1];
    for (int b = 0; b < B; b++) {
        const float *xr = x->data + (size_t)b * C;
        double mx = xr[0], s = 0.0;
        for (int k = 1; k < C; k++)
            if (xr[k] > mx) mx = xr[k];
        for (int k = 0; k < C; k++) s += exp(xr[k] - mx);
        a->lse[b] = (float)(mx + log(s));
        node->out->data[b] = (float)(mx + log(s) - xr[a->labels[b]]);
    }
}

void op_cross_entropy_backward_ref(TapeNode *node)
{
    CrossEntropyAttr *a = node->attr;
    const Tensor *x = node->in[0];
    if (!x->grad) return;
    int B = x->shape[0], C = x->shape[1];
    for (int b = 0; b < B; b++) {
        const float *xr = x->data + (size_t)b * C;
        double mx = xr[0], s = 0.0;
        for (int k = 1; k < C; k++)
            if (xr[k] > mx) mx = xr[k];
        for (int k = 0; k < C; k++) s += exp(xr[k] - mx);
        for (int k = 0; k < C; k++) {
            double p = exp(xr[k] - mx) / s;
            x->grad[(size_t)b * C + k] += (float)(node->out->grad[b] * (p - (k == a->labels[b] ? 1.0 : 0.0)));
        }
    }
}

/* ------------------------------------------------------------------ mse */

typedef struct MseAttr {
    bool mean;  /* divide each sample's sum by its element count */
} MseAttr;

Tensor *op_mse(Tape *t, Tensor *pred, Tensor *target, bool mean)
{
    char a[64], b[64];
    UL_CHECK(pred && target, "op_mse: NULL input");
    UL_CHECK(tensor_same_shape(pred, target), "op_mse: pred %s and target %s must have the same shape",
             tensor_shape_str(pred, a, sizeof a), tensor_shape_str(target, b, sizeof b));
    MseAttr *at = arena_alloc(t->arena, sizeof *at);
    at->mean = mean;
    Tensor *in[2] = {pred, target};
    Tensor *out = tensor_new(t->arena, 1, (int[]){pred->shape[0]}, tape_wants_grad(t, in, 2));
    tape_apply(t, OP_MSE, out, in, 2, at);
    return out;
}

/* pred, target [B, M...] -> [B] = (1/M or 1) sum (pred - target)^2 over each sample's M elements. */
void op_mse_forward(TapeNode *node)
{
    const MseAttr *a = node->attr;
    const Tensor *p = node->in[0], *q = node->in[1];
    int B = p->shape[0];
    size_t M = B ? p->n / (size_t)B : 0;
    double scale = a->mean && M ? 1.0 / (double)M : 1.0;
#pragma omp parallel for if (p->n >= NORM_PAR_MIN) schedule(static)
    for (int b = 0; b < B; b++) {
        const float *restrict pr = p->data + (size_t)b * M, *restrict qr = q->data + (size_t)b * M;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (size_t k = 0; k < M; k++) {
            double d = (double)pr[k] - (double)qr[k];
            s += d * d;
        }
        node->out->data[b] = (float)(s * scale);
    }
}

/* One sample of the mse backward: dst += k (pr - qr). */
static void mse_acc(float *restrict dst, float k, const float *restrict pr, const float *restrict qr, size_t M)
{
#pragma omp simd
    for (size_t i = 0; i < M; i++) dst[i] += k * (pr[i] - qr[i]);
}

void op_mse_backward(TapeNode *node)
{
    const MseAttr *a = node->attr;
    const Tensor *p = node->in[0], *q = node->in[1];
    int B = p->shape[0];
    size_t M = B ? p->n / (size_t)B : 0;
    double scale = a->mean && M ? 2.0 / (double)M : 2.0;
#pragma omp parallel for if (p->n >= NORM_PAR_MIN) schedule(static)
    for (int b = 0; b < B; b++) {
        size_t off = (size_t)b * M;
        float k = (float)(scale * node->out->grad[b]);
        /* separate passes: op_mse(t, x, x) must accumulate +k and -k into the same gradient */
        if (p->grad) mse_acc(p->grad + off, k, p->data + off, q->data + off, M);
        if (q->grad) mse_acc(q->grad + off, -k, p->data + off, q->data + off, M);
    }
}

void op_mse_forward_ref(TapeNode *node)
{
    const MseAttr *a = node->attr;
    const Tensor *p = node->in[0], *q = node->in[1];
    int B = p->shape[0];
    size_t M = B ? p->n / (size_t)B : 0;
    for (int b = 0; b < B; b++) {
        double s = 0.0;
        for (size_t k = 0; k < M; k++) {
            double d = (double)p->data[(size_t)b * M + k] - q->data[(size_t)b * M + k];
            s += d * d;
        }
        node->out->data[b] = (float)(a->mean ? s / (double)M : s);
    }
}

void op_mse_backward_ref(TapeNode *node)
{
    const MseAttr *a = node->attr;
    const Tensor *p = node->in[0], *q = node->in[1];
    int B = p->shape[0];
    size_t M = B ? p->n / (size_t)B : 0;
    for (int b = 0; b < B; b++)
        for (size_t k = 0; k < M; k++) {
            size_t i = (size_t)b * M + k;
            double d = 2.0 * ((double)p->data[i] - q->data[i]) * node->out->grad[b];
            if (a->mean) d /= (double)M;
            if (p->grad) p->grad[i] += (float)d;
            if (q->grad) q->grad[i] -= (float)d;
        }
}

/* ------------------------------------------------------------------ kl_div
 *
 * logp, logq [B, C] -> [B] = sum_c p_c (logp_c - logq_c), p = exp(logp); terms with p_c == 0 count 0 (the limit
 * of p log p), so -inf log-probabilities in logp give 0, not NaN.
 * d/dlogp_c = p_c (logp_c - logq_c + 1), d/dlogq_c = -p_c (logp treated as free, not renormalised).
 */

Tensor *op_kl_div(Tape *t, Tensor *logp, Tensor *logq)
{
    char a[64], b[64];
    UL_CHECK(logp && logq, "op_kl_div: NULL input");
    UL_CHECK(logp->ndim == 2 && tensor_same_shape(logp, logq), "op_kl_div: logp %s and logq %s must both be [B, C]",
             tensor_shape_str(logp, a, sizeof a), tensor_shape_str(logq, b, sizeof b));
    Tensor *in[2] = {logp, logq};
    Tensor *out = tensor_new(t->arena, 1, (int[]){logp->shape[0]}, tape_wants_grad(t, in, 2));
    tape_apply(t, OP_KL_DIV, out, in, 2, NULL);
    return out;
}

void op_kl_div_forward(TapeNode *node)
{
    const Tensor *lp = node->in[0], *lq = node->in[1];
    int B = lp->shape[0];
    size_t C = (size_t)lp->shape[1];
#pragma omp parallel for if (lp->n >= NORM_PAR_MIN) schedule(static)
    for (int b = 0; b < B; b++) {
        const float *restrict pr = lp->data + (size_t)b * C, *restrict qr = lq->data + (size_t)b * C;
        double s = 0.0;
        for (size_t k = 0; k < C; k++) {
            float p = expf(pr[k]);
            if (p > 0.0f) s += (double)p * ((double)pr[k] - (double)qr[k]);
        }
        node->out->data[b] = (float)s;
    }
}

void op_kl_div_backward(TapeNode *node)
{
    const Tensor *lp = node->in[0], *lq = node->in[1];
    int B = lp->shape[0];
    size_t C = (size_t)lp->shape[1];
#pragma omp parallel for if (lp->n >= NORM_PAR_MIN) schedule(static)
    for (int b = 0; b < B; b++) {
        size_t off = (size_t)b * C;
        float g = node->out->grad[b];
        for (size_t k = 0; k < C; k++) {
            float p = expf(lp->data[off + k]);
            if (p == 0.0f) continue;
            if (lp->grad) lp->grad[off + k] += g * p * (lp->data[off + k] - lq->data[off + k] + 1.0f);
            if (lq->grad) lq->grad[off + k] -= g * p;
        }
    }
}

void op_kl_div_forward_ref(TapeNode *node)
{
    const Tensor *lp = node->in[0], *lq = node->in[1];
    int B = lp->shape[0], C = lp->shape[1];
    for (int b = 0; b < B; b++) {
        double s = 0.0;
        for (int k = 0; k < C; k++) {
            size_t i = (size_t)b * C + k;
            double p = exp((double)lp->data[i]);
            if (p > 0.0) s += p * ((double)lp->data[i] - lq->data[i]);
        }
        node->out->data[b] = (float)s;
    }
}

void op_kl_div_backward_ref(TapeNode *node)
{
    const Tensor *lp = node->in[0], *lq = node->in[1];
    int B = lp->shape[0], C = lp->shape[1];
    for (int b = 0; b < B; b++)
        for (int k = 0; k < C; k++) {
            size_t i = (size_t)b * C + k;
            double p = exp((double)lp->data[i]), g = node->out->grad[b];
            if (p == 0.0) continue;
            if (lp->grad) lp->grad[i] += (float)(g * p * ((double)lp->data[i] - lq->data[i] + 1.0));
            if (lq->grad) lq->grad[i] -= (float)(g * p);
        }
}
