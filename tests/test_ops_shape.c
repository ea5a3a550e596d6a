/*
 * test_ops_shape.c - attention, reshape, permute/transpose, slice/chunk, concat, embedding, timestep_emb,
 * modulate and unpatchify: finite differences (tu_gradcheck), fast vs _ref (tu_refcheck), and direct formulas
 * written in this file independently of src/ops_shape.c. Shapes use distinct sizes in every dim so that a
 * transposed index cannot pass by accident. Bad shapes must be fatal (checked in a forked child).
 *
 * Tolerances and why:
 *   - FD_LIN (atol 1e-4, rtol 1e-3): gradcheck of ops linear in their inputs (data movement, embedding, and
 *     modulate, which is bilinear so central differences have no truncation error). Only float32 rounding of the
 *     perturbed input (ulp(1) / eps = 1.2e-7 / 1e-2) and of the forward values enters: ~1e-5.
 *   - FD_ATTN (atol 5e-4, rtol 1e-2): attention is non-linear; with eps = 1e-2 the central-difference truncation
 *     error is ~eps^2 * |f'''| / 6 ~ 2e-5 per element, and float32 rounding of the forward adds ~sqrt(n_out) *
 *     6e-8 / eps ~ 1e-4 at most (observed max 2e-5); a wrong factor such as a missing 1/sqrt(D) is off by >~ 1e-2.
 *   - EXACT (0, 0): fast and ref of pure data movement copy or add each value exactly once: bitwise equal.
 *   - REF_SUM (atol 1e-6, rtol 1e-6): fast sums in float, ref in double, over <= 8 terms of size <= 1.
 *   - REF_ATTN (atol 5e-6, rtol 1e-4): BLAS float32 GEMMs (K <= 37) and float softmax vs double loops;
 *     outputs and gradients are O(1), float32 accumulation error is at most ~K * 6e-8 ~ 2e-6 (observed 1.2e-7).
 *   - TS (atol 1e-6): timestep_emb is evaluated in double and stored as float (half ulp of 1 = 6e-8); a float32
 *     evaluation would be off by up to ~3e-5 at t = 999 and fail on purpose (the contract is double).
 */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"
#include "kern.h"

#include <sys/wait.h>
#include <unistd.h>

#define FD_EPS 1e-2f
#define FD_LIN 1e-4, 1e-3
#define FD_ATTN 5e-4, 1e-2
#define EXACT 0.0, 0.0
#define REF_SUM 1e-6, 1e-6
#define REF_ATTN 5e-6, 1e-4

/* ---------------- graph builders for tu_gradcheck / tu_refcheck ---------------- */

typedef struct Ctx {
    int heads;
    int perm[TENSOR_MAX_DIMS];
    int dim, start, len, n, piece;
    const int *idx;
    int count;
    int p, C, h, w;
} Ctx;

static Tensor *build_attention(Tape *t, Tensor **in, void *ctx)
{
    return op_attention(t, in[0], in[1], in[2], ((Ctx *)ctx)->heads);
}
static Tensor *build_permute(Tape *t, Tensor **in, void *ctx) { return op_permute(t, in[0], ((Ctx *)ctx)->perm); }
static Tensor *build_transpose(Tape *t, Tensor **in, void *ctx)
{
    Ctx *c = ctx;
    return op_transpose(t, in[0], c->perm[0], c->perm[1]);
}
static Tensor *build_slice(Tape *t, Tensor **in, void *ctx)
{
    Ctx *c = ctx;
    return op_slice(t, in[0], c->dim, c->start, c->len);
}
static Tensor *build_chunk(Tape *t, Tensor **in, void *ctx)
{
    Ctx *c = ctx;
    Tensor *pieces[8];
    op_chunk(t, in[0], c->dim, c->n, pieces);
    return pieces[c->piece];
}
static Tensor *build_concat(Tape *t, Tensor **in, void *ctx) { return op_concat(t, in[0], in[1], ((Ctx *)ctx)->dim); }
static Tensor *build_embedding(Tape *t, Tensor **in, void *ctx)
{
    Ctx *c = ctx;
    return op_embedding(t, in[0], c->idx, c->count);
}
static Tensor *build_modulate(Tape *t, Tensor **in, void *ctx)
{
    (void)ctx;
    return op_modulate(t, in[0], in[1], in[2]);
}
static Tensor *build_unpatchify(Tape *t, Tensor **in, void *ctx)
{
    Ctx *c = ctx;
    return op_unpatchify(t, in[0], c->p, c->C, c->h, c->w);
}
/* x [2, 3, 4, 5] -> reshape [6, 20] -> transpose -> reshape [4, 5, 6] -> slice dim 1: reshape in the middle
   of a differentiated chain. */
