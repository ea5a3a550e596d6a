/*
 * mpi_dist.c - the MPI layer (src/dist.c) at any rank count; run by tests/sh_dist.sh under mpirun.
 *
 *   mpi_dist collectives        every collective against values computed here, on buffers of more than one piece
 *                               (DIST_PIECE_BYTES) whose length is not a multiple of it; prints RESULT
 *   mpi_dist agree R CODE       rank R (or every rank when R = -1) reports a bad-input error; all ranks agree and
 *                               leave through dist_exit(CODE); each rank prints "rank r leaves with CODE" first
 *   mpi_dist fatal R            rank R hits an internal error (UL_CHECK) while the others wait in a barrier: the
 *                               abort hook (MPI_Abort) must end the whole job
 *
 * Values are small integers or multiples of 1/4, so every sum is exact in float and double whatever order MPI
 * adds them in: the comparisons use tolerance 0.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "testutil.h"

/* Element i of rank r's float buffer: an integer in [-500, 499]. */
static float val_f(int r, size_t i) { return (float)((int)((i * 7 + (size_t)r * 131) % 1000) - 500); }
/* Element i of rank r's double buffer: a multiple of 1/4. */
static double val_d(int r, size_t i) { return 0.25 * (double)((int)((i * 13 + (size_t)r * 17) % 4001) - 2000); }

/* tu_compare for doubles: max abs error and the first bad index. */
static void compare_d(const char *what, const double *got, const double *want, size_t n)
{
    double max_abs = 0;
    long first_bad = -1;
    for (size_t i = 0; i < n; i++) {
        double d = got[i] > want[i] ? got[i] - want[i] : want[i] - got[i];
        if (d > max_abs) max_abs = d;
        if (!(d == 0) && first_bad < 0) first_bad = (long)i;
    }
    TU_CHECK(first_bad < 0, "%s: n=%zu max_abs=%.3e first_bad=%ld got=%.17g want=%.17g", what, n, max_abs, first_bad,
             first_bad < 0 ? 0.0 : got[first_bad], first_bad < 0 ? 0.0 : want[first_bad]);
    if (first_bad < 0) printf("ok   %-44s n=%-8zu max_abs=%.3e\n", what, n, max_abs);
}

