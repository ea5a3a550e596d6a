/*
 * common.h - error handling, checked allocation and size arithmetic shared by every module.
 *
 * Errors come in tiers (see ../shared/STYLE.md, habit 7):
 *   - UL_CHECK(cond, fmt, ...): an internal invariant. Stays on in release builds. On failure it prints
 *     "unlearn: rank R: file:line: message" once and calls the abort hook (MPI_Abort under MPI, exit(1)
 *     in serial builds). Never returns.
 *   - UlError: bad *user input* (config, dataset, checkpoint). Functions that validate input fill a UlError
 *     and return; the caller agrees on it across ranks (dist_agree_error) so that all ranks exit together
 *     with one message.
 *
 * Example:
 *     float *buf = UL_MALLOC(ul_mul_size(n, sizeof(float)));     // fatal with file:line when out of memory
 *     UlError err = {0};
 *     if (n == 0) ul_error_set(&err, "%s: dataset '%s' is empty", path, name);
 */
#ifndef UL_COMMON_H
#define UL_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define UL_ERROR_MSG_MAX 1024

/* First error wins: later ul_error_set calls on a failed UlError are ignored. */
typedef struct UlError {
    int failed;                  /* 0 = no error */
    char msg[UL_ERROR_MSG_MAX];  /* human-readable, names the file/key/line at fault */
} UlError;

void ul_error_set(UlError *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "unlearn: rank R: file:line: message" to stderr and calls the abort hook. */
void ul_fatal(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

/* The distributed layer installs MPI_Abort here; the default calls exit(code). The hook must not return. */
void ul_set_abort_hook(void (*hook)(int code));
/* Rank used in messages (set by the distributed layer; 0 in serial builds). */
void ul_set_log_rank(int rank);
int ul_log_rank(void);

#define UL_CHECK(cond, ...) \
    do { if (!(cond)) ul_fatal(__FILE__, __LINE__, __VA_ARGS__); } while (0)

/* Checked allocation: never returns NULL; fatal with the caller's file:line. Memory is zeroed for CALLOC. */
void *ul_malloc_at(size_t bytes, const char *file, int line);
void *ul_calloc_at(size_t count, size_t size, const char *file, int line);
void *ul_realloc_at(void *p, size_t bytes, const char *file, int line);
#define UL_MALLOC(bytes) ul_malloc_at((bytes), __FILE__, __LINE__)
#define UL_CALLOC(count, size) ul_calloc_at((count), (size), __FILE__, __LINE__)
#define UL_REALLOC(p, bytes) ul_realloc_at((p), (bytes), __FILE__, __LINE__)

/* Overflow-checked size arithmetic: fatal on overflow. */
size_t ul_mul_size(size_t a, size_t b);
size_t ul_add_size(size_t a, size_t b);

/* Monotonic wall clock in seconds. */
double ul_now(void);

/* Bounded string copy that always NUL-terminates; returns false when src was truncated. */
bool ul_strlcpy(char *dst, const char *src, size_t cap);

#endif
