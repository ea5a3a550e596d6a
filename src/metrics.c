/* metrics.c - accuracy helpers, entropy, KL, the MIA logistic regression and Avg.Gap; see include/metrics.h. */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define LOGREG_MAX_ITERS 100
#define LOGREG_TOL 1e-10

/* Max and log of the sum of exp(z - max) of logits [C]: softmax(z)_c = exp(z_c - max - lse). */
static void log_normaliser(const float *z, int C, double *mx, double *lse)
{
    double m = -INFINITY, s = 0.0;
    for (int c = 0; c < C; c++)
        if ((double)z[c] > m) m = (double)z[c];
    for (int c = 0; c < C; c++) s += exp((double)z[c] - m);
    *mx = m;
    *lse = log(s);
}

void metrics_softmax(const float *logits, int C, double *p)
{
    double mx, lse;
    log_normaliser(logits, C, &mx, &lse);
    for (int c = 0; c < C; c++) p[c] = exp((double)logits[c] - mx - lse);
}

double metrics_entropy(const float *logits, int C)
{
    /* H = -sum p log p with log p = z - max - lse; terms with p = 0 (exp underflow) contribute 0 */
    double mx, lse, h = 0.0;
    log_normaliser(logits, C, &mx, &lse);
    for (int c = 0; c < C; c++) {
        double lp = (double)logits[c] - mx - lse;
        double p = exp(lp);
        if (p > 0.0) h -= p * lp;
    }
    return h;
}

int metrics_argmax(const float *logits, int C)
{
    int best = 0;
    for (int c = 1; c < C; c++)
        if (logits[c] > logits[best] || (isnan(logits[best]) && !isnan(logits[c]))) best = c;
    return best;
}

double metrics_kl_row(const float *logits_p, const float *logits_q, int C)
{
    double mp, lp, mq, lq;
    log_normaliser(logits_p, C, &mp, &lp);
    log_normaliser(logits_q, C, &mq, &lq);
    double kl = 0.0;
    for (int c = 0; c < C; c++) {
        double p = exp((double)logits_p[c] - mp - lp), q = exp((double)logits_q[c] - mq - lq);
        kl += p * (log(p + METRICS_KL_EPS) - log(q + METRICS_KL_EPS));
    }
    return kl;
}

/* log(1 + exp(u)) without overflow. */
static double softplus(double u) { return u > 0 ? u + log1p(exp(-u)) : log1p(exp(u)); }
/* 1 / (1 + exp(-u)) without overflow. */
static double sigmoid(double u)
{
    if (u >= 0) return 1.0 / (1.0 + exp(-u));
    double e = exp(u);
    return e / (1.0 + e);
}

/* The binary objective C' * sum_i s_i softplus(-t_i (v x_i + d)) + v^2 / 2. */
static double logreg_objective(const float *x, const unsigned char *y, int64_t n, const double sw[2], double Cp,
                               double v, double d)
{
    double f = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double t = y[i] ? 1.0 : -1.0;
        f += sw[y[i]] * softplus(-t * (v * (double)x[i] + d));
    }
    return Cp * f + 0.5 * v * v;
}

