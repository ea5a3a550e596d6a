/*
 * ops_elem.c - elementwise arithmetic, broadcast add/mul, activations, dropout and the weighted sum
 * (contracts in include/ops.h).
 *
 * Each op: a constructor (shape checks, output from the tape's arena, attributes in an arena struct, tape_apply),
 * a fast forward/backward (OpenMP across blocks or rows once a tensor is big enough, vectorisable inner loops) and
 * a naive _ref twin (plain loops, double arithmetic) that tests/test_ops_elem.c judges the fast one against.
 * Backward ACCUMULATES into in[i]->grad wherever in[i] && in[i]->grad; it never overwrites.
 * Nothing here keeps a caller's pointer: dropout's row keys and weighted_sum's weights are copied into the arena.
 */
#include "fastmath.h"
#include "ops.h"
#include "rng.h"

#include <math.h>
#include <string.h>

/* Below this many elements a loop stays on one thread: spawning costs more than the work. */
#define ELEM_PAR_MIN 32768

/* ------------------------------------------------------------------ shared helpers */

static void elem_check_same(const char *op, const Tensor *x, const Tensor *y)
{
    char a[64], b[64];
    UL_CHECK(x && y, "op_%s: NULL input", op);
    UL_CHECK(tensor_same_shape(x, y), "op_%s: inputs must have the same shape, got %s and %s", op,
             tensor_shape_str(x, a, sizeof a), tensor_shape_str(y, b, sizeof b));
}

/* The output of a shape-preserving op: x's shape, a gradient when some input carries one. */
static Tensor *elem_out_like(Tape *t, const Tensor *x, Tensor *const *in, int nin)
{
    return tensor_new(t->arena, x->ndim, x->shape, tape_wants_grad(t, in, nin));
}

/* dst[i] += a * src[i].  dst must not overlap src. */
static void elem_axpy(float *restrict dst, float a, const float *restrict src, size_t n)
{
#pragma omp parallel for simd if (parallel : n >= ELEM_PAR_MIN) schedule(simd : static)
    for (size_t i = 0; i < n; i++) dst[i] += a * src[i];
}

/* dst[i] += a[i] * b[i].  dst must not overlap a or b. */
static void elem_acc_mul(float *restrict dst, const float *restrict a, const float *restrict b, size_t n)
{
#pragma omp parallel for simd if (parallel : n >= ELEM_PAR_MIN) schedule(simd : static)
    for (size_t i = 0; i < n; i++) dst[i] += a[i] * b[i];
}

/* ------------------------------------------------------------------ add, sub, mul, scale */

Tensor *op_add(Tape *t, Tensor *x, Tensor *y)
{
    elem_check_same("add", x, y);
    Tensor *in[2] = {x, y};
    Tensor *out = elem_out_like(t, x, in, 2);
    tape_apply(t, OP_ADD, out, in, 2, NULL);
    return out;
}

Tensor *op_sub(Tape *t, Tensor *x, Tensor *y)
{
    elem_check_same("sub", x, y);
    Tensor *in[2] = {x, y};
    Tensor *out = elem_out_like(t, x, in, 2);
    tape_apply(t, OP_SUB, out, in, 2, NULL);
    return out;
}

Tensor *op_mul(Tape *t, Tensor *x, Tensor *y)
{
    elem_check_same("mul", x, y);
    Tensor *in[2] = {x, y};
    Tensor *out = elem_out_like(t, x, in, 2);
    tape_apply(t, OP_MUL, out, in, 2, NULL);
    return out;
}

typedef struct ScaleAttr {
    float c;
} ScaleAttr;

Tensor *op_scale(Tape *t, Tensor *x, float c)
{
    UL_CHECK(x, "op_scale: NULL input");
    ScaleAttr *a = arena_alloc(t->arena, sizeof *a);
    a->c = c;
    Tensor *out = elem_out_like(t, x, &x, 1);
    tape_apply(t, OP_SCALE, out, &x, 1, a);
    return out;
}

/* out [n] = x [n] + y [n] */
void op_add_forward(TapeNode *node)
{
    const float *restrict x = node->in[0]->data, *restrict y = node->in[1]->data;
    float *restrict o = node->out->data;
    size_t n = node->out->n;
#pragma omp parallel for simd if (parallel : n >= ELEM_PAR_MIN) schedule(simd : static)
    for (size_t i = 0; i < n; i++) o[i] = x[i] + y[i];
}