static Tensor *build_reshape_chain(Tape *t, Tensor **in, void *ctx)
{
    (void)ctx;
    Tensor *y = op_reshape(t, in[0], 2, (int[]){6, 20});
    Tensor *z = op_transpose(t, y, 0, 1);
    Tensor *u = op_reshape(t, z, 3, (int[]){4, 5, 6});
    return op_slice(t, u, 1, 1, 3);
}

/* A per-test arena and tape for the direct checks. */
static Arena g_arena;
static Tape g_tape;

static void fresh_tape(void)
{
    tape_reset(&g_tape);
    g_tape.record = true;
    g_tape.use_ref = false;
}

/* ---------------- attention ---------------- */

static void test_attention(int B, int T, int C, int heads, int threads)
{
    char name[96];
    kern_set_threads(threads);
    Ctx c = {.heads = heads};
    int shape[3] = {B, T, C};
    Tensor *q = tu_tensor(3, shape, 11, -1.0f, 1.0f, 1), *k = tu_tensor(3, shape, 12, -1.0f, 1.0f, 1),
           *v = tu_tensor(3, shape, 13, -1.0f, 1.0f, 1);
    Tensor *in[3] = {q, k, v};
    snprintf(name, sizeof name, "attention B%d T%d C%d heads%d thr%d", B, T, C, heads, threads);
    tu_gradcheck(name, build_attention, &c, in, 3, FD_EPS, FD_ATTN, 1);
    tu_refcheck(name, build_attention, &c, in, 3, REF_ATTN, 1);
    /* No gradients anywhere: the forward uses per-thread scratch instead of saved probabilities. */
    Tensor *nq = tu_tensor(3, shape, 11, -1.0f, 1.0f, 0), *nk = tu_tensor(3, shape, 12, -1.0f, 1.0f, 0),
           *nv = tu_tensor(3, shape, 13, -1.0f, 1.0f, 0);
    Tensor *nin[3] = {nq, nk, nv};
    snprintf(name, sizeof name, "attention no-grad B%d T%d C%d heads%d thr%d", B, T, C, heads, threads);
    tu_refcheck(name, build_attention, &c, nin, 3, REF_ATTN, 1);
    for (int i = 0; i < 3; i++) {
        tu_tensor_free(in[i]);
        tu_tensor_free(nin[i]);
    }
    kern_set_threads(1);
}

/* Head layout: head h of a multi-head attention equals a one-head attention on channel block h (cut out with
   op_slice), which pins which channels form a head independently of the attention code's indexing. */
static void test_attention_heads_layout(void)
{
    int B = 2, T = 5, C = 12, H = 3, D = C / H;
    int shape[3] = {B, T, C};
    Tensor *q = tu_tensor(3, shape, 21, -2.0f, 2.0f, 0), *k = tu_tensor(3, shape, 22, -2.0f, 2.0f, 0),
           *v = tu_tensor(3, shape, 23, -2.0f, 2.0f, 0);
    fresh_tape();
    Tensor *full = op_attention(&g_tape, q, k, v, H);
    for (int h = 0; h < H; h++) {
        Tensor *o1 = op_attention(&g_tape, op_slice(&g_tape, q, 2, h * D, D), op_slice(&g_tape, k, 2, h * D, D),
                                  op_slice(&g_tape, v, 2, h * D, D), 1);
        Tensor *oh = op_slice(&g_tape, full, 2, h * D, D);
        char what[64];
        snprintf(what, sizeof what, "attention head %d == 1-head on its block", h);
        tu_compare(what, oh->data, o1->data, oh->n, 1e-6, 1e-5); /* same float kernels, K = D: rounding only */
    }
    tu_tensor_free(q);
    tu_tensor_free(k);
    tu_tensor_free(v);
}

