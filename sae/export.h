/* sae/export.h: writing an SAE file in SAELens's on-disk layout (issue 13).
 *
 * `SAE.load_from_disk(DIR)` (SAELens >= 6) reads, from one folder:
 *   cfg.json                 architecture ("standard", "topk", "jumprelu"),
 *                            d_in, d_sae, dtype, device, apply_b_dec_to_input,
 *                            normalize_activations, reshape_activations, k
 *                            and rescale_acts_by_decoder_norm (topk), and
 *                            metadata (sae_lens_version >= 6 selects the
 *                            current config parser; model_name, hook_name)
 *   sae_weights.safetensors  float32 W_enc [d_in, d_sae], b_enc [d_sae],
 *                            W_dec [d_sae, d_in], b_dec [d_in], and
 *                            threshold [d_sae] for jumprelu
 *   sparsity.safetensors     optional: "sparsity" [d_sae], log10 of each
 *                            latent's firing frequency
 * SAELens encodes raw activations x as
 *   pre = (x - b_dec) @ W_enc + b_enc     (apply_b_dec_to_input = true)
 *   standard: z = ReLU(pre); topk: the k largest of pre, then ReLU;
 *   jumprelu: z = ReLU(pre) * [pre > ReLU(threshold)]
 * and decodes xhat = z @ W_dec + b_dec.
 *
 * Ours acts on x * s (s = input_scale): with W the (D, M) encoder of the file,
 *   pre = (x s - b) W + c = (x - b/s) (s W) + c,
 *   xhat = (z V + b) / s = z (V / s) + b / s.
 * So W_enc' = s W, b_enc' = c, W_dec' = V / s, b_dec' = b / s give the same
 * pre-activations (hence the same codes z, thresholds unchanged) and the same
 * reconstruction in raw units; b_dec' is both the subtracted input bias and
 * the output bias, as SAELens requires. Architectures: relu -> standard, topk
 * -> topk (k), jumprelu -> jumprelu; batchtopk and matryoshka encode at
 * inference by one threshold theta, z = pre * [pre > max(theta, 0)], which is
 * jumprelu with threshold' = max(theta, 0) for every latent.
 *
 *     if (sae_export_saelens("sae.h5", "out/", NULL, 0, &err) < 0) fail(&err);
 */
#ifndef SAE_SAE_EXPORT_H
#define SAE_SAE_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "sae/sae.h"

/* The safetensors writer is sae_safetensors_write in sae/tensorfile.h, beside the reader. */

/* The SAELens tensors of a model acting on inputs scaled by `scale` (see
 * above): W_enc (D, M), b_enc (M), W_dec (M, D), b_dec (D) and, where the
 * architecture has one, threshold (M) (*has_threshold set). Buffers are the
 * caller's. */
void sae_export_fold(const sae_model *m, double scale, float *W_enc, float *b_enc, float *W_dec,
                     float *b_dec, float *threshold, int *has_threshold);

/* The SAELens architecture name our architecture exports as. */
const char *sae_export_saelens_arch(sae_arch a);

/* Exports the SAE file sae_path into the folder out_dir (which must not
 * exist, or be empty): the files are written into "<out_dir>.tmp.<pid>" and
 * that folder is renamed to out_dir once complete. log10_freq (M values, may
 * be NULL) adds sparsity.safetensors. */
int sae_export_saelens(const char *sae_path, const char *out_dir, const float *log10_freq, size_t n_freq,
                       sae_error *err);

#endif
