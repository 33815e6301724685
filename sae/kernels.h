/* sae/kernels.h: the SAE's math on plain arrays; no structs, no allocation.
 *
 * Dimension names used throughout:
 *   B  rows in the batch          D  input width (d_model)
 *   M  latents (dictionary size)  S  selection slots per row (k main + k_aux)
 * All matrices are row-major. Forward and backward of each operation sit side
 * by side; backward functions accumulate (+=) into gradients unless they say
 * otherwise (the sparse weight gradients overwrite: no separate zeroing pass). Threads (OpenMP) live inside these kernels only, and every output
 * element is produced by one thread in a fixed order, so results are bitwise
 * reproducible for a given thread count.
 *
 * Sparse selections are stored as (idx, val) pairs, S slots per row, with
 * idx = -1 for an unused slot. A latent index (sae_latent_index_build) lists,
 * for each latent, the (row, slot) entries that selected it, which lets the
 * weight gradients be accumulated latent by latent with no write conflicts and
 * in O(B*S*D) work: never a dense B x M gradient.
 */
#ifndef SAE_KERNELS_H
#define SAE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* xc (B,D) = x (B,D) - b (D) */
void sae_sub_bias_forward(float *xc, const float *x, const float *b, size_t B, size_t D);

/* TopK over ReLU: for each row keep the K largest values of max(pre + b_enc, 0)
 * among candidate latents cand (n_cand of them, in increasing order; cand NULL
 * = all M). Writes idx/val at row stride S (K <= S), in no particular order.
 * Ties keep the lower latent index, so a row with fewer than K positive values
 * is completed with zeros at its lowest zero-valued latents. Slots beyond
 * min(K, n_cand) get idx -1, val 0. scratch holds SAE_TOPK_SLOTS *
 * sae_topk_scratch_len(K) pairs. Non-differentiable selection: its backward is
 * the gather/scatter of sae_sparse_decode_* and sae_latent_scatter_backward. */
typedef struct sae_topk_pair {
    float v;
    int32_t j;
} sae_topk_pair;
#define SAE_TOPK_SLOTS 64
size_t sae_topk_scratch_len(size_t K);
void sae_topk_forward(int32_t *idx, float *val, const float *pre, const float *b_enc,
                      const int32_t *cand, size_t n_cand, size_t B, size_t M, size_t S, size_t K,
                      sae_topk_pair *scratch);

/* out (B,D) = sum over slots s in [0,K) of val[b,s] * W_dec[idx[b,s]] (+ bias (D) if not NULL) */
void sae_sparse_decode_forward(float *out, const int32_t *idx, const float *val, const float *W_dec,
                               const float *bias, size_t B, size_t D, size_t S, size_t K);
/* dval[b,s] = dout[b] . W_dec[idx[b,s]] for s in [0,K), overwritten (0 for
 * unused slots or val <= 0, i.e. the ReLU gate folded in). */
void sae_sparse_decode_backward(float *dval, const float *dout, const int32_t *idx,
                                const float *val, const float *W_dec, size_t B, size_t D,
                                size_t S, size_t K);

/* Builds, for each latent j, the list entry[start[j] .. start[j+1]) of flat
 * slot positions b*S + s with idx == j and val > 0 (counting sort, in row order).
 * start has M+1 entries; entry has room for B*S. */
void sae_latent_index_build(uint32_t *start, uint32_t *entry, const int32_t *idx, const float *val,
                            size_t B, size_t M, size_t S);

/* Weight gradients of the sparse encoder/decoder, latent by latent, all
 * overwritten (rows of latents with no entry become zero):
 *   dW_dec[j] = sum_e val[e] * dout_e[row(e)]         (D)
 *   dW_enc[j] = sum_e dval[e] * xc[row(e)]            (D)   (W_enc stored (M,D))
 *   dpre_sum[j] = sum_e dval[e]
 * where dout_e is dout_main for slots s < K_main and dout_aux otherwise. */
void sae_latent_scatter_backward(float *dW_dec, float *dW_enc, float *dpre_sum,
                                 const uint32_t *start, const uint32_t *entry, const float *val,
                                 const float *dval, const float *xc, const float *dout_main,
                                 const float *dout_aux, size_t M, size_t D, size_t S,
                                 size_t K_main);

/* In place: z (B,M) = max(z + b (M), 0). Backward: dz *= (z > 0) using the
 * forward output. */
void sae_relu_bias_forward(float *z, const float *b, size_t B, size_t M);
void sae_relu_backward(float *dz, const float *z, size_t B, size_t M);

/* out[j] (+)= alpha * sum_b a[b,j] over a (B,N); overwrite when accumulate = 0. */
void sae_col_sum(float *out, const float *a, float alpha, size_t B, size_t N, int accumulate);
/* counts[j] += number of rows b with a[b,j] > 0 */
void sae_col_count_positive(uint32_t *counts, const float *a, size_t B, size_t N);

/* err (B,D) = xhat - x (err may be xhat); returns the sum of squares
 * (double accumulation). row_sums is B doubles of scratch. */
double sae_residual(float *err, const float *xhat, const float *x, size_t B, size_t D,
                    double *row_sums);
/* out (B,D) = a + b (out may be a or b); returns the sum of squares, as above. */
double sae_add_sumsq(float *out, const float *a, const float *b, size_t B, size_t D,
                     double *row_sums);
/* out[i] = s * a[i] for n values (out may be a). */
void sae_scale(float *out, const float *a, float s, size_t n);
/* sum over rows of ||x_b - mean(x)||^2, the batch's total variance;
 * scratch is 2 * D doubles. */
double sae_total_variance(const float *x, size_t B, size_t D, double *scratch);

/* L2 norm of each of the M rows of W (M,D) into norms. */
void sae_row_norms(float *norms, const float *W, size_t M, size_t D);

#endif