/* Scores spread far beyond the clamp of the fast exp (|S| up to ~128 with D = 4, values in [-8, 8]): softmax
   rows are nearly one-hot. The float32 scores carry an absolute error ~|S| * 6e-8 ~ 1e-5, which becomes a
   relative error of P and, times |v| <= 8, up to ~1e-4 in the outputs (observed 4e-6): atol 5e-5. And a NaN in q must reach the
   output rows it touches (the loss NaN check relies on it) and only those. */
static void test_attention_extremes(void)
{
    int shape[3] = {2, 6, 8};
    Ctx c = {.heads = 2};
    Tensor *q = tu_tensor(3, shape, 24, -8.0f, 8.0f, 1), *k = tu_tensor(3, shape, 25, -8.0f, 8.0f, 1),
           *v = tu_tensor(3, shape, 26, -8.0f, 8.0f, 1);
    Tensor *in[3] = {q, k, v};
    tu_refcheck("attention large logits", build_attention, &c, in, 3, 5e-5, 1e-4, 1);
    q->data[0] = NAN; /* batch 0, token 0, head 0 */
    fresh_tape();
    Tensor *o = op_attention(&g_tape, q, k, v, 2);
    int nan_row = 1, clean_rest = 1;
    for (int ch = 0; ch < 4; ch++) nan_row &= isnan(o->data[ch]);
    for (size_t i = 0; i < o->n; i++)
        if (!(i < 4) && isnan(o->data[i])) clean_rest = 0;
    TU_CHECK(nan_row, "attention: NaN in q[0, 0, head 0] gives NaN in out[0, 0, head 0]");
    TU_CHECK(clean_rest, "attention: the NaN stays in its own row and head");
    tu_tensor_free(q);
    tu_tensor_free(k);
    tu_tensor_free(v);
}

/* ---------------- reshape ---------------- */

static void test_reshape(void)
{
    int xs[3] = {2, 3, 4};
    Tensor *x = tu_tensor(3, xs, 31, -1.0f, 1.0f, 1);
    fresh_tape();
    int nodes0 = g_tape.count;
    Tensor *y = op_reshape(&g_tape, x, 2, (int[]){6, 4});
    TU_CHECK(y->data == x->data && y->grad == x->grad, "reshape shares data and grad");
    TU_CHECK(y->ndim == 2 && y->shape[0] == 6 && y->shape[1] == 4 && y->n == 24, "reshape shape [6, 4]");
    TU_CHECK(g_tape.count == nodes0, "reshape records no node (count %d -> %d)", nodes0, g_tape.count);
    Tensor *z = op_transpose(&g_tape, y, 0, 1); /* [4, 6] */
    float r[24];
    tu_fill(r, 24, 5, -1.0f, 1.0f);
    tape_backward(&g_tape, z, r);
    /* z[c, a] = y[a, c] = x.flat[a * 4 + c], so d/dx.flat[a * 4 + c] = r[c * 6 + a]. */
    float want[24];
    for (int a = 0; a < 6; a++)
        for (int c = 0; c < 4; c++) want[a * 4 + c] = r[c * 6 + a];
    tu_compare("reshape: gradient reaches the original", x->grad, want, 24, EXACT);
    /* The alias writes through. */
    y->data[7] = 42.0f;
    TU_CHECK(x->data[7] == 42.0f, "reshape alias writes through to x");
    /* Without a gradient the alias has none either. */
    Tensor *nx = tu_tensor(3, xs, 32, -1.0f, 1.0f, 0);
    Tensor *ny = op_reshape(&g_tape, nx, 1, (int[]){24});
    TU_CHECK(ny->grad == NULL && ny->data == nx->data, "reshape of a no-grad tensor has no grad");
    tu_tensor_free(x);
    tu_tensor_free(nx);

    Tensor *x4 = tu_tensor(4, (int[]){2, 3, 4, 5}, 33, -1.0f, 1.0f, 1);
    Tensor *in[1] = {x4};
    tu_gradcheck("reshape-transpose-reshape-slice chain", build_reshape_chain, NULL, in, 1, FD_EPS, FD_LIN, 1);
    tu_refcheck("reshape-transpose-reshape-slice chain", build_reshape_chain, NULL, in, 1, EXACT, 1);
    tu_tensor_free(x4);
}

