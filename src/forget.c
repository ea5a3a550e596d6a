/* forget.c - `unlearn forget`: the unlearning loop over the dataset; see include/forget.h (the run) and
   include/methods.h (the steps). */
#include "forget.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "job.h"
#include "methods.h"
#include "optim.h"
#include "report.h"
#include "rng.h"
#include "runctl.h"

#define FORGET_EXIT_BAD_INPUT 2
#define FORGET_MAX_STATES 4
/* Seeds of the batch streams: rng_u64(seed, stream, 0), so that the streams are independent permutations. */
#define FORGET_STREAM_FORGET 0x756e6c2d66677400ULL   /* "unl-fgt": the forget steps */
#define FORGET_STREAM_RETAIN 0x756e6c2d72746e00ULL   /* "unl-rtn": the retain (or joint) steps */
#define FORGET_STREAM_FISHER_F 0x756e6c2d66736600ULL /* "unl-fsf": the mask's forget pass */
#define FORGET_STREAM_FISHER_R 0x756e6c2d66737200ULL /* "unl-fsr": the mask's retain pass */

/* One batch stream: data.h's global batch sequence over a pool, and this rank's buffers for its batches. */
typedef struct Stream {
    bool on;
    DataSampler s;
    int64_t G;               /* global batch size */
    int64_t nb;              /* batches per epoch */
    int64_t used;            /* mask passes: batches taken (unlearn.fisher_batches, or nb) */
    int64_t used_samples;    /* mask passes: samples in them */
    int64_t *idx;            /* [cap] global train indices of the local part */
    float *x;                /* [cap, C, H, W] */
    int *y;                  /* [cap] */
    unsigned char *flag;     /* [cap] is_forget of each sample (joint pools) */
} Stream;

typedef struct Run {
    Job *job;
    UnlPlan plan;
    bool rank0_mode;         /* runtime.dist_mode rank0 with several ranks */
    Stream forget, retain, fisher_f, fisher_r;
    unsigned char *is_forget;  /* [N_train] 1 for forget samples (joint pools), else NULL */
    int64_t cap;             /* the largest local batch of any stream */
} Run;

/* ---- hooks: how the method steps reach the other ranks ---------------------------------------------------- */

static void hook_reduce(void *ctx, Model *m) { job_reduce_grad((Job *)ctx, m, false); }
static void hook_bcast(void *ctx, Model *m) { job_bcast_model((Job *)ctx, m); }

/* ---- streams --------------------------------------------------------------------------------------------- */

static void stream_init(Stream *st, const int64_t *pool, int64_t npool, int64_t G, uint64_t seed, bool drop_last)
{
    memset(st, 0, sizeof *st);
    st->on = true;
    st->G = G;
    data_sampler_init(&st->s, pool, npool, G, seed, true, drop_last);
    st->nb = data_sampler_batches(&st->s);
    st->used = st->nb;
}

/* Allocates the stream's buffers for cap samples. */
static void stream_alloc(Stream *st, const Job *job, int64_t cap)
{
    if (!st->on) return;
    size_t elems = job->data.split[DATA_TRAIN].sample_elems;
    st->idx = UL_MALLOC(ul_mul_size((size_t)cap, sizeof(int64_t)));
    st->x = UL_MALLOC(ul_mul_size(ul_mul_size((size_t)cap, elems), sizeof(float)));
    st->y = UL_MALLOC(ul_mul_size((size_t)cap, sizeof(int)));
    st->flag = UL_MALLOC((size_t)cap);
}

static void stream_free(Stream *st)
{
    if (!st->on) return;
    data_sampler_free(&st->s);
    free(st->idx);
    free(st->x);
    free(st->y);
    free(st->flag);
}

/* Local. Loads this rank's part of global batch b of `epoch` of the stream (augmented as data.augment says);
   joint pools get their forget samples flagged and, for rl/salun, relabelled. Fills *out. */
