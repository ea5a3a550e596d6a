/*
 * test_optim.c - optimizers, gradient mask/clip and schedules (src/optim.c).
 *
 *   1. PyTorch 1.13 trajectories (data_tools/fixtures_optim.py -> $FIXTURES/optim.h5): SGD, SGD+Nesterov, Adam,
 *      AdamW, each 10 steps of mask -> clip_grad_norm_ -> step under a cosine LR, and an SFR-on-shaped AdamW run
 *      (masked+clipped forget step, plain retain step, one shared optimizer). Params are compared after EVERY step,
 *      the pre-clip norms and the learning rates too. The fixture's three tensors are scattered into a ParamTable,
 *      so the flat buffers carry the 16-float alignment padding, as in the real program.
 *   2. The hand-computed two-parameter SFR-on example of sfr-on.md §8 (forget: scale -> mask -> clip -> SGD with wd
 *      and momentum; then a retain step sharing the momentum buffer), written out in double below.
 *   3. Clip semantics, masked parameters still moving (wd, momentum, Adam moments), schedules at t = 0, T/2, T,
 *      name lookups, config validation, checkpoint round trip of the public state, and the OpenMP path (large n)
 *      against the serial path.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5io.h"
#include "optim.h"
#include "tensor.h"
#include "testutil.h"

#define NSTEPS 10
#define NPARAMS 3
#define MAX_NORM 4.0 /* fixtures_optim.py MAX_NORM */

/*
 * Tolerance for C float32 vs PyTorch float32 on the same formulas: each step does a handful of float roundings per
 * element (2^-24 relative each; PyTorch's vectorised add may fuse a multiply-add where we do not) and our clip
 * coefficient is computed in double where PyTorch uses float (~1e-7 relative in the clipped gradient). Over 10 steps
 * on O(1) parameters that is a few float ulps, ~1e-7 absolute. atol 1e-6 covers parameters that pass near zero (where
 * a relative bound is meaningless); rtol 1e-5 bounds the rest with a wide margin. Real bugs are far larger: a missing
 * SGD weight decay changes step 1 by lr*wd*theta = 5e-5*theta and grows with momentum, a missing bias correction is a
 * 10x change at step 1, eps inside the sqrt shifts small-gradient elements by ~1e-3.
 */
#define TRAJ_ATOL 1e-6
#define TRAJ_RTOL 1e-5

static const char *const param_names[NPARAMS] = {"a.weight", "a.bias", "b.weight"};
static const int param_ndim[NPARAMS] = {2, 1, 3};
static const int param_shape[NPARAMS][3] = {{7, 5}, {13, 0, 0}, {3, 4, 2}};

/* The runs of fixtures_optim.py RUNS, with the same hyperparameters. */
typedef struct Run {
    const char *name;
    OptimKind kind;
    double lr0, momentum, weight_decay;
    bool nesterov, sfron; /* sfron: even steps forget (mask+clip), odd steps retain; lr per iteration */
} Run;
static const Run runs[] = {
    {"sgd", OPTIM_SGD, 0.1, 0.9, 5e-4, false, false},
    {"sgd_nesterov", OPTIM_SGD, 0.1, 0.9, 5e-4, true, false},
    {"adam", OPTIM_ADAM, 1e-2, 0, 1e-2, false, false},
    {"adamw", OPTIM_ADAMW, 1e-2, 0, 0.05, false, false},
    {"sfron_adamw", OPTIM_ADAMW, 1e-2, 0, 0.05, false, true},
};

typedef struct Fixture {
    char path[1024];
    ParamTable pt;
    float *init, *mask, *grads[NSTEPS]; /* flat [pt.total] buffers */
    float *norms;                       /* [NSTEPS] pre-clip norms (fixture float) */
} Fixture;

/* Reads dataset dset expecting shape [lead..., view shape] (lead = 0 or NSTEPS leading rows) and scatters row r
   into view i of dst[r]. Fatal with the HDF5 layer's message on a missing or misshaped dataset. */