/* ---------------- permute / transpose ---------------- */

static void test_permute(void)
{
    static const int perms[][4] = {{0, 1, 2, 3}, {3, 2, 1, 0}, {0, 2, 1, 3}, {1, 3, 0, 2}, {2, 0, 3, 1}, {0, 1, 3, 2}};
    int xs[4] = {2, 3, 4, 5};
    Tensor *x = tu_tensor(4, xs, 41, -1.0f, 1.0f, 1);
    Tensor *in[1] = {x};
    for (size_t pi = 0; pi < sizeof perms / sizeof perms[0]; pi++) {
        Ctx c;
        memcpy(c.perm, perms[pi], sizeof c.perm);
        char name[64];
        snprintf(name, sizeof name, "permute (%d %d %d %d)", c.perm[0], c.perm[1], c.perm[2], c.perm[3]);
        tu_gradcheck(name, build_permute, &c, in, 1, FD_EPS, FD_LIN, 1);
        tu_refcheck(name, build_permute, &c, in, 1, EXACT, 1);
        /* Direct: out[a0, a1, a2, a3] = x[b] with b[perm[i]] = a[i]. */
        fresh_tape();
        Tensor *o = op_permute(&g_tape, x, c.perm);
        float *want = malloc(x->n * sizeof(float));
        int a[4], b[4];
        size_t oi = 0;
        for (a[0] = 0; a[0] < xs[c.perm[0]]; a[0]++)
            for (a[1] = 0; a[1] < xs[c.perm[1]]; a[1]++)
                for (a[2] = 0; a[2] < xs[c.perm[2]]; a[2]++)
                    for (a[3] = 0; a[3] < xs[c.perm[3]]; a[3]++) {
                        for (int i = 0; i < 4; i++) b[c.perm[i]] = a[i];
                        want[oi++] = x->data[((b[0] * 3 + b[1]) * 4 + b[2]) * 5 + b[3]];
                    }
        int shape_ok = 1;
        for (int i = 0; i < 4; i++) shape_ok &= o->shape[i] == xs[c.perm[i]];
        TU_CHECK(shape_ok, "%s: output shape", name);
        snprintf(name + strlen(name), sizeof name - strlen(name), " vs index formula");
        tu_compare(name, o->data, want, x->n, EXACT);
        free(want);
    }
    tu_tensor_free(x);

    /* transpose on 3-D and 2-D tensors. */
    Tensor *x3 = tu_tensor(3, (int[]){3, 4, 5}, 42, -1.0f, 1.0f, 1), *x2 = tu_tensor(2, (int[]){3, 7}, 43, -1.0f, 1.0f, 1);
    Ctx c = {.perm = {0, 2}};
    Tensor *in3[1] = {x3}, *in2[1] = {x2};
    tu_gradcheck("transpose 3-D (0 2)", build_transpose, &c, in3, 1, FD_EPS, FD_LIN, 1);
    tu_refcheck("transpose 3-D (0 2)", build_transpose, &c, in3, 1, EXACT, 1);
    c.perm[0] = 1;
    c.perm[1] = 0;
    tu_gradcheck("transpose 2-D (1 0)", build_transpose, &c, in2, 1, FD_EPS, FD_LIN, 1);
    tu_refcheck("transpose 2-D (1 0)", build_transpose, &c, in2, 1, EXACT, 1);
    fresh_tape();
    Tensor *t2 = op_transpose(&g_tape, x2, 1, 0);
    float want[21];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 7; j++) want[j * 3 + i] = x2->data[i * 7 + j];
    TU_CHECK(t2->shape[0] == 7 && t2->shape[1] == 3, "transpose 2-D shape [7, 3]");
    tu_compare("transpose 2-D vs index formula", t2->data, want, 21, EXACT);
    tu_tensor_free(x3);
    tu_tensor_free(x2);
}

/* ---------------- slice / chunk / concat ---------------- */

