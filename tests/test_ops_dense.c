/*
 * test_ops_dense.c - the dense ops (src/ops_dense.c): linear, matmul, conv2d, pad2d, upsample2x, avgpool2d,
 * maxpool2d, global_avgpool.
 *
 * For every op and several attribute cases:
 *   - tu_gradcheck: central finite differences of sum(out * R) against tape_backward (fast kernels), on small
 *     shapes whose dims all differ (a transposed index cannot pass by accident);
 *   - tu_refcheck: fast kernels vs the naive _ref twins, on the small shapes and on medium shapes where sgemm
 *     blocks for real and conv2d runs its multi-sample chunks, a partial last chunk and its one-sample path;
 *   - an accumulate check: backward adds to gradients that are already non-zero;
 *   - hand-derived cases: maxpool's tie rule (first max wins), shape-contract violations abort with a message;
 *   - all of it with 1 and with 2 threads (conv2d's thread-parallel chunk path).
 *
 * Tolerances:
 *   FD_EPS 1e-2, FD_ATOL 2e-3, FD_RTOL 2e-2: the forward runs in float32 (unit roundoff 6e-8); sum(out * R) over
 *     up to a few hundred outputs of size O(1..10) carries a rounding error around 1e-5, and dividing by 2*eps = 2e-2
 *     amplifies it to ~5e-4 (three digits lost). Every op here is linear (or piecewise linear, for the pools) in
 *     each input, so the truncation error of the central difference is zero away from maxpool's switching points.
 *   REF_ATOL/RTOL 1e-4 (small shapes), 1e-3/1e-4 (medium): float32 sums of n products against double sums differ
 *     by about sqrt(n) * 6e-8 * sum|terms| in practice; for the medium shapes n reaches ~3e4 (conv dW sums over
 *     B*Ho*Wo) with gradients of size ~1e2, i.e. ~1e-4 absolute.
 */
#define _POSIX_C_SOURCE 200809L
#include "kern.h"
#include "testutil.h"

#include <sys/wait.h>
#include <unistd.h>

#define FD_EPS 1e-2f
#define FD_ATOL 2e-3
#define FD_RTOL 2e-2
#define REF_ATOL 1e-4
#define REF_RTOL 1e-4
#define REF_ATOL_MED 1e-3
#define REF_RTOL_MED 1e-4

static unsigned long long g_seed = 1;

static Tensor *mk(int ndim, const int *shape)
{
    return tu_tensor(ndim, shape, g_seed++, -1.0f, 1.0f, 1);
}
static Tensor *mk_nograd(int ndim, const int *shape)
{
    return tu_tensor(ndim, shape, g_seed++, -1.0f, 1.0f, 0);
}
static void free_all(Tensor **in, int nin)
{
    for (int i = 0; i < nin; i++) tu_tensor_free(in[i]);
}

/*
 * Backward must ADD to existing gradients: run once from zeroed grads (g0), then from grads preset to c (g1),
 * and require g1 == g0 + c elementwise.
 */
static void check_accumulates(const char *name, tu_build_fn f, void *ctx, Tensor **in, int nin)
{
    Arena arena;
    arena_init(&arena, (size_t)1 << 30);
    Tape tape;
    tape_init(&tape, &arena, 64);
    float *g0[OP_MAX_INPUTS] = {0};
    const float c = 0.75f;
    for (int pass = 0; pass < 2; pass++) {
        tape_reset(&tape);
        for (int i = 0; i < nin; i++)
            if (in[i] && in[i]->grad)
                for (size_t j = 0; j < in[i]->n; j++) in[i]->grad[j] = pass ? c : 0.0f;
        Tensor *out = f(&tape, in, ctx);
        float *r = malloc(out->n * sizeof(float));
        tu_fill(r, out->n, 99, -1.0f, 1.0f);
        tape_backward(&tape, out, r);
        free(r);
        for (int i = 0; i < nin; i++) {
            if (!in[i] || !in[i]->grad) continue;
            if (pass == 0) {
                g0[i] = malloc(in[i]->n * sizeof(float));
                for (size_t j = 0; j < in[i]->n; j++) g0[i][j] = in[i]->grad[j] + c;
            } else {
                char what[160];
                snprintf(what, sizeof what, "%s: grad[%d] accumulates", name, i);
                tu_compare(what, in[i]->grad, g0[i], in[i]->n, 1e-6, 1e-6);
                free(g0[i]);
            }
        }
    }
    tape_free(&tape);
    arena_free(&arena);
}

