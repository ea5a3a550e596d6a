/*
 * test_config.c - the job-file layer (src/config.c): defaults, --set overrides, ${...} expansion, the forget split,
 * the resolved YAML (round trip and hash), thread resolution, and every error message (with its file and line).
 * Serial (links the -DUL_SERIAL dist layer). Job texts are written inline, so the expected line numbers can be
 * counted by eye.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "dist.h"
#include "testutil.h"

static Config g_cfg, g_cfg2;

/* A minimal valid job: lines 1-4. */
#define MINIMAL "name: t1\ndata:\n  path: data/x.h5\nmodel: {arch: mlp}\n"

static bool load(Config *cfg, const char *text, int nset, char *const *sets, UlError *err)
{
    memset(err, 0, sizeof *err);
    return config_load_text(cfg, "job.yaml", text, strlen(text), nset, sets, err);
}

/* Loads text (+ sets) expecting failure with exactly the message `want` (when exact) or a message containing it. */
static void expect_error(const char *what, const char *text, int nset, char *const *sets, const char *want, bool exact)
{
    UlError err;
    bool ok = load(&g_cfg, text, nset, sets, &err);
    bool match = !ok && err.failed && (exact ? strcmp(err.msg, want) == 0 : strstr(err.msg, want) != NULL);
    TU_CHECK(match, "%s: want %s \"%s\", got %s \"%s\"", what, exact ? "exactly" : "a message containing", want,
             ok ? "success" : "error", err.msg);
    if (match) printf("ok   %-40s -> %s\n", what, err.msg);
}

static void expect_ok(const char *what, Config *cfg, const char *text, int nset, char *const *sets)
{
    UlError err;
    bool ok = load(cfg, text, nset, sets, &err);
    TU_CHECK(ok && !err.failed, "%s: unexpected error: %s", what, err.msg);
}

static void test_defaults(void)
{
    /* The CIFAR-10 SFR-on defaults, shared/reference/sfr-on.md §1.5 and §1.10 (written down there, not taken from
       our output). */
    config_defaults(&g_cfg);
    const Config *c = &g_cfg;
    TU_CHECK(c->unlearn.method == METHOD_SFRON, "method default %d", (int)c->unlearn.method);
    TU_CHECK(c->unlearn.iters == 1500, "iters default %d", c->unlearn.iters);
    TU_CHECK(c->unlearn.forget_freq == 5, "forget_freq default %d", c->unlearn.forget_freq);
    TU_CHECK(c->unlearn.lr == 0.01, "lr default %g", c->unlearn.lr);
    TU_CHECK(c->unlearn.optimizer == OPTIM_SGD, "optimizer default");
    TU_CHECK(c->unlearn.momentum == 0.9, "momentum default %g", c->unlearn.momentum);
    TU_CHECK(c->unlearn.weight_decay == 5e-4, "weight decay default %g", c->unlearn.weight_decay);
    TU_CHECK(c->unlearn.alpha == 25.0, "alpha default %g", c->unlearn.alpha);
    TU_CHECK(c->unlearn.schedule == SCHED_COSINE && c->unlearn.alpha_schedule == SCHED_COSINE, "cosine defaults");
    TU_CHECK(c->unlearn.clip == 7.0, "clip default %g", c->unlearn.clip);
    TU_CHECK(c->unlearn.lambda == 0.5, "lambda default %g", c->unlearn.lambda);
    TU_CHECK(c->unlearn.gamma == 1.0, "gamma default %g", c->unlearn.gamma);
    TU_CHECK(c->unlearn.beta == 1.0, "beta default %g", c->unlearn.beta);
    TU_CHECK(c->unlearn.mask == MASK_FISHER, "mask default");
    TU_CHECK(c->unlearn.batch_size == 128 && c->unlearn.forget_batch_size == 128, "batch defaults");
    /* the brief's other defaults */
    TU_CHECK(c->seed == 0 && !c->data.cache && c->data.normalize && c->data.augment == AUGMENT_NONE, "data defaults");
    TU_CHECK(c->model.hidden.n == 1 && c->model.hidden.v[0] == 256, "model.hidden default [256]");
    TU_CHECK(c->runtime.threads == 0 && c->runtime.arena_mb == 2048 && c->runtime.progress, "runtime defaults");
    TU_CHECK(strcmp(c->run_dir, "runs/${name}") == 0, "run_dir default (unexpanded before load): %s", c->run_dir);
    TU_CHECK(c->checkpoint.resume == RESUME_AUTO, "resume default");
    TU_CHECK(c->split.kind == SPLIT_NONE, "no split by default");

    /* the table: every key has help, the count matches, lookups work */
    int n = 0;
    const ConfigKey *keys = config_keys(&n);
    TU_CHECK(n == CFG_KEY_COUNT && n > 60, "key count %d", n);
    int no_help = 0;
    for (int i = 0; i < n; i++) no_help += !keys[i].help || !keys[i].help[0];
    TU_CHECK(no_help == 0, "%d keys without help", no_help);
    TU_CHECK(config_find_key("unlearn.lambda") && config_find_key("unlearn.lambda")->kind == CFG_DOUBLE, "find key");
    TU_CHECK(config_find_key("unlearn.lamda") == NULL, "no such key");
    TU_CHECK(strcmp(config_enum_name("model.arch", ARCH_FMNIST_CNN), "fmnist-cnn") == 0, "enum name");
    TU_CHECK(strcmp(config_enum_name("train.optimizer", OPTIM_ADAMW), "adamw") == 0, "optim enum name");
}