static void test_slice_chunk_concat(void)
{
    int xs[4] = {2, 3, 4, 5};
    Tensor *x = tu_tensor(4, xs, 51, -1.0f, 1.0f, 1);
    Tensor *in[1] = {x};
    static const int starts[4] = {1, 1, 2, 1}, lens[4] = {1, 2, 2, 3};
    for (int d = 0; d < 4; d++) {
        Ctx c = {.dim = d, .start = starts[d], .len = lens[d]};
        char name[64];
        snprintf(name, sizeof name, "slice dim %d [%d, +%d)", d, c.start, c.len);
        tu_gradcheck(name, build_slice, &c, in, 1, FD_EPS, FD_LIN, 1);
        tu_refcheck(name, build_slice, &c, in, 1, EXACT, 1);
        fresh_tape();
        Tensor *o = op_slice(&g_tape, x, d, c.start, c.len);
        float *want = malloc(o->n * sizeof(float));
        size_t oi = 0;
        int a[4];
        for (a[0] = 0; a[0] < xs[0]; a[0]++)
            for (a[1] = 0; a[1] < xs[1]; a[1]++)
                for (a[2] = 0; a[2] < xs[2]; a[2]++)
                    for (a[3] = 0; a[3] < xs[3]; a[3]++)
                        if (a[d] >= c.start && a[d] < c.start + c.len)
                            want[oi++] = x->data[((a[0] * 3 + a[1]) * 4 + a[2]) * 5 + a[3]];
        TU_CHECK(oi == o->n && o->shape[d] == c.len, "%s: output size", name);
        snprintf(name + strlen(name), sizeof name - strlen(name), " vs index formula");
        tu_compare(name, o->data, want, o->n, EXACT);
        free(want);
    }
    tu_tensor_free(x);

    /* chunk on every dim of [2, 6, 4, 3]: each piece against op_slice and through gradcheck/refcheck. */
    int ys[4] = {2, 6, 4, 3};
    static const int ns[4] = {2, 3, 2, 3};
    Tensor *y = tu_tensor(4, ys, 52, -1.0f, 1.0f, 1);
    Tensor *yin[1] = {y};
    for (int d = 0; d < 4; d++) {
        fresh_tape();
        Tensor *pieces[3];
        op_chunk(&g_tape, y, d, ns[d], pieces);
        for (int k = 0; k < ns[d]; k++) {
            int len = ys[d] / ns[d];
            Tensor *s = op_slice(&g_tape, y, d, k * len, len);
            char what[64];
            snprintf(what, sizeof what, "chunk dim %d piece %d == slice", d, k);
            TU_CHECK(pieces[k]->shape[d] == len, "%s: shape", what);
            tu_compare(what, pieces[k]->data, s->data, s->n, EXACT);
        }
        Ctx c = {.dim = d, .n = ns[d], .piece = ns[d] - 1};
        char name[64];
        snprintf(name, sizeof name, "chunk dim %d last of %d", d, ns[d]);
        tu_gradcheck(name, build_chunk, &c, yin, 1, FD_EPS, FD_LIN, 1);
        tu_refcheck(name, build_chunk, &c, yin, 1, EXACT, 1);
    }
    tu_tensor_free(y);

    /* concat along each dim of a [2, 3, 4, 5] with b of size 2, 1, 3, 2 along that dim. */
    static const int bsz[4] = {3, 1, 3, 2};
    Tensor *a = tu_tensor(4, xs, 53, -1.0f, 1.0f, 1);
    for (int d = 0; d < 4; d++) {
        int bs[4] = {2, 3, 4, 5};
        bs[d] = bsz[d];
        for (int bgrad = 0; bgrad < 2; bgrad++) {
            Tensor *b = tu_tensor(4, bs, 54 + d, -1.0f, 1.0f, bgrad);
            Tensor *cin[2] = {a, b};
            Ctx c = {.dim = d};
            char name[64];
            snprintf(name, sizeof name, "concat dim %d%s", d, bgrad ? "" : " (b without grad)");
            tu_gradcheck(name, build_concat, &c, cin, 2, FD_EPS, FD_LIN, 1);
            tu_refcheck(name, build_concat, &c, cin, 2, EXACT, 1);
            if (bgrad) {
                fresh_tape();
                Tensor *o = op_concat(&g_tape, a, b, d);
                float *want = malloc(o->n * sizeof(float));
                int q[4];
                size_t oi = 0;
                for (q[0] = 0; q[0] < o->shape[0]; q[0]++)
                    for (q[1] = 0; q[1] < o->shape[1]; q[1]++)
                        for (q[2] = 0; q[2] < o->shape[2]; q[2]++)
                            for (q[3] = 0; q[3] < o->shape[3]; q[3]++) {
                                int r[4] = {q[0], q[1], q[2], q[3]};
                                const Tensor *src = a;
                                const int *ss = xs;
                                if (q[d] >= xs[d]) {
                                    r[d] -= xs[d];
                                    src = b;
                                    ss = bs;
                                }
                                want[oi++] = src->data[((r[0] * ss[1] + r[1]) * ss[2] + r[2]) * ss[3] + r[3]];
                            }
                snprintf(name + strlen(name), sizeof name - strlen(name), " vs index formula");
                tu_compare(name, o->data, want, o->n, EXACT);
                free(want);
            }
            tu_tensor_free(b);
        }
    }
    tu_tensor_free(a);
}

