/*
 * info.h - `unlearn info FILE`: describes a dataset or a checkpoint and validates it with the same checks a job
 * makes (data_open for datasets, ckpt_inspect for checkpoints). The kind is detected from the root attribute
 * `format` ("unlearn-dataset" or "unlearn-checkpoint").
 *
 *     $ unlearn info data/fashion-mnist.h5
 *     data/fashion-mnist.h5: unlearn-dataset version 1, valid
 *       ...splits, shapes, dtypes, normalisation, per-class counts...
 */
#ifndef UL_INFO_H
#define UL_INFO_H

/* argv[0] is the command name ("info"), argv[1..argc) its arguments: one or more files, or --help.
   Local and deterministic, so every rank may call it and returns the same code; only rank 0 (ul_log_rank) prints.
   Prints the description on stdout; on an invalid file one line "unlearn: error: MESSAGE" on stderr.
   Returns 0 when every file is valid, 2 on bad usage or an invalid file. */
int cmd_info(int argc, char **argv);

#endif
