/* optim.c - see include/optim.h. Every loop runs over one flat buffer; nothing is allocated after optim_init. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Below this many elements a loop runs on the calling thread: starting a team costs more than the work. */
#define OPTIM_OMP_MIN ((size_t)1 << 15)

static const double optim_pi = 3.14159265358979323846; /* == Python's math.pi as a double */

static const char *const optim_kind_names[OPTIM_KIND_COUNT] = {"sgd", "adam", "adamw"};
static const char *const sched_kind_names[SCHED_KIND_COUNT] = {"constant", "linear", "cosine"};

/* Case-insensitive ASCII equality (strcasecmp is not in C11). */
static bool optim_name_eq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = (*a >= 'A' && *a <= 'Z') ? (char)(*a - 'A' + 'a') : *a;
        char y = (*b >= 'A' && *b <= 'Z') ? (char)(*b - 'A' + 'a') : *b;
        if (x != y) return false;
    }
    return *a == *b;
}

static float *optim_alloc_state(size_t n)
{
    size_t bytes = ul_mul_size(n ? n : 1, sizeof(float));
    bytes = ul_add_size(bytes, 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes);
    UL_CHECK(p != NULL, "out of memory allocating optimizer state of %zu floats (%zu bytes)", n, bytes);
    memset(p, 0, bytes);
    return p;
}

OptimConfig optim_config_default(OptimKind kind)
{
    OptimConfig c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.beta1 = 0.9;
    c.beta2 = 0.999;
    c.eps = 1e-8;
    switch (kind) {
    case OPTIM_SGD: c.lr = 0.01; break;
    case OPTIM_ADAM: c.lr = 1e-3; break;
    case OPTIM_ADAMW: c.lr = 1e-3; c.weight_decay = 1e-2; break;
    default: UL_CHECK(0, "optim_config_default: unknown optimizer kind %d", (int)kind);
    }
    return c;
}

bool optim_config_check(const OptimConfig *cfg, const char *where, UlError *err)
{
    const char *w = where ? where : "optimizer";
    if ((int)cfg->kind < 0 || cfg->kind >= OPTIM_KIND_COUNT) {
        ul_error_set(err, "%s: unknown optimizer kind %d (expected sgd, adam or adamw)", w, (int)cfg->kind);
        return false;
    }
    if (!(cfg->lr >= 0 && isfinite(cfg->lr))) {
        ul_error_set(err, "%s: lr must be a finite number >= 0, got %g", w, cfg->lr);
        return false;
    }
    if (!(cfg->weight_decay >= 0 && isfinite(cfg->weight_decay))) {
        ul_error_set(err, "%s: weight_decay must be a finite number >= 0, got %g", w, cfg->weight_decay);
        return false;
    }
    if (cfg->kind == OPTIM_SGD) {
        if (!(cfg->momentum >= 0 && cfg->momentum < 1)) {
            ul_error_set(err, "%s: momentum must be in [0, 1), got %g", w, cfg->momentum);
            return false;
        }
        if (cfg->nesterov && cfg->momentum == 0) {
            ul_error_set(err, "%s: nesterov needs momentum > 0", w);
            return false;
        }
    } else {
        if (!(cfg->beta1 >= 0 && cfg->beta1 < 1) || !(cfg->beta2 >= 0 && cfg->beta2 < 1)) {
            ul_error_set(err, "%s: betas must be in [0, 1), got (%g, %g)", w, cfg->beta1, cfg->beta2);
            return false;
        }
        if (!(cfg->eps > 0 && isfinite(cfg->eps))) {
            ul_error_set(err, "%s: eps must be a finite number > 0, got %g", w, cfg->eps);
            return false;
        }
    }
    return true;
}

void optim_init(Optim *o, const OptimConfig *cfg, size_t n)
{
    UlError err = {0};
    UL_CHECK(optim_config_check(cfg, "optim_init", &err), "%s", err.msg);
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->n = n;
    o->step = 0;
    if (cfg->kind == OPTIM_SGD) {
        o->m = cfg->momentum != 0 ? optim_alloc_state(n) : NULL;
        o->v = NULL;
    } else {
        o->m = optim_alloc_state(n);
        o->v = optim_alloc_state(n);
    }
}

void optim_free(Optim *o)
{
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
    o->n = 0;
    o->step = 0;
}

/* torch.optim.SGD (foreach=False), one float op per PyTorch op in the same order. */
static void optim_sgd(Optim *o, float *restrict p, const float *restrict g, double lr)
{
    const size_t n = o->n;
    const float wd = (float)o->cfg.weight_decay, mu = (float)o->cfg.momentum, neg_lr = (float)-lr;
    const bool use_wd = o->cfg.weight_decay != 0, nesterov = o->cfg.nesterov;
    float *restrict buf = o->m;
    if (!buf) {                                   /* momentum 0: theta -= lr * (g + wd*theta) */
#pragma omp parallel for simd if (n > OPTIM_OMP_MIN)
        for (size_t i = 0; i < n; i++) {
            float d = use_wd ? g[i] + wd * p[i] : g[i];
            p[i] = p[i] + neg_lr * d;
        }
        return;
    }
    const bool first = o->step == 0;
#pragma omp parallel for simd if (n > OPTIM_OMP_MIN)
    for (size_t i = 0; i < n; i++) {
        float d = use_wd ? g[i] + wd * p[i] : g[i];
        float b = first ? d : buf[i] * mu + d;
        buf[i] = b;
        float u = nesterov ? d + mu * b : b;
        p[i] = p[i] + neg_lr * u;
    }
}

