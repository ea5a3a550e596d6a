/*
 * main.c - the command line: a table of subcommands. Every command runs on every rank (under mpirun or srun, or
 * alone as rank 0 of 1); errors are agreed across ranks (dist_agree_error), printed once by rank 0, and all ranks
 * leave together through dist_exit. Exit codes: 0 success, 2 bad input or usage, 1 internal error (ul_fatal).
 *
 *     unlearn check JOB.yaml... [--set key=value]... [--print]
 *     unlearn train|forget|eval JOB.yaml [--set key=value]...
 *     unlearn info FILE
 *     unlearn keys
 *     unlearn --help | --version
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "config.h"
#include "data.h"
#include "dist.h"
#include "eval.h"
#include "forget.h"
#include "info.h"
#include "kern.h"
#include "model.h"
#include "report.h"
#include "runctl.h"
#include "split.h"
#include "train.h"


enum { EXIT_OK = 0, EXIT_BAD_INPUT = 2 };

typedef int (*CommandFn)(int argc, char **argv);

static int cmd_check(int argc, char **argv);
static int cmd_keys(int argc, char **argv);

static const struct Command {
    const char *name;
    CommandFn fn;
    const char *args;
    const char *help;
} g_commands[] = {
    {"check", cmd_check, "JOB.yaml... [--set key=value]... [--print]",
     "validate jobs (keys, types, ranges, dataset, model, forget split) without running them; --print shows each "
     "resolved job"},
    {"train", cmd_train, "JOB.yaml [--set key=value]...", "train a model (train.on: retain trains the RT reference)"},
    {"forget", cmd_forget, "JOB.yaml [--set key=value]...", "unlearn the forget set from model.checkpoint"},
    {"eval", cmd_eval, "JOB.yaml [--set key=value]...", "evaluate model.checkpoint (accuracies, MIA, gap to RT)"},
    {"info", cmd_info, "FILE", "describe a dataset or checkpoint file and validate it"},
    {"keys", cmd_keys, "", "list every job key with its type, default and meaning"},
};
#define NCOMMANDS ((int)(sizeof g_commands / sizeof g_commands[0]))

static void print_usage(FILE *out)
{
    /* Everything below is printed by rank 0 only. */
    fprintf(out, "unlearn %s - distributed machine unlearning (SFR-on and baselines)\n\nusage:\n", report_version());
    for (int i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  unlearn %s%s%s\n      %s\n", g_commands[i].name, *g_commands[i].args ? " " : "",
                g_commands[i].args, g_commands[i].help);
    fprintf(out, "  unlearn --help | --version\n\n"
                 "Run under mpirun/srun for several ranks. --set overrides any job key (`unlearn keys` lists them);\n"
                 "values are YAML: --set model.hidden=[512,256].\n"
                 "Exit status: 0 ok, 1 internal or I/O error, 2 bad input, 3 stopped by a signal after a complete\n"
                 "checkpoint (requeue or rerun to resume), 4 NaN/Inf loss (diagnostics in RUN_DIR/nonfinite.json).\n");
}

/* Agrees err across ranks; on an error every rank exits with EXIT_BAD_INPUT (rank 0 printed the message). */
static void agree_or_exit(UlError *err)
{
    if (dist_agree_error(err)) dist_exit(EXIT_BAD_INPUT);
}

/* ---- the job commands' common start ----------------------------------------------------------------------- */

typedef struct JobArgs {
    char **jobs;         /* JOB.yaml files (pointing into argv); owned array */
    int njobs;           /* 1, or several for check */
    char **sets;         /* "key=value" strings (pointing into argv); owned array */
    int nset;
    bool print;          /* check --print */
} JobArgs;

/* Parses "JOB.yaml [--set k=v | --set=k=v]..." (argv[0] is the command name); `check` also takes several job
   files and --print. */
