/* sae/kernels.c: SAE math kernels (see kernels.h for conventions). */
#include "sae/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "common/err.h"
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

void sae_sub_bias_forward(float *xc, const float *x, const float *b, size_t B, size_t D) {
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < B; r++)
        for (size_t j = 0; j < D; j++) xc[r * D + j] = x[r * D + j] - b[j];
}

/* --- TopK selection ------------------------------------------------------
 * Per row, ReLU(pre + b) is scanned in blocks of 16 and only values above a
 * threshold t go into a small candidate buffer. t starts at 0 (ReLU zeros never
 * enter). When the buffer is full, a quickselect keeps its K best and t
 * becomes the K-th best value, so after the first few hundred latents almost
 * every block is rejected by one vector max and one compare. "Better" is the
 * larger value, then the smaller index; since candidates arrive in increasing
 * index order, "v > t" admits exactly the candidates that can still make the
 * K best. The buffer holds at least 2K + one block, so each compaction drops
 * at least K entries and the work stays linear in the row. */
#define TOPK_BLOCK 16
#define COL_BLOCK 256 /* columns per thread in the column reductions */

static inline int better(sae_topk_pair a, sae_topk_pair b) {
    return (a.v > b.v) | ((a.v == b.v) & (a.j < b.j)); /* no branches: see select_best */
}

/* Reorders p[0..n) so that p[0..K) are its K best (0 < K <= n, pairs distinct
 * because indices are): Hoare's quickselect with a median-of-three pivot.
 * Defined once for each pair type (TopK's per-row pairs, BatchTopK's
 * (row, latent) pairs), which differ only in the type and "better". */
#define DEFINE_SELECT(name, T, better)                                                             \
    static void name(T *p, size_t n, size_t K) {                                                   \
        size_t lo = 0, hi = n, want = K - 1;                                                       \
        T t;                                                                                       \
        while (hi - lo > 1) {                                                                      \
            size_t mid = lo + (hi - lo) / 2;                                                       \
            if (better(p[mid], p[lo])) t = p[mid], p[mid] = p[lo], p[lo] = t;                      \
            if (better(p[hi - 1], p[lo])) t = p[hi - 1], p[hi - 1] = p[lo], p[lo] = t;             \
            if (better(p[hi - 1], p[mid])) t = p[hi - 1], p[hi - 1] = p[mid], p[mid] = t;          \
            t = p[mid], p[mid] = p[hi - 1], p[hi - 1] = t; /* pivot (the median) parked at the end */ \
            T piv = p[hi - 1];                                                                     \
            /* branch-free partition: whether an entry beats the pivot is a coin                   \
             * toss, and mispredicted branches used to cost more than the moves */                 \
            size_t store = lo;                                                                     \
            for (size_t i = lo; i + 1 < hi; i++) {                                                 \
                T x = p[i];                                                                        \
                int b = better(x, piv);                                                            \
                p[i] = p[store];                                                                   \
                p[store] = x;                                                                      \
                store += (size_t)b;                                                                \
            }                                                                                      \
            t = p[store], p[store] = p[hi - 1], p[hi - 1] = t; /* pivot at its rank */             \
            if (store == want) return;                                                             \
            if (want < store) hi = store;                                                          \
            else lo = store + 1;                                                                   \
        }                                                                                          \
    }
DEFINE_SELECT(select_best, sae_topk_pair, better)

size_t sae_topk_scratch_len(size_t K) { return 2 * K + 2 * TOPK_BLOCK; }

/* v[i] = ReLU(p[i] + b[i]) for one full block; returns a mask with bit i set
 * when v[i] > t. NaN counts as 0 both ways (max and the scalar test return 0). */
static inline unsigned block_above(float *v, const float *p, const float *b, float t) {
#if defined(__AVX512F__)
    __m512 x = _mm512_max_ps(_mm512_add_ps(_mm512_loadu_ps(p), _mm512_loadu_ps(b)),
                             _mm512_setzero_ps());
    _mm512_storeu_ps(v, x);
    return _mm512_cmp_ps_mask(x, _mm512_set1_ps(t), _CMP_GT_OQ);
#else
    unsigned mask = 0;
    for (size_t i = 0; i < TOPK_BLOCK; i++) {
        float x = p[i] + b[i];
        v[i] = x > 0.0f ? x : 0.0f;
        mask |= (unsigned)(v[i] > t) << i;
    }
    return mask;
#endif
}