void op_add_backward(TapeNode *node)
{
    const float *g = node->out->grad;
    size_t n = node->out->n;
    if (node->in[0]->grad) elem_axpy(node->in[0]->grad, 1.0f, g, n);
    if (node->in[1]->grad) elem_axpy(node->in[1]->grad, 1.0f, g, n);
}

void op_add_forward_ref(TapeNode *node)
{
    for (size_t i = 0; i < node->out->n; i++) node->out->data[i] = node->in[0]->data[i] + node->in[1]->data[i];
}

void op_add_backward_ref(TapeNode *node)
{
    for (size_t i = 0; i < node->out->n; i++) {
        if (node->in[0]->grad) node->in[0]->grad[i] += node->out->grad[i];
        if (node->in[1]->grad) node->in[1]->grad[i] += node->out->grad[i];
    }
}

/* out [n] = x [n] - y [n] */
void op_sub_forward(TapeNode *node)
{
    const float *restrict x = node->in[0]->data, *restrict y = node->in[1]->data;
    float *restrict o = node->out->data;
    size_t n = node->out->n;
#pragma omp parallel for simd if (parallel : n >= ELEM_PAR_MIN) schedule(simd : static)
    for (size_t i = 0; i < n; i++) o[i] = x[i] - y[i];
}

void op_sub_backward(TapeNode *node)
{
    const float *g = node->out->grad;
    size_t n = node->out->n;
    if (node->in[0]->grad) elem_axpy(node->in[0]->grad, 1.0f, g, n);
    if (node->in[1]->grad) elem_axpy(node->in[1]->grad, -1.0f, g, n);
}

void op_sub_forward_ref(TapeNode *node)
{
    for (size_t i = 0; i < node->out->n; i++) node->out->data[i] = node->in[0]->data[i] - node->in[1]->data[i];
}

void op_sub_backward_ref(TapeNode *node)
{
    for (size_t i = 0; i < node->out->n; i++) {
        if (node->in[0]->grad) node->in[0]->grad[i] += node->out->grad[i];
        if (node->in[1]->grad) node->in[1]->grad[i] -= node->out->grad[i];
    }
}

/* out [n] = x [n] * y [n] */
void op_mul_forward(TapeNode *node)
{
    const float *restrict x = node->in[0]->data, *restrict y = node->in[1]->data;
    float *restrict o = node->out->data;
    size_t n = node->out->n;
#pragma omp parallel for simd if (parallel : n >= ELEM_PAR_MIN) schedule(simd : static)
    for (size_t i = 0; i < n; i++) o[i] = x[i] * y[i];
}

void op_mul_backward(TapeNode *node)
{
    const float *g = node->out->grad;
    size_t n = node->out->n;
    /* Two separate passes, so that op_mul(t, x, x) (the same grad twice) accumulates 2 x g correctly. */
    if (node->in[0]->grad) elem_acc_mul(node->in[0]->grad, g, node->in[1]->data, n);
    if (node->in[1]->grad) elem_acc_mul(node->in[1]->grad, g, node->in[0]->data, n);
}

void op_mul_forward_ref(TapeNode *node)
{
    for (size_t i = 0; i < node->out->n; i++) node->out->data[i] = node->in[0]->data[i] * node->in[1]->data[i];
}

void op_mul_backward_ref(TapeNode *node)
{
    for (size_t i = 0; i < node->out->n; i++) {
        float g = node->out->grad[i];
        if (node->in[0]->grad) node->in[0]->grad[i] += g * node->in[1]->data[i];
        if (node->in[1]->grad) node->in[1]->grad[i] += g * node->in[0]->data[i];
    }
}

/* out [n] = c * x [n] */
void op_scale_forward(TapeNode *node)
{
    const float *restrict x = node->in[0]->data;
    float *restrict o = node->out->data;
    float c = ((const ScaleAttr *)node->attr)->c;
    size_t n = node->out->n;
#pragma omp parallel for simd if (parallel : n >= ELEM_PAR_MIN) schedule(simd : static)
    for (size_t i = 0; i < n; i++) o[i] = c * x[i];
}

void op_scale_backward(TapeNode *node)
{
    if (node->in[0]->grad)
        elem_axpy(node->in[0]->grad, ((const ScaleAttr *)node->attr)->c, node->out->grad, node->out->n);
}

void op_scale_forward_ref(TapeNode *node)
{
    float c = ((const ScaleAttr *)node->attr)->c;
    for (size_t i = 0; i < node->out->n; i++) node->out->data[i] = c * node->in[0]->data[i];
}

