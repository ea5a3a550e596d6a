/*
 * test_models.c - every architecture of src/model.c against its PyTorch twin (data_tools/fixtures_models.py).
 *
 * For each case: the C model is built from a ModelSpec with the fixture's sizes, every state_dict entry of the
 * twin is matched by name and shape against the model's tables (and the counts must agree, so neither side has an
 * extra entry), the parameters are loaded with model_load_h5, then one train-mode forward + backward runs twice
 * (fast kernels, then the naive _ref twins) and the output, the loss, every parameter gradient, the BatchNorm
 * running statistics after the step and (BN models) an eval-mode output are compared with PyTorch's.
 * Then the UNet's dropout (identity in eval mode; in train mode keyed by sample, so one sample alone gives its row
 * of the batch result), model_init (PyTorch's default init, DiT's init, determinism) and the UlError paths of
 * model_create and model_load_h5.
 *
 * Tolerances (|got - want| <= atol + rtol |want|), float32 on both sides, summation orders differ (BLAS blocking,
 * conv lowering, reductions in other orders):
 *   outputs, loss      atol 1e-4 * max|want| + 1e-6, rtol 1e-3: a float32 dot product of length K has a relative
 *                      error ~ sqrt(K) * 6e-8 of the magnitude of its terms; K <= 4608 (3x3x512) here and a few
 *                      layers compound it, ~1e-5 of the output scale; 1e-4 leaves a 10x margin.
 *   gradients          atol 1e-3 * max|want| + 1e-7 per tensor, rtol 1e-2: backward sums over the batch and the
 *                      spatial positions as well (lengths up to 5 * 28 * 20 = 2800 per weight element) and goes
 *                      through every layer, and BatchNorm/GroupNorm backward subtracts two means of similar size
 *                      (cancellation), so elements near zero carry an absolute error relative to the TENSOR's
 *                      scale, not their own. The atol is therefore scaled by each tensor's largest gradient,
 *                      plus 1e-5 of the largest gradient of the whole model: some gradients are analytically zero
 *                      (the attention key biases: q.b_k is constant along the key axis, and softmax ignores it), and
 *                      both sides then return rounding noise of terms that cancel, ~1e-7 where the model's gradients
 *                      are ~0.1.
 *   running stats      atol 1e-5, rtol 1e-4: one mean/variance per channel, a short reduction.
 * A transposed weight, a wrong shape, a missing bias or a swapped gamma/beta moves errors to O(1) of the scale.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5io.h"
#include "model.h"
#include "testutil.h"

typedef struct Case {
    const char *file;      /* model_<file>.h5 */
    ModelSpec spec;
    bool generative;       /* loss = sum(out * R) with timesteps and labels; else mean cross-entropy */
    bool bn;               /* has BatchNorm: compare running stats and an eval-mode output */
} Case;

static const char *fixtures_dir(void)
{
    const char *d = getenv("FIXTURES");
    return d && d[0] ? d : "build/fixtures";
}

static void fixture_path(char *buf, size_t cap, const char *file)
{
    snprintf(buf, cap, "%s/model_%s.h5", fixtures_dir(), file);
}

/* Reads a float dataset; fatal (via UL_CHECK) when missing: the fixture generator must have run. */
static float *read_f(const char *path, const char *dset, int *ndim, int64_t *shape, size_t *n)
{
    UlError err = {0};
    int nd = 0;
    int64_t sh[8];
    float *v = h5_read_floats(path, dset, 8, &nd, sh, &err);
    UL_CHECK(v != NULL, "%s (run data_tools/fixtures_models.py --out $FIXTURES first)", err.msg);
    size_t cnt = 1;
    for (int i = 0; i < nd; i++) cnt *= (size_t)sh[i];
    if (ndim) *ndim = nd;
    if (shape) memcpy(shape, sh, (size_t)nd * sizeof *sh);
    if (n) *n = cnt;
    return v;
}

