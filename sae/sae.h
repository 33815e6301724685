/* sae/sae.h: the sparse autoencoder: configuration, parameters, forward and
 * backward, behind one table of architectures (sae/arch.h).
 *
 *   xc   = x - b_dec                                   (B,D)
 *   pre  = xc @ W_enc^T + b_enc                        (B,M)   one sgemm
 *   z    = the architecture's sparse code of pre       (B,M)
 *   xhat = z @ W_dec + b_dec                           (B,D)
 *
 * Architectures (each one file; the losses are documented there):
 *   topk        sae/arch_topk.c    k largest of ReLU(pre) per row, AuxK (Gao et al. 2024)
 *   batchtopk   sae/arch_topk.c    k*B largest over the batch; threshold at inference
 *                                  (Bussmann et al. 2024)
 *   matryoshka  sae/arch_topk.c    batchtopk with nested prefix losses (Bussmann et al. 2025)
 *   relu        sae/arch_relu.c    ReLU, decoder-norm-weighted L1 (Anthropic, April 2024)
 *   jumprelu    sae/arch_jumprelu.c  learned per-latent thresholds, L0 toward a target
 *                                  (Rajamanoharan et al. 2024)
 * Inputs are expected already scaled so that E||x||^2 = D (the trainer does it).
 *
 * Nothing outside sae/arch*.c tests the architecture: the trainer calls
 * forward, backward and the two step hooks; file code walks the tensor list;
 * consumers read codes through sae_model_codes.
 *
 * Memory: the tensors live in one blob, learned ones first (gradients and the
 * optimiser's moments cover just those, in the same layout), then state that
 * only the architecture updates (e.g. a BatchTopK threshold). Workspace is sized
 * for `capacity` rows at init; a training forward/backward never allocates.
 *
 *     sae_model m;
 *     sae_config c = sae_config_default(SAE_ARCH_TOPK);
 *     c.d = 512; c.m = 8192; c.aux_k = 256;
 *     sae_model_init(&m, &c, 4096, 1, &err);
 *     sae_model_init_params(&m, seed);
 *     sae_step st = {.train = 1, .dead = dead, .n_dead = n_dead};
 *     sae_model_forward(&m, x, B, &st, &loss, &err);
 *     sae_model_backward(&m, &st);
 *     sae_model_before_update(&m);  ...Adam on m.param_blob...  sae_model_after_update(&m);
 *     sae_model_free(&m);
 */
#ifndef SAE_SAE_H
#define SAE_SAE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/gemm.h"

typedef enum sae_arch {
    SAE_ARCH_TOPK = 0,
    SAE_ARCH_RELU = 1,
    SAE_ARCH_BATCHTOPK = 2,
    SAE_ARCH_JUMPRELU = 3,
    SAE_ARCH_MATRYOSHKA = 4,
    SAE_ARCH_COUNT
} sae_arch;

/* Architecture names in enum order, NULL-terminated (the CLI's --arch choices). */
extern const char *const sae_arch_names[SAE_ARCH_COUNT + 1];
const char *sae_arch_name(sae_arch a);
int sae_arch_parse(const char *s, sae_arch *out); /* 0 ok, -1 unknown */
/* One line describing the architecture and its paper, for --help. */
const char *sae_arch_summary(sae_arch a);
/* The lowest SAE file format_version that describes the architecture. */
int sae_arch_file_version(sae_arch a);

#define SAE_MAX_WIDTHS 8

typedef struct sae_config {
    sae_arch arch;
    size_t d;             /* D: input width (d_model) */
    size_t m;             /* M: latents */
    size_t k;             /* topk: active latents per row; batch archs: mean per row */
    size_t aux_k;         /* topk family: latents in the AuxK reconstruction; 0 = off */
    float aux_coef;       /* topk family: weight of the AuxK loss */
    float threshold_lr;   /* batchtopk, matryoshka: rate of the threshold's running estimate */
    size_t target_l0;     /* jumprelu: the mean L0 the sparsity loss steers toward */
    float bandwidth;      /* jumprelu: width of the straight-through rectangle kernel */
    float threshold_init; /* jumprelu: initial per-latent threshold */
    size_t n_widths;      /* matryoshka: nested dictionary sizes, increasing, last = m */
    size_t widths[SAE_MAX_WIDTHS];
} sae_config;

/* A size setting resolved from the data: aux_k = d/2 (at most M). */
#define SAE_AUTO ((size_t)-1)