static void test_load_and_overrides(void)
{
    const char *job = "name: demo\n"                          /* 1 */
                      "seed: 7\n"                             /* 2 */
                      "data:\n"                               /* 3 */
                      "  path: data/fashion-mnist.h5\n"       /* 4 */
                      "  augment: crop_flip\n"                /* 5 */
                      "model: {arch: fmnist-cnn, hidden: [64, 32]}\n" /* 6 */
                      "unlearn:\n"                            /* 7 */
                      "  lambda: 0.25\n"                      /* 8 */
                      "  optimizer: adam\n"                   /* 9 */
                      "  mia_unused_section_marker: 0\n";     /* 10: removed below */
    char text[1024];
    snprintf(text, sizeof text, "%.*s", (int)(strstr(job, "  mia_unused") - job), job);
    expect_ok("load a job", &g_cfg, text, 0, NULL);
    const Config *c = &g_cfg;
    TU_CHECK(strcmp(c->name, "demo") == 0 && c->seed == 7, "name/seed");
    TU_CHECK(strcmp(c->data.path, "data/fashion-mnist.h5") == 0, "data.path %s", c->data.path);
    TU_CHECK(c->data.augment == AUGMENT_CROP_FLIP && c->model.arch == ARCH_FMNIST_CNN, "enums");
    TU_CHECK(c->model.hidden.n == 2 && c->model.hidden.v[0] == 64 && c->model.hidden.v[1] == 32, "int list");
    TU_CHECK(c->unlearn.lambda == 0.25 && c->unlearn.optimizer == OPTIM_ADAM, "unlearn keys");
    TU_CHECK(c->unlearn.iters == 1500, "untouched key keeps its default");
    TU_CHECK(strcmp(c->run_dir, "runs/demo") == 0, "run_dir expanded: %s", c->run_dir);
    TU_CHECK(strcmp(c->train.out, "runs/demo/model.h5") == 0, "nested expansion: %s", c->train.out);
    char where[256];
    TU_CHECK(strcmp(config_where(c, "unlearn.lambda", where, sizeof where), "job.yaml:8") == 0, "where: %s", where);
    TU_CHECK(c->origin[config_find_key("unlearn.iters") - config_keys(NULL)] == CFG_FROM_DEFAULT, "origin default");

    char *sets[] = {"unlearn.lambda=0.75", "model.hidden=[512,256,128]", "data.cache=yes", "unlearn.lambda=0.125",
                    "name=other", "unlearn.schedule=LINEAR"};
    expect_ok("load with --set", &g_cfg, text, 6, sets);
    TU_CHECK(c->unlearn.lambda == 0.125, "the last --set wins: %g", c->unlearn.lambda);
    TU_CHECK(c->model.hidden.n == 3 && c->model.hidden.v[2] == 128, "--set list");
    TU_CHECK(c->data.cache, "--set bool");
    TU_CHECK(c->unlearn.schedule == SCHED_LINEAR, "--set enum (case-insensitive)");
    TU_CHECK(strcmp(c->run_dir, "runs/other") == 0, "expansion after --set: %s", c->run_dir);
    TU_CHECK(strcmp(config_where(c, "unlearn.lambda", where, sizeof where), "--set unlearn.lambda") == 0, "where %s",
             where);

    /* dotted keys in the file are the same keys */
    expect_ok("dotted keys in YAML", &g_cfg, MINIMAL "unlearn.iters: 50\ntrain: {lr: 0.5}\n", 0, NULL);
    TU_CHECK(g_cfg.unlearn.iters == 50 && g_cfg.train.lr == 0.5, "dotted and flow keys");

    /* ${env:VAR} */
    setenv("UNLEARN_TEST_SCRATCH", "/scratch/me", 1);
    expect_ok("env expansion", &g_cfg,
              "name: e\ndata: {path: '${env:UNLEARN_TEST_SCRATCH}/d.h5'}\nmodel: {arch: mlp}\n", 0, NULL);
    TU_CHECK(strcmp(g_cfg.data.path, "/scratch/me/d.h5") == 0, "env expansion: %s", g_cfg.data.path);
    expect_ok("int expansion", &g_cfg, MINIMAL "seed: 3\nrun_dir: out/${name}-s${seed}-${model.arch}\n", 0, NULL);
    TU_CHECK(strcmp(g_cfg.run_dir, "out/t1-s3-mlp") == 0, "non-string expansion: %s", g_cfg.run_dir);
}

