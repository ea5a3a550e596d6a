/* split.c - forget/retain splits; see include/split.h. */
#define _POSIX_C_SOURCE 200809L
#include "split.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5io.h"
#include "rng.h"
#include "sha256.h"

void split_sha256(const int64_t *idx, int64_t n, char hex[65])
{
    Sha256 h;
    uint8_t d[32];
    sha256_init(&h);
    sha256_update_i64le(&h, idx, (size_t)n);
    sha256_final(&h, d);
    sha256_hex(d, hex);
}

void split_free(Split *s)
{
    free(s->forget);
    free(s->retain);
    memset(s, 0, sizeof *s);
}

/* ---- indices files ---- */

/* Indices in file order with where each came from: a text line number, or an entry number (.npy / .h5). */
typedef struct IndexList {
    int64_t *val;
    int64_t *where;
    int64_t n, cap;
    bool by_line;
} IndexList;

static void list_push(IndexList *l, int64_t v, int64_t where)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1024;
        l->val = UL_REALLOC(l->val, ul_mul_size((size_t)l->cap, sizeof *l->val));
        l->where = UL_REALLOC(l->where, ul_mul_size((size_t)l->cap, sizeof *l->where));
    }
    l->val[l->n] = v;
    l->where[l->n] = where;
    l->n++;
}

static void list_free(IndexList *l)
{
    free(l->val);
    free(l->where);
    memset(l, 0, sizeof *l);
}

/* "file:12" for a text line, "file: entry 12" for an array entry. */
static void where_str(const IndexList *l, const char *path, int64_t where, char *buf, size_t cap)
{
    if (l->by_line) snprintf(buf, cap, "%s:%lld", path, (long long)where);
    else snprintf(buf, cap, "%s: entry %lld", path, (long long)where);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int read_text(const char *path, IndexList *l, UlError *err)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        ul_error_set(err, "%s: cannot open the forget indices file (%s)", path, strerror(errno));
        return -1;
    }
    l->by_line = true;
    char *line = NULL;
    size_t cap = 0;
    int64_t lineno = 0;
    int rc = 0;
    while (getline(&line, &cap, fp) >= 0) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (!*p) continue;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        char *q = end;
        while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n') q++;
        if (end == p || *q || errno == ERANGE) {
            size_t len = strcspn(p, "\r\n");
            ul_error_set(err, "%s:%lld: '%.*s' is not an integer index (one index per line)", path, (long long)lineno,
                         (int)(len > 60 ? 60 : len), p);
            rc = -1;
            break;
        }
        list_push(l, (int64_t)v, lineno);
    }
    if (!rc && ferror(fp)) {
        ul_error_set(err, "%s: reading failed (%s)", path, strerror(errno));
        rc = -1;
    }
    free(line);
    fclose(fp);
    return rc;
}

