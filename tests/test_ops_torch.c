/*
 * test_ops_torch.c - every op of UL_OP_LIST against PyTorch 1.13 (data_tools/fixtures_ops.py -> $FIXTURES/ops.h5).
 *
 * Each case feeds the fixture's inputs to the op constructor, compares the output with PyTorch's, backpropagates
 * the fixture's random seed gradient R and compares every input gradient with PyTorch's autograd; BatchNorm also
 * compares its running statistics after the call. Every case runs twice: fast kernels and the naive _ref twins.
 * The test also fails when an op of UL_OP_LIST has no case here (so a new op must bring its PyTorch reference).
 *
 * Dropout cannot match PyTorch's random mask (ours is a counter RNG keyed on sample indices, by design): PyTorch
 * parity is checked where the result is deterministic (eval mode, p = 0), and the p > 0 train-mode semantics
 * (zero or x / (1 - p), the same mask in backward, keep rate) are checked structurally in check_dropout().
 *
 * Tolerances (|got - want| <= atol + rtol |want|), float32 on both sides with different summation orders:
 *   outputs    atol 1e-5 * max|want| + 1e-7, rtol 1e-4: one op, reductions of at most 120 terms here (~1e-6
 *              relative in the worst case), plus libm vs PyTorch's vectorised exp/tanh (a few ulp).
 *   gradients  atol 1e-4 * max|want| + 1e-7, rtol 1e-3: normalisation and softmax backward subtract two sums of
 *              similar size, so elements near zero carry errors relative to the tensor's scale.
 * A transposed index, a wrong stride or padding, or a missing term moves errors to O(1) of the scale.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5io.h"
#include "ops.h"
#include "testutil.h"

#define MAX_IN 4

typedef struct Ctx {
    int *idx;            /* <case>/idx */
    float *ts, *w;       /* <case>/ts, <case>/w */
    float *rm, *rv;      /* <case>/rm, rv: fresh copies per pass (batchnorm updates them) */
} Ctx;

typedef Tensor *(*BuildFn)(Tape *t, Tensor **in, Ctx *c);

typedef struct OpCase {
    const char *name;    /* fixture group */
    int op;              /* the OpKind exercised (coverage) */
    BuildFn build;
    bool training;
    double out_atol;     /* 0: the default (header); else this absolute output tolerance, with its reason below */
} OpCase;

#define BUILD(fn, expr)                                     \
    static Tensor *fn(Tape *t, Tensor **in, Ctx *c)         \
    {                                                       \
        (void)in;                                           \
        (void)c;                                            \
        return expr;                                        \
    }