/* ---------------- embedding ---------------- */

static void test_embedding(void)
{
    static const int idx[9] = {3, 1, 3, 6, 0, 3, 1, 2, 6}; /* 3 three times, 1 and 6 twice, 4 and 5 never */
    Tensor *tab = tu_tensor(2, (int[]){7, 5}, 61, -1.0f, 1.0f, 1);
    Tensor *in[1] = {tab};
    Ctx c = {.idx = idx, .count = 9};
    tu_gradcheck("embedding repeated indices", build_embedding, &c, in, 1, FD_EPS, FD_LIN, 1);
    tu_refcheck("embedding repeated indices", build_embedding, &c, in, 1, REF_SUM, 1);
    /* Direct: forward rows and the scattered, accumulated gradient. */
    memset(tab->grad, 0, tab->n * sizeof(float));
    fresh_tape();
    Tensor *o = op_embedding(&g_tape, tab, idx, 9);
    float want[45], r[45], gwant[35] = {0};
    for (int i = 0; i < 9; i++)
        for (int j = 0; j < 5; j++) want[i * 5 + j] = tab->data[idx[i] * 5 + j];
    tu_compare("embedding forward vs rows of the table", o->data, want, 45, EXACT);
    tu_fill(r, 45, 9, -1.0f, 1.0f);
    tape_backward(&g_tape, o, r);
    for (int v = 0; v < 7; v++)
        for (int j = 0; j < 5; j++) {
            double s = 0;
            for (int i = 0; i < 9; i++)
                if (idx[i] == v) s += r[i * 5 + j];
            gwant[v * 5 + j] = (float)s;
        }
    tu_compare("embedding grad accumulated per row", tab->grad, gwant, 35, REF_SUM);
    tu_tensor_free(tab);
}

/* ---------------- timestep_emb ---------------- */

static void test_timestep_emb(void)
{
    const float ts[4] = {0.0f, 1.0f, 17.5f, 999.0f};
    const int B = 4, dim = 10, half = dim / 2;
    const double mp = 10000.0;
    for (int variant = 0; variant < 2; variant++) {
        /* variant 0: DDPM UNet (shift 1, sin first): e = ln(10000) / (half - 1); f_i = exp(-e i); [sin, cos].
           variant 1: DiT (shift 0, cos first): f_i = exp(-ln(max_period) i / half); [cos, sin]. */
        float want[40];
        for (int b = 0; b < B; b++)
            for (int i = 0; i < half; i++) {
                double f = variant == 0 ? exp(-(log(mp) / (half - 1)) * i) : exp(-log(mp) * i / half);
                double arg = (double)ts[b] * f;
                want[b * dim + i] = (float)(variant == 0 ? sin(arg) : cos(arg));
                want[b * dim + half + i] = (float)(variant == 0 ? cos(arg) : sin(arg));
            }
        for (int ref = 0; ref < 2; ref++) {
            fresh_tape();
            g_tape.use_ref = ref;
            int nodes0 = g_tape.count;
            Tensor *o = op_timestep_emb(&g_tape, ts, B, dim, (float)mp, variant == 0 ? 1 : 0, variant == 1);
            TU_CHECK(o->grad == NULL && g_tape.count == nodes0, "timestep_emb: no grad, no node");
            TU_CHECK(o->ndim == 2 && o->shape[0] == B && o->shape[1] == dim, "timestep_emb shape [4, 10]");
            char what[64];
            snprintf(what, sizeof what, "timestep_emb %s %s vs formula", variant == 0 ? "DDPM" : "DiT",
                     ref ? "ref" : "fast");
            tu_compare(what, o->data, want, 40, 1e-6, 0.0);
        }
    }
}

