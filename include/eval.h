/*
 * eval.h - `unlearn eval JOB.yaml` and the evaluation every command ends with (sfr-on.md §3.1, §9).
 *
 * For a model (and optionally the retrained reference RT) on the job's sets:
 *   forget_acc (FA)        top-1 accuracy on the forget set D_f                        [%]
 *   retain_acc (RA)        on the retain set D_r (the whole train set when the job has no forget set)   [%]
 *   test_acc (TA)          on the whole test set; per_class_test_acc[k] on its class-k samples          [%]
 *   test_acc_remaining     on the test samples of the classes not forgotten (class forgetting; = test_acc
 *                          for other splits, whose remaining classes are all classes)                 [%]
 *   mia                    entropy MIA (metrics.h): members = D_r, non-members = the whole test set,
 *                          the share of D_f predicted member                                           [%]
 *   mia_remaining          the same with non-members = the test samples of the remaining classes only
 *                          (§9: removes the class confound of class forgetting; = mia for other splits) [%]
 *   kl_to_rt               mean over D_f of KL(p_RT || p_model) (needs RT)                            [nats]
 *   avg_gap                mean of |metric - RT metric| over FA, RA, TA, MIA (needs RT)                [%]
 * A value that does not apply (no forget set, eval.mia false, no RT) is NAN, written as null in report.json.
 *
 * Evaluation runs the models in eval mode (BatchNorm running statistics, no dropout, no tape recording), in
 * batches of eval.batch_size, sharded over the ranks: each rank evaluates a contiguous part of every set, and the
 * counts, per-sample entropies (written at their global positions into zeroed arrays) and KL sums are combined by
 * allreduce, so every rank ends with the same EvalResult whatever the rank count.
 *
 *     EvalResult r;
 *     eval_model(&job, model, rt_or_NULL, &r);      // COLLECTIVE
 *     report_set_eval(rep, &r);
 *     eval_result_free(&r);
 */
#ifndef UL_EVAL_H
#define UL_EVAL_H

#include "job.h"
#include "metrics.h"

/* The metrics of one model. Percentages; NAN where they do not apply. */
typedef struct EvalModelMetrics {
    double forget_acc, retain_acc, test_acc, test_acc_remaining;
    double mia, mia_remaining;
    double *per_class_test_acc;   /* [num_classes], owned (NAN for a class with no test sample) */
    LogReg mia_fit, mia_fit_remaining;  /* the fitted attacks (coefficients for the record) */
} EvalModelMetrics;

typedef struct EvalResult {
    int num_classes;
    bool has_forget;              /* the job names a forget set */
    bool class_split;             /* ... by classes (then "remaining" excludes them) */
    bool mia_on;                  /* eval.mia */
    bool has_rt;                  /* rt was given: rt, kl_to_rt and avg_gap are filled */
    int64_t n_forget, n_retain, n_test, n_test_remaining;
    EvalModelMetrics model, rt;
    double kl_to_rt;              /* nats, NAN without RT or forget set */
    double avg_gap;               /* percent points, NAN unless FA, RA, TA, MIA and their RT values all exist */
    double seconds;               /* wall time of the evaluation (max over ranks) */
} EvalResult;

/* COLLECTIVE. Evaluates m (and rt when not NULL) on the job's forget, retain and test sets as described above.
   Uses job->bx/by/bidx (grown to eval.batch_size) and the job's tape in eval mode; m and rt are not modified.
   Timed as DIST_PHASE_COMPUTE (forward), DIST_PHASE_IO (reads) and DIST_PHASE_ALLREDUCE (combining). */
void eval_model(Job *job, Model *m, Model *rt, EvalResult *out);
void eval_result_free(EvalResult *r);
/* COLLECTIVE. Top-1 accuracy (percent; NAN when n = 0) of m in eval mode on samples idx[0..n) of split s (idx NULL:
   0..n-1), sharded over the ranks like eval_model. */
double eval_accuracy(Job *job, Model *m, DataSplitId s, const int64_t *idx, int64_t n);
/* Rank 0 appends the result to metrics.jsonl as {"event": "eval", "iter": iter, "forget_acc": ..., ...} (the
   scalar metrics of docs/report.md; iter -1 is written as null). Other ranks: no-op. */
void eval_metrics_line(Job *job, int64_t iter, const EvalResult *r);

/* `unlearn eval JOB.yaml [--set k=v]...`: loads model.checkpoint (and eval.rt_checkpoint when given), evaluates,
   writes <run_dir>/report.json and metrics.jsonl's eval line, prints the table (rank 0). Returns 0. */
int cmd_eval(int argc, char **argv);

#endif
