/* eval.c - accuracies, MIA, KL to RT and Avg.Gap of a model on the job's sets, and `unlearn eval`; see
   include/eval.h. */
#include "eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

enum { EVAL_MODEL = 0, EVAL_RT = 1, EVAL_MAX_MODELS = 2 };

/* One evaluation set: samples idx[0..n) of a split (idx NULL: 0..n-1). */
typedef struct EvalSet {
    DataSplitId split;
    const int64_t *idx;
    int64_t n;
} EvalSet;

/* What one pass over a set accumulates, per model (entries may be NULL when not wanted). */
typedef struct EvalAcc {
    int64_t correct[EVAL_MAX_MODELS];
    float *entropy[EVAL_MAX_MODELS];     /* [set n] at global positions (zeroed; other ranks' entries stay 0) */
    int64_t *class_correct[EVAL_MAX_MODELS]; /* [K] */
    int64_t *class_total;                /* [K] */
    double kl_sum;                       /* sum over samples of KL(p_rt || p_model); needs both models */
    bool want_kl;
} EvalAcc;

/* Local (no collectives: eval-mode forwards). This rank's contiguous part of the set, in batches. */
static void eval_pass(Job *job, Model *const *models, int nmodels, const EvalSet *set, EvalAcc *acc,
                      float *logits0 /* [B, K] */)
{
    const int K = job->data.num_classes;
    const int64_t B = job->cfg->eval.batch_size;
    int64_t off = 0, cnt = 0;
    data_rank_part(set->n, job->rank, job->nranks, &off, &cnt);
    for (int64_t s = 0; s < cnt; s += B) {
        int64_t b = cnt - s < B ? cnt - s : B;
        for (int64_t i = 0; i < b; i++) job->bidx[i] = set->idx ? set->idx[off + s + i] : off + s + i;
        job_load_batch(job, set->split, job->bidx, b, 0, false);
        dist_timer_start(&job->timers, DIST_PHASE_COMPUTE);
        if (acc->class_total)
            for (int64_t i = 0; i < b; i++) acc->class_total[job->by[i]]++;
        for (int k = 0; k < nmodels; k++) {
            Tensor *lg = job_forward(job, models[k], b, false, false); /* [b, K] */
            UL_CHECK(lg->ndim == 2 && lg->shape[1] == K, "eval: the model returned logits of %d columns, %d classes",
                     lg->shape[lg->ndim - 1], K);
            for (int64_t i = 0; i < b; i++) {
                const float *row = lg->data + i * K;
                int y = job->by[i];
                int hit = metrics_argmax(row, K) == y;
                acc->correct[k] += hit;
                if (acc->class_correct[k]) acc->class_correct[k][y] += hit;
                if (acc->entropy[k]) acc->entropy[k][s + i + off] = (float)metrics_entropy(row, K);
            }
            if (acc->want_kl && k == EVAL_MODEL)
                memcpy(logits0, lg->data, (size_t)b * (size_t)K * sizeof(float));
            if (acc->want_kl && k == EVAL_RT)
                for (int64_t i = 0; i < b; i++)
                    acc->kl_sum += metrics_kl_row(lg->data + i * K, logits0 + i * K, K);
        }
        dist_timer_stop(&job->timers, DIST_PHASE_COMPUTE);
    }
}

static double pct(int64_t hits, int64_t n) { return n > 0 ? 100.0 * (double)hits / (double)n : NAN; }

/* COLLECTIVE. Sums the pass's counters, entropies and KL over ranks. */
static void eval_combine(Job *job, EvalAcc *acc, int nmodels, int64_t n, int K)
{
    dist_timer_start(&job->timers, DIST_PHASE_ALLREDUCE);
    dist_allreduce_sum_int64(acc->correct, EVAL_MAX_MODELS);
    for (int k = 0; k < nmodels; k++) {
        if (acc->entropy[k]) dist_allreduce_sum_float(acc->entropy[k], (size_t)n);
        if (acc->class_correct[k]) dist_allreduce_sum_int64(acc->class_correct[k], (size_t)K);
    }
    if (acc->class_total) dist_allreduce_sum_int64(acc->class_total, (size_t)K);
    if (acc->want_kl) dist_allreduce_sum_double(&acc->kl_sum, 1);
    dist_timer_stop(&job->timers, DIST_PHASE_ALLREDUCE);
}