void op_scale_backward_ref(TapeNode *node)
{
    float c = ((const ScaleAttr *)node->attr)->c;
    if (!node->in[0]->grad) return;
    for (size_t i = 0; i < node->out->n; i++) node->in[0]->grad[i] += c * node->out->grad[i];
}

/* ------------------------------------------------------------------ add_bcast, mul_bcast
 *
 * The fast kernels see x through a plan of 4 merged dims: size-1 dims of x are dropped, neighbouring dims where
 * y broadcasts alike are merged, and the result is padded with 1s on the left. Example: x [B, C, H, W] with
 * y [1, C, 1, 1] becomes s = [1, B, C, H*W] with y strides [0, 0, 1, 0]. The innermost dim is then a contiguous
 * run of x against either one y value or a contiguous run of y. The _ref twins use the original shapes.
 */

typedef struct BcastAttr {
    size_t s[4];    /* x's merged, left-padded shape */
    size_t ys[4];   /* y's stride (elements) along each merged dim; 0 where y broadcasts */
    int par;        /* backward to y runs in parallel over merged dim par (in 0..2, y not broadcast there, size
                       > 1: different indices write different y elements); -1: serial */
    double *acc;    /* [y's n] arena scratch: y's gradient is summed here in double before it is added to y->grad;
                       NULL when y gets no gradient or does not broadcast (one term per element) */
} BcastAttr;

static BcastAttr *bcast_plan(Tape *t, const char *op, const Tensor *x, Tensor *y)
{
    char a[64], b[64];
    UL_CHECK(x && y, "op_%s: NULL input", op);
    UL_CHECK(x->ndim == y->ndim, "op_%s: y %s must have x's rank (x is %s)", op, tensor_shape_str(y, b, sizeof b),
             tensor_shape_str(x, a, sizeof a));
    for (int d = 0; d < x->ndim; d++)
        UL_CHECK(y->shape[d] == x->shape[d] || y->shape[d] == 1,
                 "op_%s: y %s does not broadcast to x %s (dim %d must be %d or 1)", op,
                 tensor_shape_str(y, b, sizeof b), tensor_shape_str(x, a, sizeof a), d, x->shape[d]);
    size_t ms[TENSOR_MAX_DIMS];
    int mb[TENSOR_MAX_DIMS], m = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (x->shape[d] == 1) continue;
        int bc = y->shape[d] == 1;
        if (m > 0 && mb[m - 1] == bc) {
            ms[m - 1] *= (size_t)x->shape[d];
        } else {
            ms[m] = (size_t)x->shape[d];
            mb[m] = bc;
            m++;
        }
    }
    BcastAttr *p = arena_alloc(t->arena, sizeof *p);
    int off = 4 - m;
    size_t stride = 1;
    for (int k = 3; k >= 0; k--) {
        if (k < off) {
            p->s[k] = 1;
            p->ys[k] = 0;
            continue;
        }
        p->s[k] = ms[k - off];
        p->ys[k] = mb[k - off] ? 0 : stride;
        if (!mb[k - off]) stride *= ms[k - off];
    }
    p->par = -1;
    for (int k = 0; k < 3 && p->par < 0; k++)
        if (p->ys[k] != 0 && p->s[k] > 1) p->par = k;
    bool need = tape_wants_grad(t, &y, 1) && y->n < x->n;
    p->acc = need ? arena_alloc(t->arena, ul_mul_size(y->n, sizeof(double))) : NULL;
    return p;
}

Tensor *op_add_bcast(Tape *t, Tensor *x, Tensor *y)
{
    BcastAttr *p = bcast_plan(t, "add_bcast", x, y);
    Tensor *in[2] = {x, y};
    Tensor *out = elem_out_like(t, x, in, 2);
    tape_apply(t, OP_ADD_BCAST, out, in, 2, p);
    return out;
}

Tensor *op_mul_bcast(Tape *t, Tensor *x, Tensor *y)
{
    BcastAttr *p = bcast_plan(t, "mul_bcast", x, y);
    Tensor *in[2] = {x, y};
    Tensor *out = elem_out_like(t, x, in, 2);
    tape_apply(t, OP_MUL_BCAST, out, in, 2, p);
    return out;
}

enum { BCAST_ADD, BCAST_MUL, BCAST_ACC_MUL };

/* Row by row over x's merged shape: o = a + y_b (BCAST_ADD), o = a * y_b (BCAST_MUL) or o += a * y_b
   (BCAST_ACC_MUL), where a and o have x's shape and y_b is y broadcast to it. */
