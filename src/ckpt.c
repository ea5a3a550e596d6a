/* ckpt.c - checkpoints; see include/ckpt.h. */
#define _POSIX_C_SOURCE 200809L
#include "ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5io.h"
#include "sha256.h"

/* ---- shared helpers ---- */

static bool is_data_path(const char *p)
{
    return strncmp(p, "params/", 7) == 0 || strncmp(p, "buffers/", 8) == 0 || strncmp(p, "state/", 6) == 0;
}

static void check_group_name(const char *g)
{
    bool ok = strcmp(g, "params") == 0 || strcmp(g, "buffers") == 0 ||
              (strncmp(g, "state/", 6) == 0 && g[6] && !strchr(g + 6, '/'));
    UL_CHECK(ok, "checkpoint section group '%s': must be params, buffers or state/<kind>", g);
}

/* "parameter 'x'", "buffer 'x'", "state 'm' of 'x'" */
static void noun(const char *group, const char *name, char *buf, size_t cap)
{
    if (strcmp(group, "params") == 0) snprintf(buf, cap, "parameter '%s'", name);
    else if (strcmp(group, "buffers") == 0) snprintf(buf, cap, "buffer '%s'", name);
    else if (strncmp(group, "state/", 6) == 0) snprintf(buf, cap, "state '%s' of '%s'", group + 6, name);
    else snprintf(buf, cap, "'%s/%s'", group, name);
}

