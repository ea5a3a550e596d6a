/*
 * test_ops_norm.c - the ops of src/ops_norm.c: batchnorm2d, groupnorm, layernorm, softmax, log_softmax,
 * cross_entropy, mse, kl_div.
 *
 * For every op: finite differences (tu_gradcheck) on shapes whose dims all differ (batchnorm in training AND eval
 * mode, groupnorm with 1 and several groups, layernorm with and without affine) and fast vs _ref (tu_refcheck) on a
 * small and a medium shape, run with 2 OpenMP threads. Plus direct checks of the semantics: BatchNorm's
 * running-statistic update (momentum 0.1, unbiased variance) and biased-variance normalisation, synchronised
 * BatchNorm over two emulated ranks equal to one rank, normalised outputs, softmax rows summing to 1, hand-computed
 * cross-entropy / mse / KL values, and the label range check.
 *
 * Tolerances and why:
 *   GRAD_ATOL/RTOL 2e-3 / 1e-2: float32 forward, fd step 1e-2 on O(1) inputs: rounding of (L+ - L-) / 2h is ~1e-4
 *     with a few hundred outputs, and the O(h^2) truncation of normalisations (third derivatives ~ invstd^3 ~ 5)
 *     is ~1e-4..5e-4.
 *   REF_ATOL/RTOL 2e-5 / 1e-4: fast (single-pass statistics, closed-form backward, float inner loops) vs ref
 *     (two-pass double, textbook chain rule): a few float ulps per element, amplified by invstd up to ~2.
 *   Semantic checks against direct double computations: 1e-5 relative (float storage of the results).
 */
#define _POSIX_C_SOURCE 200809L
#include <omp.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define GRAD_EPS 1e-2f
#define GRAD_ATOL 2e-3
#define GRAD_RTOL 1e-2
#define REF_ATOL 2e-5
#define REF_RTOL 1e-4

typedef struct Ctx {
    float *rm, *rv;    /* batchnorm running statistics */
    float momentum, eps;
    int groups;
    const int *labels;
    bool mean;         /* mse */
} Ctx;

static Tensor *f_bn(Tape *t, Tensor **in, void *c)
{
    Ctx *x = c;
    return op_batchnorm2d(t, in[0], in[1], in[2], x->rm, x->rv, x->momentum, x->eps);
}
static Tensor *f_gn(Tape *t, Tensor **in, void *c)
{
    Ctx *x = c;
    return op_groupnorm(t, in[0], in[1], in[2], x->groups, x->eps);
}
static Tensor *f_ln(Tape *t, Tensor **in, void *c) { return op_layernorm(t, in[0], in[1], in[2], ((Ctx *)c)->eps); }
static Tensor *f_ln_plain(Tape *t, Tensor **in, void *c)
{
    return op_layernorm(t, in[0], NULL, NULL, ((Ctx *)c)->eps);
}
static Tensor *f_softmax(Tape *t, Tensor **in, void *c) { (void)c; return op_softmax(t, in[0]); }
static Tensor *f_log_softmax(Tape *t, Tensor **in, void *c) { (void)c; return op_log_softmax(t, in[0]); }
static Tensor *f_ce(Tape *t, Tensor **in, void *c) { return op_cross_entropy(t, in[0], ((Ctx *)c)->labels); }
static Tensor *f_mse(Tape *t, Tensor **in, void *c) { return op_mse(t, in[0], in[1], ((Ctx *)c)->mean); }
static Tensor *f_kl(Tape *t, Tensor **in, void *c) { (void)c; return op_kl_div(t, in[0], in[1]); }

static void check_op(const char *name, tu_build_fn f, void *ctx, Tensor **in, int nin, int training)
{
    tu_gradcheck(name, f, ctx, in, nin, GRAD_EPS, GRAD_ATOL, GRAD_RTOL, training);
    tu_refcheck(name, f, ctx, in, nin, REF_ATOL, REF_RTOL, training);
}