/* Gradient check, fast-vs-ref check and accumulate check on one small case. */
static void check_small(const char *name, tu_build_fn f, void *ctx, Tensor **in, int nin)
{
    tu_gradcheck(name, f, ctx, in, nin, FD_EPS, FD_ATOL, FD_RTOL, 1);
    tu_refcheck(name, f, ctx, in, nin, REF_ATOL, REF_RTOL, 1);
    check_accumulates(name, f, ctx, in, nin);
}

/* ------------------------------------------------------------------------------------------------ builders */

static Tensor *build_linear(Tape *t, Tensor **in, void *ctx)
{
    (void)ctx;
    return op_linear(t, in[0], in[1], in[2]);
}

typedef struct MatmulCtx {
    bool ta, tb;
} MatmulCtx;
static Tensor *build_matmul(Tape *t, Tensor **in, void *ctx)
{
    MatmulCtx *c = ctx;
    return op_matmul(t, in[0], in[1], c->ta, c->tb);
}

typedef struct ConvCtx {
    int stride, pad;
} ConvCtx;
static Tensor *build_conv(Tape *t, Tensor **in, void *ctx)
{
    ConvCtx *c = ctx;
    return op_conv2d(t, in[0], in[1], in[2], c->stride, c->pad);
}

typedef struct PadCtx {
    int top, bottom, left, right;
} PadCtx;
static Tensor *build_pad(Tape *t, Tensor **in, void *ctx)
{
    PadCtx *c = ctx;
    return op_pad2d(t, in[0], c->top, c->bottom, c->left, c->right);
}

static Tensor *build_upsample(Tape *t, Tensor **in, void *ctx)
{
    (void)ctx;
    return op_upsample2x(t, in[0]);
}

typedef struct PoolCtx {
    int k, stride;
} PoolCtx;
static Tensor *build_avgpool(Tape *t, Tensor **in, void *ctx)
{
    PoolCtx *c = ctx;
    return op_avgpool2d(t, in[0], c->k, c->stride);
}
static Tensor *build_maxpool(Tape *t, Tensor **in, void *ctx)
{
    PoolCtx *c = ctx;
    return op_maxpool2d(t, in[0], c->k, c->stride);
}
static Tensor *build_gap(Tape *t, Tensor **in, void *ctx)
{
    (void)ctx;
    return op_global_avgpool(t, in[0]);
}

/* ------------------------------------------------------------------------------------------------ cases */

static void test_linear(void)
{
    {   /* x [2, 3, 5] (two leading dims), w [4, 5], bias */
        Tensor *in[3] = {mk(3, (int[]){2, 3, 5}), mk(2, (int[]){4, 5}), mk(1, (int[]){4})};
        check_small("linear [2,3,5]x[4,5]+b", build_linear, NULL, in, 3);
        free_all(in, 3);
    }
    {   /* x [6, 7], no bias */
        Tensor *in[3] = {mk(2, (int[]){6, 7}), mk(2, (int[]){3, 7}), NULL};
        check_small("linear [6,7]x[3,7] no bias", build_linear, NULL, in, 3);
        free_all(in, 3);
    }
    {   /* x [5] (no leading dims) */
        Tensor *in[3] = {mk(1, (int[]){5}), mk(2, (int[]){3, 5}), mk(1, (int[]){3})};
        check_small("linear [5]x[3,5]+b", build_linear, NULL, in, 3);
        free_all(in, 3);
    }
    {   /* medium: real sgemm blocking; x carries no gradient (only w, b do) */
        Tensor *in[3] = {mk_nograd(2, (int[]){131, 257}), mk(2, (int[]){67, 257}), mk(1, (int[]){67})};
        tu_refcheck("linear medium [131,257]x[67,257]+b, x no grad", build_linear, NULL, in, 3, REF_ATOL_MED,
                    REF_RTOL_MED, 1);
        free_all(in, 3);
    }
    {
        Tensor *in[3] = {mk(3, (int[]){3, 45, 200}), mk(2, (int[]){96, 200}), mk(1, (int[]){96})};
        tu_refcheck("linear medium [3,45,200]x[96,200]+b", build_linear, NULL, in, 3, REF_ATOL_MED, REF_RTOL_MED,
                    1);
        free_all(in, 3);
    }
}

