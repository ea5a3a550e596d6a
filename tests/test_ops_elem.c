/*
 * test_ops_elem.c - the ops of src/ops_elem.c: add, sub, mul, scale, add_bcast, mul_bcast, relu, silu, gelu_tanh,
 * dropout, weighted_sum.
 *
 * For every op: finite differences (tu_gradcheck) on shapes whose dims all differ, and fast vs _ref (tu_refcheck)
 * on a small shape and on a medium one (above ELEM_PAR_MIN, run with 2 OpenMP threads so that the parallel
 * paths and their write partitioning are exercised). Plus: activation values and slopes against PyTorch, the
 * dropout contract (identity cases, keep rate, 1/(1-p) scaling, masks a pure function of (seed, row key, j)),
 * and a hand-computed weighted sum.
 *
 * Tolerances and why:
 *   GRAD_ATOL/RTOL 1e-3 / 1e-2: the loss is float32 forward output projected on random R; with inputs O(1),
 *     fd step 1e-2 and a few hundred outputs the rounding in (L+ - L-) / 2h is ~1e-4 and the O(h^2) truncation
 *     ~1e-4 for these smooth ops (relu is kept 0.1 away from its kink, so it is exactly linear over the step).
 *   REF_ATOL/RTOL 1e-5 / 1e-5: fast (float, different op order, expf/tanhf) vs ref (double then rounded) differ by
 *     a few float ulps; reductions into broadcast y sum up to ~1e4 terms, hence the atol.
 *   Activation values vs PyTorch (float64 reference): 2e-6 absolute; float32 evaluation of tanh/exp.
 */
#include <omp.h>

#include "rng.h"
#include "testutil.h"

#define GRAD_EPS 1e-2f
#define GRAD_ATOL 1e-3
#define GRAD_RTOL 1e-2
#define REF_ATOL 1e-5
#define REF_RTOL 1e-5

typedef struct Ctx {
    float c;               /* scale */
    float p;               /* dropout */
    uint64_t seed;
    const int64_t *keys;
    const float *w;        /* weighted_sum */
} Ctx;

static Tensor *f_add(Tape *t, Tensor **in, void *c) { (void)c; return op_add(t, in[0], in[1]); }
static Tensor *f_sub(Tape *t, Tensor **in, void *c) { (void)c; return op_sub(t, in[0], in[1]); }
static Tensor *f_mul(Tape *t, Tensor **in, void *c) { (void)c; return op_mul(t, in[0], in[1]); }
static Tensor *f_square(Tape *t, Tensor **in, void *c) { (void)c; return op_mul(t, in[0], in[0]); }
static Tensor *f_scale(Tape *t, Tensor **in, void *c) { return op_scale(t, in[0], ((Ctx *)c)->c); }
static Tensor *f_add_bcast(Tape *t, Tensor **in, void *c) { (void)c; return op_add_bcast(t, in[0], in[1]); }
static Tensor *f_mul_bcast(Tape *t, Tensor **in, void *c) { (void)c; return op_mul_bcast(t, in[0], in[1]); }
static Tensor *f_relu(Tape *t, Tensor **in, void *c) { (void)c; return op_relu(t, in[0]); }
static Tensor *f_silu(Tape *t, Tensor **in, void *c) { (void)c; return op_silu(t, in[0]); }
static Tensor *f_gelu(Tape *t, Tensor **in, void *c) { (void)c; return op_gelu_tanh(t, in[0]); }
static Tensor *f_dropout(Tape *t, Tensor **in, void *c)
{
    Ctx *x = c;
    return op_dropout(t, in[0], x->p, x->seed, x->keys);
}
static Tensor *f_wsum(Tape *t, Tensor **in, void *c) { return op_weighted_sum(t, in[0], ((Ctx *)c)->w); }

/* Both checks for one op on one set of inputs. */
static void check_op(const char *name, tu_build_fn f, void *ctx, Tensor **in, int nin, int training)
{
    tu_gradcheck(name, f, ctx, in, nin, GRAD_EPS, GRAD_ATOL, GRAD_RTOL, training);
    tu_refcheck(name, f, ctx, in, nin, REF_ATOL, REF_RTOL, training);
}