static void shape_str(int ndim, const int64_t *shape, char *buf, size_t cap)
{
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

static void hash_entry(Sha256 *h, const char *path, int ndim, const int64_t *shape, const float *data, size_t n)
{
    sha256_update(h, path, strlen(path) + 1);
    int64_t dims[1 + TENSOR_MAX_DIMS];
    dims[0] = ndim;
    for (int i = 0; i < ndim; i++) dims[1 + i] = shape[i];
    sha256_update_i64le(h, dims, (size_t)ndim + 1);
    sha256_update_f32le(h, data, n);
}

static void full_path(const char *group, const char *name, char *buf, size_t cap)
{
    size_t need = (size_t)snprintf(buf, cap, "%s/%s", group, name);
    UL_CHECK(need < cap, "checkpoint name '%s/%s' too long", group, name);
}

/* ---- save ---- */

typedef struct SaveEntry {
    char path[CKPT_NAME_MAX];
    int sec, view;
} SaveEntry;

static int cmp_save(const void *a, const void *b)
{
    return strcmp(((const SaveEntry *)a)->path, ((const SaveEntry *)b)->path);
}

static int write_meta(H5File *f, const CkptMeta *m, UlError *err)
{
    int64_t v = CKPT_FORMAT_VERSION;
    int rc = h5_write_attr_str(f, "/", "format", CKPT_FORMAT, err);
    if (!rc) rc = h5_write_attr(f, "/", "format_version", H5IO_I64, 0, &v, err);
    if (!rc) rc = h5_write_attr_str(f, "/", "arch", m->arch, err);
    if (!rc) rc = h5_write_attr_str(f, "/", "model_spec", m->model_spec, err);
    if (!rc) rc = h5_write_attr_str(f, "/", "config_hash", m->config_hash, err);
    if (!rc) rc = h5_write_attr_str(f, "/", "split_sha256", m->split_sha256, err);
    if (!rc) rc = h5_write_attr(f, "/", "step", H5IO_I64, 0, &m->step, err);
    if (!rc) rc = h5_write_attr(f, "/", "epoch", H5IO_I64, 0, &m->epoch, err);
    if (!rc) rc = h5_write_attr(f, "/", "batch", H5IO_I64, 0, &m->batch, err);
    if (!rc && m->nrng > 0) rc = h5_write_attr(f, "/", "rng_state", H5IO_U64, m->nrng, m->rng, err);
    return rc;
}

static int fsync_dir(const char *dir, UlError *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0 || fsync(fd) != 0) {
        ul_error_set(err, "%s: fsync of the directory failed (%s)", dir, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

int ckpt_save(const char *path, const CkptContent *c, UlError *err)
{
    const CkptMeta *m = &c->meta;
    UL_CHECK(m->nrng >= 0 && m->nrng <= CKPT_RNG_MAX, "checkpoint rng state of %d words", m->nrng);
    int total = 0;
    for (int s = 0; s < c->nsections; s++) {
        check_group_name(c->sections[s].group);
        total += c->sections[s].table->count;
    }
    SaveEntry *ent = UL_CALLOC((size_t)(total ? total : 1), sizeof *ent);
    int k = 0;
    for (int s = 0; s < c->nsections; s++)
        for (int v = 0; v < c->sections[s].table->count; v++, k++) {
            full_path(c->sections[s].group, c->sections[s].table->views[v].name, ent[k].path, sizeof ent[k].path);
            ent[k].sec = s;
            ent[k].view = v;
        }
    qsort(ent, (size_t)total, sizeof *ent, cmp_save);
    for (int i = 1; i < total; i++)
        UL_CHECK(strcmp(ent[i].path, ent[i - 1].path) != 0, "checkpoint entry '%s' given twice", ent[i].path);

    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp) {
        ul_error_set(err, "%s: checkpoint path too long", path);
        free(ent);
        return -1;
    }
    /* The file is built in memory and written out with plain write(2) calls (h5io.h, h5_create_in_memory):
       a full disk or a file size limit then fails cleanly in our code, never inside HDF5. */
    size_t expect = (size_t)1 << 16;
    for (int s = 0; s < c->nsections; s++) {
        expect = ul_add_size(expect, ul_mul_size(c->sections[s].table->total, sizeof(float)));
        expect = ul_add_size(expect, ul_mul_size((size_t)c->sections[s].table->count, 2048));
    }
    H5File *f = h5_create_in_memory(tmp, expect, err);
    if (!f) {
        free(ent);
        return -1;
    }
    int rc = write_meta(f, m, err);
    for (int s = 0; s < c->nsections && !rc; s++) rc = h5_create_group(f, c->sections[s].group, err);
    Sha256 h;
    sha256_init(&h);
    /* written and hashed in the canonical (sorted) order */
    for (int i = 0; i < total && !rc; i++) {
        const CkptSection *sec = &c->sections[ent[i].sec];
        const ParamView *pv = &sec->table->views[ent[i].view];
        int64_t shape[TENSOR_MAX_DIMS];
        for (int d = 0; d < pv->ndim; d++) shape[d] = pv->shape[d];
        const float *data = sec->data + pv->offset;
        rc = h5_write_dataset(f, ent[i].path, H5IO_F32, H5IO_F32, pv->ndim, shape, data, 0, 0, err);
        if (!rc) hash_entry(&h, ent[i].path, pv->ndim, shape, data, pv->n);
    }
    free(ent);
    if (!rc) {
        uint8_t d[32];
        char hex[65];
        sha256_final(&h, d);
        sha256_hex(d, hex);
        rc = h5_write_attr_str(f, "/", "checksum", hex, err);
    }
    if (!rc) rc = h5_flush(f, err);
    if (!rc) rc = h5_save_image(f, tmp, err);   /* write(2), fsync(2), close(2); removes tmp on failure */
    if (h5_close(f, err)) rc = -1;
    if (!rc && rename(tmp, path) != 0) {
        ul_error_set(err, "%s: cannot rename the finished checkpoint into place (%s)", path, strerror(errno));
        rc = -1;
    }
    if (rc) {
        remove(tmp);
        return -1;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    return fsync_dir(dir, err);
}

/* ---- load / inspect ---- */

typedef struct Entry {
    char *path;                        /* owned (from h5_list_datasets) */
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t n;
    int sec, view;                     /* matched section view, or -1 */
} Entry;

static int read_meta(H5File *f, const char *path, CkptMeta *m, char checksum[65], UlError *err)
{
    memset(m, 0, sizeof *m);
    char fmt[128];
    if (!h5_attr_exists(f, "/", "format")) {
        ul_error_set(err, "%s: no attribute 'format' on the root group: not an unlearn checkpoint", path);
        return -1;
    }
    if (h5_read_attr_str(f, "/", "format", fmt, sizeof fmt, err)) return -1;
    if (strcmp(fmt, CKPT_FORMAT) != 0) {
        ul_error_set(err, "%s: attribute 'format' is \"%s\"; expected \"%s\"", path, fmt, CKPT_FORMAT);
        return -1;
    }
    int64_t v = 0, cnt = 0;
    if (!h5_attr_exists(f, "/", "format_version")) {
        ul_error_set(err, "%s: no attribute 'format_version' on the root group (expected %d)", path,
                     CKPT_FORMAT_VERSION);
        return -1;
    }
    if (h5_read_attr(f, "/", "format_version", H5IO_I64, &v, 1, &cnt, err)) return -1;
    if (cnt != 1 || v != CKPT_FORMAT_VERSION) {
        ul_error_set(err, "%s: attribute 'format_version' is %lld; this build reads checkpoint version %d", path,
                     (long long)v, CKPT_FORMAT_VERSION);
        return -1;
    }
    if (h5_read_attr_str(f, "/", "arch", m->arch, sizeof m->arch, err)) return -1;
    if (h5_read_attr(f, "/", "step", H5IO_I64, &m->step, 1, &cnt, err)) return -1;
    if (h5_read_attr_str(f, "/", "checksum", checksum, 65, err)) return -1;
    if (strlen(checksum) != 64) {
        ul_error_set(err, "%s: attribute 'checksum' is \"%s\"; expected 64 hex digits of SHA-256", path, checksum);
        return -1;
    }
    /* optional (a converted pretrained model has no run state) */
    struct { const char *name; char *buf; size_t cap; } strs[] = {
        {"model_spec", m->model_spec, sizeof m->model_spec},
        {"config_hash", m->config_hash, sizeof m->config_hash},
        {"split_sha256", m->split_sha256, sizeof m->split_sha256},
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (h5_attr_exists(f, "/", strs[i].name) && h5_read_attr_str(f, "/", strs[i].name, strs[i].buf, strs[i].cap,
                                                                     err))
            return -1;
    if (h5_attr_exists(f, "/", "epoch") && h5_read_attr(f, "/", "epoch", H5IO_I64, &m->epoch, 1, &cnt, err)) return -1;
    if (h5_attr_exists(f, "/", "batch") && h5_read_attr(f, "/", "batch", H5IO_I64, &m->batch, 1, &cnt, err)) return -1;
    if (h5_attr_exists(f, "/", "rng_state")) {
        if (h5_read_attr(f, "/", "rng_state", H5IO_U64, m->rng, CKPT_RNG_MAX, &cnt, err)) return -1;
        m->nrng = (int)cnt;
    }
    return 0;
}

/* Every float32 dataset below params/, buffers/, state/ (sorted by path) with its shape. */
static int list_entries(H5File *f, const char *path, Entry **out, int *count, UlError *err)
{
    char **names;
    int n;
    *out = NULL;
    *count = 0;
    if (h5_list_datasets(f, "/", &names, &n, err)) return -1;
    Entry *e = UL_CALLOC((size_t)(n ? n : 1), sizeof *e);
    int k = 0, rc = 0;
    for (int i = 0; i < n; i++) {
        if (rc || !is_data_path(names[i])) {
            free(names[i]);
            continue;
        }
        H5Dset *d = h5_dset_open(f, names[i], err);
        if (!d) {
            rc = -1;
            free(names[i]);
            continue;
        }
        const H5Info *in = h5_dset_info(d);
        if (in->cls != H5IO_CLASS_FLOAT || in->size != 4) {
            ul_error_set(err, "%s: dataset '%s' has type %s; checkpoint data must be float32", path, names[i],
                         in->type_name);
            rc = -1;
        } else if (in->ndim > TENSOR_MAX_DIMS) {
            ul_error_set(err, "%s: dataset '%s' has %d dimensions; at most %d are supported", path, names[i], in->ndim,
                         TENSOR_MAX_DIMS);
            rc = -1;
        } else if (strlen(names[i]) >= CKPT_NAME_MAX) {
            ul_error_set(err, "%s: dataset name '%s' is too long", path, names[i]);
            rc = -1;
        }
        if (!rc) {
            e[k].path = names[i];
            e[k].ndim = in->ndim;
            for (int dd = 0; dd < in->ndim; dd++) e[k].shape[dd] = in->shape[dd];
            e[k].n = in->nelem;
            e[k].sec = e[k].view = -1;
            k++;
        } else {
            free(names[i]);
        }
        h5_dset_close(d);
    }
    free(names);
    *out = e;
    *count = k;
    return rc;
}

static void free_entries(Entry *e, int n)
{
    for (int i = 0; i < n; i++) free(e[i].path);
    free(e);
}

static int find_entry(const Entry *e, int n, const char *path)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(e[mid].path, path);
        if (c == 0) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* Matches the requested sections' views to the entries (sets sec/view) and reports the first mismatch. */
static int match_sections(H5File *f, const char *path, Entry *e, int n, CkptContent *c, UlError *err)
{
    char what[CKPT_NAME_MAX + 64], fp[CKPT_NAME_MAX], s1[96], s2[96];
    for (int s = 0; s < c->nsections; s++) {
        CkptSection *sec = &c->sections[s];
        check_group_name(sec->group);
        const ParamTable *pt = sec->table;
        sec->loaded = false;
        if (h5_kind(f, sec->group) != H5IO_GROUP) {
            if (sec->optional) continue;
            if (pt->count == 0) {
                sec->loaded = true;
                continue;
            }
            noun(sec->group, pt->views[0].name, what, sizeof what);
            ul_error_set(err, "%s: no group '%s' (the model has %d entries there, e.g. %s)", path, sec->group,
                         pt->count, what);
            return -1;
        }
        for (int v = 0; v < pt->count; v++) {
            const ParamView *pv = &pt->views[v];
            full_path(sec->group, pv->name, fp, sizeof fp);
            int64_t want[TENSOR_MAX_DIMS];
            for (int d = 0; d < pv->ndim; d++) want[d] = pv->shape[d];
            shape_str(pv->ndim, want, s2, sizeof s2);
            noun(sec->group, pv->name, what, sizeof what);
            int i = find_entry(e, n, fp);
            if (i < 0) {
                ul_error_set(err, "%s: %s is missing (the model expects shape %s)", path, what, s2);
                return -1;
            }
            bool same = e[i].ndim == pv->ndim;
            for (int d = 0; same && d < pv->ndim; d++) same = e[i].shape[d] == want[d];
            if (!same) {
                shape_str(e[i].ndim, e[i].shape, s1, sizeof s1);
                ul_error_set(err, "%s: %s has shape %s, the model expects %s", path, what, s1, s2);
                return -1;
            }
            UL_CHECK(e[i].sec < 0, "checkpoint entry '%s' requested by two sections", fp);
            e[i].sec = s;
            e[i].view = v;
        }
        size_t gl = strlen(sec->group);
        for (int i = 0; i < n; i++) {
            if (e[i].sec >= 0 || strncmp(e[i].path, sec->group, gl) != 0 || e[i].path[gl] != '/') continue;
            noun(sec->group, e[i].path + gl + 1, what, sizeof what);
            ul_error_set(err, "%s: %s is in the checkpoint but not in the model", path, what);
            return -1;
        }
        sec->loaded = true;
    }
    return 0;
}

/* Reads every entry (into its matched section view, or a scratch buffer) and checks the checksum. */
static int read_and_verify(H5File *f, const char *path, Entry *e, int n, CkptContent *c, const char *want,
                           char got_hex[65], UlError *err)
{
    int64_t scratch_n = 0;
    for (int i = 0; i < n; i++)
        if (e[i].sec < 0 && e[i].n > scratch_n) scratch_n = e[i].n;
    float *scratch = scratch_n ? UL_MALLOC(ul_mul_size((size_t)scratch_n, sizeof(float))) : NULL;
    Sha256 h;
    sha256_init(&h);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        float *dst = scratch;
        if (e[i].sec >= 0) {
            const CkptSection *sec = &c->sections[e[i].sec];
            dst = sec->data + sec->table->views[e[i].view].offset;
        }
        H5Dset *d = h5_dset_open(f, e[i].path, err);
        if (!d) {
            rc = -1;
            break;
        }
        rc = h5_dset_read_all(d, H5IO_F32, dst, err);
        h5_dset_close(d);
        if (!rc) hash_entry(&h, e[i].path, e[i].ndim, e[i].shape, dst, (size_t)e[i].n);
    }
    free(scratch);
    if (rc) return -1;
    uint8_t dg[32];
    sha256_final(&h, dg);
    sha256_hex(dg, got_hex);
    if (strcmp(got_hex, want) != 0) {
        ul_error_set(err, "%s: checksum mismatch: the stored data hash to %.16s... but the file records %.16s... "
                     "(the file was modified or damaged)", path, got_hex, want);
        return -1;
    }
    return 0;
}

int ckpt_load(const char *path, const char *expect_arch, CkptContent *c, UlError *err)
{
    H5File *f = h5_open(path, H5IO_READ, err);
    if (!f) return -1;
    char want[65], got[65];
    Entry *e = NULL;
    int n = 0;
    int rc = read_meta(f, path, &c->meta, want, err);
    if (!rc && expect_arch && strcmp(c->meta.arch, expect_arch) != 0) {
        ul_error_set(err, "%s: checkpoint is for arch '%s', the job uses '%s'", path, c->meta.arch, expect_arch);
        rc = -1;
    }
    if (!rc) rc = list_entries(f, path, &e, &n, err);
    if (!rc) rc = match_sections(f, path, e, n, c, err);
    if (!rc) rc = read_and_verify(f, path, e, n, c, want, got, err);
    free_entries(e, n);
    h5_close(f, NULL);
    return rc;
}

int ckpt_inspect(const char *path, CkptInfo *info, UlError *err)
{
    memset(info, 0, sizeof *info);
    H5File *f = h5_open(path, H5IO_READ, err);
    if (!f) return -1;
    char want[65];
    Entry *e = NULL;
    int n = 0;
    CkptContent none = {0};
    int rc = read_meta(f, path, &info->meta, want, err);
    if (!rc) rc = list_entries(f, path, &e, &n, err);
    if (!rc) rc = read_and_verify(f, path, e, n, &none, want, info->checksum, err);
    /* every state/<kind>/<name> must shadow params/<name> */
    char pp[CKPT_NAME_MAX + 8], s1[96], s2[96];
    for (int i = 0; i < n && !rc; i++) {
        if (strncmp(e[i].path, "state/", 6) != 0) continue;
        const char *kind = e[i].path + 6, *slash = strchr(kind, '/');
        if (!slash) continue;
        snprintf(pp, sizeof pp, "params/%s", slash + 1);
        int j = find_entry(e, n, pp);
        if (j < 0) {
            ul_error_set(err, "%s: '%s' has no parameter '%s' to belong to", path, e[i].path, slash + 1);
            rc = -1;
            break;
        }
        bool same = e[i].ndim == e[j].ndim;
        for (int d = 0; same && d < e[i].ndim; d++) same = e[i].shape[d] == e[j].shape[d];
        if (!same) {
            shape_str(e[i].ndim, e[i].shape, s1, sizeof s1);
            shape_str(e[j].ndim, e[j].shape, s2, sizeof s2);
            ul_error_set(err, "%s: '%s' has shape %s but parameter '%s' has %s", path, e[i].path, s1, slash + 1, s2);
            rc = -1;
        }
    }
    if (!rc) {
        info->entries = UL_CALLOC((size_t)(n ? n : 1), sizeof *info->entries);
        info->nentries = n;
        for (int i = 0; i < n; i++) {
            snprintf(info->entries[i].name, sizeof info->entries[i].name, "%s", e[i].path);
            info->entries[i].ndim = e[i].ndim;
            memcpy(info->entries[i].shape, e[i].shape, sizeof e[i].shape);
            info->entries[i].n = e[i].n;
        }
    }
    free_entries(e, n);
    h5_close(f, NULL);
    return rc;
}

void ckpt_info_free(CkptInfo *info)
{
    free(info->entries);
    memset(info, 0, sizeof *info);
}
