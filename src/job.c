/* job.c - one run of `unlearn train|forget|eval`: setup, batches, forward, reductions, checkpoints, run control;
   see include/job.h. */
#define _POSIX_C_SOURCE 200809L
#include "job.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "h5io.h"
#include "kern.h"
#include "report.h"
#include "runctl.h"

/* Tape capacity: the largest classifier records ~100 nodes, the 28-block DiT 688 (model.h). */
#define JOB_TAPE_NODES 4096
/* Zero-padding of crop_flip augmentation (the CIFAR recipe: RandomCrop(32, padding=4)). */
#define JOB_CROP_PAD 4
#define JOB_EXIT_BAD_INPUT 2
#define JOB_EXIT_IO 1

/* Every rank: leave together when any rank failed (rank 0 printed the message). */
static void agree_or_exit(UlError *err, int code)
{
    if (dist_agree_error(err)) dist_exit(code);
}

/* err := "<where>: <key>: <inner message>" */
static void error_at_key(UlError *err, const Config *cfg, const char *key, const UlError *inner)
{
    char where[CFG_STRING_MAX + 64];
    ul_error_set(err, "%s: %s: %s", config_where(cfg, key, where, sizeof where), key, inner->msg);
}

/* Local. mkdir -p path. */
static bool make_dirs(const char *path, UlError *err)
{
    char buf[JOB_PATH_MAX];
    if (!ul_strlcpy(buf, path, sizeof buf)) {
        ul_error_set(err, "%s: path too long (at most %d bytes)", path, JOB_PATH_MAX - 1);
        return false;
    }
    size_t len = strlen(buf);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            ul_error_set(err, "cannot create directory '%s': %s", buf, strerror(errno));
            return false;
        }
        buf[i] = c;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        ul_error_set(err, "'%s' exists and is not a directory", path);
        return false;
    }
    return true;
}

/* Local. The directory part of path ("." when none) into buf. */
static void dir_of(const char *path, char *buf, size_t cap)
{
    ul_strlcpy(buf, path, cap);
    char *slash = strrchr(buf, '/');
    if (!slash) ul_strlcpy(buf, ".", cap);
    else if (slash == buf) slash[1] = '\0';
    else *slash = '\0';
}

/* "JOB.yaml [--set k=v | --set=k=v]..." (argv[0] is the command). sets receives pointers into argv. */
static const char *parse_args(int argc, char **argv, char **sets, int *nset, UlError *err)
{
    const char *job = NULL;
    *nset = 0;
    for (int i = 1; i < argc; i++) {
        char *s = argv[i];
        if (strcmp(s, "--set") == 0) {
            if (i + 1 >= argc) {
                ul_error_set(err, "unlearn %s: --set needs key=value", argv[0]);
                return NULL;
            }
            sets[(*nset)++] = argv[++i];
        } else if (strncmp(s, "--set=", 6) == 0) {
            sets[(*nset)++] = s + 6;
        } else if (s[0] == '-' && s[1] != '\0') {
            ul_error_set(err, "unlearn %s: unknown option '%s' (usage: unlearn %s JOB.yaml [--set key=value]...)",
                         argv[0], s, argv[0]);
            return NULL;
        } else if (job) {
            ul_error_set(err, "unlearn %s: more than one job file ('%s' and '%s')", argv[0], job, s);
            return NULL;
        } else {
            job = s;
        }
    }
    if (!job) ul_error_set(err, "unlearn %s: missing the job file (unlearn %s JOB.yaml)", argv[0], argv[0]);
    return job;
}

/* A short description of the model for checkpoints ("arch=mlp input=1x12x12 classes=4 hidden=[32]"). */
static void describe_spec(const ModelSpec *s, char *buf, size_t cap)
{
    int k = snprintf(buf, cap, "arch=%s input=%dx%dx%d classes=%d", s->arch, s->in_channels, s->height, s->width,
                     s->num_classes);
    if (k > 0 && (size_t)k < cap && s->nhidden > 0) {
        k += snprintf(buf + k, cap - (size_t)k, " hidden=[");
        for (int i = 0; i < s->nhidden && k > 0 && (size_t)k < cap; i++)
            k += snprintf(buf + k, cap - (size_t)k, "%s%d", i ? "," : "", s->hidden[i]);
        if (k > 0 && (size_t)k < cap) snprintf(buf + k, cap - (size_t)k, "]");
    }
}