BUILD(b_linear, op_linear(t, in[0], in[1], in[2]))
BUILD(b_linear_nobias, op_linear(t, in[0], in[1], NULL))
BUILD(b_matmul_nn, op_matmul(t, in[0], in[1], false, false))
BUILD(b_matmul_tn, op_matmul(t, in[0], in[1], true, false))
BUILD(b_matmul_nt, op_matmul(t, in[0], in[1], false, true))
BUILD(b_matmul_tt, op_matmul(t, in[0], in[1], true, true))
BUILD(b_conv_s2p1, op_conv2d(t, in[0], in[1], in[2], 2, 1))
BUILD(b_conv_k32, op_conv2d(t, in[0], in[1], NULL, 1, 1))
BUILD(b_conv_1x1, op_conv2d(t, in[0], in[1], in[2], 1, 0))
BUILD(b_conv_k2s2, op_conv2d(t, in[0], in[1], in[2], 2, 0))
BUILD(b_pad2d, op_pad2d(t, in[0], 1, 2, 0, 3))
BUILD(b_upsample2x, op_upsample2x(t, in[0]))
BUILD(b_avgpool_k2s2, op_avgpool2d(t, in[0], 2, 2))
BUILD(b_avgpool_k3s2, op_avgpool2d(t, in[0], 3, 2))
BUILD(b_maxpool_k2s2, op_maxpool2d(t, in[0], 2, 2))
BUILD(b_maxpool_k3s2, op_maxpool2d(t, in[0], 3, 2))
BUILD(b_global_avgpool, op_global_avgpool(t, in[0]))
BUILD(b_add, op_add(t, in[0], in[1]))
BUILD(b_sub, op_sub(t, in[0], in[1]))
BUILD(b_mul, op_mul(t, in[0], in[1]))
BUILD(b_scale, op_scale(t, in[0], -1.7f))
BUILD(b_add_bcast, op_add_bcast(t, in[0], in[1]))
BUILD(b_mul_bcast, op_mul_bcast(t, in[0], in[1]))
BUILD(b_relu, op_relu(t, in[0]))
BUILD(b_silu, op_silu(t, in[0]))
BUILD(b_gelu_tanh, op_gelu_tanh(t, in[0]))
BUILD(b_dropout_03, op_dropout(t, in[0], 0.3f, 1234, NULL))
BUILD(b_dropout_0, op_dropout(t, in[0], 0.0f, 1234, NULL))
BUILD(b_weighted_sum, op_weighted_sum(t, in[0], c->w))
BUILD(b_batchnorm, op_batchnorm2d(t, in[0], in[1], in[2], c->rm, c->rv, 0.1f, 1e-5f))
BUILD(b_groupnorm_4d, op_groupnorm(t, in[0], in[1], in[2], 3, 1e-6f))
BUILD(b_groupnorm_3d, op_groupnorm(t, in[0], in[1], in[2], 2, 1e-5f))
BUILD(b_layernorm_affine, op_layernorm(t, in[0], in[1], in[2], 1e-5f))
BUILD(b_layernorm_noaffine, op_layernorm(t, in[0], NULL, NULL, 1e-6f))
BUILD(b_softmax, op_softmax(t, in[0]))
BUILD(b_log_softmax, op_log_softmax(t, in[0]))
BUILD(b_cross_entropy, op_cross_entropy(t, in[0], c->idx))
BUILD(b_mse_mean, op_mse(t, in[0], in[1], true))
BUILD(b_mse_sum, op_mse(t, in[0], in[1], false))
BUILD(b_kl_div, op_kl_div(t, in[0], in[1]))
BUILD(b_attention3, op_attention(t, in[0], in[1], in[2], 3))
BUILD(b_attention1, op_attention(t, in[0], in[1], in[2], 1))
BUILD(b_permute_0231, op_permute(t, in[0], (int[]){0, 2, 3, 1}))
BUILD(b_permute_3102, op_permute(t, in[0], (int[]){3, 1, 0, 2}))
BUILD(b_slice_dim1, op_slice(t, in[0], 1, 2, 3))
BUILD(b_slice_dim2, op_slice(t, in[0], 2, 1, 2))
BUILD(b_concat0, op_concat(t, in[0], in[1], 0))
BUILD(b_concat1, op_concat(t, in[0], in[1], 1))
BUILD(b_concat3, op_concat(t, in[0], in[1], 3))
BUILD(b_embedding, op_embedding(t, in[0], c->idx, 6))
BUILD(b_temb_ddpm, op_timestep_emb(t, c->ts, 5, 16, 10000.0f, 1, false))
BUILD(b_temb_dit, op_timestep_emb(t, c->ts, 5, 20, 10000.0f, 0, true))
BUILD(b_modulate, op_modulate(t, in[0], in[1], in[2]))
BUILD(b_unpatchify, op_unpatchify(t, in[0], 2, 3, 2, 3))