/* One forward (and optional backward with seed r) outside the harness; copies the output into out. */
static void run_once(tu_build_fn f, void *ctx, Tensor **in, int training, int use_ref, float *out, const float *r)
{
    Arena arena;
    arena_init(&arena, (size_t)1 << 30);
    Tape tape;
    tape_init(&tape, &arena, 16);
    tape.training = training;
    tape.use_ref = use_ref;
    Tensor *y = f(&tape, in, ctx);
    if (out) memcpy(out, y->data, y->n * sizeof(float));
    if (r) tape_backward(&tape, y, r);
    tape_free(&tape);
    arena_free(&arena);
}

/* ------------------------------------------------------------------ batchnorm2d */

static void test_batchnorm(void)
{
    const int B = 3, C = 4, H = 5, W = 6, sh[4] = {B, C, H, W};
    float rm[4], rv[4];
    Ctx c = {.rm = rm, .rv = rv, .momentum = 0.1f, .eps = 1e-5f};
    Tensor *in[3] = {tu_tensor(4, sh, 401, -1, 2, 1), tu_tensor(1, &C, 402, 0.5f, 1.5f, 1),
                     tu_tensor(1, &C, 403, -0.5f, 0.5f, 1)};
    tu_fill(rm, 4, 404, -0.3f, 0.3f);
    tu_fill(rv, 4, 405, 0.5f, 1.5f);
    check_op("batchnorm2d training", f_bn, &c, in, 3, 1);
    tu_fill(rm, 4, 404, -0.3f, 0.3f);
    tu_fill(rv, 4, 405, 0.5f, 1.5f);
    check_op("batchnorm2d eval", f_bn, &c, in, 3, 0);

    /* Eval leaves the running statistics alone. */
    float rm0[4], rv0[4];
    memcpy(rm0, rm, sizeof rm);
    memcpy(rv0, rv, sizeof rv);
    run_once(f_bn, &c, in, 0, 0, NULL, NULL);
    tu_compare("batchnorm2d eval: running_mean unchanged", rm, rm0, 4, 0, 0);
    tu_compare("batchnorm2d eval: running_var unchanged", rv, rv0, 4, 0, 0);

    /* Training: one step moves the running stats by momentum 0.1 towards the batch mean and UNBIASED variance,
       computed here directly in double; the output is normalised with the BIASED variance, so with gamma = 1 and
       beta = 0 each channel's output has mean 0 and biased variance var / (var + eps). */
    for (int use_ref = 0; use_ref < 2; use_ref++) {
        size_t N = (size_t)B * H * W, S = (size_t)H * W;
        float want_rm[4], want_rv[4], got_mean[4], got_var[4], want_var[4], zero[4] = {0};
        double bmean[4], bvar[4];
        for (int ch = 0; ch < C; ch++) {
            double s = 0, ss = 0;
            for (int b = 0; b < B; b++)
                for (size_t k = 0; k < S; k++) s += in[0]->data[((size_t)b * C + ch) * S + k];
            bmean[ch] = s / (double)N;
            for (int b = 0; b < B; b++)
                for (size_t k = 0; k < S; k++) {
                    double d = in[0]->data[((size_t)b * C + ch) * S + k] - bmean[ch];
                    ss += d * d;
                }
            bvar[ch] = ss / (double)N;
            want_rm[ch] = (float)(0.9 * rm0[ch] + 0.1 * bmean[ch]);
            want_rv[ch] = (float)(0.9 * rv0[ch] + 0.1 * ss / (double)(N - 1));
            want_var[ch] = (float)(bvar[ch] / (bvar[ch] + 1e-5));
        }
        memcpy(rm, rm0, sizeof rm);
        memcpy(rv, rv0, sizeof rv);
        Tensor *one = tu_tensor(1, &C, 1, 1, 1, 0), *nil = tu_tensor(1, &C, 1, 0, 0, 0);
        Tensor *plain[3] = {in[0], one, nil};
        float *y = malloc(in[0]->n * sizeof(float));
        run_once(f_bn, &c, plain, 1, use_ref, y, NULL);
        for (int ch = 0; ch < C; ch++) {
            double s = 0, ss = 0;
            for (int b = 0; b < B; b++)
                for (size_t k = 0; k < S; k++) s += y[((size_t)b * C + ch) * S + k];
            for (int b = 0; b < B; b++)
                for (size_t k = 0; k < S; k++) {
                    double d = y[((size_t)b * C + ch) * S + k] - s / (double)N;
                    ss += d * d;
                }
            got_mean[ch] = (float)(s / (double)N);
            got_var[ch] = (float)(ss / (double)N);
        }
        tu_compare(use_ref ? "batchnorm2d ref: running_mean update" : "batchnorm2d: running_mean update", rm,
                   want_rm, 4, 0, 1e-5);
        tu_compare(use_ref ? "batchnorm2d ref: running_var update (unbiased)"
                           : "batchnorm2d: running_var update (unbiased)",
                   rv, want_rv, 4, 0, 1e-5);
        tu_compare(use_ref ? "batchnorm2d ref: output channel means 0" : "batchnorm2d: output channel means 0",
                   got_mean, zero, 4, 1e-6, 0);
        /* Unbiased normalisation would give var (N-1)/N / (var + eps): 1.1% lower here, far outside 1e-5. */
        tu_compare(use_ref ? "batchnorm2d ref: output biased var" : "batchnorm2d: output biased var", got_var,
                   want_var, 4, 0, 1e-5);
        free(y);
        tu_tensor_free(one);
        tu_tensor_free(nil);
    }
    for (int i = 0; i < 3; i++) tu_tensor_free(in[i]);

    /* Medium shapes: fast vs ref in both modes (parallel over channels). */
    const int mb[4] = {8, 16, 14, 12}, Cm = 16;
    float rmm[16], rvm[16];
    Ctx cm = {.rm = rmm, .rv = rvm, .momentum = 0.1f, .eps = 1e-5f};
    tu_fill(rmm, 16, 406, -0.3f, 0.3f);
    tu_fill(rvm, 16, 407, 0.5f, 1.5f);
    Tensor *m[3] = {tu_tensor(4, mb, 408, -2, 3, 1), tu_tensor(1, &Cm, 409, 0.5f, 1.5f, 1),
                    tu_tensor(1, &Cm, 410, -0.5f, 0.5f, 1)};
    tu_refcheck("batchnorm2d medium training", f_bn, &cm, m, 3, REF_ATOL, REF_RTOL, 1);
    tu_refcheck("batchnorm2d medium eval", f_bn, &cm, m, 3, REF_ATOL, REF_RTOL, 0);
    for (int i = 0; i < 3; i++) tu_tensor_free(m[i]);
}