/* torch.optim.Adam / AdamW (foreach=False, amsgrad=False); o->step has already been incremented. */
static void optim_adam(Optim *o, float *restrict p, const float *restrict g, double lr)
{
    const size_t n = o->n;
    const OptimConfig *c = &o->cfg;
    const double k = (double)o->step;
    const double bc1 = 1.0 - pow(c->beta1, k), bc2 = 1.0 - pow(c->beta2, k);
    const float neg_step = (float)-(lr / bc1);            /* PyTorch: value = -step_size, step_size = lr/bc1 */
    const float bc2_sqrt = (float)sqrt(bc2);
    const float b1 = (float)c->beta1, omb1 = (float)(1.0 - c->beta1);
    const float b2 = (float)c->beta2, omb2 = (float)(1.0 - c->beta2);
    const float eps = (float)c->eps;
    const bool decoupled = c->kind == OPTIM_ADAMW, l2 = !decoupled && c->weight_decay != 0;
    const float wd = (float)c->weight_decay;
    const float decay = (float)(1.0 - lr * c->weight_decay); /* AdamW: theta *= 1 - lr*wd */
    float *restrict m = o->m, *restrict v = o->v;
#pragma omp parallel for simd if (n > OPTIM_OMP_MIN)
    for (size_t i = 0; i < n; i++) {
        float th = decoupled ? p[i] * decay : p[i];
        float gi = l2 ? g[i] + wd * th : g[i];
        float mi = m[i] * b1 + omb1 * gi;
        float vi = v[i] * b2 + omb2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = th + neg_step * mi / denom;
    }
}

void optim_step(Optim *o, float *param, const float *grad, double lr)
{
    UL_CHECK(isfinite(lr) && lr >= 0, "optim_step: learning rate must be finite and >= 0, got %g", lr);
    switch (o->cfg.kind) {
    case OPTIM_SGD:
        optim_sgd(o, param, grad, lr);
        o->step++;
        break;
    case OPTIM_ADAM:
    case OPTIM_ADAMW:
        o->step++;
        optim_adam(o, param, grad, lr);
        break;
    default: UL_CHECK(0, "optim_step: unknown optimizer kind %d", (int)o->cfg.kind);
    }
}

int optim_kind_from_name(const char *name)
{
    for (int k = 0; name && k < OPTIM_KIND_COUNT; k++)
        if (optim_name_eq(name, optim_kind_names[k])) return k;
    return -1;
}

const char *optim_kind_name(OptimKind kind)
{
    UL_CHECK((int)kind >= 0 && kind < OPTIM_KIND_COUNT, "optim_kind_name: unknown kind %d", (int)kind);
    return optim_kind_names[kind];
}

double grad_global_norm(const float *g, size_t n)
{
    double s = 0;
#pragma omp parallel for simd reduction(+ : s) if (n > OPTIM_OMP_MIN)
    for (size_t i = 0; i < n; i++) s += (double)g[i] * (double)g[i];
    return sqrt(s);
}

double grad_clip_global(float *g, size_t n, double max_norm)
{
    UL_CHECK(max_norm > 0, "grad_clip_global: max_norm must be > 0, got %g", max_norm);
    double norm = grad_global_norm(g, n);
    if (!isfinite(norm)) return norm;
    double c = max_norm / (norm + 1e-6);
    if (c < 1.0) {
        const float cf = (float)c;
#pragma omp parallel for simd if (n > OPTIM_OMP_MIN)
        for (size_t i = 0; i < n; i++) g[i] *= cf;
    }
    return norm;
}

void grad_apply_mask(float *g, const float *mask, size_t n)
{
#pragma omp parallel for simd if (n > OPTIM_OMP_MIN)
    for (size_t i = 0; i < n; i++) g[i] *= mask[i];
}

double sched_value(SchedKind kind, double v0, int64_t t, int64_t T)
{
    UL_CHECK(T >= 1 && t >= 0, "sched_value: need T >= 1 and t >= 0, got t=%lld T=%lld", (long long)t,
             (long long)T);
    UL_CHECK((int)kind >= 0 && kind < SCHED_KIND_COUNT, "sched_value: unknown schedule kind %d", (int)kind);
    if (t > T) t = T;
    if (kind == SCHED_LINEAR) return v0 * (1.0 - (double)t / (double)T);
    if (kind == SCHED_COSINE) return v0 * (1.0 + cos(optim_pi * (double)t / (double)T)) / 2.0; /* torch's order */
    return v0;                                                                                  /* SCHED_CONSTANT */
}

int sched_kind_from_name(const char *name)
{
    for (int k = 0; name && k < SCHED_KIND_COUNT; k++)
        if (optim_name_eq(name, sched_kind_names[k])) return k;
    return -1;
}

const char *sched_kind_name(SchedKind kind)
{
    UL_CHECK((int)kind >= 0 && kind < SCHED_KIND_COUNT, "sched_kind_name: unknown kind %d", (int)kind);
    return sched_kind_names[kind];
}