static void stream_load(Run *r, Stream *st, int64_t epoch, int64_t b, UnlBatch *out)
{
    Job *job = r->job;
    const Config *cfg = job->cfg;
    int64_t n = data_sampler_local(&st->s, epoch, b, job->rank, job->nranks, st->idx);
    if (n > 0) {
        UlError err = {0};
        dist_timer_start(&job->timers, DIST_PHASE_IO);
        if (data_load(&job->data, DATA_TRAIN, st->idx, n, epoch, cfg->data.augment != AUGMENT_NONE, st->x, st->y,
                      &err) != 0)
            ul_fatal(__FILE__, __LINE__, "reading a batch of %s: %s", job->data.path, err.msg);
        dist_timer_stop(&job->timers, DIST_PHASE_IO);
    }
    bool joint = st == &r->retain && r->plan.retain_joint;
    if (joint) {
        bool relabel = r->plan.method == METHOD_RL || r->plan.method == METHOD_SALUN;
        for (int64_t i = 0; i < n; i++) {
            st->flag[i] = r->is_forget[st->idx[i]];
            if (relabel && st->flag[i])
                st->y[i] = unl_random_label((uint64_t)cfg->seed, st->idx[i], st->y[i], job->data.num_classes);
        }
    }
    *out = (UnlBatch){.x = st->x, .y = st->y, .is_forget = joint ? st->flag : NULL, .n = n,
                      .global_n = data_sampler_batch_size(&st->s, b)};
}

/* The streams of this job's method; bad input goes to err (agreed by the caller). */
static void setup_streams(Run *r, UlError *err)
{
    Job *job = r->job;
    const Config *cfg = job->cfg;
    const uint64_t seed = (uint64_t)cfg->seed;
    const Split *sp = &job->split;
    const int64_t ntrain = job->data.split[DATA_TRAIN].n;
    char where[CFG_STRING_MAX + 64];
    if (r->plan.forget_loss != UNL_LOSS_NONE) {
        int64_t G = cfg->unlearn.forget_batch_size < sp->nforget ? cfg->unlearn.forget_batch_size : sp->nforget;
        if (r->plan.forget_train_bn && G < job->nranks)
            ul_error_set(err, "%s: unlearn.forget_batch_size: a forget batch holds %lld samples (the forget set has "
                         "%lld), fewer than the %d ranks: every rank needs a sample in a train-mode step",
                         config_where(cfg, "unlearn.forget_batch_size", where, sizeof where), (long long)G,
                         (long long)sp->nforget, job->nranks);
        stream_init(&r->forget, sp->forget, sp->nforget, G, rng_u64(seed, FORGET_STREAM_FORGET, 0), true);
    }
    if (r->plan.retain_loss != UNL_LOSS_NONE) {
        const int64_t *pool = r->plan.retain_joint ? NULL : sp->retain; /* NULL: every train index */
        int64_t npool = r->plan.retain_joint ? ntrain : sp->nretain;
        int64_t G = cfg->unlearn.batch_size < npool ? cfg->unlearn.batch_size : npool;
        if (!err->failed && G < job->nranks)
            ul_error_set(err, "%s: unlearn.batch_size: a retain batch holds %lld samples, fewer than the %d ranks",
                         config_where(cfg, "unlearn.batch_size", where, sizeof where), (long long)G, job->nranks);
        stream_init(&r->retain, pool, npool, G, rng_u64(seed, FORGET_STREAM_RETAIN, 0), true);
        if (r->plan.retain_joint) {
            r->is_forget = UL_CALLOC((size_t)ntrain, 1);
            for (int64_t i = 0; i < sp->nforget; i++) r->is_forget[sp->forget[i]] = 1;
        }
        if (!err->failed && (r->plan.method == METHOD_RL || r->plan.method == METHOD_SALUN) &&
            job->data.num_classes < 2)
            ul_error_set(err, "%s: data.path: %s relabels forget samples with another class, but %s has %d class",
                         config_where(cfg, "data.path", where, sizeof where), unl_method_name(r->plan.method),
                         cfg->data.path, job->data.num_classes);
    }
    if (r->plan.mask != MASK_NONE) {
        const int64_t fb = cfg->unlearn.fisher_batches;
        stream_init(&r->fisher_f, sp->forget, sp->nforget, cfg->unlearn.forget_batch_size,
                    rng_u64(seed, FORGET_STREAM_FISHER_F, 0), false);
        if (fb > 0 && fb < r->fisher_f.nb) r->fisher_f.used = fb;
        if (r->plan.mask == MASK_FISHER) {
            stream_init(&r->fisher_r, sp->retain, sp->nretain, cfg->unlearn.batch_size,
                        rng_u64(seed, FORGET_STREAM_FISHER_R, 0), false);
            if (fb > 0 && fb < r->fisher_r.nb) r->fisher_r.used = fb;
        }
    }
    Stream *passes[2] = {&r->fisher_f, &r->fisher_r};
    for (int p = 0; p < 2; p++)
        for (int64_t b = 0; passes[p]->on && b < passes[p]->used; b++)
            passes[p]->used_samples += data_sampler_batch_size(&passes[p]->s, b);
    Stream *all[4] = {&r->forget, &r->retain, &r->fisher_f, &r->fisher_r};
    r->cap = 1;
    for (int i = 0; i < 4; i++)
        if (all[i]->on) {
            int64_t c = data_sampler_local_max(&all[i]->s, job->nranks);
            if (c > r->cap) r->cap = c;
        }
    for (int i = 0; i < 4; i++) stream_alloc(all[i], job, r->cap);
}