/* Synchronised BatchNorm: two threads play two ranks (batch split 3 + 5) with a barrier-based allreduce. Outputs,
   input gradients and running statistics must equal a single-rank run over the whole batch of 8; the ranks'
   gamma/beta gradients must sum to the single-rank ones. */
typedef struct FakeComm {
    pthread_barrier_t bar;
    double *slot[2];
} FakeComm;

static FakeComm g_comm;
static _Thread_local int tl_rank;

static void fake_allreduce(double *buf, size_t n)
{
    g_comm.slot[tl_rank] = buf;
    pthread_barrier_wait(&g_comm.bar);
    double *sum = malloc(n * sizeof *sum);
    for (size_t i = 0; i < n; i++) sum[i] = g_comm.slot[0][i] + g_comm.slot[1][i];
    pthread_barrier_wait(&g_comm.bar);  /* both have read both buffers */
    memcpy(buf, sum, n * sizeof *sum);
    free(sum);
}

typedef struct RankJob {
    int rank, use_ref;
    Tensor *in[3];
    float rm[5], rv[5];
    const float *seed;
    float *out;
} RankJob;

static void *rank_main(void *arg)
{
    RankJob *j = arg;
    tl_rank = j->rank;
    Arena arena;
    arena_init(&arena, (size_t)1 << 26);
    Tape tape;
    tape_init(&tape, &arena, 16);
    tape.training = true;
    tape.use_ref = j->use_ref;
    tape.allreduce_sum = fake_allreduce;
    Tensor *y = op_batchnorm2d(&tape, j->in[0], j->in[1], j->in[2], j->rm, j->rv, 0.1f, 1e-5f);
    memcpy(j->out, y->data, y->n * sizeof(float));
    tape_backward(&tape, y, j->seed);
    tape_free(&tape);
    arena_free(&arena);
    return NULL;
}