/* .npy version 1-3: magic, version, header length, a Python dict literal, then the data. */
static int read_npy(const char *path, IndexList *l, UlError *err)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        ul_error_set(err, "%s: cannot open the forget indices file (%s)", path, strerror(errno));
        return -1;
    }
    int rc = -1;
    char *hdr = NULL;
    unsigned char pre[10];
    if (fread(pre, 1, 10, fp) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        ul_error_set(err, "%s: not a .npy file (no \\x93NUMPY magic)", path);
        goto out;
    }
    size_t hlen;
    if (pre[6] == 1) {
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    } else if (pre[6] == 2 || pre[6] == 3) {
        unsigned char b[2];
        if (fread(b, 1, 2, fp) != 2) {
            ul_error_set(err, "%s: truncated .npy header", path);
            goto out;
        }
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)b[0] << 16 | (size_t)b[1] << 24;
    } else {
        ul_error_set(err, "%s: unsupported .npy version %d", path, pre[6]);
        goto out;
    }
    if (hlen > (1u << 20)) {
        ul_error_set(err, "%s: .npy header of %zu bytes is implausible", path, hlen);
        goto out;
    }
    hdr = UL_MALLOC(hlen + 1);
    if (fread(hdr, 1, hlen, fp) != hlen) {
        ul_error_set(err, "%s: truncated .npy header", path);
        goto out;
    }
    hdr[hlen] = '\0';
    const char *d = strstr(hdr, "'descr':");
    const char *fo = strstr(hdr, "'fortran_order':");
    const char *sh = strstr(hdr, "'shape':");
    if (!d || !fo || !sh) {
        ul_error_set(err, "%s: malformed .npy header '%s'", path, hdr);
        goto out;
    }
    d += 8;
    while (*d == ' ') d++;
    size_t esize;
    if (strncmp(d, "'<i8'", 5) == 0) esize = 8;
    else if (strncmp(d, "'<i4'", 5) == 0) esize = 4;
    else {
        ul_error_set(err, "%s: .npy dtype %.*s is not supported; save the indices as int64 ('<i8') or int32 ('<i4')",
                     path, (int)strcspn(d, ",}"), d);
        goto out;
    }
    fo += 16;
    while (*fo == ' ') fo++;
    if (strncmp(fo, "False", 5) != 0) {
        ul_error_set(err, "%s: .npy arrays in Fortran order are not supported", path);
        goto out;
    }
    sh += 8;
    while (*sh == ' ') sh++;
    long long count;
    char close = 0;
    /* numpy writes a 1-D shape as "(n,)"; the space in the format also accepts "(n, )" */
    if (sscanf(sh, "(%lld ,%c", &count, &close) != 2 || close != ')') {
        ul_error_set(err, "%s: .npy shape %.*s is not 1-D; save a flat array of indices", path,
                     (int)strcspn(sh, ")") + (sh[strcspn(sh, ")")] ? 1 : 0), sh);
        goto out;
    }
    if (count < 0) {
        ul_error_set(err, "%s: .npy shape has a negative length", path);
        goto out;
    }
    l->by_line = false;
    unsigned char buf[8];
    for (long long i = 0; i < count; i++) {
        if (fread(buf, 1, esize, fp) != esize) {
            ul_error_set(err, "%s: truncated .npy data: %lld of %lld entries present", path, i, count);
            goto out;
        }
        uint64_t u = 0;
        for (size_t b = 0; b < esize; b++) u |= (uint64_t)buf[b] << (8 * b);
        int64_t v = esize == 8 ? (int64_t)u : (int64_t)(int32_t)(uint32_t)u;
        list_push(l, v, (int64_t)i);
    }
    rc = 0;
out:
    free(hdr);
    fclose(fp);
    return rc;
}

static int read_h5(const char *path, IndexList *l, UlError *err)
{
    H5File *f = h5_open(path, H5IO_READ, err);
    if (!f) return -1;
    int rc = -1;
    H5Dset *d = h5_dset_open(f, "indices", err);
    if (d) {
        const H5Info *in = h5_dset_info(d);
        if (in->cls != H5IO_CLASS_INT || in->ndim != 1) {
            ul_error_set(err, "%s: dataset 'indices' must be a 1-D integer array (found %s with %d dimensions)", path,
                         in->type_name, in->ndim);
        } else {
            int64_t n = in->shape[0];
            int64_t *v = UL_MALLOC(ul_mul_size((size_t)(n ? n : 1), sizeof *v));
            if (h5_dset_read_all(d, H5IO_I64, v, err) == 0) {
                l->by_line = false;
                for (int64_t i = 0; i < n; i++) list_push(l, v[i], i);
                rc = 0;
            }
            free(v);
        }
        h5_dset_close(d);
    }
    h5_close(f, NULL);
    return rc;
}

static int cmp_pair(const void *a, const void *b)
{
    const int64_t *x = a, *y = b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return (x[1] > y[1]) - (x[1] < y[1]);
}