static void topk_row(int32_t *idx, float *val, const float *pre, const float *b_enc,
                     const int32_t *cand, size_t n, size_t K, sae_topk_pair *buf) {
    size_t kk = K < n ? K : n, cap = sae_topk_scratch_len(kk), nb = 0;
    float t = 0.0f;
    for (size_t c0 = 0; c0 < n && kk > 0; c0 += TOPK_BLOCK) {
        size_t cn = n - c0 < TOPK_BLOCK ? n - c0 : TOPK_BLOCK;
        float v[TOPK_BLOCK];
        unsigned mask = 0;
        if (!cand && cn == TOPK_BLOCK) {
            mask = block_above(v, pre + c0, b_enc + c0, t);
        } else {
            for (size_t i = 0; i < cn; i++) {
                int32_t j = cand ? cand[c0 + i] : (int32_t)(c0 + i);
                float x = pre[j] + b_enc[j];
                v[i] = x > 0.0f ? x : 0.0f;
                mask |= (unsigned)(v[i] > t) << i;
            }
        }
        for (; mask; mask &= mask - 1) {
            unsigned i = (unsigned)__builtin_ctz(mask);
            buf[nb++] = (sae_topk_pair){v[i], cand ? cand[c0 + i] : (int32_t)(c0 + i)};
        }
        if (nb + TOPK_BLOCK > cap) {
            select_best(buf, nb, kk);
            nb = kk;
            t = buf[kk - 1].v;
        }
    }
    if (nb > kk) select_best(buf, nb, kk), nb = kk;
    for (size_t s = 0; s < nb; s++) {
        idx[s] = buf[s].j;
        val[s] = buf[s].v;
    }
    /* fewer than kk positive values: the best of the rest are zeros, lowest
     * index first (t never rose, so every positive value is already in) */
    for (size_t c = 0, s = nb; s < kk; c++) {
        int32_t j = cand ? cand[c] : (int32_t)c;
        if (pre[j] + b_enc[j] > 0.0f) continue;
        idx[s] = j;
        val[s++] = 0.0f;
    }
    for (size_t s = kk; s < K; s++) {
        idx[s] = -1;
        val[s] = 0.0f;
    }
}

void sae_topk_forward(int32_t *idx, float *val, const float *pre, const float *b_enc,
                      const int32_t *cand, size_t n_cand, size_t B, size_t M, size_t S, size_t K,
                      sae_topk_pair *scratch) {
    size_t n = cand ? n_cand : M, len = sae_topk_scratch_len(K);
    /* rows split into SAE_TOPK_SLOTS fixed chunks, each with its own scratch,
     * whatever the number of threads */
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < SAE_TOPK_SLOTS; c++) {
        size_t r0 = B * c / SAE_TOPK_SLOTS, r1 = B * (c + 1) / SAE_TOPK_SLOTS;
        for (size_t r = r0; r < r1; r++)
            topk_row(idx + r * S, val + r * S, pre + r * M, b_enc, cand, n, K, scratch + c * len);
    }
}

/* --- sparse decode: out = val @ W_dec over the selected rows -------------- */
void sae_sparse_decode_forward(float *out, const int32_t *idx, const float *val, const float *W_dec,
                               const float *bias, size_t B, size_t D, const uint32_t *first,
                               const uint32_t *count) {
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < B; r++) {
        float *o = out + r * D;
        if (bias) memcpy(o, bias, D * sizeof(float));
        else memset(o, 0, D * sizeof(float));
        for (size_t e = first[r]; e < (size_t)first[r] + count[r]; e++) {
            int32_t j = idx[e];
            float v = val[e];
            if (j < 0 || v == 0.0f) continue;
            const float *w = W_dec + (size_t)j * D;
            for (size_t c = 0; c < D; c++) o[c] += v * w[c];
        }
    }
}

void sae_sparse_decode_backward(float *dval, const float *const *dout, const uint8_t *group,
                                const int32_t *idx, const float *val, const float *W_dec,
                                size_t B, size_t D, const uint32_t *first, const uint32_t *count) {
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < B; r++) {
        for (size_t e = first[r]; e < (size_t)first[r] + count[r]; e++) {
            int32_t j = idx[e];
            float acc = 0.0f;
            if (j >= 0 && val[e] > 0.0f) {
                const float *g = dout[group ? group[j] : 0] + r * D;
                const float *w = W_dec + (size_t)j * D;
                /* simd reduction: vector partial sums in a fixed order, so still
                 * reproducible, and ~8x faster than the strict serial sum */
#pragma omp simd reduction(+ : acc)
                for (size_t c = 0; c < D; c++) acc += g[c] * w[c];
            }
            dval[e] = acc;
        }
    }
}