/* a: [lead..., M, K] or [lead..., K, M]; b: [lead..., K, N] or [lead..., N, K]. */
static void matmul_case(int nlead, const int *lead, int M, int K, int N, bool ta, bool tb, bool medium)
{
    int sa[4], sb[4], nd = nlead + 2;
    for (int i = 0; i < nlead; i++) sa[i] = sb[i] = lead[i];
    sa[nlead] = ta ? K : M;
    sa[nlead + 1] = ta ? M : K;
    sb[nlead] = tb ? N : K;
    sb[nlead + 1] = tb ? K : N;
    Tensor *in[2] = {mk(nd, sa), mk(nd, sb)};
    MatmulCtx c = {ta, tb};
    char name[128];
    snprintf(name, sizeof name, "matmul%s lead=%d M%d K%d N%d ta=%d tb=%d", medium ? " medium" : "", nlead, M, K, N,
             ta, tb);
    if (medium)
        tu_refcheck(name, build_matmul, &c, in, 2, REF_ATOL_MED, REF_RTOL_MED, 1);
    else
        check_small(name, build_matmul, &c, in, 2);
    free_all(in, 2);
}

static void test_matmul(void)
{
    const int lead2[2] = {2, 3}, lead1[1] = {2};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            matmul_case(0, NULL, 3, 5, 4, ta, tb, false);
            matmul_case(1, lead1, 4, 3, 5, ta, tb, false);
            matmul_case(2, lead2, 3, 4, 5, ta, tb, false);
            matmul_case(1, lead1, 70, 93, 51, ta, tb, true);
            /* no batch: with 2 threads the product is cut into row blocks (M > N) or column blocks (N > M) */
            matmul_case(0, NULL, 150, 130, 110, ta, tb, true);
            matmul_case(0, NULL, 100, 130, 170, ta, tb, true);
        }
    matmul_case(2, lead2, 33, 64, 47, false, true, true); /* attention-like q k^T */
}

static void conv_case(const char *what, int B, int Cin, int H, int W, int Cout, int kh, int kw, int stride, int pad,
                      bool bias, bool x_grad, int level /* 0 small (all checks), 1 medium (refcheck) */)
{
    Tensor *in[3] = {x_grad ? mk(4, (int[]){B, Cin, H, W}) : mk_nograd(4, (int[]){B, Cin, H, W}),
                     mk(4, (int[]){Cout, Cin, kh, kw}), bias ? mk(1, (int[]){Cout}) : NULL};
    ConvCtx c = {stride, pad};
    char name[160];
    snprintf(name, sizeof name, "conv2d %s x[%d,%d,%d,%d] w[%d,%d,%d,%d] s%d p%d%s", what, B, Cin, H, W, Cout, Cin,
             kh, kw, stride, pad, bias ? " +b" : "");
    if (level == 0)
        check_small(name, build_conv, &c, in, 3);
    else
        tu_refcheck(name, build_conv, &c, in, 3, REF_ATOL_MED, REF_RTOL_MED, 1);
    free_all(in, 3);
}

