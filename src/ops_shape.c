/*
 * ops_shape.c - attention, the shape ops (reshape, permute, transpose, slice, chunk, concat), embeddings
 * (table lookup, sinusoidal timestep), adaLN modulation and DiT's unpatchify. Contracts: include/ops.h.
 *
 * Every op has a fast forward/backward pair and a naive _ref twin. The twins walk a different index order
 * (unravel one flat index at a time) or accumulate in double, so that tests judging fast against ref are
 * not comparing a loop with itself. Backward ACCUMULATES into in[i]->grad where in[i] && in[i]->grad.
 */
#include "fastmath.h"
#include "ops.h"
#include "kern.h"

#include <math.h>
#include <omp.h>
#include <string.h>

/* ---------------- small helpers ---------------- */

/* Elements before dim (outer) and after dim (inner) of x's shape. */
static void dims_around(const Tensor *x, int dim, size_t *outer, size_t *inner)
{
    size_t o = 1, in = 1;
    for (int d = 0; d < dim; d++) o *= (size_t)x->shape[d];
    for (int d = dim + 1; d < x->ndim; d++) in *= (size_t)x->shape[d];
    *outer = o;
    *inner = in;
}

/* Row-major coordinates of flat index i in a tensor of the given shape. */
static void unravel(size_t i, int ndim, const int *shape, int *coord)
{
    for (int d = ndim - 1; d >= 0; d--) {
        coord[d] = (int)(i % (size_t)shape[d]);
        i /= (size_t)shape[d];
    }
}

/* Flat row-major index of coord in a tensor of the given shape. */
static size_t ravel(int ndim, const int *shape, const int *coord)
{
    size_t i = 0;
    for (int d = 0; d < ndim; d++) i = i * (size_t)shape[d] + (size_t)coord[d];
    return i;
}

static void add_into(float *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

/* ======================================================================================================
 * attention: q, k, v [B, T, C], C = heads * D -> out [B, T, C];  per (b, h):
 *     S = q_h k_h^T / sqrt(D)  [T, T],  P = softmax_rows(S),  out_h = P v_h  [T, D]
 * backward:  dP = dout_h v_h^T,  dS = P * (dP - rowsum(P * dP)),
 *            dq_h += dS k_h / sqrt(D),  dk_h += dS^T q_h / sqrt(D),  dv_h += P^T dout_h
 * Head h is the column block h*D .. h*D+D-1 of every row, read in place with leading dimension C.
 *
 * Threading: with kern_threads() = n > 1 the (b, h) pairs are spread over n OpenMP threads and each GEMM runs
 * single-threaded in its thread (each thread has its own [T, T] scratch slot); with n = 1 it is one loop.
 * The constructor fixes n (attr->nslot, the number of scratch slots); the tape's use_ref must not change between
 * an attention op's construction and its backward.
 * ====================================================================================================== */

typedef struct AttnAttr {
    int heads;
    int nslot;        /* threads the scratch below was sized for (kern_threads() at construction) */
    bool saved;       /* P holds every (b, h) pair's probabilities (the node is recorded) */
    float *P;         /* fast path: [B * heads, T, T] when saved, else [nslot, T, T] scratch; NULL for ref */
    float *dP;        /* fast backward scratch [nslot, T, T]; NULL when not saved or for ref */
    double *ref;      /* ref path scratch [2, T, T] (probabilities and dS of one pair); NULL for fast */
} AttnAttr;

typedef struct AttnDims {
    int B, T, C, H, D;
    float scale;
} AttnDims;

static AttnDims attn_dims(const TapeNode *node)
{
    const AttnAttr *a = node->attr;
    AttnDims d;
    d.B = node->in[0]->shape[0];
    d.T = node->in[0]->shape[1];
    d.C = node->in[0]->shape[2];
    d.H = a->heads;
    d.D = d.C / d.H;
    d.scale = (float)(1.0 / sqrt((double)d.D));
    return d;
}

/* Row softmax of S [T, T] in place (float, max-subtracted). Arguments below -87 are clamped there (their
   exp, < 1.7e-38, is negligible next to the row maximum's 1); a NaN anywhere in a row makes the row NaN. */
static void softmax_rows(float *S, int T)
{
    for (int i = 0; i < T; i++) {
        float *row = S + (size_t)i * T;
        float mx = row[0], sum = 0.0f;
#pragma omp simd reduction(max : mx)
        for (int j = 1; j < T; j++) mx = row[j] > mx ? row[j] : mx;
#pragma omp simd
        for (int j = 0; j < T; j++) {
            float x = row[j] - mx;
            row[j] = x < -87.0f ? -87.0f : x; /* a comparison, not fmaxf: a NaN must stay a NaN */
        }
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < T; j++) {
            row[j] = fm_expf_reduced(row[j]);
            sum += row[j];
        }
        float inv = 1.0f / sum;
#pragma omp simd
        for (int j = 0; j < T; j++) row[j] *= inv;
    }
}

/* One (b, h) pair forward; P [T, T] receives the probabilities. */
static void attn_pair_forward(const TapeNode *node, const AttnDims *d, int bh, float *P)
{
    int b = bh / d->H, h = bh % d->H;
    size_t off = (size_t)b * d->T * d->C + (size_t)h * d->D;
    const float *q = node->in[0]->data + off, *k = node->in[1]->data + off, *v = node->in[2]->data + off;
    float *o = node->out->data + off;
    kern_sgemm(false, true, d->T, d->T, d->D, d->scale, q, d->C, k, d->C, 0.0f, P, d->T);
    softmax_rows(P, d->T);
    kern_sgemm(false, false, d->T, d->D, d->T, 1.0f, P, d->T, v, d->C, 0.0f, o, d->C);
}