static void test_binary(void)
{
    const int sh[3] = {3, 5, 7}, med[4] = {16, 24, 20, 18};
    struct { const char *name; tu_build_fn f; } ops[] = {{"add", f_add}, {"sub", f_sub}, {"mul", f_mul}};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        Tensor *in[2] = {tu_tensor(3, sh, 11 + k, -1, 1, 1), tu_tensor(3, sh, 21 + k, -1, 1, 1)};
        check_op(ops[k].name, ops[k].f, NULL, in, 2, 1);
        tu_tensor_free(in[0]);
        tu_tensor_free(in[1]);
        Tensor *m[2] = {tu_tensor(4, med, 31 + k, -1, 1, 1), tu_tensor(4, med, 41 + k, -1, 1, 1)};
        char name[64];
        snprintf(name, sizeof name, "%s medium", ops[k].name);
        tu_refcheck(name, ops[k].f, NULL, m, 2, REF_ATOL, REF_RTOL, 1);
        tu_tensor_free(m[0]);
        tu_tensor_free(m[1]);
    }
    /* x * x: both gradient slots are the same buffer; backward must accumulate 2 x g. */
    Tensor *x = tu_tensor(3, sh, 51, -1, 1, 1);
    check_op("mul(x, x)", f_square, NULL, &x, 1, 1);
    tu_tensor_free(x);
    /* One input without a gradient: only the other one receives one. */
    Tensor *in[2] = {tu_tensor(3, sh, 52, -1, 1, 1), tu_tensor(3, sh, 53, -1, 1, 0)};
    check_op("mul (y without grad)", f_mul, NULL, in, 2, 1);
    tu_tensor_free(in[0]);
    tu_tensor_free(in[1]);

    Ctx c = {.c = -1.75f};
    x = tu_tensor(3, sh, 54, -1, 1, 1);
    check_op("scale", f_scale, &c, &x, 1, 1);
    tu_tensor_free(x);
    x = tu_tensor(4, med, 55, -1, 1, 1);
    tu_refcheck("scale medium", f_scale, &c, &x, 1, REF_ATOL, REF_RTOL, 1);
    tu_tensor_free(x);
}

static void test_bcast(void)
{
    /* Every broadcast pattern class: per-channel bias, per-(sample, channel), last dim only, several alternating
       broadcast dims, no broadcast, scalar; plus a 3-d token case. */
    const int xs[4] = {2, 3, 4, 5};
    const int ys[][4] = {{1, 3, 1, 1}, {2, 3, 1, 1}, {1, 1, 1, 5}, {2, 1, 4, 1}, {1, 3, 1, 5},
                         {2, 3, 4, 5}, {1, 1, 1, 1}, {2, 1, 1, 1}};
    for (size_t k = 0; k < sizeof ys / sizeof ys[0]; k++) {
        for (int mul = 0; mul < 2; mul++) {
            Tensor *in[2] = {tu_tensor(4, xs, 60 + k, -1, 1, 1), tu_tensor(4, ys[k], 70 + k, -1, 1, 1)};
            char name[96];
            snprintf(name, sizeof name, "%s y[%d,%d,%d,%d]", mul ? "mul_bcast" : "add_bcast", ys[k][0], ys[k][1],
                     ys[k][2], ys[k][3]);
            check_op(name, mul ? f_mul_bcast : f_add_bcast, NULL, in, 2, 1);
            tu_tensor_free(in[0]);
            tu_tensor_free(in[1]);
        }
    }
    const int tx[3] = {3, 4, 6}, ty[3] = {3, 1, 6};
    Tensor *in[2] = {tu_tensor(3, tx, 80, -1, 1, 1), tu_tensor(3, ty, 81, -1, 1, 1)};
    check_op("mul_bcast tokens y[3,1,6]", f_mul_bcast, NULL, in, 2, 1);
    tu_tensor_free(in[0]);
    tu_tensor_free(in[1]);

    const int mx[4] = {16, 24, 20, 18};
    const int my[][4] = {{1, 24, 1, 1}, {16, 24, 1, 1}, {1, 1, 1, 18}, {16, 1, 20, 1}, {1, 24, 20, 18}};
    for (size_t k = 0; k < sizeof my / sizeof my[0]; k++) {
        for (int mul = 0; mul < 2; mul++) {
            Tensor *m[2] = {tu_tensor(4, mx, 90 + k, -1, 1, 1), tu_tensor(4, my[k], 95 + k, -1, 1, 1)};
            char name[96];
            snprintf(name, sizeof name, "%s medium y[%d,%d,%d,%d]", mul ? "mul_bcast" : "add_bcast", my[k][0],
                     my[k][1], my[k][2], my[k][3]);
            tu_refcheck(name, mul ? f_mul_bcast : f_add_bcast, NULL, m, 2, REF_ATOL, REF_RTOL, 1);
            tu_tensor_free(m[0]);
            tu_tensor_free(m[1]);
        }
    }
}

