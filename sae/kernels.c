/* sae/kernels.c: SAE math kernels (see kernels.h for conventions). */
#include "sae/kernels.h"

#include <math.h>
#include <string.h>

void sae_sub_bias_forward(float *xc, const float *x, const float *b, size_t B, size_t D) {
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < B; r++)
        for (size_t j = 0; j < D; j++) xc[r * D + j] = x[r * D + j] - b[j];
}

/* --- TopK selection ------------------------------------------------------
 * A min-heap of the K best (value, index) pairs seen so far; a candidate
 * replaces the root when it is strictly better. "Better" is the larger value,
 * then the smaller index, so the result is independent of scan details. */
static inline int better(float va, int32_t ia, float vb, int32_t ib) {
    return va > vb || (va == vb && ia < ib);
}

static inline void heap_sift_down(float *hv, int32_t *hi, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && better(hv[w], hi[w], hv[l], hi[l])) w = l;
        if (r < n && better(hv[w], hi[w], hv[r], hi[r])) w = r;
        if (w == i) return;
        float tv = hv[i];
        int32_t ti = hi[i];
        hv[i] = hv[w];
        hi[i] = hi[w];
        hv[w] = tv;
        hi[w] = ti;
        i = w;
    }
}

#define TOPK_BLOCK 16
static void topk_row(int32_t *idx, float *val, const float *pre, const float *b_enc,
                     const int32_t *cand, size_t n, size_t K) {
    size_t kk = K < n ? K : n, filled = 0;
    for (size_t c0 = 0; c0 < n; c0 += TOPK_BLOCK) {
        size_t cn = n - c0 < TOPK_BLOCK ? n - c0 : TOPK_BLOCK;
        float v[TOPK_BLOCK], vmax = 0.0f;
        /* a vectorisable block of ReLU(pre + b); most blocks of a full heap hold
         * nothing above its minimum and are skipped whole */
        if (!cand && cn == TOPK_BLOCK) {
            const float *p = pre + c0, *b = b_enc + c0;
            for (size_t i = 0; i < TOPK_BLOCK; i++) {
                float x = p[i] + b[i];
                v[i] = x > 0.0f ? x : 0.0f;
            }
#pragma omp simd reduction(max : vmax)
            for (size_t i = 0; i < TOPK_BLOCK; i++) vmax = v[i] > vmax ? v[i] : vmax;
        } else {
            for (size_t i = 0; i < cn; i++) {
                int32_t j = cand ? cand[c0 + i] : (int32_t)(c0 + i);
                float x = pre[j] + b_enc[j];
                v[i] = x > 0.0f ? x : 0.0f;
                vmax = v[i] > vmax ? v[i] : vmax;
            }
        }
        if (filled == kk && vmax < val[0]) continue;
        for (size_t i = 0; i < cn; i++) {
            int32_t j = cand ? cand[c0 + i] : (int32_t)(c0 + i);
            if (filled < kk) {
                val[filled] = v[i];
                idx[filled] = j;
                if (++filled == kk)
                    for (size_t h = kk / 2; h-- > 0;) heap_sift_down(val, idx, kk, h);
            } else if (better(v[i], j, val[0], idx[0])) {
                val[0] = v[i];
                idx[0] = j;
                heap_sift_down(val, idx, kk, 0);
            }
        }
    }
    for (size_t s = kk; s < K; s++) {
        idx[s] = -1;
        val[s] = 0.0f;
    }
}

void sae_topk_forward(int32_t *idx, float *val, const float *pre, const float *b_enc,
                      const int32_t *cand, size_t n_cand, size_t B, size_t M, size_t S, size_t K) {
    size_t n = cand ? n_cand : M;
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < B; r++) topk_row(idx + r * S, val + r * S, pre + r * M, b_enc, cand, n, K);
}

/* --- sparse decode: out = val @ W_dec over the selected rows -------------- */
void sae_sparse_decode_forward(float *out, const int32_t *idx, const float *val, const float *W_dec,
                               const float *bias, size_t B, size_t D, size_t S, size_t K) {
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < B; r++) {
        float *o = out + r * D;
        if (bias) memcpy(o, bias, D * sizeof(float));
        else memset(o, 0, D * sizeof(float));
        for (size_t s = 0; s < K; s++) {
            int32_t j = idx[r * S + s];
            float v = val[r * S + s];
            if (j < 0 || v == 0.0f) continue;
            const float *w = W_dec + (size_t)j * D;
            for (size_t c = 0; c < D; c++) o[c] += v * w[c];
        }
    }
}

void sae_sparse_decode_backward(float *dval, const float *dout, const int32_t *idx,
                                const float *val, const float *W_dec, size_t B, size_t D,
                                size_t S, size_t K) {
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < B; r++) {
        const float *g = dout + r * D;
        for (size_t s = 0; s < K; s++) {
            int32_t j = idx[r * S + s];
            float acc = 0.0f;
            if (j >= 0 && val[r * S + s] > 0.0f) {
                const float *w = W_dec + (size_t)j * D;
                /* simd reduction: vector partial sums in a fixed order, so still
                 * reproducible, and ~8x faster than the strict serial sum */
#pragma omp simd reduction(+ : acc)
                for (size_t c = 0; c < D; c++) acc += g[c] * w[c];
            }
            dval[r * S + s] = acc;
        }
    }
}