/* One (b, h) pair backward from the saved P [T, T]; dS [T, T] is scratch. */
static void attn_pair_backward(const TapeNode *node, const AttnDims *d, int bh, const float *P, float *dS)
{
    int b = bh / d->H, h = bh % d->H, T = d->T;
    size_t off = (size_t)b * T * d->C + (size_t)h * d->D;
    Tensor *q = node->in[0], *k = node->in[1], *v = node->in[2];
    const float *dout = node->out->grad + off;
    /* dP = dout_h v_h^T, then dS = P * (dP - rowsum(P * dP)) in place. */
    kern_sgemm(false, true, T, T, d->D, 1.0f, dout, d->C, v->data + off, d->C, 0.0f, dS, T);
    for (int i = 0; i < T; i++) {
        const float *p = P + (size_t)i * T;
        float *g = dS + (size_t)i * T;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int j = 0; j < T; j++) dot += p[j] * g[j];
#pragma omp simd
        for (int j = 0; j < T; j++) g[j] = p[j] * (g[j] - dot);
    }
    if (v->grad) kern_sgemm(true, false, T, d->D, T, 1.0f, P, T, dout, d->C, 1.0f, v->grad + off, d->C);
    if (q->grad) kern_sgemm(false, false, T, d->D, T, d->scale, dS, T, k->data + off, d->C, 1.0f, q->grad + off, d->C);
    if (k->grad) kern_sgemm(true, false, T, d->D, T, d->scale, dS, T, q->data + off, d->C, 1.0f, k->grad + off, d->C);
}

void op_attention_forward(TapeNode *node)
{
    AttnAttr *a = node->attr;
    AttnDims d = attn_dims(node);
    UL_CHECK(a->P, "attention: fast forward without its scratch (tape.use_ref changed after construction?)");
    size_t TT = (size_t)d.T * d.T;
    int pairs = d.B * d.H;
    if (a->nslot > 1) {
        /* Pairs over threads, BLAS single-threaded inside; the caller's thread count is restored afterwards. */
        int prev = kern_threads();
        kern_set_threads(1);
#pragma omp parallel for num_threads(a->nslot) schedule(static)
        for (int bh = 0; bh < pairs; bh++)
            attn_pair_forward(node, &d, bh, a->P + (a->saved ? (size_t)bh : (size_t)omp_get_thread_num()) * TT);
        kern_set_threads(prev);
    } else {
        for (int bh = 0; bh < pairs; bh++) attn_pair_forward(node, &d, bh, a->P + (a->saved ? (size_t)bh * TT : 0));
    }
}

void op_attention_backward(TapeNode *node)
{
    AttnAttr *a = node->attr;
    AttnDims d = attn_dims(node);
    UL_CHECK(a->saved && a->dP, "attention: fast backward without saved probabilities (tape.use_ref changed?)");
    size_t TT = (size_t)d.T * d.T;
    int pairs = d.B * d.H;
    if (a->nslot > 1) {
        int prev = kern_threads();
        kern_set_threads(1);
#pragma omp parallel for num_threads(a->nslot) schedule(static)
        for (int bh = 0; bh < pairs; bh++)
            attn_pair_backward(node, &d, bh, a->P + (size_t)bh * TT, a->dP + (size_t)omp_get_thread_num() * TT);
        kern_set_threads(prev);
    } else {
        for (int bh = 0; bh < pairs; bh++) attn_pair_backward(node, &d, bh, a->P + (size_t)bh * TT, a->dP);
    }
}

/* Probabilities of pair (b, h) in double into P [T, T], by explicit loops. */
static void attn_ref_probs(const TapeNode *node, const AttnDims *d, int b, int h, double *P)
{
    const float *q = node->in[0]->data, *k = node->in[1]->data;
    double scale = 1.0 / sqrt((double)d->D);
    for (int i = 0; i < d->T; i++) {
        double *row = P + (size_t)i * d->T, mx = -INFINITY, sum = 0.0;
        for (int j = 0; j < d->T; j++) {
            double s = 0.0;
            for (int c = 0; c < d->D; c++) {
                size_t qi = ((size_t)b * d->T + i) * d->C + (size_t)h * d->D + c;
                size_t kj = ((size_t)b * d->T + j) * d->C + (size_t)h * d->D + c;
                s += (double)q[qi] * (double)k[kj];
            }
            row[j] = s * scale;
            if (row[j] > mx) mx = row[j];
        }
        for (int j = 0; j < d->T; j++) {
            row[j] = exp(row[j] - mx);
            sum += row[j];
        }
        for (int j = 0; j < d->T; j++) row[j] /= sum;
    }
}

