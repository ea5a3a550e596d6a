/*
 * ops.h - the closed op set of the autograd core.
 *
 * Every op is a row of UL_OP_LIST: an enum value OP_<NAME>, and four functions over a TapeNode, defined in one of
 * src/ops_*.c:  op_<name>_forward, op_<name>_backward (the fast kernels) and op_<name>_forward_ref,
 * op_<name>_backward_ref (naive twins that tests judge the fast ones against). op_table[] lists them with
 * the op's name and arity (number of tensor inputs, optional ones included).
 *
 * Backward ACCUMULATES into in[i]->grad for every input whose grad is not NULL; it never overwrites.
 * Layouts: images NCHW; tokens [B, T, C]; linear weight [N, K] (PyTorch); conv weight [Cout, Cin, kh, kw].
 *
 * The constructors below allocate the output from the tape's arena, run the forward and record the node.
 * Example (a pre-activation residual block):
 *     Tensor *h = op_conv2d(t, op_relu(t, op_batchnorm2d(t, x, g, b, rm, rv, 0.1f, 1e-5f)), w, NULL, 1, 1);
 *     Tensor *y = op_add(t, x, h);
 */
#ifndef UL_OPS_H
#define UL_OPS_H

#include "tape.h"

/*  X(ENUM, name, arity)  */
#define UL_OP_LIST(X)                    \
    X(LINEAR, linear, 3)                 \
    X(MATMUL, matmul, 2)                 \
    X(ADD, add, 2)                       \
    X(SUB, sub, 2)                       \
    X(MUL, mul, 2)                       \
    X(SCALE, scale, 1)                   \
    X(ADD_BCAST, add_bcast, 2)           \
    X(MUL_BCAST, mul_bcast, 2)           \
    X(CONV2D, conv2d, 3)                 \
    X(PAD2D, pad2d, 1)                   \
    X(UPSAMPLE2X, upsample2x, 1)         \
    X(AVGPOOL2D, avgpool2d, 1)           \
    X(MAXPOOL2D, maxpool2d, 1)           \
    X(GLOBAL_AVGPOOL, global_avgpool, 1) \
    X(BATCHNORM2D, batchnorm2d, 3)       \
    X(GROUPNORM, groupnorm, 3)           \
    X(LAYERNORM, layernorm, 3)           \
    X(RELU, relu, 1)                     \
    X(SILU, silu, 1)                     \
    X(GELU_TANH, gelu_tanh, 1)           \
    X(DROPOUT, dropout, 1)               \
    X(SOFTMAX, softmax, 1)               \
    X(LOG_SOFTMAX, log_softmax, 1)       \
    X(CROSS_ENTROPY, cross_entropy, 1)   \
    X(MSE, mse, 2)                       \
    X(KL_DIV, kl_div, 2)                 \
    X(WEIGHTED_SUM, weighted_sum, 1)     \
    X(ATTENTION, attention, 3)           \
    X(PERMUTE, permute, 1)               \
    X(SLICE, slice, 1)                   \
    X(CONCAT, concat, 2)                 \
    X(EMBEDDING, embedding, 1)           \
    X(TIMESTEP_EMB, timestep_emb, 0)     \
    X(MODULATE, modulate, 3)             \
    X(UNPATCHIFY, unpatchify, 1)

typedef enum OpKind {
#define UL_OP_ENUM(E, n, a) OP_##E,
    UL_OP_LIST(UL_OP_ENUM)
#undef UL_OP_ENUM
    OP__COUNT
} OpKind;

typedef void (*OpFn)(TapeNode *node);

typedef struct OpInfo {
    const char *name;
    int arity;
    OpFn forward, backward;          /* fast */
    OpFn forward_ref, backward_ref;  /* naive twins, always compiled */
} OpInfo;

extern const OpInfo op_table[OP__COUNT];

