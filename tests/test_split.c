/* test_split.c - SHA-256 against published vectors, every split kind, every split error, split_write. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "h5io.h"
#include "rng.h"
#include "sha256.h"
#include "split.h"
#include "testutil.h"

#define N 50
#define K 5
static int labels[N];
static char dir[256];

/* Checks that the call failed and that its message contains every non-NULL needle. */
static void expect_error(const char *what, int rc, const UlError *err, const char *n1, const char *n2)
{
    bool ok = rc != 0 && err->failed && (!n1 || strstr(err->msg, n1)) && (!n2 || strstr(err->msg, n2));
    TU_CHECK(ok, "%s: rc %d, message \"%s\" (want \"%s\"%s%s%s)", what, rc, err->msg, n1 ? n1 : "",
             n2 ? " and \"" : "", n2 ? n2 : "", n2 ? "\"" : "");
    if (ok) printf("ok   %-44s -> %s\n", what, err->msg);
}

static void write_text(const char *name, const char *content, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    TU_CHECK(fp != NULL, "cannot create %s", path);
    if (!fp) return;
    fputs(content, fp);
    fclose(fp);
}

/* A .npy file with the given descr and shape text and raw little-endian data. */
static void write_npy(const char *name, const char *descr, const char *shape, const void *data, size_t bytes,
                      char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", dir, name);
    char hdr[128];
    int len = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
    int total = 10 + len + 1, pad = (64 - total % 64) % 64;
    FILE *fp = fopen(path, "wb");
    TU_CHECK(fp != NULL, "cannot create %s", path);
    if (!fp) return;
    unsigned short hl = (unsigned short)(len + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, fp);
    fputc(hl & 0xff, fp);
    fputc(hl >> 8, fp);
    fwrite(hdr, 1, (size_t)len, fp);
    for (int i = 0; i < pad; i++) fputc(' ', fp);
    fputc('\n', fp);
    fwrite(data, 1, bytes, fp);
    fclose(fp);
}

static void test_sha256(void)
{
    char hex[65];
    sha256_hex_of("abc", 3, hex);
    TU_CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0,
             "sha256(\"abc\") = %s", hex);
    sha256_hex_of("", 0, hex);
    TU_CHECK(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0, "sha256(\"\") = %s",
             hex);
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";  /* 56 bytes: padding spills */
    sha256_hex_of(two, strlen(two), hex);
    TU_CHECK(strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0,
             "sha256(448-bit vector) = %s", hex);
    /* one million 'a' fed in uneven pieces (exercises the partial-block path) */
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    Sha256 h;
    sha256_init(&h);
    size_t off = 0, step = 1;
    while (off < 1000000) {
        size_t k = 1000000 - off < step ? 1000000 - off : step;
        sha256_update(&h, a + off, k);
        off += k;
        step = step * 3 % 997 + 1;
    }
    uint8_t d[32];
    sha256_final(&h, d);
    sha256_hex(d, hex);
    TU_CHECK(strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0,
             "sha256(10^6 x 'a') = %s", hex);
    free(a);
    /* index lists as little-endian int64: values from Python's hashlib over np.array(v, '<i8').tobytes() */
    int64_t v1[] = {1, 2, 3}, v2[] = {0, 5, 59999, -1};
    split_sha256(v1, 3, hex);
    TU_CHECK(strcmp(hex, "e2e2033ae7e19d680599d4eb0a1359a2b48ec5baac75066c317fbf85159c54ef") == 0,
             "sha256 of [1, 2, 3] as <i8 = %s", hex);
    split_sha256(v2, 4, hex);
    TU_CHECK(strcmp(hex, "4d7223dac0d2c54daa10159b6136823fbc1e9cd2aefeaa49d9fbe493671f9da9") == 0,
             "sha256 of [0, 5, 59999, -1] as <i8 = %s", hex);
    /* and the same digest from the bytes spelled out */
    uint8_t bytes[24] = {1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0};
    char hex2[65];
    sha256_hex_of(bytes, sizeof bytes, hex2);
    split_sha256(v1, 3, hex);
    TU_CHECK(strcmp(hex, hex2) == 0, "split_sha256 hashes little-endian int64 bytes");
}

