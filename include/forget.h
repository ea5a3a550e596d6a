/*
 * forget.h - `unlearn forget JOB.yaml`: unlearns the job's forget set from model.checkpoint with
 * unlearn.method (the methods and their knobs: include/methods.h; the SFR-on semantics: shared/reference/sfr-on.md
 * §1.3-1.6, §1.11).
 *
 * The run (every rank; src/forget.c):
 *   1. job_open (config, dataset, split, model.checkpoint = theta_0); the method's knobs are validated and agreed.
 *   2. The batch streams, each data.h's global batch sequence (the same at any rank count), shuffled per epoch
 *      with its own seed derived from `seed`:
 *        forget  the forget set, G = min(unlearn.forget_batch_size, |D_f|), full batches only;
 *        retain  the retain set (rl, salun, bt: the whole train set, i.e. retain ∪ forget, with the forget
 *                samples' labels replaced once by unl_random_label (rl, salun) or flagged (bt)),
 *                G = min(unlearn.batch_size, pool), full batches only;
 *      iteration t takes retain batch t (epoch t / nb) and forget batch unl_forget_steps_before(t): the data
 *      position is a function of the iteration index (and the RNG is counter-based), so resuming needs nothing else.
 *   3. The mask, once, at theta_0 (sfron/ga with unlearn.mask fisher or topk; salun topk): eval-mode passes over
 *      unlearn.fisher_batches shuffled batches of each set (0 = one full pass, last partial batch included),
 *      gradients reduced to rank 0 (rank0 mode) or to all (replicated). Skipped when resuming (the mask is in the
 *      checkpoint). The ranks agree once after the passes: non-finite statistics stop the run (exit 4, "Fisher-pass"
 *      or "saliency-pass" in nonfinite.json); a stop request caught during the passes takes effect there
 *      (checkpoint at iteration 0 with the mask, exit 3).
 *   4. unlearn.iters iterations of unl_iteration; after each: one agreement (job_agree_step: a NaN/Inf loss or
 *      gradient norm stops every rank with <run_dir>/nonfinite.json and exit 4; a stop request writes the run
 *      checkpoint and exits 3), a metrics.jsonl line, the progress line; every checkpoint.every iterations the
 *      run checkpoint.
 *   5. <run_dir>/model.h5 (params, buffers), the evaluation (eval.h; with eval.rt_checkpoint when set),
 *      report.json and the table.
 *
 * The run checkpoint (<run_dir>/checkpoint.h5, job_save_model): params, buffers, state/m and state/v (the
 * optimizer moments the kind has), state/slow (theta_prev of the merge), state/mask (when the method has one);
 * step = the next iteration, epoch/batch = the retain stream's position (the forget stream's for ga). The
 * optimizer's step count is unl_optim_steps_before(step). After any number of stops and resumes the final
 * parameters are bitwise those of an uninterrupted run with the same ranks and threads.
 *
 * Outputs beyond docs/report.md's common keys:
 *   report.json  method.{name, <every knob the method read, by its key without "unlearn.">, plus "seed">},
 *                iterations, checkpoints.output (<run_dir>/model.h5), checkpoints.resumed,
 *                forget.{resumed_from_iter, forget_batch, retain_batch, retain_pool ("retain" or "joint"),
 *                retain_batches_per_epoch, forget_batches_per_epoch, forget_steps, optimizer_steps,
 *                final_loss_forget, final_loss_retain},
 *                mask.{kind, kept, total, sparsity (fraction of parameters masked out), fisher_batches_forget,
 *                fisher_batches_retain, fisher_samples_forget, fisher_samples_retain, from_checkpoint},
 *                phase_seconds.{mask, forget_loop}
 *   metrics.jsonl {"event": "iter", "iter", "loss_forget", "loss_retain", "alpha", "lr", "grad_norm_forget",
 *                "grad_norm_retain" (before clipping), "mask_sparsity", "l1", "time"} per iteration (null where a
 *                step did not run), then eval.h's "eval" line.
 */
#ifndef UL_FORGET_H
#define UL_FORGET_H

/* argv[0] is "forget", argv[1..] the job file and --set options. Returns 0 (bad input exits 2 on every rank, a
   non-finite loss 4, a stop request 3). */
int cmd_forget(int argc, char **argv);

#endif