#define UL_OP_DECL(E, n, a)                  \
    void op_##n##_forward(TapeNode *node);   \
    void op_##n##_backward(TapeNode *node);  \
    void op_##n##_forward_ref(TapeNode *node); \
    void op_##n##_backward_ref(TapeNode *node);
UL_OP_LIST(UL_OP_DECL)
#undef UL_OP_DECL

/* ---------------- constructors (src/ops_dense.c) ---------------- */

/* x [..., K], w [N, K], b [N] or NULL -> [..., N]. */
Tensor *op_linear(Tape *t, Tensor *x, Tensor *w, Tensor *b);
/* Batched matmul: a [..., M, K] (or [..., K, M] when trans_a), b [..., K, N] (or [..., N, K] when trans_b),
   equal leading dims (0 to 2 of them) -> [..., M, N]. */
Tensor *op_matmul(Tape *t, Tensor *a, Tensor *b, bool trans_a, bool trans_b);
/* x [B, Cin, H, W], w [Cout, Cin, kh, kw], b [Cout] or NULL; symmetric zero padding -> [B, Cout, Ho, Wo]. */
Tensor *op_conv2d(Tape *t, Tensor *x, Tensor *w, Tensor *b, int stride, int pad);
/* Whether the fast op_conv2d runs a conv of these dims (x [B, Cin, H, W], w [Cout, Cin, kh, kw]) by Winograd
   F(2x2, 3x3) instead of im2col + sgemm (forward and dx; see src/ops_dense.c). */
bool op_conv2d_winograd(int Cin, int Cout, int H, int W, int kh, int kw, int stride, int pad);
/* Zero padding of the last two dims: [B, C, H, W] -> [B, C, H + top + bottom, W + left + right]. */
Tensor *op_pad2d(Tape *t, Tensor *x, int top, int bottom, int left, int right);
/* Nearest-neighbour x2: [B, C, H, W] -> [B, C, 2H, 2W]. */
Tensor *op_upsample2x(Tape *t, Tensor *x);
/* No padding; floor output size (PyTorch's default). */
Tensor *op_avgpool2d(Tape *t, Tensor *x, int kernel, int stride);
Tensor *op_maxpool2d(Tape *t, Tensor *x, int kernel, int stride);
/* [B, C, H, W] -> [B, C]. */
Tensor *op_global_avgpool(Tape *t, Tensor *x);

/* ---------------- constructors (src/ops_elem.c) ---------------- */

Tensor *op_add(Tape *t, Tensor *x, Tensor *y);      /* same shapes */
Tensor *op_sub(Tape *t, Tensor *x, Tensor *y);
Tensor *op_mul(Tape *t, Tensor *x, Tensor *y);
Tensor *op_scale(Tape *t, Tensor *x, float c);
/* y has x's ndim and each of its dims equals x's or is 1 (broadcast): x + y, x * y. */
Tensor *op_add_bcast(Tape *t, Tensor *x, Tensor *y);
Tensor *op_mul_bcast(Tape *t, Tensor *x, Tensor *y);
/* x [B, C, H, W]; gamma, beta [C]; running_mean/var [C] (not differentiated). t->training: batch statistics
   (biased variance for normalising, unbiased for the running update, PyTorch's rule) and running stats updated
   in place; else the running statistics. */
Tensor *op_batchnorm2d(Tape *t, Tensor *x, Tensor *gamma, Tensor *beta, float *running_mean, float *running_var,
                       float momentum, float eps);
/* x [B, C, ...] with C divisible by groups; gamma, beta [C]. */
Tensor *op_groupnorm(Tape *t, Tensor *x, Tensor *gamma, Tensor *beta, int groups, float eps);
/* Over the last dim C; gamma, beta [C] or both NULL (no affine). */
Tensor *op_layernorm(Tape *t, Tensor *x, Tensor *gamma, Tensor *beta, float eps);
Tensor *op_relu(Tape *t, Tensor *x);
Tensor *op_silu(Tape *t, Tensor *x);
Tensor *op_gelu_tanh(Tape *t, Tensor *x);
/* Inverted dropout, active only when t->training. The keep decision for element j of row r (rows = dim 0) is a
   pure function of (seed, row_keys[r], j): pass global sample indices so that it does not depend on the rank
   count. row_keys NULL means r itself. */