static void test_conv2d(void)
{
    conv_case("3x2 pad1", 2, 3, 7, 5, 4, 3, 2, 1, 1, true, true, 0);
    /* stride 1 with Wo == W takes the shifted-copy im2col/col2im path (every tap, both borders, Ho != H) */
    conv_case("2x3 pad1 same-width", 2, 3, 7, 5, 4, 2, 3, 1, 1, true, true, 0);
    conv_case("5x5 pad2 W=3 same-width", 2, 2, 6, 3, 3, 5, 5, 1, 2, false, true, 0);
    conv_case("3x3 pad1 W=1 same-width", 3, 2, 4, 1, 2, 3, 3, 1, 1, true, true, 0);
    /* stride 1 with pad > kernel-1 in a dim: dx goes through col2im instead of the flipped-kernel conv */
    conv_case("1x3 pad1 (col2im, same-width)", 2, 3, 4, 5, 2, 1, 3, 1, 1, true, true, 0);
    conv_case("2x2 pad2 (col2im)", 2, 2, 5, 4, 3, 2, 2, 1, 2, false, true, 0);
    conv_case("3x3 stride2 nobias", 2, 3, 7, 5, 4, 3, 3, 2, 0, false, true, 0);
    conv_case("2x3 stride2 pad2", 3, 2, 6, 7, 5, 2, 3, 2, 2, true, true, 0);
    conv_case("1x1 pointwise", 2, 3, 5, 6, 4, 1, 1, 1, 0, true, true, 0);
    conv_case("1x1 stride2", 2, 3, 5, 6, 4, 1, 1, 2, 0, false, true, 0);
    conv_case("patch embed k=s=2", 2, 3, 6, 8, 5, 2, 2, 2, 0, true, true, 0);
    conv_case("x without grad", 3, 1, 7, 6, 4, 3, 3, 1, 1, false, false, 0);
    /* 3x3 pad 1 with >= 8 channels in and out: forward and dx by Winograd F(2x2, 3x3): odd and even H and W (the
       last tile clipped), a single row and a single column of tiles, x with and without grad */
    TU_CHECK(op_conv2d_winograd(8, 9, 5, 7, 3, 3, 1, 1) && op_conv2d_winograd(64, 64, 14, 14, 3, 3, 1, 1) &&
                 !op_conv2d_winograd(1, 32, 28, 28, 3, 3, 1, 1) && !op_conv2d_winograd(8, 8, 9, 9, 3, 3, 2, 1) &&
                 !op_conv2d_winograd(8, 8, 9, 9, 3, 3, 1, 0) && !op_conv2d_winograd(8, 8, 9, 9, 3, 2, 1, 1),
             "conv2d: Winograd exactly for 3x3 stride-1 pad-1 convs with >= 8 channels in and out");
    conv_case("winograd odd", 2, 8, 5, 7, 9, 3, 3, 1, 1, true, true, 0);
    conv_case("winograd even", 3, 9, 4, 6, 8, 3, 3, 1, 1, false, true, 0);
    conv_case("winograd one tile row", 2, 8, 1, 3, 8, 3, 3, 1, 1, true, true, 0);
    conv_case("winograd one tile column", 2, 8, 6, 2, 10, 3, 3, 1, 1, true, true, 0);
    conv_case("winograd x without grad", 2, 10, 5, 5, 8, 3, 3, 1, 1, true, false, 0);
    /* medium shapes: sgemm blocks for real; 2-sample chunks and a partial last one (B = 3), the one-sample path
       that writes y directly, and (stride 2, B = 23) 20-sample chunks plus a partial one through col2im */
    conv_case("medium chunks", 3, 8, 36, 36, 10, 3, 3, 1, 1, true, true, 1);
    conv_case("medium one-sample", 2, 2, 96, 96, 3, 3, 3, 1, 1, true, true, 1);
    conv_case("medium fmnist-like", 4, 16, 14, 14, 24, 3, 3, 1, 1, false, true, 1);
    conv_case("medium winograd chunks", 7, 32, 28, 28, 12, 3, 3, 1, 1, true, true, 1); /* 2-sample chunks + 1 */
    conv_case("medium winograd 64ch", 5, 64, 13, 15, 48, 3, 3, 1, 1, true, true, 1);
    conv_case("medium stride2", 23, 16, 20, 18, 24, 3, 3, 2, 1, true, true, 1);
    conv_case("medium patch k=s=4", 2, 4, 32, 32, 48, 4, 4, 4, 0, true, true, 1);
    conv_case("medium 1x1", 3, 40, 17, 19, 30, 1, 1, 1, 0, true, true, 1);
    /* a sample's im2col exceeds the ~1 MiB buffer: bands of output rows (and of dx rows), last band partial */
    conv_case("medium banded same-width", 2, 8, 64, 64, 10, 3, 3, 1, 1, true, true, 1);
    conv_case("medium banded stride2 col2im", 3, 16, 96, 96, 6, 3, 3, 2, 1, true, true, 1);
    conv_case("medium banded 3x2 pad1", 2, 16, 60, 70, 5, 3, 2, 1, 1, false, true, 1);
    conv_case("medium banded B=1", 1, 8, 64, 64, 10, 3, 3, 1, 1, true, true, 1);         /* bands in parallel */
    conv_case("medium banded B=1 stride2", 1, 16, 96, 96, 6, 3, 3, 2, 1, true, true, 1); /* products split */
}

