/* info.c - `unlearn info FILE`; see include/info.h. */
#include "info.h"

#include <stdio.h>
#include <string.h>

#include "ckpt.h"
#include "common.h"
#include "data.h"
#include "h5io.h"

enum { INFO_OK = 0, INFO_BAD = 2 };

static void print_dataset(const Dataset *ds)
{
    printf("%s: %s version %d, valid\n", ds->path, DATA_FORMAT, DATA_FORMAT_VERSION);
    printf("  classes        %d\n", ds->num_classes);
    if (ds->has_stats) {
        printf("  normalisation  (x - mean) / std per channel (applied by the loader)\n  mean          ");
        for (int c = 0; c < ds->channels; c++) printf(" %.6f", (double)ds->mean[c]);
        printf("\n  std           ");
        for (int c = 0; c < ds->channels; c++) printf(" %.6f", (double)ds->std[c]);
        printf("\n");
    } else {
        printf("  normalisation  none (no mean/std attributes)\n");
    }
    printf("  %-6s %10s  %-24s %-8s %-16s %s\n", "split", "samples", "images", "dtype", "storage", "labels");
    for (int s = 0; s < DATA_NSPLITS; s++) {
        const DataSplit *sp = &ds->split[s];
        char shape[96], storage[48];
        snprintf(shape, sizeof shape, "[%lld, %d, %d, %d]", (long long)sp->n, sp->c, sp->h, sp->w);
        if (sp->chunk_rows > 0)
            snprintf(storage, sizeof storage, "chunks of %lld%s", (long long)sp->chunk_rows,
                     sp->nfilters ? ", compressed" : "");
        else
            snprintf(storage, sizeof storage, "contiguous");
        printf("  %-6s %10lld  %-24s %-8s %-16s %s\n", sp->name, (long long)sp->n, shape,
               sp->is_u8 ? "uint8" : "float32", storage, sp->label_type);
    }
    const int64_t *tr = ds->split[DATA_TRAIN].class_counts, *te = ds->split[DATA_TEST].class_counts;
    if (ds->num_classes <= 100) {
        printf("  %5s  %-24s %10s %10s\n", "class", "name", "train", "test");
        for (int k = 0; k < ds->num_classes; k++)
            printf("  %5d  %-24.24s %10lld %10lld\n", k, ds->class_names ? ds->class_names[k] : "", (long long)tr[k],
                   (long long)te[k]);
    } else {
        printf("  per-class counts, class:train/test\n");
        for (int k = 0; k < ds->num_classes; k++) {
            char cell[64];
            snprintf(cell, sizeof cell, "%d:%lld/%lld", k, (long long)tr[k], (long long)te[k]);
            printf("%s%-18s%s", k % 8 == 0 ? "  " : "", cell, (k % 8 == 7 || k == ds->num_classes - 1) ? "\n" : "");
        }
    }
    int empty = 0, first = -1;
    for (int k = 0; k < ds->num_classes; k++)
        if (tr[k] == 0) {
            if (first < 0) first = k;
            empty++;
        }
    if (empty) printf("  note: %d classes have no train samples (first: %d)\n", empty, first);
}

/* Prints the entries of one group ("params/", "buffers/") as a table; state groups as a count per kind. */
static void print_group(const CkptInfo *in, const char *prefix, const char *title, bool table)
{
    size_t pl = strlen(prefix);
    int count = 0;
    int64_t values = 0;
    for (int i = 0; i < in->nentries; i++)
        if (strncmp(in->entries[i].name, prefix, pl) == 0) {
            count++;
            values += in->entries[i].n;
        }
    if (!count) return;
    printf("  %s: %d tensors, %lld values\n", title, count, (long long)values);
    if (!table) return;
    for (int i = 0; i < in->nentries; i++) {
        const CkptEntry *e = &in->entries[i];
        if (strncmp(e->name, prefix, pl) != 0) continue;
        char shape[96];
        size_t k = (size_t)snprintf(shape, sizeof shape, "[");
        for (int d = 0; d < e->ndim && k < sizeof shape; d++)
            k += (size_t)snprintf(shape + k, sizeof shape - k, "%s%lld", d ? ", " : "", (long long)e->shape[d]);
        if (k < sizeof shape) snprintf(shape + k, sizeof shape - k, "]");
        printf("    %-44s %-22s %12lld\n", e->name + pl, shape, (long long)e->n);
    }
}