static void fx_scatter(const Fixture *fx, const char *dset, int i, int lead, float **dst)
{
    UlError err = {0};
    int ndim = 0;
    int64_t shape[TENSOR_MAX_DIMS + 1];
    float *buf = h5_read_floats(fx->path, dset, TENSOR_MAX_DIMS + 1, &ndim, shape, &err);
    UL_CHECK(buf != NULL, "%s", err.msg);
    const ParamView *v = &fx->pt.views[i];
    int off = lead ? 1 : 0;
    UL_CHECK(ndim == v->ndim + off && (!lead || shape[0] == lead), "%s: %s has the wrong rank or step count",
             fx->path, dset);
    for (int d = 0; d < v->ndim; d++)
        UL_CHECK(shape[d + off] == v->shape[d], "%s: %s dim %d is %lld, expected %d", fx->path, dset, d,
                 (long long)shape[d + off], v->shape[d]);
    for (int r = 0; r < (lead ? lead : 1); r++) memcpy(dst[r] + v->offset, buf + (size_t)r * v->n, v->n * sizeof(float));
    free(buf);
}

static float *fx_read_vec(const Fixture *fx, const char *dset, int64_t want_n)
{
    UlError err = {0};
    int ndim = 0;
    int64_t shape[1];
    float *buf = h5_read_floats(fx->path, dset, 1, &ndim, shape, &err);
    UL_CHECK(buf != NULL, "%s", err.msg);
    UL_CHECK(ndim == 1 && shape[0] == want_n, "%s: %s must have shape [%lld]", fx->path, dset, (long long)want_n);
    return buf;
}

static void fx_load(Fixture *fx)
{
    const char *dir = getenv("FIXTURES");
    UL_CHECK(dir != NULL, "FIXTURES is not set (run through tests/run_tests.sh, or set it to the fixtures dir)");
    snprintf(fx->path, sizeof fx->path, "%s/optim.h5", dir);
    params_init(&fx->pt);
    for (int i = 0; i < NPARAMS; i++) params_add(&fx->pt, param_names[i], param_ndim[i], param_shape[i]);
    fx->init = params_alloc(&fx->pt);
    fx->mask = params_alloc(&fx->pt);
    for (int k = 0; k < NSTEPS; k++) fx->grads[k] = params_alloc(&fx->pt);
    char dset[256];
    for (int i = 0; i < NPARAMS; i++) {
        snprintf(dset, sizeof dset, "init/%s", param_names[i]);
        fx_scatter(fx, dset, i, 0, &fx->init);
        snprintf(dset, sizeof dset, "mask/%s", param_names[i]);
        fx_scatter(fx, dset, i, 0, &fx->mask);
        snprintf(dset, sizeof dset, "grads/%s", param_names[i]);
        fx_scatter(fx, dset, i, NSTEPS, fx->grads);
    }
    fx->norms = fx_read_vec(fx, "norms", NSTEPS);
}

static void fx_free(Fixture *fx)
{
    free(fx->init);
    free(fx->mask);
    for (int k = 0; k < NSTEPS; k++) free(fx->grads[k]);
    free(fx->norms);
    params_free(&fx->pt);
}