/* Local. Loads params and buffers (and the given states) of checkpoint path into m; meta receives its metadata. */
static int load_ckpt(Model *m, const char *path, const JobState *states, int nstates, CkptMeta *meta, UlError *err)
{
    CkptSection sec[2 + 16];
    UL_CHECK(nstates >= 0 && nstates <= 16, "load_ckpt: %d states (at most 16)", nstates);
    char groups[16][64];
    sec[0] = (CkptSection){.group = "params", .table = &m->params, .data = m->param};
    sec[1] = (CkptSection){.group = "buffers", .table = &m->buffers, .data = m->buf};
    float *scratch = NULL;
    for (int i = 0; i < nstates; i++) {
        snprintf(groups[i], sizeof groups[i], "state/%s", states[i].kind);
        float *data = states[i].data;
        if (!data) { /* this rank keeps no such state: load into a scratch buffer (checks the file all the same) */
            if (!scratch) scratch = params_alloc(&m->params);
            data = scratch;
        }
        sec[2 + i] = (CkptSection){.group = groups[i], .table = &m->params, .data = data};
    }
    CkptContent c = {.sections = sec, .nsections = 2 + nstates};
    int rc = ckpt_load(path, m->spec.arch, &c, err);
    if (rc == 0 && meta) *meta = c.meta;
    free(scratch);
    return rc;
}

/* Rank 0. Whether the run checkpoint at path belongs to this job configuration. A checkpoint of another
   configuration (the job file was edited since) is ignored with a note: the run starts afresh and overwrites it.
   An unreadable one counts as a match, so that loading it reports the problem. */
static int checkpoint_matches(const char *path, const char *config_hash)
{
    UlError err = {0};
    H5File *f = h5_open(path, H5IO_READ, &err);
    if (!f) return 1;
    char hash[CKPT_STR_MAX] = "";
    int rc = h5_read_attr_str(f, "/", "config_hash", hash, sizeof hash, &err);
    h5_close(f, NULL);
    if (rc != 0 || strcmp(hash, config_hash) == 0) return 1;
    printf("unlearn: note: ignoring %s: written by another job configuration (config sha256 %.16s..., this job "
           "%.16s...); starting afresh\n", path, hash, config_hash);
    fflush(stdout);
    return 0;
}

