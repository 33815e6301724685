/* features/encode.c: the SAE's codes over a stretch of the data, for the
 * commands that show one document (see feat.h). */
#include <stdint.h>
#include <string.h>

#include "common/mem.h"
#include "features/feat.h"

int feat_encode_rows(sae_model *m, double scale, data_actfile *f, size_t r0, size_t r1, const size_t *ids, size_t nf,
                     float *out, sae_error *err) {
    size_t D = f->d, M = m->cfg.m, cap = m->capacity < 1024 ? m->capacity : 1024, W = ids ? nf : M;
    float *raw = sae_alloc(cap * D * sizeof *raw), *x = sae_alloc(cap * D * sizeof *x);
    size_t *col = sae_malloc(M * sizeof *col); /* feature j -> its column in out, or SIZE_MAX */
    size_t *at = sae_malloc(cap * sizeof *at);  /* encoded row -> its row in out */
    int rc = raw && x && col && at ? SAE_OK : sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    for (size_t j = 0; col && j < M; j++) col[j] = ids ? SIZE_MAX : j;
    for (size_t i = 0; col && ids && i < nf; i++) col[ids[i]] = i;
    memset(out, 0, (r1 - r0) * W * sizeof *out);
    for (size_t b0 = r0; rc == SAE_OK && b0 < r1; b0 += cap) {
        size_t cnt = r1 - b0 < cap ? r1 - b0 : cap, n = 0;
        if ((rc = data_actfile_read_rows(f, b0, cnt, raw, err)) < 0) break;
        /* the SAE acts on scaled inputs; rows holding NaN or Inf are left out
         * (their codes stay 0), as `sae features` skips them */
        for (size_t i = 0; i < cnt; i++) {
            if (data_row_nonfinite(raw + i * D, D)) continue;
            for (size_t k = 0; k < D; k++) x[n * D + k] = raw[i * D + k] * (float)scale;
            at[n++] = b0 - r0 + i;
        }
        if (n == 0) continue;
        sae_codes c;
        if ((rc = sae_model_encode(m, x, n, err)) < 0 || (rc = sae_model_codes(m, &c, err)) < 0) break;
        for (size_t j = 0; j < M; j++)
            if (col[j] != SIZE_MAX)
                for (uint32_t t = c.start[j]; t < c.start[j + 1]; t++) out[at[c.row[t]] * W + col[j]] = c.val[t];
    }
    sae_free(raw), sae_free(x), sae_free(col), sae_free(at);
    return rc;
}

int feat_peak_window(sae_model *m, double scale, data_actfile *f, const data_docs *d, size_t doc, const size_t *ids,
                     size_t nf, size_t *window, float *peak, sae_error *err) {
    int64_t lo, hi;
    data_docs_doc_rows(d, doc, &lo, &hi);
    size_t n = (size_t)(hi - lo);
    float *v = sae_calloc_n(n ? n * nf : 1, sizeof *v);
    if (!v) return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory for %zu rows", n);
    int rc = feat_encode_rows(m, scale, f, (size_t)lo, (size_t)hi, ids, nf, v, err);
    size_t best = 0;
    float bv = 0;
    for (size_t i = 0; rc == SAE_OK && i < n * nf; i++)
        if (v[i] > bv) bv = v[i], best = i / nf;
    sae_free(v);
    if (rc < 0) return rc;
    /* nothing fires: the document's first window */
    *window = bv > 0 ? data_docs_window_of_row(d, lo + (int64_t)best) : (size_t)d->doc_win[doc];
    *peak = bv;
    return SAE_OK;
}