void op_attention_forward_ref(TapeNode *node)
{
    AttnAttr *a = node->attr;
    AttnDims d = attn_dims(node);
    UL_CHECK(a->ref, "attention: ref forward without its scratch (tape.use_ref changed after construction?)");
    const float *v = node->in[2]->data;
    float *out = node->out->data;
    for (int b = 0; b < d.B; b++)
        for (int h = 0; h < d.H; h++) {
            attn_ref_probs(node, &d, b, h, a->ref);
            for (int i = 0; i < d.T; i++)
                for (int c = 0; c < d.D; c++) {
                    double acc = 0.0;
                    for (int j = 0; j < d.T; j++)
                        acc += a->ref[(size_t)i * d.T + j] * (double)v[((size_t)b * d.T + j) * d.C + (size_t)h * d.D + c];
                    out[((size_t)b * d.T + i) * d.C + (size_t)h * d.D + c] = (float)acc;
                }
        }
}

void op_attention_backward_ref(TapeNode *node)
{
    AttnAttr *a = node->attr;
    AttnDims d = attn_dims(node);
    UL_CHECK(a->ref, "attention: ref backward without its scratch (tape.use_ref changed after construction?)");
    Tensor *q = node->in[0], *k = node->in[1], *v = node->in[2];
    const float *go = node->out->grad;
    double scale = 1.0 / sqrt((double)d.D);
    size_t TT = (size_t)d.T * d.T;
    double *P = a->ref, *dS = a->ref + TT;
#define AT(b, t, h, c) (((size_t)(b) * d.T + (t)) * d.C + (size_t)(h) * d.D + (c))
    for (int b = 0; b < d.B; b++)
        for (int h = 0; h < d.H; h++) {
            attn_ref_probs(node, &d, b, h, P);
            /* dS_ij = P_ij (dP_ij - sum_l P_il dP_il), dP_ij = sum_c dout_ic v_jc */
            for (int i = 0; i < d.T; i++) {
                double rowdot = 0.0;
                for (int j = 0; j < d.T; j++) {
                    double dp = 0.0;
                    for (int c = 0; c < d.D; c++) dp += (double)go[AT(b, i, h, c)] * (double)v->data[AT(b, j, h, c)];
                    dS[(size_t)i * d.T + j] = dp;
                    rowdot += P[(size_t)i * d.T + j] * dp;
                }
                for (int j = 0; j < d.T; j++)
                    dS[(size_t)i * d.T + j] = P[(size_t)i * d.T + j] * (dS[(size_t)i * d.T + j] - rowdot);
            }
            for (int i = 0; i < d.T; i++)
                for (int c = 0; c < d.D; c++) {
                    double gq = 0.0, gk = 0.0, gv = 0.0;
                    for (int j = 0; j < d.T; j++) {
                        gq += dS[(size_t)i * d.T + j] * (double)k->data[AT(b, j, h, c)];
                        gk += dS[(size_t)j * d.T + i] * (double)q->data[AT(b, j, h, c)];
                        gv += P[(size_t)j * d.T + i] * (double)go[AT(b, j, h, c)];
                    }
                    if (q->grad) q->grad[AT(b, i, h, c)] += (float)(gq * scale);
                    if (k->grad) k->grad[AT(b, i, h, c)] += (float)(gk * scale);
                    if (v->grad) v->grad[AT(b, i, h, c)] += (float)gv;
                }
        }
#undef AT
}

Tensor *op_attention(Tape *t, Tensor *q, Tensor *k, Tensor *v, int heads)
{
    char sq[64], sk[64], sv[64];
    UL_CHECK(q && k && v, "attention: q, k and v are required");
    UL_CHECK(q->ndim == 3 && tensor_same_shape(q, k) && tensor_same_shape(q, v),
             "attention: q, k, v must all be [B, T, C]; got q %s, k %s, v %s", tensor_shape_str(q, sq, sizeof sq),
             tensor_shape_str(k, sk, sizeof sk), tensor_shape_str(v, sv, sizeof sv));
    UL_CHECK(heads >= 1 && q->shape[2] % heads == 0, "attention: C = %d is not divisible by heads = %d", q->shape[2],
             heads);
    Tensor *in[3] = {q, k, v};
    bool g = tape_wants_grad(t, in, 3);
    Tensor *out = tensor_new(t->arena, 3, q->shape, g);
    AttnAttr *a = arena_calloc(t->arena, sizeof *a);
    int B = q->shape[0], T = q->shape[1];
    size_t TT = ul_mul_size((size_t)T, (size_t)T);
    a->heads = heads;
    a->nslot = kern_threads();
    a->saved = g && !t->use_ref;
    if (t->use_ref) {
        a->ref = arena_alloc(t->arena, ul_mul_size(ul_mul_size(2, TT), sizeof(double)));
    } else {
        size_t slots = a->saved ? ul_mul_size((size_t)B, (size_t)heads) : (size_t)a->nslot;
        a->P = arena_alloc(t->arena, ul_mul_size(ul_mul_size(slots, TT), sizeof(float)));
        if (a->saved) a->dP = arena_alloc(t->arena, ul_mul_size(ul_mul_size((size_t)a->nslot, TT), sizeof(float)));
    }
    tape_apply(t, OP_ATTENTION, out, in, 3, a);
    return out;
}

/* ======================================================================================================
 * reshape: an alias, no node.
 * ====================================================================================================== */