void job_open(Job *job, int argc, char **argv, const char *command)
{
    memset(job, 0, sizeof *job);
    job->command = command;
    job->t_start = ul_now();
    job->rank = dist_rank();
    job->nranks = dist_size();
    dist_timers_reset(&job->timers);
    UlError err = {0};

    /* the job file and its overrides */
    char **sets = UL_MALLOC(ul_mul_size((size_t)(argc > 0 ? argc : 1), sizeof(char *)));
    int nset = 0;
    const char *path = parse_args(argc, argv, sets, &nset, &err);
    agree_or_exit(&err, JOB_EXIT_BAD_INPUT);
    Config *cfg = job->cfg = UL_MALLOC(sizeof *cfg);
    config_load(cfg, path, nset, sets, &err);
    free(sets);
    agree_or_exit(&err, JOB_EXIT_BAD_INPUT);
    config_same_on_all_ranks(cfg, &err);
    agree_or_exit(&err, JOB_EXIT_BAD_INPUT);
    const char *tsrc = NULL;
    job->threads = config_threads(cfg, &tsrc, &err);
    agree_or_exit(&err, JOB_EXIT_BAD_INPUT);
    kern_set_threads(job->threads);
    memcpy(job->config_hash, cfg->sha256, sizeof job->config_hash);
    bool needs_model = strcmp(command, "train") != 0;
    if (needs_model && !cfg->model.checkpoint[0])
        ul_error_set(&err, "%s: unlearn %s needs model.checkpoint (the trained model to %s)", cfg->job_path, command,
                     strcmp(command, "eval") == 0 ? "evaluate" : "start from");
    if (!err.failed && !ul_strlcpy(job->run_dir, cfg->run_dir, sizeof job->run_dir))
        ul_error_set(&err, "run_dir: '%s' is too long (at most %d bytes)", cfg->run_dir, JOB_PATH_MAX - 1);
    agree_or_exit(&err, JOB_EXIT_BAD_INPUT);

    /* the run directory and the resolved config (rank 0) */
    if (job->rank == 0) {
        UlError e = {0};
        char file[JOB_PATH_MAX + 32];
        if (!make_dirs(job->run_dir, &e)) {
            error_at_key(&err, cfg, "run_dir", &e);
        } else {
            snprintf(file, sizeof file, "%s/config.yaml", job->run_dir);
            if (!config_write_resolved(cfg, file, &e)) error_at_key(&err, cfg, "run_dir", &e);
        }
    }
    agree_or_exit(&err, JOB_EXIT_BAD_INPUT);

    /* the dataset */
    DataOptions opt;
    data_options_default(&opt);
    opt.normalize = cfg->data.normalize;
    opt.cache = cfg->data.cache;
    opt.aug_flip = cfg->data.augment == AUGMENT_FLIP || cfg->data.augment == AUGMENT_CROP_FLIP;
    opt.aug_crop_pad = cfg->data.augment == AUGMENT_CROP_FLIP ? JOB_CROP_PAD : 0;
    opt.aug_seed = (uint64_t)cfg->seed;
    {
        UlError e = {0};
        if (data_open(&job->data, cfg->data.path, &opt, &e) != 0) error_at_key(&err, cfg, "data.path", &e);
    }
    agree_or_exit(&err, JOB_EXIT_BAD_INPUT);
    const DataSplit *tr = &job->data.split[DATA_TRAIN];

    /* the forget split: resolved on every rank, the same digest everywhere, written by rank 0 */
    job->has_split = cfg->split.kind != SPLIT_NONE;
    if (job->has_split) {
        const char *key = cfg->split.kind == SPLIT_CLASSES    ? "forget.classes"
                          : cfg->split.kind == SPLIT_FRACTION ? "forget.fraction"
                                                              : "forget.indices";
        UlError e = {0};
        if (split_resolve(&job->split, &cfg->split, tr->labels, tr->n, job->data.num_classes, &e) != 0)
            error_at_key(&err, cfg, key, &e);
        agree_or_exit(&err, JOB_EXIT_BAD_INPUT);
        char sha0[65];
        memcpy(sha0, job->split.sha256, sizeof sha0);
        dist_bcast(sha0, sizeof sha0, 0);
        if (memcmp(sha0, job->split.sha256, sizeof sha0) != 0)
            ul_error_set(&err, "%s: the forget set differs between ranks (sha256 %.16s... on rank 0, %.16s... on "
                         "rank %d): do all ranks read the same files?", key, sha0, job->split.sha256, job->rank);
        agree_or_exit(&err, JOB_EXIT_BAD_INPUT);
        if (job->rank == 0 && split_write(&job->split, job->run_dir, &e) != 0) error_at_key(&err, cfg, "run_dir", &e);
        agree_or_exit(&err, JOB_EXIT_BAD_INPUT);
    }

    /* the model */
    ModelSpec *spec = &job->spec;
    memset(spec, 0, sizeof *spec);
    ul_strlcpy(spec->arch, config_enum_name("model.arch", (int)cfg->model.arch), sizeof spec->arch);
    spec->in_channels = tr->c;
    spec->height = tr->h;
    spec->width = tr->w;
    spec->num_classes = job->data.num_classes;
    if (cfg->model.arch == ARCH_MLP) {
        char where[CFG_STRING_MAX + 64];
        if (cfg->model.hidden.n > MODEL_MAX_HIDDEN) {
            ul_error_set(&err, "%s: model.hidden: at most %d widths are supported, got %d",
                         config_where(cfg, "model.hidden", where, sizeof where), MODEL_MAX_HIDDEN,
                         cfg->model.hidden.n);
        } else {
            spec->nhidden = cfg->model.hidden.n;
            memcpy(spec->hidden, cfg->model.hidden.v, (size_t)spec->nhidden * sizeof(int));
        }
    }
    if (!err.failed) {
        UlError e = {0};
        job->model = model_create(spec, &e);
        if (!job->model) error_at_key(&err, cfg, "model.arch", &e);
    }
    agree_or_exit(&err, JOB_EXIT_BAD_INPUT);
    *spec = job->model->spec; /* with the arch's defaults filled in */
    if (cfg->model.checkpoint[0]) {
        UlError e = {0};
        dist_timer_start(&job->timers, DIST_PHASE_IO);
        if (load_ckpt(job->model, cfg->model.checkpoint, NULL, 0, NULL, &e) != 0)
            error_at_key(&err, cfg, "model.checkpoint", &e);
        dist_timer_stop(&job->timers, DIST_PHASE_IO);
        agree_or_exit(&err, JOB_EXIT_BAD_INPUT);
    } else {
        model_init(job->model, (uint64_t)cfg->seed);
    }

    /* per-step memory */
    arena_init(&job->arena, ul_mul_size((size_t)cfg->runtime.arena_mb, (size_t)1 << 20));
    tape_init(&job->tape, &job->arena, JOB_TAPE_NODES);
    job->tape.allreduce_sum = job->nranks > 1 ? dist_allreduce_sum_double : NULL;

    /* resuming: rank 0 looks for the run's checkpoint, every rank takes its answer */
    runctl_checkpoint_path(job->run_dir, job->checkpoint_path, sizeof job->checkpoint_path, &err);
    agree_or_exit(&err, JOB_EXIT_BAD_INPUT);
    int resume = 0;
    if (job->rank == 0 && strcmp(command, "eval") != 0 &&
        runctl_should_resume(config_enum_name("checkpoint.resume", (int)cfg->checkpoint.resume)) &&
        access(job->checkpoint_path, R_OK) == 0)
        resume = checkpoint_matches(job->checkpoint_path, job->config_hash);
    dist_bcast(&resume, sizeof resume, 0);
    job->resume = resume != 0;

    /* metrics.jsonl (rank 0) */
    if (job->rank == 0) {
        char file[JOB_PATH_MAX + 32];
        snprintf(file, sizeof file, "%s/metrics.jsonl", job->run_dir);
        job->metrics = fopen(file, job->resume ? "a" : "w");
        if (!job->metrics) ul_error_set(&err, "cannot open '%s' for writing: %s", file, strerror(errno));
    }
    agree_or_exit(&err, JOB_EXIT_BAD_INPUT);

    report_provenance_line(job->provenance, sizeof job->provenance, job->threads);
}

