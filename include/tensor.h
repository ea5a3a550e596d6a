/*
 * tensor.h - dense float32 tensors, the per-step arena they live in, and named views into flat buffers.
 *
 * Memory model (STYLE habit 2):
 *   - Parameters, gradients and every per-parameter state (optimizer moments, slow copy, Fisher statistics, masks)
 *     are flat float buffers of ONE length, ParamTable.total, described by one ParamTable of named views.
 *     Allreduce, broadcast, zeroing, the optimizer, masking and checkpointing are each one loop over that length.
 *   - Activations, their gradients and everything an op saves for backward come from an Arena that the caller
 *     resets once per step: no malloc inside a step. arena_high_water() reports the peak.
 *
 * Layouts: images NCHW, tokens [B, T, C], linear weights [out, in] (PyTorch's), conv weights [Cout, Cin, kh, kw].
 *
 * Example:
 *     ParamTable pt; params_init(&pt);
 *     int w = params_add(&pt, "fc1.weight", 2, (int[]){128, 784});
 *     float *param = params_alloc(&pt), *grad = params_alloc(&pt);   // zeroed, pt.total floats each
 *     Tensor W = params_view(&pt, w, param, grad);                   // aliases param/grad, no copy
 */
#ifndef UL_TENSOR_H
#define UL_TENSOR_H

#include "common.h"

#define TENSOR_MAX_DIMS 4

typedef struct Tensor {
    float *data;                  /* [n] values, row-major in shape order; not owned */
    float *grad;                  /* [n] accumulated d(loss)/d(data), or NULL when no gradient flows here */
    size_t n;                     /* product of shape */
    int ndim;                     /* 1..TENSOR_MAX_DIMS */
    int shape[TENSOR_MAX_DIMS];
} Tensor;

/* Bump allocator for one step. Memory is reserved (mmap, not touched) up front, so it never moves. */
typedef struct Arena {
    char *base;
    size_t cap;                   /* bytes reserved */
    size_t used;                  /* bytes handed out since the last reset */
    size_t high_water;            /* max of used over the arena's life */
} Arena;

/* Reserves cap bytes of address space (pages are touched only when used). Fatal when it cannot. */
void arena_init(Arena *a, size_t cap);
/* 64-byte-aligned block of `bytes`, NOT zeroed. Fatal (with the capacity and a hint) when the arena is full. */
void *arena_alloc(Arena *a, size_t bytes);
/* Like arena_alloc, zeroed. */
void *arena_calloc(Arena *a, size_t bytes);
void arena_reset(Arena *a);
size_t arena_high_water(const Arena *a);
void arena_free(Arena *a);

/* A tensor of the given shape from the arena: data uninitialised; grad zeroed when with_grad, else NULL. */
Tensor *tensor_new(Arena *a, int ndim, const int *shape, bool with_grad);
/* A tensor header from the arena that aliases existing data/grad (grad may be NULL). */
Tensor *tensor_wrap(Arena *a, float *data, float *grad, int ndim, const int *shape);
/* Product of the shape, overflow-checked. */
size_t tensor_numel(int ndim, const int *shape);
bool tensor_same_shape(const Tensor *x, const Tensor *y);
/* "[2, 3, 4]" into buf; returns buf. */
const char *tensor_shape_str(const Tensor *t, char *buf, size_t cap);

/* ---- named views into flat per-parameter buffers ---- */

#define PARAM_NAME_MAX 96

typedef struct ParamView {
    char name[PARAM_NAME_MAX];    /* e.g. "blocks.0.attn.qkv.weight" */
    int ndim;
    int shape[TENSOR_MAX_DIMS];
    size_t offset;                /* in floats, into every flat buffer of this table */
    size_t n;
} ParamView;

typedef struct ParamTable {
    ParamView *views;             /* owned */
    int count, cap;
    size_t total;                 /* floats in every flat buffer of this table */
} ParamTable;

void params_init(ParamTable *pt);
/* Appends a view at offset pt->total (rounded up to 16 floats for alignment); returns its index.
   Fatal on a duplicate name or a bad shape. */
int params_add(ParamTable *pt, const char *name, int ndim, const int *shape);
/* Index of a view by name, or -1. */
int params_find(const ParamTable *pt, const char *name);
/* A zeroed, 64-byte-aligned flat buffer of pt->total floats (caller frees with free()). */
float *params_alloc(const ParamTable *pt);
/* A Tensor header (by value) aliasing view i of the given flat buffers; grad may be NULL. */
Tensor params_view(const ParamTable *pt, int i, float *data, float *grad);
void params_free(ParamTable *pt);

#endif