Tensor *op_reshape(Tape *t, Tensor *x, int ndim, const int *shape)
{
    char sx[64];
    UL_CHECK(ndim >= 1 && ndim <= TENSOR_MAX_DIMS, "reshape: rank %d outside [1, %d]", ndim, TENSOR_MAX_DIMS);
    for (int d = 0; d < ndim; d++) UL_CHECK(shape[d] >= 1, "reshape: dim %d of the new shape is %d", d, shape[d]);
    size_t n = tensor_numel(ndim, shape);
    UL_CHECK(n == x->n, "reshape: %s has %zu elements, the new shape has %zu", tensor_shape_str(x, sx, sizeof sx),
             x->n, n);
    return tensor_wrap(t->arena, x->data, x->grad, ndim, shape);
}

/* ======================================================================================================
 * permute: out.shape[i] = x.shape[perm[i]].
 * ====================================================================================================== */

typedef struct PermuteAttr {
    int perm[TENSOR_MAX_DIMS];
} PermuteAttr;

/* The out shape and, for each out dim, the stride of x along it, both padded in front to 4 dims. */
static void permute_plan(const TapeNode *node, size_t *oshape, size_t *istride)
{
    const PermuteAttr *a = node->attr;
    const Tensor *x = node->in[0];
    int nd = x->ndim, pad = TENSOR_MAX_DIMS - nd;
    size_t xs[TENSOR_MAX_DIMS], s = 1;
    for (int d = nd - 1; d >= 0; d--) {
        xs[d] = s;
        s *= (size_t)x->shape[d];
    }
    for (int d = 0; d < TENSOR_MAX_DIMS; d++) {
        oshape[d] = d < pad ? 1 : (size_t)x->shape[a->perm[d - pad]];
        istride[d] = d < pad ? 0 : xs[a->perm[d - pad]];
    }
}

/* Walks out in order; backward = false: out[o] = x[i], true: gx[i] += gout[o]. */
static void permute_walk(const TapeNode *node, bool backward)
{
    size_t os[TENSOR_MAX_DIMS], is[TENSOR_MAX_DIMS];
    permute_plan(node, os, is);
    const float *src = backward ? node->out->grad : node->in[0]->data;
    float *dst = backward ? node->in[0]->grad : node->out->data;
    size_t o = 0;
    for (size_t i0 = 0; i0 < os[0]; i0++)
        for (size_t i1 = 0; i1 < os[1]; i1++)
            for (size_t i2 = 0; i2 < os[2]; i2++, o += os[3]) {
                size_t base = i0 * is[0] + i1 * is[1] + i2 * is[2], s3 = is[3];
                if (backward) {
                    if (s3 == 1) add_into(dst + base, src + o, os[3]);
                    else for (size_t i3 = 0; i3 < os[3]; i3++) dst[base + i3 * s3] += src[o + i3];
                } else {
                    if (s3 == 1) memcpy(dst + o, src + base, os[3] * sizeof(float));
                    else for (size_t i3 = 0; i3 < os[3]; i3++) dst[o + i3] = src[base + i3 * s3];
                }
            }
}

void op_permute_forward(TapeNode *node) { permute_walk(node, false); }

void op_permute_backward(TapeNode *node)
{
    if (node->in[0]->grad) permute_walk(node, true);
}

/* Ref: walks x in order and places each element by its permuted coordinates. */
static void permute_ref(const TapeNode *node, bool backward)
{
    const PermuteAttr *a = node->attr;
    const Tensor *x = node->in[0], *out = node->out;
    int xc[TENSOR_MAX_DIMS], oc[TENSOR_MAX_DIMS];
    for (size_t i = 0; i < x->n; i++) {
        unravel(i, x->ndim, x->shape, xc);
        for (int d = 0; d < x->ndim; d++) oc[d] = xc[a->perm[d]];
        size_t o = ravel(out->ndim, out->shape, oc);
        if (backward) x->grad[i] += out->grad[o];
        else out->data[o] = x->data[i];
    }
}

void op_permute_forward_ref(TapeNode *node) { permute_ref(node, false); }

void op_permute_backward_ref(TapeNode *node)
{
    if (node->in[0]->grad) permute_ref(node, true);
}

Tensor *op_permute(Tape *t, Tensor *x, const int *perm)
{
    char sx[64];
    int nd = x->ndim, seen[TENSOR_MAX_DIMS] = {0}, shape[TENSOR_MAX_DIMS];
    PermuteAttr *a = arena_calloc(t->arena, sizeof *a);
    for (int d = 0; d < nd; d++) {
        UL_CHECK(perm[d] >= 0 && perm[d] < nd && !seen[perm[d]],
                 "permute: perm[%d] = %d is not part of a permutation of 0..%d (x %s)", d, perm[d], nd - 1,
                 tensor_shape_str(x, sx, sizeof sx));
        seen[perm[d]] = 1;
        a->perm[d] = perm[d];
        shape[d] = x->shape[perm[d]];
    }
    Tensor *out = tensor_new(t->arena, nd, shape, tape_wants_grad(t, &x, 1));
    tape_apply(t, OP_PERMUTE, out, &x, 1, a);
    return out;
}

Tensor *op_transpose(Tape *t, Tensor *x, int d0, int d1)
{
    char sx[64];
    UL_CHECK(d0 >= 0 && d0 < x->ndim && d1 >= 0 && d1 < x->ndim, "transpose: dims %d, %d out of range for x %s", d0,
             d1, tensor_shape_str(x, sx, sizeof sx));
    int perm[TENSOR_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) perm[d] = d;
    perm[d0] = d1;
    perm[d1] = d0;
    return op_permute(t, x, perm);
}

