/*
 * ops_dense.c - the dense ops: linear, matmul, conv2d, pad2d, upsample2x, avgpool2d, maxpool2d, global_avgpool.
 * Contracts are in include/ops.h. Every op has a constructor (shape checks, output and attr from the tape's arena,
 * tape_apply), a fast forward/backward pair and a naive _ref twin pair.
 *
 * Fast kernels: every matrix product goes through kern_sgemm (include/kern.h), always single-threaded inside an
 * OpenMP thread (dense_sgemm, dense_run_items); the other loops are OpenMP loops. kern_set_threads sets the
 * count. The _ref twins are plain loops with double accumulation and never call BLAS. Backward ACCUMULATES into
 * in[i]->grad wherever in[i] and its grad are non-NULL.
 *
 * conv2d (fast) is im2col + sgemm over chunks of `chunk` samples (chunk sized so that cols stays ~1 MiB):
 *     cols[Cin*kh*kw, nc*Ho*Wo] = im2col(x chunk)
 *     y_s[Cout, Ho*Wo]          = W[Cout, Cin*kh*kw] @ cols         (nc = 1: straight into NCHW y; else via ybuf)
 *   backward, per chunk (cols recomputed: cheaper than keeping B*K*Ho*Wo floats alive; measured 2026-11-26 on the
 *   fmnist-cnn step, batch 128, 2 threads: keeping the forward's cols in the arena for dW made the convs slower,
 *   forward 101-121 -> 129-130 ms and backward 206-232 -> 237-246 ms over 3 alternating rounds, and raised the arena
 *   high-water from 243 to 440 MB: the cols then go to DRAM and back, while recomputing them from x stays in L2):
 *     dW  += dy_chunk[Cout, nc*Ho*Wo] @ cols^T
 *     dx  += wflip[Cin, Cout*kh*kw] @ im2col(dy chunk)   stride 1: the "full" conv with the flipped kernel
 *     dx  += col2im(W^T @ dy_chunk)                      otherwise (stride > 1, pad >= kernel)
 *   3x3 stride-1 pad-1 convs with >= 8 channels in and out run the forward and the dx conv by Winograd F(2x2, 3x3)
 *   instead (op_conv2d_winograd; dW stays im2col).
 *   A 1x1 stride-1 unpadded conv uses x itself as cols. For stride-1 convs whose output rows are as long as the
 *   input rows (3x3 pad 1, ...) im2col and col2im are shifted contiguous copies. With several threads the chunks
 *   are spread over OpenMP threads while BLAS runs single-threaded inside each (dense_run_items), each thread with
 *   its own scratch and dW partial sum. All scratch comes from the arena at construction.
 */
#include "ops.h"
#include "kern.h"
#include "winograd.h"

#include <limits.h>
#include <omp.h>
#include <string.h>

/* Loops with fewer elements than this run on one thread (a parallel region costs a few microseconds). */
#define DENSE_OMP_MIN 16384

#define SHAPE_STR(t, buf) tensor_shape_str((t), (buf), sizeof(buf))

static int size_to_int(size_t v, const char *what)
{
    UL_CHECK(v <= (size_t)INT_MAX, "%s: %zu exceeds INT_MAX (BLAS dimension limit)", what, v);
    return (int)v;
}

/* out[j] += sum_i a[i * cols + j] for a [rows, cols] (column sums, double accumulation). */
static void colsum_acc(const float *a, size_t rows, size_t cols, float *out)
{
    enum { BLK = 128 };
    size_t nblk = (cols + BLK - 1) / BLK;
#pragma omp parallel for schedule(static) if (rows * cols > DENSE_OMP_MIN && nblk > 1)
    for (size_t bk = 0; bk < nblk; bk++) {
        size_t j0 = bk * BLK, j1 = j0 + BLK < cols ? j0 + BLK : cols;
        double acc[BLK] = {0};
        for (size_t i = 0; i < rows; i++) {
            const float *row = a + i * cols;
#pragma omp simd
            for (size_t j = j0; j < j1; j++) acc[j - j0] += row[j];
        }
        for (size_t j = j0; j < j1; j++) out[j] += (float)acc[j - j0];
    }
}

/*
 * Runs fn(node, item, tid) for item in [0, n). With nt = min(max_threads, kern_threads(), n) >= 2 the items are
 * spread over nt OpenMP threads (static schedule, tid in [0, nt)) while BLAS runs single-threaded inside each:
 * many independent small products scale better this way than one after another with BLAS splitting each (no
 * per-item synchronisation, per-thread scratch stays in that core's cache). The BLAS thread count is restored
 * afterwards. Otherwise the items run in order on the calling thread (tid 0), each product split over the threads
 * by dense_sgemm. Callers must be outside any parallel region (ops run on the main thread).
 */
typedef void (*DenseItemFn)(TapeNode *node, int item, int tid);

static void dense_run_items(TapeNode *node, int n, int max_threads, DenseItemFn fn)
{
    const int threads = kern_threads();
    int nt = max_threads < threads ? max_threads : threads;
    if (nt > n) nt = n;
    if (nt <= 1) {
        for (int i = 0; i < n; i++) fn(node, i, 0);
        return;
    }
    kern_set_threads(1);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int i = 0; i < n; i++) fn(node, i, omp_get_thread_num());
    kern_set_threads(threads);
}

/*
 * C[M, N] = alpha * op(A) @ op(B) + beta * C (kern_sgemm's contract), with this module's threading: called from
 * inside a parallel region, with one thread, or for a small product, it is one kern_sgemm on the calling thread;
 * otherwise C is cut into one block of rows (or of columns, whichever dim is larger) per thread, each block a
 * single-threaded kern_sgemm on its own OpenMP thread. BLAS's own thread pool is thus never used by these ops:
 * its workers spin after every call and, next to OpenMP's, oversubscribe the cores (measured: a conv layer 20-60x
 * slower on 2 pinned cores when im2col loops and BLAS-threaded products alternate).
 */
