/* common/blas.h: the one door to the BLAS library.
 *
 * Only common/blas.c includes <cblas.h>, so the GEMM library can be swapped (or
 * measured against another) in one place. Matrices are row-major.
 * sae_gemm_ref is a deliberately naive triple loop kept as the reference the
 * tests check the fast path against.
 *
 *     // C (m x n) = A (m x k) @ B^T (B stored n x k)
 *     sae_gemm(0, 1, m, n, k, 1.0f, A, k, B, k, 0.0f, C, n);
 */
#ifndef SAE_BLAS_H
#define SAE_BLAS_H

#include <stddef.h>

/* C = alpha * op(A) @ op(B) + beta * C; op(X) = X^T when trans_x. op(A) is
 * m x k, op(B) is k x n, C is m x n; lda/ldb/ldc are row strides. */
void sae_gemm(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
              const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
              size_t ldc);
void sae_gemm_ref(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                  const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
                  size_t ldc);
/* y = alpha * op(A) @ x + beta * y; A is m x n (row stride lda). */
void sae_gemv(int trans_a, size_t m, size_t n, float alpha, const float *A, size_t lda,
              const float *x, float beta, float *y);

/* Sets the thread count of BLAS and of our own OpenMP kernels together. */
void sae_set_threads(int n);
int sae_get_threads(void);
/* Name and configuration of the BLAS in use, for logs and `sae info`. */
const char *sae_blas_name(void);

#endif
