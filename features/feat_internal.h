/* features/feat_internal.h: shared by build.c, file.c and search.c only. */
#ifndef SAE_FEATURES_FEAT_INTERNAL_H
#define SAE_FEATURES_FEAT_INTERNAL_H

#include "features/feat.h"
#include "sae/kernels.h"

feat_dict *feat__alloc(size_t M, size_t top_n);

/* The logit lens of every decoder direction: (W_dec[j] * final_norm) against
 * /unembed, computed in blocks of features; visit sees logits (nb, V) for
 * features j0 .. j0 + nb. The data must have /unembed. */
typedef void (*feat__lens_visit)(size_t j0, size_t nb, const float *logits, size_t V, void *user);
int feat__logit_lens_blocks(const sae_model *m, data_actfile *f, feat__lens_visit visit, void *user,
                            sae_error *err);

/* Visits every active code of the last sae_model_encode on n rows as
 * (latent j, row b, value v): latents in parallel, each latent's rows in
 * order, so per-latent accumulators need no locks and give the same result
 * for any thread count. start (M + 1) and entry (n * S) are scratch for topk. */
typedef void (*feat__code_visit)(size_t j, size_t b, float v, void *user);
/* static inline so the visitor is inlined at each call site: this loop is the
 * hot part of the pass after the encoder */
static inline void feat__each_code(const sae_model *m, size_t n, uint32_t *start, uint32_t *entry,
                     feat__code_visit visit, void *user) {
    size_t M = m->cfg.m;
    if (m->cfg.arch == SAE_ARCH_TOPK) {
        size_t S = m->S; /* encode leaves the AuxK slots empty: only main slots are indexed */
        sae_latent_index_build(start, entry, m->idx, m->val, n, M, S);
#pragma omp parallel for schedule(dynamic, 64)
        for (size_t j = 0; j < M; j++)
            for (uint32_t t = start[j]; t < start[j + 1]; t++) visit(j, entry[t] / S, m->val[entry[t]], user);
    } else {
        const float *z = m->pre; /* relu codes, (n, M) */
#pragma omp parallel for schedule(dynamic, 64)
        for (size_t j = 0; j < M; j++)
            for (size_t b = 0; b < n; b++)
                if (z[b * M + j] > 0.0f) visit(j, b, z[b * M + j], user);
    }
}


#endif