static void parse_job_args(int argc, char **argv, bool is_check, JobArgs *a, UlError *err)
{
    memset(a, 0, sizeof *a);
    a->jobs = UL_MALLOC(ul_mul_size((size_t)(argc > 0 ? argc : 1), sizeof(char *)));
    a->sets = UL_MALLOC(ul_mul_size((size_t)(argc > 0 ? argc : 1), sizeof(char *)));
    for (int i = 1; i < argc; i++) {
        char *s = argv[i];
        if (strcmp(s, "--set") == 0) {
            if (i + 1 >= argc) {
                ul_error_set(err, "unlearn %s: --set needs key=value", argv[0]);
                return;
            }
            a->sets[a->nset++] = argv[++i];
        } else if (strncmp(s, "--set=", 6) == 0) {
            a->sets[a->nset++] = s + 6;
        } else if (is_check && strcmp(s, "--print") == 0) {
            a->print = true;
        } else if (s[0] == '-' && s[1] != '\0') {
            ul_error_set(err, "unlearn %s: unknown option '%s' (see unlearn --help)", argv[0], s);
            return;
        } else if (a->njobs == 1 && !is_check) {
            ul_error_set(err, "unlearn %s: more than one job file ('%s' and '%s')", argv[0], a->jobs[0], s);
            return;
        } else {
            a->jobs[a->njobs++] = s;
        }
    }
    if (a->njobs == 0) ul_error_set(err, "unlearn %s: missing the job file (unlearn %s JOB.yaml)", argv[0], argv[0]);
}

/* COLLECTIVE. Loads and validates job file `job` (with args' --set overrides) on every rank, checks that every
   rank resolved the same job, and sets this rank's BLAS/OpenMP threads. Exits on every rank on bad input. */
static Config *job_load(const JobArgs *args, const char *job)
{
    UlError err = {0};
    Config *cfg = UL_MALLOC(sizeof *cfg);
    config_load(cfg, job, args->nset, args->sets, &err);
    agree_or_exit(&err);
    config_same_on_all_ranks(cfg, &err);
    agree_or_exit(&err);
    const char *source = NULL;
    int threads = config_threads(cfg, &source, &err);
    agree_or_exit(&err);
    kern_set_threads(threads);
    return cfg;
}

static void job_args_free(JobArgs *args)
{
    free(args->jobs);
    free(args->sets);
}

/* ---- check ----------------------------------------------------------------------------------------------------- */

/* A checkpoint the job names may not exist yet (a train job queued before it writes it): a note, not an error. */
static void note_missing(const Config *cfg, const char *key, const char *path, char *out, size_t cap)
{
    if (!path[0] || access(path, R_OK) == 0) return;
    char where[CFG_STRING_MAX + 64];
    snprintf(out, cap, "  note     %s: %s '%s' is not readable yet (written by an earlier job?)\n",
             config_where(cfg, key, where, sizeof where), key, path);
}

/* Everything `check` validates beyond the YAML, on this rank. Fills err; summary gets a few lines for rank 0. */
static void check_job(const Config *cfg, char *summary, size_t cap, UlError *err)
{
    char where[CFG_STRING_MAX + 64];
    DataOptions opt;
    data_options_default(&opt);
    opt.normalize = cfg->data.normalize;
    opt.cache = false; /* validation reads labels only */
    Dataset ds;
    if (data_open(&ds, cfg->data.path, &opt, err) != 0) {
        UlError e2 = {0};
        ul_error_set(&e2, "%s: data.path: %s", config_where(cfg, "data.path", where, sizeof where), err->msg);
        *err = e2;
        data_close(&ds);
        return;
    }
    const DataSplit *tr = &ds.split[DATA_TRAIN], *te = &ds.split[DATA_TEST];
    size_t used = 0;
    int w = snprintf(summary, cap, "  dataset  %s: %lld train + %lld test samples of %dx%dx%d, %d classes\n",
                     cfg->data.path, (long long)tr->n, (long long)te->n, tr->c, tr->h, tr->w, ds.num_classes);
    if (w > 0 && (size_t)w < cap) used = (size_t)w;

    /* the model must fit the data */
    ModelSpec spec = {0};
    ul_strlcpy(spec.arch, config_enum_name("model.arch", (int)cfg->model.arch), sizeof spec.arch);
    spec.in_channels = tr->c;
    spec.height = tr->h;
    spec.width = tr->w;
    spec.num_classes = ds.num_classes;
    if (cfg->model.arch == ARCH_MLP) {
        if (cfg->model.hidden.n > MODEL_MAX_HIDDEN) {
            ul_error_set(err, "%s: model.hidden: at most %d widths are supported, got %d",
                         config_where(cfg, "model.hidden", where, sizeof where), MODEL_MAX_HIDDEN,
                         cfg->model.hidden.n);
        } else {
            spec.nhidden = cfg->model.hidden.n;
            memcpy(spec.hidden, cfg->model.hidden.v, (size_t)spec.nhidden * sizeof(int));
        }
    }
    if (!err->failed) {
        UlError merr = {0};
        Model *m = model_create(&spec, &merr);
        if (!m) {
            ul_error_set(err, "%s: model.arch: %s", config_where(cfg, "model.arch", where, sizeof where), merr.msg);
        } else {
            w = snprintf(summary + used, cap - used, "  model    %s: %zu parameters\n", spec.arch, m->params.total);
            if (w > 0 && (size_t)w < cap - used) used += (size_t)w;
            model_free(m);
        }
    }

    /* the forget split resolves against the train labels */
    if (!err->failed && cfg->split.kind != SPLIT_NONE) {
        const char *key = cfg->split.kind == SPLIT_CLASSES    ? "forget.classes"
                          : cfg->split.kind == SPLIT_FRACTION ? "forget.fraction"
                                                              : "forget.indices";
        Split split = {0};
        UlError serr = {0};
        if (split_resolve(&split, &cfg->split, tr->labels, tr->n, ds.num_classes, &serr) != 0) {
            ul_error_set(err, "%s: %s: %s", config_where(cfg, key, where, sizeof where), key, serr.msg);
        } else {
            w = snprintf(summary + used, cap - used, "  forget   %s: %lld of %lld train samples (sha256 %.16s...)\n",
                         key, (long long)split.nforget, (long long)tr->n, split.sha256);
            if (w > 0 && (size_t)w < cap - used) used += (size_t)w;
        }
        split_free(&split);
    }
    note_missing(cfg, "model.checkpoint", cfg->model.checkpoint, summary + used, cap - used);
    used += strlen(summary + used);
    note_missing(cfg, "eval.rt_checkpoint", cfg->eval.rt_checkpoint, summary + used, cap - used);
    data_close(&ds);
}