/* Attributes repeated from data_tools/fixtures_ops.py (comments there); keep them in step. */
static const OpCase CASES[] = {
    {"linear", OP_LINEAR, b_linear, true, 0},
    {"linear_nobias", OP_LINEAR, b_linear_nobias, true, 0},
    {"matmul_nn", OP_MATMUL, b_matmul_nn, true, 0},
    {"matmul_tn", OP_MATMUL, b_matmul_tn, true, 0},
    {"matmul_nt_2d", OP_MATMUL, b_matmul_nt, true, 0},
    {"matmul_tt_4d", OP_MATMUL, b_matmul_tt, true, 0},
    {"conv2d_s2p1", OP_CONV2D, b_conv_s2p1, true, 0},
    {"conv2d_k3x2_s1p1_nobias", OP_CONV2D, b_conv_k32, true, 0},
    {"conv2d_1x1", OP_CONV2D, b_conv_1x1, true, 0},
    {"conv2d_k2s2", OP_CONV2D, b_conv_k2s2, true, 0},
    {"pad2d", OP_PAD2D, b_pad2d, true, 0},
    {"upsample2x", OP_UPSAMPLE2X, b_upsample2x, true, 0},
    {"avgpool2d_k2s2", OP_AVGPOOL2D, b_avgpool_k2s2, true, 0},
    {"avgpool2d_k3s2", OP_AVGPOOL2D, b_avgpool_k3s2, true, 0},
    {"maxpool2d_k2s2", OP_MAXPOOL2D, b_maxpool_k2s2, true, 0},
    {"maxpool2d_k3s2", OP_MAXPOOL2D, b_maxpool_k3s2, true, 0},
    {"global_avgpool", OP_GLOBAL_AVGPOOL, b_global_avgpool, true, 0},
    {"add", OP_ADD, b_add, true, 0},
    {"sub", OP_SUB, b_sub, true, 0},
    {"mul", OP_MUL, b_mul, true, 0},
    {"scale", OP_SCALE, b_scale, true, 0},
    {"add_bcast_1c1w", OP_ADD_BCAST, b_add_bcast, true, 0},
    {"add_bcast_bc11", OP_ADD_BCAST, b_add_bcast, true, 0},
    {"mul_bcast_b1c", OP_MUL_BCAST, b_mul_bcast, true, 0},
    {"mul_bcast_1c1w", OP_MUL_BCAST, b_mul_bcast, true, 0},
    {"relu", OP_RELU, b_relu, true, 0},
    {"silu", OP_SILU, b_silu, true, 0},
    {"gelu_tanh", OP_GELU_TANH, b_gelu_tanh, true, 0},
    {"dropout_eval", OP_DROPOUT, b_dropout_03, false, 0},
    {"dropout_p0", OP_DROPOUT, b_dropout_0, true, 0},
    {"weighted_sum", OP_WEIGHTED_SUM, b_weighted_sum, true, 0},
    {"batchnorm2d_train", OP_BATCHNORM2D, b_batchnorm, true, 0},
    {"batchnorm2d_eval", OP_BATCHNORM2D, b_batchnorm, false, 0},
    {"groupnorm_4d", OP_GROUPNORM, b_groupnorm_4d, true, 0},
    {"groupnorm_3d", OP_GROUPNORM, b_groupnorm_3d, true, 0},
    {"layernorm_affine", OP_LAYERNORM, b_layernorm_affine, true, 0},
    {"layernorm_noaffine", OP_LAYERNORM, b_layernorm_noaffine, true, 0},
    {"softmax", OP_SOFTMAX, b_softmax, true, 0},
    {"log_softmax", OP_LOG_SOFTMAX, b_log_softmax, true, 0},
    {"cross_entropy", OP_CROSS_ENTROPY, b_cross_entropy, true, 0},
    {"mse_mean", OP_MSE, b_mse_mean, true, 0},
    {"mse_sum", OP_MSE, b_mse_sum, true, 0},
    {"kl_div", OP_KL_DIV, b_kl_div, true, 0},
    {"attention", OP_ATTENTION, b_attention3, true, 0},
    {"attention_1head", OP_ATTENTION, b_attention1, true, 0},
    {"permute_0231", OP_PERMUTE, b_permute_0231, true, 0},
    {"permute_3102", OP_PERMUTE, b_permute_3102, true, 0},
    {"slice_dim1", OP_SLICE, b_slice_dim1, true, 0},
    {"slice_dim2", OP_SLICE, b_slice_dim2, true, 0},
    {"concat_dim0", OP_CONCAT, b_concat0, true, 0},
    {"concat_dim1", OP_CONCAT, b_concat1, true, 0},
    {"concat_dim3", OP_CONCAT, b_concat3, true, 0},
    {"embedding", OP_EMBEDDING, b_embedding, true, 0},
    /* PyTorch forms t * freq in float32 before sin/cos; ours is evaluated in double (ops.h). At t ~ 1000 the
       float32 argument is off by up to ulp(1000)/2 = 3e-5 rad, so the outputs differ by up to ~3e-5. */
    {"timestep_emb_ddpm", OP_TIMESTEP_EMB, b_temb_ddpm, true, 1e-4},
    {"timestep_emb_dit", OP_TIMESTEP_EMB, b_temb_dit, true, 1e-4},
    {"modulate", OP_MODULATE, b_modulate, true, 0},
    {"unpatchify", OP_UNPATCHIFY, b_unpatchify, true, 0},
};
#define NCASES ((int)(sizeof CASES / sizeof CASES[0]))

static char g_path[1024];

static float *read_f(const char *grp, const char *name, int *nd, int64_t *shape, size_t *n)
{
    char dset[256];
    snprintf(dset, sizeof dset, "%s/%s", grp, name);
    UlError err = {0};
    int d = 0;
    int64_t sh[8];
    float *v = h5_read_floats(g_path, dset, 8, &d, sh, &err);
    UL_CHECK(v != NULL, "%s (run data_tools/fixtures_ops.py --out $FIXTURES first)", err.msg);
    size_t cnt = 1;
    for (int i = 0; i < d; i++) cnt *= (size_t)sh[i];
    if (nd) *nd = d;
    if (shape) memcpy(shape, sh, (size_t)d * sizeof *sh);
    if (n) *n = cnt;
    return v;
}

