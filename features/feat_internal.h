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

/* Visits every active code of the last sae_model_encode on n rows as
 * (latent j, row b, value v): latents in parallel, each latent's rows in
 * order, so per-latent accumulators need no locks and give the same result
 * for any thread count. start (M + 1) and entry (n * S) are scratch for topk. */
typedef void (*feat__code_visit)(size_t j, size_t b, float v, void *user);
void feat__each_code(const sae_model *m, size_t n, uint32_t *start, uint32_t *entry,
                     feat__code_visit visit, void *user);

#endif
