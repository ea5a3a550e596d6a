/* report.c - report.json (docs/report.md), the final table and build provenance; see include/report.h. */
#define _POSIX_C_SOURCE 200809L
#include "report.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5io.h"
#include "kern.h"
#include "runctl.h"

#ifndef UNLEARN_VERSION
#define UNLEARN_VERSION "0.1.0" /* the release; `unlearn --version` and every report print it */
#endif

#define REPORT_KEY_MAX 128
#define REPORT_EXIT_IO 1

/* ---- fields set by the commands ------------------------------------------------------------------------------ */

typedef enum RKind { RK_STR, RK_NUM, RK_INT, RK_BOOL } RKind;

typedef struct RField {
    char section[REPORT_KEY_MAX]; /* "" = top level */
    char key[REPORT_KEY_MAX];
    RKind kind;
    double num;
    int64_t i;
    bool b;
    char *str;                    /* owned (RK_STR) */
    bool written;                 /* scratch for report_write: emitted in a documented slot */
} RField;

struct Report {
    RField *f;
    int n, cap;
    bool has_eval;
    EvalResult eval;              /* a copy; per-class arrays owned */
    /* filled by report_write (every rank) */
    bool reduced;
    DistTimerStats timers;
    double wall_seconds, arena_mib;
    char path[JOB_PATH_MAX + 32];
};

Report *report_begin(Job *job)
{
    (void)job;
    Report *r = UL_CALLOC(1, sizeof *r);
    return r;
}

static RField *field_slot(Report *r, const char *key)
{
    const char *dot = strchr(key, '.');
    char sec[REPORT_KEY_MAX] = "", name[REPORT_KEY_MAX];
    if (dot) {
        UL_CHECK((size_t)(dot - key) < sizeof sec, "report key '%s': section too long", key);
        memcpy(sec, key, (size_t)(dot - key));
        sec[dot - key] = '\0';
        UL_CHECK(ul_strlcpy(name, dot + 1, sizeof name) && name[0], "report key '%s': bad name", key);
    } else {
        UL_CHECK(ul_strlcpy(name, key, sizeof name) && name[0], "report key '%s': bad name", key);
    }
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->f[i].section, sec) == 0 && strcmp(r->f[i].key, name) == 0) {
            free(r->f[i].str);
            r->f[i].str = NULL;
            return &r->f[i];
        }
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 32;
        r->f = UL_REALLOC(r->f, ul_mul_size((size_t)r->cap, sizeof *r->f));
    }
    RField *f = &r->f[r->n++];
    memset(f, 0, sizeof *f);
    memcpy(f->section, sec, sizeof sec);
    memcpy(f->key, name, sizeof name);
    return f;
}

void report_set_str(Report *r, const char *key, const char *value)
{
    RField *f = field_slot(r, key);
    f->kind = RK_STR;
    size_t len = strlen(value ? value : "");
    f->str = UL_MALLOC(len + 1);
    memcpy(f->str, value ? value : "", len + 1);
}

void report_set_num(Report *r, const char *key, double value)
{
    RField *f = field_slot(r, key);
    f->kind = RK_NUM;
    f->num = value;
}

void report_set_int(Report *r, const char *key, int64_t value)
{
    RField *f = field_slot(r, key);
    f->kind = RK_INT;
    f->i = value;
}

void report_set_bool(Report *r, const char *key, bool value)
{
    RField *f = field_slot(r, key);
    f->kind = RK_BOOL;
    f->b = value;
}

static double *copy_doubles(const double *src, int n)
{
    if (!src) return NULL;
    double *d = UL_MALLOC(ul_mul_size((size_t)n, sizeof(double)));
    memcpy(d, src, (size_t)n * sizeof(double));
    return d;
}

void report_set_eval(Report *r, const EvalResult *e)
{
    if (r->has_eval) eval_result_free(&r->eval);
    r->eval = *e;
    r->eval.model.per_class_test_acc = copy_doubles(e->model.per_class_test_acc, e->num_classes);
    r->eval.rt.per_class_test_acc = copy_doubles(e->rt.per_class_test_acc, e->num_classes);
    r->has_eval = true;
}