static void test_batchnorm_sync(void)
{
    const int B = 8, C = 5, H = 3, W = 4, split[2] = {3, 5};
    const int sh[4] = {B, C, H, W};
    size_t per = (size_t)C * H * W;
    for (int use_ref = 0; use_ref < 2; use_ref++) {
        Tensor *full[3] = {tu_tensor(4, sh, 501, -1, 2, 1), tu_tensor(1, &C, 502, 0.5f, 1.5f, 1),
                           tu_tensor(1, &C, 503, -0.5f, 0.5f, 1)};
        float rm[5], rv[5], *r = malloc(full[0]->n * sizeof(float)), *yfull = malloc(full[0]->n * sizeof(float));
        tu_fill(rm, 5, 504, -0.3f, 0.3f);
        tu_fill(rv, 5, 505, 0.5f, 1.5f);
        tu_fill(r, full[0]->n, 506, -1, 1);
        RankJob job[2];
        for (int k = 0; k < 2; k++) {
            RankJob *j = &job[k];
            j->rank = k;
            j->use_ref = use_ref;
            j->in[0] = tu_tensor(4, (int[]){split[k], C, H, W}, 1, 0, 0, 1);
            memcpy(j->in[0]->data, full[0]->data + (k ? split[0] * per : 0), j->in[0]->n * sizeof(float));
            j->in[1] = tu_tensor(1, &C, 1, 0, 0, 1);
            j->in[2] = tu_tensor(1, &C, 1, 0, 0, 1);
            memcpy(j->in[1]->data, full[1]->data, C * sizeof(float));
            memcpy(j->in[2]->data, full[2]->data, C * sizeof(float));
            memcpy(j->rm, rm, sizeof rm);
            memcpy(j->rv, rv, sizeof rv);
            j->seed = r + (k ? split[0] * per : 0);
            j->out = malloc(j->in[0]->n * sizeof(float));
        }
        Ctx c = {.rm = rm, .rv = rv, .momentum = 0.1f, .eps = 1e-5f};
        run_once(f_bn, &c, full, 1, use_ref, yfull, r);
        pthread_barrier_init(&g_comm.bar, NULL, 2);
        pthread_t th[2];
        for (int k = 0; k < 2; k++) pthread_create(&th[k], NULL, rank_main, &job[k]);
        for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
        pthread_barrier_destroy(&g_comm.bar);
        size_t n0 = job[0].in[0]->n, n1 = job[1].in[0]->n;
        float *cat = malloc(full[0]->n * sizeof(float)), dg[5], db[5];
        char what[96];
        const char *tag = use_ref ? "sync batchnorm ref" : "sync batchnorm";
        memcpy(cat, job[0].out, n0 * sizeof(float));
        memcpy(cat + n0, job[1].out, n1 * sizeof(float));
        snprintf(what, sizeof what, "%s 2 ranks vs 1: output", tag);
        tu_compare(what, cat, yfull, full[0]->n, 1e-5, 1e-5);
        memcpy(cat, job[0].in[0]->grad, n0 * sizeof(float));
        memcpy(cat + n0, job[1].in[0]->grad, n1 * sizeof(float));
        snprintf(what, sizeof what, "%s 2 ranks vs 1: dx", tag);
        tu_compare(what, cat, full[0]->grad, full[0]->n, 1e-5, 1e-4);
        for (int ch = 0; ch < C; ch++) {
            dg[ch] = job[0].in[1]->grad[ch] + job[1].in[1]->grad[ch];
            db[ch] = job[0].in[2]->grad[ch] + job[1].in[2]->grad[ch];
        }
        snprintf(what, sizeof what, "%s 2 ranks vs 1: sum of dgamma", tag);
        tu_compare(what, dg, full[1]->grad, 5, 1e-5, 1e-5);
        snprintf(what, sizeof what, "%s 2 ranks vs 1: sum of dbeta", tag);
        tu_compare(what, db, full[2]->grad, 5, 1e-5, 1e-5);
        for (int k = 0; k < 2; k++) {
            snprintf(what, sizeof what, "%s rank %d running_mean", tag, k);
            tu_compare(what, job[k].rm, rm, 5, 0, 1e-6);
            snprintf(what, sizeof what, "%s rank %d running_var", tag, k);
            tu_compare(what, job[k].rv, rv, 5, 0, 1e-6);
            for (int i = 0; i < 3; i++) tu_tensor_free(job[k].in[i]);
            free(job[k].out);
        }
        for (int i = 0; i < 3; i++) tu_tensor_free(full[i]);
        free(cat);
        free(r);
        free(yfull);
    }
}