void job_close(Job *job)
{
    if (job->metrics) fclose(job->metrics);
    job->metrics = NULL;
    model_free(job->model);
    job->model = NULL;
    if (job->has_split) split_free(&job->split);
    data_close(&job->data);
    tape_free(&job->tape);
    arena_free(&job->arena);
    free(job->bidx);
    free(job->bx);
    free(job->by);
    job->bidx = NULL;
    job->bx = NULL;
    job->by = NULL;
    job->batch_cap = 0;
    free(job->cfg);
    job->cfg = NULL;
    dist_barrier();
}

void job_reserve_batch(Job *job, int64_t n)
{
    UL_CHECK(n >= 0, "job_reserve_batch: negative size %lld", (long long)n);
    if (n <= job->batch_cap) return;
    size_t elems = job->data.split[DATA_TRAIN].sample_elems;
    job->bidx = UL_REALLOC(job->bidx, ul_mul_size((size_t)n, sizeof(int64_t)));
    job->bx = UL_REALLOC(job->bx, ul_mul_size(ul_mul_size((size_t)n, elems), sizeof(float)));
    job->by = UL_REALLOC(job->by, ul_mul_size((size_t)n, sizeof(int)));
    job->batch_cap = n;
}

void job_load_batch(Job *job, DataSplitId s, const int64_t *idx, int64_t n, int64_t epoch, bool augment)
{
    UL_CHECK(n >= 0 && n <= job->batch_cap, "job_load_batch: %lld samples, capacity %lld (job_reserve_batch)",
             (long long)n, (long long)job->batch_cap);
    if (n == 0) return;
    UlError err = {0};
    dist_timer_start(&job->timers, DIST_PHASE_IO);
    bool aug = augment && job->cfg->data.augment != AUGMENT_NONE;
    if (data_load(&job->data, s, idx, n, epoch, aug, job->bx, job->by, &err) != 0)
        ul_fatal(__FILE__, __LINE__, "reading a batch of %s: %s", job->data.path, err.msg);
    dist_timer_stop(&job->timers, DIST_PHASE_IO);
}

