/* sae/arch.h: the architecture table, private to sae/. One file per
 * architecture fills one sae_arch_ops; model.c holds the array indexed by
 * sae_arch and is the only place that picks an entry. Everything else in the
 * toolkit calls the sae_model_* functions, which call through the table.
 *
 * Each hook says when it is called and what it may touch:
 *   defaults, validate, tensors   pure functions of the config
 *   workspace    lists the architecture's private buffers (fields of the
 *                struct of ws_struct_bytes that m->arch_ws points to), with
 *                sizes for m->capacity rows; model.c allocates and frees them
 *   init         sets every tensor from a seed (after allocation)
 *   calibrate    once before training, on B <= capacity rows of the scaled
 *                init sample (m->xc ready, b_dec already set): may set
 *                parameters from the data; NULL = nothing
 *   encode       codes of B rows by the inference rule, from m->xc (ready)
 *   forward      encode + decode + loss; st NULL = inference
 *   backward     gradients of the last (training) forward into m->g
 *   count_active counts[j] += rows in which latent j was active
 *   codes        fills the codes view (sae__codes_from_*)
 *   before_update, after_update   around the optimiser step; NULL = nothing
 */
#ifndef SAE_ARCH_H
#define SAE_ARCH_H

#include "sae/sae.h"

typedef struct sae__ws_item {
    void **ptr;
    size_t bytes;
} sae__ws_item;
#define SAE__MAX_WS 24

typedef struct sae_arch_ops {
    const char *name;
    const char *summary;
    int file_version;  /* the lowest SAE format_version that describes it */
    int dense;         /* pre is (capacity, M): codes are dense (relu, jumprelu) */
    unsigned uses;     /* SAE_USES_* */
    size_t ws_struct_bytes;
    void (*defaults)(sae_config *c, sae_train_hints *h);
    int (*validate)(const sae_config *c, sae_error *err);
    size_t (*tensors)(const sae_config *c, sae_tensor *t);
    size_t (*workspace)(sae_model *m, sae__ws_item *it);
    void (*init)(sae_model *m, uint64_t seed);
    void (*calibrate)(sae_model *m, size_t B);
    int (*encode)(sae_model *m, size_t B, sae_error *err);
    int (*forward)(sae_model *m, const float *x, size_t B, const sae_step *st, sae_loss *out,
                   sae_error *err);
    void (*backward)(sae_model *m, const sae_step *st);
    void (*count_active)(const sae_model *m, uint32_t *counts);
    int (*codes)(sae_model *m, sae_error *err);
    void (*before_update)(sae_model *m);
    void (*after_update)(sae_model *m);
} sae_arch_ops;

extern const sae_arch_ops sae__arch_topk, sae__arch_batchtopk, sae__arch_matryoshka,
    sae__arch_relu, sae__arch_jumprelu;

/* --- shared pieces the architecture files call ---------------------------------- */
/* The four tensors every architecture has, in blob order; returns 4. */
size_t sae__base_tensors(const sae_config *c, sae_tensor *t);
/* Random decoder rows of the given norm, encoder = decoder transpose, zero biases. */
void sae__init_tied(sae_model *m, uint64_t seed, float dec_norm);
/* pre (rows, M) = m->xc[r0 ..] @ W_enc^T through the model's encoder plan
 * (b_enc not added: the selection kernels add it). */
void sae__encode_rows(sae_model *m, size_t r0, size_t rows, float *pre);
/* The codes view from per-row slot lists (row r's entries are
 * idx/val[first[r] .. first[r] + count[r]), entries with val <= 0 skipped),
 * or from dense codes z (B, M). */
int sae__codes_from_lists(sae_model *m, const int32_t *idx, const float *val,
                          const uint32_t *first, const uint32_t *count, size_t B, sae_error *err);
int sae__codes_from_dense(sae_model *m, const float *z, size_t B, sae_error *err);
/* Unit-norm decoders: the gradient projection and the renormalisation. */
void sae__project_decoder_grad(sae_model *m);
void sae__normalize_decoder(sae_model *m);
/* Dense codes (relu, jumprelu): xhat (B,D) = z (B,M) @ W_dec + b_dec; and,
 * from dpre (B,M), dW_enc = dpre^T @ xc, db_enc = sum_b dpre, and
 * db_dec -= W_enc^T @ db_enc (xc = x - b_dec), with dpre_sum = db_enc. */
void sae__dense_decode(sae_model *m, const float *z, size_t B);
void sae__dense_encoder_backward(sae_model *m, const float *dpre, size_t B);
/* The recon part shared by every architecture: err = xhat - x, sse, V. */
void sae__residual_and_variance(sae_model *m, const float *x, size_t B, sae_loss *out);

#endif