static void test_fixture_run(const Fixture *fx, const Run *r)
{
    const size_t n = fx->pt.total;
    float *param = params_alloc(&fx->pt), *grad = params_alloc(&fx->pt);
    float *want[NSTEPS];
    for (int k = 0; k < NSTEPS; k++) want[k] = params_alloc(&fx->pt);
    char dset[256], what[160];
    for (int i = 0; i < NPARAMS; i++) {
        snprintf(dset, sizeof dset, "%s/params/%s", r->name, param_names[i]);
        fx_scatter(fx, dset, i, NSTEPS, want);
    }
    snprintf(dset, sizeof dset, "%s/lr", r->name);
    float *want_lr = fx_read_vec(fx, dset, NSTEPS);

    OptimConfig cfg = optim_config_default(r->kind);
    cfg.lr = r->lr0;
    cfg.momentum = r->momentum;
    cfg.weight_decay = r->weight_decay;
    cfg.nesterov = r->nesterov;
    Optim o;
    optim_init(&o, &cfg, n);
    memcpy(param, fx->init, n * sizeof(float));
    float got_lr[NSTEPS], got_norm[NSTEPS], fx_norm[NSTEPS];
    int nclip = 0;
    const int64_t T = r->sfron ? NSTEPS / 2 : NSTEPS;
    for (int k = 0; k < NSTEPS; k++) {
        const bool forget = !r->sfron || k % 2 == 0;
        const int64_t t = r->sfron ? k / 2 : k;
        memcpy(grad, fx->grads[k], n * sizeof(float));
        if (forget) {
            grad_apply_mask(grad, fx->mask, n);
            got_norm[nclip] = (float)grad_clip_global(grad, n, MAX_NORM);
            fx_norm[nclip++] = fx->norms[k];
        }
        double lr = sched_value(SCHED_COSINE, cfg.lr, t, T);
        got_lr[k] = (float)lr;
        optim_step(&o, param, grad, lr);
        snprintf(what, sizeof what, "%s: params after step %d", r->name, k + 1);
        tu_compare(what, param, want[k], n, TRAJ_ATOL, TRAJ_RTOL);
    }
    /* float roundings of two doubles that differ by ~1e-16 relative (torch's recursive cosine vs the closed form):
       equal or one float ulp (<= 1.2e-7 relative) apart. */
    snprintf(what, sizeof what, "%s: cosine lr vs CosineAnnealingLR", r->name);
    tu_compare(what, got_lr, want_lr, NSTEPS, 0, 2.5e-7);
    /* our norm sums in double, torch's in float: ~1e-7 relative */
    snprintf(what, sizeof what, "%s: pre-clip norms vs clip_grad_norm_", r->name);
    tu_compare(what, got_norm, fx_norm, (size_t)nclip, 0, 1e-6);
    TU_CHECK(o.step == NSTEPS, "%s: step counter %lld after %d steps", r->name, (long long)o.step, NSTEPS);
    optim_free(&o);
    free(want_lr);
    for (int k = 0; k < NSTEPS; k++) free(want[k]);
    free(param);
    free(grad);
}

/*
 * sfr-on.md §8: two parameters, mask M = (1, 0), SGD lr 0.1, momentum 0.9, wd 0.01, forget scale alpha 2, clip 1.5.
 *   forget: dL/dtheta = (-1.5, 2.0); ascent gradient g = -alpha * dL = (3, -4); masked (3, 0); norm 3 > 1.5:
 *           g *= 1.5/(3 + 1e-6); d = g + wd*theta; buf = d (first step); theta -= lr*buf
 *           (theta2 has a zero gradient and still moves: -2 -> -2 - 0.1*0.01*(-2) = -1.998)
 *   retain: g = (0.5, -1), no mask, no clip; d = g + wd*theta; buf = 0.9*buf + d; theta -= lr*buf.
 */