/* ---- checkpoints ---------------------------------------------------------------------------------------------- */

/* The states a run checkpoint carries (the same kinds on every rank; data NULL where this rank keeps none). */
static int run_states(const Run *r, const Unlearner *u, JobState *st)
{
    const Config *cfg = r->job->cfg;
    const bool here = !u->hooks.passive;
    int n = 0;
    if (cfg->unlearn.optimizer != OPTIM_SGD || cfg->unlearn.momentum > 0.0)
        st[n++] = (JobState){"m", here ? u->opt.m : NULL};
    if (cfg->unlearn.optimizer != OPTIM_SGD) st[n++] = (JobState){"v", here ? u->opt.v : NULL};
    st[n++] = (JobState){"slow", here ? u->slow : NULL};
    if (r->plan.mask != MASK_NONE) st[n++] = (JobState){"mask", here ? u->mask : NULL};
    return n;
}

/* The data position stored with a checkpoint of iteration t: the retain stream's epoch and batch (the forget
   stream's for a method without retain steps). */
static void position(const Run *r, const Unlearner *u, int64_t t, int64_t *epoch, int64_t *batch)
{
    int64_t s = r->retain.on ? t : unl_forget_steps_before(u, t);
    int64_t nb = r->retain.on ? r->retain.nb : r->forget.nb;
    *epoch = s / nb;
    *batch = s % nb;
}

static void save_run(Run *r, Unlearner *u, int64_t next_t)
{
    JobState st[FORGET_MAX_STATES];
    int n = run_states(r, u, st);
    int64_t e, b;
    position(r, u, next_t, &e, &b);
    job_save_model(r->job, u->m, r->job->checkpoint_path, next_t, e, b, st, n);
}

/* ---- output helpers ------------------------------------------------------------------------------------------ */

/* A JSON number, or null for NaN/Inf (JSON has neither). buf must hold 32 bytes. */
static const char *jnum(char *buf, double v)
{
    if (!isfinite(v)) return "null";
    snprintf(buf, 32, "%.8g", v);
    return buf;
}

static double mask_sparsity(const Unlearner *u)
{
    if (u->plan.mask == MASK_NONE || u->hooks.passive || u->mask_info.total == 0) return NAN;
    return 1.0 - (double)u->mask_info.kept / (double)u->mask_info.total;
}

static void metrics_line(Job *job, const Unlearner *u, int64_t t)
{
    const UnlStats *s = &u->last;
    char b[9][32], line[768];
    snprintf(line, sizeof line,
             "\"event\": \"iter\", \"iter\": %lld, \"loss_forget\": %s, \"loss_retain\": %s, \"alpha\": %s, "
             "\"lr\": %s, \"grad_norm_forget\": %s, \"grad_norm_retain\": %s, \"mask_sparsity\": %s, \"l1\": %s, "
             "\"time\": %.4f",
             (long long)t, jnum(b[0], s->forget_loss), jnum(b[1], s->retain_loss), jnum(b[2], s->alpha),
             jnum(b[3], s->lr), jnum(b[4], s->forget_gnorm), jnum(b[5], s->retain_gnorm), jnum(b[6], mask_sparsity(u)),
             jnum(b[7], s->l1), ul_now() - job->t_start);
    job_metrics_line(job, line);
}