/* Values and slopes at fixed points against PyTorch 1.13 in float64:
   F.gelu(x, approximate='tanh'), F.silu(x) and their autograd derivatives. */
static void test_activation_values(void)
{
    const float x[6] = {-3.0f, -1.0f, -0.25f, 0.5f, 1.0f, 2.5f};
    const float gelu[6] = {-0.0036373920817729943f, -0.15880800939172324f, -0.100324649298315f,
                           0.34571400982514394f, 0.8411919906082768f, 2.484915733910001f};
    const float dgelu[6] = {-0.011584166630969648f, -0.08296408384578252f, 0.30464590484893955f,
                            0.8673699035346424f, 1.0829640838457826f, 1.037951576212666f};
    const float silu[6] = {-0.14227761953270035f, -0.2689414213699951f, -0.10945587477855048f,
                           0.3112296656009273f, 0.7310585786300049f, 2.3103545499468914f};
    const float dsilu[6] = {-0.08810410601516962f, 0.07232948812851325f, 0.37628997842980233f,
                            0.7399611873026519f, 0.9276705118714869f, 1.0994011113415267f};
    const float relu[6] = {0, 0, 0, 0.5f, 1.0f, 2.5f}, drelu[6] = {0, 0, 0, 1, 1, 1};
    struct { const char *name; tu_build_fn f; const float *y, *dy; } cases[] = {
        {"gelu_tanh", f_gelu, gelu, dgelu}, {"silu", f_silu, silu, dsilu}, {"relu", f_relu, relu, drelu}};
    Arena arena;
    arena_init(&arena, (size_t)1 << 24);
    Tape tape;
    tape_init(&tape, &arena, 16);
    for (int use_ref = 0; use_ref < 2; use_ref++)
        for (size_t k = 0; k < 3; k++) {
            tape_reset(&tape);
            tape.use_ref = use_ref;
            float gx[6] = {0};
            Tensor *in = tensor_wrap(&arena, (float *)x, gx, 1, (int[]){6});
            Tensor *out = cases[k].f(&tape, &in, NULL);
            tape_backward(&tape, out, NULL);
            char what[96];
            snprintf(what, sizeof what, "%s%s values vs PyTorch", cases[k].name, use_ref ? " ref" : "");
            tu_compare(what, out->data, cases[k].y, 6, 2e-6, 0);
            snprintf(what, sizeof what, "%s%s slopes vs PyTorch", cases[k].name, use_ref ? " ref" : "");
            tu_compare(what, gx, cases[k].dy, 6, 2e-6, 0);
        }
    tape_free(&tape);
    arena_free(&arena);
}

static void test_activations(void)
{
    const int sh[3] = {4, 3, 5}, med[4] = {16, 24, 20, 18};
    /* relu: move every input at least 0.1 away from the kink at 0 (fd step is 1e-2). */
    Tensor *x = tu_tensor(3, sh, 101, -1, 1, 1);
    for (size_t i = 0; i < x->n; i++) x->data[i] += x->data[i] < 0 ? -0.1f : 0.1f;
    check_op("relu", f_relu, NULL, &x, 1, 1);
    tu_tensor_free(x);
    x = tu_tensor(3, sh, 102, -4, 4, 1);
    check_op("silu", f_silu, NULL, &x, 1, 1);
    tu_tensor_free(x);
    x = tu_tensor(3, sh, 103, -4, 4, 1);
    check_op("gelu_tanh", f_gelu, NULL, &x, 1, 1);
    tu_tensor_free(x);
    struct { const char *name; tu_build_fn f; } ops[] = {
        {"relu medium", f_relu}, {"silu medium", f_silu}, {"gelu_tanh medium", f_gelu}};
    for (size_t k = 0; k < 3; k++) {
        x = tu_tensor(4, med, 110 + k, -5, 5, 1);
        tu_refcheck(ops[k].name, ops[k].f, NULL, &x, 1, REF_ATOL, REF_RTOL, 1);
        tu_tensor_free(x);
    }
    /* Far tails: the fast kernels' exp clamps its argument to [-87, 88]; results must still match the ref. */
    const int wide[2] = {50, 41};
    x = tu_tensor(2, wide, 120, -120, 120, 1);
    tu_refcheck("silu wide range [-120, 120]", f_silu, NULL, &x, 1, REF_ATOL, REF_RTOL, 1);
    tu_refcheck("gelu_tanh wide range [-120, 120]", f_gelu, NULL, &x, 1, REF_ATOL, REF_RTOL, 1);
    tu_tensor_free(x);
}

