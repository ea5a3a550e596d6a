/*
 * dist.c - see include/dist.h. The only file that includes mpi.h. Compiled twice: with MPI, and with -DUL_SERIAL
 * (rank 0 of 1: reductions over one rank leave buffers as they are, broadcasts from rank 0 copy nothing).
 */
#define _POSIX_C_SOURCE 200809L
#include "dist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef UL_SERIAL
#include <mpi.h>
#endif

static int g_rank = 0;
static int g_size = 1;
static int g_initialized = 0;
static int g_finalized = 0;

static void require_init(const char *what)
{
    UL_CHECK(g_initialized && !g_finalized, "%s called outside dist_init .. dist_finalize", what);
}

const char *dist_phase_name(DistPhase p)
{
    static const char *const names[DIST_PHASE_COUNT] = {
        [DIST_PHASE_COMPUTE] = "compute", [DIST_PHASE_ALLREDUCE] = "allreduce", [DIST_PHASE_RANK0] = "rank0",
        [DIST_PHASE_BCAST] = "bcast",     [DIST_PHASE_IO] = "io",               [DIST_PHASE_OTHER] = "other",
    };
    UL_CHECK((int)p >= 0 && p < DIST_PHASE_COUNT, "bad timer phase %d", (int)p);
    return names[p];
}

void dist_timers_reset(DistTimers *t) { memset(t, 0, sizeof *t); }

void dist_timer_start(DistTimers *t, DistPhase p)
{
    UL_CHECK((int)p >= 0 && p < DIST_PHASE_COUNT, "bad timer phase %d", (int)p);
    UL_CHECK(!(t->running & (1u << p)), "timer '%s' started twice", dist_phase_name(p));
    t->running |= 1u << p;
    t->started[p] = ul_now();
}

void dist_timer_stop(DistTimers *t, DistPhase p)
{
    UL_CHECK((int)p >= 0 && p < DIST_PHASE_COUNT, "bad timer phase %d", (int)p);
    UL_CHECK(t->running & (1u << p), "timer '%s' stopped but not running", dist_phase_name(p));
    t->running &= ~(1u << p);
    t->seconds[p] += ul_now() - t->started[p];
}

void dist_timers_reduce(const DistTimers *t, DistTimerStats *out)
{
    double buf[DIST_PHASE_COUNT];
    memcpy(buf, t->seconds, sizeof buf);
    dist_allreduce_max_double(buf, DIST_PHASE_COUNT);
    memcpy(out->max, buf, sizeof buf);
    memcpy(buf, t->seconds, sizeof buf);
    dist_allreduce_min_double(buf, DIST_PHASE_COUNT);
    memcpy(out->min, buf, sizeof buf);
    memcpy(buf, t->seconds, sizeof buf);
    dist_allreduce_sum_double(buf, DIST_PHASE_COUNT);
    for (int p = 0; p < DIST_PHASE_COUNT; p++) out->mean[p] = buf[p] / (double)dist_size();
}

int dist_rank(void)
{
    require_init("dist_rank");
    return g_rank;
}

int dist_size(void)
{
    require_init("dist_size");
    return g_size;
}

/* Prints the agreed message once (rank 0) and fills every rank's err; shared by both builds. */
static void print_agreed(const UlError *err, int from_rank)
{
    if (g_rank != 0) return;
    if (from_rank != 0)
        fprintf(stderr, "unlearn: error: (rank %d) %s\n", from_rank, err->msg);
    else
        fprintf(stderr, "unlearn: error: %s\n", err->msg);
    fflush(stderr);
}

#ifdef UL_SERIAL
/* ======================================== serial twin ======================================================== */

void dist_init(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    UL_CHECK(!g_initialized, "dist_init called twice");
    g_initialized = 1;
    g_rank = 0;
    g_size = 1;
    ul_set_log_rank(0);
}

void dist_finalize(void) { g_finalized = 1; }

void dist_exit(int code)
{
    dist_finalize();
    exit(code);
}

void dist_abort(int code)
{
    fflush(stdout);
    fflush(stderr);
    exit(code);
}

void dist_barrier(void) { require_init("dist_barrier"); }
void dist_allreduce_sum_float(float *buf, size_t n) { (void)buf; (void)n; require_init("dist_allreduce_sum_float"); }
void dist_allreduce_sum_double(double *buf, size_t n) { (void)buf; (void)n; require_init("dist_allreduce_sum_double"); }
void dist_allreduce_sum_int64(int64_t *buf, size_t n) { (void)buf; (void)n; require_init("dist_allreduce_sum_int64"); }
void dist_allreduce_max_double(double *buf, size_t n) { (void)buf; (void)n; require_init("dist_allreduce_max_double"); }
void dist_allreduce_min_double(double *buf, size_t n) { (void)buf; (void)n; require_init("dist_allreduce_min_double"); }