static void test_pad_upsample_pools(void)
{
    {
        Tensor *in[1] = {mk(4, (int[]){2, 3, 4, 5})};
        PadCtx c = {1, 2, 0, 3};
        check_small("pad2d t1 b2 l0 r3", build_pad, &c, in, 1);
        free_all(in, 1);
    }
    {
        Tensor *in[1] = {mk(4, (int[]){2, 3, 4, 5})};
        check_small("upsample2x", build_upsample, NULL, in, 1);
        free_all(in, 1);
    }
    {
        Tensor *in[1] = {mk(4, (int[]){2, 3, 7, 9})};
        PoolCtx c = {3, 2}; /* overlapping windows, floor: 7 -> 3, 9 -> 4 */
        check_small("avgpool2d k3 s2", build_avgpool, &c, in, 1);
        PoolCtx c2 = {2, 2}; /* odd sizes: the last row/column is dropped */
        check_small("avgpool2d k2 s2", build_avgpool, &c2, in, 1);
        free_all(in, 1);
    }
    {
        Tensor *in[1] = {mk(4, (int[]){2, 3, 7, 5})};
        check_small("global_avgpool", build_gap, NULL, in, 1);
        free_all(in, 1);
    }
    /* maxpool: distinct values 0.05 apart (a permutation), so +-FD_EPS never changes a window's argmax */
    const int cases[3][2] = {{2, 2}, {3, 2}, {2, 1}};
    for (int k = 0; k < 3; k++) {
        Tensor *in[1] = {mk(4, (int[]){2, 3, 7, 5})};
        size_t n = in[0]->n; /* 210, coprime with 7919 */
        for (size_t i = 0; i < n; i++) in[0]->data[i] = 0.05f * (float)((i * 7919) % n) - 5.0f;
        PoolCtx c = {cases[k][0], cases[k][1]};
        char name[64];
        snprintf(name, sizeof name, "maxpool2d k%d s%d", c.k, c.stride);
        check_small(name, build_maxpool, &c, in, 1);
        free_all(in, 1);
    }
    {   /* medium shapes (the fmnist pools and a DDPM-ish upsample) */
        Tensor *in[1] = {mk(4, (int[]){16, 32, 28, 28})};
        PoolCtx c = {2, 2};
        tu_refcheck("maxpool2d medium k2 s2", build_maxpool, &c, in, 1, REF_ATOL, REF_RTOL, 1);
        tu_refcheck("avgpool2d medium k2 s2", build_avgpool, &c, in, 1, REF_ATOL, REF_RTOL, 1);
        tu_refcheck("upsample2x medium", build_upsample, NULL, in, 1, REF_ATOL, REF_RTOL, 1);
        tu_refcheck("global_avgpool medium", build_gap, NULL, in, 1, REF_ATOL, REF_RTOL, 1);
        PadCtx p = {1, 1, 2, 0};
        tu_refcheck("pad2d medium", build_pad, &p, in, 1, REF_ATOL, REF_RTOL, 1);
        free_all(in, 1);
    }
}