void report_free(Report *r)
{
    if (!r) return;
    for (int i = 0; i < r->n; i++) free(r->f[i].str);
    free(r->f);
    if (r->has_eval) eval_result_free(&r->eval);
    free(r);
}

static RField *find_field(Report *r, const char *sec, const char *key)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->f[i].section, sec) == 0 && strcmp(r->f[i].key, key) == 0) return &r->f[i];
    return NULL;
}

static bool section_used(const Report *r, const char *sec)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->f[i].section, sec) == 0) return true;
    return false;
}

/* ---- a small JSON writer: objects with one member per line, number arrays on one line ------------------------ */

typedef struct Json {
    FILE *f;
    int depth;
    bool first;                   /* no member written yet in the current object */
} Json;

static void j_string_raw(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p == '\t') fputs("\\t", f);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static void j_key(Json *j, const char *key)
{
    fputs(j->first ? "\n" : ",\n", j->f);
    for (int i = 0; i < j->depth; i++) fputs("  ", j->f);
    j_string_raw(j->f, key);
    fputs(": ", j->f);
    j->first = false;
}

static void j_open(Json *j, const char *key)
{
    if (key) j_key(j, key);
    fputc('{', j->f);
    j->depth++;
    j->first = true;
}

static void j_close(Json *j)
{
    j->depth--;
    if (!j->first) {
        fputc('\n', j->f);
        for (int i = 0; i < j->depth; i++) fputs("  ", j->f);
    }
    fputc('}', j->f);
    j->first = false;
}

static void j_num_raw(FILE *f, double v)
{
    if (isfinite(v)) fprintf(f, "%.10g", v);
    else fputs("null", f);
}

static void j_str(Json *j, const char *key, const char *s)
{
    j_key(j, key);
    if (s) j_string_raw(j->f, s);
    else fputs("null", j->f);
}

static void j_num(Json *j, const char *key, double v)
{
    j_key(j, key);
    j_num_raw(j->f, v);
}

static void j_int(Json *j, const char *key, int64_t v)
{
    j_key(j, key);
    fprintf(j->f, "%lld", (long long)v);
}

static void j_bool(Json *j, const char *key, bool v)
{
    j_key(j, key);
    fputs(v ? "true" : "false", j->f);
}

static void j_null(Json *j, const char *key)
{
    j_key(j, key);
    fputs("null", j->f);
}

static void j_nums(Json *j, const char *key, const double *v, int n)
{
    j_key(j, key);
    if (!v) {
        fputs("null", j->f);
        return;
    }
    fputc('[', j->f);
    for (int i = 0; i < n; i++) {
        if (i) fputs(", ", j->f);
        j_num_raw(j->f, v[i]);
    }
    fputc(']', j->f);
}

static void j_field_value(Json *j, const RField *f)
{
    switch (f->kind) {
    case RK_STR: j_str(j, f->key, f->str); break;
    case RK_NUM: j_num(j, f->key, f->num); break;
    case RK_INT: j_int(j, f->key, f->i); break;
    case RK_BOOL: j_bool(j, f->key, f->b); break;
    }
}

/* Every not yet written field of section sec. */
static void j_rest_of_section(Json *j, Report *r, const char *sec)
{
    for (int i = 0; i < r->n; i++)
        if (!r->f[i].written && strcmp(r->f[i].section, sec) == 0) {
            r->f[i].written = true;
            j_field_value(j, &r->f[i]);
        }
}

/* ---- the documented layout ------------------------------------------------------------------------------- */

/* Writing the members of one object: a documented member takes the command's value when it set (sec, key)
   (report_set_*), else the default given here; d_close appends the command's other keys of the section. */
typedef struct Doc {
    Json *j;
    Report *r;
    const char *sec;              /* "" = top level */
} Doc;