/* The settings an architecture reads; the others are zeroed by resolve. */
enum {
    SAE_USES_K = 1 << 0,            /* k */
    SAE_USES_AUX = 1 << 1,          /* aux_k, aux_coef, dead latents */
    SAE_USES_THRESHOLD_LR = 1 << 2, /* threshold_lr */
    SAE_USES_JUMP = 1 << 3,         /* target_l0, bandwidth, threshold_init */
    SAE_USES_WIDTHS = 1 << 4,       /* widths */
    SAE_USES_SPARSITY = 1 << 5,     /* the trainer's sparsity coefficient and warm-up */
};
unsigned sae_arch_uses(sae_arch a);

/* The architecture's defaults for everything but d and m (0 = decided later). */
sae_config sae_config_default(sae_arch a);
/* Fills what depends on the data (d; m = 8d when 0; aux_k = d/2 when
 * SAE_AUTO; matryoshka widths M/16, M/4, M when none are given), zeroes the
 * settings the architecture does not use, and validates. */
int sae_config_resolve(sae_config *c, size_t d, sae_error *err);
/* Checks ranges (k <= M etc.); the message names the offending flag. */
int sae_config_validate(const sae_config *c, sae_error *err);
/* "k=32 aux_k=256 aux_coef=0.03125 ...": the settings the architecture uses. */
void sae_config_describe(const sae_config *c, char *buf, size_t cap);
/* 0 when two configs describe the same SAE (every field the architecture uses). */
int sae_config_compare(const sae_config *a, const sae_config *b, char *what, size_t cap);

/* Training settings an architecture suggests (the trainer's defaults). */
typedef struct sae_train_hints {
    float lr;
    float grad_clip;       /* 0 = off */
    float sparsity_coef;   /* relu: L1 lambda; jumprelu: L0 lambda; else 0 */
    float sparsity_warmup; /* fraction of steps ramping sparsity_coef up */
} sae_train_hints;
sae_train_hints sae_arch_train_hints(sae_arch a);

/* --- tensors ------------------------------------------------------------------ */
typedef struct sae_params {
    float *W_enc;     /* (M, D): row j is latent j's encoder vector. Files store its transpose (D, M). */
    float *b_enc;     /* (M) */
    float *W_dec;     /* (M, D): row j is latent j's decoder direction */
    float *b_dec;     /* (D) */
    float *threshold; /* jumprelu (M), learned; batchtopk/matryoshka (1), state; else NULL */
} sae_params;

#define SAE_MAX_TENSORS 8
typedef struct sae_tensor {
    const char *name;   /* dataset name in SAE files */
    size_t rows, cols;  /* cols = 0: a vector of rows */
    int learned;        /* updated by the optimiser (else architecture state) */
    int file_transposed;/* stored (cols, rows) in files: W_enc */
    size_t field;       /* offsetof(sae_params, ...) */
} sae_tensor;

/* The architecture's tensors, learned ones first; returns the count. */
size_t sae_tensors(const sae_config *c, sae_tensor t[SAE_MAX_TENSORS]);
size_t sae_tensor_numel(const sae_tensor *t);
float *sae_tensor_data(const sae_params *p, const sae_tensor *t);
size_t sae_param_count(const sae_config *c); /* learned floats: gradients, Adam */
size_t sae_blob_count(const sae_config *c);  /* learned + state floats */
void sae_params_point(sae_params *p, float *blob, const sae_config *c);

typedef struct sae_loss {
    double loss;     /* total objective */
    double sse;      /* sum of squared reconstruction error (of the full dictionary) */
    double var;      /* batch total variance sum ||x_b - mean||^2 */
    double aux_loss; /* AuxK term as added to loss (weighted) */
    double sparsity; /* relu: l1 term, jumprelu: L0 term, as added to loss */
    double l0;       /* mean number of active latents per row */
} sae_loss;

/* One forward's settings. NULL wherever a sae_step is taken means inference:
 * the architecture's inference rule (BatchTopK's threshold), no AuxK. */
typedef struct sae_step {
    int train;            /* training rules: batch selection, AuxK, threshold tracking */
    float sparsity_coef;  /* relu / jumprelu coefficient at this step (after warm-up) */
    const int32_t *dead;  /* latents eligible for AuxK, n_dead of them */
    size_t n_dead;
} sae_step;

/* Codes of the last forward or encode, grouped by latent: latent j is active
 * on rows row[start[j] .. start[j+1]) (increasing) with values val[...] > 0. */