static void test_errors(void)
{
    /* unknown keys, with line and did-you-mean */
    expect_error("unknown key, did you mean", MINIMAL "unlearn:\n  iters: 10\n  lamda: 0.5\n", 0, NULL,
                 "job.yaml:7: unknown key 'unlearn.lamda'; did you mean 'unlearn.lambda'?", true);
    expect_error("unknown section", MINIMAL "unlern:\n  iters: 10\n", 0, NULL,
                 "job.yaml:5: unknown key 'unlern'; did you mean 'unlearn'?", true);
    expect_error("leaf suggestion", MINIMAL "lr: 0.1\n", 0, NULL,
                 "job.yaml:5: unknown key 'lr'; did you mean one of 'train.lr', 'unlearn.lr'?", true);
    expect_error("no suggestion", MINIMAL "zzzzqqq: 1\n", 0, NULL, "job.yaml:5: unknown key 'zzzzqqq'", true);
    /* types */
    expect_error("wrong type int", MINIMAL "unlearn: {iters: many}\n", 0, NULL,
                 "job.yaml:5: unlearn.iters: expected an integer, got 'many'", true);
    expect_error("float for int", MINIMAL "train:\n  epochs: 2.5\n", 0, NULL,
                 "job.yaml:6: train.epochs: expected an integer, got '2.5'", true);
    expect_error("wrong type number", MINIMAL "unlearn:\n  alpha: high\n", 0, NULL,
                 "job.yaml:6: unlearn.alpha: expected a number, got 'high'", true);
    expect_error("duplicate section", MINIMAL "data:\n  cache: maybe\n", 0, NULL,
                 "job.yaml:5: duplicate key 'data' (first given at line 2)", true);
    expect_error("wrong type bool", "name: a\nmodel: {arch: mlp}\ndata:\n  path: p\n  cache: maybe\n", 0, NULL,
                 "job.yaml:5: data.cache: expected true or false, got 'maybe'", true);
    expect_error("list for scalar", MINIMAL "seed: [1, 2]\n", 0, NULL,
                 "job.yaml:5: seed: expected an integer, got a list", true);
    expect_error("bad list element", MINIMAL "model.hidden: [64, x]\n", 0, NULL,
                 "job.yaml:5: model.hidden: expected an integer, got 'x'", true);
    expect_error("int overflow", MINIMAL "train: {subset: 99999999999}\n", 0, NULL,
                 "job.yaml:5: train.subset: 99999999999 does not fit in a 32-bit integer", true);
    expect_error("int64 overflow", MINIMAL "seed: 99999999999999999999\n", 0, NULL,
                 "job.yaml:5: seed: 99999999999999999999 does not fit in a 64-bit integer", true);
    expect_error("transposed typo", MINIMAL "unlearn: {itres: 3}\n", 0, NULL,
                 "job.yaml:5: unknown key 'unlearn.itres'; did you mean 'unlearn.iters'?", true);
    expect_error("section as value", "name: a\ndata: 5\nmodel: {arch: mlp}\n", 0, NULL,
                 "job.yaml:2: 'data' is a section, not a value; give its keys (data.path, data.cache, data.normalize, "
                 "data.augment)",
                 true);
    expect_error("duplicate key", MINIMAL "unlearn:\n  iters: 1\n  iters: 2\n", 0, NULL,
                 "job.yaml:7: duplicate key 'unlearn.iters' (first given at line 6)", true);
    /* ranges */
    expect_error("out of range", MINIMAL "unlearn:\n  iters: 0\n", 0, NULL,
                 "job.yaml:6: unlearn.iters: 0 is out of range [1, 1000000000]", true);
    expect_error("open lower bound", MINIMAL "unlearn:\n  lr: 0\n", 0, NULL,
                 "job.yaml:6: unlearn.lr: 0 is out of range (0, 10]", true);
    expect_error("open upper bound", MINIMAL "unlearn: {momentum: 1}\n", 0, NULL,
                 "job.yaml:5: unlearn.momentum: 1 is out of range [0, 1)", true);
    expect_error("dotted duplicate", MINIMAL "unlearn.iters: 3\nunlearn: {iters: 4}\n", 0, NULL,
                 "job.yaml:6: duplicate key 'unlearn.iters' (first given at line 5)", true);
    expect_error("list element range", "name: a\ndata: {path: p}\nmodel:\n  arch: mlp\n  hidden: [16, 0]\n", 0, NULL,
                 "job.yaml:5: model.hidden: 0 is out of range [1, 1048576]", true);
    /* enums */
    expect_error("bad enum", MINIMAL "unlearn: {method: sfr}\n", 0, NULL,
                 "job.yaml:5: unlearn.method: 'sfr' is not one of sfron, ft, ga, rl, salun, l1, scrub, bt; did you "
                 "mean 'sfron'?",
                 true);
    expect_error("bad enum no hint", "name: a\ndata: {path: p}\nmodel: {arch: transformer}\n", 0, NULL,
                 "job.yaml:3: model.arch: 'transformer' is not one of mlp, fmnist-cnn, resnet18-cifar", true);
    /* malformed YAML */
    expect_error("malformed: unclosed flow", "name: a\ndata: {path: p\nmodel: {arch: mlp}\n", 0, NULL,
                 "malformed YAML", false);
    {
        UlError err;
        load(&g_cfg, "name: a\ndata:\n  path: p\n   cache: true\nmodel: {arch: mlp}\n", 0, NULL, &err);
        TU_CHECK(strncmp(err.msg, "job.yaml:4: malformed YAML: mapping values are not allowed", 58) == 0,
                 "malformed YAML names line 4 and libyaml's problem: %s", err.msg);
        printf("     malformed example: %s\n", err.msg);
        load(&g_cfg, "name: a\n\tdata: 1\n", 0, NULL, &err);
        TU_CHECK(strncmp(err.msg, "job.yaml:2: malformed YAML: ", 28) == 0, "tab indentation, line 2: %s", err.msg);
    }
    expect_error("two documents", MINIMAL "---\nname: b\n", 0, NULL,
                 "job.yaml:6: malformed YAML: more than one YAML document", false);
    expect_error("top level list", "- a\n- b\n", 0, NULL,
                 "job.yaml:1: expected a mapping of keys (key: value lines) at the top level, got a list", true);
    /* required keys */
    expect_error("missing data.path", "name: a\nmodel: {arch: mlp}\n", 0, NULL,
                 "job.yaml: missing required key 'data.path'", false);
    expect_error("missing name", "data: {path: p}\nmodel: {arch: mlp}\n", 0, NULL,
                 "job.yaml: missing required key 'name'", false);
    expect_error("empty file", "", 0, NULL, "job.yaml: missing required key 'name'", false);
    expect_error("missing arch", "name: a\ndata: {path: p}\n", 0, NULL, "job.yaml: missing required key 'model.arch'",
                 false);
    /* --set */
    char *s1[] = {"unlearn.lamda=0.3"};
    expect_error("--set unknown", MINIMAL, 1, s1,
                 "--set unlearn.lamda=0.3: unknown key 'unlearn.lamda'; did you mean 'unlearn.lambda'?", true);
    char *s2[] = {"unlearn.iters=-5"};
    expect_error("--set out of range", MINIMAL, 1, s2,
                 "--set unlearn.iters=-5: unlearn.iters: -5 is out of range [1, 1000000000]", true);
    char *s3[] = {"unlearn.iters"};
    expect_error("--set without =", MINIMAL, 1, s3, "--set unlearn.iters: expected key=value", false);
    char *s4[] = {"model.hidden=[1,"};
    expect_error("--set malformed value", MINIMAL, 1, s4,
                 "--set model.hidden=[1,: malformed value: did not find expected node content", false);
    char *s5[] = {"unlearn=3"};
    expect_error("--set a section", MINIMAL, 1, s5, "--set unlearn=3: 'unlearn' is a section, not a value", false);
    char *s6[] = {"data.path="};
    expect_error("--set a required string empty", MINIMAL, 1, s6, "--set data.path: data.path is empty (", false);
    expect_error("empty required string", "name: ''\ndata: {path: p}\nmodel: {arch: mlp}\n", 0, NULL,
                 "job.yaml:1: name is empty (", false);
    expect_error("unknown reference", MINIMAL "run_dir: ${nme}\n", 0, NULL,
                 "job.yaml:5: run_dir: '${nme}' in \"${nme}\" names no key; did you mean 'name'?", true);
    /* ${...} */
    expect_error("unset env", MINIMAL "run_dir: ${env:UNLEARN_SURELY_NOT_SET_42}/x\n", 0, NULL,
                 "job.yaml:5: run_dir: environment variable UNLEARN_SURELY_NOT_SET_42", false);
    expect_error("cycle", MINIMAL "run_dir: ${train.out}\ntrain: {out: '${run_dir}/m'}\n", 0, NULL,
                 "nest too deeply", false);
    expect_error("unclosed ref", MINIMAL "run_dir: ${name\n", 0, NULL, "job.yaml:5: run_dir: '${' without a closing",
                 false);
}

