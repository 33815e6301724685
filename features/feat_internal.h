/* features/feat_internal.h: shared by build.c, file.c and search.c only. */
#ifndef SAE_FEATURES_FEAT_INTERNAL_H
#define SAE_FEATURES_FEAT_INTERNAL_H

#include "features/feat.h"

feat_dict *feat__alloc(size_t M, size_t top_n);

/* The logit lens of every decoder direction: (W_dec[j] * final_norm) against
 * /unembed, computed in blocks of features; visit sees logits (nb, V) for
 * features j0 .. j0 + nb. The data must have /unembed. */
typedef void (*feat__lens_visit)(size_t j0, size_t nb, const float *logits, size_t V, void *user);
int feat__logit_lens_blocks(const sae_model *m, data_actfile *f, feat__lens_visit visit, void *user,
                            sae_error *err);

/* Visits every active code of the last sae_model_encode as (latent j, row b,
 * value v), through the model's codes view: latents in parallel, each
 * latent's rows in order, so per-latent accumulators need no locks and give
 * the same result for any thread count. */
typedef void (*feat__code_visit)(size_t j, size_t b, float v, void *user);
/* static inline so the visitor is inlined at each call site: this loop is the
 * hot part of the pass after the encoder */
static inline int feat__each_code(sae_model *m, feat__code_visit visit, void *user, sae_error *err) {
    sae_codes c;
    int rc = sae_model_codes(m, &c, err);
    if (rc < 0) return rc;
#pragma omp parallel for schedule(dynamic, 64)
    for (size_t j = 0; j < c.M; j++)
        for (uint32_t t = c.start[j]; t < c.start[j + 1]; t++) visit(j, c.row[t], c.val[t], user);
    return SAE_OK;
}

/* The match set of o->regex (o->kind names the flag in errors): match[v] = 1
 * where /vocab entry v matches it and not o->exclude_regex; match has
 * f->vocab_size entries. Errors: no /vocab, a regex that does not compile or
 * matches nothing (after the exclusion). */
int feat__match_vocab(data_actfile *f, const feat_search_opts *o, char *match, size_t *n_match, sae_error *err);

/* --attribute-regex (attrib.c): universe is (f->n) 1 for rows searched, or
 * NULL for all rows; fills out->rows (M, unsorted) and out->n. */
int feat__search_attribute(feat_search_result *out, sae_model *m, double input_scale, data_actfile *f,
                           const feat_search_opts *o, const uint8_t *universe, sae_error *err);

#endif
