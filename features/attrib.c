/* features/attrib.c: --attribute-regex, each feature's direct contribution to
 * the logits of the tokens the model predicts (see feat.h).
 *
 * Positions: rows of the universe whose top-1 stored prediction (column 0 of
 * /predictions/token) is a vocabulary entry matching the regex and not the
 * exclusion regex. At such a row, with t the predicted token, feature j's
 * direct logit contribution through the logit lens is
 *
 *     c_j = (a_j / s) * (W_dec[j] ⊙ g) · U[t]
 *
 * a_j the SAE's code (computed on x * s, s = input_scale, as everywhere in the
 * toolkit: sae/io.h), so a_j * W_dec[j] / s is the feature's part of the
 * reconstruction in the residual stream's own units; g is /final_norm (1s
 * without it) and U /unembed. The final RMSNorm's data-dependent 1/rms(x)
 * factor is left out, as in the dictionary's logit lens: it is the same for
 * every feature at a position, and the final residual is not stored.
 * attribution = the mean of c_j over the positions (a feature silent at a
 * position contributes 0 there), n_attr = the number of positions.
 *
 * Cost: u_t = W_dec · (g ⊙ U[t]) is precomputed (one sgemm) only for the
 * tokens that occur as a matching top-1 prediction, M floats each; the pass
 * then adds a_j * u_t[j] per active code, with per-feature double sums
 * (feat__each_code gives each feature to one thread, rows in order: the same
 * result for any thread count). */
#include <math.h>
#include <string.h>

#include "common/gemm.h"
#include "common/mem.h"
#include "data/h5.h"
#include "features/feat_internal.h"

/* slot[r] = index into the list of predicted matching tokens (tok), or -1
 * where row r is outside the universe or its top-1 prediction does not
 * match. */
static int find_positions(data_actfile *f, const char *match, const uint8_t *universe,
                          int32_t *slot, int32_t *tok, size_t *n_tok, uint64_t *n_pos,
                          sae_error *err) {
    size_t K = f->n_pred, V = f->vocab_size, block = 4096;
    int32_t *ids = sae_malloc(block * K * sizeof *ids), *slot_of = sae_malloc(V * sizeof *slot_of);
    float *lp = sae_malloc(block * K * sizeof *lp);
    int rc = ids && lp && slot_of ? SAE_OK : sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    for (size_t v = 0; slot_of && v < V; v++) slot_of[v] = -1;
    *n_tok = 0, *n_pos = 0;
    for (size_t r0 = 0; rc == SAE_OK && r0 < f->n; r0 += block) {
        size_t cnt = f->n - r0 < block ? f->n - r0 : block;
        if ((rc = data_actfile_read_predictions(f, r0, cnt, ids, lp, err)) < 0) break;
        for (size_t i = 0; i < cnt; i++) {
            int32_t t = ids[i * K]; /* validated on open: 0 <= t < V */
            slot[r0 + i] = -1;
            if ((universe && !universe[r0 + i]) || !match[t]) continue;
            if (slot_of[t] < 0) slot_of[t] = (int32_t)(*n_tok), tok[(*n_tok)++] = t;
            slot[r0 + i] = slot_of[t];
            (*n_pos)++;
        }
    }
    sae_free(ids), sae_free(lp), sae_free(slot_of);
    return rc;
}

/* u (n_tok, M): u[i][j] = W_dec[j] · (g ⊙ U[tok[i]]). */
static int token_directions(const sae_model *m, data_actfile *f, const int32_t *tok, size_t n_tok,
                            float *u, sae_error *err) {
    size_t D = m->cfg.d, M = m->cfg.m, V = f->vocab_size;
    float *U = sae_alloc(V * D * sizeof(float)), *g = sae_malloc(D * sizeof(float));
    float *sel = sae_alloc(n_tok * D * sizeof(float));
    int rc = U && g && sel ? SAE_OK : sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    if (rc == SAE_OK) rc = data_actfile_read_f32(f, "unembed", U, V * D, err);
    if (rc == SAE_OK && f->has_final_norm) rc = data_actfile_read_f32(f, "final_norm", g, D, err);
    else if (rc == SAE_OK)
        for (size_t c = 0; c < D; c++) g[c] = 1.0f; /* no final norm: the raw unembedding */
    if (rc == SAE_OK) {
        for (size_t i = 0; i < n_tok; i++)
            for (size_t c = 0; c < D; c++) sel[i * D + c] = g[c] * U[(size_t)tok[i] * D + c];
        sae_gemm(0, 1, n_tok, M, D, 1.0f, sel, D, m->p.W_dec, D, 0.0f, u, M);
    }
    sae_free(U), sae_free(g), sae_free(sel);
    return rc;
}

typedef struct {
    const float *u;      /* (n_tok, M) */
    const int32_t *slot; /* (rows of the block) token slot of each encoded row */
    size_t M;
    double *sum;         /* (M) */
} attr_ctx;

