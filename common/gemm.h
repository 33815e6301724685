/* common/gemm.h: the one door to the matrix-multiply libraries.
 *
 * Only common/gemm.c includes <cblas.h> (OpenBLAS) and <dnnl.h> (oneDNN), so a
 * GEMM library can be swapped or measured against another in one place.
 * Matrices are row-major.
 *
 * sae_gemm/sae_gemv are plain f32 BLAS. sae_gemm_ref is a deliberately naive
 * triple loop kept as the reference the tests check the fast paths against.
 *
 *     // C (m x n) = A (m x k) @ B^T (B stored n x k)
 *     sae_gemm(0, 1, m, n, k, 1.0f, A, k, B, k, 0.0f, C, n);
 *
 * sae_matmul is the SAE's encoder product, C (rows, n) = A (rows, k) @ W^T with
 * W stored (n, k), planned once for a shape and a precision:
 *   f32   OpenBLAS sgemm on W in place (bitwise reproducible per thread count).
 *         oneDNN's f32 matmul is the other candidate; bench/ measures both
 *         (gemm.c says why OpenBLAS stays).
 *   bf16  oneDNN: W and A are rounded to bfloat16 (W into the kernel's own
 *         blocked layout, by sae_matmul_set_weights), products accumulate in
 *         f32 and C is f32. It needs the CPU's bf16 instructions (AVX512-BF16
 *         or AMX); sae_precision_check says whether this machine has them.
 *
 *     sae_matmul *mm;
 *     if (sae_matmul_create(&mm, SAE_PRECISION_BF16, 4096, M, D, &err) < 0) ...
 *     sae_matmul_set_weights(mm, W_enc);   // after every change to W_enc
 *     sae_matmul_run(mm, x, B, pre);       // B <= 4096
 *     sae_matmul_free(mm);
 */
#ifndef SAE_GEMM_H
#define SAE_GEMM_H

#include <stddef.h>

#include "common/err.h"

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

typedef enum sae_precision { SAE_PRECISION_F32 = 0, SAE_PRECISION_BF16 = 1 } sae_precision;
/* Names in enum order, NULL-terminated (the CLI's --precision choices). */
extern const char *const sae_precision_names[];
const char *sae_precision_name(sae_precision p);
int sae_precision_parse(const char *s, sae_precision *out); /* 0 ok, -1 unknown */
/* SAE_OK when p runs at full speed on this CPU; otherwise SAE_ERR_UNSUPPORTED
 * with a message naming what is missing. Honours ONEDNN_MAX_CPU_ISA. */
int sae_precision_check(sae_precision p, sae_error *err);

typedef struct sae_matmul sae_matmul;
int sae_matmul_create(sae_matmul **out, sae_precision p, size_t max_rows, size_t n, size_t k,
                      sae_error *err);
/* The same with the library chosen explicitly, for benchmarks and tests. */
typedef enum sae_matmul_kind {
    SAE_MATMUL_OPENBLAS_F32 = 0,
    SAE_MATMUL_ONEDNN_F32 = 1,
    SAE_MATMUL_ONEDNN_BF16 = 2,
} sae_matmul_kind;
int sae_matmul_create_kind(sae_matmul **out, sae_matmul_kind kind, size_t max_rows, size_t n,
                           size_t k, sae_error *err);
/* Takes W (n, k): f32 keeps the pointer (W must outlive the plan), bf16
 * converts it into the plan's own copy. */
void sae_matmul_set_weights(sae_matmul *mm, const float *W);
/* C (rows, n) = A (rows, k) @ W^T for rows <= max_rows. C must have room for
 * max_rows rows: bf16 always computes the planned shape, with zero inputs past
 * `rows`, and leaves their outputs in C's spare rows. */
void sae_matmul_run(sae_matmul *mm, const float *A, size_t rows, float *C);
/* The library kernel chosen, e.g. "openblas sgemm" or "onednn brg:avx512_core_bf16". */
const char *sae_matmul_impl(const sae_matmul *mm);
void sae_matmul_free(sae_matmul *mm);

/* Sets the thread count of the GEMM libraries and of our own OpenMP kernels
 * together (all share libgomp's pool). */
void sae_set_threads(int n);
int sae_get_threads(void);
/* Name and configuration of the BLAS in use, for logs and `sae info`. */
const char *sae_blas_name(void);

#endif
