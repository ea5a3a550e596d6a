/*
 * report.h - a run's record: <run_dir>/report.json (schema: docs/report.md), the final table on stdout, and the
 * provenance of the build. Used by train, forget and eval alike.
 *
 *     Report *rep = report_begin(&job);                    // local; every rank keeps one (rank 0 writes it)
 *     report_set_str(rep, "method.name", "sfron");          // "section.key" goes into the object "section"
 *     report_set_num(rep, "method.alpha", 5.0);
 *     report_set_int(rep, "iterations", 50);                // documented top-level keys fill their slots
 *     report_set_str(rep, "checkpoints.output", path);
 *     report_set_num(rep, "phase_seconds.fisher", t_fisher); // adds a phase to the timing object
 *     report_set_eval(rep, &eval_result);                   // metrics, rt_metrics, mia attack
 *     report_write(rep, &job);                              // COLLECTIVE: timers, arena, wall time; rank 0 writes
 *     report_print_table(rep, &job);                        // rank 0 prints the table
 *     report_free(rep);
 *
 * Keys: a plain key ("iterations", "status") is a top-level member; "section.key" is a member of the object
 * "section". The documented keys (docs/report.md) are written in their documented order whether set or not (null
 * or the value the report computes when unset); a value the command set for a documented key takes its place
 * (e.g. "checkpoints.output", "checkpoints.resumed"); other keys set into a documented object are appended to it;
 * any other key or section is written after the documented ones, in the order first set. Setting a key again
 * replaces its value. NAN and +-Inf numbers are written as null (JSON has no NaN).
 */
#ifndef UL_REPORT_H
#define UL_REPORT_H

#include <stdio.h>

#include "eval.h"
#include "job.h"

#define REPORT_FORMAT "unlearn-report"
#define REPORT_FORMAT_VERSION 1
#define REPORT_FILE_NAME "report.json"

typedef struct Report Report;

/* Local. A new report for job (command, name, config, split and checkpoint paths are taken from it at write). */
Report *report_begin(Job *job);
/* Local. Set a value under key ("key" or "section.key"; at most 127 characters). */
void report_set_str(Report *r, const char *key, const char *value);
void report_set_num(Report *r, const char *key, double value);
void report_set_int(Report *r, const char *key, int64_t value);
void report_set_bool(Report *r, const char *key, bool value);
/* Local. Copies e (the report keeps its own copy of the per-class arrays). */
void report_set_eval(Report *r, const EvalResult *e);
/* COLLECTIVE. Reduces the job's phase timers (max and mean over ranks) and arena high-water marks (max), takes the
   wall time since job_open, and rank 0 writes <run_dir>/report.json atomically (temporary file, fsync, rename).
   A write error is one message and exit 1 on every rank. */
void report_write(Report *r, Job *job);
/* Rank 0 (others: no-op): the human-readable summary table on stdout (after report_write). */
void report_print_table(const Report *r, const Job *job);
void report_free(Report *r);

/* ---- build provenance (static strings) ---- */
/* The program version (UNLEARN_VERSION, "0.1.0" unless defined at build time). */
const char *report_version(void);
/* git describe of the source tree, from -DUL_GIT_DESCRIBE="..." at build time; "unknown" without it. */
const char *report_git_describe(void);
/* The compiler (__VERSION__ of GCC/Clang). */
const char *report_compiler(void);
/* The compile flags, from -DUL_BUILD_FLAGS="..." at build time; else what the predefined macros reveal
   (optimisation, -ffast-math, sanitizers, OpenMP), marked as inferred. */
const char *report_build_flags(void);
/* COLLECTIVE (dist_provenance). One line for logs and Job.provenance: version, git, compiler, flags, HDF5, BLAS,
   MPI, ranks x threads, hosts. */
void report_provenance_line(char *buf, size_t cap, int threads);

#endif
