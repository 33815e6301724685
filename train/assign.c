/* train/assign.c: exact linear sum assignment on a dense rectangular matrix,
 * and SynthSAEBench's MCC (mean correlation coefficient) built on it.
 *
 * The solver is the shortest-augmenting-path method of Jonker & Volgenant in
 * the form of Crouse, "On implementing 2D rectangular assignment algorithms"
 * (IEEE TAES 2016), which scipy.optimize.linear_sum_assignment also uses: one
 * row at a time, a Dijkstra search over reduced costs c[i,j] - u[i] - v[j]
 * finds the cheapest path to a free column, the duals u, v are updated so
 * reduced costs stay >= 0 and the path is flipped. O(n^2 m) worst case, dense;
 * no initial greedy pass or epsilon scaling. Costs are read as f32 (half the
 * memory of f64 for the 4096 x 8192 cosine matrix: 128 MiB), all arithmetic is
 * f64.
 *
 * MCC follows sae_lens/synthetic/evals.py (mean_correlation_coefficient, used by
 * eval_sae_on_synthetic_data, SynthSAEBench's evaluation): rows normalised
 * (zero rows stay zero), |cos| between every decoder row and every true
 * feature, scipy's linear_sum_assignment on 1 - |cos|, and the mean |cos| over
 * the matched pairs. scipy matches min(n_truth, M) pairs, so with M >= n_truth
 * (the usual case) it is the mean over true features.
 */
#include <math.h>
#include <string.h>

#include "common/gemm.h"
#include "common/mem.h"
#include "train/train.h"

/* Solver state, one allocation. Columns j: v[j] dual, shortest[j] path length
 * in the current search, path[j] the row it was reached from, row4col[j] its
 * row (-1 free). cols is a permutation of 0..m-1 whose tail past the
 * unvisited count holds the columns the current search has finished. */
typedef struct {
    double *u, *v, *shortest; /* (n), (m), (m) */
    int32_t *path, *row4col, *cols; /* (m) each */
} lsa_work;

static void *lsa_work_alloc(lsa_work *w, size_t n, size_t m) {
    double *blob = sae_alloc((n + 2 * m) * sizeof(double) + 3 * m * sizeof(int32_t));
    if (!blob) return NULL;
    w->u = blob;
    w->v = blob + n;
    w->shortest = blob + n + m;
    w->path = (int32_t *)(blob + n + 2 * m);
    w->row4col = w->path + m;
    w->cols = w->row4col + m;
    return blob;
}

/* One Dijkstra search from free row `cur` over the reduced costs of the
 * signed matrix s * a. Leaves the visited columns in w->cols[*n_left..m) and
 * returns the free column reached (the sink) with its path length. */
static int32_t lsa_search(lsa_work *w, const float *a, size_t m, double s, int32_t cur,
                          size_t *n_left, double *min_len) {
    double min_val = 0.0;
    size_t left = m;
    int32_t i = cur, sink = -1;
    for (size_t j = 0; j < m; j++) w->shortest[j] = INFINITY;
    while (sink < 0) {
        const float *row = a + (size_t)i * m;
        double ui = w->u[i], lowest = INFINITY;
        size_t best = 0;
        for (size_t t = 0; t < left; t++) {
            int32_t j = w->cols[t];
            double r = min_val + s * row[j] - ui - w->v[j];
            if (r < w->shortest[j]) {
                w->path[j] = i;
                w->shortest[j] = r;
            }
            /* on a tie prefer a free column: the search ends sooner */
            if (w->shortest[j] < lowest || (w->shortest[j] == lowest && w->row4col[j] < 0)) {
                lowest = w->shortest[j];
                best = t;
            }
        }
        min_val = lowest; /* finite: every entry is, and a free column always remains */
        int32_t j = w->cols[best];
        w->cols[best] = w->cols[--left];
        w->cols[left] = j;
        if (w->row4col[j] < 0) sink = j;
        else i = w->row4col[j];
    }
    *n_left = left;
    *min_len = min_val;
    return sink;
}

/* Dual update after a search (keeps every reduced cost >= 0 and those on the
 * matching at 0), then the assignment flipped along the path to the sink. */
static void lsa_augment(lsa_work *w, int32_t *col4row, size_t m, int32_t cur, int32_t sink,
                        size_t left, double min_val) {
    w->u[cur] += min_val;
    for (size_t t = left; t < m; t++) {
        int32_t j = w->cols[t];
        double d = min_val - w->shortest[j];
        if (j != sink) w->u[w->row4col[j]] += d; /* the row this column led to */
        w->v[j] -= d;
    }
    for (int32_t j = sink;;) {
        int32_t i = w->path[j], next = col4row[i];
        w->row4col[j] = i;
        col4row[i] = j;
        if (i == cur) break;
        j = next;
    }
}