/* ======================================================================================================
 * slice: out = x[..., start:start+len, ...] along dim; chunk: n equal slices.
 * ====================================================================================================== */

typedef struct SliceAttr {
    int dim, start;
} SliceAttr;

static void slice_fast(const TapeNode *node, bool backward)
{
    const SliceAttr *a = node->attr;
    const Tensor *x = node->in[0];
    size_t outer, inner;
    dims_around(x, a->dim, &outer, &inner);
    size_t X = (size_t)x->shape[a->dim], L = (size_t)node->out->shape[a->dim], blk = L * inner;
    for (size_t o = 0; o < outer; o++) {
        size_t xo = (o * X + (size_t)a->start) * inner;
        if (backward) add_into(x->grad + xo, node->out->grad + o * blk, blk);
        else memcpy(node->out->data + o * blk, x->data + xo, blk * sizeof(float));
    }
}

void op_slice_forward(TapeNode *node) { slice_fast(node, false); }

void op_slice_backward(TapeNode *node)
{
    if (node->in[0]->grad) slice_fast(node, true);
}

static void slice_ref(const TapeNode *node, bool backward)
{
    const SliceAttr *a = node->attr;
    const Tensor *x = node->in[0], *out = node->out;
    int c[TENSOR_MAX_DIMS];
    for (size_t o = 0; o < out->n; o++) {
        unravel(o, out->ndim, out->shape, c);
        c[a->dim] += a->start;
        size_t i = ravel(x->ndim, x->shape, c);
        if (backward) x->grad[i] += out->grad[o];
        else out->data[o] = x->data[i];
    }
}

void op_slice_forward_ref(TapeNode *node) { slice_ref(node, false); }

void op_slice_backward_ref(TapeNode *node)
{
    if (node->in[0]->grad) slice_ref(node, true);
}