/* ---------------- modulate ---------------- */

static void test_modulate(void)
{
    int B = 2, T = 5, C = 3;
    Tensor *x = tu_tensor(3, (int[]){B, T, C}, 71, -1.0f, 1.0f, 1);
    Tensor *sh = tu_tensor(2, (int[]){B, C}, 72, -1.0f, 1.0f, 1), *sc = tu_tensor(2, (int[]){B, C}, 73, -1.0f, 1.0f, 1);
    Tensor *in[3] = {x, sh, sc};
    tu_gradcheck("modulate", build_modulate, NULL, in, 3, FD_EPS, FD_LIN, 1);
    tu_refcheck("modulate", build_modulate, NULL, in, 3, REF_SUM, 1);
    fresh_tape();
    Tensor *o = op_modulate(&g_tape, x, sh, sc);
    float want[30];
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++)
                want[(b * T + t) * C + c] =
                    (float)(x->data[(b * T + t) * C + c] * (1.0 + sc->data[b * C + c]) + sh->data[b * C + c]);
    tu_compare("modulate forward vs formula", o->data, want, 30, 1e-6, 1e-6); /* float vs double rounding */
    /* Only shift carries a gradient: x and scale stay untouched. */
    Tensor *nx = tu_tensor(3, (int[]){B, T, C}, 71, -1.0f, 1.0f, 0), *nsc = tu_tensor(2, (int[]){B, C}, 73, -1.0f, 1.0f, 0);
    Tensor *pin[3] = {nx, sh, nsc};
    tu_gradcheck("modulate (shift only)", build_modulate, NULL, pin, 3, FD_EPS, FD_LIN, 1);
    tu_refcheck("modulate (shift only)", build_modulate, NULL, pin, 3, REF_SUM, 1);
    tu_tensor_free(x);
    tu_tensor_free(sh);
    tu_tensor_free(sc);
    tu_tensor_free(nx);
    tu_tensor_free(nsc);
}

/* ---------------- unpatchify ---------------- */

static void test_unpatchify(void)
{
    const int B = 2, p = 2, C = 3, h = 4, w = 5;
    Tensor *x = tu_tensor(3, (int[]){B, h * w, p * p * C}, 81, -1.0f, 1.0f, 1);
    Tensor *in[1] = {x};
    Ctx c = {.p = p, .C = C, .h = h, .w = w};
    tu_gradcheck("unpatchify", build_unpatchify, &c, in, 1, FD_EPS, FD_LIN, 1);
    tu_refcheck("unpatchify", build_unpatchify, &c, in, 1, EXACT, 1);
    fresh_tape();
    Tensor *o = op_unpatchify(&g_tape, x, p, C, h, w);
    TU_CHECK(o->ndim == 4 && o->shape[0] == B && o->shape[1] == C && o->shape[2] == h * p && o->shape[3] == w * p,
             "unpatchify shape [2, 3, 8, 10]");
    /* PyTorch's recipe, literally: x viewed as [n, h, w, p, q, c], einsum 'nhwpqc->nchpwq', flattened in that order. */
    float *want = malloc(x->n * sizeof(float));
    size_t oi = 0;
    for (int n = 0; n < B; n++)
        for (int cc = 0; cc < C; cc++)
            for (int hh = 0; hh < h; hh++)
                for (int pp = 0; pp < p; pp++)
                    for (int ww = 0; ww < w; ww++)
                        for (int qq = 0; qq < p; qq++)
                            want[oi++] = x->data[((((n * h + hh) * w + ww) * p + pp) * p + qq) * C + cc];
    tu_compare("unpatchify vs einsum index formula", o->data, want, x->n, EXACT);
    free(want);
    tu_tensor_free(x);
}

