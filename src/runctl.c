/* runctl.c - see include/runctl.h. */
#define _POSIX_C_SOURCE 200809L
#include "runctl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist.h"

/* Written only by the handler (and read by the loop): the last signal caught, 0 when none. */
static volatile sig_atomic_t g_signal = 0;
/* Per flag bit: the lowest rank that raised it in the last runctl_agree, -1 for none. */
static int g_flag_rank[RUNCTL_FLAG_BITS] = {-1, -1, -1};
_Static_assert(RUNCTL_FLAG_BITS == 3 && (RUNCTL_STOP | RUNCTL_NONFINITE | RUNCTL_IOERR) == RUNCTL_ALL_FLAGS,
               "one initialiser of g_flag_rank per flag bit");

static void on_stop_signal(int signum) { g_signal = signum; }

void runctl_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART;
    UL_CHECK(sigemptyset(&sa.sa_mask) == 0, "sigemptyset failed: %s", strerror(errno));
    static const int sigs[] = {SIGUSR1, SIGTERM};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        UL_CHECK(sigaction(sigs[i], &sa, NULL) == 0, "sigaction(%s) failed: %s", runctl_signal_name(sigs[i]),
                 strerror(errno));
}

bool runctl_signalled(void) { return g_signal != 0; }

int runctl_signal_number(void) { return (int)g_signal; }

const char *runctl_signal_name(int signum)
{
    static char other[32];
    if (signum == SIGUSR1) return "SIGUSR1";
    if (signum == SIGTERM) return "SIGTERM";
    snprintf(other, sizeof other, "signal %d", signum);
    return other;
}

unsigned runctl_agree(unsigned local_flags)
{
    UL_CHECK((local_flags & ~RUNCTL_ALL_FLAGS) == 0, "runctl_agree: unknown flag bits 0x%x", local_flags);
    if (runctl_signalled()) local_flags |= RUNCTL_STOP;
    /* One max-reduction encodes both the OR and the lowest raising rank: bit b contributes size - rank when set,
       0 when not; the maximum is nonzero iff some rank set it, and size - max is the lowest such rank. Exact in
       double for any rank count below 2^53. */
    const int rank = dist_rank(), size = dist_size();
    double v[RUNCTL_FLAG_BITS];
    for (int b = 0; b < RUNCTL_FLAG_BITS; b++) v[b] = (local_flags >> b & 1u) ? (double)(size - rank) : 0.0;
    dist_allreduce_max_double(v, RUNCTL_FLAG_BITS);
    unsigned agreed = 0;
    for (int b = 0; b < RUNCTL_FLAG_BITS; b++) {
        if (v[b] > 0) {
            agreed |= 1u << b;
            g_flag_rank[b] = size - (int)v[b];
        } else {
            g_flag_rank[b] = -1;
        }
    }
    return agreed;
}

int runctl_flag_rank(unsigned flag)
{
    for (int b = 0; b < RUNCTL_FLAG_BITS; b++)
        if (flag == 1u << b) return g_flag_rank[b];
    UL_CHECK(0, "runctl_flag_rank: 0x%x is not exactly one RUNCTL_* flag", flag);
    return -1;
}

int runctl_restart_count(void)
{
    const char *s = getenv("SLURM_RESTART_COUNT");
    if (!s || !*s) return 0;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0 || v > INT_MAX) return 0;
    return (int)v;
}

bool runctl_should_resume(const char *resume_mode)
{
    UL_CHECK(resume_mode && (!strcmp(resume_mode, "auto") || !strcmp(resume_mode, "never")),
             "runctl_should_resume: resume mode '%s' is neither 'auto' nor 'never'", resume_mode ? resume_mode : "");
    return !strcmp(resume_mode, "auto") || runctl_restart_count() > 0;
}

bool runctl_checkpoint_path(const char *run_dir, char *buf, size_t cap, UlError *err)
{
    int n = snprintf(buf, cap, "%s/%s", run_dir, RUNCTL_CHECKPOINT_NAME);
    if (n < 0 || (size_t)n >= cap) {
        ul_error_set(err, "run_dir '%s': the checkpoint path would exceed %zu bytes", run_dir, cap ? cap - 1 : 0);
        return false;
    }
    return true;
}

/* fsync of an existing file or directory opened read-only. */
static bool fsync_path(const char *path, int flags, UlError *err)
{
    int fd = open(path, O_RDONLY | flags);
    if (fd < 0) {
        ul_error_set(err, "%s: cannot open to sync: %s", path, strerror(errno));
        return false;
    }
    bool ok = fsync(fd) == 0;
    if (!ok) ul_error_set(err, "%s: fsync failed: %s", path, strerror(errno));
    if (close(fd) != 0 && ok) {
        ul_error_set(err, "%s: close failed: %s", path, strerror(errno));
        ok = false;
    }
    return ok;
}

