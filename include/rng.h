/*
 * rng.h - counter-based random numbers: every draw is a pure function of (seed, stream, counter), so results
 * do not depend on the number of ranks, threads or the order of evaluation. No global state; never rand().
 *
 *     uint64_t r = rng_u64(seed, global_sample_index, element);       // same value on any rank
 *     float u = rng_uniform(seed, stream, k);                          // [0, 1)
 */
#ifndef UL_RNG_H
#define UL_RNG_H

#include <stdint.h>
#include <math.h>

static inline uint64_t rng_mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rng_u64(uint64_t seed, uint64_t stream, uint64_t counter)
{
    return rng_mix64(rng_mix64(rng_mix64(seed) ^ stream) ^ (counter * 0xd1b54a32d192ed03ULL));
}

/* Uniform in [0, 1) with 24 random bits (exactly representable in float). */
static inline float rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter)
{
    return (float)(rng_u64(seed, stream, counter) >> 40) * (1.0f / 16777216.0f);
}

/* Standard normal (Box-Muller on two counter draws). */
static inline float rng_normal(uint64_t seed, uint64_t stream, uint64_t counter)
{
    double u1 = ((double)(rng_u64(seed, stream, 2 * counter) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    double u2 = (double)(rng_u64(seed, stream, 2 * counter + 1) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Uniform integer in [0, n), n >= 1 (negligible bias for n << 2^64). */
static inline uint64_t rng_below(uint64_t seed, uint64_t stream, uint64_t counter, uint64_t n)
{
    return rng_u64(seed, stream, counter) % n;
}

#endif
