/*
 * sha256.h - SHA-256 (FIPS 180-4), streaming. Used for the forget-set digest (split.h) and checkpoint checksums.
 *
 *     Sha256 h; sha256_init(&h);
 *     sha256_update(&h, data, nbytes);            // any number of times, any sizes
 *     uint8_t digest[32]; sha256_final(&h, digest);
 *     char hex[65]; sha256_hex(digest, hex);      // lowercase, NUL-terminated
 *
 * sha256_update_f32le / _i64le hash numbers as their little-endian bytes whatever the host's byte order, so a
 * digest written on one machine can be checked on any other (and reproduced with numpy's '<f4' / '<i8').
 */
#ifndef UL_SHA256_H
#define UL_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct Sha256 {
    uint32_t state[8];
    uint64_t bytes;          /* total bytes hashed so far */
    uint8_t block[64];       /* pending partial block */
    size_t fill;             /* bytes in block */
} Sha256;

void sha256_init(Sha256 *h);
void sha256_update(Sha256 *h, const void *data, size_t n);
/* Finishes the hash into digest[32]; h must be re-initialised before reuse. */
void sha256_final(Sha256 *h, uint8_t digest[32]);
/* digest[32] -> 64 lowercase hex characters + NUL. */
void sha256_hex(const uint8_t digest[32], char hex[65]);
/* One-shot: hex digest of data[0..n). */
void sha256_hex_of(const void *data, size_t n, char hex[65]);

/* x[0..n) as little-endian float32 / int64 bytes. */
void sha256_update_f32le(Sha256 *h, const float *x, size_t n);
void sha256_update_i64le(Sha256 *h, const int64_t *x, size_t n);

#endif