/* "method.<key without unlearn.>" for every knob the method read. */
static void report_knobs(Report *rep, const Unlearner *u, const Config *cfg)
{
    UnlKnob k[UNL_MAX_KNOBS];
    int n = unl_knobs(u, cfg, k);
    report_set_str(rep, "method.name", unl_method_name(u->plan.method));
    for (int i = 0; i < n; i++) {
        if (strcmp(k[i].key, "unlearn.method") == 0) continue;
        const char *dot = strncmp(k[i].key, "unlearn.", 8) == 0 ? k[i].key + 8 : k[i].key;
        char key[128];
        snprintf(key, sizeof key, "method.%s", dot);
        if (k[i].kind == UNL_KNOB_TEXT) report_set_str(rep, key, k[i].text);
        else if (k[i].kind == UNL_KNOB_INT) report_set_int(rep, key, k[i].i);
        else report_set_num(rep, key, k[i].num);
    }
}

/* ---- the command ------------------------------------------------------------------------------------------------ */

/* COLLECTIVE. The mask passes at theta_0 (see forget.h) and their agreement; returns their wall time. */
static double make_mask(Run *r, Unlearner *u)
{
    Job *job = r->job;
    double t0 = ul_now();
    Stream *passes[2] = {&r->fisher_f, &r->fisher_r};
    for (int p = 0; p < 2; p++) {
        Stream *st = passes[p];
        if (!st->on) continue;
        for (int64_t b = 0; b < st->used; b++) {
            UnlBatch bb;
            stream_load(r, st, 0, b, &bb);
            unl_mask_batch(u, p == 0 ? UNL_PASS_FORGET : UNL_PASS_RETAIN, &bb);
            char extra[64];
            snprintf(extra, sizeof extra, "%s pass", p == 0 ? "forget" : "retain");
            job_progress(job, "mask", b + 1, st->used, extra);
        }
    }
    unl_mask_finish(u);
    unsigned local = !u->hooks.passive && !u->mask_info.finite ? RUNCTL_NONFINITE : 0u;
    unsigned flags = job_agree_step(job, 0, local,
                                    r->plan.mask == MASK_FISHER ? "Fisher-pass" : "saliency-pass", NAN);
    double secs = ul_now() - t0;
    if (flags & RUNCTL_STOP) { /* a stop asked for during the passes: the mask is complete, keep it */
        save_run(r, u, 0);
        job_exit_preempted(job, 0);
    }
    if (job->rank == 0 && !u->hooks.passive) {
        printf("unlearn forget: %s mask keeps %zu of %zu weights (sparsity %.4f) from %lld forget + %lld retain "
               "batches in %.1fs\n",
               config_enum_name("unlearn.mask", (int)r->plan.mask), u->mask_info.kept, u->mask_info.total,
               mask_sparsity(u), (long long)u->mask_info.forget_batches, (long long)u->mask_info.retain_batches,
               secs);
        fflush(stdout);
    }
    return secs;
}

