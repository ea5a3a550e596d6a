/*
 * dist.h - the distributed layer. src/dist.c is the only file that includes mpi.h. It is compiled twice:
 * with MPI (build/unlearn, tests/mpi_*) and with -DUL_SERIAL (the serial unit tests), where the process is rank 0
 * of 1, collectives are no-ops (in-place reductions over one rank leave the buffer as it is) and the API is the same.
 *
 * Rules:
 *   - COLLECTIVE functions must be called by every rank of MPI_COMM_WORLD, in the same order, with the same sizes
 *     (and the same root). A rank that skips one, or returns early, hangs the job. Each says so in its comment.
 *   - Every MPI call is checked (MPI_ERRORS_RETURN is set on MPI_COMM_WORLD): a failed call is fatal with
 *     file:line and MPI's error string, through ul_fatal, whose abort hook is MPI_Abort.
 *   - Bad user input is not fatal: fill a UlError, then call dist_agree_error at a point every rank reaches, and
 *     leave through dist_exit on every rank together.
 *   - Big buffers are reduced and broadcast in pieces of DIST_PIECE_BYTES (16 MB; measured faster than one big
 *     call, see shared/reference/machines.md), so counts beyond INT_MAX work too.
 *
 * Example (every rank runs this):
 *     dist_init(&argc, &argv);
 *     UlError err = {0};
 *     load_job(path, &cfg, &err);                     // local: may fail on some ranks only
 *     if (dist_agree_error(&err)) dist_exit(2);       // one message (from rank 0), all ranks exit 2
 *     dist_allreduce_sum_float(grad, n);              // in place: grad := sum over ranks
 *     dist_exit(0);
 */
#ifndef UL_DIST_H
#define UL_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* Collectives move big buffers in pieces of this many bytes (4 Mi floats). */
#define DIST_PIECE_BYTES ((size_t)16 << 20)

/* COLLECTIVE. Initialises MPI (MPI_Init_thread with MPI_THREAD_FUNNELED: OpenMP threads may run between MPI calls,
   only the main thread calls MPI), sets MPI_ERRORS_RETURN, installs MPI_Abort as ul_fatal's abort hook and the rank
   for log messages. Call once, first thing in main. Serial build: rank 0 of 1. */
void dist_init(int *argc, char ***argv);
/* This process's rank in [0, dist_size()) and the number of ranks. Local; valid after dist_init. */
int dist_rank(void);
int dist_size(void);
/* COLLECTIVE. Finalizes MPI; no dist_ call is allowed afterwards. Idempotent. */
void dist_finalize(void);
/* COLLECTIVE. dist_finalize, then exit(code). Every rank calls it with the same code. Never returns. */
void dist_exit(int code) __attribute__((noreturn));
/* Local. Ends the whole job at once from one rank (MPI_Abort with code; exit(code) in the serial build). For
   internal errors only: bad input goes through dist_agree_error + dist_exit. Never returns. */
void dist_abort(int code) __attribute__((noreturn));

/* COLLECTIVE. Waits until every rank has arrived. */
void dist_barrier(void);

/* COLLECTIVE. In place: buf[0..n) := elementwise sum over ranks, on every rank (same n on every rank). Reduced in
   pieces of DIST_PIECE_BYTES; n may exceed INT_MAX. The summation order is MPI's: results agree across ranks but
   may differ in the last bits from a serial sum. */
void dist_allreduce_sum_float(float *buf, size_t n);
void dist_allreduce_sum_double(double *buf, size_t n);
void dist_allreduce_sum_int64(int64_t *buf, size_t n);
/* COLLECTIVE. In place: buf[i] := max (min) over ranks. For timers and flags. */
void dist_allreduce_max_double(double *buf, size_t n);
void dist_allreduce_min_double(double *buf, size_t n);

/* COLLECTIVE. In place at root: buf[0..n) := elementwise sum over ranks; on the other ranks buf is input only and
   left unchanged. Same n and root on every rank; in pieces. */
void dist_reduce_sum_float(float *buf, size_t n, int root);

/* COLLECTIVE. Copies root's buf[0..bytes) to every rank's buf (same bytes and root everywhere); in pieces. */
void dist_bcast(void *buf, size_t bytes, int root);

/* COLLECTIVE. out[r] := the value rank r passed, for r in [0, dist_size()); out has dist_size() entries. */
void dist_allgather_int64(int64_t value, int64_t *out);

/* COLLECTIVE. Agree on an error: every rank passes its local UlError (failed or not). If no rank failed, returns 0
   and changes nothing. Otherwise every rank's err receives the message of the lowest failing rank R (err->failed
   set), rank 0 prints it once to stderr as "unlearn: error: <msg>" ("unlearn: error: (rank R) <msg>" when R != 0),
   and it returns nonzero on every rank, so that all ranks can leave together through dist_exit. */
int dist_agree_error(UlError *err);

/* ---- per-phase timers (wall clock) --------------------------------------------------------------------------- */

/* The closed list of phases; dist_phase_name gives their names (same order). */
typedef enum DistPhase {
    DIST_PHASE_COMPUTE,   /* forward, backward, optimizer */
    DIST_PHASE_ALLREDUCE, /* gradient / statistics reductions */
    DIST_PHASE_RANK0,     /* work done by rank 0 alone while the others wait (e.g. the optimizer in rank0 mode) */
    DIST_PHASE_BCAST,     /* weight / data broadcasts */
    DIST_PHASE_IO,        /* HDF5 reads and writes, checkpoints */
    DIST_PHASE_OTHER,
    DIST_PHASE_COUNT
} DistPhase;

const char *dist_phase_name(DistPhase p);

/* Accumulated seconds per phase on this rank. Phases do not nest with themselves: starting a running phase or
   stopping a stopped one is an internal error (fatal). Zero-initialise or call dist_timers_reset. Local. */
typedef struct DistTimers {
    double seconds[DIST_PHASE_COUNT];  /* accumulated, stopped intervals only */
    double started[DIST_PHASE_COUNT];  /* ul_now() at start; valid while running */
    unsigned running;                  /* bit p set while phase p runs */
} DistTimers;

void dist_timers_reset(DistTimers *t);
void dist_timer_start(DistTimers *t, DistPhase p);
void dist_timer_stop(DistTimers *t, DistPhase p);

/* Per phase: max, min and mean over ranks of the accumulated seconds (reports use the max). */
typedef struct DistTimerStats {
    double max[DIST_PHASE_COUNT];
    double min[DIST_PHASE_COUNT];
    double mean[DIST_PHASE_COUNT];
} DistTimerStats;

/* COLLECTIVE. Reduces the stopped totals of t over ranks into *out (on every rank). */
void dist_timers_reduce(const DistTimers *t, DistTimerStats *out);

/* ---- provenance ------------------------------------------------------------------------------------------------ */

/* This node's host name (MPI_Get_processor_name; gethostname in the serial build). Local; static storage. */
const char *dist_hostname(void);
/* The first line of MPI_Get_library_version, e.g. "Open MPI v4.1.4, package: Debian OpenMPI, ..."; "serial (no MPI)"
   in the serial build. Local; static storage. */
const char *dist_mpi_library(void);
/* COLLECTIVE. One line for run records: "mpi=<library>; ranks=<N>; nodes=<H>; host0=<rank 0's host>". Writes at
   most cap bytes (always NUL-terminated) into buf on every rank. */
void dist_provenance(char *buf, size_t cap);

#endif