/* Ties: the first maximum in row-major window order receives the gradient (PyTorch's rule); NaN propagates. */
static void test_maxpool_ties(void)
{
    for (int use_ref = 0; use_ref < 2; use_ref++) {
        Tensor *x = tu_tensor(4, (int[]){1, 2, 4, 6}, 5, 0.0f, 1.0f, 1);
        for (size_t i = 0; i < x->n; i++) x->data[i] = 1.0f; /* every window is one big tie */
        Arena arena;
        arena_init(&arena, (size_t)1 << 24);
        Tape tape;
        tape_init(&tape, &arena, 8);
        tape.use_ref = use_ref;
        Tensor *y = op_maxpool2d(&tape, x, 2, 2); /* [1, 2, 2, 3] */
        tape_backward(&tape, y, NULL);
        float want[48] = {0};
        for (int c = 0; c < 2; c++)
            for (int oy = 0; oy < 2; oy++)
                for (int ox = 0; ox < 3; ox++) want[c * 24 + (2 * oy) * 6 + 2 * ox] = 1.0f; /* window's top-left */
        tu_compare(use_ref ? "maxpool2d ties -> first max (ref)" : "maxpool2d ties -> first max (fast)", x->grad,
                   want, 48, 0.0, 0.0);
        /* k3 s1 (general path): ties over a plane whose max value appears twice */
        memset(x->grad, 0, x->n * sizeof(float));
        for (size_t i = 0; i < x->n; i++) x->data[i] = 0.0f;
        x->data[1 * 6 + 2] = x->data[2 * 6 + 1] = 3.0f; /* channel 0: (1,2) comes before (2,1) */
        tape_reset(&tape);
        y = op_maxpool2d(&tape, x, 3, 1); /* [1, 2, 2, 4] */
        tape_backward(&tape, y, NULL);
        /* windows at (oy, ox): (0,0) (0,1) (0,2) (1,0) (1,1) (1,2) contain (1,2) -> its count 6; (1,3): rows 1..3,
           cols 3..5: all zero, first = (1,3); (0,3): rows 0..2, cols 3..5 all zero, first = (0,3).
           Channel 1 is all zero: window (oy, ox) routes to its own top-left (oy, ox). */
        float want2[48] = {0};
        want2[1 * 6 + 2] = 6.0f;
        want2[0 * 6 + 3] = 1.0f;
        want2[1 * 6 + 3] = 1.0f;
        for (int oy = 0; oy < 2; oy++)
            for (int ox = 0; ox < 4; ox++) want2[24 + oy * 6 + ox] += 1.0f;
        tu_compare(use_ref ? "maxpool2d k3 s1 ties (ref)" : "maxpool2d k3 s1 ties (fast)", x->grad, want2, 48, 0.0,
                   0.0);
        /* NaN propagates and takes the gradient; of two NaNs the last one (PyTorch: val > max || isnan(val)).
           x [1, 1, 2, 4] = [[1, nan, 5, nan], [3, 2, nan, 1]]. k2 s2 (fast path): windows {1, nan, 3, 2} -> index 1,
           {5, nan, nan, 1} -> index 6. k2 s1 (general path): {1,nan,3,2} -> 1, {nan,5,2,nan} -> 6, {5,nan,nan,1} -> 6. */
        float xn[8] = {1, NAN, 5, NAN, 3, 2, NAN, 1}, gn[8] = {0};
        Tensor *xt = tensor_wrap(&arena, xn, gn, 4, (int[]){1, 1, 2, 4});
        tape_reset(&tape);
        Tensor *yn = op_maxpool2d(&tape, xt, 2, 2);
        tape_backward(&tape, yn, NULL);
        const float wantn[8] = {0, 1, 0, 0, 0, 0, 1, 0};
        TU_CHECK(isnan(yn->data[0]) && isnan(yn->data[1]), "maxpool2d k2 s2 propagates NaN (use_ref=%d)", use_ref);
        tu_compare(use_ref ? "maxpool2d k2 s2 NaN routing (ref)" : "maxpool2d k2 s2 NaN routing (fast)", gn, wantn, 8,
                   0.0, 0.0);
        memset(gn, 0, sizeof gn);
        tape_reset(&tape);
        yn = op_maxpool2d(&tape, xt, 2, 1);
        tape_backward(&tape, yn, NULL);
        const float wantn1[8] = {0, 1, 0, 0, 0, 0, 2, 0};
        TU_CHECK(isnan(yn->data[0]) && isnan(yn->data[1]) && isnan(yn->data[2]),
                 "maxpool2d k2 s1 propagates NaN (use_ref=%d)", use_ref);
        tu_compare(use_ref ? "maxpool2d k2 s1 NaN routing (ref)" : "maxpool2d k2 s1 NaN routing (fast)", gn, wantn1,
                   8, 0.0, 0.0);
        tape_free(&tape);
        arena_free(&arena);
        tu_tensor_free(x);
    }
}

