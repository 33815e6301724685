/* features/stats.c: the statistics kernels of search (see feat.h): midranks,
 * exact Mann-Whitney AUROC, Benjamini-Hochberg q-values and the document
 * label-permutation test. No I/O; every allocation checked. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "common/rng.h"
#include "features/feat.h"

/* pairs sort by value, ties by index: a stable order, and no global state, so
 * threads may sort at once */
static int by_value(const void *a, const void *b) {
    const feat_rank_pair *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static void order_of(const double *x, size_t n, feat_rank_pair *pr) {
    for (size_t i = 0; i < n; i++) pr[i] = (feat_rank_pair){x[i], i};
    qsort(pr, n, sizeof *pr, by_value);
}

void feat_midranks(const double *x, size_t n, double *rank, feat_rank_pair *pr) {
    order_of(x, n, pr);
    for (size_t i = 0; i < n;) {
        size_t k = i;
        while (k + 1 < n && pr[k + 1].v == pr[i].v) k++;
        double mid = 0.5 * (double)(i + k) + 1.0; /* mean of ranks i+1 .. k+1 */
        for (size_t t = i; t <= k; t++) rank[pr[t].i] = mid;
        i = k + 1;
    }
}

int feat_mann_whitney_auroc(const double *pos, size_t np, const double *neg, size_t nn, double *auroc,
                            sae_error *err) {
    if (!np || !nn) return *auroc = 0.5, SAE_OK;
    size_t n = np + nn;
    double *x = sae_calloc_n(n, sizeof *x), *rank = sae_calloc_n(n, sizeof *rank);
    feat_rank_pair *order = sae_calloc_n(n, sizeof *order);
    if (!x || !rank || !order) {
        sae_free(x), sae_free(rank), sae_free(order);
        return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    }
    memcpy(x, pos, np * sizeof *x);
    memcpy(x + np, neg, nn * sizeof *x);
    feat_midranks(x, n, rank, order);
    double r_pos = 0;
    for (size_t i = 0; i < np; i++) r_pos += rank[i];
    *auroc = (r_pos - 0.5 * (double)np * (double)(np + 1)) / ((double)np * (double)nn);
    sae_free(x), sae_free(rank), sae_free(order);
    return SAE_OK;
}

int feat_bh_qvalues(const double *p, size_t n, double *q, sae_error *err) {
    if (!n) return SAE_OK;
    feat_rank_pair *order = sae_calloc_n(n, sizeof *order);
    if (!order) return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    order_of(p, n, order);
    double run = 1.0; /* running minimum from the largest p down */
    for (size_t k = n; k-- > 0;) {
        double v = order[k].v * (double)n / (double)(k + 1);
        if (v < run) run = v;
        q[order[k].i] = run;
    }
    sae_free(order);
    return SAE_OK;
}

double feat_quantile_sorted(const double *x, size_t n, double q) {
    if (!n) return NAN;
    double pos = q * (double)(n - 1);
    size_t i = (size_t)pos;
    if (i + 1 >= n) return x[n - 1];
    return x[i] + (pos - (double)i) * (x[i + 1] - x[i]);
}

/* The permutations: n_perm draws of which nA of the n units are labelled A,
 * each a partial Fisher-Yates shuffle (every subset equally likely). */
static uint32_t *draw_permutations(size_t n, size_t nA, size_t n_perm, uint64_t seed) {
    if (nA && n_perm > SIZE_MAX / sizeof(uint32_t) / nA) return NULL;
    uint32_t *idx = sae_calloc_n(n, sizeof *idx), *out = sae_calloc_n(n_perm && nA ? n_perm * nA : 1, sizeof *out);
    if (!idx || !out) return sae_free(idx), sae_free(out), NULL;
    for (size_t u = 0; u < n; u++) idx[u] = (uint32_t)u;
    sae_rng r;
    sae_rng_seed(&r, seed, 0x5ea4c4);
    for (size_t p = 0; p < n_perm; p++)
        for (size_t k = 0; k < nA; k++) {
            size_t s = k + (size_t)sae_rng_below(&r, n - k);
            uint32_t t = idx[k];
            idx[k] = idx[s], idx[s] = t;
            out[p * nA + k] = idx[k];
        }
    sae_free(idx);
    return out;
}

/* Score of a class-A sum s (of ranks, or of values with total `tot`). */
static double score_of(double s, double tot, size_t nA, size_t nB, int mean_diff) {
    if (mean_diff) return s / (double)nA - (tot - s) / (double)nB;
    return (s - 0.5 * (double)nA * (double)(nA + 1)) / ((double)nA * (double)nB);
}

int feat_perm_test(const double *values, size_t M, size_t n, const uint8_t *is_a, int mean_diff,
                   size_t n_perm, uint64_t seed, double *obs, double *p, double *null_max, sae_error *err) {
    size_t nA = 0;
    for (size_t u = 0; u < n; u++) nA += is_a[u] != 0;
    size_t nB = n - nA;
    if (!nA || !nB) return sae_error_set(err, SAE_ERR_ARG, "--permutations", "needs units in both classes");
    size_t T = (size_t)omp_get_max_threads();
    uint32_t *perm = draw_permutations(n, nA, n_perm, seed);
    double *scratch = sae_calloc_n(T * n, sizeof(double));
    feat_rank_pair *order = sae_calloc_n(T * n, sizeof *order);
    double *tmax = sae_calloc_n(T * (n_perm ? n_perm : 1), sizeof(double));
    if (!perm || !scratch || !order || !tmax) {
        sae_free(perm), sae_free(scratch), sae_free(order), sae_free(tmax);
        return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    }
    for (size_t i = 0; i < T * n_perm; i++) tmax[i] = -INFINITY;
    /* ranks once per feature; each permutation then only sums nA of them */
#pragma omp parallel
    {
        size_t t = (size_t)omp_get_thread_num();
        double *rank = scratch + t * n, *mx = tmax + t * n_perm;
        feat_rank_pair *ord = order + t * n;
#pragma omp for schedule(dynamic, 16)
        for (size_t j = 0; j < M; j++) {
            const double *v = values + j * n;
            double tot = 0, s = 0;
            if (mean_diff) memcpy(rank, v, n * sizeof *rank);
            else feat_midranks(v, n, rank, ord);
            for (size_t u = 0; u < n; u++) tot += rank[u], s += is_a[u] ? rank[u] : 0;
            obs[j] = score_of(s, tot, nA, nB, mean_diff);
            /* ties: rank sums are exact multiples of 1/2; value sums are not
             * summed in one order, so allow rounding */
            double tol = mean_diff ? 1e-12 * (fabs(tot) + 1) : 1e-9;
            size_t ge = 0;
            for (size_t q = 0; q < n_perm; q++) {
                const uint32_t *a = perm + q * nA;
                double sp = 0;
                for (size_t k = 0; k < nA; k++) sp += rank[a[k]];
                double sc = score_of(sp, tot, nA, nB, mean_diff);
                if (sc >= obs[j] - tol) ge++;
                if (sc > mx[q]) mx[q] = sc;
            }
            p[j] = (1.0 + (double)ge) / (1.0 + (double)n_perm);
        }
    }
    for (size_t q = 0; q < n_perm; q++) {
        double b = -INFINITY;
        for (size_t t = 0; t < T; t++) b = fmax(b, tmax[t * n_perm + q]);
        null_max[q] = b;
    }
    sae_free(perm), sae_free(scratch), sae_free(order), sae_free(tmax);
    return SAE_OK;
}