static int cmd_check(int argc, char **argv)
{
    JobArgs args;
    UlError err = {0};
    parse_job_args(argc, argv, true, &args, &err);
    agree_or_exit(&err);
    char prov[512];
    dist_provenance(prov, sizeof prov);
    for (int j = 0; j < args.njobs; j++) { /* the first invalid job ends the command on every rank */
        Config *cfg = job_load(&args, args.jobs[j]);
        char summary[2048] = "";
        check_job(cfg, summary, sizeof summary, &err);
        agree_or_exit(&err);
        if (dist_rank() == 0) {
            if (args.print) {
                char *text = config_to_yaml(cfg);
                fputs(text, stdout);
                free(text);
            }
            printf("unlearn check: %s is valid (resolved job sha256 %.16s...)\n%s"
                   "  runtime  %d rank(s) x %d thread(s); %s\n",
                   args.jobs[j], cfg->sha256, summary, dist_size(), kern_threads(), prov);
            fflush(stdout);
        }
        free(cfg);
    }
    job_args_free(&args);
    return EXIT_OK;
}

/* ---- keys ------------------------------------------------------------------------------------------------ */

static int cmd_keys(int argc, char **argv)
{
    UlError err = {0};
    if (argc > 1) ul_error_set(&err, "unlearn keys: takes no arguments, got '%s'", argv[1]);
    agree_or_exit(&err);
    if (dist_rank() == 0) {
        config_print_keys(stdout);
        fflush(stdout);
    }
    return EXIT_OK;
}

/* ---- main: the table of contents -------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    runctl_install_signals(); /* first: a SIGUSR1/SIGTERM from Slurm only sets a flag the loops agree on */
    dist_init(&argc, &argv);
    kern_set_threads(1); /* explicit until a job's runtime.threads says otherwise (job_open) */
    UlError err = {0};
    const char *first = argc > 1 ? argv[1] : NULL;
    if (!first) {
        ul_error_set(&err, "no command given (unlearn --help lists them)");
        agree_or_exit(&err);
    }
    if (strcmp(first, "--help") == 0 || strcmp(first, "-h") == 0 || strcmp(first, "help") == 0) {
        if (dist_rank() == 0) print_usage(stdout);
        dist_exit(EXIT_OK);
    }
    if (strcmp(first, "--version") == 0) {
        if (dist_rank() == 0) printf("unlearn %s (%s; %s)\n", report_version(), dist_mpi_library(),
                                     kern_blas_config());
        dist_exit(EXIT_OK);
    }
    for (int i = 0; i < NCOMMANDS; i++)
        if (strcmp(first, g_commands[i].name) == 0) dist_exit(g_commands[i].fn(argc - 1, argv + 1));
    ul_error_set(&err, "unknown command '%s' (commands: check, train, forget, eval, info, keys; see unlearn --help)",
                 first);
    agree_or_exit(&err);
    dist_exit(EXIT_BAD_INPUT);
}