static bool has(const char *grp, const char *name)
{
    char dset[256];
    snprintf(dset, sizeof dset, "%s/%s", grp, name);
    return h5_has(g_path, dset);
}

static double max_abs(const float *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)x[i]) > m) m = fabs((double)x[i]);
    return m;
}

static void run_case(const OpCase *oc, bool use_ref)
{
    const char *g = oc->name, *tag = use_ref ? "ref" : "fast";
    char what[200], key[16];
    Tensor *in[MAX_IN] = {0};
    int nin = 0;
    for (; nin < MAX_IN; nin++) {
        snprintf(key, sizeof key, "in%d", nin);
        if (!has(g, key)) break;
        int nd;
        int64_t sh[8];
        size_t n;
        float *v = read_f(g, key, &nd, sh, &n);
        int shape[TENSOR_MAX_DIMS];
        for (int d = 0; d < nd; d++) shape[d] = (int)sh[d];
        snprintf(key, sizeof key, "grad%d", nin);
        in[nin] = tu_tensor(nd, shape, 1, 0, 0, has(g, key));
        memcpy(in[nin]->data, v, n * sizeof(float));
        free(v);
    }
    Ctx c = {0};
    if (has(g, "idx")) {
        UlError err = {0};
        int nd;
        int64_t sh[8];
        char dset[256];
        snprintf(dset, sizeof dset, "%s/idx", g);
        c.idx = h5_read_ints(g_path, dset, 8, &nd, sh, &err);
        UL_CHECK(c.idx, "%s", err.msg);
    }
    if (has(g, "ts")) c.ts = read_f(g, "ts", NULL, NULL, NULL);
    if (has(g, "w")) c.w = read_f(g, "w", NULL, NULL, NULL);
    if (has(g, "rm")) {
        c.rm = read_f(g, "rm", NULL, NULL, NULL);
        c.rv = read_f(g, "rv", NULL, NULL, NULL);
    }

    Arena arena;
    arena_init(&arena, (size_t)1 << 26);
    Tape tape;
    tape_init(&tape, &arena, 64);
    tape.training = oc->training;
    tape.use_ref = use_ref;
    Tensor *out = oc->build(&tape, in, &c);

    int nd;
    int64_t sh[8];
    size_t n;
    float *want = read_f(g, "out", &nd, sh, &n);
    bool same = out->ndim == nd || (nd == 0 && out->ndim == 1 && out->n == 1);
    for (int d = 0; same && d < nd; d++) same = out->shape[d] == sh[d];
    char s1[64];
    TU_CHECK(same, "%s[%s]: output shape %s differs from PyTorch's (%d dims, %zu values)", g, tag,
             tensor_shape_str(out, s1, sizeof s1), nd, n);
    if (same) {
        snprintf(what, sizeof what, "%s[%s] output", g, tag);
        double atol = oc->out_atol > 0 ? oc->out_atol : 1e-5 * max_abs(want, n) + 1e-7;
        tu_compare(what, out->data, want, n, atol, 1e-4);
    }
    if (has(g, "R") && same) {
        TU_CHECK(out->grad != NULL, "%s[%s]: output carries no gradient", g, tag);
        if (out->grad) {
            float *R = read_f(g, "R", NULL, NULL, NULL);
            tape_backward(&tape, out, R);
            free(R);
            for (int i = 0; i < nin; i++) {
                if (!in[i]->grad) continue;
                snprintf(key, sizeof key, "grad%d", i);
                size_t gn;
                float *gw = read_f(g, key, NULL, NULL, &gn);
                snprintf(what, sizeof what, "%s[%s] grad of input %d", g, tag, i);
                tu_compare(what, in[i]->grad, gw, gn, 1e-4 * max_abs(gw, gn) + 1e-7, 1e-3);
                free(gw);
            }
        }
    }
    if (c.rm) {
        size_t cn;
        float *rm = read_f(g, "rm_after", NULL, NULL, &cn), *rv = read_f(g, "rv_after", NULL, NULL, NULL);
        snprintf(what, sizeof what, "%s[%s] running_mean after", g, tag);
        tu_compare(what, c.rm, rm, cn, 1e-6, 1e-5);
        snprintf(what, sizeof what, "%s[%s] running_var after", g, tag);
        tu_compare(what, c.rv, rv, cn, 1e-6, 1e-5);
        free(rm);
        free(rv);
    }
    free(want);
    tape_free(&tape);
    arena_free(&arena);
    for (int i = 0; i < nin; i++) tu_tensor_free(in[i]);
    free(c.idx);
    free(c.ts);
    free(c.w);
    free(c.rm);
    free(c.rv);
}