/* ------------------------------------------------------------------ groupnorm, layernorm */

static void test_groupnorm(void)
{
    const int sh[4] = {2, 6, 5, 3}, C = 6;
    const int groups[3] = {1, 3, 6};
    for (int k = 0; k < 3; k++) {
        Ctx c = {.groups = groups[k], .eps = 1e-5f};
        Tensor *in[3] = {tu_tensor(4, sh, 601 + k, -1, 2, 1), tu_tensor(1, &C, 611, 0.5f, 1.5f, 1),
                         tu_tensor(1, &C, 612, -0.5f, 0.5f, 1)};
        char name[64];
        snprintf(name, sizeof name, "groupnorm groups=%d", groups[k]);
        check_op(name, f_gn, &c, in, 3, 1);
        for (int i = 0; i < 3; i++) tu_tensor_free(in[i]);
    }
    /* [B, C, T] (3-d) with groups 2 */
    const int s3[3] = {3, 4, 7}, C3 = 4;
    Ctx c3 = {.groups = 2, .eps = 1e-5f};
    Tensor *in[3] = {tu_tensor(3, s3, 621, -1, 1, 1), tu_tensor(1, &C3, 622, 0.5f, 1.5f, 1),
                     tu_tensor(1, &C3, 623, -0.5f, 0.5f, 1)};
    check_op("groupnorm 3-d groups=2", f_gn, &c3, in, 3, 1);
    for (int i = 0; i < 3; i++) tu_tensor_free(in[i]);

    const int mb[4] = {4, 32, 16, 12}, Cm = 32;
    Ctx cm = {.groups = 8, .eps = 1e-5f};
    Tensor *m[3] = {tu_tensor(4, mb, 631, -2, 3, 1), tu_tensor(1, &Cm, 632, 0.5f, 1.5f, 1),
                    tu_tensor(1, &Cm, 633, -0.5f, 0.5f, 1)};
    tu_refcheck("groupnorm medium groups=8", f_gn, &cm, m, 3, REF_ATOL, REF_RTOL, 1);
    for (int i = 0; i < 3; i++) tu_tensor_free(m[i]);
}