static bool d_override(Doc *d, const char *key)
{
    RField *f = find_field(d->r, d->sec, key);
    if (!f || f->written) return false;
    f->written = true;
    j_field_value(d->j, f);
    return true;
}

static void d_str(Doc *d, const char *key, const char *s)
{
    if (!d_override(d, key)) j_str(d->j, key, s);
}
/* A path-like string: null when empty. */
static void d_path(Doc *d, const char *key, const char *s) { d_str(d, key, s && s[0] ? s : NULL); }
static void d_num(Doc *d, const char *key, double v)
{
    if (!d_override(d, key)) j_num(d->j, key, v);
}
static void d_int(Doc *d, const char *key, int64_t v)
{
    if (!d_override(d, key)) j_int(d->j, key, v);
}
static void d_bool(Doc *d, const char *key, bool v)
{
    if (!d_override(d, key)) j_bool(d->j, key, v);
}
static void d_null(Doc *d, const char *key)
{
    if (!d_override(d, key)) j_null(d->j, key);
}
static void d_nums(Doc *d, const char *key, const double *v, int n)
{
    if (!d_override(d, key)) j_nums(d->j, key, v, n);
}

/* Opens the documented object `sec` at the top level. */
static Doc d_open(Doc *top, const char *sec)
{
    j_open(top->j, sec);
    return (Doc){top->j, top->r, sec};
}
static void d_close(Doc *d)
{
    j_rest_of_section(d->j, d->r, d->sec);
    j_close(d->j);
}

static void d_model_metrics(Doc *d, const EvalModelMetrics *m, int K)
{
    d_num(d, "forget_acc", m->forget_acc);
    d_num(d, "retain_acc", m->retain_acc);
    d_num(d, "test_acc", m->test_acc);
    d_num(d, "test_acc_remaining", m->test_acc_remaining);
    d_nums(d, "per_class_test_acc", m->per_class_test_acc, K);
    d_num(d, "mia", m->mia);
    d_num(d, "mia_remaining", m->mia_remaining);
}

static const char *split_kind_name(SplitKind k)
{
    switch (k) {
    case SPLIT_CLASSES: return "classes";
    case SPLIT_FRACTION: return "fraction";
    case SPLIT_INDICES: return "indices";
    default: return "none";
    }
}

