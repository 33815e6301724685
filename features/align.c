/* features/align.c: matching two dictionaries by decoder cosine (feat.h). */
#include <math.h>
#include <string.h>

#include "common/gemm.h"
#include "common/mem.h"
#include "features/feat.h"

/* unit-norm rows of W (n, d) into out; a zero row stays zero */
static void normalize_rows(float *out, const float *W, size_t n, size_t d) {
    for (size_t i = 0; i < n; i++) {
        double nn = 0;
        for (size_t c = 0; c < d; c++) nn += (double)W[i * d + c] * W[i * d + c];
        float s = nn > 0 ? (float)(1 / sqrt(nn)) : 0;
        for (size_t c = 0; c < d; c++) out[i * d + c] = W[i * d + c] * s;
    }
}

void feat_alignment_free(feat_alignment *al) {
    sae_free(al->row), sae_free(al->col), sae_free(al->cos);
    memset(al, 0, sizeof *al);
}

/* Rows of A by their best cosine, descending (stable insertion sort: ties keep
 * index order, so the figure is the same on every run). */
static void order_by_best(size_t *order, const float *best, size_t na) {
    for (size_t i = 0; i < na; i++) order[i] = i;
    for (size_t i = 1; i < na; i++)
        for (size_t k = i; k > 0 && best[order[k]] > best[order[k - 1]]; k--) {
            size_t t = order[k];
            order[k] = order[k - 1], order[k - 1] = t;
        }
}

int feat_align(const float *A, size_t na, const float *B, size_t nb, size_t d, size_t shown_max,
               feat_alignment *out, sae_error *err) {
    memset(out, 0, sizeof *out);
    SAE_ASSERT(na > 0 && nb > 0 && d > 0);
    int over = 0;
    size_t cos_n = sae_mul_size(na, nb, &over);
    sae_mul_size(na > nb ? na : nb, d, &over);
    if (over) return sae_error_set(err, SAE_ERR_NOMEM, NULL, "a %zu x %zu similarity matrix does not fit", na, nb);
    size_t shown = shown_max < na ? shown_max : na;
    if (shown > nb) shown = nb;
    float *An = sae_alloc(na * d * sizeof(float)), *Bn = sae_alloc(nb * d * sizeof(float));
    float *cos = sae_alloc(cos_n * sizeof(float)), *best = sae_malloc(na * sizeof *best);
    size_t *order = sae_malloc(na * sizeof *order);
    char *used = sae_calloc_n(nb, 1);
    out->row = sae_malloc(shown * sizeof *out->row);
    out->col = sae_malloc(shown * sizeof *out->col);
    out->cos = sae_malloc(sae_mul_size(shown, shown, &over) * sizeof *out->cos);
    int rc = An && Bn && cos && best && order && used && out->row && out->col && out->cos
                 ? SAE_OK
                 : sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory for a %zu x %zu similarity matrix",
                                 na, nb);
    if (rc == SAE_OK) {
        normalize_rows(An, A, na, d);
        normalize_rows(Bn, B, nb, d);
        sae_gemm(0, 1, na, nb, d, 1.0f, An, d, Bn, d, 0.0f, cos, nb);
        double mean_best = 0;
        for (size_t i = 0; i < na; i++) {
            best[i] = -INFINITY;
            for (size_t j = 0; j < nb; j++) best[i] = fmaxf(best[i], cos[i * nb + j]);
            mean_best += best[i];
        }
        order_by_best(order, best, na);
        /* greedy matching: rows in that order each take their best free column */
        double mean_matched = 0;
        for (size_t r = 0; r < shown; r++) {
            size_t i = order[r], bj = 0;
            float bv = -INFINITY;
            for (size_t j = 0; j < nb; j++)
                if (!used[j] && cos[i * nb + j] > bv) bv = cos[i * nb + j], bj = j;
            used[bj] = 1;
            out->row[r] = i, out->col[r] = bj;
            mean_matched += bv;
        }
        for (size_t r = 0; r < shown; r++)
            for (size_t c = 0; c < shown; c++) out->cos[r * shown + c] = cos[out->row[r] * nb + out->col[c]];
        out->shown = shown;
        out->mean_best = mean_best / (double)na;
        out->mean_matched = mean_matched / (double)shown;
        /* finite inputs give finite cosines; anything else is a caller's bug */
        SAE_ASSERT(isfinite(out->mean_best) && isfinite(out->mean_matched));
    }
    sae_free(An), sae_free(Bn), sae_free(cos), sae_free(best), sae_free(order), sae_free(used);
    if (rc < 0) feat_alignment_free(out);
    return rc;
}