static void test_layernorm(void)
{
    const int sh[3] = {3, 5, 7}, C = 7;
    Ctx c = {.eps = 1e-5f};
    Tensor *in[3] = {tu_tensor(3, sh, 701, -1, 2, 1), tu_tensor(1, &C, 702, 0.5f, 1.5f, 1),
                     tu_tensor(1, &C, 703, -0.5f, 0.5f, 1)};
    check_op("layernorm affine", f_ln, &c, in, 3, 1);
    check_op("layernorm no affine", f_ln_plain, &c, in, 1, 1);

    /* Without affine every row has mean 0 and biased variance var / (var + eps) (~1). */
    size_t R = in[0]->n / C;
    float *y = malloc(in[0]->n * sizeof(float)), *got = malloc(2 * R * sizeof(float)),
          *want = malloc(2 * R * sizeof(float));
    run_once(f_ln_plain, &c, in, 1, 0, y, NULL);
    for (size_t r = 0; r < R; r++) {
        double mx = 0, vx = 0, my = 0, vy = 0;
        for (int k = 0; k < C; k++) {
            mx += in[0]->data[r * C + k];
            my += y[r * C + k];
        }
        mx /= C;
        my /= C;
        for (int k = 0; k < C; k++) {
            vx += (in[0]->data[r * C + k] - mx) * (in[0]->data[r * C + k] - mx);
            vy += (y[r * C + k] - my) * (y[r * C + k] - my);
        }
        vx /= C;
        vy /= C;
        got[2 * r] = (float)my;
        got[2 * r + 1] = (float)vy;
        want[2 * r] = 0.0f;
        want[2 * r + 1] = (float)(vx / (vx + 1e-5));
    }
    tu_compare("layernorm rows: mean 0, var/(var+eps)", got, want, 2 * R, 1e-6, 1e-5);
    free(y);
    free(got);
    free(want);
    for (int i = 0; i < 3; i++) tu_tensor_free(in[i]);

    const int ms[3] = {8, 50, 200}, Cm = 200;
    Tensor *m[3] = {tu_tensor(3, ms, 711, -2, 3, 1), tu_tensor(1, &Cm, 712, 0.5f, 1.5f, 1),
                    tu_tensor(1, &Cm, 713, -0.5f, 0.5f, 1)};
    tu_refcheck("layernorm medium affine", f_ln, &c, m, 3, REF_ATOL, REF_RTOL, 1);
    tu_refcheck("layernorm medium no affine", f_ln_plain, &c, m, 1, REF_ATOL, REF_RTOL, 1);
    for (int i = 0; i < 3; i++) tu_tensor_free(m[i]);
}

/* ------------------------------------------------------------------ softmax, log_softmax */

static void test_softmax(void)
{
    const int sh[3] = {3, 4, 7}, med[2] = {256, 130};
    Tensor *x = tu_tensor(3, sh, 801, -3, 3, 1);
    check_op("softmax", f_softmax, NULL, &x, 1, 1);
    check_op("log_softmax", f_log_softmax, NULL, &x, 1, 1);

    /* Rows sum to 1; exp(log_softmax) == softmax. */
    size_t R = x->n / 7;
    float *y = malloc(x->n * sizeof(float)), *ly = malloc(x->n * sizeof(float)), *sums = malloc(R * sizeof(float)),
          *ones = malloc(R * sizeof(float));
    run_once(f_softmax, NULL, &x, 1, 0, y, NULL);
    run_once(f_log_softmax, NULL, &x, 1, 0, ly, NULL);
    for (size_t r = 0; r < R; r++) {
        double s = 0;
        for (int k = 0; k < 7; k++) s += y[r * 7 + k];
        sums[r] = (float)s;
        ones[r] = 1.0f;
    }
    tu_compare("softmax rows sum to 1", sums, ones, R, 1e-6, 0);
    for (size_t i = 0; i < x->n; i++) ly[i] = expf(ly[i]);
    tu_compare("exp(log_softmax) == softmax", ly, y, x->n, 1e-7, 1e-6);

    /* Max-shifted: logits around 1000 give the same result as the same logits shifted to around 0. */
    Tensor *big = tu_tensor(3, sh, 801, -3, 3, 0);
    for (size_t i = 0; i < big->n; i++) big->data[i] += 1000.0f;
    float *yb = malloc(x->n * sizeof(float));
    run_once(f_softmax, NULL, &big, 1, 0, yb, NULL);
    tu_compare("softmax of logits + 1000 (no overflow)", yb, y, x->n, 1e-4, 0);
    run_once(f_log_softmax, NULL, &big, 1, 0, yb, NULL);
    run_once(f_log_softmax, NULL, &x, 1, 0, ly, NULL);
    tu_compare("log_softmax of logits + 1000 (no overflow)", yb, ly, x->n, 2e-4, 0);
    free(y);
    free(ly);
    free(yb);
    free(sums);
    free(ones);
    tu_tensor_free(big);
    tu_tensor_free(x);

    x = tu_tensor(2, med, 802, -6, 6, 1);
    tu_refcheck("softmax medium", f_softmax, NULL, &x, 1, REF_ATOL, REF_RTOL, 1);
    tu_refcheck("log_softmax medium", f_log_softmax, NULL, &x, 1, REF_ATOL, REF_RTOL, 1);
    tu_tensor_free(x);
}

