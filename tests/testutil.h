/*
 * testutil.h - the test harness shared by every C test (header-only; each test is one binary).
 *
 *   TU_CHECK(cond, fmt, ...)          one named check; prints FAIL with file:line when cond is false
 *   tu_compare(what, got, want, n, atol, rtol)
 *                                     elementwise |got - want| <= atol + rtol * |want|; prints max abs and rel
 *                                     error and the first bad index; counts one check
 *   tu_gradcheck(...)                 central finite differences (loss accumulated in double) vs tape_backward
 *   tu_refcheck(...)                  fast kernels vs the naive _ref twins, forward and backward
 *   return tu_finish("name");         prints "RESULT name passed=P failed=F" (tests/run_tests.sh sums these)
 *                                     and returns the exit code (nonzero when anything failed)
 */
#ifndef UL_TESTUTIL_H
#define UL_TESTUTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

static int tu_passed, tu_failed;

#define TU_CHECK(cond, ...)                                                       \
    do {                                                                          \
        if (cond) {                                                               \
            tu_passed++;                                                          \
        } else {                                                                  \
            tu_failed++;                                                          \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                           \
            printf(__VA_ARGS__);                                                  \
            printf("\n");                                                         \
        }                                                                         \
    } while (0)

static inline int tu_finish(const char *name)
{
    printf("RESULT %s passed=%d failed=%d\n", name, tu_passed, tu_failed);
    return tu_failed ? 1 : 0;
}

/* Deterministic uniform floats in [lo, hi) from a 64-bit state. */
static inline float tu_rand(unsigned long long *s, float lo, float hi)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    unsigned long long x = *s >> 11;
    return lo + (hi - lo) * (float)((double)x / 9007199254740992.0);
}

static inline void tu_fill(float *x, size_t n, unsigned long long seed, float lo, float hi)
{
    unsigned long long s = seed * 2654435761ULL + 12345;
    for (size_t i = 0; i < n; i++) x[i] = tu_rand(&s, lo, hi);
}

/* Returns 1 when every element is within atol + rtol*|want|. Prints a one-line summary either way. */
static inline int tu_compare(const char *what, const float *got, const float *want, size_t n, double atol,
                             double rtol)
{
    double max_abs = 0, max_rel = 0;
    long first_bad = -1;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i], d = fabs(g - w);
        double rel = d / (fabs(w) > 1e-12 ? fabs(w) : 1e-12);
        if (d > max_abs) max_abs = d;
        if (rel > max_rel && fabs(w) > atol) max_rel = rel;
        if ((!(d <= atol + rtol * fabs(w))) && first_bad < 0) first_bad = (long)i;
    }
    int ok = first_bad < 0;
    if (ok) {
        tu_passed++;
        printf("ok   %-44s n=%-8zu max_abs=%.3e max_rel=%.3e\n", what, n, max_abs, max_rel);
    } else {
        tu_failed++;
        printf("FAIL %-44s n=%-8zu max_abs=%.3e max_rel=%.3e first_bad=%ld got=%.8g want=%.8g (atol=%g rtol=%g)\n",
               what, n, max_abs, max_rel, first_bad, (double)got[first_bad], (double)want[first_bad], atol, rtol);
    }
    return ok;
}

/* Builds the graph under test from `in` (nin tensors) and returns its output. */
typedef Tensor *(*tu_build_fn)(Tape *t, Tensor **in, void *ctx);

/* A malloc'd tensor (outside any arena) with data filled uniformly in [lo, hi) and, if with_grad, a zero grad. */
static inline Tensor *tu_tensor(int ndim, const int *shape, unsigned long long seed, float lo, float hi,
                                int with_grad)
{
    Tensor *t = calloc(1, sizeof *t);
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof(int));
    t->n = tensor_numel(ndim, shape);
    t->data = malloc(t->n * sizeof(float));
    tu_fill(t->data, t->n, seed, lo, hi);
    t->grad = with_grad ? calloc(t->n, sizeof(float)) : NULL;
    return t;
}

static inline void tu_tensor_free(Tensor *t)
{
    if (!t) return;
    free(t->data);
    free(t->grad);
    free(t);
}

static inline double tu_project(const Tensor *out, const float *r)
{
    double s = 0;
    for (size_t i = 0; i < out->n; i++) s += (double)out->data[i] * (double)r[i];
    return s;
}

/*
 * Central finite differences of L = sum(out * R) (R random, fixed) with respect to every element (or, for big
 * inputs, a deterministic sample of max_elems elements) of every input that has a grad, against tape_backward.
 * Checks |fd - analytic| <= atol + rtol * |fd|. One tu_compare per input.
 */