void sae_latent_index_build(uint32_t *start, uint32_t *entry, const int32_t *idx, const float *val,
                            size_t B, size_t M, size_t S) {
    memset(start, 0, (M + 1) * sizeof *start);
    size_t n = B * S;
    for (size_t e = 0; e < n; e++)
        if (idx[e] >= 0 && val[e] > 0.0f) start[idx[e] + 1]++;
    for (size_t j = 0; j < M; j++) start[j + 1] += start[j];
    /* fill using start[j] as a cursor, then shift back */
    for (size_t e = 0; e < n; e++)
        if (idx[e] >= 0 && val[e] > 0.0f) entry[start[idx[e]]++] = (uint32_t)e;
    for (size_t j = M; j > 0; j--) start[j] = start[j - 1];
    start[0] = 0;
}

void sae_latent_scatter_backward(float *dW_dec, float *dW_enc, float *dpre_sum,
                                 const uint32_t *start, const uint32_t *entry, const float *val,
                                 const float *dval, const float *xc, const float *dout_main,
                                 const float *dout_aux, size_t M, size_t D, size_t S,
                                 size_t K_main) {
#pragma omp parallel for schedule(dynamic, 64)
    for (size_t j = 0; j < M; j++) {
        float *gd = dW_dec + j * D, *ge = dW_enc + j * D;
        float sum = 0.0f;
        for (uint32_t t = start[j]; t < start[j + 1]; t++) {
            uint32_t e = entry[t];
            size_t r = e / S, s = e % S;
            const float *go = (s < K_main ? dout_main : dout_aux) + r * D;
            const float *xr = xc + r * D;
            float v = val[e], g = dval[e];
            for (size_t c = 0; c < D; c++) {
                gd[c] += v * go[c];
                ge[c] += g * xr[c];
            }
            sum += g;
        }
        dpre_sum[j] = sum;
    }
}

/* --- dense ReLU ----------------------------------------------------------- */
void sae_relu_bias_forward(float *z, const float *b, size_t B, size_t M) {
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < B; r++) {
        float *zr = z + r * M;
        for (size_t j = 0; j < M; j++) {
            float v = zr[j] + b[j];
            zr[j] = v > 0.0f ? v : 0.0f;
        }
    }
}

void sae_relu_backward(float *dz, const float *z, size_t B, size_t M) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < B * M; i++)
        if (!(z[i] > 0.0f)) dz[i] = 0.0f;
}

/* Column blocks go to threads; each thread sums its columns over all rows in
 * row order, so the result does not depend on the schedule. */
#define COL_BLOCK 256
void sae_col_sum(float *out, const float *a, float alpha, size_t B, size_t N, int accumulate) {
    size_t nb = (N + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (size_t blk = 0; blk < nb; blk++) {
        size_t j0 = blk * COL_BLOCK, j1 = j0 + COL_BLOCK < N ? j0 + COL_BLOCK : N;
        float acc[COL_BLOCK] = {0};
        for (size_t r = 0; r < B; r++)
            for (size_t j = j0; j < j1; j++) acc[j - j0] += a[r * N + j];
        for (size_t j = j0; j < j1; j++)
            out[j] = accumulate ? out[j] + alpha * acc[j - j0] : alpha * acc[j - j0];
    }
}

void sae_col_count_positive(uint32_t *counts, const float *a, size_t B, size_t N) {
    size_t nb = (N + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (size_t blk = 0; blk < nb; blk++) {
        size_t j0 = blk * COL_BLOCK, j1 = j0 + COL_BLOCK < N ? j0 + COL_BLOCK : N;
        for (size_t r = 0; r < B; r++)
            for (size_t j = j0; j < j1; j++) counts[j] += a[r * N + j] > 0.0f;
    }
}

double sae_residual(float *err, const float *xhat, const float *x, size_t B, size_t D) {
    double total = 0.0;
    /* per-row partial sums then a serial total: order fixed by construction */
    for (size_t r = 0; r < B; r++) {
        double acc = 0.0;
        for (size_t c = 0; c < D; c++) {
            float e = xhat[r * D + c] - x[r * D + c];
            err[r * D + c] = e;
            acc += (double)e * e;
        }
        total += acc;
    }
    return total;
}

double sae_total_variance(const float *x, size_t B, size_t D, double *colsum) {
    /* sum ||x_b||^2 - B ||mean||^2, accumulated in double row by row */
    double ss = 0.0;
    memset(colsum, 0, D * sizeof *colsum);
    for (size_t r = 0; r < B; r++)
        for (size_t c = 0; c < D; c++) {
            double v = x[r * D + c];
            colsum[c] += v;
            ss += v * v;
        }
    double mean_sq = 0.0;
    for (size_t c = 0; c < D; c++) mean_sq += colsum[c] * colsum[c];
    return ss - mean_sq / (double)B;
}

void sae_row_norms(float *norms, const float *W, size_t M, size_t D) {
#pragma omp parallel for schedule(static)
    for (size_t j = 0; j < M; j++) {
        double acc = 0.0;
        for (size_t c = 0; c < D; c++) acc += (double)W[j * D + c] * W[j * D + c];
        norms[j] = (float)sqrt(acc);
    }
}