int cmd_forget(int argc, char **argv)
{
    Job job;
    job_open(&job, argc, argv, "forget");
    const Config *cfg = job.cfg;
    Model *m = job.model;
    UlError err = {0};
    char where[CFG_STRING_MAX + 64];

    Run r;
    memset(&r, 0, sizeof r);
    r.job = &job;
    if (!job.has_split)
        ul_error_set(&err, "%s: unlearn forget needs a forget set (forget.classes, forget.fraction or forget.indices)",
                     cfg->job_path);
    if (!err.failed) {
        UlError e = {0};
        if (!unl_check_config(cfg, &e))
            ul_error_set(&err, "%s: %s", config_where(cfg, "unlearn.method", where, sizeof where), e.msg);
    }
    if (!err.failed) {
        r.plan = unl_plan(cfg);
        setup_streams(&r, &err);
    }
    if (dist_agree_error(&err)) dist_exit(FORGET_EXIT_BAD_INPUT);

    r.rank0_mode = cfg->runtime.dist_mode == DIST_MODE_RANK0 && job.nranks > 1;
    Unlearner u;
    UnlSetup setup = {.cfg = cfg, .model = m, .tape = &job.tape, .batch_cap = r.cap,
                      .retain_epoch_iters = r.retain.on ? r.retain.nb : 1,
                      .hooks = {.ctx = &job, .reduce_grad = hook_reduce, .bcast_model = r.rank0_mode ? hook_bcast : NULL,
                                .timers = &job.timers, .rank0_phase = r.rank0_mode,
                                .passive = r.rank0_mode && job.rank != 0}};
    unl_init(&u, &setup);
    const int64_t T = u.T;

    /* resume, or make the mask */
    int64_t t0 = 0;
    double mask_seconds = 0.0;
    bool mask_from_ckpt = false;
    if (job.resume) {
        JobState st[FORGET_MAX_STATES];
        int ns = run_states(&r, &u, st);
        int64_t e0 = 0, b0 = 0, we = 0, wb = 0;
        job_load_checkpoint(&job, m, job.checkpoint_path, st, ns, &t0, &e0, &b0);
        if (t0 >= 0 && t0 <= T) position(&r, &u, t0, &we, &wb);
        if (t0 < 0 || t0 > T || e0 != we || b0 != wb)
            ul_error_set(&err, "%s: iteration %lld (epoch %lld, batch %lld) does not fit this job's %lld iterations",
                         job.checkpoint_path, (long long)t0, (long long)e0, (long long)b0, (long long)T);
        if (dist_agree_error(&err)) dist_exit(FORGET_EXIT_BAD_INPUT);
        unl_restore(&u, t0);
        mask_from_ckpt = r.plan.mask != MASK_NONE;
        u.mask_info.forget_batches = r.fisher_f.on ? r.fisher_f.used : 0;
        u.mask_info.retain_batches = r.fisher_r.on ? r.fisher_r.used : 0;
        u.mask_info.forget_samples = r.fisher_f.on ? r.fisher_f.used_samples : 0;
        u.mask_info.retain_samples = r.fisher_r.on ? r.fisher_r.used_samples : 0;
        if (job.rank == 0) runctl_log_resumed(t0, job.checkpoint_path);
    }
    if (job.rank == 0) {
        printf("unlearn forget '%s': %s on %s (%zu parameters), forget %lld / retain %lld samples, %lld iterations, "
               "%d rank(s) x %d thread(s), %s mode\n",
               cfg->name, unl_method_name(r.plan.method), m->spec.arch, m->params.total, (long long)job.split.nforget,
               (long long)job.split.nretain, (long long)T, job.nranks, job.threads,
               config_enum_name("runtime.dist_mode", (int)cfg->runtime.dist_mode));
        fflush(stdout);
    }
    if (!job.resume && r.plan.mask != MASK_NONE) mask_seconds = make_mask(&r, &u);

    /* the loop */
    double t_loop = ul_now();
    for (int64_t t = t0; t < T; t++) {
        UnlBatch fb, rb;
        const bool hf = unl_has_forget_step(&u, t), hr = unl_has_retain_step(&u);
        if (hf) {
            int64_t s = unl_forget_steps_before(&u, t);
            stream_load(&r, &r.forget, s / r.forget.nb, s % r.forget.nb, &fb);
        }
        if (hr) stream_load(&r, &r.retain, t / r.retain.nb, t % r.retain.nb, &rb);
        unl_iteration(&u, t, hf ? &fb : NULL, hr ? &rb : NULL);

        const UnlStats *s = &u.last;
        const bool here = !u.hooks.passive;
        bool bad_f = s->did_forget && (!isfinite(s->forget_loss) || (here && !isfinite(s->forget_gnorm)));
        bool bad_r = s->did_retain && (!isfinite(s->retain_loss) || (here && !isfinite(s->retain_gnorm)));
        unsigned flags = job_agree_step(&job, t, bad_f || bad_r ? RUNCTL_NONFINITE : 0u, bad_f ? "forget" : "retain",
                                        bad_f || !s->did_retain ? s->forget_gnorm : s->retain_gnorm);
        metrics_line(&job, &u, t);
        const int every = cfg->checkpoint.every;
        if ((every > 0 && (t + 1) % every == 0) || (flags & RUNCTL_STOP)) save_run(&r, &u, t + 1);
        if (flags & RUNCTL_STOP) job_exit_preempted(&job, t + 1);
        char extra[96] = "", *e = extra;
        if (s->did_forget) e += snprintf(e, 40, "loss_f %.4g  ", s->forget_loss);
        if (s->did_retain) snprintf(e, 40, "loss_r %.4g", s->retain_loss);
        job_progress(&job, "forget", t + 1, T, extra);
    }
    double loop_seconds = ul_now() - t_loop;
    dist_allreduce_max_double(&loop_seconds, 1);
    dist_allreduce_max_double(&mask_seconds, 1);

    /* the unlearned model, its evaluation and the record */
    char out[JOB_PATH_MAX + 16];
    snprintf(out, sizeof out, "%s/model.h5", job.run_dir);
    job_save_model(&job, m, out, T, 0, 0, NULL, 0);
    Model *rt = cfg->eval.rt_checkpoint[0] ? job_load_model(&job, cfg->eval.rt_checkpoint, "eval.rt_checkpoint") : NULL;
    Report *rep = report_begin(&job);
    EvalResult ev;
    eval_model(&job, m, rt, &ev);
    eval_metrics_line(&job, T, &ev);

    report_knobs(rep, &u, cfg);
    report_set_int(rep, "iterations", T);
    report_set_str(rep, "checkpoints.output", out);
    report_set_bool(rep, "checkpoints.resumed", job.resume);
    report_set_int(rep, "forget.resumed_from_iter", t0);
    report_set_int(rep, "forget.forget_batch", r.forget.on ? r.forget.G : 0);
    report_set_int(rep, "forget.retain_batch", r.retain.on ? r.retain.G : 0);
    report_set_str(rep, "forget.retain_pool", !r.retain.on ? "none" : r.plan.retain_joint ? "joint" : "retain");
    report_set_int(rep, "forget.forget_batches_per_epoch", r.forget.on ? r.forget.nb : 0);
    report_set_int(rep, "forget.retain_batches_per_epoch", r.retain.on ? r.retain.nb : 0);
    report_set_int(rep, "forget.forget_steps", unl_forget_steps_before(&u, T));
    report_set_int(rep, "forget.optimizer_steps", unl_optim_steps_before(&u, T));
    report_set_num(rep, "forget.final_loss_forget", u.last.forget_loss);
    report_set_num(rep, "forget.final_loss_retain", u.last.retain_loss);
    report_set_str(rep, "mask.kind", config_enum_name("unlearn.mask", (int)r.plan.mask));
    if (r.plan.mask != MASK_NONE) {
        report_set_int(rep, "mask.kept", (int64_t)u.mask_info.kept);
        report_set_int(rep, "mask.total", (int64_t)u.mask_info.total);
        report_set_num(rep, "mask.sparsity", mask_sparsity(&u));
        report_set_int(rep, "mask.fisher_batches_forget", r.fisher_f.on ? r.fisher_f.used : 0);
        report_set_int(rep, "mask.fisher_batches_retain", r.fisher_r.on ? r.fisher_r.used : 0);
        report_set_int(rep, "mask.fisher_samples_forget", r.fisher_f.on ? r.fisher_f.used_samples : 0);
        report_set_int(rep, "mask.fisher_samples_retain", r.fisher_r.on ? r.fisher_r.used_samples : 0);
        report_set_bool(rep, "mask.from_checkpoint", mask_from_ckpt);
    }
    report_set_num(rep, "phase_seconds.mask", mask_seconds);
    report_set_num(rep, "phase_seconds.forget_loop", loop_seconds);
    report_set_eval(rep, &ev);
    report_write(rep, &job);
    report_print_table(rep, &job);
    report_free(rep);
    eval_result_free(&ev);
    if (rt) model_free(rt);

    unl_free(&u);
    stream_free(&r.forget);
    stream_free(&r.retain);
    stream_free(&r.fisher_f);
    stream_free(&r.fisher_r);
    free(r.is_forget);
    job_close(&job);
    return 0;
}