static void bcast_rows(const BcastAttr *p, int mode, float *o, const float *a, const float *y)
{
    size_t s1 = p->s[1], s2 = p->s[2], s3 = p->s[3], rows = p->s[0] * s1 * s2;
#pragma omp parallel for if (rows * s3 >= ELEM_PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        size_t i2 = r % s2, q = r / s2, i1 = q % s1, i0 = q / s1;
        const float *restrict ar = a + r * s3;
        const float *restrict yr = y + i0 * p->ys[0] + i1 * p->ys[1] + i2 * p->ys[2];
        float *restrict orow = o + r * s3;
        if (p->ys[3] == 0) {
            float v = yr[0];
            if (mode == BCAST_ADD) {
#pragma omp simd
                for (size_t k = 0; k < s3; k++) orow[k] = ar[k] + v;
            } else if (mode == BCAST_MUL) {
#pragma omp simd
                for (size_t k = 0; k < s3; k++) orow[k] = ar[k] * v;
            } else {
#pragma omp simd
                for (size_t k = 0; k < s3; k++) orow[k] += ar[k] * v;
            }
        } else {
            if (mode == BCAST_ADD) {
#pragma omp simd
                for (size_t k = 0; k < s3; k++) orow[k] = ar[k] + yr[k];
            } else if (mode == BCAST_MUL) {
#pragma omp simd
                for (size_t k = 0; k < s3; k++) orow[k] = ar[k] * yr[k];
            } else {
#pragma omp simd
                for (size_t k = 0; k < s3; k++) orow[k] += ar[k] * yr[k];
            }
        }
    }
}

/* gy [ny] += sum over the broadcast dims of g (x == NULL) or of g * x (g and x have x's shape). With p->acc the sums
   are formed in double first (a y element may collect ~1e5 terms), then added to gy. */
static void bcast_reduce(const BcastAttr *p, float *gy, size_t ny, const float *g, const float *x)
{
    size_t s[4] = {p->s[0], p->s[1], p->s[2], p->s[3]}, n = s[0] * s[1] * s[2] * s[3];
    if (!p->acc) {  /* no broadcast: one term per element */
        if (x)
            elem_acc_mul(gy, g, x, n);
        else
            elem_axpy(gy, 1.0f, g, n);
        return;
    }
    double *acc = p->acc;
    memset(acc, 0, ny * sizeof *acc);
    int par = p->par;
    size_t np = par >= 0 ? s[par] : 1;
#pragma omp parallel for if (n >= ELEM_PAR_MIN && np > 1) schedule(static)
    for (size_t ip = 0; ip < np; ip++) {
        size_t lo[3], hi[3];
        for (int d = 0; d < 3; d++) {
            lo[d] = d == par ? ip : 0;
            hi[d] = d == par ? ip + 1 : s[d];
        }
        for (size_t i0 = lo[0]; i0 < hi[0]; i0++)
            for (size_t i1 = lo[1]; i1 < hi[1]; i1++)
                for (size_t i2 = lo[2]; i2 < hi[2]; i2++) {
                    size_t r = (i0 * s[1] + i1) * s[2] + i2;
                    const float *restrict gr = g + r * s[3];
                    const float *restrict xr = x ? x + r * s[3] : NULL;
                    double *restrict ar = acc + i0 * p->ys[0] + i1 * p->ys[1] + i2 * p->ys[2];
                    if (p->ys[3] == 0) {
                        double sum = 0.0;
                        if (xr) {
#pragma omp simd reduction(+ : sum)
                            for (size_t k = 0; k < s[3]; k++) sum += (double)gr[k] * (double)xr[k];
                        } else {
#pragma omp simd reduction(+ : sum)
                            for (size_t k = 0; k < s[3]; k++) sum += (double)gr[k];
                        }
                        ar[0] += sum;
                    } else if (xr) {
#pragma omp simd
                        for (size_t k = 0; k < s[3]; k++) ar[k] += (double)gr[k] * (double)xr[k];
                    } else {
#pragma omp simd
                        for (size_t k = 0; k < s[3]; k++) ar[k] += (double)gr[k];
                    }
                }
    }
#pragma omp parallel for simd if (parallel : ny >= ELEM_PAR_MIN) schedule(simd : static)
    for (size_t i = 0; i < ny; i++) gy[i] += (float)acc[i];
}

void op_add_bcast_forward(TapeNode *node)
{
    bcast_rows(node->attr, BCAST_ADD, node->out->data, node->in[0]->data, node->in[1]->data);
}

void op_add_bcast_backward(TapeNode *node)
{
    if (node->in[0]->grad) elem_axpy(node->in[0]->grad, 1.0f, node->out->grad, node->out->n);
    if (node->in[1]->grad) bcast_reduce(node->attr, node->in[1]->grad, node->in[1]->n, node->out->grad, NULL);
}