/* Hand-computed values: a forward that is consistently wrong in both twins would pass the ref and FD checks. */
static void test_known_values(void)
{
    Arena arena;
    arena_init(&arena, (size_t)1 << 24);
    Tape tape;
    tape_init(&tape, &arena, 8);
    for (int use_ref = 0; use_ref < 2; use_ref++) {
        tape_reset(&tape);
        tape.use_ref = use_ref;
        /* x = 1..9 as a 3x3 image, w = [[1, 0], [0, -1]], b = 0.5, stride 1, pad 0:
           y[i][j] = x[i][j] - x[i+1][j+1] + 0.5 = -4 + 0.5 everywhere. With pad 1 the corner y[0][0] = -x[0][0]+0.5. */
        float xd[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, wd[4] = {1, 0, 0, -1}, bd[1] = {0.5f};
        Tensor *x = tensor_wrap(&arena, xd, NULL, 4, (int[]){1, 1, 3, 3});
        Tensor *w = tensor_wrap(&arena, wd, NULL, 4, (int[]){1, 1, 2, 2});
        Tensor *b = tensor_wrap(&arena, bd, NULL, 1, (int[]){1});
        Tensor *y = op_conv2d(&tape, x, w, b, 1, 0);
        const float want[4] = {-3.5f, -3.5f, -3.5f, -3.5f};
        tu_compare(use_ref ? "conv2d known values (ref)" : "conv2d known values (fast)", y->data, want, 4, 1e-6, 0);
        Tensor *yp = op_conv2d(&tape, x, w, b, 2, 1); /* [1,1,2,2]: corners (-1,-1),(-1,1),(1,-1),(1,1) */
        /* out(0,0): x(-1,-1)*1 + x(0,0)*(-1) = -1; out(0,1): x(-1,1)*1 + x(0,2)*(-1) = -3;
           out(1,0): x(1,-1) + -x(2,0) = -7; out(1,1): x(1,1) - x(2,2) = 5 - 9 = -4; + 0.5 each */
        const float wantp[4] = {-0.5f, -2.5f, -6.5f, -3.5f};
        tu_compare(use_ref ? "conv2d stride2 pad1 known (ref)" : "conv2d stride2 pad1 known (fast)", yp->data, wantp,
                   4, 1e-6, 0);
        /* linear: [1, 2] @ [[1, 2], [3, 4], [5, 6]]^T + [0, 1, 2] = [5, 12, 19] */
        float ld[2] = {1, 2}, lw[6] = {1, 2, 3, 4, 5, 6}, lb[3] = {0, 1, 2};
        Tensor *yl = op_linear(&tape, tensor_wrap(&arena, ld, NULL, 2, (int[]){1, 2}),
                               tensor_wrap(&arena, lw, NULL, 2, (int[]){3, 2}),
                               tensor_wrap(&arena, lb, NULL, 1, (int[]){3}));
        const float wantl[3] = {5, 12, 19};
        tu_compare(use_ref ? "linear known values (ref)" : "linear known values (fast)", yl->data, wantl, 3, 1e-6, 0);
        /* matmul with trans_a: A stored [K=2, M=1] = [[1], [2]], B [2, 2] = [[1, 2], [3, 4]] -> [7, 10] */
        Tensor *ym = op_matmul(&tape, tensor_wrap(&arena, ld, NULL, 2, (int[]){2, 1}),
                               tensor_wrap(&arena, lw, NULL, 2, (int[]){2, 2}), true, false);
        const float wantm[2] = {7, 10};
        tu_compare(use_ref ? "matmul ta known values (ref)" : "matmul ta known values (fast)", ym->data, wantm, 2, 1e-6,
                   0);
        /* pools on x = 1..9 (3x3): avg k2 s1 -> [3, 4, 6, 7]; max k2 s1 -> [5, 6, 8, 9]; upsample corner; gap = 5 */
        Tensor *ya = op_avgpool2d(&tape, x, 2, 1), *ymx = op_maxpool2d(&tape, x, 2, 1), *yg = op_global_avgpool(&tape, x);
        const float wanta[4] = {3, 4, 6, 7}, wantx[4] = {5, 6, 8, 9}, wantg[1] = {5};
        tu_compare(use_ref ? "avgpool2d known values (ref)" : "avgpool2d known values (fast)", ya->data, wanta, 4, 1e-6,
                   0);
        tu_compare(use_ref ? "maxpool2d known values (ref)" : "maxpool2d known values (fast)", ymx->data, wantx, 4, 0,
                   0);
        tu_compare(use_ref ? "global_avgpool known (ref)" : "global_avgpool known (fast)", yg->data, wantg, 1, 1e-6, 0);
        Tensor *yu = op_upsample2x(&tape, x), *ypd = op_pad2d(&tape, x, 1, 0, 0, 2);
        TU_CHECK(yu->shape[2] == 6 && yu->shape[3] == 6 && yu->data[0] == 1 && yu->data[7] == 1 &&
                     yu->data[2 * 6 + 2] == 5 && yu->data[35] == 9,
                 "upsample2x known values (use_ref=%d)", use_ref);
        TU_CHECK(ypd->shape[2] == 4 && ypd->shape[3] == 5 && ypd->data[0] == 0 && ypd->data[5] == 1 &&
                     ypd->data[8] == 0 && ypd->data[9] == 0 && ypd->data[3 * 5 + 2] == 9,
                 "pad2d known values (use_ref=%d)", use_ref);
    }
    tape_free(&tape);
    arena_free(&arena);
}

/* Shape contracts: a violating call must abort (nonzero exit) with a message, in a child process. */
typedef void (*BadCall)(Tape *t);
static void bad_linear(Tape *t)
{
    op_linear(t, tensor_new(t->arena, 2, (int[]){3, 5}, false), tensor_new(t->arena, 2, (int[]){4, 6}, false), NULL);
}
static void bad_matmul(Tape *t)
{
    op_matmul(t, tensor_new(t->arena, 3, (int[]){2, 3, 5}, false), tensor_new(t->arena, 3, (int[]){2, 4, 5}, false),
              false, false);
}
static void bad_conv(Tape *t)
{
    op_conv2d(t, tensor_new(t->arena, 4, (int[]){2, 3, 7, 5}, false),
              tensor_new(t->arena, 4, (int[]){4, 2, 3, 3}, false), NULL, 1, 1);
}
static void bad_conv_bias(Tape *t)
{
    op_conv2d(t, tensor_new(t->arena, 4, (int[]){2, 3, 7, 5}, false),
              tensor_new(t->arena, 4, (int[]){4, 3, 3, 3}, false), tensor_new(t->arena, 1, (int[]){5}, false), 1, 1);
}
static void bad_pool(Tape *t) { op_maxpool2d(t, tensor_new(t->arena, 4, (int[]){1, 1, 2, 5}, false), 3, 1); }

static void test_contracts(void)
{
    const struct {
        const char *name;
        BadCall fn;
    } cases[] = {{"linear K mismatch", bad_linear},     {"matmul K mismatch", bad_matmul},
                 {"conv2d Cin mismatch", bad_conv},     {"conv2d bias length", bad_conv_bias},
                 {"maxpool2d kernel > input", bad_pool}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            Arena arena;
            arena_init(&arena, (size_t)1 << 20);
            Tape tape;
            tape_init(&tape, &arena, 8);
            cases[i].fn(&tape);
            _exit(0); /* reaching here means the check did not fire */
        }
        int status = 0;
        TU_CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) != 0,
                 "contract '%s' must abort with a nonzero exit", cases[i].name);
    }
}

int main(void)
{
    /* Everything once with one thread, then again with two: conv2d then spreads its sample chunks over the
       OpenMP threads (BLAS single-threaded inside, per-thread dW partials) and the other loops split too. */
    for (int threads = 1; threads <= 2; threads++) {
        kern_set_threads(threads);
        printf("---- %d thread(s)\n", threads);
        test_linear();
        test_matmul();
        test_conv2d();
        test_pad_upsample_pools();
        test_maxpool_ties();
        test_known_values();
    }
    kern_set_threads(1);
    test_contracts();
    return tu_finish("test_ops_dense");
}