static inline int tu_gradcheck(const char *name, tu_build_fn f, void *ctx, Tensor **in, int nin, float eps,
                               double atol, double rtol, int training)
{
    Arena arena;
    arena_init(&arena, (size_t)1 << 31);
    Tape tape;
    tape_init(&tape, &arena, 4096);
    tape.training = training;
    for (int i = 0; i < nin; i++)
        if (in[i] && in[i]->grad) memset(in[i]->grad, 0, in[i]->n * sizeof(float));
    Tensor *out = f(&tape, in, ctx);
    float *r = malloc(out->n * sizeof(float));
    tu_fill(r, out->n, 777, -1.0f, 1.0f);
    tape_backward(&tape, out, r);
    int ok = 1;
    const int max_elems = 96;
    for (int i = 0; i < nin; i++) {
        if (!in[i] || !in[i]->grad) continue;
        size_t n = in[i]->n, stride = n > (size_t)max_elems ? n / max_elems : 1;
        size_t m = (n + stride - 1) / stride;
        float *fd = malloc(m * sizeof(float)), *an = malloc(m * sizeof(float));
        for (size_t k = 0; k < m; k++) {
            size_t j = k * stride;
            float orig = in[i]->data[j];
            tape.record = false;
            in[i]->data[j] = orig + eps;
            tape_reset(&tape);
            double lp = tu_project(f(&tape, in, ctx), r);
            in[i]->data[j] = orig - eps;
            tape_reset(&tape);
            double lm = tu_project(f(&tape, in, ctx), r);
            in[i]->data[j] = orig;
            tape.record = true;
            fd[k] = (float)((lp - lm) / (2.0 * (double)eps));
            an[k] = in[i]->grad[j];
        }
        char what[160];
        snprintf(what, sizeof what, "%s: grad[%d] vs finite diff", name, i);
        ok &= tu_compare(what, an, fd, m, atol, rtol);
        free(fd);
        free(an);
    }
    free(r);
    tape_free(&tape);
    arena_free(&arena);
    return ok;
}

/* Runs the graph with the fast kernels and with the _ref twins (same inputs, same random seed gradient) and
   compares the outputs and every input gradient. */
static inline int tu_refcheck(const char *name, tu_build_fn f, void *ctx, Tensor **in, int nin, double atol,
                              double rtol, int training)
{
    Arena arena;
    arena_init(&arena, (size_t)1 << 31);
    Tape tape;
    tape_init(&tape, &arena, 4096);
    tape.training = training;
    float *outs[2] = {0}, *grads[2][OP_MAX_INPUTS + 4] = {{0}};
    size_t out_n = 0;
    int ok = 1;
    for (int pass = 0; pass < 2; pass++) {
        tape_reset(&tape);
        tape.use_ref = pass == 1;
        for (int i = 0; i < nin; i++)
            if (in[i] && in[i]->grad) memset(in[i]->grad, 0, in[i]->n * sizeof(float));
        Tensor *out = f(&tape, in, ctx);
        out_n = out->n;
        outs[pass] = malloc(out->n * sizeof(float));
        memcpy(outs[pass], out->data, out->n * sizeof(float));
        if (out->grad) {
            float *r = malloc(out->n * sizeof(float));
            tu_fill(r, out->n, 4242, -1.0f, 1.0f);
            tape_backward(&tape, out, r);
            free(r);
        }
        for (int i = 0; i < nin && i < OP_MAX_INPUTS + 4; i++) {
            if (!in[i] || !in[i]->grad) continue;
            grads[pass][i] = malloc(in[i]->n * sizeof(float));
            memcpy(grads[pass][i], in[i]->grad, in[i]->n * sizeof(float));
        }
    }
    char what[160];
    snprintf(what, sizeof what, "%s: forward fast vs ref", name);
    ok &= tu_compare(what, outs[0], outs[1], out_n, atol, rtol);
    for (int i = 0; i < nin && i < OP_MAX_INPUTS + 4; i++) {
        if (!grads[0][i]) continue;
        snprintf(what, sizeof what, "%s: grad[%d] fast vs ref", name, i);
        ok &= tu_compare(what, grads[0][i], grads[1][i], in[i]->n, atol, rtol);
        free(grads[0][i]);
        free(grads[1][i]);
    }
    free(outs[0]);
    free(outs[1]);
    tape_free(&tape);
    arena_free(&arena);
    return ok;
}

#endif