typedef struct sae_codes {
    size_t B, M, nnz;
    const uint32_t *start; /* (M + 1) */
    const uint32_t *row;   /* (nnz) */
    const float *val;      /* (nnz) */
} sae_codes;

typedef struct sae_model {
    sae_config cfg;
    const struct sae_arch_ops *ops; /* the architecture's table */
    size_t capacity;    /* max rows per forward */
    float *param_blob;  /* sae_blob_count floats: learned, then state */
    sae_params p;
    float *grad_blob;   /* sae_param_count floats; NULL for inference-only models */
    sae_params g;       /* gradient pointers (state tensors: NULL) */
    sae_precision precision; /* of the encoder product; f32 unless set */
    sae_matmul *enc;         /* the encoder product's plan */

    /* shared workspace, valid after a forward on B <= capacity rows */
    size_t B;           /* rows of the last forward or encode */
    size_t chunk;       /* rows per encoder product (sparse archs encode in chunks) */
    double var;         /* V of the last forward */
    float *xc;          /* (cap, D)  x - b_dec */
    float *pre;         /* (chunk, M) pre-activations; dense archs: (cap, M) */
    /* xhat, err and dxhat are one buffer, each stage overwriting the last in
     * place: memory is budgeted, see README */
    float *xhat;        /* (cap, D)  reconstruction, until the residual */
    float *err;         /* = xhat:   xhat - x, until the backward */
    float *dxhat;       /* = xhat:   dL/dxhat */
    float *dpre_sum;    /* (M) */
    double *scratch_d;  /* (max(cap, 2D)) */
    /* the codes view, built on demand by sae_model_codes, grown as needed */
    uint32_t *code_start, *code_row;
    float *code_val;
    size_t code_cap;
    int codes_ready;
    void *arch_ws;      /* the architecture's private workspace */
} sae_model;

/* Allocates parameters (zeroed), gradients (if with_grads) and workspace for
 * `capacity` rows. On failure nothing stays allocated. */
int sae_model_init(sae_model *m, const sae_config *c, size_t capacity, int with_grads,
                   sae_error *err);
void sae_model_free(sae_model *m);
size_t sae_model_workspace_bytes(const sae_model *m);

/* Runs the encoder product (only it) in precision p from now on. Fails, leaving
 * the model as it was, when the CPU cannot (see sae_precision_check). */
int sae_model_set_precision(sae_model *m, sae_precision p, sae_error *err);

/* The architecture's initialisation: random unit (or 0.1 for relu) decoder
 * directions, encoder = decoder transpose, zero biases, initial thresholds. */
void sae_model_init_params(sae_model *m, uint64_t seed);

/* Once before training, after b_dec is set: lets the architecture set
 * parameters from a sample of the (scaled) data, n rows (at most capacity
 * are used). JumpReLU's automatic initial threshold is set here. */
void sae_model_calibrate(sae_model *m, const float *x, size_t n);

/* Forward on B rows of x (B,D) with loss; st NULL = inference. A training
 * forward never fails; an inference one fails only when the codes of a
 * threshold rule outgrow their buffers and memory runs out (SAE_ERR_NOMEM). */
int sae_model_forward(sae_model *m, const float *x, size_t B, const sae_step *st, sae_loss *out,
                      sae_error *err);
/* xhat - x of the last forward (B, D), in the model's (scaled) units. */
const float *sae_model_residual(const sae_model *m);
/* Codes only (no decode, no loss), by the inference rule. Fails only when the
 * codes view cannot grow (SAE_ERR_NOMEM). */
int sae_model_encode(sae_model *m, const float *x, size_t B, sae_error *err);
/* The codes view of the last forward or encode (main codes only, never AuxK). */
int sae_model_codes(sae_model *m, sae_codes *out, sae_error *err);
/* Writes dL/dparams of the last forward (a training one) into m->g, overwriting. */
void sae_model_backward(sae_model *m, const sae_step *st);
/* counts[j] += rows of the last forward in which latent j was active. */
void sae_model_count_active(const sae_model *m, uint32_t *counts);

/* Around the optimiser step: before it, e.g. removing from each decoder-row
 * gradient its component along the row (unit-norm decoders); after it,
 * renormalising rows, clamping thresholds, updating a running threshold. */
void sae_model_before_update(sae_model *m);
void sae_model_after_update(sae_model *m);

#endif