/* Runs dropout forward (and backward with seed 1) on x; out and gx receive x->n floats. */
static void run_dropout(Tensor *x, float p, uint64_t seed, const int64_t *keys, int training, int use_ref,
                        float *out, float *gx)
{
    Arena arena;
    arena_init(&arena, (size_t)1 << 28);
    Tape tape;
    tape_init(&tape, &arena, 16);
    tape.training = training;
    tape.use_ref = use_ref;
    Tensor *xin = tensor_wrap(&arena, x->data, gx, x->ndim, x->shape);
    if (gx) memset(gx, 0, x->n * sizeof(float));
    Tensor *y = op_dropout(&tape, xin, p, seed, keys);
    memcpy(out, y->data, x->n * sizeof(float));
    if (gx) tape_backward(&tape, y, NULL);
    tape_free(&tape);
    arena_free(&arena);
}

static void test_dropout(void)
{
    /* Inputs in [0.5, 1.5): never 0, so "dropped" is exactly "output == 0". */
    const int big[2] = {400, 500}, sh[3] = {6, 5, 7};
    Tensor *x = tu_tensor(2, big, 201, 0.5f, 1.5f, 1);
    size_t n = x->n;
    float *o1 = malloc(n * sizeof(float)), *o2 = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float));
    float *ones = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) ones[i] = 1.0f;

    /* Identity cases: p = 0 in training, and eval with p > 0; output and gradient are exact copies. */
    for (int use_ref = 0; use_ref < 2; use_ref++) {
        run_dropout(x, 0.0f, 5, NULL, 1, use_ref, o1, g);
        tu_compare(use_ref ? "dropout ref p=0 training: identity" : "dropout p=0 training: identity", o1, x->data,
                   n, 0, 0);
        tu_compare(use_ref ? "dropout ref p=0 training: grad = 1" : "dropout p=0 training: grad = 1", g, ones, n,
                   0, 0);
        run_dropout(x, 0.5f, 5, NULL, 0, use_ref, o1, g);
        tu_compare(use_ref ? "dropout ref eval: identity" : "dropout eval: identity", o1, x->data, n, 0, 0);
        tu_compare(use_ref ? "dropout ref eval: grad = 1" : "dropout eval: grad = 1", g, ones, n, 0, 0);
    }

    /* Keep rate, scaling, and the gradient equal to the mask times 1/(1-p). */
    const float p = 0.3f;
    run_dropout(x, p, 7, NULL, 1, 0, o1, g);
    size_t kept = 0, bad_scale = 0, bad_grad = 0;
    for (size_t i = 0; i < n; i++) {
        int k = o1[i] != 0.0f;
        kept += (size_t)k;
        /* x / (1 - p) in double, rounded: within 1 float ulp of the kernel's x * (1 / (1 - p)) */
        double want = k ? (double)x->data[i] / (1.0 - (double)p) : 0.0;
        if (fabs(o1[i] - want) > 2.5e-7 * fabs(want)) bad_scale++;
        double gwant = k ? 1.0 / (1.0 - (double)p) : 0.0;
        if (fabs(g[i] - gwant) > 2.5e-7 * gwant) bad_grad++;
    }
    double mean = (1.0 - p) * (double)n, sigma = sqrt((double)n * p * (1.0 - p));
    printf("     dropout keep count %zu, expected %.0f +- %.0f (1 sigma)\n", kept, mean, sigma);
    TU_CHECK(fabs((double)kept - mean) < 5.0 * sigma, "dropout keep count %zu not within 5 sigma of %.0f", kept,
             mean);
    TU_CHECK(bad_scale == 0, "dropout: %zu kept outputs are not x / (1 - p)", bad_scale);
    TU_CHECK(bad_grad == 0, "dropout: %zu gradients are not mask / (1 - p)", bad_grad);

    /* Determinism: the same (seed, keys) twice gives identical outputs; fast and ref drop the same elements. */
    run_dropout(x, p, 7, NULL, 1, 0, o2, NULL);
    tu_compare("dropout same seed twice: identical", o2, o1, n, 0, 0);
    run_dropout(x, p, 7, NULL, 1, 1, o2, NULL);
    for (size_t i = 0; i < n; i++) {
        o2[i] = o2[i] != 0.0f;  /* masks */
        g[i] = o1[i] != 0.0f;
    }
    tu_compare("dropout fast vs ref: identical masks", o2, g, n, 0, 0);
    run_dropout(x, p, 7, NULL, 1, 0, o1, NULL);

    /* row_keys NULL means key r for row r. */
    int64_t *keys = malloc((size_t)big[0] * sizeof *keys);
    for (int r = 0; r < big[0]; r++) keys[r] = r;
    run_dropout(x, p, 7, keys, 1, 0, o2, NULL);
    tu_compare("dropout keys 0..B-1 == NULL keys", o2, o1, n, 0, 0);

    /* Different keys, or a different seed, give a different mask: about 2 p (1 - p) = 42% of positions differ. */
    for (int r = 0; r < big[0]; r++) keys[r] = 1000 + r;
    run_dropout(x, p, 7, keys, 1, 0, o2, NULL);
    size_t diff = 0;
    for (size_t i = 0; i < n; i++) diff += (o1[i] == 0.0f) != (o2[i] == 0.0f);
    TU_CHECK(diff > n / 3, "dropout: other keys changed only %zu of %zu mask positions", diff, n);
    run_dropout(x, p, 8, NULL, 1, 0, o2, NULL);
    diff = 0;
    for (size_t i = 0; i < n; i++) diff += (o1[i] == 0.0f) != (o2[i] == 0.0f);
    TU_CHECK(diff > n / 3, "dropout: another seed changed only %zu of %zu mask positions", diff, n);

    /* Independence of the rank count: rows 0..B-1 with global keys give the same masks whether run as one batch or
       as two shards [0, 150) and [150, 400) that pass their own slices of the keys. */
    for (int r = 0; r < big[0]; r++) keys[r] = 5000 + 3 * r;
    run_dropout(x, p, 9, keys, 1, 0, o1, NULL);
    int split = 150, cols = big[1];
    Tensor *xa = tu_tensor(2, (int[]){split, cols}, 1, 0, 1, 0);
    Tensor *xb = tu_tensor(2, (int[]){big[0] - split, cols}, 1, 0, 1, 0);
    memcpy(xa->data, x->data, xa->n * sizeof(float));
    memcpy(xb->data, x->data + xa->n, xb->n * sizeof(float));
    run_dropout(xa, p, 9, keys, 1, 0, o2, NULL);
    run_dropout(xb, p, 9, keys + split, 1, 0, o2 + xa->n, NULL);
    tu_compare("dropout 1 shard vs 2 shards (global keys)", o2, o1, n, 0, 0);
    tu_tensor_free(xa);
    tu_tensor_free(xb);

    /* Gradient checks (training: the mask is fixed by the seed) and fast vs ref. */
    Ctx c = {.p = 0.4f, .seed = 99, .keys = NULL};
    Tensor *s = tu_tensor(3, sh, 202, -1, 1, 1);
    check_op("dropout p=0.4 training", f_dropout, &c, &s, 1, 1);
    check_op("dropout p=0.4 eval", f_dropout, &c, &s, 1, 0);
    tu_tensor_free(s);
    tu_refcheck("dropout medium", f_dropout, &c, &x, 1, REF_ATOL, REF_RTOL, 1);

    free(keys);
    free(o1);
    free(o2);
    free(g);
    free(ones);
    tu_tensor_free(x);
}

