/*
 * tape.h - tape-based reverse-mode automatic differentiation.
 *
 * Every differentiable computation is a sequence of ops (include/ops.h). Each op call computes its output at
 * once (eager) and, when the tape records and some input carries a gradient, appends a TapeNode. tape_backward()
 * then walks the nodes in reverse and calls each op's backward, which ACCUMULATES into its inputs' gradients.
 * Parameter gradients live in the model's flat gradient buffer; the caller zeroes it before a step.
 *
 * Example (one SGD step of a linear model on a batch):
 *     tape_reset(&tape);                                   // also resets the arena
 *     Tensor *x = tensor_wrap(tape.arena, xb, NULL, 2, (int[]){B, 784});
 *     Tensor *logits = op_linear(&tape, x, &W, &b);        // [B, 10]
 *     Tensor *loss = op_cross_entropy(&tape, logits, yb);  // [B] per-sample
 *     memset(grad, 0, total * sizeof(float));
 *     tape_backward(&tape, loss, w);                       // seed dL/dloss_i = w_i (e.g. 1/B; negative = ascent)
 */
#ifndef UL_TAPE_H
#define UL_TAPE_H

#include "tensor.h"

#define OP_MAX_INPUTS 4

typedef struct TapeNode {
    int op;                        /* OpKind */
    Tensor *out;
    Tensor *in[OP_MAX_INPUTS];     /* unused slots and optional inputs (absent bias) are NULL */
    void *attr;                    /* op-specific attributes and saved values, arena-owned */
} TapeNode;

typedef struct Tape {
    Arena *arena;                  /* activations, gradients, attrs; reset by tape_reset */
    TapeNode *nodes;               /* owned */
    int count, cap;
    bool training;                 /* BatchNorm uses batch statistics and updates running ones; dropout is on */
    bool record;                   /* record nodes and give outputs gradients (false: forward only) */
    bool use_ref;                  /* run the naive _ref twins instead of the fast kernels (tests) */
    /* Sums n doubles in place across the data-parallel ranks (a collective: every rank's tape makes the same
       calls in the same order). NULL: one process. BatchNorm uses it to compute statistics over the global
       batch, so that training does not depend on the number of ranks. */
    void (*allreduce_sum)(double *buf, size_t n);
} Tape;

void tape_init(Tape *t, Arena *arena, int max_nodes);
/* Forgets all nodes and resets the arena (every Tensor from it becomes invalid). */
void tape_reset(Tape *t);
void tape_free(Tape *t);

/*
 * Runs op `op` forward into `out` and records the node if t->record and out->grad != NULL.
 * Used by the op constructors in ops_*.c; `in` holds nin tensors (NULL allowed for optional inputs).
 */
void tape_apply(Tape *t, int op, Tensor *out, Tensor *const *in, int nin, void *attr);

/* True when an op with these inputs must produce a gradient-carrying output. */
bool tape_wants_grad(const Tape *t, Tensor *const *in, int nin);

/*
 * Backpropagates from `out`: out->grad += seed (seed has out->n floats; NULL means all ones), then every recorded
 * node in reverse order. Gradients accumulate; the caller zeroes parameter gradients beforehand.
 */
void tape_backward(Tape *t, Tensor *out, const float *seed);

#endif
