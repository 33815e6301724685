/* features/neuronpedia.h: a features file as Neuronpedia's feature-upload
 * JSON, in the schema SAEDashboard's Neuronpedia runner writes (one file
 * batch-<i>.json per batch of features):
 *
 *   {"model_id", "layer", "sae_set", "features": [
 *     {"feature_index", "frac_nonzero",
 *      "freq_hist_data_bar_values", "freq_hist_data_bar_heights",
 *      "pos_str", "pos_values", "neg_str", "neg_values",
 *      "n_prompts_total", "n_tokens_in_prompt", "dataset",
 *      "activations": [{"bin_min", "bin_max", "bin_contains",
 *                       "tokens": [...], "values": [...]}], ...}]}
 *
 * What is filled from what (the rest is written empty, as SAEDashboard does
 * for what it did not compute): frac_nonzero = count / n_tokens; the
 * histogram is our log10 one (bar_values = the bins' geometric centres,
 * bar_heights = counts); pos/neg = the logit lens (promoted, suppressed
 * tokens as /vocab pieces, with their values); each top example is one
 * activation: the tokens of its whole capture window and the feature's value
 * at each of them, recomputed by encoding the window with the SAE (bin_min
 * -1, bin_max the feature's max, bin_contains -1, SAEDashboard's marks of its
 * "top activations" group); each quantile example likewise, as an interval
 * group (bin_min, bin_max = the edges of its histogram bin, bin_contains =
 * the fraction of firing positions in that bin). Not available here:
 * neuron alignment, correlated neurons/features, the logits histogram,
 * decoder weight distributions, DFA values.
 */
#ifndef SAE_FEATURES_NEURONPEDIA_H
#define SAE_FEATURES_NEURONPEDIA_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "data/actfile.h"
#include "features/feat.h"
#include "sae/sae.h"

typedef struct feat_np_opts {
    size_t per_batch;     /* features per JSON file */
    const char *model_id; /* "" when unknown */
    int64_t layer;        /* written as 0 when < 0 */
    const char *sae_set;
    const char *dataset;
} feat_np_opts;

/* Writes batch-0.json, batch-1.json, ... into the existing folder dir (each
 * through a temporary name). m encodes at inference (capacity >= 1 row);
 * f is the data fd's rows index, with /tokens and /vocab. */
int feat_export_neuronpedia(const feat_dict *fd, sae_model *m, double scale, data_actfile *f,
                            const feat_np_opts *o, const char *dir, sae_error *err);

#endif