void sae_sparse_decode_prefixes(float *const *out, const int32_t *idx, const float *val,
                                const float *W_dec, const float *bias, size_t B, size_t D,
                                const uint32_t *first, const uint32_t *count,
                                const size_t *widths, size_t G) {
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < B; r++) {
        /* accumulate into the full reconstruction; copy it out at each width */
        float *o = out[G - 1] + r * D;
        size_t g = 0;
        memcpy(o, bias, D * sizeof(float));
        for (size_t e = first[r]; e < (size_t)first[r] + count[r]; e++) {
            int32_t j = idx[e];
            if (j < 0 || val[e] == 0.0f) continue;
            for (; g + 1 < G && (size_t)j >= widths[g]; g++) memcpy(out[g] + r * D, o, D * sizeof(float));
            const float *w = W_dec + (size_t)j * D;
            for (size_t c = 0; c < D; c++) o[c] += val[e] * w[c];
        }
        for (; g + 1 < G; g++) memcpy(out[g] + r * D, o, D * sizeof(float));
    }
}

void sae_latent_index_build(uint32_t *start, uint32_t *entry, const int32_t *idx, const float *val,
                            size_t n, size_t M) {
    memset(start, 0, (M + 1) * sizeof *start);
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
                                 const uint32_t *start, const uint32_t *entry,
                                 const uint32_t *ent_row, const float *val, const float *dval,
                                 const float *xc, const float *const *dout_main,
                                 const uint8_t *group, const float *dout_aux, size_t M, size_t D) {
#pragma omp parallel for schedule(dynamic, 64)
    for (size_t j = 0; j < M; j++) {
        float *gd = dW_dec + j * D, *ge = dW_enc + j * D;
        const float *main_j = dout_main[group ? group[j] : 0];
        float sum = 0.0f;
        /* zeroed here, while the row is about to be in cache anyway */
        memset(gd, 0, D * sizeof *gd);
        memset(ge, 0, D * sizeof *ge);
        for (uint32_t t = start[j]; t < start[j + 1]; t++) {
            uint32_t e = entry[t], rr = ent_row[e];
            size_t r = rr & SAE_ROW_MASK;
            const float *go = ((rr & SAE_ROW_AUX) ? dout_aux : main_j) + r * D;
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

/* --- BatchTopK selection ----------------------------------------------------
 * The per-row scheme of topk_row stretched over many rows: values above t go
 * into a buffer, and a full buffer is cut to its N best by select_best on
 * (value, row, latent), raising t to the N-th best value. Threads scan
 * disjoint rows into their own buffers starting from the shared t, so each
 * buffer is a superset of that range's part of the batch's N best. */
static inline int batch_better(sae_batch_pair a, sae_batch_pair b) {
    return (a.v > b.v) | ((a.v == b.v) & ((a.row < b.row) | ((a.row == b.row) & (a.j < b.j))));
}

DEFINE_SELECT(batch_select, sae_batch_pair, batch_better)

size_t sae_batch_local_len(size_t N) { return 2 * N + 2 * TOPK_BLOCK; }

/* v admitted when it can still be among the N best: v > 0 before the first cut,
 * v >= t after it (a tie may win on its smaller row or latent). */
static float admit_level(float t) { return t > 0.0f ? nextafterf(t, 0.0f) : 0.0f; }

static void batch_cut(sae_batch_pair *buf, size_t *nb, float *t, size_t N) {
    if (*nb <= N) return;
    batch_select(buf, *nb, N);
    *nb = N;
    float worst = buf[0].v;
    for (size_t i = 1; i < N; i++) worst = buf[i].v < worst ? buf[i].v : worst;
    if (worst > *t) *t = worst;
}

static void batch_scan_rows(sae_batch_pair *buf, size_t *nb, float *t, size_t N, const float *pre,
                            const float *b_enc, size_t r0, size_t ra, size_t rb, size_t M) {
    size_t cap = sae_batch_local_len(N);
    for (size_t r = ra; r < rb; r++) {
        const float *p = pre + r * M;
        for (size_t c0 = 0; c0 < M; c0 += TOPK_BLOCK) {
            size_t cn = M - c0 < TOPK_BLOCK ? M - c0 : TOPK_BLOCK;
            float v[TOPK_BLOCK], lvl = admit_level(*t);
            unsigned mask = 0;
            if (cn == TOPK_BLOCK) {
                mask = block_above(v, p + c0, b_enc + c0, lvl);
            } else {
                for (size_t i = 0; i < cn; i++) {
                    float x = p[c0 + i] + b_enc[c0 + i];
                    v[i] = x > 0.0f ? x : 0.0f;
                    mask |= (unsigned)(v[i] > lvl) << i;
                }
            }
            for (; mask; mask &= mask - 1) {
                unsigned i = (unsigned)__builtin_ctz(mask);
                buf[(*nb)++] = (sae_batch_pair){v[i], (uint32_t)(r0 + r), (int32_t)(c0 + i)};
            }
            if (*nb + TOPK_BLOCK > cap) batch_cut(buf, nb, t, N);
        }
    }
}

void sae_batchtopk_chunk(sae_batch_pair *sel, size_t *n_sel, float *t, size_t N,
                         sae_batch_pair *local, size_t nthr, const float *pre, const float *b_enc,
                         size_t r0, size_t rows, size_t M) {
    size_t len = sae_batch_local_len(N), counts[256];
    SAE_ASSERT(nthr >= 1 && nthr <= 256);
    float t0 = *t;
#pragma omp parallel num_threads((int)nthr)
    {
        size_t id = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        sae_batch_pair *buf = local + id * len;
        size_t nb = 0;
        float tt = t0;
        batch_scan_rows(buf, &nb, &tt, N, pre, b_enc, r0, rows * id / nt, rows * (id + 1) / nt, M);
        batch_cut(buf, &nb, &tt, N);
        counts[id] = nb;
#pragma omp barrier
#pragma omp single
        for (size_t i = nt; i < nthr; i++) counts[i] = 0;
    }
    for (size_t i = 0; i < nthr; i++) {
        memcpy(sel + *n_sel, local + i * len, counts[i] * sizeof *sel);
        *n_sel += counts[i];
    }
    batch_cut(sel, n_sel, t, N);
}

static int by_latent(const void *a, const void *b) {
    const sae_batch_pair *x = a, *y = b;
    return (x->j > y->j) - (x->j < y->j);
}

float sae_batchtopk_finish(int32_t *idx, float *val, uint32_t *first, uint32_t *count,
                           uint32_t base, sae_batch_pair *sel, size_t n_sel, size_t N, size_t B) {
    /* sel holds (nthr + 1) * N >= 2N pairs: the second N are the sort's space */
    size_t n = n_sel < N ? n_sel : N;
    sae_batch_pair *sorted = sel + N;
    float worst = 0.0f;
    if (n_sel > N) batch_select(sel, n_sel, N);
    memset(count, 0, B * sizeof *count);
    for (size_t i = 0; i < n; i++) count[sel[i].row]++;
    uint32_t at = 0;
    for (size_t r = 0; r < B; r++) first[r] = at, at += count[r];
    /* counting sort by row (count doubles as the cursor), then each row by latent */
    memset(count, 0, B * sizeof *count);
    for (size_t i = 0; i < n; i++) {
        sorted[first[sel[i].row] + count[sel[i].row]++] = sel[i];
        worst = i == 0 || sel[i].v < worst ? sel[i].v : worst;
    }
#pragma omp parallel for schedule(dynamic, 64)
    for (size_t r = 0; r < B; r++) {
        sae_batch_pair *p = sorted + first[r];
        qsort(p, count[r], sizeof *p, by_latent);
        for (uint32_t i = 0; i < count[r]; i++) idx[base + first[r] + i] = p[i].j, val[base + first[r] + i] = p[i].v;
    }
    for (size_t r = 0; r < B; r++) first[r] += base;
    return worst;
}

/* --- threshold rule ----------------------------------------------------------- */
void sae_threshold_count(uint32_t *count, const float *pre, const float *b_enc, float theta,
                         size_t rows, size_t M) {
    float lvl = theta > 0.0f ? theta : 0.0f;
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        uint32_t n = 0;
        for (size_t j = 0; j < M; j++) n += pre[r * M + j] + b_enc[j] > lvl;
        count[r] = n;
    }
}

void sae_threshold_fill(int32_t *idx, float *val, const uint32_t *first, const float *pre,
                        const float *b_enc, float theta, size_t rows, size_t M) {
    float lvl = theta > 0.0f ? theta : 0.0f;
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        uint32_t e = first[r];
        for (size_t j = 0; j < M; j++) {
            float v = pre[r * M + j] + b_enc[j];
            if (v > lvl) idx[e] = (int32_t)j, val[e++] = v;
        }
    }
}

/* --- JumpReLU --------------------------------------------------------------------- */
size_t sae_jumprelu_forward(float *z, float *pre, const float *b_enc, const float *theta,
                            size_t B, size_t M) {
    size_t active = 0;
#pragma omp parallel for schedule(static) reduction(+ : active)
    for (size_t r = 0; r < B; r++) {
        float *p = pre + r * M, *zr = z + r * M;
        for (size_t j = 0; j < M; j++) {
            float v = p[j] + b_enc[j];
            int on = v > theta[j] && v > 0.0f;
            p[j] = v;
            zr[j] = on ? v : 0.0f;
            active += (size_t)on; /* integer sum: order-free */
        }
    }
    return active;
}

void sae_jumprelu_backward(float *dz, float *dtheta, const float *pre, const float *theta,
                           float eps, float l0_grad, size_t B, size_t M) {
    size_t nb = (M + COL_BLOCK - 1) / COL_BLOCK;
    float inv = 1.0f / eps, half = 0.5f * eps;
#pragma omp parallel for schedule(static)
    for (size_t blk = 0; blk < nb; blk++) {
        size_t j0 = blk * COL_BLOCK, j1 = j0 + COL_BLOCK < M ? j0 + COL_BLOCK : M;
        float acc[COL_BLOCK] = {0};
        for (size_t r = 0; r < B; r++)
            for (size_t j = j0; j < j1; j++) {
                float p = pre[r * M + j], th = theta[j], g = dz[r * M + j];
                if (fabsf(p - th) < half) acc[j - j0] -= inv * (th * g + l0_grad);
                dz[r * M + j] = p > th && p > 0.0f ? g : 0.0f;
            }
        for (size_t j = j0; j < j1; j++) dtheta[j] = acc[j - j0];
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

size_t sae_count_positive(const float *a, size_t n) {
    size_t active = 0;
#pragma omp parallel for schedule(static) reduction(+ : active)
    for (size_t i = 0; i < n; i++) active += a[i] > 0.0f; /* integer sum: order-free */
    return active;
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

/* out = a + sign * b (sign is +1 or -1, so exact), returning the sum of
 * squares: per-row sums in parallel, then a serial total, an order fixed
 * whatever the thread count. */
static double combine_sumsq(float *out, const float *a, const float *b, float sign, size_t B,
                            size_t D, double *row_sums) {
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < B; r++) {
        double acc = 0.0;
        for (size_t c = 0; c < D; c++) {
            float e = a[r * D + c] + sign * b[r * D + c];
            out[r * D + c] = e;
            acc += (double)e * e;
        }
        row_sums[r] = acc;
    }
    double total = 0.0;
    for (size_t r = 0; r < B; r++) total += row_sums[r];
    return total;
}

double sae_residual(float *err, const float *xhat, const float *x, size_t B, size_t D,
                    double *row_sums) {
    return combine_sumsq(err, xhat, x, -1.0f, B, D, row_sums);
}

double sae_add_sumsq(float *out, const float *a, const float *b, size_t B, size_t D,
                     double *row_sums) {
    return combine_sumsq(out, a, b, 1.0f, B, D, row_sums);
}

void sae_scale(float *out, const float *a, float s, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = s * a[i];
}

#define VAR_BLOCK 64
double sae_total_variance(const float *x, size_t B, size_t D, double *scratch) {
    /* sum ||x_b||^2 - B ||mean||^2 in double. Column blocks go to threads,
     * each summing its columns over the rows in order; block totals are then
     * added in block order: fixed order for any thread count. */
    size_t nb = (D + VAR_BLOCK - 1) / VAR_BLOCK;
    double *colsum = scratch, *block_ss = scratch + D;
#pragma omp parallel for schedule(static)
    for (size_t blk = 0; blk < nb; blk++) {
        size_t c0 = blk * VAR_BLOCK, c1 = c0 + VAR_BLOCK < D ? c0 + VAR_BLOCK : D;
        double ss = 0.0;
        for (size_t c = c0; c < c1; c++) colsum[c] = 0.0;
        for (size_t r = 0; r < B; r++)
            for (size_t c = c0; c < c1; c++) {
                double v = x[r * D + c];
                colsum[c] += v;
                ss += v * v;
            }
        block_ss[blk] = ss;
    }
    double ss = 0.0, mean_sq = 0.0;
    for (size_t blk = 0; blk < nb; blk++) ss += block_ss[blk];
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