static void dense_sgemm(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                        int ldb, float beta, float *C, int ldc)
{
    const int threads = kern_threads();
    const double flops = 2.0 * M * N * K;
    const bool rows = M >= N;
    const int dim = rows ? M : N, align = 16;
    int nt = threads < (dim + align - 1) / align ? threads : (dim + align - 1) / align;
    if (nt <= 1 || flops < 4e6 || omp_in_parallel()) {
        kern_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    kern_set_threads(1);
#pragma omp parallel num_threads(nt)
    {
        /* block t: [lo, hi) of the split dim, boundaries on multiples of `align` */
        int t = omp_get_thread_num(), nblk = (dim + align - 1) / align;
        int lo = (int)((long)nblk * t / nt) * align, hi = (int)((long)nblk * (t + 1) / nt) * align;
        if (hi > dim) hi = dim;
        if (lo < hi) {
            if (rows)
                kern_sgemm(ta, tb, hi - lo, N, K, alpha, ta ? A + lo : A + (size_t)lo * lda, lda, B, ldb, beta,
                           C + (size_t)lo * ldc, ldc);
            else
                kern_sgemm(ta, tb, M, hi - lo, K, alpha, A, lda, tb ? B + (size_t)lo * ldb : B + lo, ldb, beta,
                           C + lo, ldc);
        }
    }
    kern_set_threads(threads);
}

/* ================================================================================================ linear */

typedef struct LinearAttr {
    int M, K, N; /* x viewed as [M, K], w [N, K], y [M, N] */
} LinearAttr;

Tensor *op_linear(Tape *t, Tensor *x, Tensor *w, Tensor *b)
{
    char s1[64], s2[64], s3[64];
    UL_CHECK(x && w, "op_linear: x and w are required");
    UL_CHECK(w->ndim == 2, "op_linear: weight must be [N, K], got %s", SHAPE_STR(w, s1));
    int N = w->shape[0], K = w->shape[1];
    UL_CHECK(N >= 1 && K >= 1, "op_linear: empty weight %s", SHAPE_STR(w, s1));
    UL_CHECK(x->shape[x->ndim - 1] == K, "op_linear: x %s does not end in K = %d of weight %s", SHAPE_STR(x, s1), K,
             SHAPE_STR(w, s2));
    UL_CHECK(!b || (b->ndim == 1 && b->shape[0] == N), "op_linear: bias %s must be [%d] for weight %s (x %s)",
             b ? SHAPE_STR(b, s1) : "-", N, SHAPE_STR(w, s2), SHAPE_STR(x, s3));
    int shape[TENSOR_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = N;
    Tensor *in[3] = {x, w, b};
    Tensor *y = tensor_new(t->arena, x->ndim, shape, tape_wants_grad(t, in, 3));
    LinearAttr *a = arena_alloc(t->arena, sizeof *a);
    a->M = size_to_int(x->n / (size_t)K, "op_linear rows");
    a->K = K;
    a->N = N;
    tape_apply(t, OP_LINEAR, y, in, 3, a);
    return y;
}

void op_linear_forward(TapeNode *node)
{
    const LinearAttr *a = node->attr;
    const Tensor *x = node->in[0], *w = node->in[1], *b = node->in[2];
    float *y = node->out->data; /* [M, N] */
    int M = a->M, K = a->K, N = a->N;
    float beta = 0.0f;
    if (b) {
#pragma omp parallel for schedule(static) if ((size_t)M * N > DENSE_OMP_MIN)
        for (int i = 0; i < M; i++) memcpy(y + (size_t)i * N, b->data, (size_t)N * sizeof(float));
        beta = 1.0f;
    }
    /* y[M, N] = x[M, K] @ w[N, K]^T (+ y holding the bias) */
    dense_sgemm(false, true, M, N, K, 1.0f, x->data, K, w->data, K, beta, y, N);
}

void op_linear_backward(TapeNode *node)
{
    const LinearAttr *a = node->attr;
    Tensor *x = node->in[0], *w = node->in[1], *b = node->in[2];
    const float *dy = node->out->grad; /* [M, N] */
    int M = a->M, K = a->K, N = a->N;
    if (x->grad) dense_sgemm(false, false, M, K, N, 1.0f, dy, N, w->data, K, 1.0f, x->grad, K); /* dx += dy @ w */
    if (w->grad) dense_sgemm(true, false, N, K, M, 1.0f, dy, N, x->data, K, 1.0f, w->grad, K);  /* dw += dy^T @ x */
    if (b && b->grad) colsum_acc(dy, (size_t)M, (size_t)N, b->grad);
}

void op_linear_forward_ref(TapeNode *node)
{
    const LinearAttr *a = node->attr;
    const Tensor *x = node->in[0], *w = node->in[1], *b = node->in[2];
    float *y = node->out->data;
    for (int i = 0; i < a->M; i++)
        for (int n = 0; n < a->N; n++) {
            double acc = b ? b->data[n] : 0.0;
            for (int k = 0; k < a->K; k++)
                acc += (double)x->data[(size_t)i * a->K + k] * w->data[(size_t)n * a->K + k];
            y[(size_t)i * a->N + n] = (float)acc;
        }
}

void op_linear_backward_ref(TapeNode *node)
{
    const LinearAttr *a = node->attr;
    Tensor *x = node->in[0], *w = node->in[1], *b = node->in[2];
    const float *dy = node->out->grad;
    int M = a->M, K = a->K, N = a->N;
    if (x->grad)
        for (int i = 0; i < M; i++)
            for (int k = 0; k < K; k++) {
                double acc = 0;
                for (int n = 0; n < N; n++) acc += (double)dy[(size_t)i * N + n] * w->data[(size_t)n * K + k];
                x->grad[(size_t)i * K + k] += (float)acc;
            }
    if (w->grad)
        for (int n = 0; n < N; n++)
            for (int k = 0; k < K; k++) {
                double acc = 0;
                for (int i = 0; i < M; i++) acc += (double)dy[(size_t)i * N + n] * x->data[(size_t)i * K + k];
                w->grad[(size_t)n * K + k] += (float)acc;
            }
    if (b && b->grad)
        for (int n = 0; n < N; n++) {
            double acc = 0;
            for (int i = 0; i < M; i++) acc += dy[(size_t)i * N + n];
            b->grad[n] += (float)acc;
        }
}

/* ================================================================================================ matmul */

typedef struct MatmulAttr {
    int batch;       /* product of the leading dims (1 when there are none) */
    int M, N, K;     /* per batch: C[M, N] = op(A) @ op(B) */
    bool ta, tb;     /* A stored [K, M] / B stored [N, K] */
} MatmulAttr;

Tensor *op_matmul(Tape *t, Tensor *a, Tensor *b, bool trans_a, bool trans_b)
{
    char s1[64], s2[64];
    UL_CHECK(a && b, "op_matmul: both inputs are required");
    UL_CHECK(a->ndim == b->ndim && a->ndim >= 2 && a->ndim <= 4,
             "op_matmul: a %s and b %s need the same rank, 2 to 4 (0 to 2 leading dims)", SHAPE_STR(a, s1),
             SHAPE_STR(b, s2));
    int nd = a->ndim;
    size_t batch = 1;
    for (int i = 0; i < nd - 2; i++) {
        UL_CHECK(a->shape[i] == b->shape[i], "op_matmul: leading dims of a %s and b %s differ", SHAPE_STR(a, s1),
                 SHAPE_STR(b, s2));
        batch *= (size_t)a->shape[i];
    }
    int M = trans_a ? a->shape[nd - 1] : a->shape[nd - 2], Ka = trans_a ? a->shape[nd - 2] : a->shape[nd - 1];
    int N = trans_b ? b->shape[nd - 2] : b->shape[nd - 1], Kb = trans_b ? b->shape[nd - 1] : b->shape[nd - 2];
    UL_CHECK(Ka == Kb, "op_matmul: inner dims differ: a %s%s, b %s%s (K %d vs %d)", SHAPE_STR(a, s1),
             trans_a ? "^T" : "", SHAPE_STR(b, s2), trans_b ? "^T" : "", Ka, Kb);
    UL_CHECK(M >= 1 && N >= 1 && Ka >= 1 && batch >= 1, "op_matmul: empty operand: a %s, b %s", SHAPE_STR(a, s1),
             SHAPE_STR(b, s2));
    int shape[TENSOR_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[nd - 2] = M;
    shape[nd - 1] = N;
    Tensor *in[2] = {a, b};
    Tensor *y = tensor_new(t->arena, nd, shape, tape_wants_grad(t, in, 2));
    MatmulAttr *at = arena_alloc(t->arena, sizeof *at);
    *at = (MatmulAttr){.batch = size_to_int(batch, "op_matmul batch"), .M = M, .N = N, .K = Ka, .ta = trans_a,
                       .tb = trans_b};
    tape_apply(t, OP_MATMUL, y, in, 2, at);
    return y;
}

static void matmul_forward_item(TapeNode *node, int p, int tid)
{
    (void)tid;
    const MatmulAttr *a = node->attr;
    size_t sa = (size_t)a->M * a->K, sb = (size_t)a->K * a->N, sc = (size_t)a->M * a->N;
    dense_sgemm(a->ta, a->tb, a->M, a->N, a->K, 1.0f, node->in[0]->data + p * sa, a->ta ? a->M : a->K,
                node->in[1]->data + p * sb, a->tb ? a->K : a->N, 0.0f, node->out->data + p * sc, a->N);
}

/* Batches run in parallel (one product per thread) once there are at least as many as threads (attention
   heads), else one after another, each product split over the threads by dense_sgemm. */
static int matmul_max_threads(const MatmulAttr *a) { return a->batch >= kern_threads() ? a->batch : 1; }

void op_matmul_forward(TapeNode *node)
{
    const MatmulAttr *a = node->attr;
    dense_run_items(node, a->batch, matmul_max_threads(a), matmul_forward_item);
}

static void matmul_backward_item(TapeNode *node, int p, int tid)
{
    (void)tid;
    const MatmulAttr *a = node->attr;
    Tensor *ta = node->in[0], *tb = node->in[1];
    int M = a->M, N = a->N, K = a->K;
    int lda = a->ta ? M : K, ldb = a->tb ? K : N;
    size_t sa = (size_t)M * K, sb = (size_t)K * N, sc = (size_t)M * N;
    const float *A = ta->data + p * sa, *B = tb->data + p * sb, *G = node->out->grad + p * sc;
    if (ta->grad) {
        float *dA = ta->grad + p * sa;
        if (!a->ta) /* dA[M, K] += dC @ op(B)^T */
            dense_sgemm(false, !a->tb, M, K, N, 1.0f, G, N, B, ldb, 1.0f, dA, K);
        else        /* dA[K, M] += op(B) @ dC^T */
            dense_sgemm(a->tb, true, K, M, N, 1.0f, B, ldb, G, N, 1.0f, dA, M);
    }
    if (tb->grad) {
        float *dB = tb->grad + p * sb;
        if (!a->tb) /* dB[K, N] += op(A)^T @ dC */
            dense_sgemm(!a->ta, false, K, N, M, 1.0f, A, lda, G, N, 1.0f, dB, N);
        else        /* dB[N, K] += dC^T @ op(A) */
            dense_sgemm(true, a->ta, N, K, M, 1.0f, G, N, A, lda, 1.0f, dB, K);
    }
}

void op_matmul_backward(TapeNode *node)
{
    const MatmulAttr *a = node->attr;
    dense_run_items(node, a->batch, matmul_max_threads(a), matmul_backward_item);
}

/* op(A)[i, k] and op(B)[k, j] of one batch, for the reference twins. */
static inline float mm_a(const MatmulAttr *a, const float *A, int i, int k)
{
    return a->ta ? A[(size_t)k * a->M + i] : A[(size_t)i * a->K + k];
}
static inline float mm_b(const MatmulAttr *a, const float *B, int k, int j)
{
    return a->tb ? B[(size_t)j * a->K + k] : B[(size_t)k * a->N + j];
}

void op_matmul_forward_ref(TapeNode *node)
{
    const MatmulAttr *a = node->attr;
    size_t sa = (size_t)a->M * a->K, sb = (size_t)a->K * a->N, sc = (size_t)a->M * a->N;
    for (int p = 0; p < a->batch; p++) {
        const float *A = node->in[0]->data + p * sa, *B = node->in[1]->data + p * sb;
        float *C = node->out->data + p * sc;
        for (int i = 0; i < a->M; i++)
            for (int j = 0; j < a->N; j++) {
                double acc = 0;
                for (int k = 0; k < a->K; k++) acc += (double)mm_a(a, A, i, k) * mm_b(a, B, k, j);
                C[(size_t)i * a->N + j] = (float)acc;
            }
    }
}

void op_matmul_backward_ref(TapeNode *node)
{
    const MatmulAttr *a = node->attr;
    Tensor *ta = node->in[0], *tb = node->in[1];
    int M = a->M, N = a->N, K = a->K;
    size_t sa = (size_t)M * K, sb = (size_t)K * N, sc = (size_t)M * N;
    for (int p = 0; p < a->batch; p++) {
        const float *A = ta->data + p * sa, *B = tb->data + p * sb, *G = node->out->grad + p * sc;
        /* d op(A)[i, k] = sum_j G[i, j] op(B)[k, j]; stored at [k, i] when trans_a */
        if (ta->grad)
            for (int i = 0; i < M; i++)
                for (int k = 0; k < K; k++) {
                    double acc = 0;
                    for (int j = 0; j < N; j++) acc += (double)G[(size_t)i * N + j] * mm_b(a, B, k, j);
                    ta->grad[p * sa + (a->ta ? (size_t)k * M + i : (size_t)i * K + k)] += (float)acc;
                }
        /* d op(B)[k, j] = sum_i op(A)[i, k] G[i, j]; stored at [j, k] when trans_b */
        if (tb->grad)
            for (int k = 0; k < K; k++)
                for (int j = 0; j < N; j++) {
                    double acc = 0;
                    for (int i = 0; i < M; i++) acc += (double)mm_a(a, A, i, k) * G[(size_t)i * N + j];
                    tb->grad[p * sb + (a->tb ? (size_t)j * K + k : (size_t)k * N + j)] += (float)acc;
                }
    }
}

/* ================================================================================================ conv2d */

/* One im2col geometry: C channels of H x W in, kernel kh x kw, stride, zero padding (ph, pw), Ho x Wo out. */
typedef struct ConvGeom {
    int C, H, W, kh, kw, stride, ph, pw, Ho, Wo;
} ConvGeom;

/*
 * Work is cut into items that each fill one im2col buffer of at most ~CONV_COLS_FLOATS: either a chunk of `chunk`
 * whole samples, or (chunk == 1, a sample too big for the buffer) one band of output rows of one sample.
 */
typedef struct Conv2dAttr {
    int B, Cin, H, W, Cout, kh, kw, stride, pad, Ho, Wo;
    int K;            /* Cin * kh * kw */
    int Kd;           /* Cout * kh * kw (the dx conv's K) */
    int P;            /* Ho * Wo */
    int chunk;        /* samples per chunk; 1 when a sample is cut into bands */
    int band;         /* output rows of y per forward / dW / col2im item (Ho when chunk > 1) */
    int band_dx;      /* rows of dx per dx-conv item (H when chunk > 1) */
    int nthr;         /* kern_threads() at construction: items run on up to this many threads, scratch each */
    bool pointwise;   /* 1x1, stride 1, pad 0: x is its own cols; items are single samples */
    bool dx_conv;     /* stride 1, pad < kernel: dx = conv(dy, flipped kernel, pad k-1-pad): no col2im */
    ConvGeom gx;      /* x -> cols */
    ConvGeom gd;      /* dy -> cols of the dx conv */
    size_t cols_n, ybuf_n, dw_n;  /* floats per thread in cols, ybuf, dwbuf */
    float *cols;      /* [nthr][cols_n] im2col / col2im buffer; NULL when pointwise */
    float *ybuf;      /* [nthr][ybuf_n]: [Cout, chunk*P] or [Cin, chunk*H*W] staging; NULL when chunk == 1 */
    float *dwbuf;     /* [nthr][dw_n]: per-thread dW partial sums (nthr > 1 and w needs grad), else NULL */
    float *wflip;     /* [Cin, Cout, kh, kw]: wflip[ci][co][i][j] = w[co][ci][kh-1-i][kw-1-j]; dx_conv */
    bool wino;        /* forward and dx by Winograd F(2x2, 3x3) (op_conv2d_winograd); dW stays im2col */
    int wchunk;       /* samples per Winograd item */
    size_t wt_n;      /* floats per thread in wv and in wm: 16 * max(Cin, Cout) * wchunk * tiles */
    float *wv, *wm;   /* [nthr][wt_n]: the transformed input tiles V, the 16 products Mt (winograd.h) */
    size_t ws_n;      /* floats per thread in ws: wino_scratch_floats(H, W) */
    float *ws;        /* [nthr][ws_n]: the transforms' scratch */
    float *wu;        /* [16][Cout][Cin]: the transformed filters of the forward */
    float *wud;       /* [16][Cin][Cout]: the transformed flipped filters of the dx conv; NULL without dx */
} Conv2dAttr;

/* ~1 MiB: L2-sized. On the fmnist-cnn layers sgemm runs at 85-95% of its square-matrix rate with cols this size
   and at 60-70% once cols spills to L3 (whole-batch im2col); it also bounds the scratch per conv and thread.
   Budgets of 4, 8 and 16 MiB (larger N per sgemm; whole samples instead of row bands for the UNet 256-channel
   conv) were measured against it on the 4 fmnist-cnn convs at batch 128 and the 2 UNet convs at batch 8, 2 threads
   (2026-11-26): no difference beyond the noise, neither in wall time on all six nor in CPU time (within +-5%) on fmnist
   conv2, conv4 and both UNet convs, so the smaller scratch stays. */
#define CONV_COLS_FLOATS ((size_t)1 << 18)

/*
 * Winograd F(2x2, 3x3) (include/winograd.h) replaces im2col + sgemm in the forward and in the dx conv of 3x3
 * stride-1 pad-1 convolutions with at least WINO_MIN_CHANNELS channels in and out (with fewer, the 16 products
 * have too small a K to pay for the transforms: fmnist-cnn's 1-channel stem stays on im2col), as long as one
 * sample's transformed tiles fit WINO_MAX_FLOATS. Items are chunks of samples whose V and Mt each stay near
 * WINO_FLOATS. Measured 2026-11-27 with bench_core --group fmnist, 1 thread, 3 alternating rounds (medians; the
 * VM's timings wander by +-10% run to run): training step b128 330 -> 301 ms, evaluation forward b512 502 ->
 * 367 ms against im2col for all four convs; budgets of 2^16 / 2^18 floats gave 291 / 326 ms and 390 / 392 ms.
 */
#define WINO_MIN_CHANNELS 8
#define WINO_FLOATS ((size_t)1 << 17)
#define WINO_MAX_FLOATS ((size_t)1 << 22)

bool op_conv2d_winograd(int Cin, int Cout, int H, int W, int kh, int kw, int stride, int pad)
{
    const int cmax = Cin > Cout ? Cin : Cout;
    return kh == 3 && kw == 3 && stride == 1 && pad == 1 && Cin >= WINO_MIN_CHANNELS && Cout >= WINO_MIN_CHANNELS &&
           H >= 1 && W >= 1 && 16 * (double)cmax * (double)wino_cols(H, W) <= (double)WINO_MAX_FLOATS;
}

static int conv_clamp(size_t v, int lo, int hi) { return v < (size_t)lo ? lo : v > (size_t)hi ? hi : (int)v; }

/* Items of a pass whose bands hold `band` of rows_total rows: chunks x bands per chunk. */
static int conv_nitems(const Conv2dAttr *a, int band, int rows_total)
{
    return (a->B + a->chunk - 1) / a->chunk * ((rows_total + band - 1) / band);
}

Tensor *op_conv2d(Tape *t, Tensor *x, Tensor *w, Tensor *b, int stride, int pad)
{
    char s1[64], s2[64];
    UL_CHECK(x && w, "op_conv2d: x and w are required");
    UL_CHECK(x->ndim == 4, "op_conv2d: x must be [B, Cin, H, W], got %s", SHAPE_STR(x, s1));
    UL_CHECK(w->ndim == 4, "op_conv2d: weight must be [Cout, Cin, kh, kw], got %s", SHAPE_STR(w, s1));
    UL_CHECK(stride >= 1 && pad >= 0, "op_conv2d: stride %d must be >= 1 and pad %d >= 0", stride, pad);
    UL_CHECK(x->shape[1] == w->shape[1], "op_conv2d: x %s has %d channels, weight %s expects %d", SHAPE_STR(x, s1),
             x->shape[1], SHAPE_STR(w, s2), w->shape[1]);
    Conv2dAttr *a = arena_alloc(t->arena, sizeof *a);
    memset(a, 0, sizeof *a);
    a->B = x->shape[0];
    a->Cin = x->shape[1];
    a->H = x->shape[2];
    a->W = x->shape[3];
    a->Cout = w->shape[0];
    a->kh = w->shape[2];
    a->kw = w->shape[3];
    a->stride = stride;
    a->pad = pad;
    UL_CHECK(a->B >= 1 && a->Cin >= 1 && a->H >= 1 && a->W >= 1, "op_conv2d: empty input x %s", SHAPE_STR(x, s1));
    UL_CHECK(a->Cout >= 1 && a->kh >= 1 && a->kw >= 1, "op_conv2d: empty weight %s", SHAPE_STR(w, s1));
    UL_CHECK(a->H + 2 * pad >= a->kh && a->W + 2 * pad >= a->kw,
             "op_conv2d: kernel %dx%d larger than the padded input of x %s (pad %d)", a->kh, a->kw, SHAPE_STR(x, s1),
             pad);
    UL_CHECK(!b || (b->ndim == 1 && b->shape[0] == a->Cout), "op_conv2d: bias %s must be [%d]",
             b ? SHAPE_STR(b, s1) : "-", a->Cout);
    a->Ho = (a->H + 2 * pad - a->kh) / stride + 1;
    a->Wo = (a->W + 2 * pad - a->kw) / stride + 1;
    a->K = size_to_int((size_t)a->Cin * a->kh * a->kw, "op_conv2d Cin*kh*kw");
    a->Kd = size_to_int((size_t)a->Cout * a->kh * a->kw, "op_conv2d Cout*kh*kw");
    a->P = size_to_int((size_t)a->Ho * a->Wo, "op_conv2d Ho*Wo");
    const int HW = size_to_int((size_t)a->H * a->W, "op_conv2d H*W");
    a->pointwise = a->kh == 1 && a->kw == 1 && stride == 1 && pad == 0;
    a->dx_conv = !a->pointwise && stride == 1 && pad <= a->kh - 1 && pad <= a->kw - 1;
    a->gx = (ConvGeom){a->Cin, a->H, a->W, a->kh, a->kw, stride, pad, pad, a->Ho, a->Wo};
    a->gd = (ConvGeom){a->Cout, a->Ho, a->Wo, a->kh, a->kw, 1, a->kh - 1 - pad, a->kw - 1 - pad, a->H, a->W};

    Tensor *in[3] = {x, w, b};
    const bool grad = tape_wants_grad(t, in, 3), dx_grad = grad && x->grad != NULL;
    const bool dx_conv_used = dx_grad && a->dx_conv;
    /* floats per sample in cols (im2col of x, or of dy for the dx conv) and in the NCHW staging buffer */
    size_t cols_ps = a->pointwise ? 0 : (size_t)a->K * a->P;
    if (dx_conv_used && (size_t)a->Kd * HW > cols_ps) cols_ps = (size_t)a->Kd * HW;
    size_t ybuf_ps = (size_t)a->Cout * a->P;
    if (dx_grad && (size_t)a->Cin * HW > ybuf_ps) ybuf_ps = (size_t)a->Cin * HW;
    size_t ps = cols_ps > ybuf_ps ? cols_ps : ybuf_ps;
    const int threads = kern_threads(), per_thread = (a->B + threads - 1) / threads; /* chunks for every thread */
    a->chunk = a->pointwise ? 1 : conv_clamp(CONV_COLS_FLOATS / ps, 1, per_thread);
    a->band = a->Ho;
    a->band_dx = a->H;
    if (a->chunk == 1 && !a->pointwise) { /* bands of rows so that cols stays near CONV_COLS_FLOATS */
        a->band = conv_clamp(CONV_COLS_FLOATS / ((size_t)a->K * a->Wo), 1, a->Ho);
        a->band_dx = conv_clamp(CONV_COLS_FLOATS / ((size_t)a->Kd * a->W), 1, a->H);
    }
    int items = conv_nitems(a, a->band, a->Ho), items_dx = dx_conv_used ? conv_nitems(a, a->band_dx, a->H) : 0;
    if (items_dx > items) items = items_dx;
    a->wino = op_conv2d_winograd(a->Cin, a->Cout, a->H, a->W, a->kh, a->kw, stride, pad);
    size_t wino_ps = 0; /* floats per sample in each of V and Mt */
    if (a->wino) {
        wino_ps = 16 * (size_t)(a->Cin > a->Cout ? a->Cin : a->Cout) * wino_cols(a->H, a->W);
        a->wchunk = conv_clamp(WINO_FLOATS / wino_ps, 1, per_thread);
        int witems = (a->B + a->wchunk - 1) / a->wchunk;
        if (witems > items) items = witems;
    }
    a->nthr = threads < items ? threads : items;
    size_t nc = (size_t)a->chunk, nt = (size_t)a->nthr;
    size_to_int(ul_mul_size(nc, (size_t)(a->P > HW ? a->P : HW)), "op_conv2d chunk columns");
    if (!a->pointwise) {
        a->cols_n = ul_mul_size(nc, ul_mul_size((size_t)a->K, (size_t)a->band * a->Wo));
        size_t nd = ul_mul_size(nc, ul_mul_size((size_t)a->Kd, (size_t)a->band_dx * a->W));
        if (dx_conv_used && nd > a->cols_n) a->cols_n = nd;
        a->cols = arena_alloc(t->arena, ul_mul_size(ul_mul_size(nt, a->cols_n), sizeof(float)));
    }
    if (nc > 1) {
        a->ybuf_n = ul_mul_size(nc, ybuf_ps);
        a->ybuf = arena_alloc(t->arena, ul_mul_size(ul_mul_size(nt, a->ybuf_n), sizeof(float)));
    }
    if (grad && w->grad && nt > 1) {
        a->dw_n = w->n;
        a->dwbuf = arena_alloc(t->arena, ul_mul_size(ul_mul_size(nt, a->dw_n), sizeof(float)));
    }
    if (dx_conv_used) a->wflip = arena_alloc(t->arena, ul_mul_size(w->n, sizeof(float)));
    if (a->wino) {
        a->wt_n = ul_mul_size((size_t)a->wchunk, wino_ps);
        size_to_int(ul_mul_size((size_t)a->wchunk, wino_cols(a->H, a->W)), "op_conv2d winograd columns");
        a->wv = arena_alloc(t->arena, ul_mul_size(ul_mul_size(nt, a->wt_n), sizeof(float)));
        a->wm = arena_alloc(t->arena, ul_mul_size(ul_mul_size(nt, a->wt_n), sizeof(float)));
        a->ws_n = wino_scratch_floats(a->H, a->W);
        a->ws = arena_alloc(t->arena, ul_mul_size(ul_mul_size(nt, a->ws_n), sizeof(float)));
        a->wu = arena_alloc(t->arena, ul_mul_size(16 * w->n / 9, sizeof(float)));
        if (dx_conv_used) a->wud = arena_alloc(t->arena, ul_mul_size(16 * w->n / 9, sizeof(float)));
    }
    Tensor *y = tensor_new(t->arena, 4, (int[]){a->B, a->Cout, a->Ho, a->Wo}, grad);
    tape_apply(t, OP_CONV2D, y, in, 3, a);
    return y;
}

/* Columns of the im2col matrix for which the input column ox*stride - pw + j lies inside [0, W): [*ox0, *ox1). */
static void conv_valid_range(const ConvGeom *g, int j, int *ox0, int *ox1)
{
    int lo = g->pw - j, hi = g->W - 1 + g->pw - j;
    int a = lo <= 0 ? 0 : (lo + g->stride - 1) / g->stride;
    int b = hi < 0 ? 0 : hi / g->stride + 1;
    if (b > g->Wo) b = g->Wo;
    if (a > b) a = b;
    *ox0 = a;
    *ox1 = b;
}

/*
 * "Same-width" stride-1 geometries (Wo == W, e.g. 3x3 pad 1): output and input rows have the same length, so the
 * im2col row of tap (i, j) is the input plane shifted by off = (i - ph) * W + (j - pw): one long contiguous copy,
 * after which the columns that wrapped around from the neighbouring row are zeroed. Indices p are output indices
 * oy * W + ox in the whole plane; a band of rows [oy0, oy0 + nrow) is the index range [p_lo, p_hi).
 */
typedef struct ConvTap {
    long q0, q1;    /* output indices whose input index p + off is inside the plane: [q0, q1) within the band */
    long off;       /* input index - output index */
    int r0, r1;     /* rows of the band whose input row is inside the plane */
    int dx;         /* j - pw: column shift */
} ConvTap;

static bool conv_same_width(const ConvGeom *g) { return g->stride == 1 && g->Wo == g->W; }

static ConvTap conv_tap(const ConvGeom *g, int i, int j, int oy0, int nrow)
{
    ConvTap t;
    const int dy = i - g->ph, W = g->W;
    t.dx = j - g->pw;
    t.off = (long)dy * W + t.dx;
    t.r0 = -dy > oy0 ? -dy : oy0;                              /* iy = oy + dy >= 0 */
    t.r1 = g->H - dy < oy0 + nrow ? g->H - dy : oy0 + nrow;    /* iy < H */
    if (t.r1 < t.r0) t.r1 = t.r0;
    long plane = (long)g->H * W;
    t.q0 = (long)t.r0 * W > -t.off ? (long)t.r0 * W : -t.off;
    t.q1 = (long)t.r1 * W < plane - t.off ? (long)t.r1 * W : plane - t.off;
    if (t.q1 < t.q0) t.q1 = t.q0;
    return t;
}

/* Zeroes blk[p - p_lo] for the wrapped columns (those a shift by dx moves outside [0, W)) of rows [r0, r1). */
static void conv_zero_wrapped(float *blk, long p_lo, int W, const ConvTap *t)
{
    int c0 = t->dx < 0 ? 0 : W - t->dx, c1 = t->dx < 0 ? -t->dx : W;
    if (c0 < 0) c0 = 0;
    if (c1 > W) c1 = W;
    if (t->dx == 0 || c0 >= c1) return;
    for (int oy = t->r0; oy < t->r1; oy++)
        for (int c = c0; c < c1; c++) blk[(long)oy * W + c - p_lo] = 0.0f;
}

/*
 * cols[C*kh*kw, nc*nrow*Wo] from nc samples x[nc, C, H, W], for output rows [oy0, oy0 + nrow):
 * row r = (c, i, j), column s*nrow*Wo + (oy - oy0)*Wo + ox.
 */
static void conv_im2col(const ConvGeom *g, const float *x, int nc, int oy0, int nrow, float *cols)
{
    const int H = g->H, W = g->W, Wo = g->Wo, st = g->stride, kh = g->kh, kw = g->kw;
    const int K = g->C * kh * kw;
    const size_t np = (size_t)nrow * Wo, ld = (size_t)nc * np, plane = (size_t)H * W;
    const long p_lo = (long)oy0 * Wo, p_hi = p_lo + (long)np;
    const bool same = conv_same_width(g);
#pragma omp parallel for collapse(2) schedule(static) if (ld * K > DENSE_OMP_MIN)
    for (int r = 0; r < K; r++)
        for (int s = 0; s < nc; s++) {
            int c = r / (kh * kw), i = (r / kw) % kh, j = r % kw;
            const float *src = x + ((size_t)s * g->C + c) * plane;
            float *dst = cols + (size_t)r * ld + (size_t)s * np;
            if (same) {
                ConvTap t = conv_tap(g, i, j, oy0, nrow);
                for (long p = p_lo; p < t.q0; p++) dst[p - p_lo] = 0.0f;
                memcpy(dst + (t.q0 - p_lo), src + t.q0 + t.off, (size_t)(t.q1 - t.q0) * sizeof(float));
                for (long p = t.q1 > p_lo ? t.q1 : p_lo; p < p_hi; p++) dst[p - p_lo] = 0.0f;
                conv_zero_wrapped(dst, p_lo, W, &t);
                continue;
            }
            int ox0, ox1;
            conv_valid_range(g, j, &ox0, &ox1);
            for (int oy = oy0; oy < oy0 + nrow; oy++, dst += Wo) {
                int iy = oy * st - g->ph + i;
                if (iy < 0 || iy >= H) {
                    memset(dst, 0, (size_t)Wo * sizeof(float));
                    continue;
                }
                const float *row = src + (size_t)iy * W - g->pw + j;
                for (int ox = 0; ox < ox0; ox++) dst[ox] = 0.0f;
                if (st == 1) {
#pragma omp simd
                    for (int ox = ox0; ox < ox1; ox++) dst[ox] = row[ox];
                } else {
                    for (int ox = ox0; ox < ox1; ox++) dst[ox] = row[(size_t)ox * st];
                }
                for (int ox = ox1; ox < Wo; ox++) dst[ox] = 0.0f;
            }
        }
}

/*
 * dx[nc, C, H, W] += col2im(cols[C*kh*kw, nc*nrow*Wo]) for output rows [oy0, oy0 + nrow). Each (sample, channel)
 * plane is owned by one thread. cols is scratch: the same-width path zeroes its wrapped columns, then adds each
 * tap contiguously.
 */
static void conv_col2im_acc(const ConvGeom *g, float *cols, int nc, int oy0, int nrow, float *dx)
{
    const int H = g->H, W = g->W, Wo = g->Wo, st = g->stride, kh = g->kh, kw = g->kw;
    const size_t np = (size_t)nrow * Wo, ld = (size_t)nc * np, plane = (size_t)H * W;
    const long p_lo = (long)oy0 * Wo;
    const bool same = conv_same_width(g);
#pragma omp parallel for collapse(2) schedule(static) if (ld * g->C * kh * kw > DENSE_OMP_MIN)
    for (int s = 0; s < nc; s++)
        for (int c = 0; c < g->C; c++) {
            float *dst = dx + ((size_t)s * g->C + c) * plane;
            for (int i = 0; i < kh; i++)
                for (int j = 0; j < kw; j++) {
                    float *src = cols + ((size_t)(c * kh + i) * kw + j) * ld + (size_t)s * np;
                    if (same) {
                        ConvTap t = conv_tap(g, i, j, oy0, nrow);
                        conv_zero_wrapped(src, p_lo, W, &t);
                        float *d = dst + t.off + p_lo;  /* d[p - p_lo] is dx at input index p + off */
#pragma omp simd
                        for (long p = t.q0 - p_lo; p < t.q1 - p_lo; p++) d[p] += src[p];
                        continue;
                    }
                    int ox0, ox1;
                    conv_valid_range(g, j, &ox0, &ox1);
                    for (int oy = oy0; oy < oy0 + nrow; oy++) {
                        int iy = oy * st - g->ph + i;
                        if (iy < 0 || iy >= H) continue;
                        float *row = dst + (size_t)iy * W - g->pw + j;
                        const float *cc = src + (size_t)(oy - oy0) * Wo;
                        if (st == 1) {
#pragma omp simd
                            for (int ox = ox0; ox < ox1; ox++) row[ox] += cc[ox];
                        } else {
                            for (int ox = ox0; ox < ox1; ox++) row[(size_t)ox * st] += cc[ox];
                        }
                    }
                }
        }
}

/*
 * out_s[M, Pf] (NCHW planes of Pf floats, out_s = out + s * M * Pf), columns [p_lo, p_lo + np) of each:
 * (accumulate ? out_s : 0) + A[M, Kc] @ cols[Kc, nc*np] (+ bias[M]), for the nc samples of a chunk.
 * One sample: sgemm writes the band of out directly (ldc = Pf); several (whole planes, np == Pf): via ybuf.
 */
static void conv_gemm_nchw(int M, int Kc, const float *A, const float *cols, int nc, int Pf, int p_lo, int np,
                           float *out, bool accumulate, const float *bias, float *ybuf)
{
    if (nc == 1) {
        float beta = accumulate ? 1.0f : 0.0f, *o = out + p_lo;
        if (bias && !accumulate) {
            for (int m = 0; m < M; m++)
                for (int p = 0; p < np; p++) o[(size_t)m * Pf + p] = bias[m];
            beta = 1.0f;
        }
        dense_sgemm(false, false, M, np, Kc, 1.0f, A, Kc, cols, np, beta, o, Pf);
        return;
    }
    const size_t ld = (size_t)nc * np, os = (size_t)M * Pf;
    dense_sgemm(false, false, M, (int)ld, Kc, 1.0f, A, Kc, cols, (int)ld, 0.0f, ybuf, (int)ld);
#pragma omp parallel for collapse(2) schedule(static) if (ld * M > DENSE_OMP_MIN)
    for (int s = 0; s < nc; s++)
        for (int m = 0; m < M; m++) {
            const float *src = ybuf + (size_t)m * ld + (size_t)s * np;
            float *dst = out + (size_t)s * os + (size_t)m * Pf;
            float bv = bias ? bias[m] : 0.0f;
            if (accumulate) {
#pragma omp simd
                for (int p = 0; p < np; p++) dst[p] += src[p] + bv;
            } else {
#pragma omp simd
                for (int p = 0; p < np; p++) dst[p] = src[p] + bv;
            }
        }
}

/* Item it of a pass with nb bands per chunk: samples [*s0, *s0 + *nc), rows [*r0, *r0 + *nr) of rows_total. */
static void conv_item(const Conv2dAttr *a, int it, int band, int rows_total, int *s0, int *nc, int *r0, int *nr)
{
    int nb = (rows_total + band - 1) / band, c = it / nb, bi = it % nb;
    *s0 = c * a->chunk;
    *nc = a->B - *s0 < a->chunk ? a->B - *s0 : a->chunk;
    *r0 = bi * band;
    *nr = rows_total - *r0 < band ? rows_total - *r0 : band;
}

static float *conv_scratch(float *base, size_t n, int tid) { return base ? base + (size_t)tid * n : NULL; }

static void conv_forward_item(TapeNode *node, int it, int tid)
{
    const Conv2dAttr *a = node->attr;
    const Tensor *x = node->in[0], *w = node->in[1], *b = node->in[2];
    int s0, nc, r0, nr;
    conv_item(a, it, a->band, a->Ho, &s0, &nc, &r0, &nr);
    const float *xc = x->data + (size_t)s0 * a->Cin * a->H * a->W;
    float *cols = conv_scratch(a->cols, a->cols_n, tid);
    if (!a->pointwise) conv_im2col(&a->gx, xc, nc, r0, nr, cols);
    conv_gemm_nchw(a->Cout, a->K, w->data, a->pointwise ? xc : cols, nc, a->P, r0 * a->Wo, nr * a->Wo,
                   node->out->data + (size_t)s0 * a->Cout * a->P, false, b ? b->data : NULL,
                   conv_scratch(a->ybuf, a->ybuf_n, tid));
}

/*
 * One Winograd item: out[nc, M, H, W] (=, or += when accumulate) the 3x3 pad-1 conv of in[nc, C, H, W] with the
 * transformed filters U[16][M][C] (+ bias), for samples [it * wchunk, ...) (in and out point at sample 0).
 */
static void conv_wino_item(const Conv2dAttr *a, int it, int tid, const float *U, int M, int C, const float *in,
                           float *out, bool accumulate, const float *bias)
{
    const int s0 = it * a->wchunk, nc = a->B - s0 < a->wchunk ? a->B - s0 : a->wchunk;
    const size_t HW = (size_t)a->H * a->W, ld = (size_t)nc * wino_cols(a->H, a->W);
    float *V = a->wv + (size_t)tid * a->wt_n, *Mt = a->wm + (size_t)tid * a->wt_n;
    float *ws = a->ws + (size_t)tid * a->ws_n;
    wino_input(V, ld, in + (size_t)s0 * C * HW, nc, C, a->H, a->W, ws);
    for (int xi = 0; xi < 16; xi++)
        dense_sgemm(false, false, M, (int)ld, C, 1.0f, U + (size_t)xi * M * C, C, V + (size_t)xi * C * ld, (int)ld,
                    0.0f, Mt + (size_t)xi * M * ld, (int)ld);
    wino_output(out + (size_t)s0 * M * HW, Mt, ld, nc, M, a->H, a->W, accumulate, bias, ws);
}

static void conv_wino_forward_item(TapeNode *node, int it, int tid)
{
    const Conv2dAttr *a = node->attr;
    const Tensor *b = node->in[2];
    conv_wino_item(a, it, tid, a->wu, a->Cout, a->Cin, node->in[0]->data, node->out->data, false,
                   b ? b->data : NULL);
}

void op_conv2d_forward(TapeNode *node)
{
    const Conv2dAttr *a = node->attr;
    if (a->wino) {
        wino_filter(a->wu, node->in[1]->data, a->Cout, a->Cin);
        dense_run_items(node, (a->B + a->wchunk - 1) / a->wchunk, a->nthr, conv_wino_forward_item);
        return;
    }
    dense_run_items(node, conv_nitems(a, a->band, a->Ho), a->nthr, conv_forward_item);
}

/*
 * dy of an item as an sgemm operand [Cout, ld] with leading dimension *ldg: in place for one sample (rows
 * [r0, r0 + nr) of its planes), gathered into ybuf for a chunk of several.
 */
static const float *conv_dy_operand(const Conv2dAttr *a, const float *dy, int s0, int nc, int r0, int nr,
                                    float *ybuf, int *ldg)
{
    const size_t ys = (size_t)a->Cout * a->P, P = (size_t)a->P;
    if (nc == 1) {
        *ldg = a->P;
        return dy + (size_t)s0 * ys + (size_t)r0 * a->Wo;
    }
    const size_t ld = (size_t)nc * P; /* nc > 1 only with whole planes: r0 = 0, nr = Ho */
#pragma omp parallel for collapse(2) schedule(static) if (ld * a->Cout > DENSE_OMP_MIN)
    for (int s = 0; s < nc; s++)
        for (int co = 0; co < a->Cout; co++)
            memcpy(ybuf + (size_t)co * ld + (size_t)s * P, dy + (size_t)(s0 + s) * ys + (size_t)co * P,
                   P * sizeof(float));
    (void)nr;
    *ldg = (int)ld;
    return ybuf;
}

/* dW (this thread's partial, or w->grad) += dy_item[Cout, n] @ cols_item[K, n]^T. */
static void conv_dw_item(TapeNode *node, int it, int tid)
{
    const Conv2dAttr *a = node->attr;
    const Tensor *x = node->in[0], *w = node->in[1];
    int s0, nc, r0, nr, ldg;
    conv_item(a, it, a->band, a->Ho, &s0, &nc, &r0, &nr);
    float *cols = conv_scratch(a->cols, a->cols_n, tid), *dw = a->dwbuf ? a->dwbuf + (size_t)tid * a->dw_n : w->grad;
    const float *g = conv_dy_operand(a, node->out->grad, s0, nc, r0, nr, conv_scratch(a->ybuf, a->ybuf_n, tid), &ldg);
    const float *xc = x->data + (size_t)s0 * a->Cin * a->H * a->W, *xcols = xc;
    const int n = nc * nr * a->Wo;
    if (!a->pointwise) {
        conv_im2col(&a->gx, xc, nc, r0, nr, cols);
        xcols = cols;
    }
    dense_sgemm(false, true, a->Cout, a->K, n, 1.0f, g, ldg, xcols, n, 1.0f, dw, a->K);
}

/* dx rows [r0, r0 + nr) += wflip[Cin, Cout*kh*kw] @ im2col(dy) (the stride-1 "full" conv). */
static void conv_dx_conv_item(TapeNode *node, int it, int tid)
{
    const Conv2dAttr *a = node->attr;
    int s0, nc, r0, nr;
    conv_item(a, it, a->band_dx, a->H, &s0, &nc, &r0, &nr);
    const int HW = a->H * a->W;
    float *cols = conv_scratch(a->cols, a->cols_n, tid);
    conv_im2col(&a->gd, node->out->grad + (size_t)s0 * a->Cout * a->P, nc, r0, nr, cols);
    conv_gemm_nchw(a->Cin, a->Kd, a->wflip, cols, nc, HW, r0 * a->W, nr * a->W,
                   node->in[0]->grad + (size_t)s0 * a->Cin * HW, true, NULL, conv_scratch(a->ybuf, a->ybuf_n, tid));
}

/* dx += the Winograd conv of dy with the flipped kernel (a 3x3 pad-1 conv too). */
static void conv_wino_dx_item(TapeNode *node, int it, int tid)
{
    const Conv2dAttr *a = node->attr;
    conv_wino_item(a, it, tid, a->wud, a->Cin, a->Cout, node->out->grad, node->in[0]->grad, true, NULL);
}

/* dx of a whole chunk: pointwise dx_s += W^T @ dy_s, else per band cols = W^T @ dy and col2im. Whole chunks per
   item: bands of one sample overlap in dx when the kernel is taller than the stride. */
static void conv_dx_col2im_item(TapeNode *node, int c, int tid)
{
    const Conv2dAttr *a = node->attr;
    const int HW = a->H * a->W, nb = (a->Ho + a->band - 1) / a->band;
    float *cols = conv_scratch(a->cols, a->cols_n, tid), *ybuf = conv_scratch(a->ybuf, a->ybuf_n, tid);
    for (int bi = 0; bi < nb; bi++) {
        int s0, nc, r0, nr, ldg;
        conv_item(a, c * nb + bi, a->band, a->Ho, &s0, &nc, &r0, &nr);
        const float *g = conv_dy_operand(a, node->out->grad, s0, nc, r0, nr, ybuf, &ldg);
        float *dxc = node->in[0]->grad + (size_t)s0 * a->Cin * HW;
        const int n = nc * nr * a->Wo;
        if (a->pointwise) {
            dense_sgemm(true, false, a->Cin, n, a->Cout, 1.0f, node->in[1]->data, a->K, g, ldg, 1.0f, dxc, a->P);
        } else {
            dense_sgemm(true, false, a->K, n, a->Cout, 1.0f, node->in[1]->data, a->K, g, ldg, 0.0f, cols, n);
            conv_col2im_acc(&a->gx, cols, nc, r0, nr, dxc);
        }
    }
}

void op_conv2d_backward(TapeNode *node)
{
    const Conv2dAttr *a = node->attr;
    Tensor *x = node->in[0], *w = node->in[1], *b = node->in[2];
    const float *dy = node->out->grad;
    const int P = a->P, Cout = a->Cout;
    const size_t ys = (size_t)Cout * P;
    if (b && b->grad) {
#pragma omp parallel for schedule(static) if ((size_t)a->B * ys > DENSE_OMP_MIN)
        for (int co = 0; co < Cout; co++) {
            double acc = 0;
            for (int s = 0; s < a->B; s++) {
                const float *g = dy + (size_t)s * ys + (size_t)co * P;
                float part = 0.0f;
#pragma omp simd reduction(+ : part)
                for (int p = 0; p < P; p++) part += g[p];
                acc += part;
            }
            b->grad[co] += (float)acc;
        }
    }
    if (w->grad) {
        if (a->dwbuf) memset(a->dwbuf, 0, (size_t)a->nthr * a->dw_n * sizeof(float));
        dense_run_items(node, conv_nitems(a, a->band, a->Ho), a->nthr, conv_dw_item);
        if (a->dwbuf) /* fixed summation order over the thread partials: deterministic for a given thread count */
            for (int tid = 0; tid < a->nthr; tid++) {
                const float *part = a->dwbuf + (size_t)tid * a->dw_n;
                for (size_t i = 0; i < a->dw_n; i++) w->grad[i] += part[i];
            }
    }
    if (!x->grad) return;
    if (a->dx_conv) {
        const int kk = a->kh * a->kw; /* wflip[ci][co][i][j] = w[co][ci][kh-1-i][kw-1-j] */
        for (int co = 0; co < Cout; co++)
            for (int ci = 0; ci < a->Cin; ci++)
                for (int t = 0; t < kk; t++)
                    a->wflip[((size_t)ci * Cout + co) * kk + (kk - 1 - t)] = w->data[((size_t)co * a->Cin + ci) * kk + t];
        if (a->wino) {
            wino_filter(a->wud, a->wflip, a->Cin, Cout);
            dense_run_items(node, (a->B + a->wchunk - 1) / a->wchunk, a->nthr, conv_wino_dx_item);
        } else {
            dense_run_items(node, conv_nitems(a, a->band_dx, a->H), a->nthr, conv_dx_conv_item);
        }
    } else {
        dense_run_items(node, (a->B + a->chunk - 1) / a->chunk, a->nthr, conv_dx_col2im_item);
    }
}

void op_conv2d_forward_ref(TapeNode *node)
{
    const Conv2dAttr *a = node->attr;
    const Tensor *x = node->in[0], *w = node->in[1], *b = node->in[2];
    float *y = node->out->data;
    for (int s = 0; s < a->B; s++)
        for (int co = 0; co < a->Cout; co++)
            for (int oy = 0; oy < a->Ho; oy++)
                for (int ox = 0; ox < a->Wo; ox++) {
                    double acc = b ? b->data[co] : 0.0;
                    for (int ci = 0; ci < a->Cin; ci++)
                        for (int i = 0; i < a->kh; i++)
                            for (int j = 0; j < a->kw; j++) {
                                int iy = oy * a->stride - a->pad + i, ix = ox * a->stride - a->pad + j;
                                if (iy < 0 || iy >= a->H || ix < 0 || ix >= a->W) continue;
                                acc += (double)x->data[(((size_t)s * a->Cin + ci) * a->H + iy) * a->W + ix] *
                                       w->data[(((size_t)co * a->Cin + ci) * a->kh + i) * a->kw + j];
                            }
                    y[(((size_t)s * a->Cout + co) * a->Ho + oy) * a->Wo + ox] = (float)acc;
                }
}

void op_conv2d_backward_ref(TapeNode *node)
{
    const Conv2dAttr *a = node->attr;
    Tensor *x = node->in[0], *w = node->in[1], *b = node->in[2];
    const float *dy = node->out->grad;
    /* dx: gathered per input element, dW per weight element, both in double. */
    if (x->grad)
        for (int s = 0; s < a->B; s++)
            for (int ci = 0; ci < a->Cin; ci++)
                for (int iy = 0; iy < a->H; iy++)
                    for (int ix = 0; ix < a->W; ix++) {
                        double acc = 0;
                        for (int co = 0; co < a->Cout; co++)
                            for (int i = 0; i < a->kh; i++)
                                for (int j = 0; j < a->kw; j++) {
                                    int ny = iy + a->pad - i, nx = ix + a->pad - j;
                                    if (ny < 0 || nx < 0 || ny % a->stride || nx % a->stride) continue;
                                    int oy = ny / a->stride, ox = nx / a->stride;
                                    if (oy >= a->Ho || ox >= a->Wo) continue;
                                    acc += (double)dy[(((size_t)s * a->Cout + co) * a->Ho + oy) * a->Wo + ox] *
                                           w->data[(((size_t)co * a->Cin + ci) * a->kh + i) * a->kw + j];
                                }
                        x->grad[(((size_t)s * a->Cin + ci) * a->H + iy) * a->W + ix] += (float)acc;
                    }
    if (w->grad)
        for (int co = 0; co < a->Cout; co++)
            for (int ci = 0; ci < a->Cin; ci++)
                for (int i = 0; i < a->kh; i++)
                    for (int j = 0; j < a->kw; j++) {
                        double acc = 0;
                        for (int s = 0; s < a->B; s++)
                            for (int oy = 0; oy < a->Ho; oy++)
                                for (int ox = 0; ox < a->Wo; ox++) {
                                    int iy = oy * a->stride - a->pad + i, ix = ox * a->stride - a->pad + j;
                                    if (iy < 0 || iy >= a->H || ix < 0 || ix >= a->W) continue;
                                    acc += (double)dy[(((size_t)s * a->Cout + co) * a->Ho + oy) * a->Wo + ox] *
                                           x->data[(((size_t)s * a->Cin + ci) * a->H + iy) * a->W + ix];
                                }
                        w->grad[(((size_t)co * a->Cin + ci) * a->kh + i) * a->kw + j] += (float)acc;
                    }
    if (b && b->grad)
        for (int co = 0; co < a->Cout; co++) {
            double acc = 0;
            for (int s = 0; s < a->B; s++)
                for (size_t p = 0; p < (size_t)a->P; p++) acc += dy[((size_t)s * a->Cout + co) * a->P + p];
            b->grad[co] += (float)acc;
        }
}

/* ================================================================================================ pad2d */

typedef struct Pad2dAttr {
    int planes, H, W, top, bottom, left, right; /* planes = B * C */
} Pad2dAttr;

Tensor *op_pad2d(Tape *t, Tensor *x, int top, int bottom, int left, int right)
{
    char s1[64];
    UL_CHECK(x && x->ndim == 4, "op_pad2d: x must be [B, C, H, W], got %s", x ? SHAPE_STR(x, s1) : "NULL");
    UL_CHECK(top >= 0 && bottom >= 0 && left >= 0 && right >= 0,
             "op_pad2d: paddings must be >= 0, got top %d bottom %d left %d right %d", top, bottom, left, right);
    Pad2dAttr *a = arena_alloc(t->arena, sizeof *a);
    *a = (Pad2dAttr){.planes = x->shape[0] * x->shape[1], .H = x->shape[2], .W = x->shape[3], .top = top,
                     .bottom = bottom, .left = left, .right = right};
    Tensor *in[1] = {x};
    int shape[4] = {x->shape[0], x->shape[1], a->H + top + bottom, a->W + left + right};
    Tensor *y = tensor_new(t->arena, 4, shape, tape_wants_grad(t, in, 1));
    tape_apply(t, OP_PAD2D, y, in, 1, a);
    return y;
}

void op_pad2d_forward(TapeNode *node)
{
    const Pad2dAttr *a = node->attr;
    const float *x = node->in[0]->data;
    float *y = node->out->data;
    const int Hp = a->H + a->top + a->bottom, Wp = a->W + a->left + a->right;
#pragma omp parallel for schedule(static) if (node->out->n > DENSE_OMP_MIN)
    for (int q = 0; q < a->planes; q++) {
        float *yp = y + (size_t)q * Hp * Wp;
        const float *xp = x + (size_t)q * a->H * a->W;
        memset(yp, 0, (size_t)a->top * Wp * sizeof(float));
        for (int i = 0; i < a->H; i++) {
            float *row = yp + (size_t)(i + a->top) * Wp;
            memset(row, 0, (size_t)a->left * sizeof(float));
            memcpy(row + a->left, xp + (size_t)i * a->W, (size_t)a->W * sizeof(float));
            memset(row + a->left + a->W, 0, (size_t)a->right * sizeof(float));
        }
        memset(yp + (size_t)(a->top + a->H) * Wp, 0, (size_t)a->bottom * Wp * sizeof(float));
    }
}

void op_pad2d_backward(TapeNode *node)
{
    const Pad2dAttr *a = node->attr;
    float *dx = node->in[0]->grad;
    if (!dx) return;
    const float *dy = node->out->grad;
    const int Hp = a->H + a->top + a->bottom, Wp = a->W + a->left + a->right;
#pragma omp parallel for schedule(static) if (node->in[0]->n > DENSE_OMP_MIN)
    for (int q = 0; q < a->planes; q++)
        for (int i = 0; i < a->H; i++) {
            const float *src = dy + ((size_t)q * Hp + i + a->top) * Wp + a->left;
            float *dst = dx + ((size_t)q * a->H + i) * a->W;
#pragma omp simd
            for (int j = 0; j < a->W; j++) dst[j] += src[j];
        }
}

void op_pad2d_forward_ref(TapeNode *node)
{
    const Pad2dAttr *a = node->attr;
    const int Hp = a->H + a->top + a->bottom, Wp = a->W + a->left + a->right;
    for (int q = 0; q < a->planes; q++)
        for (int i = 0; i < Hp; i++)
            for (int j = 0; j < Wp; j++) {
                int si = i - a->top, sj = j - a->left;
                bool in = si >= 0 && si < a->H && sj >= 0 && sj < a->W;
                node->out->data[((size_t)q * Hp + i) * Wp + j] =
                    in ? node->in[0]->data[((size_t)q * a->H + si) * a->W + sj] : 0.0f;
            }
}

void op_pad2d_backward_ref(TapeNode *node)
{
    const Pad2dAttr *a = node->attr;
    if (!node->in[0]->grad) return;
    const int Hp = a->H + a->top + a->bottom, Wp = a->W + a->left + a->right;
    for (int q = 0; q < a->planes; q++)
        for (int i = 0; i < a->H; i++)
            for (int j = 0; j < a->W; j++)
                node->in[0]->grad[((size_t)q * a->H + i) * a->W + j] +=
                    node->out->grad[((size_t)q * Hp + i + a->top) * Wp + j + a->left];
}

/* ================================================================================================ upsample2x */

typedef struct Upsample2xAttr {
    int planes, H, W; /* input planes = B * C, each H x W */
} Upsample2xAttr;

Tensor *op_upsample2x(Tape *t, Tensor *x)
{
    char s1[64];
    UL_CHECK(x && x->ndim == 4, "op_upsample2x: x must be [B, C, H, W], got %s", x ? SHAPE_STR(x, s1) : "NULL");
    Upsample2xAttr *a = arena_alloc(t->arena, sizeof *a);
    *a = (Upsample2xAttr){.planes = x->shape[0] * x->shape[1], .H = x->shape[2], .W = x->shape[3]};
    Tensor *in[1] = {x};
    int shape[4] = {x->shape[0], x->shape[1], 2 * a->H, 2 * a->W};
    Tensor *y = tensor_new(t->arena, 4, shape, tape_wants_grad(t, in, 1));
    tape_apply(t, OP_UPSAMPLE2X, y, in, 1, a);
    return y;
}

void op_upsample2x_forward(TapeNode *node)
{
    const Upsample2xAttr *a = node->attr;
    const float *x = node->in[0]->data;
    float *y = node->out->data;
    const int H = a->H, W = a->W, W2 = 2 * W;
#pragma omp parallel for schedule(static) if (node->out->n > DENSE_OMP_MIN)
    for (int q = 0; q < a->planes; q++)
        for (int i = 0; i < H; i++) {
            const float *src = x + ((size_t)q * H + i) * W;
            float *r0 = y + ((size_t)q * 2 * H + 2 * i) * W2;
#pragma omp simd
            for (int j = 0; j < W; j++) r0[2 * j] = r0[2 * j + 1] = src[j];
            memcpy(r0 + W2, r0, (size_t)W2 * sizeof(float));
        }
}

void op_upsample2x_backward(TapeNode *node)
{
    const Upsample2xAttr *a = node->attr;
    float *dx = node->in[0]->grad;
    if (!dx) return;
    const float *dy = node->out->grad;
    const int H = a->H, W = a->W, W2 = 2 * W;
#pragma omp parallel for schedule(static) if (node->out->n > DENSE_OMP_MIN)
    for (int q = 0; q < a->planes; q++)
        for (int i = 0; i < H; i++) {
            const float *r0 = dy + ((size_t)q * 2 * H + 2 * i) * W2, *r1 = r0 + W2;
            float *dst = dx + ((size_t)q * H + i) * W;
#pragma omp simd
            for (int j = 0; j < W; j++) dst[j] += (r0[2 * j] + r0[2 * j + 1]) + (r1[2 * j] + r1[2 * j + 1]);
        }
}

void op_upsample2x_forward_ref(TapeNode *node)
{
    const Upsample2xAttr *a = node->attr;
    for (int q = 0; q < a->planes; q++)
        for (int i = 0; i < 2 * a->H; i++)
            for (int j = 0; j < 2 * a->W; j++)
                node->out->data[((size_t)q * 2 * a->H + i) * 2 * a->W + j] =
                    node->in[0]->data[((size_t)q * a->H + i / 2) * a->W + j / 2];
}

void op_upsample2x_backward_ref(TapeNode *node)
{
    const Upsample2xAttr *a = node->attr;
    if (!node->in[0]->grad) return;
    for (int q = 0; q < a->planes; q++)
        for (int i = 0; i < a->H; i++)
            for (int j = 0; j < a->W; j++) {
                double acc = 0;
                for (int di = 0; di < 2; di++)
                    for (int dj = 0; dj < 2; dj++)
                        acc += node->out->grad[((size_t)q * 2 * a->H + 2 * i + di) * 2 * a->W + 2 * j + dj];
                node->in[0]->grad[((size_t)q * a->H + i) * a->W + j] += (float)acc;
            }
}

/* ================================================================================================ pools */

typedef struct Pool2dAttr {
    int planes, H, W, Ho, Wo, k, stride;
    int32_t *argmax; /* maxpool only: [planes * Ho * Wo] index iy * W + ix of the max inside its input plane */
} Pool2dAttr;

static Pool2dAttr *pool_attr(Tape *t, const Tensor *x, int kernel, int stride, const char *name)
{
    char s1[64];
    UL_CHECK(x && x->ndim == 4, "%s: x must be [B, C, H, W], got %s", name, x ? SHAPE_STR(x, s1) : "NULL");
    UL_CHECK(kernel >= 1 && stride >= 1, "%s: kernel %d and stride %d must be >= 1", name, kernel, stride);
    UL_CHECK(x->shape[2] >= kernel && x->shape[3] >= kernel, "%s: kernel %d larger than the input x %s", name, kernel,
             SHAPE_STR(x, s1));
    Pool2dAttr *a = arena_alloc(t->arena, sizeof *a);
    *a = (Pool2dAttr){.planes = x->shape[0] * x->shape[1], .H = x->shape[2], .W = x->shape[3], .k = kernel,
                      .stride = stride};
    a->Ho = (a->H - kernel) / stride + 1;
    a->Wo = (a->W - kernel) / stride + 1;
    return a;
}

Tensor *op_avgpool2d(Tape *t, Tensor *x, int kernel, int stride)
{
    Pool2dAttr *a = pool_attr(t, x, kernel, stride, "op_avgpool2d");
    Tensor *in[1] = {x};
    Tensor *y = tensor_new(t->arena, 4, (int[]){x->shape[0], x->shape[1], a->Ho, a->Wo}, tape_wants_grad(t, in, 1));
    tape_apply(t, OP_AVGPOOL2D, y, in, 1, a);
    return y;
}

void op_avgpool2d_forward(TapeNode *node)
{
    const Pool2dAttr *a = node->attr;
    const float *x = node->in[0]->data;
    float *y = node->out->data;
    const float inv = 1.0f / (float)(a->k * a->k);
#pragma omp parallel for schedule(static) if (node->in[0]->n > DENSE_OMP_MIN)
    for (int q = 0; q < a->planes; q++)
        for (int oy = 0; oy < a->Ho; oy++)
            for (int ox = 0; ox < a->Wo; ox++) {
                const float *src = x + ((size_t)q * a->H + (size_t)oy * a->stride) * a->W + (size_t)ox * a->stride;
                float acc = 0.0f;
                for (int i = 0; i < a->k; i++)
                    for (int j = 0; j < a->k; j++) acc += src[(size_t)i * a->W + j];
                y[((size_t)q * a->Ho + oy) * a->Wo + ox] = acc * inv;
            }
}

void op_avgpool2d_backward(TapeNode *node)
{
    const Pool2dAttr *a = node->attr;
    float *dx = node->in[0]->grad;
    if (!dx) return;
    const float *dy = node->out->grad;
    const float inv = 1.0f / (float)(a->k * a->k);
#pragma omp parallel for schedule(static) if (node->in[0]->n > DENSE_OMP_MIN)
    for (int q = 0; q < a->planes; q++) /* windows may overlap (stride < k): one plane per thread */
        for (int oy = 0; oy < a->Ho; oy++)
            for (int ox = 0; ox < a->Wo; ox++) {
                float g = dy[((size_t)q * a->Ho + oy) * a->Wo + ox] * inv;
                float *dst = dx + ((size_t)q * a->H + (size_t)oy * a->stride) * a->W + (size_t)ox * a->stride;
                for (int i = 0; i < a->k; i++)
                    for (int j = 0; j < a->k; j++) dst[(size_t)i * a->W + j] += g;
            }
}

void op_avgpool2d_forward_ref(TapeNode *node)
{
    const Pool2dAttr *a = node->attr;
    for (int q = 0; q < a->planes; q++)
        for (int oy = 0; oy < a->Ho; oy++)
            for (int ox = 0; ox < a->Wo; ox++) {
                double acc = 0;
                for (int i = 0; i < a->k; i++)
                    for (int j = 0; j < a->k; j++)
                        acc += node->in[0]->data[((size_t)q * a->H + oy * a->stride + i) * a->W + ox * a->stride + j];
                node->out->data[((size_t)q * a->Ho + oy) * a->Wo + ox] = (float)(acc / (a->k * a->k));
            }
}

void op_avgpool2d_backward_ref(TapeNode *node)
{
    const Pool2dAttr *a = node->attr;
    if (!node->in[0]->grad) return;
    /* gathered per input element: the windows that contain (iy, ix), searched among oy <= iy / stride */
    for (int q = 0; q < a->planes; q++)
        for (int iy = 0; iy < a->H; iy++)
            for (int ix = 0; ix < a->W; ix++) {
                double acc = 0;
                for (int oy = 0; oy < a->Ho && oy <= iy / a->stride; oy++)
                    for (int ox = 0; ox < a->Wo && ox <= ix / a->stride; ox++)
                        if (iy >= oy * a->stride && iy < oy * a->stride + a->k && ix >= ox * a->stride &&
                            ix < ox * a->stride + a->k)
                            acc += node->out->grad[((size_t)q * a->Ho + oy) * a->Wo + ox];
                node->in[0]->grad[((size_t)q * a->H + iy) * a->W + ix] += (float)(acc / (a->k * a->k));
            }
}

Tensor *op_maxpool2d(Tape *t, Tensor *x, int kernel, int stride)
{
    Pool2dAttr *a = pool_attr(t, x, kernel, stride, "op_maxpool2d");
    Tensor *in[1] = {x};
    Tensor *y = tensor_new(t->arena, 4, (int[]){x->shape[0], x->shape[1], a->Ho, a->Wo}, tape_wants_grad(t, in, 1));
    a->argmax = arena_alloc(t->arena, ul_mul_size(y->n, sizeof(int32_t)));
    tape_apply(t, OP_MAXPOOL2D, y, in, 1, a);
    return y;
}

/* Keeps (v, idx) when v > *best or v is NaN: PyTorch's rule (`val > maxval || isnan(val)`), so the first maximum
   in row-major order wins ties and a NaN propagates. Written as selects, which GCC vectorises; branches would
   mispredict on every other element of random data. */
static inline void maxpool_take(float v, int32_t idx, float *best, int32_t *bi)
{
    bool take = (v > *best) || !(v == v);
    *best = take ? v : *best;
    *bi = take ? idx : *bi;
}

/* The max of one window and its index (iy * W + ix in the plane). */
static inline void maxpool_window(const Pool2dAttr *a, const float *plane, int oy, int ox, float *vmax, int32_t *imax)
{
    int y0 = oy * a->stride, x0 = ox * a->stride;
    float best = plane[(size_t)y0 * a->W + x0];
    int32_t bi = y0 * a->W + x0;
    for (int i = 0; i < a->k; i++)
        for (int j = 0; j < a->k; j++) {
            int32_t idx = (y0 + i) * a->W + x0 + j;
            maxpool_take(plane[idx], idx, &best, &bi);
        }
    *vmax = best;
    *imax = bi;
}

void op_maxpool2d_forward(TapeNode *node)
{
    const Pool2dAttr *a = node->attr;
    const float *x = node->in[0]->data;
    float *y = node->out->data;
    const size_t plane = (size_t)a->H * a->W, oplane = (size_t)a->Ho * a->Wo;
    if (a->k == 2 && a->stride == 2) { /* the common case: unrolled, vectorised over ox (selects, no branches) */
        const int W = a->W, Wo = a->Wo;
#pragma omp parallel for schedule(static) if (node->in[0]->n > DENSE_OMP_MIN)
        for (int q = 0; q < a->planes; q++) {
            const float *xp = x + q * plane;
            for (int oy = 0; oy < a->Ho; oy++) {
                const float *r0 = xp + (size_t)2 * oy * W, *r1 = r0 + W;
                float *yo = y + q * oplane + (size_t)oy * Wo;
                int32_t *ao = a->argmax + q * oplane + (size_t)oy * Wo;
                const int32_t row = 2 * oy * W;
#pragma omp simd
                for (int ox = 0; ox < Wo; ox++) {
                    float best = r0[2 * ox];
                    int32_t bi = row + 2 * ox;
                    maxpool_take(r0[2 * ox + 1], row + 2 * ox + 1, &best, &bi);
                    maxpool_take(r1[2 * ox], row + W + 2 * ox, &best, &bi);
                    maxpool_take(r1[2 * ox + 1], row + W + 2 * ox + 1, &best, &bi);
                    yo[ox] = best;
                    ao[ox] = bi;
                }
            }
        }
        return;
    }
#pragma omp parallel for schedule(static) if (node->in[0]->n > DENSE_OMP_MIN)
    for (int q = 0; q < a->planes; q++)
        for (int oy = 0; oy < a->Ho; oy++)
            for (int ox = 0; ox < a->Wo; ox++) {
                size_t o = q * oplane + (size_t)oy * a->Wo + ox;
                maxpool_window(a, x + q * plane, oy, ox, &y[o], &a->argmax[o]);
            }
}

void op_maxpool2d_backward(TapeNode *node)
{
    const Pool2dAttr *a = node->attr;
    float *dx = node->in[0]->grad;
    if (!dx) return;
    const float *dy = node->out->grad;
    const size_t plane = (size_t)a->H * a->W, oplane = (size_t)a->Ho * a->Wo;
#pragma omp parallel for schedule(static) if (node->in[0]->n > DENSE_OMP_MIN)
    for (int q = 0; q < a->planes; q++) /* overlapping windows may share an argmax: one plane per thread */
        for (size_t o = 0; o < oplane; o++) dx[q * plane + a->argmax[q * oplane + o]] += dy[q * oplane + o];
}

void op_maxpool2d_forward_ref(TapeNode *node)
{
    const Pool2dAttr *a = node->attr;
    const size_t plane = (size_t)a->H * a->W, oplane = (size_t)a->Ho * a->Wo;
    for (int q = 0; q < a->planes; q++)
        for (int oy = 0; oy < a->Ho; oy++)
            for (int ox = 0; ox < a->Wo; ox++) {
                size_t o = q * oplane + (size_t)oy * a->Wo + ox;
                maxpool_window(a, node->in[0]->data + q * plane, oy, ox, &node->out->data[o], &a->argmax[o]);
            }
}

void op_maxpool2d_backward_ref(TapeNode *node)
{
    const Pool2dAttr *a = node->attr;
    if (!node->in[0]->grad) return;
    const size_t plane = (size_t)a->H * a->W, oplane = (size_t)a->Ho * a->Wo;
    for (int q = 0; q < a->planes; q++)
        for (size_t o = 0; o < oplane; o++)
            node->in[0]->grad[q * plane + a->argmax[q * oplane + o]] += node->out->grad[q * oplane + o];
}

typedef struct GlobalAvgpoolAttr {
    int planes, HW;
} GlobalAvgpoolAttr;

Tensor *op_global_avgpool(Tape *t, Tensor *x)
{
    char s1[64];
    UL_CHECK(x && x->ndim == 4, "op_global_avgpool: x must be [B, C, H, W], got %s", x ? SHAPE_STR(x, s1) : "NULL");
    UL_CHECK(x->shape[2] >= 1 && x->shape[3] >= 1, "op_global_avgpool: empty planes in x %s", SHAPE_STR(x, s1));
    GlobalAvgpoolAttr *a = arena_alloc(t->arena, sizeof *a);
    a->planes = x->shape[0] * x->shape[1];
    a->HW = x->shape[2] * x->shape[3];
    Tensor *in[1] = {x};
    Tensor *y = tensor_new(t->arena, 2, (int[]){x->shape[0], x->shape[1]}, tape_wants_grad(t, in, 1));
    tape_apply(t, OP_GLOBAL_AVGPOOL, y, in, 1, a);
    return y;
}

void op_global_avgpool_forward(TapeNode *node)
{
    const GlobalAvgpoolAttr *a = node->attr;
    const float *x = node->in[0]->data;
#pragma omp parallel for schedule(static) if (node->in[0]->n > DENSE_OMP_MIN)
    for (int q = 0; q < a->planes; q++) {
        const float *p = x + (size_t)q * a->HW;
        float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
        for (int i = 0; i < a->HW; i++) acc += p[i];
        node->out->data[q] = acc / (float)a->HW;
    }
}

void op_global_avgpool_backward(TapeNode *node)
{
    const GlobalAvgpoolAttr *a = node->attr;
    float *dx = node->in[0]->grad;
    if (!dx) return;
#pragma omp parallel for schedule(static) if (node->in[0]->n > DENSE_OMP_MIN)
    for (int q = 0; q < a->planes; q++) {
        float g = node->out->grad[q] / (float)a->HW, *p = dx + (size_t)q * a->HW;
#pragma omp simd
        for (int i = 0; i < a->HW; i++) p[i] += g;
    }
}

void op_global_avgpool_forward_ref(TapeNode *node)
{
    const GlobalAvgpoolAttr *a = node->attr;
    for (int q = 0; q < a->planes; q++) {
        double acc = 0;
        for (int i = 0; i < a->HW; i++) acc += node->in[0]->data[(size_t)q * a->HW + i];
        node->out->data[q] = (float)(acc / a->HW);
    }
}

void op_global_avgpool_backward_ref(TapeNode *node)
{
    const GlobalAvgpoolAttr *a = node->attr;
    if (!node->in[0]->grad) return;
    for (int q = 0; q < a->planes; q++)
        for (int i = 0; i < a->HW; i++)
            node->in[0]->grad[(size_t)q * a->HW + i] += (float)((double)node->out->grad[q] / a->HW);
}