bool runctl_publish_file(const char *tmp, const char *final_path, UlError *err)
{
    if (!fsync_path(tmp, 0, err)) return false;
    if (rename(tmp, final_path) != 0) {
        ul_error_set(err, "cannot rename %s to %s: %s", tmp, final_path, strerror(errno));
        return false;
    }
    /* The rename itself is durable once the directory is synced. */
    char dir[4096];
    const char *slash = strrchr(final_path, '/');
    if (!slash) {
        ul_strlcpy(dir, ".", sizeof dir);
    } else if (slash == final_path) {
        ul_strlcpy(dir, "/", sizeof dir);
    } else {
        size_t len = (size_t)(slash - final_path);
        if (len >= sizeof dir) {
            ul_error_set(err, "%s: directory name longer than %zu bytes", final_path, sizeof dir - 1);
            return false;
        }
        memcpy(dir, final_path, len);
        dir[len] = '\0';
    }
    return fsync_path(dir, O_DIRECTORY, err);
}

/* A JSON string literal of s (quotes, backslashes and control characters escaped) into f. */
static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

/* grad_norm as JSON: a number when finite (17 significant digits: round-trips), else "nan", "inf" or "-inf". */
static void json_double(FILE *f, double x)
{
    if (isnan(x)) fputs("\"nan\"", f);
    else if (isinf(x)) fputs(x > 0 ? "\"inf\"" : "\"-inf\"", f);
    else fprintf(f, "%.17g", x);
}

static const char *text_double(double x, char *buf, size_t cap)
{
    if (isnan(x)) ul_strlcpy(buf, "nan", cap);
    else if (isinf(x)) ul_strlcpy(buf, x > 0 ? "inf" : "-inf", cap);
    else snprintf(buf, cap, "%.6g", x);
    return buf;
}

bool runctl_write_nonfinite_diagnostics(const char *run_dir, int64_t iteration, const char *which_loss,
                                        double grad_norm, int first_rank, UlError *err)
{
    char path[4096], tmp[4160], gn[32], seen[48];
    int n = snprintf(path, sizeof path, "%s/%s", run_dir, RUNCTL_NONFINITE_NAME);
    bool ok = n >= 0 && (size_t)n < sizeof path;
    if (!ok) ul_error_set(err, "run_dir '%s': the diagnostics path would exceed %zu bytes", run_dir, sizeof path - 1);
    if (first_rank >= 0) snprintf(seen, sizeof seen, "first seen on rank %d, ", first_rank);
    else seen[0] = '\0';
    fprintf(stderr, "unlearn: error: non-finite %s loss at iteration %" PRId64 " (%sgradient norm %s): all ranks stop;"
            " diagnostics in %s\n", which_loss, iteration, seen, text_double(grad_norm, gn, sizeof gn),
            ok ? path : "(path too long)");
    fflush(stderr);
    if (!ok) return false;

    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        ul_error_set(err, "%s: cannot write diagnostics: %s", tmp, strerror(errno));
        return false;
    }
    fprintf(f, "{\"format\": \"unlearn-nonfinite\", \"format_version\": 1, \"iteration\": %" PRId64 ", \"loss\": ",
            iteration);
    json_string(f, which_loss);
    fputs(", \"grad_norm\": ", f);
    json_double(f, grad_norm);
    fprintf(f, ", \"first_rank\": %d, \"ranks\": %d}\n", first_rank, dist_size());
    bool wrote = !ferror(f);
    if (fclose(f) != 0) wrote = false;
    if (!wrote) {
        ul_error_set(err, "%s: write failed: %s", tmp, strerror(errno));
        unlink(tmp);
        return false;
    }
    if (!runctl_publish_file(tmp, path, err)) {
        unlink(tmp);
        return false;
    }
    return true;
}

void runctl_log_resumed(int64_t iteration, const char *checkpoint)
{
    printf("unlearn: resumed from iteration %" PRId64 " (%s, restart %d)\n", iteration, checkpoint,
           runctl_restart_count());
    fflush(stdout);
}

void runctl_log_preempted(int64_t iteration, const char *checkpoint)
{
    int sig = runctl_signal_number();
    printf("unlearn: stop requested (%s) at iteration %" PRId64 ": complete checkpoint %s written; exit %d (requeue)\n",
           sig ? runctl_signal_name(sig) : "another rank", iteration, checkpoint, UL_EXIT_PREEMPTED);
    fflush(stdout);
}