static int *read_i(const char *path, const char *dset, size_t *n)
{
    UlError err = {0};
    int nd = 0;
    int64_t sh[8];
    int *v = h5_read_ints(path, dset, 8, &nd, sh, &err);
    UL_CHECK(v != NULL, "%s", err.msg);
    size_t cnt = 1;
    for (int i = 0; i < nd; i++) cnt *= (size_t)sh[i];
    if (n) *n = cnt;
    return v;
}

static double max_abs(const float *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)x[i]) > m) m = fabs((double)x[i]);
    return m;
}

static void shape_str(char *buf, size_t cap, int nd, const int64_t *sh)
{
    size_t off = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < nd && off < cap; i++) off += (size_t)snprintf(buf + off, cap - off, i ? ", %lld" : "%lld",
                                                                      (long long)sh[i]);
    if (off < cap) snprintf(buf + off, cap - off, "]");
}

/* Every entry of one table must exist under state/<name> with the same shape; prints each mismatch by name. */
static int check_names(const char *path, const ParamTable *pt, const char *kind)
{
    int bad = 0;
    for (int i = 0; i < pt->count; i++) {
        const ParamView *v = &pt->views[i];
        char dset[PARAM_NAME_MAX + 16];
        snprintf(dset, sizeof dset, "state/%s", v->name);
        if (!h5_has(path, dset)) {
            TU_CHECK(0, "%s %s of the C model is not in the PyTorch state_dict (%s)", kind, v->name, path);
            bad++;
            continue;
        }
        int nd;
        int64_t sh[8], mine[TENSOR_MAX_DIMS];
        float *x = read_f(path, dset, &nd, sh, NULL);
        free(x);
        bool same = nd == v->ndim;
        for (int d = 0; same && d < nd; d++) same = sh[d] == v->shape[d];
        if (!same) {
            char a[96], b[96];
            for (int d = 0; d < v->ndim; d++) mine[d] = v->shape[d];
            shape_str(a, sizeof a, nd, sh);
            shape_str(b, sizeof b, v->ndim, mine);
            TU_CHECK(0, "%s %s: PyTorch shape %s, C model shape %s", kind, v->name, a, b);
            bad++;
        }
    }
    printf("%s   %d %s entries matched by name and shape (%s)\n", bad ? "FAIL" : "ok  ", pt->count - bad, kind,
           path);
    if (!bad) tu_passed++;
    return bad == 0;
}

