/* test_ckpt.c - checkpoints: bitwise round trip, the documented checksum, corruption and truncation, every
   model-mismatch message, and atomic saves that never leave a partial file under the final name. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "h5io.h"
#include "sha256.h"
#include "testutil.h"

static char dir[256];

static void expect_error(const char *what, int rc, const UlError *err, const char *n1, const char *n2)
{
    bool ok = rc != 0 && err->failed && (!n1 || strstr(err->msg, n1)) && (!n2 || strstr(err->msg, n2));
    TU_CHECK(ok, "%s: rc %d, message \"%s\" (want \"%s\" and \"%s\")", what, rc, err->msg, n1 ? n1 : "",
             n2 ? n2 : "");
    if (ok) printf("ok   %-40s -> %s\n", what, err->msg);
}

/* The "model": parameters and buffers with distinct shapes, and its flat buffers. */
typedef struct Model {
    ParamTable params, buffers;
    float *param, *buf, *m, *v;
} Model;

static void model_build(Model *md, int conv_cin, bool extra_fc2, bool drop_fc_bias, bool big)
{
    params_init(&md->params);
    params_init(&md->buffers);
    params_add(&md->params, "conv1.weight", 4, (int[]){4, conv_cin, 3, 3});
    params_add(&md->params, "conv1.bias", 1, (int[]){4});
    params_add(&md->params, "fc.weight", 2, (int[]){10, 36});
    if (!drop_fc_bias) params_add(&md->params, "fc.bias", 1, (int[]){10});
    if (extra_fc2) params_add(&md->params, "fc2.weight", 2, (int[]){3, 10});
    if (big) params_add(&md->params, "big.weight", 2, (int[]){256, 300});
    params_add(&md->buffers, "bn1.running_mean", 1, (int[]){4});
    params_add(&md->buffers, "bn1.running_var", 1, (int[]){4});
    md->param = params_alloc(&md->params);
    md->m = params_alloc(&md->params);
    md->v = params_alloc(&md->params);
    md->buf = params_alloc(&md->buffers);
}

static void model_fill(Model *md, unsigned long long seed)
{
    tu_fill(md->param, md->params.total, seed, -1.0f, 1.0f);
    tu_fill(md->m, md->params.total, seed + 1, -0.01f, 0.01f);
    tu_fill(md->v, md->params.total, seed + 2, 0.0f, 0.001f);
    tu_fill(md->buf, md->buffers.total, seed + 3, 0.5f, 2.0f);
    /* values a lossy path would change: signed zero, a subnormal, infinity, a NaN with a payload */
    uint32_t nan_bits = 0x7fc01234u;
    float nan;
    memcpy(&nan, &nan_bits, sizeof nan);
    md->param[0] = -0.0f;
    md->param[1] = 1e-40f;
    md->param[2] = INFINITY;
    md->m[3] = nan;
}

static void model_free(Model *md)
{
    free(md->param);
    free(md->m);
    free(md->v);
    free(md->buf);
    params_free(&md->params);
    params_free(&md->buffers);
}

/* Bitwise equality of every view (the alignment padding between views is not stored). */
static bool views_equal(const ParamTable *pt, const float *x, const float *y)
{
    for (int i = 0; i < pt->count; i++)
        if (memcmp(x + pt->views[i].offset, y + pt->views[i].offset, pt->views[i].n * sizeof(float)) != 0) {
            printf("     view '%s' differs\n", pt->views[i].name);
            return false;
        }
    return true;
}