static void test_split(void)
{
    expect_ok("classes", &g_cfg, MINIMAL "forget: {classes: [9, 3]}\n", 0, NULL);
    TU_CHECK(g_cfg.split.kind == SPLIT_CLASSES && g_cfg.split.nclasses == 2 && g_cfg.split.classes[0] == 9 &&
                 g_cfg.split.classes[1] == 3,
             "classes split");
    expect_ok("fraction", &g_cfg, MINIMAL "forget:\n  fraction: 0.1\n  seed: 42\n", 0, NULL);
    TU_CHECK(g_cfg.split.kind == SPLIT_FRACTION && g_cfg.split.fraction == 0.1 && g_cfg.split.seed == 42,
             "fraction split");
    expect_ok("fraction default seed", &g_cfg, MINIMAL "forget: {fraction: 0.5}\n", 0, NULL);
    TU_CHECK(g_cfg.split.kind == SPLIT_FRACTION && g_cfg.split.seed == 0, "fraction seed default 0");
    expect_ok("indices", &g_cfg, MINIMAL "forget: {indices: lists/forget.txt}\n", 0, NULL);
    TU_CHECK(g_cfg.split.kind == SPLIT_INDICES && strcmp(g_cfg.split.indices_path, "lists/forget.txt") == 0,
             "indices split");
    expect_ok("no split", &g_cfg, MINIMAL, 0, NULL);
    TU_CHECK(g_cfg.split.kind == SPLIT_NONE, "no split");
    expect_ok("single class as scalar", &g_cfg, MINIMAL "forget: {classes: 4}\n", 0, NULL);
    TU_CHECK(g_cfg.split.kind == SPLIT_CLASSES && g_cfg.split.nclasses == 1 && g_cfg.split.classes[0] == 4, "scalar");

    /* an override replaces the file's split (and a fraction's seed) */
    char *s1[] = {"forget.classes=[1]"};
    expect_ok("--set replaces split", &g_cfg, MINIMAL "forget: {fraction: 0.2, seed: 5}\n", 1, s1);
    TU_CHECK(g_cfg.split.kind == SPLIT_CLASSES && g_cfg.split.nclasses == 1 && g_cfg.split.classes[0] == 1,
             "override kind");
    char *s2[] = {"forget.seed=9"};
    expect_ok("--set seed", &g_cfg, MINIMAL "forget: {fraction: 0.2, seed: 5}\n", 1, s2);
    TU_CHECK(g_cfg.split.kind == SPLIT_FRACTION && g_cfg.split.seed == 9, "override seed");

    expect_error("two kinds", MINIMAL "forget:\n  classes: [1]\n  fraction: 0.1\n", 0, NULL,
                 "job.yaml:7: forget: give exactly one of classes, fraction, indices ('forget.classes' is given at "
                 "line 6)",
                 true);
    expect_error("seed without fraction", MINIMAL "forget:\n  classes: [1]\n  seed: 3\n", 0, NULL,
                 "job.yaml:7: forget.seed applies only to forget.fraction", true);
    expect_error("fraction 0", MINIMAL "forget: {fraction: 0}\n", 0, NULL,
                 "job.yaml:5: forget.fraction: 0 is out of range (0, 1)", true);
    expect_error("fraction 1", MINIMAL "forget: {fraction: 1.0}\n", 0, NULL,
                 "job.yaml:5: forget.fraction: 1.0 is out of range (0, 1)", true);
    expect_error("empty classes", MINIMAL "forget:\n  classes: []\n", 0, NULL, "job.yaml:6: forget.classes is empty",
                 true);
    expect_error("duplicate class", MINIMAL "forget:\n  classes: [2, 5, 2]\n", 0, NULL,
                 "job.yaml:6: forget.classes: class 2 is listed twice", true);
    expect_error("negative class", MINIMAL "forget:\n  classes: [-1]\n", 0, NULL,
                 "job.yaml:6: forget.classes: -1 is out of range", false);
    expect_error("empty indices", MINIMAL "forget:\n  indices: ''\n", 0, NULL,
                 "job.yaml:6: forget.indices is empty (give a file of train indices)", true);
    expect_error("unknown forget key", MINIMAL "forget:\n  clases: [1]\n", 0, NULL,
                 "job.yaml:6: unknown key 'forget.clases'; did you mean 'forget.classes'?", true);
    expect_error("forget as list", MINIMAL "forget: [1, 2]\n", 0, NULL, "job.yaml:5: 'forget' is a section", false);
}