void dist_reduce_sum_float(float *buf, size_t n, int root)
{
    (void)buf;
    (void)n;
    require_init("dist_reduce_sum_float");
    UL_CHECK(root == 0, "dist_reduce_sum_float: root %d out of range [0, 1)", root);
}

void dist_bcast(void *buf, size_t bytes, int root)
{
    (void)buf;
    (void)bytes;
    require_init("dist_bcast");
    UL_CHECK(root == 0, "dist_bcast: root %d out of range [0, 1)", root);
}

void dist_allgather_int64(int64_t value, int64_t *out)
{
    require_init("dist_allgather_int64");
    out[0] = value;
}

int dist_agree_error(UlError *err)
{
    require_init("dist_agree_error");
    if (!err->failed) return 0;
    print_agreed(err, 0);
    return 1;
}

const char *dist_hostname(void)
{
    static char host[256];
    if (!host[0] && gethostname(host, sizeof host - 1) != 0) ul_strlcpy(host, "unknown", sizeof host);
    return host;
}

const char *dist_mpi_library(void) { return "serial (no MPI)"; }

#else
/* ======================================== MPI ================================================================ */

/* Every MPI call goes through this: a failure is fatal with the call, its file:line and MPI's message. */
#define MPI_CHECKED(call)                                                                                         \
    do {                                                                                                          \
        int mpi_rc_ = (call);                                                                                     \
        if (mpi_rc_ != MPI_SUCCESS) mpi_fail(mpi_rc_, #call, __FILE__, __LINE__);                                 \
    } while (0)

static void mpi_fail(int rc, const char *call, const char *file, int line) __attribute__((noreturn));
static void mpi_fail(int rc, const char *call, const char *file, int line)
{
    char msg[MPI_MAX_ERROR_STRING + 1] = {0};
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "MPI error code %d", rc);
    ul_fatal(file, line, "%s failed: %s", call, msg);
}

static void mpi_abort_hook(int code)
{
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
    exit(code ? code : 1); /* MPI_Abort does not return; keeps the hook's noreturn contract if it does */
}