static void test_hand_example(void)
{
    const double lr = 0.1, mu = 0.9, wd = 0.01, alpha = 2.0, max_norm = 1.5;
    const double theta0[2] = {1.0, -2.0}, dloss[2] = {-1.5, 2.0}, mask[2] = {1, 0}, gr[2] = {0.5, -1.0};

    /* by hand, in double */
    double th[2] = {theta0[0], theta0[1]}, buf[2], g[2], after_forget[2], norm2 = 0;
    for (int i = 0; i < 2; i++) g[i] = -alpha * dloss[i] * mask[i];
    for (int i = 0; i < 2; i++) norm2 += g[i] * g[i];
    double hand_norm = sqrt(norm2), coef = max_norm / (hand_norm + 1e-6);
    for (int i = 0; i < 2; i++) {
        if (coef < 1) g[i] *= coef;
        buf[i] = g[i] + wd * th[i];
        th[i] -= lr * buf[i];
        after_forget[i] = th[i];
    }
    for (int i = 0; i < 2; i++) {
        double d = gr[i] + wd * th[i];
        buf[i] = mu * buf[i] + d;
        th[i] -= lr * buf[i];
    }

    /* the library: the ascent loss -alpha*L gives gradient -alpha*dL, as tape_backward would produce */
    OptimConfig cfg = optim_config_default(OPTIM_SGD);
    cfg.lr = lr;
    cfg.momentum = mu;
    cfg.weight_decay = wd;
    Optim o;
    optim_init(&o, &cfg, 2);
    float p[2] = {(float)theta0[0], (float)theta0[1]}, m[2] = {(float)mask[0], (float)mask[1]};
    float gf[2] = {(float)(-alpha * dloss[0]), (float)(-alpha * dloss[1])};
    grad_apply_mask(gf, m, 2);
    double norm = grad_clip_global(gf, 2, max_norm);
    TU_CHECK(fabs(norm - 3.0) < 1e-12 && fabs(hand_norm - 3.0) < 1e-12, "hand example: pre-clip norm %.9g, want 3",
             norm);
    optim_step(&o, p, gf, lr);
    float want_f[2] = {(float)after_forget[0], (float)after_forget[1]};
    /* float32 steps vs double hand arithmetic on O(1) values: a few float roundings, ~1e-7 */
    tu_compare("hand example: theta after forget step", p, want_f, 2, 1e-6, 1e-6);
    TU_CHECK(fabs(after_forget[1] - -1.998) < 1e-12, "hand example: masked theta2 %.12g, want -1.998 (wd only)",
             after_forget[1]);
    float grf[2] = {(float)gr[0], (float)gr[1]};
    optim_step(&o, p, grf, lr);
    float want_r[2] = {(float)th[0], (float)th[1]};
    tu_compare("hand example: theta after retain step (shared buf)", p, want_r, 2, 1e-6, 1e-6);
    optim_free(&o);
}

static void test_clip(void)
{
    enum { N = 37 };
    float g[N], orig[N];
    tu_fill(g, N, 11, -1.0f, 1.0f);
    double ref2 = 0;
    for (int i = 0; i < N; i++) ref2 += (double)g[i] * g[i];
    double ref = sqrt(ref2);
    memcpy(orig, g, sizeof g);

    double norm = grad_clip_global(g, N, ref * 1.01); /* below max_norm: untouched */
    TU_CHECK(fabs(norm - ref) <= 1e-12 * ref, "clip: returned norm %.15g, want %.15g", norm, ref);
    TU_CHECK(memcmp(g, orig, sizeof g) == 0, "clip: gradient changed although norm < max_norm");

    norm = grad_clip_global(g, N, ref / 4); /* above: scaled to max_norm, returns the pre-clip norm */
    TU_CHECK(fabs(norm - ref) <= 1e-12 * ref, "clip: returned %.15g, want the pre-clip norm %.15g", norm, ref);
    double after = grad_global_norm(g, N);
    TU_CHECK(fabs(after - ref / 4) <= 1e-6 * ref, "clip: norm after clipping %.9g, want ~%.9g", after, ref / 4);
    float want[N];
    float c = (float)((ref / 4) / (ref + 1e-6));
    for (int i = 0; i < N; i++) want[i] = orig[i] * c;
    tu_compare("clip: g * max_norm/(norm+1e-6)", g, want, N, 0, 0);

    float z[N] = {0};
    TU_CHECK(grad_clip_global(z, N, 1.0) == 0.0, "clip: zero gradient must have norm 0");
    float zero[N] = {0};
    TU_CHECK(memcmp(z, zero, sizeof z) == 0, "clip: zero gradient changed");

    /* masked zeros count in the norm (they add 0) and the mask zeroes exactly */
    float mask[N];
    for (int i = 0; i < N; i++) mask[i] = (float)(i % 3 != 0);
    memcpy(g, orig, sizeof g);
    grad_apply_mask(g, mask, N);
    double m2 = 0;
    for (int i = 0; i < N; i++) m2 += i % 3 ? (double)orig[i] * orig[i] : 0.0;
    TU_CHECK(fabs(grad_global_norm(g, N) - sqrt(m2)) <= 1e-12, "mask: norm of masked gradient");
    int bad = 0;
    for (int i = 0; i < N; i++) bad += i % 3 == 0 ? g[i] != 0.0f : g[i] != orig[i];
    TU_CHECK(bad == 0, "mask: %d elements wrong", bad);
}