static void test_resolved_roundtrip(void)
{
    char *sets[] = {"unlearn.alpha=2.5", "runtime.dist_mode=replicated", "model.checkpoint=runs/a \"b\"\\c.h5"};
    const char *job = "name: rt\ndata: {path: data/fashion-mnist.h5, cache: true}\nmodel: {arch: mlp, hidden: [8]}\n"
                      "forget: {fraction: 0.3, seed: 11}\nunlearn: {lr: 0.1, gamma: 3.0000000000000004}\n";
    expect_ok("load for round trip", &g_cfg, job, 3, sets);
    char *text = config_to_yaml(&g_cfg);
    expect_ok("reload the resolved text", &g_cfg2, text, 0, NULL);
    char *text2 = config_to_yaml(&g_cfg2);
    TU_CHECK(strcmp(text, text2) == 0, "resolved text is a fixed point:\n%s\n---\n%s", text, text2);
    TU_CHECK(strcmp(g_cfg.sha256, g_cfg2.sha256) == 0 && strlen(g_cfg.sha256) == 64, "hash stable: %s vs %s",
             g_cfg.sha256, g_cfg2.sha256);
    TU_CHECK(g_cfg2.unlearn.gamma == 3.0000000000000004, "doubles round-trip exactly: %.17g", g_cfg2.unlearn.gamma);
    TU_CHECK(strcmp(g_cfg2.model.checkpoint, "runs/a \"b\"\\c.h5") == 0, "quoted string round-trips: %s",
             g_cfg2.model.checkpoint);
    TU_CHECK(g_cfg2.split.kind == SPLIT_FRACTION && g_cfg2.split.seed == 11 && g_cfg2.split.fraction == 0.3,
             "split round-trips");
    TU_CHECK(g_cfg2.runtime.dist_mode == DIST_MODE_REPLICATED && g_cfg2.data.cache, "enum/bool round-trip");
    /* every key appears in the resolved text */
    int n = 0, missing = 0;
    const ConfigKey *keys = config_keys(&n);
    for (int i = 0; i < n; i++) {
        if (strncmp(keys[i].path, "forget.", 7) == 0) continue;
        char needle[128];
        const char *leaf = strrchr(keys[i].path, '.');
        snprintf(needle, sizeof needle, "%s%s: ", leaf ? "\n  " : "\n", leaf ? leaf + 1 : keys[i].path);
        if (!strstr(text, needle)) {
            missing++;
            printf("FAIL key %s missing from the resolved text\n", keys[i].path);
        }
    }
    TU_CHECK(missing == 0, "%d keys missing from the resolved text", missing);
    TU_CHECK(strstr(text, "\n  indices:") == NULL && strstr(text, "\n  classes:") == NULL, "only the given split kind");
    /* a different value gives a different hash */
    char *sets2[] = {"unlearn.alpha=2.5", "runtime.dist_mode=replicated", "model.checkpoint=runs/a \"b\"\\c.h5",
                     "unlearn.iters=1499"};
    expect_ok("load changed", &g_cfg2, job, 4, sets2);
    TU_CHECK(strcmp(g_cfg.sha256, g_cfg2.sha256) != 0, "hash changes with a value");

    /* written file equals the text, and loads */
    char path[] = "/tmp/unlearn-test-config-XXXXXX";
    int fd = mkstemp(path);
    TU_CHECK(fd >= 0, "mkstemp");
    if (fd >= 0) {
        close(fd);
        UlError err = {0};
        TU_CHECK(config_write_resolved(&g_cfg, path, &err), "write resolved: %s", err.msg);
        FILE *f = fopen(path, "rb");
        char back[16384] = "";
        size_t got = f ? fread(back, 1, sizeof back - 1, f) : 0;
        if (f) fclose(f);
        back[got] = '\0';
        TU_CHECK(strcmp(back, text) == 0, "written file equals config_to_yaml");
        memset(&err, 0, sizeof err);
        TU_CHECK(config_load(&g_cfg2, path, 0, NULL, &err) && strcmp(g_cfg2.sha256, g_cfg.sha256) == 0,
                 "config_load of the written file: %s", err.msg);
        remove(path);
    }
    UlError err = {0};
    TU_CHECK(!config_load(&g_cfg2, "/nonexistent/job.yaml", 0, NULL, &err) &&
                 strcmp(err.msg, "/nonexistent/job.yaml: cannot open the job file: No such file or directory") == 0,
             "missing job file: %s", err.msg);
    free(text);
    free(text2);
}

