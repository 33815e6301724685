/* sae/sae.h: the sparse autoencoder: configuration, parameters, forward and
 * backward for each architecture.
 *
 *   pre  = (x - b_dec) @ W_enc^T + b_enc          (B,M)   one sgemm
 *   z    = TopK(ReLU(pre))          [topk]   or   ReLU(pre)   [relu]
 *   xhat = z @ W_dec + b_dec                      (B,D)
 *
 * topk (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"):
 *   L = ||xhat - x||^2 / V  +  aux_coef * min(n_dead/aux_k, 1) * ||ehat - r||^2 / V_r
 *   with V the batch's total variance (so the first term is the batch FVU),
 *   r = x - xhat held constant, and ehat the reconstruction of r from the
 *   aux_k largest pre-activations among dead latents (AuxK). Decoder rows are
 *   kept unit-norm by the trainer. All work after the encoder sgemm is
 *   O(B*(k+aux_k)*D).
 * relu (Anthropic, "Circuits Updates - April 2024"):
 *   L = (1/B) sum_b ||xhat_b - x_b||^2  +  l1 * (1/B) sum_{b,j} z_bj ||W_dec_j||
 *   dense; no norm constraint on the decoder.
 * Inputs are expected already scaled so that E||x||^2 = D (the trainer does it).
 *
 * Memory: parameters live in one blob (and gradients in a second with the same
 * layout) so the optimiser and checkpoint code are flat loops. Workspace is
 * sized for `capacity` rows at init; forward/backward never allocate.
 *
 *     sae_model m;
 *     sae_config c = {.arch = SAE_ARCH_TOPK, .d = 512, .m = 8192, .k = 32, .aux_k = 256,
 *                     .aux_coef = 1.0f / 32};
 *     sae_model_init(&m, &c, 4096, 1, &err);
 *     sae_model_init_params(&m, seed);
 *     sae_model_forward(&m, x, B, 0.0f, dead, n_dead, &loss);
 *     sae_model_backward(&m, 0.0f);
 *     sae_model_free(&m);
 */
#ifndef SAE_SAE_H
#define SAE_SAE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/gemm.h"

typedef enum sae_arch { SAE_ARCH_TOPK = 0, SAE_ARCH_RELU = 1 } sae_arch;

const char *sae_arch_name(sae_arch a);
int sae_arch_parse(const char *s, sae_arch *out); /* 0 ok, -1 unknown */

typedef struct sae_config {
    sae_arch arch;
    size_t d;       /* D: input width (d_model) */
    size_t m;       /* M: latents */
    size_t k;       /* topk: active latents per row */
    size_t aux_k;   /* topk: latents in the AuxK reconstruction; 0 turns AuxK off */
    float aux_coef; /* topk: weight of the AuxK loss */
} sae_config;

/* Checks ranges (k <= M etc.); the message names the offending setting. */
int sae_config_validate(const sae_config *c, sae_error *err);

#define SAE_NPARAM 4
typedef struct sae_params {
    float *W_enc; /* (M, D): row j is latent j's encoder vector. Files store its transpose (D, M). */
    float *b_enc; /* (M) */
    float *W_dec; /* (M, D): row j is latent j's decoder direction */
    float *b_dec; /* (D) */
} sae_params;

void sae_param_sizes(size_t n[SAE_NPARAM], const sae_config *c); /* floats per tensor */
size_t sae_param_count(const sae_config *c);
void sae_params_point(sae_params *p, float *blob, const sae_config *c);

typedef struct sae_loss {
    double loss;     /* total objective */
    double sse;      /* sum of squared reconstruction error */
    double var;      /* batch total variance sum ||x_b - mean||^2 */
    double aux_loss; /* AuxK term as added to loss (weighted) */
    double sparsity; /* relu: l1 term as added to loss */
    double l0;       /* mean number of active latents per row */
} sae_loss;