/* Reads, range-checks and de-duplicates the indices file into a sorted forget list. */
static int forget_from_file(const char *path, int64_t n, int64_t **forget, int64_t *nforget, UlError *err)
{
    IndexList l = {0};
    int rc;
    if (ends_with(path, ".npy")) rc = read_npy(path, &l, err);
    else if (ends_with(path, ".h5") || ends_with(path, ".hdf5")) rc = read_h5(path, &l, err);
    else rc = read_text(path, &l, err);
    char w1[SPLIT_PATH_MAX + 64], w2[64];
    for (int64_t i = 0; !rc && i < l.n; i++) {
        if (l.val[i] < 0 || l.val[i] >= n) {
            where_str(&l, path, l.where[i], w1, sizeof w1);
            ul_error_set(err, "%s: index %lld is outside the train set [0, %lld)", w1, (long long)l.val[i],
                         (long long)n);
            rc = -1;
        }
    }
    if (!rc && l.n == 0) {
        ul_error_set(err, "%s: no indices: the forget set would be empty", path);
        rc = -1;
    }
    int64_t *pairs = NULL;
    if (!rc) {
        pairs = UL_MALLOC(ul_mul_size(2 * (size_t)l.n, sizeof *pairs));
        for (int64_t i = 0; i < l.n; i++) {
            pairs[2 * i] = l.val[i];
            pairs[2 * i + 1] = l.where[i];
        }
        qsort(pairs, (size_t)l.n, 2 * sizeof *pairs, cmp_pair);
        for (int64_t i = 1; i < l.n; i++) {
            if (pairs[2 * i] != pairs[2 * i - 2]) continue;
            where_str(&l, path, pairs[2 * i + 1], w1, sizeof w1);
            if (l.by_line) snprintf(w2, sizeof w2, "line %lld", (long long)pairs[2 * i - 1]);
            else snprintf(w2, sizeof w2, "entry %lld", (long long)pairs[2 * i - 1]);
            ul_error_set(err, "%s: index %lld duplicates %s", w1, (long long)pairs[2 * i], w2);
            rc = -1;
            break;
        }
    }
    if (!rc) {
        *forget = UL_MALLOC(ul_mul_size((size_t)l.n, sizeof **forget));
        for (int64_t i = 0; i < l.n; i++) (*forget)[i] = pairs[2 * i];
        *nforget = l.n;
    }
    free(pairs);
    list_free(&l);
    return rc;
}

/* ---- resolution ---- */

static void classes_str(const SplitSpec *spec, char *buf, size_t cap)
{
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < spec->nclasses && k + 16 < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%d", i ? ", " : "", spec->classes[i]);
    if (k + 16 >= cap) k += (size_t)snprintf(buf + k, cap - k, ", ...");
    snprintf(buf + (k < cap ? k : cap - 1), cap - (k < cap ? k : cap - 1), "]");
}

static int forget_from_classes(const SplitSpec *spec, const int *labels, int64_t n, int num_classes,
                               int64_t **forget, int64_t *nforget, UlError *err)
{
    if (spec->nclasses <= 0 || spec->nclasses > SPLIT_MAX_CLASSES) {
        ul_error_set(err, "forget classes: the list is empty (name at least one class)");
        return -1;
    }
    bool *pick = UL_CALLOC((size_t)num_classes, sizeof *pick);
    int rc = 0;
    for (int i = 0; i < spec->nclasses && !rc; i++) {
        int c = spec->classes[i];
        if (c < 0 || c >= num_classes) {
            ul_error_set(err, "forget class %d is outside [0, %d) (the dataset has %d classes)", c, num_classes,
                         num_classes);
            rc = -1;
        } else if (pick[c]) {
            ul_error_set(err, "forget class %d is listed twice", c);
            rc = -1;
        } else {
            pick[c] = true;
        }
    }
    if (!rc) {
        int64_t k = 0;
        for (int64_t i = 0; i < n; i++) k += pick[labels[i]];
        *forget = UL_MALLOC(ul_mul_size((size_t)(k ? k : 1), sizeof **forget));
        k = 0;
        for (int64_t i = 0; i < n; i++)
            if (pick[labels[i]]) (*forget)[k++] = i;
        *nforget = k;
        char cl[256];
        classes_str(spec, cl, sizeof cl);
        if (k == 0) {
            ul_error_set(err, "forget classes %s have no train samples: the forget set would be empty", cl);
            rc = -1;
        }
    }
    free(pick);
    return rc;
}