static void run_pass(const Case *c, Model *m, const char *path, bool use_ref)
{
    char what[200];
    const char *tag = use_ref ? "ref" : "fast";
    UlError err = {0};
    TU_CHECK(model_load_h5(m, path, "state", &err), "%s: model_load_h5: %s", c->file, err.msg);
    memset(m->grad, 0, m->params.total * sizeof(float));

    int nd;
    int64_t sh[8];
    size_t nx;
    float *x = read_f(path, "input", &nd, sh, &nx);
    int xs[4] = {(int)sh[0], (int)sh[1], (int)sh[2], (int)sh[3]};
    int B = xs[0];
    float *ts = NULL;
    int *labels = NULL, *targets = NULL;
    ModelCond cond = {0};
    if (c->generative) {
        ts = read_f(path, "timesteps", NULL, NULL, NULL);
        labels = read_i(path, "labels", NULL);
        cond.timesteps = ts;
        cond.labels = labels;
        cond.seed = 7;
    } else {
        targets = read_i(path, "targets", NULL);
    }

    Arena arena;
    arena_init(&arena, (size_t)1 << 31);
    Tape tape;
    tape_init(&tape, &arena, 16384);
    tape.training = true;
    tape.use_ref = use_ref;
    Tensor *xt = tensor_wrap(&arena, x, NULL, 4, xs);
    Tensor *out = model_forward(m, &tape, xt, &cond);

    size_t n_out;
    float *want_out = read_f(path, "output", NULL, NULL, &n_out);
    TU_CHECK(out->n == n_out, "%s: output has %zu values, PyTorch %zu", c->file, out->n, n_out);
    if (out->n == n_out) {
        snprintf(what, sizeof what, "%s[%s] output", c->file, tag);
        tu_compare(what, out->data, want_out, n_out, 1e-4 * max_abs(want_out, n_out) + 1e-6, 1e-3);
    }
    float *want_loss = read_f(path, "loss", NULL, NULL, NULL);
    float loss;
    if (c->generative) {
        float *R = read_f(path, "R", NULL, NULL, NULL);
        double s = 0;
        for (size_t i = 0; i < out->n; i++) s += (double)out->data[i] * (double)R[i];
        loss = (float)s;
        tape_backward(&tape, out, R);
        free(R);
    } else {
        Tensor *ce = op_cross_entropy(&tape, out, targets);     /* [B] */
        float *w = malloc((size_t)B * sizeof(float));
        for (int i = 0; i < B; i++) w[i] = 1.0f / (float)B;
        Tensor *l = op_weighted_sum(&tape, ce, w);              /* [1] mean cross-entropy */
        free(w);
        loss = l->data[0];
        tape_backward(&tape, l, NULL);
    }
    printf("     %s[%s]: %d tape nodes, arena %.1f MiB\n", c->file, tag, tape.count,
           (double)arena_high_water(&arena) / 1048576.0);
    snprintf(what, sizeof what, "%s[%s] loss", c->file, tag);
    tu_compare(what, &loss, want_loss, 1, 1e-4 * fabs((double)want_loss[0]) + 1e-6, 1e-3);

    /* every parameter gradient */
    double gmax = 0;
    for (int i = 0; i < m->params.count; i++) {
        char dset[PARAM_NAME_MAX + 16];
        snprintf(dset, sizeof dset, "grad/%s", m->params.views[i].name);
        size_t n;
        float *g = read_f(path, dset, NULL, NULL, &n);
        double mg = max_abs(g, n);
        gmax = mg > gmax ? mg : gmax;
        free(g);
    }
    int grad_ok = 0;
    for (int i = 0; i < m->params.count; i++) {
        const ParamView *v = &m->params.views[i];
        char dset[PARAM_NAME_MAX + 16];
        snprintf(dset, sizeof dset, "grad/%s", v->name);
        size_t n;
        float *g = read_f(path, dset, NULL, NULL, &n);
        snprintf(what, sizeof what, "%s[%s] grad %s", c->file, tag, v->name);
        double atol = 1e-3 * max_abs(g, n) + 1e-5 * gmax;
        if (n == v->n) grad_ok += tu_compare(what, m->grad + v->offset, g, n, atol, 1e-2);
        else TU_CHECK(0, "%s: %zu values in the fixture, %zu in the model", what, n, v->n);
        free(g);
    }
    printf("     %s[%s]: %d of %d parameter gradients within tolerance\n", c->file, tag, grad_ok, m->params.count);

    if (c->bn) {
        for (int i = 0; i < m->buffers.count; i++) {
            const ParamView *v = &m->buffers.views[i];
            char dset[PARAM_NAME_MAX + 16];
            snprintf(dset, sizeof dset, "after/%s", v->name);
            size_t n;
            float *b = read_f(path, dset, NULL, NULL, &n);
            snprintf(what, sizeof what, "%s[%s] after step %s", c->file, tag, v->name);
            if (n == v->n) tu_compare(what, m->buf + v->offset, b, n, 1e-5, 1e-4);
            else TU_CHECK(0, "%s: size %zu vs %zu", what, n, v->n);
            free(b);
        }
        tape_reset(&tape);
        tape.training = false;
        tape.record = false;
        xt = tensor_wrap(&arena, x, NULL, 4, xs);
        Tensor *oe = model_forward(m, &tape, xt, &cond);
        size_t ne;
        float *want_eval = read_f(path, "output_eval", NULL, NULL, &ne);
        snprintf(what, sizeof what, "%s[%s] eval-mode output", c->file, tag);
        if (ne == oe->n) tu_compare(what, oe->data, want_eval, ne, 1e-4 * max_abs(want_eval, ne) + 1e-6, 1e-3);
        else TU_CHECK(0, "%s: size %zu vs %zu", what, oe->n, ne);
        free(want_eval);
    }
    tape_free(&tape);
    arena_free(&arena);
    free(x);
    free(ts);
    free(labels);
    free(targets);
    free(want_out);
    free(want_loss);
}

