/* sae/io.h: SAE files: the trained dictionary in HDF5.
 *
 * Layout (also the model part of a training checkpoint, see train/train.h):
 * the architecture's tensor list (sae_tensors), one float32 dataset each:
 *   /W_enc float32 [d, M]   encoder (x - b_dec) @ W_enc + b_enc
 *   /b_enc float32 [M]
 *   /W_dec float32 [M, d]   decoder rows = feature directions
 *   /b_dec float32 [d]
 *   /threshold float32 [M]  jumprelu: per-latent thresholds (learned)
 *              float32 [1]  batchtopk, matryoshka: the inference threshold
 *   /widths int64 [G]       matryoshka: nested dictionary sizes
 *   root attributes: format = "sae", format_version, arch, d_model, n_latents,
 *     k, aux_k, aux_coef, input_scale; where the architecture uses them
 *     threshold_lr, target_l0, bandwidth, threshold_init; plus the training
 *     run's hyperparameters (written by train/).
 *   provenance (root attributes, written by `sae train` since issue 12; files
 *     without them are older, and readers accept them): model, layer, hook
 *     (the site), tokenizer, copied from the activation file's root
 *     attributes, and the training data's identity: data (absolute path),
 *     data_n (rows), data_d (width), data_fingerprint (data/docs.h). Adding
 *     attributes does not change format_version: older readers ignore them.
 * format_version is the lowest version that describes the file: 1 for topk
 * and relu (unchanged since v1, so older readers still open them), 2 for the
 * architectures v2 added. Readers accept every version up to theirs.
 * The parameters act on scaled inputs: a raw activation x is encoded as
 * x * input_scale, and the reconstruction is divided by input_scale.
 *
 *     sae_model m; double scale;
 *     if (sae_file_load(path, &m, 4096, &scale, &err) < 0) fail(&err);
 */
#ifndef SAE_SAE_IO_H
#define SAE_SAE_IO_H

#include <stdint.h>

#include "common/err.h"
#include "sae/sae.h"

#define SAE_FILE_FORMAT_VERSION 2

/* Writes the four tensors and the config attributes into an open HDF5 file
 * or group (an hid_t). */
int sae_file_write_model(int64_t h5_loc, const sae_model *m, double input_scale, const char *path,
                         sae_error *err);
/* Reads the config attributes of an open SAE file (fails clearly when the file
 * is not an SAE, e.g. an activation file passed as --sae). */
int sae_file_read_config(int64_t h5_loc, sae_config *c, double *input_scale, const char *path,
                         sae_error *err);
/* Checks, before anything is allocated, that every tensor of config c is in the
 * file with exactly the shape c implies, that its storage holds it (an
 * unwritten dataset declaring gigabytes is refused), and that the tensors add
 * up to c's parameter count. */
int sae_file_check_tensors(int64_t h5_loc, const sae_config *c, const char *path, sae_error *err);
/* Reads the tensors into a model initialised with the file's config (checking
 * them as above); a NaN or Inf parameter is SAE_ERR_NONFINITE naming the tensor. */
int sae_file_read_params(int64_t h5_loc, sae_model *m, const char *path, sae_error *err);
/* Opens path, initialises m (inference only, workspace for `capacity` rows)
 * and loads it. */
int sae_file_load(const char *path, sae_model *m, size_t capacity, double *input_scale,
                  sae_error *err);
/* SAE_OK when dataset `name` of an open file stores the bytes its shape
 * declares (within deflate's reach when compressed), so a reader can size
 * buffers from its shape; an unwritten or truncated one is SAE_ERR_FORMAT. */
int sae_file_check_stored(int64_t h5_loc, const char *name, const char *path, sae_error *err);
/* The provenance attributes of an SAE file (see above); *present is 0 for a
 * file written before them (no data_n or model attribute). */
struct data_identity;
int sae_file_read_provenance(const char *path, struct data_identity *out, int *present, sae_error *err);
/* Opens an HDF5 file for reading with clear errors (missing, empty, not HDF5). */
int sae_file_open_h5(const char *path, int64_t *h5_out, sae_error *err);

#endif