static int forget_from_fraction(const SplitSpec *spec, int64_t n, int64_t **forget, int64_t *nforget, UlError *err)
{
    double f = spec->fraction;
    if (!(f > 0.0 && f < 1.0)) {
        ul_error_set(err, "forget fraction %g is outside (0, 1)", f);
        return -1;
    }
    int64_t k = (int64_t)llround(f * (double)n);
    if (k == 0) {
        ul_error_set(err, "forget fraction %g of %lld train samples rounds to 0 samples: the forget set would be empty",
                     f, (long long)n);
        return -1;
    }
    int64_t *perm = UL_MALLOC(ul_mul_size((size_t)n, sizeof *perm));
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)rng_below(spec->seed, SPLIT_STREAM, (uint64_t)i, (uint64_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    /* the first k of the permutation, sorted: mark and sweep */
    bool *pick = UL_CALLOC((size_t)n, sizeof *pick);
    for (int64_t i = 0; i < k; i++) pick[perm[i]] = true;
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if (pick[i]) perm[m++] = i;
    free(pick);
    *forget = perm;
    *nforget = k;
    return 0;
}

int split_resolve(Split *out, const SplitSpec *spec, const int *train_labels, int64_t n, int num_classes,
                  UlError *err)
{
    memset(out, 0, sizeof *out);
    UL_CHECK(n >= 1 && num_classes >= 1, "split_resolve: empty train set or no classes");
    int64_t *forget = NULL, nforget = 0;
    int rc;
    switch (spec->kind) {
    case SPLIT_CLASSES: rc = forget_from_classes(spec, train_labels, n, num_classes, &forget, &nforget, err); break;
    case SPLIT_FRACTION: rc = forget_from_fraction(spec, n, &forget, &nforget, err); break;
    case SPLIT_INDICES:
        if (!spec->indices_path[0]) {
            ul_error_set(err, "forget indices: no file given");
            rc = -1;
        } else {
            rc = forget_from_file(spec->indices_path, n, &forget, &nforget, err);
        }
        break;
    default:
        ul_error_set(err, "no forget set given (forget: {classes: [...]}, {fraction: F, seed: S} or {indices: FILE})");
        rc = -1;
        break;
    }
    if (!rc && nforget == n) {
        ul_error_set(err, "%s%sthe forget set is the whole train set (%lld samples): nothing would be retained",
                     spec->kind == SPLIT_INDICES ? spec->indices_path : "", spec->kind == SPLIT_INDICES ? ": " : "",
                     (long long)n);
        rc = -1;
    }
    if (rc) {
        free(forget);
        return -1;
    }
    out->forget = forget;
    out->nforget = nforget;
    out->nretain = n - nforget;
    out->retain = UL_MALLOC(ul_mul_size((size_t)out->nretain, sizeof *out->retain));
    int64_t j = 0, r = 0;
    for (int64_t i = 0; i < n; i++) {
        if (j < nforget && forget[j] == i) j++;
        else out->retain[r++] = i;
    }
    UL_CHECK(r == out->nretain && j == nforget, "split bookkeeping");
    split_sha256(forget, nforget, out->sha256);
    return 0;
}

int split_write(const Split *s, const char *run_dir, UlError *err)
{
    char path[SPLIT_PATH_MAX + 64], tmp[SPLIT_PATH_MAX + 96];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", run_dir, SPLIT_FILE_NAME) >= sizeof path) {
        ul_error_set(err, "%s: run directory path too long", run_dir);
        return -1;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *fp = fopen(tmp, "w");
    if (!fp) {
        ul_error_set(err, "%s: cannot create (%s)", tmp, strerror(errno));
        return -1;
    }
    bool ok = fprintf(fp, "# unlearn forget set: %lld indices, sha256 %s\n", (long long)s->nforget, s->sha256) > 0;
    for (int64_t i = 0; i < s->nforget && ok; i++) ok = fprintf(fp, "%lld\n", (long long)s->forget[i]) > 0;
    ok = ok && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    int saved = errno;
    ok = (fclose(fp) == 0) && ok;
    if (ok && rename(tmp, path) != 0) {
        saved = errno;
        ok = false;
    }
    if (!ok) {
        remove(tmp);
        ul_error_set(err, "%s: writing the forget indices failed (%s)", path, strerror(saved));
        return -1;
    }
    return 0;
}