/* ---------------- bad shapes are fatal ---------------- */

static Tensor *g_x3; /* [2, 5, 12] */

static void bad_attention_heads(void) { op_attention(&g_tape, g_x3, g_x3, g_x3, 5); }
static void bad_reshape_n(void) { op_reshape(&g_tape, g_x3, 2, (int[]){10, 11}); }
static void bad_permute_dup(void) { op_permute(&g_tape, g_x3, (int[]){0, 1, 1}); }
static void bad_slice_range(void) { op_slice(&g_tape, g_x3, 1, 3, 3); }
static void bad_chunk_uneven(void)
{
    Tensor *out[5];
    op_chunk(&g_tape, g_x3, 2, 5, out);
}
static void bad_concat_shape(void)
{
    Tensor *y = tensor_new(g_tape.arena, 3, (int[]){2, 4, 11}, false);
    op_concat(&g_tape, g_x3, y, 1);
}
static void bad_embedding_high(void)
{
    Tensor *tab = tensor_new(g_tape.arena, 2, (int[]){7, 5}, false);
    op_embedding(&g_tape, tab, (int[]){0, 7}, 2);
}
static void bad_embedding_negative(void)
{
    Tensor *tab = tensor_new(g_tape.arena, 2, (int[]){7, 5}, false);
    op_embedding(&g_tape, tab, (int[]){-1}, 1);
}
static void bad_timestep_odd(void) { op_timestep_emb(&g_tape, (float[]){1.0f}, 1, 9, 10000.0f, 0, true); }
static void bad_modulate_shape(void)
{
    Tensor *s = tensor_new(g_tape.arena, 2, (int[]){2, 5}, false);
    op_modulate(&g_tape, g_x3, s, s);
}
static void bad_unpatchify_shape(void) { op_unpatchify(&g_tape, g_x3, 2, 3, 1, 4); }

/* Runs fn in a child; it must die with a nonzero status (UL_CHECK's fatal path). */
static void expect_fatal(const char *what, void (*fn)(void))
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        fn();
        _exit(0); /* reached only when the op accepted the bad input */
    }
    int status = 0;
    TU_CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "%s: fork/wait", what);
    TU_CHECK(WIFEXITED(status) && WEXITSTATUS(status) != 0, "%s is fatal (status %d)", what, status);
}

static void test_bad_input(void)
{
    printf("bad-input checks: each child prints one expected 'unlearn: ...' fatal message on stderr\n");
    fresh_tape();
    g_x3 = tensor_new(g_tape.arena, 3, (int[]){2, 5, 12}, false);
    expect_fatal("attention C % heads != 0", bad_attention_heads);
    expect_fatal("reshape to a different n", bad_reshape_n);
    expect_fatal("permute with a repeated dim", bad_permute_dup);
    expect_fatal("slice past the end", bad_slice_range);
    expect_fatal("chunk into unequal pieces", bad_chunk_uneven);
    expect_fatal("concat with another dim differing", bad_concat_shape);
    expect_fatal("embedding index == V", bad_embedding_high);
    expect_fatal("embedding index < 0", bad_embedding_negative);
    expect_fatal("timestep_emb odd dim", bad_timestep_odd);
    expect_fatal("modulate shift [B, T]", bad_modulate_shape);
    expect_fatal("unpatchify h*w mismatch", bad_unpatchify_shape);
}

int main(void)
{
    arena_init(&g_arena, (size_t)1 << 28);
    tape_init(&g_tape, &g_arena, 1024);
    kern_set_threads(1);

    test_attention(2, 5, 12, 3, 1);
    test_attention(2, 5, 12, 1, 1);
    test_attention(3, 7, 8, 2, 2);   /* parallel (b, h) pairs with per-thread scratch */
    test_attention(2, 37, 20, 4, 2); /* longer sequence, 8 pairs over 2 threads */
    test_attention_heads_layout();
    test_attention_extremes();
    test_reshape();
    test_permute();
    test_slice_chunk_concat();
    test_embedding();
    test_timestep_emb();
    test_modulate();
    test_unpatchify();
    test_bad_input();

    tape_free(&g_tape);
    arena_free(&g_arena);
    return tu_finish("test_ops_shape");
}