/* ------------------------------------------------------------------ cross_entropy, mse, kl_div */

static void test_cross_entropy(void)
{
    /* Hand example: logits [0, ln 3]: softmax [1/4, 3/4]; label 1 -> ln(4/3), label 0 -> ln 4.
       Gradient (seed 1): softmax - onehot = [1/4, -1/4] and [-3/4, 3/4]. */
    for (int use_ref = 0; use_ref < 2; use_ref++) {
        float logits[4] = {0.0f, logf(3.0f), 0.0f, logf(3.0f)}, g[4] = {0};
        int labels[2] = {1, 0};
        float want[2] = {logf(4.0f / 3.0f), logf(4.0f)}, want_g[4] = {0.25f, -0.25f, -0.75f, 0.75f};
        Arena arena;
        arena_init(&arena, (size_t)1 << 20);
        Tape tape;
        tape_init(&tape, &arena, 4);
        tape.use_ref = use_ref;
        Tensor *x = tensor_wrap(&arena, logits, g, 2, (int[]){2, 2});
        Tensor *y = op_cross_entropy(&tape, x, labels);
        tape_backward(&tape, y, NULL);
        tu_compare(use_ref ? "cross_entropy ref hand example" : "cross_entropy hand example", y->data, want, 2,
                   1e-7, 1e-6);
        tu_compare(use_ref ? "cross_entropy ref hand example: grad" : "cross_entropy hand example: grad", g, want_g,
                   4, 1e-7, 1e-6);
        tape_free(&tape);
        arena_free(&arena);
    }

    const int sh[2] = {5, 7};
    int labels[5] = {3, 0, 6, 2, 6};
    Ctx c = {.labels = labels};
    Tensor *x = tu_tensor(2, sh, 901, -3, 3, 1);
    check_op("cross_entropy", f_ce, &c, &x, 1, 1);
    tu_tensor_free(x);

    const int med[2] = {300, 110};
    int *ml = malloc(300 * sizeof(int));
    for (int i = 0; i < 300; i++) ml[i] = (i * 37) % 110;
    Ctx cm = {.labels = ml};
    x = tu_tensor(2, med, 902, -8, 8, 1);
    tu_refcheck("cross_entropy medium", f_ce, &cm, &x, 1, REF_ATOL, REF_RTOL, 1);
    tu_tensor_free(x);
    free(ml);

    /* A label outside [0, C) is fatal (UL_CHECK): the child process must exit nonzero. */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        int bad[5] = {3, 0, 7, 2, 6};
        Tensor *xb = tu_tensor(2, sh, 903, -1, 1, 0);
        Ctx cb = {.labels = bad};
        run_once(f_ce, &cb, &xb, 1, 0, NULL, NULL);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    TU_CHECK(WIFEXITED(status) && WEXITSTATUS(status) != 0, "cross_entropy with label 7 of 7 classes was accepted");
}

