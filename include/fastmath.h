/*
 * fastmath.h - exp(x) in float without a libm call, so that `omp simd` loops over it vectorise (glibc's vector
 * expf needs -ffast-math, which this project forbids). Shared by the activation, softmax and attention kernels.
 *
 * Cephes' expf: x = n ln2 + g with |g| <= ln2 / 2 (n rounded by the 1.5 * 2^23 trick, ln2 split in two parts for
 * an exact reduction), a degree-7 polynomial for e^g, and 2^n built in the exponent bits. Relative error at most
 * 8.1e-8 (1.4 ulp) on [-87, 88].
 *
 *   fm_expf_reduced(x)  the core: x must already lie in [-87, 88] (or be NaN, which stays NaN). For loops that
 *                       clamp in a separate pass (GCC 12 does not if-convert a float clamp in the same loop body
 *                       as the bit casts, and would leave the loop scalar).
 *   fm_expf(x)          clamps x to [-87, 88] first (e^-87 ~ 1.6e-38 stands in for smaller results, e^88 ~
 *                       1.7e38 for larger ones). The clamp works on a monotonic integer key of the float's bits:
 *                       integer compares cannot trap, so the selects vectorise under the default
 *                       -ftrapping-math. A NaN input gives a finite result: callers that must propagate NaN
 *                       multiply by x itself (silu, gelu) or test for it.
 */
#ifndef UL_FASTMATH_H
#define UL_FASTMATH_H

#include <stdint.h>
#include <string.h>

static inline float fm_expf_reduced(float x)
{
    float r = x * 1.44269504088896341f + 12582912.0f; /* the low mantissa bits of r now hold round(x / ln2) */
    float n = r - 12582912.0f;
    uint32_t rb;
    memcpy(&rb, &r, sizeof rb);
    float g = x - n * 0.693359375f;
    g = g + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * g + 1.3981999507e-3f;
    p = p * g + 8.3334519073e-3f;
    p = p * g + 4.1665795894e-2f;
    p = p * g + 1.6666665459e-1f;
    p = p * g + 5.0000001201e-1f;
    p = p * g * g + g + 1.0f;
    uint32_t sb = (rb - 0x4B400000u + 127u) << 23; /* 2^n: n + 127 in the exponent field */
    float s2;
    memcpy(&s2, &sb, sizeof s2);
    return p * s2;
}

static inline float fm_expf(float x)
{
    const int32_t klo = (int32_t)0xC2AE0000 ^ 0x7fffffff; /* key of -87.0f */
    const int32_t khi = 0x42B00000;                       /* key of 88.0f */
    int32_t b;
    memcpy(&b, &x, sizeof b);
    int32_t k = b >= 0 ? b : b ^ 0x7fffffff;
    k = k < klo ? klo : k;
    k = k > khi ? khi : k;
    b = k >= 0 ? k : k ^ 0x7fffffff;
    float xc;
    memcpy(&xc, &b, sizeof xc);
    return fm_expf_reduced(xc);
}

#endif
