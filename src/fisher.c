/* fisher.c - see include/fisher.h. One loop per function over the flat buffers. */
#include "fisher.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Below this many elements a loop runs on the calling thread. */
#define FISHER_OMP_MIN ((size_t)1 << 15)

void fisher_accumulate_sq(float *F, const float *g, size_t n)
{
#pragma omp parallel for simd if (n > FISHER_OMP_MIN)
    for (size_t i = 0; i < n; i++) F[i] += g[i] * g[i];
}

void fisher_accumulate(float *S, const float *g, size_t n)
{
#pragma omp parallel for simd if (n > FISHER_OMP_MIN)
    for (size_t i = 0; i < n; i++) S[i] += g[i];
}

void fisher_divide(float *x, size_t n, float d)
{
#pragma omp parallel for simd if (n > FISHER_OMP_MIN)
    for (size_t i = 0; i < n; i++) x[i] /= d;
}

size_t fisher_numel(const ParamTable *pt)
{
    size_t n = 0;
    for (int v = 0; v < pt->count; v++) n = ul_add_size(n, pt->views[v].n);
    return n;
}

size_t fisher_ratio_mask(float *mask, const float *Ff, const float *Fr, const ParamTable *pt, double gamma)
{
    const float g = (float)gamma;
    memset(mask, 0, pt->total * sizeof(float));
    size_t kept = 0;
    for (int v = 0; v < pt->count; v++) {
        const size_t o = pt->views[v].offset, n = pt->views[v].n;
        for (size_t i = o; i < o + n; i++) {
            float r = (Ff[i] + FISHER_EPS) / (Fr[i] + FISHER_EPS);
            mask[i] = r >= g ? 1.0f : 0.0f;
            kept += r >= g;
        }
    }
    return kept;
}

size_t saliency_topk_count(size_t n, double frac)
{
    UL_CHECK(frac > 0 && frac <= 1, "saliency_topk_count: fraction %g outside (0, 1]", frac);
    double k = floor((double)n * frac);
    return k >= (double)n ? n : (size_t)k;
}

size_t fisher_mask_count(const float *mask, size_t n)
{
    size_t c = 0;
#pragma omp parallel for reduction(+ : c) if (n > FISHER_OMP_MIN)
    for (size_t i = 0; i < n; i++) c += mask[i] != 0.0f;
    return c;
}

bool fisher_all_finite(const float *x, size_t n)
{
    size_t bad = 0;
#pragma omp parallel for reduction(+ : bad) if (n > FISHER_OMP_MIN)
    for (size_t i = 0; i < n; i++) bad += !isfinite(x[i]);
    return bad == 0;
}

static void swapf(float *a, float *b)
{
    float t = *a;
    *a = *b;
    *b = t;
}

static int cmp_float_asc(const void *pa, const void *pb)
{
    float a = *(const float *)pa, b = *(const float *)pb;
    return (a > b) - (a < b);
}

/* Rearranges a[0..n) so that a[q] holds the value a sorted ascending order would put there (introselect:
   median-of-three quickselect, falling back to qsort of the remaining range after 2 log2(n) + 8 rounds). */
static float select_kth(float *a, size_t n, size_t q)
{
    size_t lo = 0, hi = n - 1;
    int budget = 8;
    for (size_t m = n; m > 1; m >>= 1) budget += 2;
    while (hi > lo) {
        if (--budget < 0) {
            qsort(a + lo, hi - lo + 1, sizeof(float), cmp_float_asc);
            break;
        }
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] < a[lo]) swapf(&a[mid], &a[lo]);
        if (a[hi] < a[lo]) swapf(&a[hi], &a[lo]);
        if (a[hi] < a[mid]) swapf(&a[hi], &a[mid]);
        float pivot = a[mid];
        /* Hoare partition: [lo, j] <= pivot <= [j + 1, hi] */
        size_t i = lo, j = hi;
        for (;;) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i >= j) break;
            swapf(&a[i], &a[j]);
            i++;
            j--;
        }
        if (q <= j) hi = j;
        else lo = j + 1;
    }
    return a[q];
}

size_t saliency_topk_mask(float *mask, const float *S, const ParamTable *pt, double frac)
{
    const size_t n = fisher_numel(pt), k = saliency_topk_count(n, frac);
    memset(mask, 0, pt->total * sizeof(float));
    if (k == 0) return 0;
    float *a = UL_MALLOC(ul_mul_size(n, sizeof(float)));
    size_t j = 0;
    for (int v = 0; v < pt->count; v++)
        for (size_t i = pt->views[v].offset; i < pt->views[v].offset + pt->views[v].n; i++) a[j++] = fabsf(S[i]);
    UL_CHECK(fisher_all_finite(a, n), "saliency_topk_mask: the saliency statistics hold NaN or Inf");
    float thr = select_kth(a, n, n - k); /* the k-th largest |S| */
    free(a);
    size_t above = 0;
    for (int v = 0; v < pt->count; v++)
        for (size_t i = pt->views[v].offset; i < pt->views[v].offset + pt->views[v].n; i++) above += fabsf(S[i]) > thr;
    size_t ties = k - above; /* entries equal to thr that still fit, taken in index order */
    for (int v = 0; v < pt->count; v++) {
        for (size_t i = pt->views[v].offset; i < pt->views[v].offset + pt->views[v].n; i++) {
            float s = fabsf(S[i]);
            int keep = s > thr;
            if (!keep && s == thr && ties > 0) {
                keep = 1;
                ties--;
            }
            mask[i] = keep ? 1.0f : 0.0f;
        }
    }
    return k;
}

typedef struct AbsIdx {
    float v;
    size_t i;
} AbsIdx;

/* Descending by value, then ascending by index: a stable sort of -|S|. */
static int cmp_absidx(const void *pa, const void *pb)
{
    const AbsIdx *a = pa, *b = pb;
    if (a->v != b->v) return a->v < b->v ? 1 : -1;
    return (a->i > b->i) - (a->i < b->i);
}

size_t saliency_topk_mask_ref(float *mask, const float *S, const ParamTable *pt, double frac)
{
    const size_t n = fisher_numel(pt), k = saliency_topk_count(n, frac);
    AbsIdx *p = UL_MALLOC(ul_mul_size(n ? n : 1, sizeof(AbsIdx)));
    size_t j = 0;
    for (int v = 0; v < pt->count; v++)
        for (size_t i = pt->views[v].offset; i < pt->views[v].offset + pt->views[v].n; i++) {
            UL_CHECK(isfinite(S[i]), "saliency_topk_mask_ref: the saliency statistics hold NaN or Inf");
            p[j++] = (AbsIdx){fabsf(S[i]), i};
        }
    qsort(p, n, sizeof(AbsIdx), cmp_absidx);
    memset(mask, 0, pt->total * sizeof(float));
    for (size_t r = 0; r < k; r++) mask[p[r].i] = 1.0f;
    free(p);
    return k;
}