int train_lsa(int32_t *col4row, const float *a, size_t n, size_t m, int maximize,
              sae_error *err) {
    if (n > m)
        return sae_error_set(err, SAE_ERR_ARG, NULL,
                             "assignment needs rows <= columns (got %zu x %zu)", n, m);
    if (m > INT32_MAX)
        return sae_error_set(err, SAE_ERR_ARG, NULL, "assignment: %zu columns is too many", m);
    for (size_t e = 0; e < n * m; e++)
        if (!isfinite(a[e]))
            return sae_error_set(err, SAE_ERR_NONFINITE, NULL,
                                 "assignment: entry (%zu, %zu) is not finite", e / m, e % m);
    lsa_work w;
    void *blob = lsa_work_alloc(&w, n, m);
    if (!blob) return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    memset(w.u, 0, n * sizeof(double));
    memset(w.v, 0, m * sizeof(double));
    for (size_t j = 0; j < m; j++) {
        w.row4col[j] = -1;
        w.cols[j] = (int32_t)j;
    }
    for (size_t i = 0; i < n; i++) col4row[i] = -1;
    double s = maximize ? -1.0 : 1.0; /* maximising a is minimising -a */
    for (size_t cur = 0; cur < n; cur++) {
        size_t left;
        double min_val;
        int32_t sink = lsa_search(&w, a, m, s, (int32_t)cur, &left, &min_val);
        lsa_augment(&w, col4row, m, (int32_t)cur, sink, left, min_val);
    }
    sae_free(blob);
    return SAE_OK;
}

/* 1 / ||row|| for each of n rows (0 for a zero row, so its cosines are 0). */
static void inv_norms(float *out, const float *X, size_t n, size_t D) {
    for (size_t i = 0; i < n; i++) {
        double nn = 0.0;
        for (size_t c = 0; c < D; c++) nn += (double)X[i * D + c] * X[i * D + c];
        out[i] = nn > 0 ? (float)(1.0 / sqrt(nn)) : 0.0f;
    }
}

/* C (nA, nB) = |cos| between the rows of A (nA, D) and B (nB, D), one GEMM per
 * block of rows of A, scaled and made absolute while the block is in cache. */
static void abs_cos_matrix(float *C, const float *A, const float *ia, size_t nA, const float *B,
                           const float *ib, size_t nB, size_t D) {
    const size_t T = 256;
    for (size_t r0 = 0; r0 < nA; r0 += T) {
        size_t nr = nA - r0 < T ? nA - r0 : T;
        float *blk = C + r0 * nB;
        sae_gemm(0, 1, nr, nB, D, 1.0f, A + r0 * D, D, B, D, 0.0f, blk, nB);
        for (size_t i = 0; i < nr; i++)
            for (size_t j = 0; j < nB; j++)
                blk[i * nB + j] = fabsf(blk[i * nB + j] * ia[r0 + i] * ib[j]);
    }
}

int train_mcc(const float *truth, size_t n_truth, const float *W_dec, size_t M, size_t D,
              double *mcc, sae_error *err) {
    *mcc = 0.0;
    if (n_truth == 0 || M == 0) return SAE_OK;
    /* the assignment wants rows <= columns: rows are the smaller side */
    int t_rows = n_truth <= M;
    const float *A = t_rows ? truth : W_dec, *B = t_rows ? W_dec : truth;
    size_t nA = t_rows ? n_truth : M, nB = t_rows ? M : n_truth;
    float *C = sae_alloc(nA * nB * sizeof(float));
    float *inv = sae_alloc((nA + nB) * sizeof(float));
    int32_t *col4row = sae_alloc(nA * sizeof(int32_t));
    int rc = SAE_OK;
    if (!C || !inv || !col4row) rc = sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    if (rc == SAE_OK) {
        inv_norms(inv, A, nA, D);
        inv_norms(inv + nA, B, nB, D);
        abs_cos_matrix(C, A, inv, nA, B, inv + nA, nB, D);
        rc = train_lsa(col4row, C, nA, nB, 1, err);
    }
    if (rc == SAE_OK) {
        double sum = 0.0;
        for (size_t i = 0; i < nA; i++) sum += C[i * nB + (size_t)col4row[i]];
        *mcc = sum / (double)nA;
    }
    sae_free(C);
    sae_free(inv);
    sae_free(col4row);
    return rc;
}