Tensor *op_slice(Tape *t, Tensor *x, int dim, int start, int len)
{
    char sx[64];
    UL_CHECK(dim >= 0 && dim < x->ndim, "slice: dim %d out of range for x %s", dim, tensor_shape_str(x, sx, sizeof sx));
    UL_CHECK(len >= 1 && start >= 0 && start <= x->shape[dim] - len,
             "slice: [%d, %d + %d) is not inside dim %d of x %s", start, start, len, dim,
             tensor_shape_str(x, sx, sizeof sx));
    int shape[TENSOR_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[dim] = len;
    Tensor *out = tensor_new(t->arena, x->ndim, shape, tape_wants_grad(t, &x, 1));
    SliceAttr *a = arena_calloc(t->arena, sizeof *a);
    a->dim = dim;
    a->start = start;
    tape_apply(t, OP_SLICE, out, &x, 1, a);
    return out;
}

void op_chunk(Tape *t, Tensor *x, int dim, int n, Tensor **out)
{
    char sx[64];
    UL_CHECK(dim >= 0 && dim < x->ndim, "chunk: dim %d out of range for x %s", dim, tensor_shape_str(x, sx, sizeof sx));
    UL_CHECK(n >= 1 && x->shape[dim] % n == 0, "chunk: dim %d of x %s does not split into %d equal pieces", dim,
             tensor_shape_str(x, sx, sizeof sx), n);
    int len = x->shape[dim] / n;
    for (int i = 0; i < n; i++) out[i] = op_slice(t, x, dim, i * len, len);
}

/* ======================================================================================================
 * concat: out = [a, b] along dim.
 * ====================================================================================================== */

typedef struct ConcatAttr {
    int dim;
} ConcatAttr;

static void concat_fast(const TapeNode *node, bool backward)
{
    const ConcatAttr *at = node->attr;
    const Tensor *a = node->in[0], *b = node->in[1];
    size_t outer, inner;
    dims_around(a, at->dim, &outer, &inner);
    size_t na = (size_t)a->shape[at->dim] * inner, nb = (size_t)b->shape[at->dim] * inner, no = na + nb;
    for (size_t o = 0; o < outer; o++) {
        if (backward) {
            if (a->grad) add_into(a->grad + o * na, node->out->grad + o * no, na);
            if (b->grad) add_into(b->grad + o * nb, node->out->grad + o * no + na, nb);
        } else {
            memcpy(node->out->data + o * no, a->data + o * na, na * sizeof(float));
            memcpy(node->out->data + o * no + na, b->data + o * nb, nb * sizeof(float));
        }
    }
}

void op_concat_forward(TapeNode *node) { concat_fast(node, false); }
void op_concat_backward(TapeNode *node) { concat_fast(node, true); }

static void concat_ref(const TapeNode *node, bool backward)
{
    const ConcatAttr *at = node->attr;
    const Tensor *a = node->in[0], *b = node->in[1], *out = node->out;
    int c[TENSOR_MAX_DIMS];
    for (size_t o = 0; o < out->n; o++) {
        unravel(o, out->ndim, out->shape, c);
        const Tensor *src = a;
        if (c[at->dim] >= a->shape[at->dim]) {
            c[at->dim] -= a->shape[at->dim];
            src = b;
        }
        size_t i = ravel(src->ndim, src->shape, c);
        if (!backward) out->data[o] = src->data[i];
        else if (src->grad) src->grad[i] += out->grad[o];
    }
}

void op_concat_forward_ref(TapeNode *node) { concat_ref(node, false); }
void op_concat_backward_ref(TapeNode *node) { concat_ref(node, true); }

Tensor *op_concat(Tape *t, Tensor *a, Tensor *b, int dim)
{
    char sa[64], sb[64];
    UL_CHECK(a->ndim == b->ndim && dim >= 0 && dim < a->ndim, "concat: a %s and b %s along dim %d",
             tensor_shape_str(a, sa, sizeof sa), tensor_shape_str(b, sb, sizeof sb), dim);
    int shape[TENSOR_MAX_DIMS];
    for (int d = 0; d < a->ndim; d++) {
        UL_CHECK(d == dim || a->shape[d] == b->shape[d], "concat: a %s and b %s differ in dim %d (concat dim %d)",
                 tensor_shape_str(a, sa, sizeof sa), tensor_shape_str(b, sb, sizeof sb), d, dim);
        shape[d] = d == dim ? a->shape[d] + b->shape[d] : a->shape[d];
    }
    Tensor *in[2] = {a, b};
    Tensor *out = tensor_new(t->arena, a->ndim, shape, tape_wants_grad(t, in, 2));
    ConcatAttr *at = arena_calloc(t->arena, sizeof *at);
    at->dim = dim;
    tape_apply(t, OP_CONCAT, out, in, 2, at);
    return out;
}

/* ======================================================================================================
 * embedding: out[r] = table[idx[r]]; backward scatters (and, for repeated indices, accumulates) into the table.
 * ====================================================================================================== */

typedef struct EmbeddingAttr {
    int *idx;         /* [count], copied into the arena */
    int count;
} EmbeddingAttr;

void op_embedding_forward(TapeNode *node)
{
    const EmbeddingAttr *a = node->attr;
    const Tensor *tab = node->in[0];
    size_t C = (size_t)tab->shape[1];
    for (int r = 0; r < a->count; r++)
        memcpy(node->out->data + (size_t)r * C, tab->data + (size_t)a->idx[r] * C, C * sizeof(float));
}

void op_embedding_backward(TapeNode *node)
{
    const EmbeddingAttr *a = node->attr;
    const Tensor *tab = node->in[0];
    if (!tab->grad) return;
    size_t C = (size_t)tab->shape[1];
    for (int r = 0; r < a->count; r++)
        add_into(tab->grad + (size_t)a->idx[r] * C, node->out->grad + (size_t)r * C, C);
}

void op_embedding_forward_ref(TapeNode *node)
{
    const EmbeddingAttr *a = node->attr;
    const Tensor *tab = node->in[0], *out = node->out;
    int C = tab->shape[1];
    for (size_t o = 0; o < out->n; o++) {
        int r = (int)(o / (size_t)C), c = (int)(o % (size_t)C);
        out->data[o] = tab->data[(size_t)a->idx[r] * C + c];
    }
}

/* Ref backward: for each table element, the double sum over the rows that looked it up. */
void op_embedding_backward_ref(TapeNode *node)
{
    const EmbeddingAttr *a = node->attr;
    const Tensor *tab = node->in[0];
    if (!tab->grad) return;
    int V = tab->shape[0], C = tab->shape[1];
    for (int vi = 0; vi < V; vi++)
        for (int c = 0; c < C; c++) {
            double acc = 0.0;
            for (int r = 0; r < a->count; r++)
                if (a->idx[r] == vi) acc += (double)node->out->grad[(size_t)r * C + c];
            tab->grad[(size_t)vi * C + c] += (float)acc;
        }
}

Tensor *op_embedding(Tape *t, Tensor *table, const int *idx, int count)
{
    char st[64];
    UL_CHECK(table->ndim == 2, "embedding: table must be [V, C], got %s", tensor_shape_str(table, st, sizeof st));
    UL_CHECK(count >= 1, "embedding: count = %d", count);
    EmbeddingAttr *a = arena_calloc(t->arena, sizeof *a);
    a->count = count;
    a->idx = arena_alloc(t->arena, ul_mul_size((size_t)count, sizeof(int)));
    for (int r = 0; r < count; r++) {
        UL_CHECK(idx[r] >= 0 && idx[r] < table->shape[0], "embedding: idx[%d] = %d outside [0, %d)", r, idx[r],
                 table->shape[0]);
        a->idx[r] = idx[r];
    }
    Tensor *out = tensor_new(t->arena, 2, (int[]){count, table->shape[1]}, tape_wants_grad(t, &table, 1));
    tape_apply(t, OP_EMBEDDING, out, &table, 1, a);
    return out;
}

/* ======================================================================================================
 * timestep_emb: no inputs, no gradient; evaluated in double, stored as float.
 *   freq_i = exp(-ln(max_period) * i / (half - shift)); cos_first: [cos(t f), sin(t f)] else [sin(t f), cos(t f)].
 * ====================================================================================================== */

typedef struct TimestepAttr {
    float *ts;        /* [B], copied into the arena */
    int dim, shift;
    float max_period;
    bool cos_first;
} TimestepAttr;

void op_timestep_emb_forward(TapeNode *node)
{
    const TimestepAttr *a = node->attr;
    int B = node->out->shape[0], half = a->dim / 2;
    double lnp = log((double)a->max_period);
    for (int i = 0; i < half; i++) {
        double f = exp(-lnp * i / (double)(half - a->shift));
        for (int b = 0; b < B; b++) {
            double arg = (double)a->ts[b] * f;
            float *row = node->out->data + (size_t)b * a->dim;
            row[i] = (float)(a->cos_first ? cos(arg) : sin(arg));
            row[half + i] = (float)(a->cos_first ? sin(arg) : cos(arg));
        }
    }
}

void op_timestep_emb_forward_ref(TapeNode *node)
{
    const TimestepAttr *a = node->attr;
    Tensor *out = node->out;
    int half = a->dim / 2;
    for (size_t o = 0; o < out->n; o++) {
        int b = (int)(o / (size_t)a->dim), j = (int)(o % (size_t)a->dim), i = j % half;
        bool first = j < half;
        double arg = (double)a->ts[b] * exp(-log((double)a->max_period) * i / (double)(half - a->shift));
        out->data[o] = (float)((first == a->cos_first) ? cos(arg) : sin(arg));
    }
}

/* Nothing to propagate: the op has no tensor inputs (ts is data, not differentiated) and its output carries no
   gradient, so the tape never records it. */
void op_timestep_emb_backward(TapeNode *node) { (void)node; }
void op_timestep_emb_backward_ref(TapeNode *node) { (void)node; }

Tensor *op_timestep_emb(Tape *t, const float *ts, int B, int dim, float max_period, int shift, bool cos_first)
{
    UL_CHECK(B >= 1, "timestep_emb: B = %d", B);
    UL_CHECK(dim >= 2 && dim % 2 == 0, "timestep_emb: dim = %d must be even and >= 2", dim);
    UL_CHECK(shift == 0 || shift == 1, "timestep_emb: shift = %d must be 0 (DiT) or 1 (DDPM)", shift);
    UL_CHECK(dim / 2 - shift >= 1, "timestep_emb: dim = %d too small for shift = %d (divides by half - shift)", dim,
             shift);
    UL_CHECK(max_period > 0.0f, "timestep_emb: max_period = %g must be > 0", (double)max_period);
    TimestepAttr *a = arena_calloc(t->arena, sizeof *a);
    a->ts = arena_alloc(t->arena, ul_mul_size((size_t)B, sizeof(float)));
    memcpy(a->ts, ts, (size_t)B * sizeof(float));
    a->dim = dim;
    a->shift = shift;
    a->max_period = max_period;
    a->cos_first = cos_first;
    Tensor *out = tensor_new(t->arena, 2, (int[]){B, dim}, false);
    tape_apply(t, OP_TIMESTEP_EMB, out, NULL, 0, a);
    return out;
}

/* ======================================================================================================
 * modulate: x [B, T, C], shift, scale [B, C] -> out[b, t, c] = x[b, t, c] * (1 + scale[b, c]) + shift[b, c].
 * ====================================================================================================== */

void op_modulate_forward(TapeNode *node)
{
    const Tensor *x = node->in[0], *sh = node->in[1], *sc = node->in[2];
    int B = x->shape[0], T = x->shape[1], C = x->shape[2];
    for (int b = 0; b < B; b++) {
        const float *shb = sh->data + (size_t)b * C, *scb = sc->data + (size_t)b * C;
        for (int t = 0; t < T; t++) {
            size_t off = ((size_t)b * T + t) * C;
            const float *xr = x->data + off;
            float *o = node->out->data + off;
            for (int c = 0; c < C; c++) o[c] = xr[c] * (1.0f + scb[c]) + shb[c];
        }
    }
}

void op_modulate_backward(TapeNode *node)
{
    const Tensor *x = node->in[0], *sh = node->in[1], *sc = node->in[2];
    int B = x->shape[0], T = x->shape[1], C = x->shape[2];
    for (int b = 0; b < B; b++) {
        const float *scb = sc->data + (size_t)b * C;
        for (int t = 0; t < T; t++) {
            size_t off = ((size_t)b * T + t) * C;
            const float *g = node->out->grad + off, *xr = x->data + off;
            if (x->grad)
                for (int c = 0; c < C; c++) x->grad[off + c] += g[c] * (1.0f + scb[c]);
            if (sh->grad) add_into(sh->grad + (size_t)b * C, g, (size_t)C);
            if (sc->grad)
                for (int c = 0; c < C; c++) sc->grad[(size_t)b * C + c] += g[c] * xr[c];
        }
    }
}

void op_modulate_forward_ref(TapeNode *node)
{
    const Tensor *x = node->in[0], *sh = node->in[1], *sc = node->in[2];
    int T = x->shape[1], C = x->shape[2];
    for (size_t i = 0; i < x->n; i++) {
        size_t b = i / ((size_t)T * C), c = i % (size_t)C;
        node->out->data[i] =
            (float)((double)x->data[i] * (1.0 + (double)sc->data[b * C + c]) + (double)sh->data[b * C + c]);
    }
}

/* Ref backward: the sums over tokens in double, one (b, c) at a time. */
void op_modulate_backward_ref(TapeNode *node)
{
    const Tensor *x = node->in[0], *sh = node->in[1], *sc = node->in[2];
    int B = x->shape[0], T = x->shape[1], C = x->shape[2];
    const float *g = node->out->grad;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            double gsh = 0.0, gsc = 0.0;
            for (int t = 0; t < T; t++) {
                size_t i = ((size_t)b * T + t) * C + c;
                gsh += (double)g[i];
                gsc += (double)g[i] * (double)x->data[i];
                if (x->grad) x->grad[i] += (float)((double)g[i] * (1.0 + (double)sc->data[(size_t)b * C + c]));
            }
            if (sh->grad) sh->grad[(size_t)b * C + c] += (float)gsh;
            if (sc->grad) sc->grad[(size_t)b * C + c] += (float)gsc;
        }
}