static void add_contribution(size_t j, size_t b, float v, void *user) {
    attr_ctx *a = user;
    a->sum[j] += (double)v * a->u[(size_t)a->slot[b] * a->M + j];
}

int feat__search_attribute(feat_search_result *out, sae_model *m, double input_scale, data_actfile *f,
                           const feat_search_opts *o, const uint8_t *universe, sae_error *err) {
    memset(out, 0, sizeof *out);
    size_t D = m->cfg.d, M = m->cfg.m, V = f->vocab_size;
    size_t B = o->batch && o->batch <= m->capacity ? o->batch : m->capacity;
    if (D != f->d)
        return sae_error_set(err, SAE_ERR_MISMATCH, f->path,
                             "the data has d=%zu but the SAE was trained on d=%zu", f->d, D);
    if (!f->n_pred || !f->has_unembed || !V)
        return sae_error_set(err, SAE_ERR_ARG, f->path,
                             "--attribute-regex needs %s in the data (`sae capture --predictions K` "
                             "writes them)",
                             !f->n_pred ? "/predictions" : !V ? "/vocab" : "/unembed");
    if (!o->regex) return sae_error_set(err, SAE_ERR_ARG, "--attribute-regex", "needs a regex");
    char *match = sae_calloc_n(V, 1);
    int32_t *slot = sae_malloc(f->n * sizeof *slot), *tok = sae_malloc(V * sizeof *tok);
    int32_t *bslot = sae_malloc(B * sizeof *bslot);
    float *raw = sae_alloc(B * D * sizeof(float)), *x = sae_alloc(B * D * sizeof(float));
    double *sum = sae_calloc_n(M, sizeof *sum);
    float *u = NULL;
    int rc = match && slot && tok && bslot && raw && x && sum
                 ? SAE_OK
                 : sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    size_t n_match = 0, n_tok = 0;
    uint64_t n_pos = 0;
    if (rc == SAE_OK) rc = feat__match_vocab(f, o, match, &n_match, err);
    if (rc == SAE_OK) rc = find_positions(f, match, universe, slot, tok, &n_tok, &n_pos, err);
    if (rc == SAE_OK && n_pos == 0)
        rc = sae_error_set(err, SAE_ERR_ARG, "--attribute-regex",
                           "the model's top prediction matches '%s' (%zu vocabulary entries) at no "
                           "position%s", o->regex, n_match, universe ? " of those searched" : "");
    int ovf = 0;
    size_t u_bytes = sae_mul_size(sae_mul_size(n_tok, M, &ovf), sizeof(float), &ovf);
    if (rc == SAE_OK && (ovf || !(u = sae_alloc(u_bytes))))
        rc = sae_error_set(err, SAE_ERR_NOMEM, NULL,
                           "out of memory for %zu predicted tokens x %zu features", n_tok, M);
    if (rc == SAE_OK) rc = token_directions(m, f, tok, n_tok, u, err);
    float sc = (float)input_scale;
    uint64_t used = 0;
    attr_ctx ctx = {u, bslot, M, sum};
    for (size_t r0 = 0; rc == SAE_OK && r0 < f->n; r0 += B) {
        size_t cnt = f->n - r0 < B ? f->n - r0 : B, n = 0, any = 0;
        for (size_t i = 0; i < cnt; i++) any |= slot[r0 + i] >= 0;
        if (!any) continue; /* no position here: skip the read */
        if ((rc = data_actfile_read_rows(f, r0, cnt, raw, err)) < 0) break;
        for (size_t i = 0; i < cnt; i++) {
            if (slot[r0 + i] < 0 || data_row_nonfinite(raw + i * D, D)) continue;
            for (size_t c = 0; c < D; c++) x[n * D + c] = raw[i * D + c] * sc;
            bslot[n++] = slot[r0 + i];
        }
        if (n == 0) continue;
        if ((rc = sae_model_encode(m, x, n, err)) < 0) break;
        if ((rc = feat__each_code(m, add_contribution, &ctx, err)) < 0) break;
        used += n;
    }
    if (rc == SAE_OK && used == 0)
        rc = sae_error_set(err, SAE_ERR_FORMAT, f->path,
                           "every row where the prediction matches holds NaN or Inf");
    if (rc == SAE_OK && !(out->rows = sae_calloc_n(M, sizeof *out->rows)))
        rc = sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    if (rc == SAE_OK) {
        for (size_t j = 0; j < M; j++) {
            out->rows[j].feature = j;
            out->rows[j].attribution = sum[j] / input_scale / (double)used;
            out->rows[j].n_attr = used;
        }
        out->n = M;
        out->n_pos = used;
        out->n_matching_tokens = n_match;
    }
    sae_free(match), sae_free(slot), sae_free(tok), sae_free(bslot);
    sae_free(raw), sae_free(x), sae_free(sum), sae_free(u);
    return rc;
}
