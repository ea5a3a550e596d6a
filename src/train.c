/* train.c - `unlearn train`: data-parallel training of the original model or of RT; see include/train.h. */
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "job.h"
#include "metrics.h"
#include "optim.h"
#include "report.h"
#include "rng.h"
#include "runctl.h"

#define TRAIN_STREAM_DROPOUT 0x747261696e64726fULL /* "traindro": per-step dropout seeds */
#define TRAIN_EXIT_BAD_INPUT 2
#define TRAIN_MAX_STATES 2

/* The training pool: train indices (all, or the retain set) below train.subset when it is > 0. *pool is malloc'd,
   or NULL for the identity 0..n-1. */
static int64_t training_pool(const Job *job, int64_t **pool)
{
    const Config *cfg = job->cfg;
    const int64_t ntrain = job->data.split[DATA_TRAIN].n;
    const bool retain = cfg->train.on == TRAIN_ON_RETAIN;
    const int64_t limit = cfg->train.subset > 0 && cfg->train.subset < ntrain ? cfg->train.subset : ntrain;
    *pool = NULL;
    if (!retain) return limit; /* identity 0..limit-1 */
    int64_t n = 0;
    *pool = UL_MALLOC(ul_mul_size((size_t)(job->split.nretain > 0 ? job->split.nretain : 1), sizeof(int64_t)));
    for (int64_t i = 0; i < job->split.nretain; i++)
        if (job->split.retain[i] < limit) (*pool)[n++] = job->split.retain[i];
    return n;
}

/* The optimizer configuration of train.*; validated (err names the keys). */
static OptimConfig train_optim_config(const Config *cfg, UlError *err)
{
    OptimConfig oc = optim_config_default(cfg->train.optimizer);
    oc.lr = cfg->train.lr;
    oc.weight_decay = cfg->train.weight_decay;
    if (cfg->train.optimizer == OPTIM_SGD) {
        oc.momentum = cfg->train.momentum;
    } else {
        oc.beta1 = cfg->train.beta1;
        oc.beta2 = cfg->train.beta2;
    }
    char where[CFG_STRING_MAX + 32];
    snprintf(where, sizeof where, "%s: train", cfg->job_path);
    optim_config_check(&oc, where, err);
    return oc;
}

/* The optimizer states a checkpoint carries for this configuration (the same list on every rank; data NULL on
   ranks that do not step). */
static int optim_states(const OptimConfig *oc, const Optim *o, bool steps_here, JobState *st)
{
    int n = 0;
    bool has_m = oc->kind != OPTIM_SGD || oc->momentum > 0.0;
    if (has_m) st[n++] = (JobState){"m", steps_here ? o->m : NULL};
    if (oc->kind != OPTIM_SGD) st[n++] = (JobState){"v", steps_here ? o->v : NULL};
    return n;
}

