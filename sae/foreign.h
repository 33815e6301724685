/* sae/foreign.h: published SAEs read as our inference sae_model, detected by
 * content (sae_file_load dispatches here for anything that is not our HDF5):
 *   SAELens   a folder with cfg.json + sae_weights.safetensors (W_enc [d, M],
 *             b_enc, W_dec [M, d], b_dec, threshold for jumprelu);
 *             architectures standard -> relu, topk -> topk, jumprelu -> jumprelu
 *   sparsify  a folder with cfg.json + sae.safetensors (encoder.weight [M, d],
 *             encoder.bias, W_dec [M, d], b_dec; TopK with cfg k)
 *   Gemma Scope  params.npz (W_enc [d, M], W_dec, b_enc, b_dec, threshold;
 *             JumpReLU without b_dec subtracted from the input)
 * A folder, or any file inside it (e.g. its cfg.json), names the SAE. Each
 * format's conventions are folded into ours exactly (see foreign.c). */
#ifndef SAE_FOREIGN_H
#define SAE_FOREIGN_H

#include "common/err.h"
#include "sae/sae.h"

typedef enum sae_foreign_format {
    SAE_FMT_NATIVE = 0, /* our HDF5 SAE file (sae/io.h) */
    SAE_FMT_SAELENS,
    SAE_FMT_SPARSIFY,
    SAE_FMT_GEMMASCOPE,
} sae_foreign_format;

typedef struct sae_foreign_info {
    sae_foreign_format format;
    char weights[4200];     /* the tensor file read */
    char source_arch[64];   /* the format's own name: "standard", "jumprelu", "topk" */
    char model[256], hook[256]; /* from the config, "" when absent */
    int b_dec_folded;       /* b_dec was not subtracted from inputs: folded into b_enc */
    int rescaled_by_decoder_norm; /* SAELens topk rescale_acts_by_decoder_norm, folded */
    char weight_dtypes[64]; /* e.g. "BF16+F32" */
} sae_foreign_info;

const char *sae_foreign_format_name(sae_foreign_format f);
/* Which format path holds (SAE_FMT_NATIVE for anything not recognised, so
 * the HDF5 reader gives its own errors); never fails. */
sae_foreign_format sae_foreign_detect(const char *path);
/* Loads a foreign SAE (as sae_file_load does ours); info may be NULL. */
int sae_foreign_load(const char *path, sae_model *m, size_t capacity, double *input_scale,
                     sae_foreign_info *info, sae_error *err);

#endif