Tensor *op_modulate(Tape *t, Tensor *x, Tensor *shift, Tensor *scale)
{
    char sx[64], ssh[64], ssc[64];
    UL_CHECK(x && shift && scale, "modulate: x, shift and scale are required");
    UL_CHECK(x->ndim == 3 && shift->ndim == 2 && scale->ndim == 2 && shift->shape[0] == x->shape[0] &&
                 shift->shape[1] == x->shape[2] && tensor_same_shape(shift, scale),
             "modulate: want x [B, T, C], shift and scale [B, C]; got x %s, shift %s, scale %s",
             tensor_shape_str(x, sx, sizeof sx), tensor_shape_str(shift, ssh, sizeof ssh),
             tensor_shape_str(scale, ssc, sizeof ssc));
    Tensor *in[3] = {x, shift, scale};
    Tensor *out = tensor_new(t->arena, 3, x->shape, tape_wants_grad(t, in, 3));
    tape_apply(t, OP_MODULATE, out, in, 3, NULL);
    return out;
}

/* ======================================================================================================
 * unpatchify: x [B, h*w, p*p*C], token (i, j) at i*w + j holding (p_row, p_col, c) -> out [B, C, h*p, w*p],
 *     out[b, c, i*p + pr, j*p + pc] = x[b, i*w + j, (pr*p + pc)*C + c]
 * (PyTorch: x.reshape(B, h, w, p, p, C); einsum('nhwpqc->nchpwq'); reshape(B, C, h*p, w*p)).
 * ====================================================================================================== */