void eval_model(Job *job, Model *m, Model *rt, EvalResult *out)
{
    const Config *cfg = job->cfg;
    const int K = job->data.num_classes;
    const DataSplit *tr = &job->data.split[DATA_TRAIN], *te = &job->data.split[DATA_TEST];
    double t0 = ul_now();
    memset(out, 0, sizeof *out);
    out->num_classes = K;
    out->has_forget = job->has_split;
    out->class_split = job->has_split && cfg->split.kind == SPLIT_CLASSES;
    out->mia_on = cfg->eval.mia;
    out->has_rt = rt != NULL;
    out->kl_to_rt = NAN;
    out->avg_gap = NAN;
    Model *models[EVAL_MAX_MODELS] = {m, rt};
    const int nmodels = rt ? 2 : 1;
    EvalModelMetrics *mm[EVAL_MAX_MODELS] = {&out->model, &out->rt};
    for (int k = 0; k < EVAL_MAX_MODELS; k++) {
        EvalModelMetrics *e = mm[k];
        e->forget_acc = e->retain_acc = e->test_acc = e->test_acc_remaining = NAN;
        e->mia = e->mia_remaining = NAN;
    }

    EvalSet forget = {DATA_TRAIN, job->has_split ? job->split.forget : NULL, job->has_split ? job->split.nforget : 0};
    EvalSet retain = {DATA_TRAIN, job->has_split ? job->split.retain : NULL,
                      job->has_split ? job->split.nretain : tr->n};
    EvalSet test = {DATA_TEST, NULL, te->n};
    out->n_forget = forget.n;
    out->n_retain = retain.n;
    out->n_test = test.n;
    const bool mia = cfg->eval.mia && forget.n > 0;

    job_reserve_batch(job, cfg->eval.batch_size);
    float *logits0 = UL_MALLOC(ul_mul_size(ul_mul_size((size_t)cfg->eval.batch_size, (size_t)K), sizeof(float)));
    EvalAcc acc_f, acc_r, acc_t;
    memset(&acc_f, 0, sizeof acc_f);
    memset(&acc_r, 0, sizeof acc_r);
    memset(&acc_t, 0, sizeof acc_t);
    for (int k = 0; k < nmodels; k++) {
        if (mia) {
            acc_f.entropy[k] = UL_CALLOC((size_t)forget.n, sizeof(float));
            acc_r.entropy[k] = UL_CALLOC((size_t)retain.n, sizeof(float));
            acc_t.entropy[k] = UL_CALLOC((size_t)test.n, sizeof(float));
        }
        acc_t.class_correct[k] = UL_CALLOC((size_t)K, sizeof(int64_t));
    }
    acc_t.class_total = UL_CALLOC((size_t)K, sizeof(int64_t));
    acc_f.want_kl = rt != NULL;

    /* the passes (local), then one combine each (collective) */
    if (forget.n > 0) eval_pass(job, models, nmodels, &forget, &acc_f, logits0);
    eval_pass(job, models, nmodels, &retain, &acc_r, logits0);
    eval_pass(job, models, nmodels, &test, &acc_t, logits0);
    if (forget.n > 0) eval_combine(job, &acc_f, nmodels, forget.n, K);
    eval_combine(job, &acc_r, nmodels, retain.n, K);
    eval_combine(job, &acc_t, nmodels, test.n, K);

    /* the remaining classes: all but the forgotten ones of a class split */
    unsigned char *forgotten = UL_CALLOC((size_t)K, 1);
    if (out->class_split)
        for (int i = 0; i < cfg->split.nclasses; i++) forgotten[cfg->split.classes[i]] = 1;
    int64_t n_rem = 0;
    for (int c = 0; c < K; c++)
        if (!forgotten[c]) n_rem += acc_t.class_total[c];
    out->n_test_remaining = n_rem;
    float *ent_rem = mia ? UL_MALLOC(ul_mul_size((size_t)(n_rem > 0 ? n_rem : 1), sizeof(float))) : NULL;

    for (int k = 0; k < nmodels; k++) {
        EvalModelMetrics *e = mm[k];
        if (forget.n > 0) e->forget_acc = pct(acc_f.correct[k], forget.n);
        e->retain_acc = pct(acc_r.correct[k], retain.n);
        e->test_acc = pct(acc_t.correct[k], test.n);
        e->per_class_test_acc = UL_MALLOC((size_t)K * sizeof(double));
        int64_t hit_rem = 0;
        for (int c = 0; c < K; c++) {
            e->per_class_test_acc[c] = pct(acc_t.class_correct[k][c], acc_t.class_total[c]);
            if (!forgotten[c]) hit_rem += acc_t.class_correct[k][c];
        }
        e->test_acc_remaining = pct(hit_rem, n_rem);
        if (mia) {
            e->mia = metrics_mia(acc_r.entropy[k], retain.n, acc_t.entropy[k], test.n, acc_f.entropy[k], forget.n,
                                 METRICS_LOGREG_C, true, &e->mia_fit);
            if (out->class_split) {
                int64_t j = 0;
                for (int64_t i = 0; i < test.n; i++)
                    if (!forgotten[te->labels[i]]) ent_rem[j++] = acc_t.entropy[k][i];
                e->mia_remaining = metrics_mia(acc_r.entropy[k], retain.n, ent_rem, n_rem, acc_f.entropy[k],
                                               forget.n, METRICS_LOGREG_C, true, &e->mia_fit_remaining);
            } else {
                e->mia_remaining = e->mia;
                e->mia_fit_remaining = e->mia_fit;
            }
        }
    }
    if (rt && forget.n > 0) {
        out->kl_to_rt = acc_f.kl_sum / (double)forget.n;
        const double a[4] = {out->model.forget_acc, out->model.retain_acc, out->model.test_acc, out->model.mia};
        const double b[4] = {out->rt.forget_acc, out->rt.retain_acc, out->rt.test_acc, out->rt.mia};
        out->avg_gap = metrics_avg_gap(a, b, 4);
    }

    for (int k = 0; k < EVAL_MAX_MODELS; k++) {
        free(acc_f.entropy[k]);
        free(acc_r.entropy[k]);
        free(acc_t.entropy[k]);
        free(acc_t.class_correct[k]);
    }
    free(acc_t.class_total);
    free(forgotten);
    free(ent_rem);
    free(logits0);
    out->seconds = ul_now() - t0;
    dist_allreduce_max_double(&out->seconds, 1);
}