void dist_init(int *argc, char ***argv)
{
    UL_CHECK(!g_initialized, "dist_init called twice");
    int provided = 0;
    /* Before MPI_Init the default handler (errors are fatal) applies; the return code is checked anyway. */
    MPI_CHECKED(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
    g_initialized = 1;
    ul_set_abort_hook(mpi_abort_hook);
    MPI_CHECKED(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    MPI_CHECKED(MPI_Comm_rank(MPI_COMM_WORLD, &g_rank));
    MPI_CHECKED(MPI_Comm_size(MPI_COMM_WORLD, &g_size));
    ul_set_log_rank(g_rank);
    UL_CHECK(provided >= MPI_THREAD_FUNNELED,
             "the MPI library provides thread level %d, below MPI_THREAD_FUNNELED (%d) which OpenMP regions need",
             provided, MPI_THREAD_FUNNELED);
}

void dist_finalize(void)
{
    if (!g_initialized || g_finalized) return;
    g_finalized = 1;
    ul_set_abort_hook(NULL);
    MPI_CHECKED(MPI_Finalize());
}

void dist_exit(int code)
{
    fflush(stdout);
    fflush(stderr);
    dist_finalize();
    exit(code);
}

void dist_abort(int code)
{
    if (g_initialized && !g_finalized) mpi_abort_hook(code);
    exit(code);
}

void dist_barrier(void)
{
    require_init("dist_barrier");
    MPI_CHECKED(MPI_Barrier(MPI_COMM_WORLD));
}

/* In-place allreduce of n elements of elem bytes, in pieces of at most DIST_PIECE_BYTES (and INT_MAX elements). */
static void allreduce_pieces(void *buf, size_t n, size_t elem, MPI_Datatype type, MPI_Op op)
{
    size_t piece = DIST_PIECE_BYTES / elem;
    char *p = buf;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < piece ? n - done : piece;
        MPI_CHECKED(MPI_Allreduce(MPI_IN_PLACE, p + done * elem, (int)k, type, op, MPI_COMM_WORLD));
        done += k;
    }
}

void dist_allreduce_sum_float(float *buf, size_t n)
{
    require_init("dist_allreduce_sum_float");
    allreduce_pieces(buf, n, sizeof(float), MPI_FLOAT, MPI_SUM);
}

void dist_allreduce_sum_double(double *buf, size_t n)
{
    require_init("dist_allreduce_sum_double");
    allreduce_pieces(buf, n, sizeof(double), MPI_DOUBLE, MPI_SUM);
}

void dist_allreduce_sum_int64(int64_t *buf, size_t n)
{
    require_init("dist_allreduce_sum_int64");
    allreduce_pieces(buf, n, sizeof(int64_t), MPI_INT64_T, MPI_SUM);
}

void dist_allreduce_max_double(double *buf, size_t n)
{
    require_init("dist_allreduce_max_double");
    allreduce_pieces(buf, n, sizeof(double), MPI_DOUBLE, MPI_MAX);
}

void dist_allreduce_min_double(double *buf, size_t n)
{
    require_init("dist_allreduce_min_double");
    allreduce_pieces(buf, n, sizeof(double), MPI_DOUBLE, MPI_MIN);
}

void dist_reduce_sum_float(float *buf, size_t n, int root)
{
    require_init("dist_reduce_sum_float");
    UL_CHECK(root >= 0 && root < g_size, "dist_reduce_sum_float: root %d out of range [0, %d)", root, g_size);
    const size_t piece = DIST_PIECE_BYTES / sizeof(float);
    for (size_t done = 0; done < n;) {
        size_t k = n - done < piece ? n - done : piece;
        if (g_rank == root)
            MPI_CHECKED(MPI_Reduce(MPI_IN_PLACE, buf + done, (int)k, MPI_FLOAT, MPI_SUM, root, MPI_COMM_WORLD));
        else
            MPI_CHECKED(MPI_Reduce(buf + done, NULL, (int)k, MPI_FLOAT, MPI_SUM, root, MPI_COMM_WORLD));
        done += k;
    }
}

void dist_bcast(void *buf, size_t bytes, int root)
{
    require_init("dist_bcast");
    UL_CHECK(root >= 0 && root < g_size, "dist_bcast: root %d out of range [0, %d)", root, g_size);
    char *p = buf;
    for (size_t done = 0; done < bytes;) {
        size_t k = bytes - done < DIST_PIECE_BYTES ? bytes - done : DIST_PIECE_BYTES;
        MPI_CHECKED(MPI_Bcast(p + done, (int)k, MPI_BYTE, root, MPI_COMM_WORLD));
        done += k;
    }
}

void dist_allgather_int64(int64_t value, int64_t *out)
{
    require_init("dist_allgather_int64");
    MPI_CHECKED(MPI_Allgather(&value, 1, MPI_INT64_T, out, 1, MPI_INT64_T, MPI_COMM_WORLD));
}

int dist_agree_error(UlError *err)
{
    require_init("dist_agree_error");
    int failing = err->failed ? g_rank : g_size; /* lowest failing rank wins; g_size = "none" */
    MPI_CHECKED(MPI_Allreduce(MPI_IN_PLACE, &failing, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    if (failing == g_size) return 0;
    char msg[UL_ERROR_MSG_MAX];
    if (g_rank == failing) memcpy(msg, err->msg, sizeof msg);
    msg[sizeof msg - 1] = '\0';
    MPI_CHECKED(MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, failing, MPI_COMM_WORLD));
    msg[sizeof msg - 1] = '\0';
    err->failed = 1;
    memcpy(err->msg, msg, sizeof msg);
    print_agreed(err, failing);
    return 1;
}

const char *dist_hostname(void)
{
    static char host[MPI_MAX_PROCESSOR_NAME + 1];
    if (!host[0]) {
        int len = 0;
        MPI_CHECKED(MPI_Get_processor_name(host, &len));
        host[len < 0 ? 0 : len] = '\0';
    }
    return host;
}

const char *dist_mpi_library(void)
{
    static char lib[MPI_MAX_LIBRARY_VERSION_STRING + 1];
    if (!lib[0]) {
        int len = 0;
        MPI_CHECKED(MPI_Get_library_version(lib, &len));
        lib[len < 0 ? 0 : len] = '\0';
        lib[strcspn(lib, "\r\n")] = '\0'; /* first line only */
    }
    return lib;
}
#endif

/* FNV-1a of a host name: equal names give equal values (used only to count distinct nodes). */
static int64_t host_key(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (int64_t)(h >> 1);
}

void dist_provenance(char *buf, size_t cap)
{
    int n = dist_size();
    int64_t *keys = UL_MALLOC(ul_mul_size((size_t)n, sizeof *keys));
    dist_allgather_int64(host_key(dist_hostname()), keys);
    int nodes = 0;
    for (int r = 0; r < n; r++) {
        int seen = 0;
        for (int q = 0; q < r && !seen; q++) seen = keys[q] == keys[r];
        nodes += !seen;
    }
    free(keys);
    char host0[256];
    ul_strlcpy(host0, dist_hostname(), sizeof host0);
    dist_bcast(host0, sizeof host0, 0);
    host0[sizeof host0 - 1] = '\0';
    if (cap) snprintf(buf, cap, "mpi=%s; ranks=%d; nodes=%d; host0=%s", dist_mpi_library(), n, nodes, host0);
}
