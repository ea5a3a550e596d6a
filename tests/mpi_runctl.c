/*
 * mpi_runctl.c - run control across ranks (include/runctl.h). Run with 2 or more ranks (tests/sh_slurm.sh runs it
 * with mpirun -np 2 and -np 3, and with srun -n 2 inside the local Slurm):
 *     mpirun -np 2 build/tests/mpi_runctl DIR        (DIR: an existing scratch directory for the files it writes)
 * Checks:
 *   - no flag: every rank runs every iteration;
 *   - RUNCTL_NONFINITE raised on the last rank only at iteration 7: every rank stops at iteration 7, and every rank
 *     learns which rank raised it; two flags from two ranks in one iteration are both agreed;
 *   - raise(SIGUSR1) on rank 1 at iteration 5: rank 1 survives it, and every rank stops at iteration 5 although
 *     rank 0 itself was not signalled (so the stop came through the agreement, not through luck);
 *   - SIGTERM is caught too; the stop request is sticky;
 *   - the nonfinite diagnostics file (exact text), the checkpoint path, publishing a file, SLURM_RESTART_COUNT.
 * Each rank counts its checks; rank 0 prints the totals over ranks in the RESULT line, and every rank exits with
 * the same code.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dist.h"
#include "runctl.h"
#include "testutil.h"

/* Runs at most `iters` iterations; at iteration `at` (if >= 0) rank `who` adds `flags` to its local flags, or,
   when flags == 0, raises `sig`. Returns the iteration at which the agreed flags were nonzero (then *agreed holds
   them), or iters when none was. */
static int run_loop(int iters, int at, int who, unsigned flags, int sig, unsigned *agreed)
{
    *agreed = 0;
    for (int it = 0; it < iters; it++) {
        unsigned local = 0;
        if (it == at && dist_rank() == who) {
            if (flags) local |= flags;
            else if (sig) UL_CHECK(raise(sig) == 0, "raise failed");
        }
        unsigned a = runctl_agree(local);
        if (a) {
            *agreed = a;
            return it;
        }
    }
    return iters;
}

/* TU_CHECK that every rank returned the same iteration `want`. */
static void check_same_stop(const char *what, int stop, int want)
{
    int n = dist_size();
    int64_t *all = UL_MALLOC(ul_mul_size((size_t)n, sizeof *all));
    dist_allgather_int64(stop, all);
    int same = 1;
    for (int r = 0; r < n; r++) same &= all[r] == want;
    TU_CHECK(same, "%s: rank %d stopped at iteration %d; want every rank at %d (rank 0: %lld, last rank: %lld)",
             what, dist_rank(), stop, want, (long long)all[0], (long long)all[n - 1]);
    free(all);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    static char buf[4096];
    size_t k = fread(buf, 1, sizeof buf - 1, f);
    buf[k] = '\0';
    fclose(f);
    return buf;
}

static void check_files(const char *dir)
{
    UlError err = {0};
    char path[64];
    TU_CHECK(runctl_checkpoint_path("runs/x", path, sizeof path, &err) && !strcmp(path, "runs/x/checkpoint.h5"),
             "checkpoint path: got '%s'", path);
    char longdir[200];
    memset(longdir, 'd', sizeof longdir - 1);
    longdir[sizeof longdir - 1] = '\0';
    TU_CHECK(!runctl_checkpoint_path(longdir, path, sizeof path, &err) && err.failed &&
                 strstr(err.msg, "exceed 63 bytes"),
             "a checkpoint path that does not fit is an error naming the limit: '%s'", err.msg);

    if (dist_rank() != 0) return;
    /* nonfinite.json: exact text, NaN norm and finite norm */
    char want[512], file[1024];
    snprintf(file, sizeof file, "%s/%s", dir, RUNCTL_NONFINITE_NAME);
    err = (UlError){0};
    TU_CHECK(runctl_write_nonfinite_diagnostics(dir, 12, "forget", NAN, 1, &err), "diagnostics: %s", err.msg);
    snprintf(want, sizeof want, "{\"format\": \"unlearn-nonfinite\", \"format_version\": 1, \"iteration\": 12, "
             "\"loss\": \"forget\", \"grad_norm\": \"nan\", \"first_rank\": 1, \"ranks\": %d}\n", dist_size());
    char *got = slurp(file);
    TU_CHECK(got && !strcmp(got, want), "nonfinite.json:\n got  %s want %s", got ? got : "(missing)\n", want);
    TU_CHECK(runctl_write_nonfinite_diagnostics(dir, 3000000000LL, "re\"tain", 2.5, -1, &err), "diag: %s", err.msg);
    snprintf(want, sizeof want, "{\"format\": \"unlearn-nonfinite\", \"format_version\": 1, \"iteration\": "
             "3000000000, \"loss\": \"re\\\"tain\", \"grad_norm\": 2.5, \"first_rank\": -1, \"ranks\": %d}\n",
             dist_size());
    got = slurp(file);
    TU_CHECK(got && !strcmp(got, want), "nonfinite.json (64-bit iteration, escaped name):\n got  %s want %s",
             got ? got : "(missing)\n", want);
    err = (UlError){0};
    snprintf(file, sizeof file, "%s/no-such-dir", dir);
    TU_CHECK(!runctl_write_nonfinite_diagnostics(file, 1, "retain", 1.0, 0, &err) && strstr(err.msg, "no-such-dir"),
             "diagnostics into a missing directory fail with the path in the message: '%s'", err.msg);

    /* publish: the final name gets the content, the temporary disappears */
    char tmp[1024], fin[1024];
    snprintf(tmp, sizeof tmp, "%s/pub.tmp", dir);
    snprintf(fin, sizeof fin, "%s/pub.txt", dir);
    FILE *f = fopen(tmp, "w");
    TU_CHECK(f != NULL, "cannot create %s: %s", tmp, strerror(errno));
    if (f) {
        fputs("complete\n", f);
        fclose(f);
    }
    err = (UlError){0};
    TU_CHECK(runctl_publish_file(tmp, fin, &err), "publish: %s", err.msg);
    got = slurp(fin);
    TU_CHECK(got && !strcmp(got, "complete\n") && access(tmp, F_OK) != 0, "publish moved the content");
    err = (UlError){0};
    TU_CHECK(!runctl_publish_file(tmp, fin, &err) && strstr(err.msg, "pub.tmp"),
             "publishing a missing file fails naming it: '%s'", err.msg);
}