typedef struct sae_model {
    sae_config cfg;
    size_t capacity;    /* max rows per forward */
    float *param_blob;  /* sae_param_count floats */
    sae_params p;
    float *grad_blob;   /* NULL for inference-only models */
    sae_params g;
    sae_precision precision; /* of the encoder product; f32 unless set */
    sae_matmul *enc;         /* the encoder product's plan */

    /* workspace, valid after a forward on B <= capacity rows */
    size_t B;           /* rows of the last forward */
    size_t S;           /* slots per row: k + aux_k (topk) */
    size_t chunk;       /* rows per encoder product; topk encodes in chunks */
    size_t n_aux;       /* aux slots used by the last forward */
    float aux_weight;   /* aux_coef * min(n_dead / aux_k, 1) of the last forward */
    double aux_var;     /* V_r of the last forward */
    double var;         /* V of the last forward */
    float *xc;          /* (cap, D)  x - b_dec */
    float *pre;         /* (chunk, M) pre-activations; relu: (cap, M), z in place */
    /* xhat, err and dxhat are one buffer, each stage overwriting the last in
     * place (so are ehat and dehat): memory is budgeted, see README */
    float *xhat;        /* (cap, D)  reconstruction, until the residual */
    float *err;         /* = xhat:   xhat - x, until the backward */
    float *dxhat;       /* = xhat:   dL/dxhat */
    int32_t *idx;       /* (cap, S)  topk: selected latents, main then aux */
    float *val;         /* (cap, S) */
    float *dval;        /* (cap, S) */
    float *ehat;        /* (cap, D)  topk: AuxK reconstruction */
    float *dehat;       /* = ehat */
    uint32_t *lat_start;/* (M + 1) latent index */
    uint32_t *lat_entry;/* (cap * S) */
    struct sae_topk_pair *topk_scratch; /* topk selection buffers */
    float *dpre_sum;    /* (M) */
    float *dz;          /* (cap, M) relu */
    float *dec_norm;    /* (M) relu */
    double *scratch_d;  /* (max(cap, 2D)) */
} sae_model;

/* Allocates parameters (zeroed), gradients (if with_grads) and workspace for
 * `capacity` rows. On failure nothing stays allocated. */
int sae_model_init(sae_model *m, const sae_config *c, size_t capacity, int with_grads,
                   sae_error *err);
void sae_model_free(sae_model *m);
size_t sae_model_workspace_bytes(const sae_model *m);

/* Rows per encoder product: topk encodes a batch in chunks so that only
 * (chunk, M) pre-activations exist at once; relu needs all of them. */
size_t sae_encode_chunk_rows(const sae_config *c, size_t capacity);

/* Runs the encoder product (only it) in precision p from now on. Fails, leaving
 * the model as it was, when the CPU cannot (see sae_precision_check). */
int sae_model_set_precision(sae_model *m, sae_precision p, sae_error *err);

/* Random decoder directions (unit norm for topk, norm 0.1 for relu), encoder =
 * decoder transpose, zero biases. */
void sae_model_init_params(sae_model *m, uint64_t seed);

/* Forward on B rows of x (B,D). `dead` lists n_dead latents eligible for AuxK
 * (ignored for relu or when aux_k = 0). l1 is the relu sparsity coefficient. */
void sae_model_forward(sae_model *m, const float *x, size_t B, float l1, const int32_t *dead,
                       size_t n_dead, sae_loss *out);
/* Codes only (no decode, no loss), for passes that read activations:
 * topk fills m->idx/m->val (main slots; aux slots set to -1), relu fills m->pre. */
void sae_model_encode(sae_model *m, const float *x, size_t B);
/* Writes dL/dparams of the last forward into m->g (overwriting: the sparse
 * topk weight gradients set every row, so no zeroing pass is needed). */
void sae_model_backward(sae_model *m, float l1);

/* counts[j] += rows of the last forward in which latent j was active. */
void sae_model_count_active(const sae_model *m, uint32_t *counts);

/* topk: removes from each decoder-row gradient its component along the row,
 * so a step changes direction, not norm (to first order). */
void sae_model_project_decoder_grad(sae_model *m);
/* topk: rescales decoder rows to unit norm. */
void sae_model_normalize_decoder(sae_model *m);

#endif