/* sfr-on.md §1.11 / §7.8: a zero (masked) gradient does not freeze a parameter. */
static void test_masked_params_move(void)
{
    const float zero[1] = {0};
    /* SGD, weight decay only: theta *= 1 - lr*wd */
    OptimConfig c = optim_config_default(OPTIM_SGD);
    c.weight_decay = 0.1;
    Optim o;
    optim_init(&o, &c, 1);
    float p[1] = {2.0f};
    optim_step(&o, p, zero, 0.5);
    TU_CHECK(fabs(p[0] - 2.0 * (1 - 0.5 * 0.1)) < 1e-6, "sgd wd: masked param %.9g, want 1.9", (double)p[0]);
    optim_free(&o);

    /* SGD momentum, no wd: a masked step after a real one still moves by lr*mu*buf */
    c = optim_config_default(OPTIM_SGD);
    c.momentum = 0.9;
    optim_init(&o, &c, 1);
    p[0] = 1.0f;
    const float one[1] = {1};
    optim_step(&o, p, one, 0.1);  /* buf = 1, p = 0.9 */
    optim_step(&o, p, zero, 0.1); /* buf = 0.9, p = 0.81 */
    TU_CHECK(fabs(p[0] - 0.81) < 1e-6, "sgd momentum: masked param %.9g, want 0.81", (double)p[0]);
    optim_free(&o);

    /* Adam: the first moment of an earlier step moves the param at a zero-gradient step */
    c = optim_config_default(OPTIM_ADAM);
    optim_init(&o, &c, 1);
    p[0] = 1.0f;
    optim_step(&o, p, one, 0.01);
    float p1 = p[0];
    optim_step(&o, p, zero, 0.01);
    double m = 0.9 * 0.1, v = 0.999 * 0.001; /* moments after g = 1 then g = 0 */
    double upd = 0.01 * (m / (1 - 0.9 * 0.9)) / (sqrt(v / (1 - 0.999 * 0.999)) + 1e-8);
    TU_CHECK(fabs((p1 - p[0]) - upd) < 1e-6 && upd > 1e-3, "adam: masked step moved %.9g, want %.9g",
             (double)(p1 - p[0]), upd);
    TU_CHECK(fabs(o.m[0] - m) < 1e-7 && fabs(o.v[0] - v) < 1e-9 && o.step == 2, "adam: public state m=%g v=%g step=%lld",
             (double)o.m[0], (double)o.v[0], (long long)o.step);
    optim_free(&o);

    /* AdamW, gradient always zero: only the decoupled decay moves it, m and v stay 0 */
    c = optim_config_default(OPTIM_ADAMW);
    c.weight_decay = 0.05;
    optim_init(&o, &c, 1);
    p[0] = 3.0f;
    optim_step(&o, p, zero, 0.01);
    optim_step(&o, p, zero, 0.01);
    double want = 3.0 * (1 - 0.01 * 0.05) * (1 - 0.01 * 0.05);
    TU_CHECK(fabs(p[0] - want) < 1e-6, "adamw: decayed param %.9g, want %.9g", (double)p[0], want);
    optim_free(&o);
}