static void run_case(const Case *c)
{
    char path[1024];
    fixture_path(path, sizeof path, c->file);
    UlError err = {0};
    Model *m = model_create(&c->spec, &err);
    TU_CHECK(m != NULL, "model_create(%s): %s", c->spec.arch, err.msg);
    if (!m) return;
    printf("---- %s: %d parameters (%zu floats), %d buffers\n", c->spec.arch, m->params.count, m->params.total,
           m->buffers.count);
    int *np = read_i(path, "num_params", NULL), *nb = read_i(path, "num_buffers", NULL);
    TU_CHECK(*np == m->params.count, "%s: PyTorch has %d trained parameters, the C model %d", c->file, *np,
             m->params.count);
    TU_CHECK(*nb == m->buffers.count, "%s: PyTorch has %d other state entries, the C model %d buffers", c->file, *nb,
             m->buffers.count);
    free(np);
    free(nb);
    bool names = check_names(path, &m->params, "parameter") & check_names(path, &m->buffers, "buffer");
    if (names) {
        double t0 = ul_now();
        run_pass(c, m, path, false);
        double t1 = ul_now();
        run_pass(c, m, path, true);
        printf("     %s: fast pass %.2f s, ref pass %.2f s\n", c->file, t1 - t0, ul_now() - t1);
    }
    model_free(m);
}

/* ---- UNet dropout: off in eval mode, on in train mode, and keyed by sample so a batch split changes nothing ---- */

static Tensor *unet_run(Model *m, Tape *t, float *x, int B, const float *ts, const int *labels, const int64_t *keys)
{
    const ModelSpec *s = &m->spec;
    ModelCond cond = {.timesteps = ts, .labels = labels, .sample_keys = keys, .seed = 77};
    Tensor *xt = tensor_wrap(t->arena, x, NULL, 4, (int[]){B, s->in_channels, s->height, s->width});
    return model_forward(m, t, xt, &cond);
}

static void test_unet_dropout(void)
{
    char path[1024];
    fixture_path(path, sizeof path, "unet-stage");
    UlError err = {0};
    ModelSpec u = {.arch = "unet-stage", .in_channels = 3, .height = 16, .width = 12, .num_classes = 10,
                   .dropout = 0.1f};
    Model *m = model_create(&u, &err);
    UL_CHECK(m, "%s", err.msg);
    TU_CHECK(model_load_h5(m, path, "state", &err), "%s", err.msg);
    size_t nx, n_out;
    float *x = read_f(path, "input", NULL, NULL, &nx);
    float *ts = read_f(path, "timesteps", NULL, NULL, NULL);
    int *labels = read_i(path, "labels", NULL);
    float *want = read_f(path, "output", NULL, NULL, &n_out);
    const int B = 2;
    const int64_t keys[2] = {1001, 7};
    Arena arena;
    arena_init(&arena, (size_t)1 << 30);
    Tape tape;
    tape_init(&tape, &arena, 4096);
    tape.record = false;

    /* eval mode: dropout is the identity, so the p = 0 PyTorch output holds */
    tape.training = false;
    Tensor *o = unet_run(m, &tape, x, B, ts, labels, keys);
    tu_compare("unet-stage dropout 0.1, eval mode vs PyTorch p=0", o->data, want, n_out,
               1e-4 * max_abs(want, n_out) + 1e-6, 1e-3);

    /* train mode: the output moves */
    tape_reset(&tape);
    tape.training = true;
    o = unet_run(m, &tape, x, B, ts, labels, keys);
    float *full = malloc(n_out * sizeof(float));
    memcpy(full, o->data, n_out * sizeof(float));
    double dmax = 0;
    for (size_t i = 0; i < n_out; i++) dmax = fmax(dmax, fabs((double)full[i] - want[i]));
    TU_CHECK(dmax > 1e-3, "unet-stage dropout 0.1 in train mode changed the output by only %g", dmax);

    printf("     unet-stage dropout 0.1 train mode moves the output by up to %.3g\n", dmax);
    /* each sample alone with its key (another rank layout) equals its row of the full batch (GroupNorm and
       attention do not mix samples). Not bit-identical: the conv/GEMM blocking depends on the batch size, which
       reorders float32 sums (~1e-6 here); a different dropout mask would move outputs by ~dmax above. */
    size_t per = n_out / B, px = nx / B;
    for (int b = 1; b >= 0; b--) {
        tape_reset(&tape);
        o = unet_run(m, &tape, x + (size_t)b * px, 1, ts + b, labels + b, keys + b);
        char what[96];
        snprintf(what, sizeof what, "unet-stage train-mode dropout, sample %d alone vs in the batch", b);
        tu_compare(what, o->data, full + (size_t)b * per, per, 1e-5 * max_abs(full, n_out), 1e-4);
    }
    tape_free(&tape);
    arena_free(&arena);
    free(full);
    free(x);
    free(ts);
    free(labels);
    free(want);
    model_free(m);
}