int cmd_train(int argc, char **argv)
{
    Job job;
    job_open(&job, argc, argv, "train");
    const Config *cfg = job.cfg;
    Model *m = job.model;
    const size_t P = m->params.total;
    UlError err = {0};
    char where[CFG_STRING_MAX + 64];

    /* what to train on */
    if (cfg->train.on == TRAIN_ON_RETAIN && !job.has_split)
        ul_error_set(&err, "%s: train.on: retain trains RT on the retain set and needs the forget set (forget.classes, "
                     "forget.fraction or forget.indices)", config_where(cfg, "train.on", where, sizeof where));
    if (!err.failed && cfg->train.subset > job.data.split[DATA_TRAIN].n)
        ul_error_set(&err, "%s: train.subset: %d exceeds the %lld train samples of %s",
                     config_where(cfg, "train.subset", where, sizeof where), cfg->train.subset,
                     (long long)job.data.split[DATA_TRAIN].n, cfg->data.path);
    int64_t *pool = NULL;
    int64_t npool = err.failed ? 0 : training_pool(&job, &pool);
    const int64_t G = cfg->train.batch_size;
    if (!err.failed && G > npool)
        ul_error_set(&err, "%s: train.batch_size: %lld is larger than the %lld training samples (every step needs a "
                     "full global batch)", config_where(cfg, "train.batch_size", where, sizeof where),
                     (long long)G, (long long)npool);
    if (!err.failed && G < job.nranks)
        ul_error_set(&err, "%s: train.batch_size: %lld is smaller than the number of ranks (%d): every rank needs at "
                     "least one sample per step", config_where(cfg, "train.batch_size", where, sizeof where),
                     (long long)G, job.nranks);
    OptimConfig oc = err.failed ? optim_config_default(OPTIM_SGD) : train_optim_config(cfg, &err);
    if (dist_agree_error(&err)) dist_exit(TRAIN_EXIT_BAD_INPUT);

    const bool rank0_mode = cfg->runtime.dist_mode == DIST_MODE_RANK0 && job.nranks > 1;
    const bool steps_here = !rank0_mode || job.rank == 0;
    Optim opt;
    memset(&opt, 0, sizeof opt);
    if (steps_here) optim_init(&opt, &oc, P);
    JobState states[TRAIN_MAX_STATES];
    int nstates = optim_states(&oc, &opt, steps_here, states);

    DataSampler sampler;
    data_sampler_init(&sampler, pool, npool, G, (uint64_t)cfg->seed, true, true);
    const int64_t nb = data_sampler_batches(&sampler);
    const int64_t T = (int64_t)cfg->train.epochs * nb;
    job_reserve_batch(&job, data_sampler_local_max(&sampler, job.nranks));
    float *w = UL_MALLOC(ul_mul_size((size_t)job.batch_cap, sizeof(float)));

    int64_t step0 = 0;
    if (job.resume) {
        int64_t e0 = 0, b0 = 0;
        job_load_checkpoint(&job, m, job.checkpoint_path, states, nstates, &step0, &e0, &b0);
        if (step0 < 0 || step0 > T || e0 != step0 / nb || b0 != step0 % nb)
            ul_error_set(&err, "%s: step %lld (epoch %lld, batch %lld) does not fit this job's %lld steps of %lld "
                         "batches", job.checkpoint_path, (long long)step0, (long long)e0, (long long)b0, (long long)T,
                         (long long)nb);
        if (dist_agree_error(&err)) dist_exit(TRAIN_EXIT_BAD_INPUT);
        if (steps_here) opt.step = step0;
        if (job.rank == 0) runctl_log_resumed(step0, job.checkpoint_path);
    }
    if (job.rank == 0) {
        printf("unlearn train '%s': %s, %zu parameters, %lld samples (%s), %lld steps of %lld over %d epochs, "
               "%d rank(s) x %d thread(s), %s mode\n", cfg->name, m->spec.arch, P, (long long)npool,
               cfg->train.on == TRAIN_ON_RETAIN ? "retain set" : "train set", (long long)T, (long long)G,
               cfg->train.epochs, job.nranks, job.threads,
               config_enum_name("runtime.dist_mode", (int)cfg->runtime.dist_mode));
        fflush(stdout);
    }

    double ep_loss = 0.0, ep_correct = 0.0, last_epoch_loss = NAN, last_epoch_acc = NAN;
    int64_t ep_n = 0;
    double t_loop = ul_now();
    for (int64_t step = step0; step < T; step++) {
        const int64_t epoch = step / nb, b = step % nb;
        int64_t n = data_sampler_local(&sampler, epoch, b, job.rank, job.nranks, job.bidx);
        const int64_t Gb = data_sampler_batch_size(&sampler, b);
        job.step_seed = rng_u64((uint64_t)cfg->seed, TRAIN_STREAM_DROPOUT, (uint64_t)step);
        job_load_batch(&job, DATA_TRAIN, job.bidx, n, epoch, true);

        /* forward and backward of the local part; seeds 1/G so the rank sum is the global-batch mean's gradient */
        dist_timer_start(&job.timers, DIST_PHASE_COMPUTE);
        memset(m->grad, 0, P * sizeof(float));
        Tensor *logits = job_forward(&job, m, n, true, true);         /* [n, K] */
        Tensor *loss = op_cross_entropy(&job.tape, logits, job.by);  /* [n] */
        for (int64_t i = 0; i < n; i++) w[i] = 1.0f / (float)Gb;
        tape_backward(&job.tape, loss, w);
        double stat[2] = {0.0, 0.0}; /* loss sum, correct count */
        const int K = logits->shape[1];
        for (int64_t i = 0; i < n; i++) {
            stat[0] += loss->data[i];
            stat[1] += metrics_argmax(logits->data + i * K, K) == job.by[i];
        }
        dist_timer_stop(&job.timers, DIST_PHASE_COMPUTE);
        dist_timer_start(&job.timers, DIST_PHASE_ALLREDUCE);
        dist_allreduce_sum_double(stat, 2);
        dist_timer_stop(&job.timers, DIST_PHASE_ALLREDUCE);
        job_reduce_grad(&job, m, false);

        /* every rank agrees on non-finite values and stop requests before anyone steps */
        const double loss_mean = stat[0] / (double)Gb;
        double gnorm = steps_here ? grad_global_norm(m->grad, P) : NAN;
        unsigned local = !isfinite(loss_mean) || (steps_here && !isfinite(gnorm)) ? RUNCTL_NONFINITE : 0u;
        unsigned flags = job_agree_step(&job, step, local, "train", gnorm);

        const double lr = sched_value(cfg->train.schedule, cfg->train.lr, step, T);
        if (steps_here) {
            DistPhase ph = rank0_mode ? DIST_PHASE_RANK0 : DIST_PHASE_COMPUTE;
            dist_timer_start(&job.timers, ph);
            optim_step(&opt, m->param, m->grad, lr);
            dist_timer_stop(&job.timers, ph);
        }
        if (rank0_mode) job_bcast_model(&job, m);

        char line[512];
        snprintf(line, sizeof line,
                 "\"event\": \"step\", \"step\": %lld, \"epoch\": %lld, \"batch\": %lld, \"loss\": %.8g, "
                 "\"acc\": %.6g, \"lr\": %.8g, \"grad_norm\": %.8g, \"time\": %.4f",
                 (long long)step, (long long)epoch, (long long)b, loss_mean, 100.0 * stat[1] / (double)Gb, lr, gnorm,
                 ul_now() - job.t_start);
        job_metrics_line(&job, line);
        ep_loss += stat[0];
        ep_correct += stat[1];
        ep_n += Gb;
        if (b == nb - 1) {
            last_epoch_loss = ep_loss / (double)ep_n;
            last_epoch_acc = 100.0 * ep_correct / (double)ep_n;
            snprintf(line, sizeof line,
                     "\"event\": \"epoch\", \"epoch\": %lld, \"step\": %lld, \"loss\": %.8g, \"acc\": %.6g, "
                     "\"samples\": %lld, \"lr\": %.8g, \"time\": %.4f",
                     (long long)epoch, (long long)step, last_epoch_loss, last_epoch_acc, (long long)ep_n, lr,
                     ul_now() - job.t_start);
            job_metrics_line(&job, line);
            ep_loss = ep_correct = 0.0;
            ep_n = 0;
            int every = cfg->checkpoint.every; /* epochs; 0 = only at the end */
            if ((every > 0 && (epoch + 1) % every == 0) || epoch + 1 == cfg->train.epochs)
                job_save_model(&job, m, job.checkpoint_path, step + 1, (step + 1) / nb, (step + 1) % nb, states,
                               nstates);
        }
        if (flags & RUNCTL_STOP) {
            job_save_model(&job, m, job.checkpoint_path, step + 1, (step + 1) / nb, (step + 1) % nb, states,
                           nstates);
            job_exit_preempted(&job, step + 1);
        }
        char extra[96];
        snprintf(extra, sizeof extra, "epoch %lld  loss %.4f", (long long)epoch, loss_mean);
        job_progress(&job, "train", step + 1, T, extra);
    }
    double train_seconds = ul_now() - t_loop;
    dist_allreduce_max_double(&train_seconds, 1);

    /* the trained model, its evaluation and the record */
    job_save_model(&job, m, cfg->train.out, T, cfg->train.epochs, 0, NULL, 0);
    Report *rep = report_begin(&job);
    EvalResult r;
    eval_model(&job, m, NULL, &r);
    double train_acc;
    if (cfg->train.subset > 0)
        train_acc = eval_accuracy(&job, m, DATA_TRAIN, pool, npool);
    else if (cfg->train.on == TRAIN_ON_ALL && job.has_split) /* the whole train set = forget + retain */
        train_acc = (r.model.forget_acc * (double)r.n_forget + r.model.retain_acc * (double)r.n_retain) /
                    (double)(r.n_forget + r.n_retain);
    else
        train_acc = r.model.retain_acc; /* the pool is the retain set (or the whole train set without a split) */
    eval_metrics_line(&job, T, &r);
    report_set_int(rep, "iterations", T);
    report_set_int(rep, "epochs", cfg->train.epochs);
    report_set_str(rep, "checkpoints.output", cfg->train.out);
    report_set_num(rep, "metrics.train_acc", train_acc);
    report_set_num(rep, "phase_seconds.train_loop", train_seconds);
    report_set_str(rep, "train.on", config_enum_name("train.on", (int)cfg->train.on));
    report_set_int(rep, "train.samples", npool);
    report_set_int(rep, "train.subset", cfg->train.subset);
    report_set_int(rep, "train.batch_size", G);
    report_set_int(rep, "train.steps_per_epoch", nb);
    report_set_str(rep, "train.optimizer", optim_kind_name(oc.kind));
    report_set_num(rep, "train.lr", cfg->train.lr);
    report_set_str(rep, "train.schedule", sched_kind_name(cfg->train.schedule));
    report_set_int(rep, "train.resumed_from_step", step0);
    report_set_num(rep, "train.final_epoch_loss", last_epoch_loss);
    report_set_num(rep, "train.final_epoch_acc", last_epoch_acc);
    report_set_eval(rep, &r);
    report_write(rep, &job);
    report_print_table(rep, &job);
    report_free(rep);
    eval_result_free(&r);

    free(w);
    free(pool);
    data_sampler_free(&sampler);
    if (steps_here) optim_free(&opt);
    job_close(&job);
    return 0;
}