void op_mul_bcast_forward(TapeNode *node)
{
    bcast_rows(node->attr, BCAST_MUL, node->out->data, node->in[0]->data, node->in[1]->data);
}

void op_mul_bcast_backward(TapeNode *node)
{
    if (node->in[0]->grad)
        bcast_rows(node->attr, BCAST_ACC_MUL, node->in[0]->grad, node->out->grad, node->in[1]->data);
    if (node->in[1]->grad)
        bcast_reduce(node->attr, node->in[1]->grad, node->in[1]->n, node->out->grad, node->in[0]->data);
}

/* The _ref twins: original shapes left-padded to 4 dims, one multi-index per element. */
static void bcast_ref_shapes(const TapeNode *node, size_t xs[4], size_t ysh[4])
{
    const Tensor *x = node->in[0], *y = node->in[1];
    int off = 4 - x->ndim;
    for (int d = 0; d < 4; d++) {
        xs[d] = d < off ? 1 : (size_t)x->shape[d - off];
        ysh[d] = d < off ? 1 : (size_t)y->shape[d - off];
    }
}

/* Index into y of x's flat element i. */
static size_t bcast_ref_yindex(const size_t xs[4], const size_t ysh[4], size_t i)
{
    size_t idx[4];
    for (int d = 3; d >= 0; d--) {
        idx[d] = i % xs[d];
        i /= xs[d];
    }
    size_t yi = 0;
    for (int d = 0; d < 4; d++) yi = yi * ysh[d] + (ysh[d] == 1 ? 0 : idx[d]);
    return yi;
}

static void bcast_ref_forward(TapeNode *node, int mul)
{
    size_t xs[4], ysh[4];
    bcast_ref_shapes(node, xs, ysh);
    const float *x = node->in[0]->data, *y = node->in[1]->data;
    for (size_t i = 0; i < node->out->n; i++) {
        float yv = y[bcast_ref_yindex(xs, ysh, i)];
        node->out->data[i] = mul ? x[i] * yv : x[i] + yv;
    }
}

static void bcast_ref_backward(TapeNode *node, int mul)
{
    size_t xs[4], ysh[4];
    bcast_ref_shapes(node, xs, ysh);
    const Tensor *x = node->in[0], *y = node->in[1];
    const float *g = node->out->grad;
    if (x->grad)
        for (size_t i = 0; i < x->n; i++)
            x->grad[i] += mul ? g[i] * y->data[bcast_ref_yindex(xs, ysh, i)] : g[i];
    if (!y->grad) return;
    /* Each y element sums g (times x) over every x element that maps to it. */
    for (size_t yi = 0; yi < y->n; yi++) {
        size_t yidx[4], rest = yi;
        for (int d = 3; d >= 0; d--) {
            yidx[d] = rest % ysh[d];
            rest /= ysh[d];
        }
        size_t lo[4], hi[4];
        for (int d = 0; d < 4; d++) {
            lo[d] = ysh[d] == 1 ? 0 : yidx[d];
            hi[d] = ysh[d] == 1 ? xs[d] : yidx[d] + 1;
        }
        double acc = 0.0;
        for (size_t a0 = lo[0]; a0 < hi[0]; a0++)
            for (size_t a1 = lo[1]; a1 < hi[1]; a1++)
                for (size_t a2 = lo[2]; a2 < hi[2]; a2++)
                    for (size_t a3 = lo[3]; a3 < hi[3]; a3++) {
                        size_t i = ((a0 * xs[1] + a1) * xs[2] + a2) * xs[3] + a3;
                        acc += mul ? (double)g[i] * (double)x->data[i] : (double)g[i];
                    }
        y->grad[yi] += (float)acc;
    }
}

void op_add_bcast_forward_ref(TapeNode *node) { bcast_ref_forward(node, 0); }
void op_add_bcast_backward_ref(TapeNode *node) { bcast_ref_backward(node, 0); }
void op_mul_bcast_forward_ref(TapeNode *node) { bcast_ref_forward(node, 1); }
void op_mul_bcast_backward_ref(TapeNode *node) { bcast_ref_backward(node, 1); }

/* ------------------------------------------------------------------ relu, silu, gelu_tanh */

Tensor *op_relu(Tape *t, Tensor *x)
{
    UL_CHECK(x, "op_relu: NULL input");
    Tensor *out = elem_out_like(t, x, &x, 1);
    tape_apply(t, OP_RELU, out, &x, 1, NULL);
    return out;
}

