/*
 * metrics.h - the numbers of an unlearning evaluation, computed from logits and per-sample features
 * (shared/reference/sfr-on.md §3.1). Pure, local functions: no communication, no allocation except where said.
 *
 *   accuracy        top-1 (first maximal logit, as torch.argmax), in percent
 *   entropy         H(softmax(z)) = -sum_c p_c log p_c (terms with p_c = 0 count 0), in nats: the MIA feature
 *   KL(RT || model) sum_c p_c (log(p_c + 1e-20) - log(q_c + 1e-20)) with p = softmax(z_rt), q = softmax(z_model)
 *                   (evaluation/js_div.py of the reference; computed here in double)
 *   MIA             a logistic regression on the 1-D entropy feature, members (1) against non-members (0), balanced
 *                   class weights n / (2 n_c), L2 penalty C on the coefficient (not the intercept), as
 *                   sklearn.linear_model.LogisticRegression(class_weight="balanced", solver="lbfgs",
 *                   multi_class="multinomial") fits it in the reference (evaluation/mia.py). The reported value is
 *                   the percentage of target (forget) samples predicted member.
 *   Avg.Gap         mean over k metrics of |metric - RT metric|
 *
 * Multinomial vs binary: with two classes, sklearn's multinomial fit has one weight row per class, both penalised;
 * its optimum is symmetric (w_0 = -w_1), so it equals the binary fit with penalty C' = 2C on the difference
 * v = w_1 - w_0, and sklearn reports coef_ = v / 2, intercept_ = d / 2 (the class-1 row). metrics_logreg_fit
 * solves the binary problem exactly (Newton's method in double on 2 parameters) and returns sklearn's coef_ and
 * intercept_ for the variant asked for; a sample is predicted member when coef * x + intercept > 0 in both.
 *
 * Example:
 *     LogReg fit;
 *     double mia = metrics_mia(ent_retain, nr, ent_test, nt, ent_forget, nf, 1.0, true, &fit);   // percent
 */
#ifndef UL_METRICS_H
#define UL_METRICS_H

#include <stdbool.h>
#include <stdint.h>

/* The KL floor inside the logs (the reference's 1e-20). */
#define METRICS_KL_EPS 1e-20
/* sklearn's LogisticRegression default inverse regularisation strength. */
#define METRICS_LOGREG_C 1.0

/* logits [C] -> p [C] = softmax, in double (max-shifted). */
void metrics_softmax(const float *logits, int C, double *p);
/* Entropy in nats of softmax(logits [C]); 0 <= H <= log C. */
double metrics_entropy(const float *logits, int C);
/* Index of the first maximal logit of logits [C] (NaN never wins over a number). */
int metrics_argmax(const float *logits, int C);
/* KL(softmax(logits_p) || softmax(logits_q)) of one sample, both [C], with METRICS_KL_EPS inside the logs. */
double metrics_kl_row(const float *logits_p, const float *logits_q, int C);

/* A fitted 1-D logistic regression in sklearn's convention: decision(x) = coef * x + intercept. */
typedef struct LogReg {
    double coef, intercept;      /* sklearn's coef_[0, 0] and intercept_[0] */
    double C;                    /* the inverse regularisation strength asked for */
    bool multinomial;            /* multi_class="multinomial" (true, the reference) or binary/ovr (false) */
    int iterations;              /* Newton iterations used */
    bool converged;              /* |gradient| fell below tolerance */
    int64_t n_member, n_nonmember;
} LogReg;

/*
 * Fits the balanced, L2-penalised logistic regression of labels y [n] (0 or 1) on x [n]:
 *     minimise  C' * sum_i s_i * log(1 + exp(-t_i (v x_i + d))) + v^2 / 2,   t_i = 2 y_i - 1,
 *     s_i = n / (2 n_{y_i}),  C' = C (binary) or 2C (multinomial),
 * by Newton's method with a backtracking line search from (0, 0) in double; converged when the gradient's max norm
 * is below 1e-10 * (1 + C' n) or the Newton decrement (the decrease a full step predicts) falls below the objective's
 * double resolution, 1e-13 * (1 + |f|) (then one last full Newton step is taken); at most 100 iterations. Both
 * classes must be present (n_0, n_1 >= 1); returns false (out->converged false, coefficients 0) otherwise.
 * Fills *out in sklearn's convention (see above).
 */
bool metrics_logreg_fit(const float *x, const unsigned char *y, int64_t n, double C, bool multinomial, LogReg *out);
/* 1 when the fit predicts member for feature x (decision > 0, as sklearn's predict), else 0. */
int metrics_logreg_predict(const LogReg *fit, double x);

/*
 * The MIA number of sfr-on.md §3.1: fits metrics_logreg_fit on member [nm] (label 1) and nonmember [nn] (label 0)
 * features, and returns the percentage of target [nt] features predicted member (NAN when nm, nn or nt is 0).
 * *fit (may be NULL) receives the attack. Allocates a temporary [nm + nn] copy.
 */
double metrics_mia(const float *member, int64_t nm, const float *nonmember, int64_t nn, const float *target,
                   int64_t nt, double C, bool multinomial, LogReg *fit);

/* Mean of |m[i] - rt[i]| over i < k (NAN when any value is NAN, or k = 0). */
double metrics_avg_gap(const double *m, const double *rt, int k);

#endif
