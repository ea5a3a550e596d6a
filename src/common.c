/* common.c - see include/common.h. */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void default_abort(int code) { exit(code); }
static void (*g_abort_hook)(int) = default_abort;
static int g_log_rank = 0;

void ul_set_abort_hook(void (*hook)(int code)) { g_abort_hook = hook ? hook : default_abort; }
void ul_set_log_rank(int rank) { g_log_rank = rank; }
int ul_log_rank(void) { return g_log_rank; }

void ul_error_set(UlError *err, const char *fmt, ...)
{
    if (err->failed) return;
    err->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
}

void ul_fatal(const char *file, int line, const char *fmt, ...)
{
    char msg[UL_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "unlearn: rank %d: %s:%d: %s\n", g_log_rank, file, line, msg);
    fflush(stderr);
    g_abort_hook(1);
    exit(1); /* the hook must not return; this keeps the noreturn promise if it does */
}

void *ul_malloc_at(size_t bytes, const char *file, int line)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) ul_fatal(file, line, "out of memory allocating %zu bytes", bytes);
    return p;
}

void *ul_calloc_at(size_t count, size_t size, const char *file, int line)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) ul_fatal(file, line, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

void *ul_realloc_at(void *p, size_t bytes, const char *file, int line)
{
    void *q = realloc(p, bytes ? bytes : 1);
    if (!q) ul_fatal(file, line, "out of memory reallocating %zu bytes", bytes);
    return q;
}

size_t ul_mul_size(size_t a, size_t b)
{
    if (a != 0 && b > SIZE_MAX / a) ul_fatal(__FILE__, __LINE__, "size overflow: %zu * %zu", a, b);
    return a * b;
}

size_t ul_add_size(size_t a, size_t b)
{
    if (b > SIZE_MAX - a) ul_fatal(__FILE__, __LINE__, "size overflow: %zu + %zu", a, b);
    return a + b;
}

double ul_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

bool ul_strlcpy(char *dst, const char *src, size_t cap)
{
    size_t n = strlen(src);
    if (cap == 0) return n == 0;
    size_t c = n < cap - 1 ? n : cap - 1;
    memcpy(dst, src, c);
    dst[c] = '\0';
    return c == n;
}