bool metrics_logreg_fit(const float *x, const unsigned char *y, int64_t n, double C, bool multinomial, LogReg *out)
{
    memset(out, 0, sizeof *out);
    out->C = C;
    out->multinomial = multinomial;
    int64_t cnt[2] = {0, 0};
    for (int64_t i = 0; i < n; i++) {
        UL_CHECK(y[i] <= 1, "metrics_logreg_fit: label %d at %lld is not 0 or 1", (int)y[i], (long long)i);
        cnt[y[i]]++;
    }
    out->n_member = cnt[1];
    out->n_nonmember = cnt[0];
    if (cnt[0] == 0 || cnt[1] == 0 || !(C > 0)) return false;
    /* sklearn's compute_class_weight("balanced"): n_samples / (n_classes * bincount) */
    const double sw[2] = {(double)n / (2.0 * (double)cnt[0]), (double)n / (2.0 * (double)cnt[1])};
    const double Cp = multinomial ? 2.0 * C : C;
    const double tol = LOGREG_TOL * (1.0 + Cp * (double)n);
    double v = 0.0, d = 0.0;
    double f = logreg_objective(x, y, n, sw, Cp, v, d);
    for (int it = 0; it < LOGREG_MAX_ITERS; it++) {
        double gv = 0, gd = 0, hvv = 0, hvd = 0, hdd = 0;
        for (int64_t i = 0; i < n; i++) {
            double xi = (double)x[i], t = y[i] ? 1.0 : -1.0, s = sw[y[i]];
            double z = v * xi + d;
            double r = sigmoid(-t * z);          /* d softplus(-t z) / dz = -t r */
            double pq = sigmoid(z) * sigmoid(-z); /* the curvature p (1 - p) */
            gv += s * -t * r * xi;
            gd += s * -t * r;
            hvv += s * pq * xi * xi;
            hvd += s * pq * xi;
            hdd += s * pq;
        }
        gv = Cp * gv + v;
        gd = Cp * gd;
        hvv = Cp * hvv + 1.0;
        hvd = Cp * hvd;
        hdd = Cp * hdd;
        out->iterations = it;
        if (fmax(fabs(gv), fabs(gd)) < tol) {
            out->converged = true;
            break;
        }
        double det = hvv * hdd - hvd * hvd;
        double sv, sd; /* Newton step -H^-1 g, or steepest descent when H is numerically singular */
        if (det > 1e-300 && isfinite(det)) {
            sv = -(hdd * gv - hvd * gd) / det;
            sd = -(-hvd * gv + hvv * gd) / det;
        } else {
            sv = -gv;
            sd = -gd;
        }
        /* -slope is the Newton decrement lambda^2: twice the decrease a full step predicts. Below the resolution
           of f (a few ulps) the objective cannot judge a step any more: the full Newton step is taken (we are in
           its quadratic region) and the fit has converged. */
        double slope = gv * sv + gd * sd, step = 1.0, fn = f;
        bool resolved = -slope > 1e-13 * (1.0 + fabs(f));
        if (resolved) {
            for (int ls = 0; ls < 60; ls++) { /* Armijo backtracking */
                fn = logreg_objective(x, y, n, sw, Cp, v + step * sv, d + step * sd);
                if (fn <= f + 1e-4 * step * slope) break;
                step *= 0.5;
            }
            if (!(fn <= f)) break; /* no descent at all: a numerically singular or broken problem */
        }
        v += step * sv;
        d += step * sd;
        f = resolved ? fn : logreg_objective(x, y, n, sw, Cp, v, d);
        out->iterations = it + 1;
        if (!resolved) {
            out->converged = true;
            break;
        }
    }
    /* sklearn's reported coefficients: the binary (v, d), or the class-1 row (v/2, d/2) of the multinomial fit */
    out->coef = multinomial ? v / 2.0 : v;
    out->intercept = multinomial ? d / 2.0 : d;
    return out->converged;
}

int metrics_logreg_predict(const LogReg *fit, double x) { return fit->coef * x + fit->intercept > 0.0 ? 1 : 0; }

double metrics_mia(const float *member, int64_t nm, const float *nonmember, int64_t nn, const float *target,
                   int64_t nt, double C, bool multinomial, LogReg *fit)
{
    LogReg local;
    LogReg *f = fit ? fit : &local;
    memset(f, 0, sizeof *f);
    if (nm <= 0 || nn <= 0 || nt <= 0) return NAN;
    size_t n = ul_add_size((size_t)nm, (size_t)nn);
    float *x = UL_MALLOC(ul_mul_size(n, sizeof(float)));
    unsigned char *y = UL_MALLOC(n);
    memcpy(x, member, (size_t)nm * sizeof(float));
    memcpy(x + nm, nonmember, (size_t)nn * sizeof(float));
    memset(y, 1, (size_t)nm);
    memset(y + nm, 0, (size_t)nn);
    metrics_logreg_fit(x, y, (int64_t)n, C, multinomial, f);
    free(x);
    free(y);
    int64_t hits = 0;
    for (int64_t i = 0; i < nt; i++) hits += metrics_logreg_predict(f, (double)target[i]);
    return 100.0 * (double)hits / (double)nt;
}

double metrics_avg_gap(const double *m, const double *rt, int k)
{
    if (k <= 0) return NAN;
    double s = 0.0;
    for (int i = 0; i < k; i++) {
        if (isnan(m[i]) || isnan(rt[i])) return NAN;
        s += fabs(m[i] - rt[i]);
    }
    return s / (double)k;
}