static void test_threads(void)
{
    expect_ok("threads job", &g_cfg, MINIMAL, 0, NULL);
    UlError err = {0};
    const char *src = NULL;
    unsetenv("SLURM_CPUS_PER_TASK");
    unsetenv("OMP_NUM_THREADS");
    TU_CHECK(config_threads(&g_cfg, &src, &err) == 1 && strcmp(src, "default") == 0, "threads default 1");
    setenv("OMP_NUM_THREADS", "3,2", 1);
    TU_CHECK(config_threads(&g_cfg, &src, &err) == 3 && strcmp(src, "OMP_NUM_THREADS") == 0, "OMP_NUM_THREADS list");
    setenv("SLURM_CPUS_PER_TASK", "5", 1);
    TU_CHECK(config_threads(&g_cfg, &src, &err) == 5 && strcmp(src, "SLURM_CPUS_PER_TASK") == 0, "slurm first");
    g_cfg.runtime.threads = 2;
    TU_CHECK(config_threads(&g_cfg, &src, &err) == 2 && strcmp(src, "runtime.threads") == 0, "explicit wins");
    g_cfg.runtime.threads = 0;
    setenv("SLURM_CPUS_PER_TASK", "lots", 1);
    TU_CHECK(config_threads(&g_cfg, &src, &err) == 0 && err.failed &&
                 strstr(err.msg, "SLURM_CPUS_PER_TASK='lots'") != NULL,
             "bad env: %s", err.msg);
    unsetenv("SLURM_CPUS_PER_TASK");
    unsetenv("OMP_NUM_THREADS");
}