/* Checks the invariants of a resolved split: sorted, disjoint, complete, digest. */
static void check_split(const char *what, const Split *s, const int64_t *want, int64_t nwant)
{
    bool ok = s->nforget == nwant && s->nforget + s->nretain == N;
    for (int64_t i = 0; ok && i < nwant; i++) ok = s->forget[i] == want[i];
    TU_CHECK(ok, "%s: forget set differs (%lld entries, want %lld)", what, (long long)s->nforget, (long long)nwant);
    bool part = true;
    int64_t j = 0, r = 0;
    for (int64_t i = 0; i < N && part; i++) {
        if (j < s->nforget && s->forget[j] == i) j++;
        else if (r < s->nretain && s->retain[r] == i) r++;
        else part = false;
    }
    TU_CHECK(part && j == s->nforget && r == s->nretain, "%s: forget and retain do not partition [0, N) in order",
             what);
    char hex[65];
    split_sha256(s->forget, s->nforget, hex);
    TU_CHECK(strcmp(hex, s->sha256) == 0, "%s: digest %s, want %s", what, s->sha256, hex);
}

static void test_classes(void)
{
    SplitSpec sp = {.kind = SPLIT_CLASSES, .nclasses = 2, .classes = {1, 3}};
    Split s;
    UlError err = {0};
    TU_CHECK(split_resolve(&s, &sp, labels, N, K + 1, &err) == 0, "classes split: %s", err.msg);
    int64_t want[N], n = 0;
    for (int i = 0; i < N; i++)
        if (labels[i] == 1 || labels[i] == 3) want[n++] = i;
    check_split("classes [1, 3]", &s, want, n);
    split_free(&s);

    SplitSpec e1 = {.kind = SPLIT_CLASSES, .nclasses = 1, .classes = {6}};
    err = (UlError){0};
    expect_error("class out of range", split_resolve(&s, &e1, labels, N, K + 1, &err), &err, "forget class 6",
                 "[0, 6)");
    SplitSpec e2 = {.kind = SPLIT_CLASSES, .nclasses = 1, .classes = {-1}};
    err = (UlError){0};
    expect_error("negative class", split_resolve(&s, &e2, labels, N, K + 1, &err), &err, "forget class -1", NULL);
    SplitSpec e3 = {.kind = SPLIT_CLASSES, .nclasses = 2, .classes = {2, 2}};
    err = (UlError){0};
    expect_error("class listed twice", split_resolve(&s, &e3, labels, N, K + 1, &err), &err, "class 2 is listed twice",
                 NULL);
    SplitSpec e4 = {.kind = SPLIT_CLASSES, .nclasses = 1, .classes = {5}};  /* class 5 exists but has no samples */
    err = (UlError){0};
    expect_error("class without samples", split_resolve(&s, &e4, labels, N, K + 1, &err), &err, "[5]", "empty");
    SplitSpec e5 = {.kind = SPLIT_CLASSES, .nclasses = 5, .classes = {0, 1, 2, 3, 4}};
    err = (UlError){0};
    expect_error("classes cover everything", split_resolve(&s, &e5, labels, N, K + 1, &err), &err,
                 "whole train set", NULL);
    SplitSpec e6 = {.kind = SPLIT_CLASSES, .nclasses = 0};
    err = (UlError){0};
    expect_error("empty class list", split_resolve(&s, &e6, labels, N, K + 1, &err), &err, "empty", NULL);
    SplitSpec e7 = {.kind = SPLIT_NONE};
    err = (UlError){0};
    expect_error("no split given", split_resolve(&s, &e7, labels, N, K + 1, &err), &err, "no forget set", NULL);
}