static void content_of(Model *md, CkptContent *c, CkptSection *sec, bool with_state)
{
    sec[0] = (CkptSection){.group = "params", .table = &md->params, .data = md->param};
    sec[1] = (CkptSection){.group = "buffers", .table = &md->buffers, .data = md->buf};
    sec[2] = (CkptSection){.group = "state/m", .table = &md->params, .data = md->m};
    sec[3] = (CkptSection){.group = "state/v", .table = &md->params, .data = md->v};
    memset(c, 0, sizeof *c);
    c->sections = sec;
    c->nsections = with_state ? 4 : 2;
    snprintf(c->meta.arch, sizeof c->meta.arch, "fmnist-cnn");
    snprintf(c->meta.model_spec, sizeof c->meta.model_spec, "arch: fmnist-cnn\nin: [1, 28, 28]\nclasses: 10");
    snprintf(c->meta.config_hash, sizeof c->meta.config_hash, "c0ffee");
    snprintf(c->meta.split_sha256, sizeof c->meta.split_sha256, "%064d", 7);
    c->meta.step = 1234;
    c->meta.epoch = 3;
    c->meta.batch = 17;
    c->meta.nrng = 3;
    c->meta.rng[0] = 0xffffffffffffffffULL;
    c->meta.rng[1] = 0;
    c->meta.rng[2] = 0x8000000000000001ULL;
}

static void copy_file(const char *from, const char *to, double fraction)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    TU_CHECK(in && out, "copy %s -> %s", from, to);
    if (in && out) {
        fseek(in, 0, SEEK_END);
        long size = ftell(in);
        fseek(in, 0, SEEK_SET);
        char *buf = malloc((size_t)size);
        if (fread(buf, 1, (size_t)size, in) == (size_t)size) fwrite(buf, 1, (size_t)((double)size * fraction), out);
        free(buf);
    }
    if (in) fclose(in);
    if (out) fclose(out);
}

/* Files in dir whose name contains needle. */
static int count_files(const char *d, const char *needle)
{
    DIR *dp = opendir(d);
    int n = 0;
    for (struct dirent *e; dp && (e = readdir(dp));) n += strstr(e->d_name, needle) != NULL;
    if (dp) closedir(dp);
    return n;
}

