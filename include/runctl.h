/*
 * runctl.h - run control: stop requests (signals), agreeing on them across ranks, resuming, and the
 * checkpoint and diagnostics files of a run directory. The plumbing for preemptible batch jobs
 * (slurm/unlearn.sbatch) and for the NaN/Inf check on the loss (STYLE habit 7).
 *
 * The protocol between the job script and the binary:
 *   - Slurm (--signal=B:USR1@120 through the job script, or --signal=USR1@120 straight to srun's tasks) or an
 *     administrator (SIGTERM) asks the run to stop. The handler installed by runctl_install_signals only sets a
 *     flag; the loop notices it at its next runctl_agree.
 *   - runctl_agree is ONE collective per iteration that ORs every rank's flags, so that every rank sees the same
 *     answer after the same iteration, and all ranks stop together (no rank leaves a collective early).
 *   - On RUNCTL_STOP the binary writes a complete checkpoint (runctl_checkpoint_path, written as a temporary file
 *     and renamed with runctl_publish_file) and every rank exits with UL_EXIT_PREEMPTED; the job script then
 *     requeues the job. On restart (SLURM_RESTART_COUNT > 0, or checkpoint.resume: auto) runctl_should_resume
 *     says to continue from that checkpoint.
 *   - On RUNCTL_NONFINITE rank 0 writes <run_dir>/nonfinite.json and prints one message; all ranks exit with
 *     UL_EXIT_NONFINITE. The job script does not requeue.
 *
 * Example (the iteration loop of a command; every rank runs it):
 *     runctl_install_signals();                                  // once, early in main
 *     int64_t it0 = 0;
 *     if (runctl_should_resume(config_enum_name("checkpoint.resume", cfg->checkpoint.resume)) && exists(ckpt)) {
 *         it0 = load_checkpoint(ckpt);                            // every rank
 *         if (dist_rank() == 0) runctl_log_resumed(it0, ckpt);
 *     }
 *     for (int64_t it = it0; it < iters; it++) {
 *         double loss = step(it);
 *         unsigned local = isfinite(loss) ? 0 : RUNCTL_NONFINITE;
 *         unsigned flags = runctl_agree(local);                   // COLLECTIVE; adds RUNCTL_STOP when signalled
 *         if (flags & RUNCTL_NONFINITE) {
 *             if (dist_rank() == 0)
 *                 runctl_write_nonfinite_diagnostics(cfg->run_dir, it, "forget", gnorm,
 *                                                    runctl_flag_rank(RUNCTL_NONFINITE), &err);
 *             dist_exit(UL_EXIT_NONFINITE);
 *         }
 *         if (flags & RUNCTL_STOP) {
 *             save_checkpoint(ckpt, it + 1);                      // iteration it is complete
 *             if (dist_rank() == 0) runctl_log_preempted(it + 1, ckpt);
 *             dist_exit(UL_EXIT_PREEMPTED);
 *         }
 *     }
 */
#ifndef UL_RUNCTL_H
#define UL_RUNCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* Exit codes every rank uses together (through dist_exit). 1 is a fatal internal error (ul_fatal), 2 bad input. */
#define UL_EXIT_PREEMPTED 3 /* stopped on request after writing a complete checkpoint: requeue me */
#define UL_EXIT_NONFINITE 4 /* stopped because a loss was NaN or Inf: do not requeue */

/* Flags agreed by runctl_agree (ORed over ranks). */
#define RUNCTL_STOP 1u      /* a stop was requested (SIGUSR1 or SIGTERM caught on some rank) */
#define RUNCTL_NONFINITE 2u /* a loss (or gradient norm) was NaN or Inf on some rank */
#define RUNCTL_IOERR 4u     /* an I/O operation failed on some rank (e.g. a checkpoint could not be written) */
#define RUNCTL_FLAG_BITS 3
#define RUNCTL_ALL_FLAGS ((1u << RUNCTL_FLAG_BITS) - 1u)

/* The file names inside a run directory. */
#define RUNCTL_CHECKPOINT_NAME "checkpoint.h5"
#define RUNCTL_NONFINITE_NAME "nonfinite.json"