static void test_schedules(void)
{
    const double v0 = 0.01;
    const int64_t Ts[] = {10, 1500};
    for (int j = 0; j < 2; j++) {
        int64_t T = Ts[j];
        for (int k = 0; k < SCHED_KIND_COUNT; k++) {
            double a = sched_value((SchedKind)k, v0, 0, T), h = sched_value((SchedKind)k, v0, T / 2, T);
            double e = sched_value((SchedKind)k, v0, T, T), beyond = sched_value((SchedKind)k, v0, T + 5, T);
            double wh = k == SCHED_CONSTANT ? v0 : v0 / 2, we = k == SCHED_CONSTANT ? v0 : 0;
            TU_CHECK(a == v0 && fabs(h - wh) <= 1e-15 && fabs(e - we) <= 1e-18 && beyond == e,
                     "sched %s T=%lld: t=0 %.17g, T/2 %.17g (want %.17g), T %.17g (want %.17g), T+5 %.17g",
                     sched_kind_name((SchedKind)k), (long long)T, a, h, wh, e, we, beyond);
        }
    }
    /* a point off the landmarks, from the formulas */
    double c3 = sched_value(SCHED_COSINE, 2.0, 3, 10), l3 = sched_value(SCHED_LINEAR, 2.0, 3, 10);
    TU_CHECK(fabs(c3 - (1 + cos(3.14159265358979323846 * 0.3))) < 1e-15 && fabs(l3 - 1.4) < 1e-15,
             "sched at t=3/10: cosine %.17g linear %.17g", c3, l3);
}

static void test_names_and_config(void)
{
    TU_CHECK(optim_kind_from_name("sgd") == OPTIM_SGD && optim_kind_from_name("Adam") == OPTIM_ADAM &&
                 optim_kind_from_name("ADAMW") == OPTIM_ADAMW && optim_kind_from_name("rmsprop") == -1 &&
                 optim_kind_from_name("adamww") == -1 && optim_kind_from_name("") == -1,
             "optim_kind_from_name");
    TU_CHECK(sched_kind_from_name("constant") == SCHED_CONSTANT && sched_kind_from_name("Linear") == SCHED_LINEAR &&
                 sched_kind_from_name("cosine") == SCHED_COSINE && sched_kind_from_name("step") == -1 &&
                 sched_kind_from_name("cos") == -1,
             "sched_kind_from_name");
    for (int k = 0; k < OPTIM_KIND_COUNT; k++) {
        TU_CHECK(optim_kind_from_name(optim_kind_name((OptimKind)k)) == k, "optim name round trip %d", k);
        UlError err = {0};
        OptimConfig c = optim_config_default((OptimKind)k);
        TU_CHECK(optim_config_check(&c, "test", &err), "default config %d rejected: %s", k, err.msg);
    }
    UlError err = {0};
    OptimConfig c = optim_config_default(OPTIM_SGD);
    c.nesterov = true;
    TU_CHECK(!optim_config_check(&c, "cfg.yaml: optim", &err) && strstr(err.msg, "cfg.yaml: optim") &&
                 strstr(err.msg, "nesterov"),
             "nesterov without momentum must be rejected, got '%s'", err.msg);
    UlError err2 = {0};
    c = optim_config_default(OPTIM_ADAM);
    c.beta2 = 1.0;
    TU_CHECK(!optim_config_check(&c, "x", &err2) && strstr(err2.msg, "betas"), "beta2 = 1 must be rejected");
    UlError err3 = {0};
    c = optim_config_default(OPTIM_ADAMW);
    c.lr = -1;
    TU_CHECK(!optim_config_check(&c, "x", &err3) && strstr(err3.msg, "lr"), "negative lr must be rejected");
}