typedef struct UnpatchifyAttr {
    int p, C, h, w;
} UnpatchifyAttr;

/* Walks out in order (contiguous rows of w*p); backward = false copies x into out, true accumulates back. */
static void unpatchify_fast(const TapeNode *node, bool backward)
{
    const UnpatchifyAttr *a = node->attr;
    int B = node->out->shape[0], p = a->p, C = a->C, h = a->h, w = a->w;
    size_t tok = (size_t)p * p * C;
    const float *xs = backward ? NULL : node->in[0]->data;
    float *gx = backward ? node->in[0]->grad : NULL;
    float *od = node->out->data;
    const float *og = node->out->grad;
    size_t o = 0;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < h; i++)
                for (int pr = 0; pr < p; pr++)
                    for (int j = 0; j < w; j++) {
                        size_t xi = ((size_t)b * h * w + (size_t)i * w + j) * tok + (size_t)pr * p * C + c;
                        if (backward)
                            for (int pc = 0; pc < p; pc++, o++) gx[xi + (size_t)pc * C] += og[o];
                        else
                            for (int pc = 0; pc < p; pc++, o++) od[o] = xs[xi + (size_t)pc * C];
                    }
}

void op_unpatchify_forward(TapeNode *node) { unpatchify_fast(node, false); }

void op_unpatchify_backward(TapeNode *node)
{
    if (node->in[0]->grad) unpatchify_fast(node, true);
}

/* Ref: walks x in order, splitting each flat index into (b, i, j, pr, pc, c). */
static void unpatchify_ref(const TapeNode *node, bool backward)
{
    const UnpatchifyAttr *a = node->attr;
    const Tensor *x = node->in[0], *out = node->out;
    int xshape[6] = {out->shape[0], a->h, a->w, a->p, a->p, a->C}, xc[6];
    for (size_t xi = 0; xi < x->n; xi++) {
        unravel(xi, 6, xshape, xc);
        int oc[4] = {xc[0], xc[5], xc[1] * a->p + xc[3], xc[2] * a->p + xc[4]};
        size_t o = ravel(4, out->shape, oc);
        if (backward) x->grad[xi] += out->grad[o];
        else out->data[o] = x->data[xi];
    }
}

void op_unpatchify_forward_ref(TapeNode *node) { unpatchify_ref(node, false); }

void op_unpatchify_backward_ref(TapeNode *node)
{
    if (node->in[0]->grad) unpatchify_ref(node, true);
}

Tensor *op_unpatchify(Tape *t, Tensor *x, int p, int C, int h, int w)
{
    char sx[64];
    UL_CHECK(p >= 1 && C >= 1 && h >= 1 && w >= 1, "unpatchify: p = %d, C = %d, h = %d, w = %d must be >= 1", p, C, h,
             w);
    UL_CHECK(x->ndim == 3 && (long)x->shape[1] == (long)h * w && (long)x->shape[2] == (long)p * p * C,
             "unpatchify: x %s is not [B, h*w = %d, p*p*C = %d]", tensor_shape_str(x, sx, sizeof sx), h * w, p * p * C);
    UnpatchifyAttr *a = arena_calloc(t->arena, sizeof *a);
    a->p = p;
    a->C = C;
    a->h = h;
    a->w = w;
    Tensor *out = tensor_new(t->arena, 4, (int[]){x->shape[0], C, h * p, w * p}, tape_wants_grad(t, &x, 1));
    tape_apply(t, OP_UNPATCHIFY, out, &x, 1, a);
    return out;
}