/* Local. Installs a handler for SIGUSR1 and SIGTERM (SA_RESTART: interrupted system calls resume) that only sets
   an async-signal-safe flag (volatile sig_atomic_t). Call once per process, early in main, on every rank. Fatal if
   sigaction fails. A stop request is sticky: once caught, runctl_signalled stays true for the process's life. */
void runctl_install_signals(void);
/* Local. True once SIGUSR1 or SIGTERM has been caught by this process. */
bool runctl_signalled(void);
/* Local. The number of the last signal caught (SIGUSR1 or SIGTERM), 0 when none. */
int runctl_signal_number(void);
/* "SIGUSR1", "SIGTERM", or "signal N". Static storage for the known names; not reentrant for others. */
const char *runctl_signal_name(int signum);

/* COLLECTIVE (one small allreduce; every rank calls it once per iteration, in the same order as every other
   collective). ORs local_flags (a combination of RUNCTL_* bits; others are an internal error), plus RUNCTL_STOP
   when this process was signalled, over all ranks, and returns the result on every rank: all ranks take the same
   decision after the same iteration. Also records, per flag, the lowest rank that raised it (runctl_flag_rank). */
unsigned runctl_agree(unsigned local_flags);
/* Local. The lowest rank that raised `flag` (exactly one RUNCTL_* bit) in the last runctl_agree, or -1 when no
   rank did (or runctl_agree was never called). The same on every rank. */
int runctl_flag_rank(unsigned flag);

/* Local. SLURM_RESTART_COUNT as a non-negative integer; 0 when unset or not a number. */
int runctl_restart_count(void);
/* Local. Whether to continue from the run's last complete checkpoint (if one exists: the caller checks):
   true when resume_mode is "auto", or when this is a restarted Slurm job (SLURM_RESTART_COUNT > 0; a requeued
   job always continues its own run, even with "never"). resume_mode is checkpoint.resume's name ("auto" or
   "never"); anything else is an internal error (the config layer validated it). */
bool runctl_should_resume(const char *resume_mode);

/* Local. The canonical checkpoint of a run directory, "<run_dir>/checkpoint.h5", into buf[cap]. Returns false and
   fills err when it does not fit. */
bool runctl_checkpoint_path(const char *run_dir, char *buf, size_t cap, UlError *err);
/* Local. Makes a completely written file visible under its final name: fsync(tmp), rename(tmp, final), fsync of
   final's directory. A crash leaves either the old final file or the new one, never a partial one. Returns false
   and fills err (naming the file and the system error) on failure; tmp is then left in place. */
bool runctl_publish_file(const char *tmp, const char *final_path, UlError *err);

/* Local; call on ONE rank (rank 0). Writes "<run_dir>/nonfinite.json" (atomically, through a temporary file):
       {"format": "unlearn-nonfinite", "format_version": 1, "iteration": 12, "loss": "forget",
        "grad_norm": "nan", "first_rank": 1, "ranks": 2}
   (grad_norm is a number when finite, else the string "nan", "inf" or "-inf"; first_rank is the lowest rank that
   saw it, -1 when unknown), and prints ONE message to stderr:
       unlearn: error: non-finite forget loss at iteration 12 (first seen on rank 1, gradient norm nan): all ranks
       stop; diagnostics in runs/x/nonfinite.json
   Returns false and fills err when the file cannot be written (the message is printed either way). */
bool runctl_write_nonfinite_diagnostics(const char *run_dir, int64_t iteration, const char *which_loss,
                                        double grad_norm, int first_rank, UlError *err);

/* Local; call on rank 0. The messages the job script and tests look for (one line each, to stdout):
       unlearn: resumed from iteration K (CHECKPOINT, restart R)
       unlearn: stop requested (SIGUSR1) at iteration K: complete checkpoint CHECKPOINT written; exit 3 (requeue)
   The second names the signal caught on rank 0, or "another rank" when rank 0 was not signalled itself. */
void runctl_log_resumed(int64_t iteration, const char *checkpoint);
void runctl_log_preempted(int64_t iteration, const char *checkpoint);

#endif