static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The checksum as ckpt.h documents it, recomputed from the in-memory sections. */
static void documented_checksum(const CkptContent *c, char hex[65])
{
    char *names[64];
    int n = 0;
    for (int s = 0; s < c->nsections; s++)
        for (int v = 0; v < c->sections[s].table->count; v++) {
            names[n] = malloc(256);
            snprintf(names[n], 256, "%s/%s", c->sections[s].group, c->sections[s].table->views[v].name);
            n++;
        }
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    Sha256 h;
    sha256_init(&h);
    for (int i = 0; i < n; i++) {
        for (int s = 0; s < c->nsections; s++) {
            size_t gl = strlen(c->sections[s].group);
            if (strncmp(names[i], c->sections[s].group, gl) != 0 || names[i][gl] != '/') continue;
            int v = params_find(c->sections[s].table, names[i] + gl + 1);
            if (v < 0) continue;
            const ParamView *pv = &c->sections[s].table->views[v];
            sha256_update(&h, names[i], strlen(names[i]) + 1);
            uint8_t le[8 * 5];
            int64_t dims[5] = {pv->ndim};
            for (int d = 0; d < pv->ndim; d++) dims[1 + d] = pv->shape[d];
            for (int k = 0; k <= pv->ndim; k++)
                for (int b = 0; b < 8; b++) le[8 * k + b] = (uint8_t)((uint64_t)dims[k] >> (8 * b));
            sha256_update(&h, le, 8 * ((size_t)pv->ndim + 1));
            for (size_t k = 0; k < pv->n; k++) {
                uint32_t u;
                memcpy(&u, c->sections[s].data + pv->offset + k, 4);
                uint8_t fb[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
                sha256_update(&h, fb, 4);
            }
        }
        free(names[i]);
    }
    uint8_t d[32];
    sha256_final(&h, d);
    sha256_hex(d, hex);
}

static void test_roundtrip(const char *path)
{
    Model a, b;
    model_build(&a, 3, false, false, false);
    model_build(&b, 3, false, false, false);
    model_fill(&a, 1);
    CkptContent ca, cb;
    CkptSection sa[4], sb[4];
    content_of(&a, &ca, sa, true);
    content_of(&b, &cb, sb, true);
    memset(&cb.meta, 0, sizeof cb.meta);
    UlError err = {0};
    TU_CHECK(ckpt_save(path, &ca, &err) == 0, "save: %s", err.msg);
    TU_CHECK(count_files(dir, ".tmp.") == 0, "a temporary file was left behind");
    TU_CHECK(ckpt_load(path, "fmnist-cnn", &cb, &err) == 0, "load: %s", err.msg);
    TU_CHECK(views_equal(&a.params, a.param, b.param), "params not bitwise equal");
    TU_CHECK(views_equal(&a.buffers, a.buf, b.buf), "buffers not bitwise equal");
    TU_CHECK(views_equal(&a.params, a.m, b.m), "state m not bitwise equal (NaN payload?)");
    TU_CHECK(views_equal(&a.params, a.v, b.v), "state v not bitwise equal");
    TU_CHECK(sb[0].loaded && sb[1].loaded && sb[2].loaded && sb[3].loaded, "loaded flags");
    const CkptMeta *m = &cb.meta;
    TU_CHECK(strcmp(m->arch, "fmnist-cnn") == 0 && strcmp(m->model_spec, ca.meta.model_spec) == 0 &&
                 strcmp(m->config_hash, "c0ffee") == 0 && strcmp(m->split_sha256, ca.meta.split_sha256) == 0,
             "string metadata");
    TU_CHECK(m->step == 1234 && m->epoch == 3 && m->batch == 17, "position %lld %lld %lld", (long long)m->step,
             (long long)m->epoch, (long long)m->batch);
    TU_CHECK(m->nrng == 3 && memcmp(m->rng, ca.meta.rng, 3 * sizeof(uint64_t)) == 0, "rng state");

    /* the stored checksum is the documented one */
    char want[65], got[65] = "";
    documented_checksum(&ca, want);
    H5File *f = h5_open(path, H5IO_READ, &err);
    if (f) {
        h5_read_attr_str(f, "/", "checksum", got, sizeof got, &err);
        TU_CHECK(h5_kind(f, "params/conv1.weight") == H5IO_DATASET && h5_kind(f, "state/v/fc.bias") == H5IO_DATASET,
                 "layout: params/<name>, state/<kind>/<name>");
        h5_close(f, NULL);
    }
    TU_CHECK(strcmp(got, want) == 0, "checksum %s, documented formula gives %s", got, want);

    /* sections may be loaded selectively; an optional absent section leaves its buffer alone */
    Model c3;
    model_build(&c3, 3, false, false, false);
    float *slow = params_alloc(&c3.params);
    slow[0] = 42.0f;
    CkptSection s3[3] = {{.group = "params", .table = &c3.params, .data = c3.param},
                         {.group = "buffers", .table = &c3.buffers, .data = c3.buf},
                         {.group = "state/slow", .table = &c3.params, .data = slow, .optional = true}};
    CkptContent cc = {.sections = s3, .nsections = 3};
    TU_CHECK(ckpt_load(path, NULL, &cc, &err) == 0 && s3[0].loaded && !s3[2].loaded && slow[0] == 42.0f,
             "optional absent section: %s", err.msg);
    TU_CHECK(views_equal(&a.params, c3.param, a.param), "selective load params");
    s3[2].optional = false;
    err = (UlError){0};
    expect_error("required section missing", ckpt_load(path, NULL, &cc, &err), &err, "no group 'state/slow'",
                 "state 'slow' of 'conv1.weight'");
    free(slow);
    model_free(&c3);

    /* inspect */
    CkptInfo in;
    TU_CHECK(ckpt_inspect(path, &in, &err) == 0, "inspect: %s", err.msg);
    TU_CHECK(in.nentries == 4 + 2 + 4 + 4 && strcmp(in.checksum, want) == 0,
             "inspect: %d entries, checksum %s", in.nentries, in.checksum);
    bool sorted = true;
    for (int i = 1; i < in.nentries; i++) sorted = sorted && strcmp(in.entries[i - 1].name, in.entries[i].name) < 0;
    int i_conv = -1;
    for (int i = 0; i < in.nentries; i++)
        if (strcmp(in.entries[i].name, "params/conv1.weight") == 0) i_conv = i;
    TU_CHECK(sorted && i_conv >= 0 && in.entries[i_conv].ndim == 4 && in.entries[i_conv].shape[1] == 3 &&
                 in.entries[i_conv].n == 108, "inspect entries");
    ckpt_info_free(&in);
    model_free(&a);
    model_free(&b);
}

static void test_mismatch(const char *path)
{
    UlError err;
    CkptContent c;
    CkptSection s[4];
    Model md;

    model_build(&md, 1, false, false, false);
    content_of(&md, &c, s, false);
    err = (UlError){0};
    char want[400];
    snprintf(want, sizeof want, "%s: parameter 'conv1.weight' has shape [4, 3, 3, 3], the model expects [4, 1, 3, 3]",
             path);
    expect_error("parameter shape", ckpt_load(path, "fmnist-cnn", &c, &err), &err, want, NULL);
    model_free(&md);

    model_build(&md, 3, true, false, false);
    content_of(&md, &c, s, false);
    err = (UlError){0};
    expect_error("missing parameter", ckpt_load(path, "fmnist-cnn", &c, &err), &err,
                 "parameter 'fc2.weight' is missing (the model expects shape [3, 10])", NULL);
    model_free(&md);

    model_build(&md, 3, false, true, false);
    content_of(&md, &c, s, false);
    err = (UlError){0};
    expect_error("extra parameter", ckpt_load(path, "fmnist-cnn", &c, &err), &err,
                 "parameter 'fc.bias' is in the checkpoint but not in the model", NULL);
    model_free(&md);

    model_build(&md, 3, false, false, false);
    content_of(&md, &c, s, false);
    err = (UlError){0};
    snprintf(want, sizeof want, "%s: checkpoint is for arch 'fmnist-cnn', the job uses 'mlp'", path);
    expect_error("wrong arch", ckpt_load(path, "mlp", &c, &err), &err, want, NULL);
    /* a buffer and a state with the wrong shape */
    ParamTable bt, st;
    params_init(&bt);
    params_add(&bt, "bn1.running_mean", 1, (int[]){4});
    params_add(&bt, "bn1.running_var", 1, (int[]){5});
    float *bb = params_alloc(&bt);
    s[1].table = &bt;
    s[1].data = bb;
    err = (UlError){0};
    expect_error("buffer shape", ckpt_load(path, NULL, &c, &err), &err,
                 "buffer 'bn1.running_var' has shape [4], the model expects [5]", NULL);
    params_init(&st);
    params_add(&st, "conv1.weight", 4, (int[]){4, 3, 3, 3});
    params_add(&st, "conv1.bias", 1, (int[]){4});
    params_add(&st, "fc.weight", 2, (int[]){10, 36});
    params_add(&st, "fc.bias", 2, (int[]){10, 1});
    float *sm = params_alloc(&st);
    CkptSection s2[3] = {{.group = "params", .table = &md.params, .data = md.param},
                         {.group = "buffers", .table = &md.buffers, .data = md.buf},
                         {.group = "state/m", .table = &st, .data = sm}};
    CkptContent c2 = {.sections = s2, .nsections = 3};
    err = (UlError){0};
    expect_error("state shape", ckpt_load(path, NULL, &c2, &err), &err,
                 "state 'm' of 'fc.bias' has shape [10], the model expects [10, 1]", NULL);
    free(bb);
    free(sm);
    params_free(&bt);
    params_free(&st);
    model_free(&md);
}

static void test_damage(const char *path)
{
    Model md;
    model_build(&md, 3, false, false, false);
    CkptContent c;
    CkptSection s[4];
    content_of(&md, &c, s, true);
    UlError err;
    char bad[400];

    /* one flipped bit inside fc.weight's data: find its first 16 bytes in the file */
    Model ref;
    model_build(&ref, 3, false, false, false);
    model_fill(&ref, 1);
    int fcw = params_find(&ref.params, "fc.weight");
    const float *needle = ref.param + ref.params.views[fcw].offset;
    snprintf(bad, sizeof bad, "%s/flipped.h5", dir);
    copy_file(path, bad, 1.0);
    FILE *fp = fopen(bad, "r+b");
    bool flipped = false;
    if (fp) {
        fseek(fp, 0, SEEK_END);
        long size = ftell(fp);
        fseek(fp, 0, SEEK_SET);
        unsigned char *buf = malloc((size_t)size);
        if (fread(buf, 1, (size_t)size, fp) == (size_t)size)
            for (long off = 0; off + 16 <= size && !flipped; off++)
                if (memcmp(buf + off, needle, 16) == 0) {
                    buf[off + 9] ^= 0x10;
                    fseek(fp, 0, SEEK_SET);
                    flipped = fwrite(buf, 1, (size_t)size, fp) == (size_t)size;
                }
        free(buf);
        fclose(fp);
    }
    TU_CHECK(flipped, "could not find fc.weight's bytes in the file");
    err = (UlError){0};
    expect_error("checksum mismatch (load)", ckpt_load(bad, "fmnist-cnn", &c, &err), &err, bad, "checksum mismatch");
    CkptInfo in;
    err = (UlError){0};
    expect_error("checksum mismatch (inspect)", ckpt_inspect(bad, &in, &err), &err, bad, "checksum mismatch");

    snprintf(bad, sizeof bad, "%s/truncated.h5", dir);
    copy_file(path, bad, 0.6);
    err = (UlError){0};
    expect_error("truncated checkpoint", ckpt_load(bad, "fmnist-cnn", &c, &err), &err, bad, "truncated");

    /* wrong format, wrong version, non-float32 data: edited copies */
    struct { const char *name; int what; const char *n1; } cases[] = {
        {"v2.h5", 0, "attribute 'format_version' is 2; this build reads checkpoint version 1"},
        {"fmt.h5", 1, "attribute 'format' is \"unlearn-dataset\"; expected \"unlearn-checkpoint\""},
        {"f64.h5", 2, "dataset 'params/extra' has type float64; checkpoint data must be float32"},
        {"noarch.h5", 3, "attribute 'arch' on the root group has type int64; a string"},
    };
    for (int k = 0; k < 4; k++) {
        snprintf(bad, sizeof bad, "%s/%s", dir, cases[k].name);
        copy_file(path, bad, 1.0);
        err = (UlError){0};
        H5File *f = h5_open(bad, H5IO_RDWR, &err);
        TU_CHECK(f != NULL, "open rw: %s", err.msg);
        if (!f) continue;
        int64_t two = 2, one = 1;
        double d = 1.0;
        if (cases[k].what == 0) h5_write_attr(f, "/", "format_version", H5IO_I64, 0, &two, &err);
        if (cases[k].what == 1) h5_write_attr_str(f, "/", "format", "unlearn-dataset", &err);
        if (cases[k].what == 2) h5_write_dataset(f, "params/extra", H5IO_F64, H5IO_F64, 1, &one, &d, 0, 0, &err);
        if (cases[k].what == 3) h5_write_attr(f, "/", "arch", H5IO_I64, 0, &one, &err);
        h5_close(f, &err);
        TU_CHECK(!err.failed, "editing %s: %s", bad, err.msg);
        err = (UlError){0};
        expect_error(cases[k].name, ckpt_load(bad, NULL, &c, &err), &err, bad, cases[k].n1);
    }
    /* an inconsistent state group: state/m/fc.bias shaped differently from params/fc.bias */
    ParamTable st;
    params_init(&st);
    params_add(&st, "fc.bias", 1, (int[]){5});
    float *sm = params_alloc(&st);
    CkptSection s2[2] = {{.group = "params", .table = &md.params, .data = md.param},
                         {.group = "state/m", .table = &st, .data = sm}};
    CkptContent c2 = {.sections = s2, .nsections = 2};
    snprintf(c2.meta.arch, sizeof c2.meta.arch, "x");
    snprintf(bad, sizeof bad, "%s/inconsistent.h5", dir);
    err = (UlError){0};
    TU_CHECK(ckpt_save(bad, &c2, &err) == 0, "save: %s", err.msg);
    expect_error("state does not match its parameter", ckpt_inspect(bad, &in, &err), &err,
                 "'state/m/fc.bias' has shape [5] but parameter 'fc.bias' has [10]", NULL);
    free(sm);
    params_free(&st);
    model_free(&ref);
    model_free(&md);
}

static void test_atomic(const char *good)
{
    UlError err;
    Model md;
    model_build(&md, 3, false, false, true);
    model_fill(&md, 5);
    CkptContent c;
    CkptSection s[4];
    content_of(&md, &c, s, true);

    /* an unwritable directory: a missing one, and one the process may not write to (/sys as root, where mode bits
       do not stop root; a read-only directory otherwise) */
    char path[400], ro[300];
    snprintf(path, sizeof path, "%s/no/such/dir/ckpt.h5", dir);
    err = (UlError){0};
    expect_error("save into a missing directory", ckpt_save(path, &c, &err), &err, "cannot create", NULL);
    TU_CHECK(!exists(path), "a file appeared under the final name");
    if (geteuid() == 0) {
        snprintf(ro, sizeof ro, "/sys");
    } else {
        snprintf(ro, sizeof ro, "%s/readonly", dir);
        mkdir(ro, 0555);
        chmod(ro, 0555);
    }
    snprintf(path, sizeof path, "%s/unlearn-test-ckpt.h5", ro);
    err = (UlError){0};
    expect_error("save into an unwritable directory", ckpt_save(path, &c, &err), &err, "cannot create", NULL);
    TU_CHECK(!exists(path) && count_files(ro, "unlearn-test-ckpt") == 0, "a file appeared in %s", ro);

    /* a write that fails halfway (file size limit): the old checkpoint under the final name survives intact and
       no temporary file remains */
    snprintf(path, sizeof path, "%s/atomic.h5", dir);
    copy_file(good, path, 1.0);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 64 * 1024;  /* the big checkpoint is ~1.2 MB */
    signal(SIGXFSZ, SIG_IGN);
    TU_CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit");
    err = (UlError){0};
    int rc = ckpt_save(path, &c, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    expect_error("save that runs out of space", rc, &err, "atomic.h5", NULL);
    TU_CHECK(count_files(dir, "atomic.h5.tmp") == 0, "the temporary file was left behind");
    Model back, ref;
    model_build(&back, 3, false, false, false);
    model_build(&ref, 3, false, false, false);
    model_fill(&ref, 1);
    CkptContent cb;
    CkptSection sb[4];
    content_of(&back, &cb, sb, true);
    err = (UlError){0};
    TU_CHECK(ckpt_load(path, "fmnist-cnn", &cb, &err) == 0, "the old checkpoint is damaged: %s", err.msg);
    TU_CHECK(views_equal(&ref.params, back.param, ref.param), "old checkpoint content changed");
    /* without the limit the same save succeeds and replaces it */
    err = (UlError){0};
    TU_CHECK(ckpt_save(path, &c, &err) == 0, "unlimited save: %s", err.msg);
    model_free(&back);
    model_free(&ref);
    model_free(&md);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_ckpt.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char path[300];
    snprintf(path, sizeof path, "%s/ckpt.h5", dir);
    test_roundtrip(path);
    test_mismatch(path);
    test_damage(path);
    test_atomic(path);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "chmod -R u+w '%s'; rm -rf '%s'", dir, dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", dir);
    return tu_finish("test_ckpt");
}