Tensor *op_silu(Tape *t, Tensor *x)
{
    UL_CHECK(x, "op_silu: NULL input");
    Tensor *out = elem_out_like(t, x, &x, 1);
    tape_apply(t, OP_SILU, out, &x, 1, NULL);
    return out;
}

Tensor *op_gelu_tanh(Tape *t, Tensor *x)
{
    UL_CHECK(x, "op_gelu_tanh: NULL input");
    Tensor *out = elem_out_like(t, x, &x, 1);
    tape_apply(t, OP_GELU_TANH, out, &x, 1, NULL);
    return out;
}

/* out = max(x, 0); the derivative at x == 0 is taken as 0 (PyTorch's choice). */
void op_relu_forward(TapeNode *node)
{
    const float *restrict x = node->in[0]->data;
    float *restrict o = node->out->data;
    size_t n = node->out->n;
#pragma omp parallel for simd if (parallel : n >= ELEM_PAR_MIN) schedule(simd : static)
    for (size_t i = 0; i < n; i++) o[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void op_relu_backward(TapeNode *node)
{
    float *restrict gx = node->in[0]->grad;
    if (!gx) return;
    const float *restrict x = node->in[0]->data, *restrict g = node->out->grad;
    size_t n = node->out->n;
#pragma omp parallel for simd if (parallel : n >= ELEM_PAR_MIN) schedule(simd : static)
    for (size_t i = 0; i < n; i++) gx[i] += x[i] > 0.0f ? g[i] : 0.0f;
}

void op_relu_forward_ref(TapeNode *node)
{
    for (size_t i = 0; i < node->out->n; i++) {
        float v = node->in[0]->data[i];
        node->out->data[i] = v > 0.0f ? v : 0.0f;
    }
}

void op_relu_backward_ref(TapeNode *node)
{
    if (!node->in[0]->grad) return;
    for (size_t i = 0; i < node->out->n; i++)
        if (node->in[0]->data[i] > 0.0f) node->in[0]->grad[i] += node->out->grad[i];
}

/* 1 / (1 + e^-z) */
static inline float elem_sigmoidf(float z) { return 1.0f / (1.0f + fm_expf(-z)); }

/* out = x * sigmoid(x);  d/dx = s (1 + x (1 - s)) with s = sigmoid(x). */
void op_silu_forward(TapeNode *node)
{
    const float *restrict x = node->in[0]->data;
    float *restrict o = node->out->data;
    size_t n = node->out->n;
#pragma omp parallel for simd if (parallel : n >= ELEM_PAR_MIN) schedule(simd : static)
    for (size_t i = 0; i < n; i++) o[i] = x[i] * elem_sigmoidf(x[i]);
}

void op_silu_backward(TapeNode *node)
{
    float *restrict gx = node->in[0]->grad;
    if (!gx) return;
    const float *restrict x = node->in[0]->data, *restrict g = node->out->grad;
    size_t n = node->out->n;
#pragma omp parallel for simd if (parallel : n >= ELEM_PAR_MIN) schedule(simd : static)
    for (size_t i = 0; i < n; i++) {
        float s = elem_sigmoidf(x[i]);
        gx[i] += g[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

void op_silu_forward_ref(TapeNode *node)
{
    for (size_t i = 0; i < node->out->n; i++) {
        double v = node->in[0]->data[i];
        node->out->data[i] = (float)(v / (1.0 + exp(-v)));
    }
}

void op_silu_backward_ref(TapeNode *node)
{
    if (!node->in[0]->grad) return;
    for (size_t i = 0; i < node->out->n; i++) {
        double v = node->in[0]->data[i], s = 1.0 / (1.0 + exp(-v));
        node->in[0]->grad[i] += (float)((double)node->out->grad[i] * s * (1.0 + v * (1.0 - s)));
    }
}

/* out = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3)   (PyTorch's approximate="tanh");
   d/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2).
   The fast kernels use 0.5 (1 + tanh u) = sigmoid(2u) =: s, so out = x s and d/dx = s + 2 x s (1 - s) u'. */
#define GELU_K0 0.7978845608028654 /* sqrt(2/pi) */
#define GELU_K1 0.044715

void op_gelu_tanh_forward(TapeNode *node)
{
    const float *restrict x = node->in[0]->data;
    float *restrict o = node->out->data;
    size_t n = node->out->n;
    const float k0 = (float)GELU_K0, k1 = (float)GELU_K1;
#pragma omp parallel for simd if (parallel : n >= ELEM_PAR_MIN) schedule(simd : static)
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        o[i] = v * elem_sigmoidf(2.0f * k0 * (v + k1 * v * v * v));
    }
}

void op_gelu_tanh_backward(TapeNode *node)
{
    float *restrict gx = node->in[0]->grad;
    if (!gx) return;
    const float *restrict x = node->in[0]->data, *restrict g = node->out->grad;
    size_t n = node->out->n;
    const float k0 = (float)GELU_K0, k1 = (float)GELU_K1;
#pragma omp parallel for simd if (parallel : n >= ELEM_PAR_MIN) schedule(simd : static)
    for (size_t i = 0; i < n; i++) {
        float v = x[i], s = elem_sigmoidf(2.0f * k0 * (v + k1 * v * v * v));
        gx[i] += g[i] * (s + 2.0f * v * s * (1.0f - s) * k0 * (1.0f + 3.0f * k1 * v * v));
    }
}

void op_gelu_tanh_forward_ref(TapeNode *node)
{
    for (size_t i = 0; i < node->out->n; i++) {
        double v = node->in[0]->data[i];
        node->out->data[i] = (float)(0.5 * v * (1.0 + tanh(GELU_K0 * (v + GELU_K1 * v * v * v))));
    }
}

void op_gelu_tanh_backward_ref(TapeNode *node)
{
    if (!node->in[0]->grad) return;
    for (size_t i = 0; i < node->out->n; i++) {
        double v = node->in[0]->data[i], th = tanh(GELU_K0 * (v + GELU_K1 * v * v * v));
        double d = 0.5 * (1.0 + th) + 0.5 * v * (1.0 - th * th) * GELU_K0 * (1.0 + 3.0 * GELU_K1 * v * v);
        node->in[0]->grad[i] += (float)((double)node->out->grad[i] * d);
    }
}

/* ------------------------------------------------------------------ dropout
 *
 * Element j of row r (rows = dim 0, j in [0, n / rows)) is kept iff rng_uniform(seed, key_r, j) >= p, with
 * key_r = row_keys[r] (or r). Kept elements are scaled by 1 / (1 - p). The mask is never stored: backward
 * recomputes it from the same pure function. Give different dropout sites different seeds.
 */

typedef struct DropoutAttr {
    float p, scale;       /* drop probability in [0, 1); 1 / (1 - p) */
    uint64_t seed;
    const int64_t *keys;  /* [rows] arena copy of row_keys, or NULL: the key of row r is r */
    size_t rows, cols;    /* rows = x.shape[0], cols = n / rows */
    bool active;          /* t->training && p > 0; otherwise the op is the identity and draws nothing */
} DropoutAttr;

Tensor *op_dropout(Tape *t, Tensor *x, float p, uint64_t seed, const int64_t *row_keys)
{
    UL_CHECK(x, "op_dropout: NULL input");
    UL_CHECK(p >= 0.0f && p < 1.0f, "op_dropout: p = %g outside [0, 1)", (double)p);
    DropoutAttr *a = arena_alloc(t->arena, sizeof *a);
    a->p = p;
    a->scale = 1.0f / (1.0f - p);
    a->seed = seed;
    a->rows = (size_t)x->shape[0];
    a->cols = a->rows ? x->n / a->rows : 0;
    a->active = t->training && p > 0.0f;
    a->keys = NULL;
    if (a->active && row_keys) {
        int64_t *k = arena_alloc(t->arena, ul_mul_size(a->rows, sizeof *k));
        memcpy(k, row_keys, a->rows * sizeof *k);
        a->keys = k;
    }
    Tensor *out = elem_out_like(t, x, &x, 1);
    tape_apply(t, OP_DROPOUT, out, &x, 1, a);
    return out;
}

static inline uint64_t dropout_key(const DropoutAttr *a, size_t r)
{
    return a->keys ? (uint64_t)a->keys[r] : (uint64_t)r;
}

/* Multiplier of element j of row r: scale if kept, else 0 (active dropout only). */
static inline float dropout_factor(const DropoutAttr *a, uint64_t key, size_t j)
{
    return rng_uniform(a->seed, key, j) >= a->p ? a->scale : 0.0f;
}

/* o [rows, cols] (+)= x * factor; acc selects accumulate (backward) or overwrite (forward). */
static void dropout_apply(const DropoutAttr *a, float *restrict o, const float *restrict x, int acc)
{
    size_t rows = a->rows, cols = a->cols;
#pragma omp parallel for collapse(2) if (rows * cols >= ELEM_PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < cols; j++) {
            size_t i = r * cols + j;
            float v = x[i] * dropout_factor(a, dropout_key(a, r), j);
            o[i] = acc ? o[i] + v : v;
        }
}

void op_dropout_forward(TapeNode *node)
{
    const DropoutAttr *a = node->attr;
    if (!a->active) {
        memcpy(node->out->data, node->in[0]->data, node->out->n * sizeof(float));
        return;
    }
    dropout_apply(a, node->out->data, node->in[0]->data, 0);
}

void op_dropout_backward(TapeNode *node)
{
    const DropoutAttr *a = node->attr;
    if (!node->in[0]->grad) return;
    if (!a->active) {
        elem_axpy(node->in[0]->grad, 1.0f, node->out->grad, node->out->n);
        return;
    }
    dropout_apply(a, node->in[0]->grad, node->out->grad, 1);
}

void op_dropout_forward_ref(TapeNode *node)
{
    const DropoutAttr *a = node->attr;
    for (size_t i = 0; i < node->out->n; i++) {
        float v = node->in[0]->data[i];
        if (a->active) {
            size_t r = i / a->cols, j = i % a->cols;
            uint64_t key = a->keys ? (uint64_t)a->keys[r] : (uint64_t)r;
            v = rng_uniform(a->seed, key, j) >= a->p ? v / (1.0f - a->p) : 0.0f;
        }
        node->out->data[i] = v;
    }
}

void op_dropout_backward_ref(TapeNode *node)
{
    const DropoutAttr *a = node->attr;
    if (!node->in[0]->grad) return;
    for (size_t i = 0; i < node->out->n; i++) {
        float g = node->out->grad[i];
        if (a->active) {
            size_t r = i / a->cols, j = i % a->cols;
            uint64_t key = a->keys ? (uint64_t)a->keys[r] : (uint64_t)r;
            g = rng_uniform(a->seed, key, j) >= a->p ? g / (1.0f - a->p) : 0.0f;
        }
        node->in[0]->grad[i] += g;
    }
}

/* ------------------------------------------------------------------ weighted_sum */

typedef struct WeightedSumAttr {
    float *w;   /* [B] arena copy of the caller's weights */
} WeightedSumAttr;

Tensor *op_weighted_sum(Tape *t, Tensor *x, const float *w)
{
    char a[64];
    UL_CHECK(x && w, "op_weighted_sum: NULL input or weights");
    UL_CHECK(x->ndim == 1, "op_weighted_sum: x must be [B], got %s", tensor_shape_str(x, a, sizeof a));
    WeightedSumAttr *at = arena_alloc(t->arena, sizeof *at);
    at->w = arena_alloc(t->arena, ul_mul_size(x->n, sizeof(float)));
    memcpy(at->w, w, x->n * sizeof(float));
    Tensor *out = tensor_new(t->arena, 1, (int[]){1}, tape_wants_grad(t, &x, 1));
    tape_apply(t, OP_WEIGHTED_SUM, out, &x, 1, at);
    return out;
}

/* out [1] = sum_i w[i] x[i]  (accumulated in double) */
void op_weighted_sum_forward(TapeNode *node)
{
    const float *restrict x = node->in[0]->data, *restrict w = ((const WeightedSumAttr *)node->attr)->w;
    size_t n = node->in[0]->n;
    double acc = 0.0;
#pragma omp simd reduction(+ : acc)
    for (size_t i = 0; i < n; i++) acc += (double)w[i] * (double)x[i];
    node->out->data[0] = (float)acc;
}

void op_weighted_sum_backward(TapeNode *node)
{
    float *restrict gx = node->in[0]->grad;
    if (!gx) return;
    const float *restrict w = ((const WeightedSumAttr *)node->attr)->w;
    float g = node->out->grad[0];
    size_t n = node->in[0]->n;
#pragma omp simd
    for (size_t i = 0; i < n; i++) gx[i] += g * w[i];
}

void op_weighted_sum_forward_ref(TapeNode *node)
{
    const float *w = ((const WeightedSumAttr *)node->attr)->w;
    double acc = 0.0;
    for (size_t i = 0; i < node->in[0]->n; i++) acc += (double)w[i] * (double)node->in[0]->data[i];
    node->out->data[0] = (float)acc;
}

void op_weighted_sum_backward_ref(TapeNode *node)
{
    const float *w = ((const WeightedSumAttr *)node->attr)->w;
    if (!node->in[0]->grad) return;
    for (size_t i = 0; i < node->in[0]->n; i++) node->in[0]->grad[i] += node->out->grad[0] * w[i];
}