static void collectives(void)
{
    const int rank = dist_rank(), size = dist_size();
    char what[128];

    /* allreduce sum, float: two whole pieces and a part */
    const size_t piece_f = DIST_PIECE_BYTES / sizeof(float);
    const size_t nf = 2 * piece_f + 12345;
    float *x = UL_MALLOC(nf * sizeof(float)), *want = UL_MALLOC(nf * sizeof(float));
    for (size_t i = 0; i < nf; i++) {
        x[i] = val_f(rank, i);
        float s = 0;
        for (int r = 0; r < size; r++) s += val_f(r, i);
        want[i] = s;
    }
    dist_allreduce_sum_float(x, nf);
    snprintf(what, sizeof what, "allreduce_sum_float (%d ranks)", size);
    tu_compare(what, x, want, nf, 0, 0);

    /* reduce sum to the last rank (a nonzero root when size > 1): the other ranks' buffers stay unchanged */
    const int root = size - 1;
    for (size_t i = 0; i < nf; i++) x[i] = val_f(rank, i);
    dist_reduce_sum_float(x, nf, root);
    if (rank == root) {
        snprintf(what, sizeof what, "reduce_sum_float at root %d", root);
        tu_compare(what, x, want, nf, 0, 0);
    } else {
        for (size_t i = 0; i < nf; i++) want[i] = val_f(rank, i);
        snprintf(what, sizeof what, "reduce_sum_float leaves rank %d's input", rank);
        tu_compare(what, x, want, nf, 0, 0);
    }

    /* bcast from rank 1 % size: 2 pieces + 999 bytes */
    const int broot = 1 % size;
    const size_t nb = 2 * DIST_PIECE_BYTES + 999;
    unsigned char *b = UL_MALLOC(nb);
    for (size_t i = 0; i < nb; i++) b[i] = (unsigned char)(rank == broot ? (i * 31 + 7) % 251 : 0xEE);
    dist_bcast(b, nb, broot);
    size_t bad = 0, first = (size_t)-1;
    for (size_t i = 0; i < nb; i++)
        if (b[i] != (unsigned char)((i * 31 + 7) % 251)) {
            if (!bad) first = i;
            bad++;
        }
    TU_CHECK(bad == 0, "bcast from %d: %zu of %zu bytes differ, first at %zu", broot, bad, nb, first);
    if (!bad) printf("ok   bcast %zu bytes from rank %d\n", nb, broot);
    free(b);

    /* allreduce sum, double: two pieces and a part */
    const size_t piece_d = DIST_PIECE_BYTES / sizeof(double);
    const size_t nd = 2 * piece_d + 777;
    double *d = UL_MALLOC(nd * sizeof(double)), *wd = UL_MALLOC(nd * sizeof(double));
    for (size_t i = 0; i < nd; i++) {
        d[i] = val_d(rank, i);
        double s = 0;
        for (int r = 0; r < size; r++) s += val_d(r, i);
        wd[i] = s;
    }
    dist_allreduce_sum_double(d, nd);
    compare_d("allreduce_sum_double", d, wd, nd);

    /* max and min (small buffers: timers and flags) */
    double mx[5], mn[5], wmx[5], wmn[5];
    for (int i = 0; i < 5; i++) {
        mx[i] = mn[i] = val_d(rank, (size_t)i * 1001);
        wmx[i] = wmn[i] = val_d(0, (size_t)i * 1001);
        for (int r = 1; r < size; r++) {
            double v = val_d(r, (size_t)i * 1001);
            if (v > wmx[i]) wmx[i] = v;
            if (v < wmn[i]) wmn[i] = v;
        }
    }
    dist_allreduce_max_double(mx, 5);
    dist_allreduce_min_double(mn, 5);
    compare_d("allreduce_max_double", mx, wmx, 5);
    compare_d("allreduce_min_double", mn, wmn, 5);
    free(d);
    free(wd);

    /* int64 sum beyond 32 bits, allgather */
    int64_t c[3] = {(int64_t)1 << 40, rank, -rank * (int64_t)3000000000};
    dist_allreduce_sum_int64(c, 3);
    int64_t s_r = (int64_t)size * (size - 1) / 2;
    TU_CHECK(c[0] == ((int64_t)size << 40) && c[1] == s_r && c[2] == -s_r * 3000000000,
             "allreduce_sum_int64 %lld %lld %lld", (long long)c[0], (long long)c[1], (long long)c[2]);
    int64_t *g = UL_MALLOC((size_t)size * sizeof(int64_t));
    dist_allgather_int64(1000 + rank, g);
    int gbad = 0;
    for (int r = 0; r < size; r++) gbad += g[r] != 1000 + r;
    TU_CHECK(gbad == 0, "allgather_int64: %d wrong entries", gbad);
    free(g);

    /* agree_error: nobody failed; then ranks 1 and 2 fail with different messages: all get the lowest's */
    UlError e = {0};
    TU_CHECK(dist_agree_error(&e) == 0 && !e.failed, "no error agreed when nobody failed");
    UlError e2 = {0};
    if (rank >= 1) ul_error_set(&e2, "collectives: planted error on rank %d", rank);
    int agreed = dist_agree_error(&e2);
    if (size == 1) {
        TU_CHECK(agreed == 0, "one rank, no failure: agree returns 0");
    } else {
        TU_CHECK(agreed != 0 && e2.failed && strcmp(e2.msg, "collectives: planted error on rank 1") == 0,
                 "agree_error gives every rank rank 1's message: got %d '%s'", agreed, e2.msg);
    }

    /* timers: seconds set per rank; max/min/mean over ranks */
    DistTimers t;
    dist_timers_reset(&t);
    dist_timer_start(&t, DIST_PHASE_COMPUTE);
    dist_timer_stop(&t, DIST_PHASE_COMPUTE);
    TU_CHECK(t.seconds[DIST_PHASE_COMPUTE] >= 0 && t.running == 0, "timer start/stop");
    t.seconds[DIST_PHASE_ALLREDUCE] = rank + 1.0;
    DistTimerStats st;
    dist_timers_reduce(&t, &st);
    TU_CHECK(st.max[DIST_PHASE_ALLREDUCE] == size && st.min[DIST_PHASE_ALLREDUCE] == 1.0 &&
                 st.mean[DIST_PHASE_ALLREDUCE] == (size + 1) / 2.0,
             "timers max %g min %g mean %g", st.max[DIST_PHASE_ALLREDUCE], st.min[DIST_PHASE_ALLREDUCE],
             st.mean[DIST_PHASE_ALLREDUCE]);

    char prov[512], want_ranks[32];
    dist_provenance(prov, sizeof prov);
    snprintf(want_ranks, sizeof want_ranks, "ranks=%d; nodes=1;", size);
    TU_CHECK(strstr(prov, want_ranks) && strstr(prov, "Open MPI"), "provenance: %s", prov);
    if (rank == 0) printf("     provenance: %s\n", prov);

    dist_barrier();
    free(x);
    free(want);
}

int main(int argc, char **argv)
{
    dist_init(&argc, &argv);
    const int rank = dist_rank();
    const char *mode = argc > 1 ? argv[1] : "collectives";
    if (strcmp(mode, "collectives") == 0) {
        collectives();
        /* every rank's checks count: sum the failures so that rank 0's RESULT line covers all ranks */
        int64_t counts[2] = {tu_passed, tu_failed};
        dist_allreduce_sum_int64(counts, 2);
        if (rank == 0) {
            char name[64];
            snprintf(name, sizeof name, "mpi_dist_np%d", dist_size());
            tu_passed = (int)counts[0];
            tu_failed = (int)counts[1];
            tu_finish(name);
        }
        fflush(stdout);
        dist_exit(counts[1] ? 1 : 0);
    }
    if (strcmp(mode, "agree") == 0 && argc == 4) {
        int bad_rank = atoi(argv[2]), code = atoi(argv[3]);
        UlError err = {0};
        if (bad_rank == -1 || rank == bad_rank) ul_error_set(&err, "bad input seen by rank %d", rank);
        if (dist_agree_error(&err)) {
            printf("rank %d leaves with %d\n", rank, code);
            fflush(stdout);
            dist_exit(code);
        }
        dist_exit(0);
    }
    if (strcmp(mode, "fatal") == 0 && argc == 3) {
        int bad_rank = atoi(argv[2]);
        UL_CHECK(rank != bad_rank, "deliberate internal error on rank %d", rank);
        dist_barrier(); /* the other ranks wait here until MPI_Abort ends them */
        dist_exit(0);
    }
    if (rank == 0) fprintf(stderr, "usage: mpi_dist collectives | agree RANK CODE | fatal RANK\n");
    dist_exit(2);
}