/* ---- model_init ---- */

static void check_uniform(const Model *m, const char *name, double bound)
{
    Tensor p = model_param(m, name);
    double lo = 1e30, hi = -1e30, s = 0, s2 = 0;
    for (size_t i = 0; i < p.n; i++) {
        double v = p.data[i];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
        s += v;
        s2 += v * v;
    }
    double mean = s / (double)p.n, sd = sqrt(s2 / (double)p.n - mean * mean), want_sd = bound / sqrt(3.0);
    /* n >= 1000 here: the sample mean is within 4 standard errors (4 sd/sqrt(n)), the sd within 10 %. */
    TU_CHECK(lo >= -bound && hi <= bound && hi > 0.9 * bound && lo < -0.9 * bound,
             "init %s: range [%g, %g], expected inside and filling [-%g, %g]", name, lo, hi, bound, bound);
    TU_CHECK(fabs(mean) < 4 * want_sd / sqrt((double)p.n), "init %s: mean %g", name, mean);
    TU_CHECK(fabs(sd / want_sd - 1) < 0.1, "init %s: sd %g, expected %g", name, sd, want_sd);
}

static void check_const(const float *x, size_t n, float v, const char *what)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += x[i] != v;
    TU_CHECK(bad == 0, "init %s: %zu of %zu values differ from %g", what, bad, n, (double)v);
}

