/*
 * kern.h - the BLAS boundary and thread control. src/kern.c is the only file that includes cblas.h.
 *
 * kern_sgemm is the one documented matmul pair behind every linear, matmul, conv and attention op:
 *     C[M, N] = alpha * op(A) @ op(B) + beta * C     (row-major; op(X) = X^T when the flag is set)
 *   A is [M, K] (or [K, M] when trans_a) with leading dimension lda; B is [K, N] (or [N, K]) with ldb.
 * kern_sgemm_ref is its naive twin (double accumulation), used by the tests.
 */
#ifndef UL_KERN_H
#define UL_KERN_H

#include <stdbool.h>

void kern_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc);
void kern_sgemm_ref(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc);

/* Sets the BLAS and OpenMP thread counts of this process explicitly (n >= 1). */
void kern_set_threads(int n);
/* The count last set; the first call without an earlier kern_set_threads sets (and returns) 1. */
int kern_threads(void);
/* OpenBLAS build description (for provenance). */
const char *kern_blas_config(void);

#endif