static void test_weighted_sum(void)
{
    /* Hand example: 0.5 * 1 - 1 * 2 + 2 * 3 = 4.5; gradient = w. */
    float xd[3] = {1, 2, 3}, w[3] = {0.5f, -1.0f, 2.0f}, gx[3] = {0}, want = 4.5f;
    Arena arena;
    arena_init(&arena, (size_t)1 << 20);
    Tape tape;
    tape_init(&tape, &arena, 4);
    Tensor *x = tensor_wrap(&arena, xd, gx, 1, (int[]){3});
    Tensor *y = op_weighted_sum(&tape, x, w);
    tape_backward(&tape, y, NULL);
    tu_compare("weighted_sum hand example", y->data, &want, 1, 0, 0);
    tu_compare("weighted_sum hand example: grad = w", gx, w, 3, 0, 0);
    tape_free(&tape);
    arena_free(&arena);

    float wr[37];
    tu_fill(wr, 37, 301, -1, 1);
    Ctx c = {.w = wr};
    Tensor *xs = tu_tensor(1, (int[]){37}, 302, -1, 1, 1);
    check_op("weighted_sum", f_wsum, &c, &xs, 1, 1);
    tu_tensor_free(xs);
}

int main(void)
{
    omp_set_num_threads(2);
    test_binary();
    test_bcast();
    test_activation_values();
    test_activations();
    test_dropout();
    test_weighted_sum();
    return tu_finish("test_ops_elem");
}