static void test_init(void)
{
    UlError err = {0};
    ModelSpec s = {.arch = "fmnist-cnn", .in_channels = 1, .height = 28, .width = 28, .num_classes = 10};
    Model *a = model_create(&s, &err), *b = model_create(&s, &err);
    UL_CHECK(a && b, "%s", err.msg);
    model_init(a, 11);
    model_init(b, 11);
    TU_CHECK(memcmp(a->param, b->param, a->params.total * sizeof(float)) == 0, "model_init is not deterministic");
    model_init(b, 12);
    TU_CHECK(memcmp(a->param, b->param, a->params.total * sizeof(float)) != 0, "model_init ignores the seed");
    check_uniform(a, "conv2.weight", 1.0 / sqrt(32 * 9.0));
    check_uniform(a, "fc1.weight", 1.0 / sqrt(64 * 7 * 7.0));
    check_uniform(a, "fc1.bias", 1.0 / sqrt(64 * 7 * 7.0));  /* bias bound uses the weight's fan_in */
    Tensor w = model_param(a, "bn3.weight"), bias = model_param(a, "bn3.bias");
    check_const(w.data, w.n, 1.0f, "bn3.weight");
    check_const(bias.data, bias.n, 0.0f, "bn3.bias");
    Tensor rm = model_buffer(a, "bn3.running_mean"), rv = model_buffer(a, "bn3.running_var");
    check_const(rm.data, rm.n, 0.0f, "bn3.running_mean");
    check_const(rv.data, rv.n, 1.0f, "bn3.running_var");
    /* different tensors draw different streams */
    Tensor c1 = model_param(a, "conv3.weight"), c2 = model_param(a, "conv4.weight");
    TU_CHECK(memcmp(c1.data, c2.data, 64 * sizeof(float)) != 0, "conv3 and conv4 start identical");
    model_free(a);
    model_free(b);

    /* DiT: initialize_weights, and the frozen pos_embed equals DiT's numpy table (from the fixture) */
    ModelSpec d = {.arch = "dit-block", .in_channels = 4, .height = 8, .width = 12, .num_classes = 5, .depth = 2};
    Model *m = model_create(&d, &err);
    UL_CHECK(m, "%s", err.msg);
    model_init(m, 3);
    Tensor z = model_param(m, "blocks.1.adaLN_modulation.1.weight");
    check_const(z.data, z.n, 0.0f, "blocks.1.adaLN_modulation.1.weight");
    z = model_param(m, "final_layer.linear.weight");
    check_const(z.data, z.n, 0.0f, "final_layer.linear.weight");
    z = model_param(m, "blocks.0.attn.qkv.bias");
    check_const(z.data, z.n, 0.0f, "blocks.0.attn.qkv.bias");
    check_uniform(m, "blocks.0.mlp.fc1.weight", sqrt(6.0 / (48 + 192)));   /* xavier_uniform */
    check_uniform(m, "x_embedder.proj.weight", sqrt(6.0 / (48 + 16)));     /* over the [D, C*p*p] view */
    char path[1024];
    fixture_path(path, sizeof path, "dit-block");
    size_t n;
    float *pe = read_f(path, "state/pos_embed", NULL, NULL, &n);
    Tensor pb = model_buffer(m, "pos_embed");
    TU_CHECK(n == pb.n, "pos_embed size %zu vs %zu", pb.n, n);
    /* numpy computes it in float64 and rounds once; we do the same with libm: 1 ulp-level differences */
    if (n == pb.n) tu_compare("dit-block init pos_embed vs DiT's numpy table", pb.data, pe, n, 1e-6, 1e-6);
    free(pe);
    model_free(m);

    /* UNet: embeddings N(0, 1), GroupNorm weight 1 */
    ModelSpec u = {.arch = "unet-stage", .in_channels = 3, .height = 16, .width = 12, .num_classes = 10};
    m = model_create(&u, &err);
    UL_CHECK(m, "%s", err.msg);
    model_init(m, 5);
    Tensor e = model_param(m, "classes_emb.weight");
    double s2 = 0;
    for (size_t i = 0; i < e.n; i++) s2 += (double)e.data[i] * e.data[i];
    TU_CHECK(fabs(sqrt(s2 / (double)e.n) - 1) < 0.25, "classes_emb rms %g, expected ~1 (N(0,1), n=%zu)",
             sqrt(s2 / (double)e.n), e.n);
    z = model_param(m, "up.0.attn.1.norm.weight");
    check_const(z.data, z.n, 1.0f, "up.0.attn.1.norm.weight");
    check_uniform(m, "mid.block_1.conv1.weight", 1.0 / sqrt(48 * 9.0));
    model_free(m);
}

/* ---- errors ---- */

static void expect_error(const ModelSpec *s, const char *needle1, const char *needle2)
{
    UlError err = {0};
    Model *m = model_create(s, &err);
    TU_CHECK(m == NULL && err.failed, "model_create(%s) accepted a bad spec", s->arch);
    TU_CHECK(strstr(err.msg, needle1) && (!needle2 || strstr(err.msg, needle2)),
             "model_create(%s) error '%s' should mention '%s'%s%s", s->arch, err.msg, needle1, needle2 ? " and " : "",
             needle2 ? needle2 : "");
    printf("ok   error message: %s\n", err.msg);
    model_free(m);
}

