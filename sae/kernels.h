/* sae/kernels.h: the SAE's math on plain arrays; no structs, no allocation.
 *
 * Dimension names used throughout:
 *   B  rows in the batch          D  input width (d_model)
 *   M  latents (dictionary size)  S  selection slots per row (k main + k_aux)
 *   N  entries selected over a whole batch (BatchTopK: k * B)
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

/* Sparse rows: row r's entries are idx/val[first[r] .. first[r] + count[r]),
 * with idx -1 (or val <= 0) for an unused entry. */

/* out (B,D) = sum over row r's entries of val * W_dec[idx] (+ bias (D) if not NULL) */
void sae_sparse_decode_forward(float *out, const int32_t *idx, const float *val, const float *W_dec,
                               const float *bias, size_t B, size_t D, const uint32_t *first,
                               const uint32_t *count);
/* dval[e] = dout_g[row] . W_dec[idx[e]], overwritten (0 for unused entries or
 * val <= 0, i.e. the ReLU gate folded in), where dout_g = dout[group[idx]]
 * (group NULL: dout[0]). */
void sae_sparse_decode_backward(float *dval, const float *const *dout, const uint8_t *group,
                                const int32_t *idx, const float *val, const float *W_dec,
                                size_t B, size_t D, const uint32_t *first, const uint32_t *count);
/* Nested (Matryoshka) reconstructions: with row r's entries in increasing
 * latent order, out[g] (B,D) = bias + the entries with idx < widths[g], for
 * g < G (the last width is M, so out[G-1] is the full reconstruction). */
void sae_sparse_decode_prefixes(float *const *out, const int32_t *idx, const float *val,
                                const float *W_dec, const float *bias, size_t B, size_t D,
                                const uint32_t *first, const uint32_t *count,
                                const size_t *widths, size_t G);

/* Builds, for each latent j, the list entry[start[j] .. start[j+1]) of the
 * entries e < n with idx == j and val > 0 (counting sort, in entry order).
 * start has M+1 entries; entry has room for n. */
void sae_latent_index_build(uint32_t *start, uint32_t *entry, const int32_t *idx, const float *val,
                            size_t n, size_t M);

/* Weight gradients of the sparse encoder/decoder, latent by latent, all
 * overwritten (rows of latents with no entry become zero):
 *   dW_dec[j] = sum_e val[e] * dout_e[row(e)]         (D)
 *   dW_enc[j] = sum_e dval[e] * xc[row(e)]            (D)   (W_enc stored (M,D))
 *   dpre_sum[j] = sum_e dval[e]
 * where row(e) = ent_row[e] & SAE_ROW_MASK, and dout_e is dout_aux for
 * entries flagged SAE_ROW_AUX, else dout_main[group[j]] (group NULL: [0]). */
#define SAE_ROW_AUX 0x80000000u
#define SAE_ROW_MASK 0x7fffffffu
void sae_latent_scatter_backward(float *dW_dec, float *dW_enc, float *dpre_sum,
                                 const uint32_t *start, const uint32_t *entry,
                                 const uint32_t *ent_row, const float *val, const float *dval,
                                 const float *xc, const float *const *dout_main,
                                 const uint8_t *group, const float *dout_aux, size_t M, size_t D);

/* --- BatchTopK selection --------------------------------------------------------
 * The N largest values of ReLU(pre + b_enc) over a whole batch, encoded in
 * chunks of rows: each chunk is scanned by the threads into their own buffers
 * (values above the running N-th best t), then merged into `sel`, keeping its
 * N best. The set is exact and does not depend on the thread count: "better"
 * is the larger value, then the smaller (row, latent). Buffers: `sel` holds
 * (nthr + 1) * N pairs, `local` nthr * sae_batch_local_len(N). */
typedef struct sae_batch_pair {
    float v;
    uint32_t row;
    int32_t j;
} sae_batch_pair;
size_t sae_batch_local_len(size_t N);
/* Adds rows r0 .. r0 + rows (pre is (rows, M)) to sel (*n_sel entries, *t its
 * admission threshold, 0 at the start of a batch). */
void sae_batchtopk_chunk(sae_batch_pair *sel, size_t *n_sel, float *t, size_t N,
                         sae_batch_pair *local, size_t nthr, const float *pre, const float *b_enc,
                         size_t r0, size_t rows, size_t M);
/* Writes the selection as sparse rows sorted by (row, latent): count[r] and
 * first[r] (prefix sums from `base`) for B rows, idx/val at those places.
 * Returns the smallest selected value (0 if none). */
float sae_batchtopk_finish(int32_t *idx, float *val, uint32_t *first, uint32_t *count,
                           uint32_t base, sae_batch_pair *sel, size_t n_sel, size_t N, size_t B);

/* Threshold rule (BatchTopK at inference): entries with pre + b_enc > theta
 * (and > 0), per row in increasing latent order. Count first, then fill at
 * first[r] (rows, M): pre is (rows, M). */
void sae_threshold_count(uint32_t *count, const float *pre, const float *b_enc, float theta,
                         size_t rows, size_t M);
void sae_threshold_fill(int32_t *idx, float *val, const uint32_t *first, const float *pre,
                        const float *b_enc, float theta, size_t rows, size_t M);

/* --- JumpReLU (Rajamanoharan et al. 2024) ----------------------------------------
 * Forward, in place on pre (B,M): pre += b_enc; z = pre * H(pre - theta_j)
 * (and pre > 0). Returns the number of active entries.
 * Backward with the paper's straight-through pseudo-derivatives, K(u) =
 * 1[|u| < 1/2] the rectangle kernel of bandwidth eps:
 *   dz/dpre = H(pre - theta), dz/dtheta = -(theta/eps) K((pre - theta)/eps),
 *   dL0/dtheta = -(1/eps) K((pre - theta)/eps) (dL0/dpre = 0).
 * dz (B,M) is turned into dpre in place; dtheta (M) is overwritten with
 *   sum_b -(1/eps) K_bj (theta_j dz_bj + l0_grad)
 * where l0_grad = dLoss/d(sum of H over the batch). Columns are summed by
 * one thread each, rows in order: reproducible. */
size_t sae_jumprelu_forward(float *z, float *pre, const float *b_enc, const float *theta,
                            size_t B, size_t M);
void sae_jumprelu_backward(float *dz, float *dtheta, const float *pre, const float *theta,
                           float eps, float l0_grad, size_t B, size_t M);

/* In place: z (B,M) = max(z + b (M), 0). Backward: dz *= (z > 0) using the
 * forward output. */
void sae_relu_bias_forward(float *z, const float *b, size_t B, size_t M);
void sae_relu_backward(float *dz, const float *z, size_t B, size_t M);

/* out[j] (+)= alpha * sum_b a[b,j] over a (B,N); overwrite when accumulate = 0. */
void sae_col_sum(float *out, const float *a, float alpha, size_t B, size_t N, int accumulate);
/* Number of values > 0 among a[0..n). */
size_t sae_count_positive(const float *a, size_t n);
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
