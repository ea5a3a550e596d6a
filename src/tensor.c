/* tensor.c - tensors, the step arena and flat-buffer views; see include/tensor.h. */
#define _DEFAULT_SOURCE
#include "tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define ARENA_ALIGN 64

void arena_init(Arena *a, size_t cap)
{
    void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    UL_CHECK(p != MAP_FAILED, "cannot reserve an arena of %zu MiB of address space", cap >> 20);
    a->base = p;
    a->cap = cap;
    a->used = 0;
    a->high_water = 0;
}

void *arena_alloc(Arena *a, size_t bytes)
{
    size_t start = (a->used + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    size_t end = ul_add_size(start, bytes);
    UL_CHECK(end <= a->cap, "step arena exhausted: %zu MiB reserved, %zu MiB needed (raise runtime.arena_mb)",
             a->cap >> 20, (end >> 20) + 1);
    a->used = end;
    if (end > a->high_water) a->high_water = end;
    return a->base + start;
}

void *arena_calloc(Arena *a, size_t bytes)
{
    void *p = arena_alloc(a, bytes);
    memset(p, 0, bytes);
    return p;
}

void arena_reset(Arena *a) { a->used = 0; }
size_t arena_high_water(const Arena *a) { return a->high_water; }

void arena_free(Arena *a)
{
    if (a->base) munmap(a->base, a->cap);
    memset(a, 0, sizeof *a);
}

size_t tensor_numel(int ndim, const int *shape)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        UL_CHECK(shape[i] >= 0, "negative dimension %d at axis %d", shape[i], i);
        n = ul_mul_size(n, (size_t)shape[i]);
    }
    return n;
}

static Tensor *tensor_header(Arena *a, int ndim, const int *shape)
{
    UL_CHECK(ndim >= 1 && ndim <= TENSOR_MAX_DIMS, "tensor rank %d outside [1, %d]", ndim, TENSOR_MAX_DIMS);
    Tensor *t = arena_alloc(a, sizeof *t);
    memset(t, 0, sizeof *t);
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof(int));
    t->n = tensor_numel(ndim, shape);
    return t;
}

Tensor *tensor_new(Arena *a, int ndim, const int *shape, bool with_grad)
{
    Tensor *t = tensor_header(a, ndim, shape);
    size_t bytes = ul_mul_size(t->n, sizeof(float));
    t->data = arena_alloc(a, bytes);
    t->grad = with_grad ? arena_calloc(a, bytes) : NULL;
    return t;
}

Tensor *tensor_wrap(Arena *a, float *data, float *grad, int ndim, const int *shape)
{
    Tensor *t = tensor_header(a, ndim, shape);
    t->data = data;
    t->grad = grad;
    return t;
}

bool tensor_same_shape(const Tensor *x, const Tensor *y)
{
    if (x->ndim != y->ndim) return false;
    for (int i = 0; i < x->ndim; i++)
        if (x->shape[i] != y->shape[i]) return false;
    return true;
}

const char *tensor_shape_str(const Tensor *t, char *buf, size_t cap)
{
    size_t off = 0;
    off += (size_t)snprintf(buf + off, cap - off, "[");
    for (int i = 0; i < t->ndim && off < cap; i++)
        off += (size_t)snprintf(buf + off, cap - off, i ? ", %d" : "%d", t->shape[i]);
    if (off < cap) snprintf(buf + off, cap - off, "]");
    return buf;
}

void params_init(ParamTable *pt) { memset(pt, 0, sizeof *pt); }

int params_add(ParamTable *pt, const char *name, int ndim, const int *shape)
{
    UL_CHECK(ndim >= 1 && ndim <= TENSOR_MAX_DIMS, "parameter %s: rank %d outside [1, %d]", name, ndim,
             TENSOR_MAX_DIMS);
    UL_CHECK(params_find(pt, name) < 0, "duplicate parameter name %s", name);
    if (pt->count == pt->cap) {
        pt->cap = pt->cap ? 2 * pt->cap : 32;
        pt->views = UL_REALLOC(pt->views, ul_mul_size((size_t)pt->cap, sizeof *pt->views));
    }
    ParamView *v = &pt->views[pt->count];
    memset(v, 0, sizeof *v);
    UL_CHECK(ul_strlcpy(v->name, name, sizeof v->name), "parameter name too long: %s", name);
    v->ndim = ndim;
    memcpy(v->shape, shape, (size_t)ndim * sizeof(int));
    v->n = tensor_numel(ndim, shape);
    v->offset = (pt->total + 15) & ~(size_t)15;
    pt->total = ul_add_size(v->offset, v->n);
    return pt->count++;
}

int params_find(const ParamTable *pt, const char *name)
{
    for (int i = 0; i < pt->count; i++)
        if (strcmp(pt->views[i].name, name) == 0) return i;
    return -1;
}

float *params_alloc(const ParamTable *pt)
{
    size_t bytes = ul_mul_size(pt->total ? pt->total : 1, sizeof(float));
    bytes = (bytes + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes);
    UL_CHECK(p != NULL, "out of memory allocating a flat buffer of %zu floats", pt->total);
    memset(p, 0, bytes);
    return p;
}

Tensor params_view(const ParamTable *pt, int i, float *data, float *grad)
{
    UL_CHECK(i >= 0 && i < pt->count, "parameter index %d out of range", i);
    const ParamView *v = &pt->views[i];
    Tensor t;
    memset(&t, 0, sizeof t);
    t.data = data + v->offset;
    t.grad = grad ? grad + v->offset : NULL;
    t.n = v->n;
    t.ndim = v->ndim;
    memcpy(t.shape, v->shape, sizeof t.shape);
    return t;
}

void params_free(ParamTable *pt)
{
    free(pt->views);
    memset(pt, 0, sizeof *pt);
}