static void test_serial_dist(void)
{
    /* the serial twin: rank 0 of 1, reductions leave buffers as they are, agreement returns the local state */
    TU_CHECK(dist_rank() == 0 && dist_size() == 1, "serial rank/size");
    float x[3] = {1.5f, -2.0f, 3.25f}, want[3] = {1.5f, -2.0f, 3.25f};
    dist_allreduce_sum_float(x, 3);
    dist_reduce_sum_float(x, 3, 0);
    dist_bcast(x, sizeof x, 0);
    tu_compare("serial collectives leave the buffer", x, want, 3, 0, 0);
    UlError ok = {0};
    TU_CHECK(dist_agree_error(&ok) == 0, "no error agreed");
    TU_CHECK(config_same_on_all_ranks(&g_cfg, &ok) && !ok.failed, "same config on one rank");
    int64_t g[1];
    dist_allgather_int64(42, g);
    TU_CHECK(g[0] == 42, "allgather");
    DistTimers t;
    dist_timers_reset(&t);
    dist_timer_start(&t, DIST_PHASE_IO);
    dist_timer_stop(&t, DIST_PHASE_IO);
    DistTimerStats st;
    dist_timers_reduce(&t, &st);
    TU_CHECK(st.max[DIST_PHASE_IO] == t.seconds[DIST_PHASE_IO] && st.min[DIST_PHASE_IO] == st.max[DIST_PHASE_IO] &&
                 st.max[DIST_PHASE_IO] >= 0,
             "serial timers");
    TU_CHECK(strcmp(dist_phase_name(DIST_PHASE_ALLREDUCE), "allreduce") == 0, "phase name");
    char prov[256];
    dist_provenance(prov, sizeof prov);
    TU_CHECK(strstr(prov, "ranks=1; nodes=1") != NULL, "provenance: %s", prov);
}

int main(int argc, char **argv)
{
    dist_init(&argc, &argv);
    test_defaults();
    test_load_and_overrides();
    test_errors();
    test_split();
    test_resolved_roundtrip();
    test_threads();
    test_serial_dist();
    int rc = tu_finish("test_config");
    dist_exit(rc);
}