static void print_ckpt(const char *path, const CkptInfo *in)
{
    const CkptMeta *m = &in->meta;
    printf("%s: %s version %d, valid (checksum sha256 %.16s... verified)\n", path, CKPT_FORMAT, CKPT_FORMAT_VERSION,
           in->checksum);
    printf("  arch           %s\n", m->arch);
    if (m->model_spec[0]) {
        size_t len = strcspn(m->model_spec, "\n");
        printf("  model spec     %.*s%s\n", (int)(len > 200 ? 200 : len), m->model_spec,
               (len > 200 || m->model_spec[len]) ? " ..." : "");
    }
    printf("  position       step %lld, epoch %lld, batch %lld\n", (long long)m->step, (long long)m->epoch,
           (long long)m->batch);
    if (m->config_hash[0]) printf("  config hash    %s\n", m->config_hash);
    if (m->split_sha256[0]) printf("  forget set     sha256 %s\n", m->split_sha256);
    if (m->nrng) printf("  rng state      %d words\n", m->nrng);
    print_group(in, "params/", "parameters", true);
    print_group(in, "buffers/", "buffers", true);
    /* state kinds: state/<kind>/... */
    char seen[64][CKPT_STR_MAX];
    int nseen = 0;
    for (int i = 0; i < in->nentries; i++) {
        const char *n = in->entries[i].name;
        if (strncmp(n, "state/", 6) != 0) continue;
        const char *slash = strchr(n + 6, '/');
        if (!slash) continue;
        char prefix[CKPT_STR_MAX];
        snprintf(prefix, sizeof prefix, "%.*s", (int)(slash - n + 1), n);
        bool dup = false;
        for (int j = 0; j < nseen && !dup; j++) dup = strcmp(seen[j], prefix) == 0;
        if (dup || nseen == 64) continue;
        snprintf(seen[nseen++], CKPT_STR_MAX, "%s", prefix);
        char title[CKPT_STR_MAX + 32];
        snprintf(title, sizeof title, "%.*s (per parameter)", (int)strlen(prefix) - 1, prefix);
        print_group(in, prefix, title, false);
    }
}

/* Returns 0 when valid; fills err otherwise. Prints only when print. */
static int info_one(const char *path, bool print, UlError *err)
{
    H5File *f = h5_open(path, H5IO_READ, err);
    if (!f) return -1;
    char fmt[128] = "";
    int rc = 0;
    if (!h5_attr_exists(f, "/", "format")) {
        ul_error_set(err, "%s: no attribute 'format' on the root group: neither an unlearn dataset nor an unlearn "
                     "checkpoint", path);
        rc = -1;
    } else {
        rc = h5_read_attr_str(f, "/", "format", fmt, sizeof fmt, err);
    }
    h5_close(f, NULL);
    if (rc) return -1;
    if (strcmp(fmt, DATA_FORMAT) == 0) {
        DataOptions opt;
        data_options_default(&opt);
        Dataset ds;
        if (data_open(&ds, path, &opt, err)) return -1;
        if (print) print_dataset(&ds);
        data_close(&ds);
        return 0;
    }
    if (strcmp(fmt, CKPT_FORMAT) == 0) {
        CkptInfo in;
        if (ckpt_inspect(path, &in, err)) return -1;
        if (print) print_ckpt(path, &in);
        ckpt_info_free(&in);
        return 0;
    }
    ul_error_set(err, "%s: attribute 'format' is \"%s\"; expected \"%s\" or \"%s\"", path, fmt, DATA_FORMAT,
                 CKPT_FORMAT);
    return -1;
}

int cmd_info(int argc, char **argv)
{
    bool print = ul_log_rank() == 0;
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        if (print)
            fprintf(argc < 2 ? stderr : stdout,
                    "usage: unlearn info FILE...\n"
                    "  describes each dataset (%s) or checkpoint (%s) file and validates it\n"
                    "  with the checks a job makes; exit status 0 when every file is valid, 2 otherwise\n",
                    DATA_FORMAT, CKPT_FORMAT);
        return argc < 2 ? INFO_BAD : INFO_OK;
    }
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1]) {
            if (print) fprintf(stderr, "unlearn: error: unlearn info: unknown option '%s'\n", argv[i]);
            return INFO_BAD;
        }
    }
    for (int i = 1; i < argc; i++) {
        UlError err = {0};
        if (info_one(argv[i], print, &err)) {
            bad++;
            if (print) {
                fflush(stdout);
                fprintf(stderr, "unlearn: error: %s\n", err.msg);
            }
        }
    }
    fflush(stdout);
    return bad ? INFO_BAD : INFO_OK;
}