double eval_accuracy(Job *job, Model *m, DataSplitId s, const int64_t *idx, int64_t n)
{
    job_reserve_batch(job, job->cfg->eval.batch_size);
    EvalSet set = {s, idx, n};
    EvalAcc acc;
    memset(&acc, 0, sizeof acc);
    Model *models[1] = {m};
    eval_pass(job, models, 1, &set, &acc, NULL);
    eval_combine(job, &acc, 1, n, job->data.num_classes);
    return pct(acc.correct[EVAL_MODEL], n);
}

void eval_result_free(EvalResult *r)
{
    free(r->model.per_class_test_acc);
    free(r->rt.per_class_test_acc);
    r->model.per_class_test_acc = NULL;
    r->rt.per_class_test_acc = NULL;
}

/* ", \"key\": value" (null for NAN) */
static size_t put_num(char *buf, size_t cap, size_t k, const char *key, double v)
{
    if (k >= cap) return k;
    int w = isfinite(v) ? snprintf(buf + k, cap - k, ", \"%s\": %.10g", key, v)
                        : snprintf(buf + k, cap - k, ", \"%s\": null", key);
    return w > 0 ? k + (size_t)w : k;
}

void eval_metrics_line(Job *job, int64_t iter, const EvalResult *r)
{
    if (job->rank != 0) return;
    char buf[2048];
    size_t k = 0;
    int w = iter >= 0 ? snprintf(buf, sizeof buf, "\"event\": \"eval\", \"iter\": %lld", (long long)iter)
                      : snprintf(buf, sizeof buf, "\"event\": \"eval\", \"iter\": null");
    k = w > 0 ? (size_t)w : 0;
    k = put_num(buf, sizeof buf, k, "forget_acc", r->model.forget_acc);
    k = put_num(buf, sizeof buf, k, "retain_acc", r->model.retain_acc);
    k = put_num(buf, sizeof buf, k, "test_acc", r->model.test_acc);
    k = put_num(buf, sizeof buf, k, "test_acc_remaining", r->model.test_acc_remaining);
    k = put_num(buf, sizeof buf, k, "mia", r->model.mia);
    k = put_num(buf, sizeof buf, k, "mia_remaining", r->model.mia_remaining);
    k = put_num(buf, sizeof buf, k, "kl_to_rt", r->kl_to_rt);
    k = put_num(buf, sizeof buf, k, "avg_gap", r->avg_gap);
    k = put_num(buf, sizeof buf, k, "time", ul_now() - job->t_start);
    job_metrics_line(job, buf);
}

int cmd_eval(int argc, char **argv)
{
    Job job;
    job_open(&job, argc, argv, "eval");
    const Config *cfg = job.cfg;
    Model *rt = cfg->eval.rt_checkpoint[0] ? job_load_model(&job, cfg->eval.rt_checkpoint, "eval.rt_checkpoint")
                                           : NULL;
    Report *rep = report_begin(&job);
    EvalResult r;
    eval_model(&job, job.model, rt, &r);
    eval_metrics_line(&job, -1, &r);
    report_set_eval(rep, &r);
    report_write(rep, &job);
    report_print_table(rep, &job);
    report_free(rep);
    eval_result_free(&r);
    model_free(rt);
    job_close(&job);
    return 0;
}