Tensor *job_forward(Job *job, Model *m, int64_t n, bool training, bool record)
{
    UL_CHECK(n >= 1 && n <= job->batch_cap && n <= INT_MAX, "job_forward: batch of %lld samples (capacity %lld)",
             (long long)n, (long long)job->batch_cap);
    Tape *t = &job->tape;
    tape_reset(t);
    t->training = training;
    t->record = record;
    const DataSplit *sp = &job->data.split[DATA_TRAIN];
    int shape[4] = {(int)n, sp->c, sp->h, sp->w};
    Tensor *x = tensor_wrap(t->arena, job->bx, NULL, 4, shape);
    ModelCond cond = {.sample_keys = job->bidx, .seed = job->step_seed};
    return model_forward(m, t, x, &cond);
}

void job_reduce_grad(Job *job, Model *m, bool to_all)
{
    if (job->nranks == 1) return;
    dist_timer_start(&job->timers, DIST_PHASE_ALLREDUCE);
    if (to_all || job->cfg->runtime.dist_mode == DIST_MODE_REPLICATED)
        dist_allreduce_sum_float(m->grad, m->params.total);
    else
        dist_reduce_sum_float(m->grad, m->params.total, 0);
    dist_timer_stop(&job->timers, DIST_PHASE_ALLREDUCE);
}

void job_bcast_model(Job *job, Model *m)
{
    if (job->nranks == 1) return;
    dist_timer_start(&job->timers, DIST_PHASE_BCAST);
    dist_bcast(m->param, ul_mul_size(m->params.total, sizeof(float)), 0);
    if (m->buffers.total) dist_bcast(m->buf, ul_mul_size(m->buffers.total, sizeof(float)), 0);
    dist_timer_stop(&job->timers, DIST_PHASE_BCAST);
}

void job_save_model(Job *job, Model *m, const char *path, int64_t step, int64_t epoch, int64_t batch,
                    const JobState *states, int nstates)
{
    UL_CHECK(nstates >= 0 && nstates <= 16, "job_save_model: %d states (at most 16)", nstates);
    UlError err = {0};
    dist_timer_start(&job->timers, DIST_PHASE_IO);
    if (job->rank == 0) {
        char dir[JOB_PATH_MAX];
        dir_of(path, dir, sizeof dir);
        if (make_dirs(dir, &err)) {
            CkptSection sec[2 + 16];
            char groups[16][64];
            sec[0] = (CkptSection){.group = "params", .table = &m->params, .data = m->param};
            sec[1] = (CkptSection){.group = "buffers", .table = &m->buffers, .data = m->buf};
            for (int i = 0; i < nstates; i++) {
                UL_CHECK(states[i].data, "job_save_model: state '%s' has no data on rank 0", states[i].kind);
                snprintf(groups[i], sizeof groups[i], "state/%s", states[i].kind);
                sec[2 + i] = (CkptSection){.group = groups[i], .table = &m->params, .data = states[i].data};
            }
            CkptContent *c = UL_CALLOC(1, sizeof *c); /* CkptMeta holds a 16 KiB spec: keep it off the stack */
            c->sections = sec;
            c->nsections = 2 + nstates;
            ul_strlcpy(c->meta.arch, m->spec.arch, sizeof c->meta.arch);
            describe_spec(&m->spec, c->meta.model_spec, sizeof c->meta.model_spec);
            ul_strlcpy(c->meta.config_hash, job->config_hash, sizeof c->meta.config_hash);
            if (job->has_split) ul_strlcpy(c->meta.split_sha256, job->split.sha256, sizeof c->meta.split_sha256);
            c->meta.step = step;
            c->meta.epoch = epoch;
            c->meta.batch = batch;
            ckpt_save(path, c, &err);
            free(c);
        }
    }
    dist_timer_stop(&job->timers, DIST_PHASE_IO);
    agree_or_exit(&err, JOB_EXIT_IO);
}

Model *job_load_model(Job *job, const char *path, const char *key)
{
    UlError err = {0}, e = {0};
    Model *m = model_create(&job->spec, &e);
    UL_CHECK(m, "job_load_model: the job's own spec failed: %s", e.msg);
    dist_timer_start(&job->timers, DIST_PHASE_IO);
    if (load_ckpt(m, path, NULL, 0, NULL, &e) != 0) error_at_key(&err, job->cfg, key, &e);
    dist_timer_stop(&job->timers, DIST_PHASE_IO);
    agree_or_exit(&err, JOB_EXIT_BAD_INPUT);
    return m;
}

