/* kern.c - see include/kern.h. The only file that includes cblas.h. */
#include "kern.h"
#include "common.h"

#include <cblas.h>
#include <omp.h>

/* OpenBLAS extensions (declared in its cblas.h on Debian, repeated here for other vendors' headers). */
void openblas_set_num_threads(int num_threads);
char *openblas_get_config(void);

/* 0 until the first kern_set_threads; kern_threads() then sets 1 so that OpenMP's default team size (one
   thread per core) can never disagree with the thread count the ops size their per-thread scratch for. */
static int g_threads = 0;

void kern_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M == 0 || N == 0) return;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void kern_sgemm_ref(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double acc = 0.0;
            for (int k = 0; k < K; k++) {
                float a = trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = trans_b ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                acc += (double)a * (double)b;
            }
            float *c = &C[(size_t)i * ldc + j];
            *c = (float)(alpha * acc + (beta == 0.0f ? 0.0 : (double)beta * (double)*c));
        }
    }
}

void kern_set_threads(int n)
{
    UL_CHECK(n >= 1, "thread count must be >= 1, got %d", n);
    g_threads = n;
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
}

int kern_threads(void)
{
    if (g_threads == 0) kern_set_threads(1);
    return g_threads;
}

const char *kern_blas_config(void) { return openblas_get_config(); }