/* Saving (m, v, step) and restoring into a fresh Optim continues bit-identically. */
static void test_checkpoint_roundtrip(void)
{
    enum { N = 50 };
    for (int k = 0; k < OPTIM_KIND_COUNT; k++) {
        OptimConfig c = optim_config_default((OptimKind)k);
        c.momentum = k == OPTIM_SGD ? 0.9 : 0;
        c.weight_decay = 0.01;
        Optim a, b;
        optim_init(&a, &c, N);
        float pa[N], pb[N], g[N];
        tu_fill(pa, N, 5, -1, 1);
        for (int s = 0; s < 3; s++) {
            tu_fill(g, N, 100 + (unsigned long long)s, -1, 1);
            optim_step(&a, pa, g, 0.01);
        }
        optim_init(&b, &c, N);
        memcpy(b.m, a.m, N * sizeof(float));
        if (a.v) memcpy(b.v, a.v, N * sizeof(float));
        b.step = a.step;
        memcpy(pb, pa, sizeof pa);
        for (int s = 3; s < 6; s++) {
            tu_fill(g, N, 100 + (unsigned long long)s, -1, 1);
            optim_step(&a, pa, g, 0.01);
            optim_step(&b, pb, g, 0.01);
        }
        char what[96];
        snprintf(what, sizeof what, "%s: restored state continues bit-identically", optim_kind_name((OptimKind)k));
        tu_compare(what, pb, pa, N, 0, 0);
        optim_free(&a);
        optim_free(&b);
    }
}

/* The OpenMP path (n above the threshold) against the same code run serially on small chunks: elementwise
   float ops without contraction give bit-identical results; the double norm agrees to ~1e-15. */
static void test_large_n(void)
{
    const size_t n = 200003, chunk = 1000;
    for (int k = 0; k < OPTIM_KIND_COUNT; k++) {
        OptimConfig c = optim_config_default((OptimKind)k);
        c.momentum = 0.9;
        c.weight_decay = 1e-3;
        Optim big, small;
        optim_init(&big, &c, n);
        optim_init(&small, &c, n);
        float *p1 = UL_MALLOC(n * sizeof(float)), *p2 = UL_MALLOC(n * sizeof(float));
        float *g = UL_MALLOC(n * sizeof(float));
        tu_fill(p1, n, 3, -1, 1);
        memcpy(p2, p1, n * sizeof(float));
        for (int s = 0; s < 3; s++) {
            tu_fill(g, n, 40 + (unsigned long long)s, -1, 1);
            optim_step(&big, p1, g, 0.01);
            for (size_t off = 0; off < n; off += chunk) {
                Optim view = small; /* a view of the chunk's state; step is shared */
                view.n = off + chunk <= n ? chunk : n - off;
                view.m = small.m + off;
                view.v = small.v ? small.v + off : NULL;
                optim_step(&view, p2 + off, g + off, 0.01);
            }
            small.step++;
        }
        char what[96];
        snprintf(what, sizeof what, "%s: n=%zu one call vs serial chunks", optim_kind_name((OptimKind)k), n);
        tu_compare(what, p1, p2, n, 0, 0);
        if (k == 0) {
            double s = 0;
            for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
            double got = grad_global_norm(g, n);
            TU_CHECK(fabs(got - sqrt(s)) <= 1e-12 * sqrt(s), "global norm n=%zu: %.17g vs serial %.17g", n, got,
                     sqrt(s));
        }
        free(p1);
        free(p2);
        free(g);
        optim_free(&big);
        optim_free(&small);
    }
}

int main(void)
{
    Fixture fx;
    memset(&fx, 0, sizeof fx);
    fx_load(&fx);
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) test_fixture_run(&fx, &runs[r]);
    fx_free(&fx);
    test_hand_example();
    test_clip();
    test_masked_params_move();
    test_schedules();
    test_names_and_config();
    test_checkpoint_roundtrip();
    test_large_n();
    return tu_finish("test_optim");
}