/* Train-mode dropout, p = 0.3: every output is 0 or x / (1 - p), backward uses the same mask, the keep rate is
   1 - p within 4 standard deviations, and the mask of a row depends on its key only (not on its position). */
static void check_dropout(bool use_ref)
{
    const float p = 0.3f;
    const int rows = 4, cols = 250;
    Arena arena;
    arena_init(&arena, (size_t)1 << 24);
    Tape tape;
    tape_init(&tape, &arena, 8);
    tape.use_ref = use_ref;
    Tensor *x = tu_tensor(2, (int[]){rows, cols}, 5, 0.5f, 1.5f, 1);
    const int64_t keys[4] = {17, 3, 99, 4};
    Tensor *y = op_dropout(&tape, x, p, 42, keys);
    float *R = malloc(y->n * sizeof(float));
    tu_fill(R, y->n, 9, -1, 1);
    tape_backward(&tape, y, R);
    size_t kept = 0, bad_val = 0, bad_grad = 0;
    for (size_t i = 0; i < y->n; i++) {
        float scaled = x->data[i] / (1 - p);
        bool k = y->data[i] != 0;
        kept += k;
        if (k && fabsf(y->data[i] - scaled) > 1e-6f * fabsf(scaled)) bad_val++;
        float gw = k ? R[i] / (1 - p) : 0.0f;
        if (fabsf(x->grad[i] - gw) > 1e-6f * (fabsf(gw) + 1e-6f)) bad_grad++;
    }
    double rate = (double)kept / (double)y->n, sd = sqrt((double)p * (1 - p) / (double)y->n);
    const char *tag = use_ref ? "ref" : "fast";
    TU_CHECK(bad_val == 0, "dropout[%s]: %zu kept outputs differ from x / (1 - p)", tag, bad_val);
    TU_CHECK(bad_grad == 0, "dropout[%s]: %zu gradients differ from R * mask / (1 - p)", tag, bad_grad);
    TU_CHECK(fabs(rate - (1 - p)) < 4 * sd, "dropout[%s]: keep rate %.3f, expected %.3f +- %.3f", tag, rate, 1 - p,
             4 * sd);
    /* the same rows in another order (another rank's batch layout): the same masks */
    float *y1 = malloc(y->n * sizeof(float));  /* y lives in the arena that tape_reset recycles */
    memcpy(y1, y->data, y->n * sizeof(float));
    tape_reset(&tape);
    Tensor *x2 = tu_tensor(2, (int[]){rows, cols}, 5, 0.5f, 1.5f, 0);
    const int perm[4] = {2, 0, 3, 1};
    int64_t keys2[4];
    for (int r = 0; r < rows; r++) {
        keys2[r] = keys[perm[r]];
        memcpy(x2->data + (size_t)r * cols, x->data + (size_t)perm[r] * cols, (size_t)cols * sizeof(float));
    }
    Tensor *y2 = op_dropout(&tape, x2, p, 42, keys2);
    size_t diff = 0;
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++)
            diff += y2->data[(size_t)r * cols + j] != y1[(size_t)perm[r] * cols + j];
    TU_CHECK(diff == 0, "dropout[%s]: %zu elements change when the rows are reordered with their keys", tag, diff);
    printf("ok   dropout[%s] p=0.3 train: keep rate %.3f, mask keyed by row key\n", tag, rate);
    free(R);
    free(y1);
    tu_tensor_free(x);
    tu_tensor_free(x2);
    tape_free(&tape);
    arena_free(&arena);
}

int main(void)
{
    const char *dir = getenv("FIXTURES");
    snprintf(g_path, sizeof g_path, "%s/ops.h5", dir && dir[0] ? dir : "build/fixtures");

    /* coverage: every op of the closed list has at least one PyTorch case */
    for (int op = 0; op < OP__COUNT; op++) {
        int n = 0;
        for (int i = 0; i < NCASES; i++) n += CASES[i].op == op;
        TU_CHECK(n > 0, "op %s has no PyTorch parity case in tests/test_ops_torch.c", op_table[op].name);
    }
    for (int i = 0; i < NCASES; i++) {
        TU_CHECK(has(CASES[i].name, "out"), "%s: no case '%s' (regenerate the fixtures)", g_path, CASES[i].name);
        if (!has(CASES[i].name, "out")) continue;
        run_case(&CASES[i], false);
        run_case(&CASES[i], true);
    }
    check_dropout(false);
    check_dropout(true);
    return tu_finish("test_ops_torch");
}