void job_load_checkpoint(Job *job, Model *m, const char *path, const JobState *states, int nstates, int64_t *step,
                         int64_t *epoch, int64_t *batch)
{
    UlError err = {0};
    CkptMeta *meta = UL_CALLOC(1, sizeof *meta);
    dist_timer_start(&job->timers, DIST_PHASE_IO);
    if (load_ckpt(m, path, states, nstates, meta, &err) == 0 && strcmp(meta->config_hash, job->config_hash) != 0)
        ul_error_set(&err, "%s: written by another job configuration (config sha256 %.16s..., this job %.16s...): "
                     "remove it to start afresh, or run with --set checkpoint.resume=never", path, meta->config_hash,
                     job->config_hash);
    dist_timer_stop(&job->timers, DIST_PHASE_IO);
    agree_or_exit(&err, JOB_EXIT_BAD_INPUT);
    *step = meta->step;
    *epoch = meta->epoch;
    *batch = meta->batch;
    free(meta);
}

unsigned job_agree_step(Job *job, int64_t iter, unsigned local_flags, const char *which_loss, double grad_norm)
{
    unsigned flags = runctl_agree(local_flags);
    if (flags & RUNCTL_NONFINITE) {
        if (job->rank == 0) {
            UlError err = {0};
            if (job->metrics) fflush(job->metrics);
            runctl_write_nonfinite_diagnostics(job->run_dir, iter, which_loss, grad_norm,
                                               runctl_flag_rank(RUNCTL_NONFINITE), &err);
            fflush(stderr);
        }
        dist_exit(UL_EXIT_NONFINITE);
    }
    return flags;
}

void job_exit_preempted(Job *job, int64_t next_iter)
{
    if (job->rank == 0) {
        if (job->metrics) fflush(job->metrics);
        runctl_log_preempted(next_iter, job->checkpoint_path);
        fflush(stdout);
    }
    dist_exit(UL_EXIT_PREEMPTED);
}

void job_metrics_line(Job *job, const char *fields)
{
    if (job->rank != 0 || !job->metrics) return;
    fprintf(job->metrics, "{%s}\n", fields);
    fflush(job->metrics);
}

/* "38s", "12m05s", "3h07m" */
static void fmt_duration(double s, char *buf, size_t cap)
{
    if (!isfinite(s) || s < 0) s = 0;
    long t = (long)(s + 0.5);
    if (t < 120) snprintf(buf, cap, "%lds", t);
    else if (t < 7200) snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, cap, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
}

void job_progress(Job *job, const char *phase, int64_t done, int64_t total, const char *extra)
{
    if (job->rank != 0 || !job->cfg->runtime.progress) return;
    double now = ul_now();
    if (strncmp(job->progress_phase, phase, sizeof job->progress_phase) != 0) {
        ul_strlcpy(job->progress_phase, phase, sizeof job->progress_phase);
        job->progress_t0 = now;
        job->progress_done0 = done;
        job->progress_last = now; /* the first line comes after JOB_PROGRESS_SECONDS (or at the end) */
        if (done < total) return;
    }
    double elapsed = now - job->progress_t0;
    int64_t did = done - job->progress_done0;
    double eta = did > 0 ? elapsed / (double)did * (double)(total - done) : NAN;
    /* every JOB_PROGRESS_SECONDS, but at most about JOB_PROGRESS_LINES lines over a long phase */
    double every = isnan(eta) ? JOB_PROGRESS_SECONDS : fmax(JOB_PROGRESS_SECONDS, (elapsed + eta) / JOB_PROGRESS_LINES);
    if (done < total && now - job->progress_last < every) return;
    job->progress_last = now;
    char el[32], et[32];
    fmt_duration(now - job->t_start, el, sizeof el);
    if (isnan(eta)) snprintf(et, sizeof et, "?");
    else fmt_duration(eta, et, sizeof et);
    printf("[%s] iter %lld/%lld  %3.0f%%  %s%selapsed %s  ETA %s\n", phase, (long long)done, (long long)total,
           total > 0 ? 100.0 * (double)done / (double)total : 100.0, extra ? extra : "", extra ? "  " : "", el, et);
    fflush(stdout);
}