static void write_json(FILE *out, Report *r, const Job *job)
{
    const Config *cfg = job->cfg;
    const EvalResult *e = r->has_eval ? &r->eval : NULL;
    for (int i = 0; i < r->n; i++) r->f[i].written = false;
    Json jj = {.f = out, .depth = 0, .first = true};
    Doc top = {&jj, r, ""}, *t = &top;
    j_open(&jj, NULL);
    j_str(&jj, "format", REPORT_FORMAT);
    j_int(&jj, "format_version", REPORT_FORMAT_VERSION);
    j_str(&jj, "command", job->command);
    j_str(&jj, "name", cfg->name);
    d_str(t, "status", "ok");
    if (section_used(r, "method")) {
        Doc d = d_open(t, "method");
        d_close(&d);
    } else {
        d_null(t, "method");
    }
    d_null(t, "iterations");
    d_null(t, "epochs");
    d_int(t, "ranks", job->nranks);
    d_int(t, "threads", job->threads);
    d_str(t, "dist_mode", config_enum_name("runtime.dist_mode", (int)cfg->runtime.dist_mode));
    d_num(t, "wall_seconds", r->wall_seconds);
    d_num(t, "eval_seconds", e ? e->seconds : NAN);
    {
        Doc d = d_open(t, "phase_seconds");
        for (int p = 0; p < DIST_PHASE_COUNT; p++) d_num(&d, dist_phase_name((DistPhase)p), r->timers.max[p]);
        d_close(&d);
        d = d_open(t, "phase_seconds_mean");
        for (int p = 0; p < DIST_PHASE_COUNT; p++) d_num(&d, dist_phase_name((DistPhase)p), r->timers.mean[p]);
        d_close(&d);
    }
    {
        Doc d = d_open(t, "metrics");
        if (e) {
            d_model_metrics(&d, &e->model, e->num_classes);
            d_num(&d, "kl_to_rt", e->kl_to_rt);
            d_num(&d, "avg_gap", e->avg_gap);
        } else {
            const char *names[] = {"forget_acc", "retain_acc", "test_acc", "test_acc_remaining",
                                   "per_class_test_acc", "mia", "mia_remaining", "kl_to_rt", "avg_gap"};
            for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) d_null(&d, names[i]);
        }
        d_null(&d, "train_acc");
        d_close(&d);
    }
    if (e && e->has_rt) {
        Doc d = d_open(t, "rt_metrics");
        d_model_metrics(&d, &e->rt, e->num_classes);
        d_close(&d);
    } else {
        d_null(t, "rt_metrics");
    }
    if (e && e->mia_on && e->n_forget > 0) {
        Doc d = d_open(t, "mia_attack");
        d_str(&d, "feature", "softmax entropy");
        d_str(&d, "model", "logistic regression, balanced class weights, multinomial (sklearn lbfgs equivalent)");
        d_num(&d, "C", e->model.mia_fit.C);
        d_num(&d, "coef", e->model.mia_fit.coef);
        d_num(&d, "intercept", e->model.mia_fit.intercept);
        d_bool(&d, "converged", e->model.mia_fit.converged);
        d_num(&d, "coef_remaining", e->model.mia_fit_remaining.coef);
        d_num(&d, "intercept_remaining", e->model.mia_fit_remaining.intercept);
        d_int(&d, "n_member", e->n_retain);
        d_int(&d, "n_nonmember", e->n_test);
        d_int(&d, "n_nonmember_remaining", e->n_test_remaining);
        d_int(&d, "n_target", e->n_forget);
        d_close(&d);
    } else {
        d_null(t, "mia_attack");
    }
    {
        Doc d = d_open(t, "sets");
        const char *names[] = {"forget", "retain", "test", "test_remaining"};
        const int64_t v[] = {e ? e->n_forget : 0, e ? e->n_retain : 0, e ? e->n_test : 0,
                             e ? e->n_test_remaining : 0};
        for (int i = 0; i < 4; i++) {
            if (e) d_int(&d, names[i], v[i]);
            else d_null(&d, names[i]);
        }
        d_close(&d);
    }
    {
        Doc d = d_open(t, "split");
        d_str(&d, "kind", split_kind_name(cfg->split.kind));
        if (job->has_split) {
            d_str(&d, "sha256", job->split.sha256);
            d_int(&d, "nforget", job->split.nforget);
            d_int(&d, "nretain", job->split.nretain);
            char file[JOB_PATH_MAX + 64];
            snprintf(file, sizeof file, "%s/%s", job->run_dir, SPLIT_FILE_NAME);
            d_str(&d, "file", file);
        } else {
            d_null(&d, "sha256");
            d_null(&d, "nforget");
            d_null(&d, "nretain");
            d_null(&d, "file");
        }
        if (cfg->split.kind == SPLIT_CLASSES) {
            double cls[SPLIT_MAX_CLASSES];
            for (int i = 0; i < cfg->split.nclasses; i++) cls[i] = cfg->split.classes[i];
            d_nums(&d, "classes", cls, cfg->split.nclasses);
        } else {
            d_null(&d, "classes");
        }
        d_num(&d, "fraction", cfg->split.kind == SPLIT_FRACTION ? cfg->split.fraction : NAN);
        d_close(&d);
    }
    {
        Doc d = d_open(t, "checkpoints");
        d_path(&d, "model", cfg->model.checkpoint);
        d_path(&d, "rt", cfg->eval.rt_checkpoint);
        d_null(&d, "output");
        d_path(&d, "run", job->checkpoint_path);
        d_bool(&d, "resumed", job->resume);
        d_close(&d);
    }
    {
        Doc d = d_open(t, "config");
        d_str(&d, "job", cfg->job_path);
        d_str(&d, "sha256", cfg->sha256);
        char resolved[JOB_PATH_MAX + 32];
        snprintf(resolved, sizeof resolved, "%s/config.yaml", job->run_dir);
        d_str(&d, "resolved", resolved);
        d_close(&d);
    }
    d_str(t, "run_dir", job->run_dir);
    {
        Doc d = d_open(t, "provenance");
        d_str(&d, "version", report_version());
        d_str(&d, "git", report_git_describe());
        d_str(&d, "compiler", report_compiler());
        d_str(&d, "flags", report_build_flags());
        d_str(&d, "hdf5", h5_library_version());
        d_str(&d, "blas", kern_blas_config());
        d_str(&d, "mpi", dist_mpi_library());
        d_int(&d, "ranks", job->nranks);
        d_int(&d, "threads", job->threads);
        d_str(&d, "host", dist_hostname());
        d_str(&d, "line", job->provenance);
        d_close(&d);
    }
    d_num(t, "arena_high_water_mib", r->arena_mib);

    /* everything else, in the order first set: top-level keys, then other sections */
    j_rest_of_section(&jj, r, "");
    for (int i = 0; i < r->n; i++) {
        if (r->f[i].written) continue;
        const char *sec = r->f[i].section;
        j_open(&jj, sec);
        j_rest_of_section(&jj, r, sec);
        j_close(&jj);
    }
    j_close(&jj);
    fputc('\n', out);
}