Tensor *op_dropout(Tape *t, Tensor *x, float p, uint64_t seed, const int64_t *row_keys);
/* Over the last dim. */
Tensor *op_softmax(Tape *t, Tensor *x);
Tensor *op_log_softmax(Tape *t, Tensor *x);
/* logits [B, C], labels [B] in [0, C) -> per-sample losses [B]. Weight them through tape_backward's seed or
   op_weighted_sum (negative weights give ascent). */
Tensor *op_cross_entropy(Tape *t, Tensor *logits, const int *labels);
/* pred, target [B, ...] -> [B]: mean (mean=true) or sum of squared differences over each sample's elements. */
Tensor *op_mse(Tape *t, Tensor *pred, Tensor *target, bool mean);
/* logp, logq [B, C] log-probabilities -> [B]: KL(p || q) = sum_c exp(logp) (logp - logq). Both differentiable. */
Tensor *op_kl_div(Tape *t, Tensor *logp, Tensor *logq);
/* x [B] -> [1]: sum_i w[i] x[i]; w is copied. */
Tensor *op_weighted_sum(Tape *t, Tensor *x, const float *w);

/* ---------------- constructors (src/ops_shape.c) ---------------- */

/* Multi-head self-attention core: q, k, v [B, T, C], C = heads * D ->
   [B, T, C] with out_h = softmax(q_h k_h^T / sqrt(D)) v_h per head h (channels h*D .. h*D+D-1). */
Tensor *op_attention(Tape *t, Tensor *q, Tensor *k, Tensor *v, int heads);
/* An alias with a new shape (same n): no copy and no node; gradients flow through the shared buffer. */
Tensor *op_reshape(Tape *t, Tensor *x, int ndim, const int *shape);
/* out.shape[i] = x.shape[perm[i]]. */
Tensor *op_permute(Tape *t, Tensor *x, const int *perm);
Tensor *op_transpose(Tape *t, Tensor *x, int d0, int d1);
/* x.shape[dim] -> len, starting at start. */
Tensor *op_slice(Tape *t, Tensor *x, int dim, int start, int len);
/* n equal pieces along dim into out[0..n-1] (qkv split, adaLN chunks). */
void op_chunk(Tape *t, Tensor *x, int dim, int n, Tensor **out);
/* Along dim; other dims equal. */
Tensor *op_concat(Tape *t, Tensor *a, Tensor *b, int dim);
/* table [V, C], idx[count] in [0, V) -> [count, C]; gradient scattered into the table. */
Tensor *op_embedding(Tape *t, Tensor *table, const int *idx, int count);
/* Sinusoidal timestep embedding of ts[B] (not differentiated) -> [B, dim], dim even, half = dim/2:
     freq_i = exp(-ln(max_period) * i / (half - shift)), i in [0, half); shift = 1 for the DDPM UNet, 0 for DiT.
     cos_first: [cos(t f), sin(t f)] (DiT) else [sin(t f), cos(t f)] (DDPM). */
Tensor *op_timestep_emb(Tape *t, const float *ts, int B, int dim, float max_period, int shift, bool cos_first);
/* adaLN modulation: x [B, T, C], shift and scale [B, C] -> x * (1 + scale) + shift, per sample. */
Tensor *op_modulate(Tape *t, Tensor *x, Tensor *shift, Tensor *scale);
/* DiT's unpatchify: x [B, h*w, p*p*C] (token (i, j) holds (p_row, p_col, c)) -> [B, C, h*p, w*p]. */
Tensor *op_unpatchify(Tape *t, Tensor *x, int p, int C, int h, int w);

#endif