static void test_fraction(void)
{
    SplitSpec sp = {.kind = SPLIT_FRACTION, .fraction = 0.2, .seed = 7};
    Split s, s2;
    UlError err = {0};
    TU_CHECK(split_resolve(&s, &sp, labels, N, K + 1, &err) == 0, "fraction split: %s", err.msg);
    /* the documented contract, recomputed here: Fisher-Yates on rng_below(seed, SPLIT_STREAM, i, i+1) */
    int64_t perm[N], want[N], n = 0;
    for (int i = 0; i < N; i++) perm[i] = i;
    for (int i = N - 1; i > 0; i--) {
        int64_t j = (int64_t)rng_below(7, SPLIT_STREAM, (uint64_t)i, (uint64_t)i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    bool pick[N] = {0};
    for (int i = 0; i < 10; i++) pick[perm[i]] = true;  /* round(0.2 * 50) = 10 */
    for (int i = 0; i < N; i++)
        if (pick[i]) want[n++] = i;
    check_split("fraction 0.2 seed 7", &s, want, n);
    TU_CHECK(split_resolve(&s2, &sp, labels, N, K + 1, &err) == 0 && s2.nforget == s.nforget &&
                 memcmp(s2.forget, s.forget, (size_t)s.nforget * sizeof(int64_t)) == 0,
             "fraction split is not deterministic");
    split_free(&s2);
    sp.seed = 8;
    TU_CHECK(split_resolve(&s2, &sp, labels, N, K + 1, &err) == 0 && s2.nforget == 10 &&
                 memcmp(s2.forget, s.forget, 10 * sizeof(int64_t)) != 0,
             "another seed gives the same forget set");
    split_free(&s2);
    split_free(&s);

    double bad[] = {0.0, 1.0, 1.5, -0.1};
    for (int i = 0; i < 4; i++) {
        SplitSpec e = {.kind = SPLIT_FRACTION, .fraction = bad[i], .seed = 1};
        err = (UlError){0};
        char what[64];
        snprintf(what, sizeof what, "fraction %g", bad[i]);
        expect_error(what, split_resolve(&s, &e, labels, N, K + 1, &err), &err, "outside (0, 1)", NULL);
    }
    SplitSpec e1 = {.kind = SPLIT_FRACTION, .fraction = 0.001, .seed = 1};
    err = (UlError){0};
    expect_error("fraction rounds to 0", split_resolve(&s, &e1, labels, N, K + 1, &err), &err, "rounds to 0", "empty");
    SplitSpec e2 = {.kind = SPLIT_FRACTION, .fraction = 0.995, .seed = 1};
    err = (UlError){0};
    expect_error("fraction rounds to N", split_resolve(&s, &e2, labels, N, K + 1, &err), &err, "whole train set", NULL);
}

static void resolve_file(const char *path, Split *s, UlError *err, int *rc)
{
    SplitSpec sp = {.kind = SPLIT_INDICES};
    snprintf(sp.indices_path, sizeof sp.indices_path, "%s", path);
    *err = (UlError){0};
    *rc = split_resolve(s, &sp, labels, N, K + 1, err);
}

static void test_indices(void)
{
    char path[512], where[600];
    Split s;
    UlError err;
    int rc;
    int64_t want[] = {3, 5, 10, 49};

    write_text("good.txt", "# forget these\n5\n\n  3 \n10   # trailing comment\r\n49\n", path, sizeof path);
    resolve_file(path, &s, &err, &rc);
    TU_CHECK(rc == 0, "text indices: %s", err.msg);
    if (!rc) check_split("text indices", &s, want, 4);
    split_free(&s);

    int64_t v64[] = {49, 3, 10, 5};
    write_npy("good64.npy", "<i8", "(4,)", v64, sizeof v64, path, sizeof path);
    resolve_file(path, &s, &err, &rc);
    TU_CHECK(rc == 0, ".npy int64 indices: %s", err.msg);
    if (!rc) check_split(".npy int64 indices", &s, want, 4);
    split_free(&s);

    int32_t v32[] = {10, 49, 5, 3};
    write_npy("good32.npy", "<i4", "(4,)", v32, sizeof v32, path, sizeof path);
    resolve_file(path, &s, &err, &rc);
    TU_CHECK(rc == 0, ".npy int32 indices: %s", err.msg);
    if (!rc) check_split(".npy int32 indices", &s, want, 4);
    split_free(&s);

    snprintf(path, sizeof path, "%s/good.h5", dir);
    H5File *f = h5_create(path, false, &err);
    int64_t shape = 4;
    TU_CHECK(f && h5_write_dataset(f, "indices", H5IO_I32, H5IO_I64, 1, &shape, v64, 0, 0, &err) == 0 &&
                 h5_close(f, &err) == 0, "writing good.h5: %s", err.msg);
    resolve_file(path, &s, &err, &rc);
    TU_CHECK(rc == 0, ".h5 indices: %s", err.msg);
    if (!rc) check_split(".h5 indices", &s, want, 4);
    split_free(&s);

    /* errors, each naming the file and the line or entry */
    write_text("range.txt", "1\n2\n50\n", path, sizeof path);
    resolve_file(path, &s, &err, &rc);
    snprintf(where, sizeof where, "%s:3:", path);
    expect_error("index out of range (text)", rc, &err, where, "index 50 is outside the train set [0, 50)");
    write_text("neg.txt", "1\n-4\n", path, sizeof path);
    resolve_file(path, &s, &err, &rc);
    snprintf(where, sizeof where, "%s:2:", path);
    expect_error("negative index (text)", rc, &err, where, "index -4 is outside");
    write_text("dup.txt", "7\n5\n9\n5\n", path, sizeof path);
    resolve_file(path, &s, &err, &rc);
    snprintf(where, sizeof where, "%s:4:", path);
    expect_error("duplicated index (text)", rc, &err, where, "index 5 duplicates line 2");
    write_text("word.txt", "1\n2x\n", path, sizeof path);
    resolve_file(path, &s, &err, &rc);
    snprintf(where, sizeof where, "%s:2:", path);
    expect_error("not an integer (text)", rc, &err, where, "'2x' is not an integer");
    write_text("empty.txt", "# nothing\n\n", path, sizeof path);
    resolve_file(path, &s, &err, &rc);
    expect_error("empty indices file", rc, &err, path, "empty");
    char all[4 * N + 1] = "";
    for (int i = 0; i < N; i++) snprintf(all + strlen(all), sizeof all - strlen(all), "%d\n", i);
    write_text("all.txt", all, path, sizeof path);
    resolve_file(path, &s, &err, &rc);
    expect_error("indices cover everything", rc, &err, "whole train set", NULL);
    snprintf(path, sizeof path, "%s/missing.txt", dir);
    resolve_file(path, &s, &err, &rc);
    expect_error("missing indices file", rc, &err, path, "cannot open");

    int64_t d64[] = {4, 8, 4};
    write_npy("dup.npy", "<i8", "(3,)", d64, sizeof d64, path, sizeof path);
    resolve_file(path, &s, &err, &rc);
    snprintf(where, sizeof where, "%s: entry 2:", path);
    expect_error("duplicated index (.npy)", rc, &err, where, "duplicates entry 0");
    int64_t r64[] = {4, 8, 99};
    write_npy("range.npy", "<i8", "(3,)", r64, sizeof r64, path, sizeof path);
    resolve_file(path, &s, &err, &rc);
    snprintf(where, sizeof where, "%s: entry 2:", path);
    expect_error("index out of range (.npy)", rc, &err, where, "index 99 is outside");
    double f64[] = {1.0, 2.0};
    write_npy("float.npy", "<f8", "(2,)", f64, sizeof f64, path, sizeof path);
    resolve_file(path, &s, &err, &rc);
    expect_error("float .npy", rc, &err, path, "dtype");
    write_npy("twod.npy", "<i8", "(2, 1)", r64, 2 * sizeof(int64_t), path, sizeof path);
    resolve_file(path, &s, &err, &rc);
    expect_error("2-D .npy", rc, &err, path, "not 1-D");
    write_npy("short.npy", "<i8", "(5,)", r64, sizeof r64, path, sizeof path);
    resolve_file(path, &s, &err, &rc);
    expect_error("truncated .npy", rc, &err, path, "truncated");
}

static void test_write(void)
{
    SplitSpec sp = {.kind = SPLIT_FRACTION, .fraction = 0.3, .seed = 11};
    Split s, back;
    UlError err = {0};
    TU_CHECK(split_resolve(&s, &sp, labels, N, K + 1, &err) == 0, "resolve: %s", err.msg);
    char run[300], path[600];
    snprintf(run, sizeof run, "%s/run", dir);
    mkdir(run, 0755);
    TU_CHECK(split_write(&s, run, &err) == 0, "split_write: %s", err.msg);
    snprintf(path, sizeof path, "%s/%s", run, SPLIT_FILE_NAME);
    int rc;
    resolve_file(path, &back, &err, &rc);
    TU_CHECK(rc == 0, "reading back %s: %s", path, err.msg);
    if (!rc) {
        check_split("written forget set read back", &back, s.forget, s.nforget);
        TU_CHECK(strcmp(back.sha256, s.sha256) == 0, "digest changed through the file");
    }
    split_free(&back);
    /* the file names its digest, and no temporary file is left behind */
    FILE *fp = fopen(path, "r");
    char line[200] = "";
    if (fp) {
        TU_CHECK(fgets(line, sizeof line, fp) != NULL, "empty %s", path);
        fclose(fp);
    }
    TU_CHECK(strstr(line, s.sha256) != NULL, "first line '%s' lacks the digest", line);
    DIR *d = opendir(run);
    int files = 0;
    for (struct dirent *e; d && (e = readdir(d));) files += e->d_name[0] != '.';
    if (d) closedir(d);
    TU_CHECK(files == 1, "run directory holds %d files, want 1", files);
    snprintf(run, sizeof run, "%s/no/such/dir", dir);
    err = (UlError){0};
    expect_error("split_write into a missing directory", split_write(&s, run, &err), &err, run, NULL);
    split_free(&s);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_split.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    for (int i = 0; i < N; i++) labels[i] = (i * 7 + i / 10) % K;  /* classes 0..4 of K+1 = 6; class 5 empty */
    test_sha256();
    test_classes();
    test_fraction();
    test_indices();
    test_write();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", dir);
    return tu_finish("test_split");
}