static void check_resume(void)
{
    unsetenv("SLURM_RESTART_COUNT");
    TU_CHECK(runctl_should_resume("auto") && !runctl_should_resume("never") && runctl_restart_count() == 0,
             "no Slurm restart: auto resumes, never does not");
    setenv("SLURM_RESTART_COUNT", "0", 1);
    TU_CHECK(!runctl_should_resume("never"), "SLURM_RESTART_COUNT=0 with never: no resume");
    setenv("SLURM_RESTART_COUNT", "2", 1);
    TU_CHECK(runctl_should_resume("never") && runctl_restart_count() == 2, "a requeued job resumes even with never");
    setenv("SLURM_RESTART_COUNT", "2x", 1);
    TU_CHECK(runctl_restart_count() == 0 && !runctl_should_resume("never"), "a malformed count reads as 0");
    unsetenv("SLURM_RESTART_COUNT");
}

int main(int argc, char **argv)
{
    dist_init(&argc, &argv);
    UL_CHECK(argc == 2, "usage: mpirun -np N %s SCRATCH_DIR", argv[0]);
    UL_CHECK(dist_size() >= 2, "run with at least 2 ranks (got %d)", dist_size());
    const int last = dist_size() - 1;
    runctl_install_signals();
    unsigned a = 0;

    int stop = run_loop(20, -1, 0, 0, 0, &a);
    check_same_stop("no flag", stop, 20);
    TU_CHECK(a == 0 && runctl_flag_rank(RUNCTL_STOP) == -1 && runctl_flag_rank(RUNCTL_NONFINITE) == -1,
             "no flag: nothing agreed (0x%x)", a);

    stop = run_loop(20, 7, last, RUNCTL_NONFINITE, 0, &a);
    check_same_stop("NONFINITE on the last rank at iteration 7", stop, 7);
    TU_CHECK(a == RUNCTL_NONFINITE && runctl_flag_rank(RUNCTL_NONFINITE) == last &&
                 runctl_flag_rank(RUNCTL_STOP) == -1,
             "NONFINITE: agreed 0x%x, raised by rank %d (want 0x%x from rank %d)", a,
             runctl_flag_rank(RUNCTL_NONFINITE), RUNCTL_NONFINITE, last);

    /* two flags from two ranks in the same iteration */
    unsigned mine = dist_rank() == 0 ? RUNCTL_IOERR : dist_rank() == last ? RUNCTL_NONFINITE : 0;
    a = runctl_agree(mine);
    TU_CHECK(a == (RUNCTL_IOERR | RUNCTL_NONFINITE) && runctl_flag_rank(RUNCTL_IOERR) == 0 &&
                 runctl_flag_rank(RUNCTL_NONFINITE) == last,
             "IOERR on rank 0 + NONFINITE on rank %d: agreed 0x%x, ranks %d and %d", last, a,
             runctl_flag_rank(RUNCTL_IOERR), runctl_flag_rank(RUNCTL_NONFINITE));

    TU_CHECK(!runctl_signalled() && runctl_signal_number() == 0, "no signal yet");
    stop = run_loop(20, 5, 1, 0, SIGUSR1, &a);
    check_same_stop("SIGUSR1 raised on rank 1 at iteration 5", stop, 5);
    TU_CHECK(a == RUNCTL_STOP && runctl_flag_rank(RUNCTL_STOP) == 1, "SIGUSR1: agreed 0x%x by rank %d", a,
             runctl_flag_rank(RUNCTL_STOP));
    if (dist_rank() == 1)
        TU_CHECK(runctl_signalled() && runctl_signal_number() == SIGUSR1 &&
                     !strcmp(runctl_signal_name(SIGUSR1), "SIGUSR1"),
                 "rank 1 caught SIGUSR1 (signal %d)", runctl_signal_number());
    else
        TU_CHECK(!runctl_signalled(), "rank %d was not signalled: its stop came from the agreement", dist_rank());

    /* sticky: rank 1 asks to stop at the very next agreement */
    stop = run_loop(20, -1, 0, 0, 0, &a);
    check_same_stop("a stop request is sticky", stop, 0);

    if (dist_rank() == 0) {
        UL_CHECK(raise(SIGTERM) == 0, "raise failed");
        TU_CHECK(runctl_signalled() && runctl_signal_number() == SIGTERM, "rank 0 caught SIGTERM and survived");
    }
    a = runctl_agree(0);
    TU_CHECK(a == RUNCTL_STOP && runctl_flag_rank(RUNCTL_STOP) == 0, "SIGTERM on rank 0: agreed 0x%x by rank %d", a,
             runctl_flag_rank(RUNCTL_STOP));

    check_resume();
    check_files(argv[1]);

    int64_t counts[2] = {tu_passed, tu_failed};
    dist_allreduce_sum_int64(counts, 2);
    tu_passed = (int)counts[0];
    tu_failed = (int)counts[1];
    int rc = 0;
    if (dist_rank() == 0) rc = tu_finish("mpi_runctl");
    else rc = tu_failed ? 1 : 0;
    dist_exit(rc);
}