void report_write(Report *r, Job *job)
{
    dist_timers_reduce(&job->timers, &r->timers);
    double v[2] = {ul_now() - job->t_start, (double)arena_high_water(&job->arena) / (1024.0 * 1024.0)};
    dist_allreduce_max_double(v, 2);
    r->wall_seconds = v[0];
    r->arena_mib = v[1];
    r->reduced = true;
    snprintf(r->path, sizeof r->path, "%s/%s", job->run_dir, REPORT_FILE_NAME);
    UlError err = {0};
    if (job->rank == 0) {
        char tmp[JOB_PATH_MAX + 64];
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", r->path, (long)getpid());
        FILE *f = fopen(tmp, "w");
        if (!f) {
            ul_error_set(&err, "cannot write '%s': %s", tmp, strerror(errno));
        } else {
            write_json(f, r, job);
            bool bad = ferror(f) != 0;
            if (fclose(f) != 0 || bad) {
                ul_error_set(&err, "writing '%s' failed: %s", tmp, strerror(errno));
                remove(tmp);
            } else if (!runctl_publish_file(tmp, r->path, &err)) {
                remove(tmp);
            }
        }
    }
    if (dist_agree_error(&err)) dist_exit(REPORT_EXIT_IO);
}

/* ---- the table ---------------------------------------------------------------------------------------------- */

static const char *fmt2(double v, char *buf, size_t cap)
{
    if (isfinite(v)) snprintf(buf, cap, "%.2f", v);
    else snprintf(buf, cap, "-");
    return buf;
}

static void table_row(const char *name, double m, double rt, bool has_rt)
{
    char a[32], b[32], c[32];
    printf("  %-30s %10s %10s %10s\n", name, fmt2(m, a, sizeof a), has_rt ? fmt2(rt, b, sizeof b) : "",
           has_rt ? fmt2(fabs(m - rt), c, sizeof c) : "");
}