static void test_mse(void)
{
    /* Hand example: pred [[1, 2], [3, 5]], target [[0, 0], [3, 3]]: sums [5, 4], means [2.5, 2]. */
    for (int mean = 0; mean < 2; mean++) {
        float p[4] = {1, 2, 3, 5}, q[4] = {0, 0, 3, 3}, want[2] = {mean ? 2.5f : 5.0f, mean ? 2.0f : 4.0f};
        Tensor *in[2] = {tu_tensor(2, (int[]){2, 2}, 1, 0, 0, 0), tu_tensor(2, (int[]){2, 2}, 1, 0, 0, 0)};
        memcpy(in[0]->data, p, sizeof p);
        memcpy(in[1]->data, q, sizeof q);
        Ctx c = {.mean = mean};
        float got[2];
        run_once(f_mse, &c, in, 1, 0, got, NULL);
        tu_compare(mean ? "mse mean hand example" : "mse sum hand example", got, want, 2, 0, 1e-7);
        tu_tensor_free(in[0]);
        tu_tensor_free(in[1]);
    }
    const int sh[3] = {3, 4, 5}, med[4] = {12, 3, 40, 36};
    for (int mean = 0; mean < 2; mean++) {
        Ctx c = {.mean = mean};
        Tensor *in[2] = {tu_tensor(3, sh, 1001, -1, 1, 1), tu_tensor(3, sh, 1002, -1, 1, 1)};
        check_op(mean ? "mse mean" : "mse sum", f_mse, &c, in, 2, 1);
        tu_tensor_free(in[0]);
        tu_tensor_free(in[1]);
        Tensor *m[2] = {tu_tensor(4, med, 1003, -1, 1, 1), tu_tensor(4, med, 1004, -1, 1, 0)};
        tu_refcheck(mean ? "mse mean medium (target without grad)" : "mse sum medium (target without grad)", f_mse,
                    &c, m, 2, REF_ATOL, REF_RTOL, 1);
        tu_tensor_free(m[0]);
        tu_tensor_free(m[1]);
    }
}

/* Rows of x replaced by log-softmax of random logits (computed here in double). */
static void fill_log_probs(Tensor *x, unsigned long long seed)
{
    int C = x->shape[1];
    tu_fill(x->data, x->n, seed, -2, 2);
    for (size_t r = 0; r < x->n / (size_t)C; r++) {
        double s = 0;
        for (int k = 0; k < C; k++) s += exp(x->data[r * C + k]);
        for (int k = 0; k < C; k++) x->data[r * C + k] = (float)(x->data[r * C + k] - log(s));
    }
}

static void test_kl(void)
{
    /* Hand example: p = [1/2, 1/2], q = [1/4, 3/4]: KL = 1/2 ln 2 + 1/2 ln(2/3); KL(p || p) = 0. */
    float lp[4] = {logf(0.5f), logf(0.5f), logf(0.5f), logf(0.5f)}, lq[4] = {logf(0.25f), logf(0.75f), lp[0], lp[1]};
    float want[2] = {(float)(0.5 * log(2.0) + 0.5 * log(2.0 / 3.0)), 0.0f}, got[2];
    Tensor *in[2] = {tu_tensor(2, (int[]){2, 2}, 1, 0, 0, 0), tu_tensor(2, (int[]){2, 2}, 1, 0, 0, 0)};
    memcpy(in[0]->data, lp, sizeof lp);
    memcpy(in[1]->data, lq, sizeof lq);
    for (int use_ref = 0; use_ref < 2; use_ref++) {
        run_once(f_kl, NULL, in, 1, use_ref, got, NULL);
        tu_compare(use_ref ? "kl_div ref hand example" : "kl_div hand example", got, want, 2, 1e-7, 1e-6);
    }
    tu_tensor_free(in[0]);
    tu_tensor_free(in[1]);

    const int sh[2] = {4, 9}, med[2] = {300, 110};
    Tensor *k[2] = {tu_tensor(2, sh, 1, 0, 0, 1), tu_tensor(2, sh, 1, 0, 0, 1)};
    fill_log_probs(k[0], 1101);
    fill_log_probs(k[1], 1102);
    check_op("kl_div", f_kl, NULL, k, 2, 1);
    tu_tensor_free(k[0]);
    tu_tensor_free(k[1]);
    Tensor *m[2] = {tu_tensor(2, med, 1, 0, 0, 1), tu_tensor(2, med, 1, 0, 0, 1)};
    fill_log_probs(m[0], 1103);
    fill_log_probs(m[1], 1104);
    tu_refcheck("kl_div medium", f_kl, NULL, m, 2, REF_ATOL, REF_RTOL, 1);
    tu_tensor_free(m[0]);
    tu_tensor_free(m[1]);
}

int main(void)
{
    omp_set_num_threads(2);
    test_batchnorm();
    test_batchnorm_sync();
    test_groupnorm();
    test_layernorm();
    test_softmax();
    test_cross_entropy();
    test_mse();
    test_kl();
    return tu_finish("test_ops_norm");
}
