/*
 * fisher.h - weight-saliency masks over ONE flat buffer (STYLE habit 2): the per-parameter statistics and the 0/1
 * mask are float buffers of the model's params.total, like the parameters and gradients.
 *
 * Two masks (shared/reference/sfr-on.md §1.3 and §2.1):
 *   SFR-on (Fisher ratio)  F = (1/nb) sum_b g_b^2 for the forget and for the retain set, with g_b the gradient of a
 *                          batch's MEAN cross-entropy (eval mode); mask = ((F_f + 1e-15) / (F_r + 1e-15)) >= gamma,
 *                          element by element, in float32 as the reference (gamma rounded to float: PyTorch
 *                          compares a float32 tensor with a Python scalar in float32). A threshold, not a top-k.
 *   SalUn (top-k)          S = sum_b g_b over the forget batches (the sign does not matter: |S| is ranked);
 *                          the k = floor(n * frac) entries of largest |S| are kept, ties broken by the lower flat
 *                          index (a stable sort of -|S|, which is what the fixture's numpy argsort does).
 *
 * Example (one process; the distributed driver reduces each g_b over ranks first, see methods.h):
 *     for each forget batch: g = grad of mean CE;  fisher_accumulate_sq(Ff, g, n);  nbf++
 *     for each retain batch: g = ...;              fisher_accumulate_sq(Fr, g, n);  nbr++
 *     fisher_divide(Ff, n, (float)nbf);  fisher_divide(Fr, n, (float)nbr);
 *     size_t kept = fisher_ratio_mask(mask, Ff, Fr, n, gamma);      // sparsity = 1 - kept / n
 *
 * The flat buffers of a ParamTable have alignment gaps between views (tensor.h); the mask functions take the
 * table, decide only the entries of its views, and leave the gaps 0, so that counts and the top-k fraction refer
 * to the real parameters (PyTorch's numel) only.
 *
 * Every function is local and allocates nothing except saliency_topk_mask (one float copy of |S|, freed before
 * it returns). None of them communicates.
 */
#ifndef UL_FISHER_H
#define UL_FISHER_H

#include <stddef.h>

#include "common.h"
#include "tensor.h"

/* The reference's guard inside the ratio (Classification/unlearn/sfron.py). */
#define FISHER_EPS 1e-15f

/* F[i] += g[i] * g[i] (float32, as PyTorch's accumulation). F, g [n]. */
void fisher_accumulate_sq(float *F, const float *g, size_t n);
/* S[i] += g[i]. S, g [n]. */
void fisher_accumulate(float *S, const float *g, size_t n);
/* x[i] /= d (float32 division, as PyTorch's `fisher /= n_batches`). */
void fisher_divide(float *x, size_t n, float d);

/* The number of real entries of pt's flat buffers: the sum of its views' sizes (<= pt->total). */
size_t fisher_numel(const ParamTable *pt);

/* For every entry i of pt's views: mask[i] := ((Ff[i] + 1e-15f) / (Fr[i] + 1e-15f) >= (float)gamma) ? 1 : 0;
   gaps := 0. mask, Ff, Fr [pt->total]. Returns the number of ones. A NaN ratio gives 0 (the caller checks the
   statistics for finiteness first). */
size_t fisher_ratio_mask(float *mask, const float *Ff, const float *Fr, const ParamTable *pt, double gamma);

/* The k of the top-k rule: floor(n * frac) (Python's int(len * th)), frac in (0, 1]. */
size_t saliency_topk_count(size_t n, double frac);
/* mask := 1 for the k = saliency_topk_count(fisher_numel(pt), frac) entries of pt's views with the largest |S|
   (ties: lower flat index first), 0 for the others and the gaps. mask, S [pt->total]; S must be finite in the
   views (fatal otherwise). Expected O(n): a selection of the k-th largest value, then one pass. Returns k. */
size_t saliency_topk_mask(float *mask, const float *S, const ParamTable *pt, double frac);
/* The naive twin: sorts all (|S|, index) pairs. O(n log n) time and 16n bytes; tests judge the fast one by it. */
size_t saliency_topk_mask_ref(float *mask, const float *S, const ParamTable *pt, double frac);

/* Number of nonzero entries of mask [n]. */
size_t fisher_mask_count(const float *mask, size_t n);
/* True when every x[i] is finite. */
bool fisher_all_finite(const float *x, size_t n);

#endif