static void test_errors(void)
{
    expect_error(&(ModelSpec){.arch = "resnet50", .in_channels = 3, .height = 32, .width = 32, .num_classes = 10},
                 "resnet50", "fmnist-cnn, resnet18-cifar");
    expect_error(&(ModelSpec){.arch = "fmnist-cnn", .in_channels = 1, .height = 3, .width = 28, .num_classes = 10},
                 "fmnist-cnn", "3x28");
    expect_error(&(ModelSpec){.arch = "mlp", .in_channels = 1, .height = 28, .width = 28, .num_classes = 0},
                 "num_classes", NULL);
    expect_error(&(ModelSpec){.arch = "dit-block", .in_channels = 4, .height = 8, .width = 8, .num_classes = 5,
                              .heads = 5},
                 "heads 5", NULL);
    expect_error(&(ModelSpec){.arch = "dit-block", .in_channels = 4, .height = 8, .width = 9, .num_classes = 5},
                 "patch 2", "8x9");
    expect_error(&(ModelSpec){.arch = "unet-stage", .in_channels = 3, .height = 16, .width = 16, .num_classes = 10,
                              .groups = 5},
                 "groups 5", NULL);
    expect_error(&(ModelSpec){.arch = "ddpm-unet", .in_channels = 3, .height = 20, .width = 20, .num_classes = 10},
                 "20x20", NULL);

    /* a checkpoint of another shape: the error names the entry and both shapes */
    char path[1024];
    fixture_path(path, sizeof path, "mlp");
    UlError err = {0};
    ModelSpec s = {.arch = "mlp", .in_channels = 1, .height = 6, .width = 7, .num_classes = 9, .nhidden = 2,
                   .hidden = {30, 17}};
    Model *m = model_create(&s, &err);
    UL_CHECK(m, "%s", err.msg);
    TU_CHECK(!model_load_h5(m, path, "state", &err) && strstr(err.msg, "fc1.weight") && strstr(err.msg, "[31, 42]")
                 && strstr(err.msg, "[30, 42]"),
             "loading a mis-shaped checkpoint: '%s'", err.msg);
    printf("ok   error message: %s\n", err.msg);
    UlError err2 = {0};
    TU_CHECK(!model_load_h5(m, path, "nosuchgroup", &err2) && strstr(err2.msg, "nosuchgroup/fc1.weight"),
             "loading from a missing group: '%s'", err2.msg);
    printf("ok   error message: %s\n", err2.msg);
    model_free(m);

    /* the resolved spec of the full-size defaults (no allocation-heavy forward) */
    ModelSpec dd = {.arch = "ddpm-unet"};
    m = model_create(&dd, &err2);
    TU_CHECK(m && m->spec.width_ch == 128 && m->spec.n_levels == 4 && m->spec.groups == 32 && m->spec.dropout > 0.09f,
             "ddpm-unet defaults not resolved");
    /* the CIFAR-10 conditional UNet: the PyTorch twin at these sizes has 334 tensors, 38632323 values */
    TU_CHECK(m && m->params.count == 334, "ddpm-unet defaults: %d parameter tensors, expected 334",
             m ? m->params.count : -1);
    if (m) printf("     ddpm-unet defaults: %d parameters, %zu floats\n", m->params.count, m->params.total);
    model_free(m);
}

int main(void)
{
    const Case cases[] = {
        {"mlp", {.arch = "mlp", .in_channels = 1, .height = 6, .width = 7, .num_classes = 9, .nhidden = 2,
                 .hidden = {31, 17}}, false, false},
        {"fmnist-cnn", {.arch = "fmnist-cnn", .in_channels = 1, .height = 28, .width = 20, .num_classes = 10}, false,
         true},
        {"resnet18-cifar", {.arch = "resnet18-cifar", .in_channels = 3, .height = 8, .width = 12, .num_classes = 7},
         false, true},
        {"dit-block", {.arch = "dit-block", .in_channels = 4, .height = 8, .width = 12, .num_classes = 5, .depth = 2},
         true, false},
        {"unet-stage", {.arch = "unet-stage", .in_channels = 3, .height = 16, .width = 12, .num_classes = 10}, true,
         false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
    test_unet_dropout();
    test_init();
    test_errors();
    return tu_finish("test_models");
}