void report_print_table(const Report *r, const Job *job)
{
    if (job->rank != 0) return;
    const EvalResult *e = r->has_eval ? &r->eval : NULL;
    printf("\nunlearn %s '%s': %d rank%s x %d thread%s, %.1f s", job->command, job->cfg->name, job->nranks,
           job->nranks == 1 ? "" : "s", job->threads, job->threads == 1 ? "" : "s", r->wall_seconds);
    if (e) printf(" (evaluation %.1f s)", e->seconds);
    printf("\n");
    if (e) {
        bool rt = e->has_rt;
        printf("  %-30s %10s %10s %10s\n", "metric (percent)", "model", rt ? "RT" : "", rt ? "|gap|" : "");
        table_row("FA  forget accuracy", e->model.forget_acc, e->rt.forget_acc, rt);
        table_row("RA  retain accuracy", e->model.retain_acc, e->rt.retain_acc, rt);
        table_row("TA  test accuracy", e->model.test_acc, e->rt.test_acc, rt);
        table_row("MIA entropy attack", e->model.mia, e->rt.mia, rt);
        if (rt) {
            char a[32];
            printf("  %-30s %10s %10s %10s\n", "Avg.Gap (FA, RA, TA, MIA)", "", "", fmt2(e->avg_gap, a, sizeof a));
        }
        if (e->class_split) {
            table_row("TA  remaining classes", e->model.test_acc_remaining, e->rt.test_acc_remaining, rt);
            table_row("MIA remaining classes", e->model.mia_remaining, e->rt.mia_remaining, rt);
        }
        if (rt) printf("  %-30s %10.4f\n", "KL(RT || model) on D_f, nats", e->kl_to_rt);
        printf("  per-class test accuracy:");
        for (int c = 0; c < e->num_classes && c < 100; c++) {
            char a[32];
            printf("%s %d:%s", c % 10 == 0 && c ? "\n                          " : "", c,
                   fmt2(e->model.per_class_test_acc[c], a, sizeof a));
        }
        if (e->num_classes > 100) printf(" ... (%d classes; all in report.json)", e->num_classes);
        printf("\n  sets: forget %lld, retain %lld, test %lld\n", (long long)e->n_forget, (long long)e->n_retain,
               (long long)e->n_test);
    }
    printf("  time by phase (s, max over ranks):");
    for (int p = 0; p < DIST_PHASE_COUNT; p++)
        printf(" %s %.2f", dist_phase_name((DistPhase)p), r->timers.max[p]);
    printf("\n  arena high water %.1f MiB\n", r->arena_mib);
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->f[i].section, "checkpoints") == 0 && r->f[i].kind == RK_STR)
            printf("  %s: %s\n", r->f[i].key, r->f[i].str);
    printf("  report: %s\n", r->path);
    fflush(stdout);
}

/* ---- provenance -------------------------------------------------------------------------------------------- */

const char *report_version(void) { return UNLEARN_VERSION; }

const char *report_git_describe(void)
{
#ifdef UL_GIT_DESCRIBE
    return UL_GIT_DESCRIBE;
#else
    return "unknown";
#endif
}

const char *report_compiler(void)
{
#if defined(__clang__)
    return "clang " __VERSION__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#else
    return "unknown";
#endif
}

const char *report_build_flags(void)
{
#ifdef UL_BUILD_FLAGS
    return UL_BUILD_FLAGS;
#else
    return "inferred:"
#ifdef __OPTIMIZE__
           " optimised"
#else
           " -O0"
#endif
#ifdef __FAST_MATH__
           " -ffast-math"
#endif
#ifdef _OPENMP
           " -fopenmp"
#endif
#ifdef __SANITIZE_ADDRESS__
           " -fsanitize=address"
#endif
#ifdef __AVX512F__
           " avx512f"
#elif defined(__AVX2__)
           " avx2"
#elif defined(__AVX__)
           " avx"
#endif
#ifdef __FMA__
           " fma"
#endif
        ;
#endif
}

void report_provenance_line(char *buf, size_t cap, int threads)
{
    char mpi[768];
    dist_provenance(mpi, sizeof mpi);
    snprintf(buf, cap, "unlearn %s (git %s); %s; flags %s; hdf5 %s; blas %s; %s; threads=%d", report_version(),
             report_git_describe(), report_compiler(), report_build_flags(), h5_library_version(), kern_blas_config(),
             mpi, threads);
}
