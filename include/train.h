/*
 * train.h - `unlearn train JOB.yaml`: data-parallel training of the original model (train.on: all) or of the
 * retrain-from-scratch reference RT (train.on: retain: the retain set only, which needs the job's forget set).
 *
 * The loop (every rank; src/train.c):
 *   pool     = the train indices (train.on: all) or the retain set, restricted to indices < train.subset if > 0;
 *   batches  = data.h's global batch sequence over pool: G = train.batch_size, shuffled per epoch with the run
 *              seed, the last partial batch dropped (every step sees exactly G samples, whatever the rank count);
 *   step     = forward in training mode (BatchNorm statistics over the global batch), per-sample cross-entropy
 *              seeded with 1/G (job.h's loss scaling), gradient sum over ranks, one optimizer step
 *              (train.optimizer with train.lr under train.schedule over all epochs * batches steps, evaluated per
 *              step); runtime.dist_mode rank0: rank 0 steps and broadcasts; replicated: every rank steps;
 *   checks   = every step agrees (runctl) on a non-finite loss or gradient norm (all ranks exit 4 with one message
 *              and <run_dir>/nonfinite.json) and on stop requests (SIGUSR1/SIGTERM: checkpoint, exit 3);
 *   saves    = <run_dir>/checkpoint.h5 (params, buffers, optimizer state) every checkpoint.every epochs and after
 *              the last one (checkpoint.every 0: only then); resumes from it (checkpoint.resume: auto, or a Slurm
 *              requeue) at the saved step, bitwise as if never stopped (same rank count and threads);
 *   end      = train.out (params and buffers), evaluation (eval.h), report.json, the table.
 * Outputs in run_dir: config.yaml, metrics.jsonl (one line per step and per epoch; docs/report.md), report.json.
 */
#ifndef UL_TRAIN_H
#define UL_TRAIN_H

/* argv[0] is "train", argv[1..] the job file and --set options. Returns 0 (bad input exits 2 on every rank, a
   non-finite loss 4, a stop request 3). */
int cmd_train(int argc, char **argv);

#endif
