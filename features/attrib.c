/* features/attrib.c: --attribute-regex, each feature's direct contribution to
 * the logits of the tokens the model predicts (see feat.h). */
#include "features/feat_internal.h"

int feat__search_attribute(feat_search_result *out, sae_model *m, double input_scale, data_actfile *f,
                           const feat_search_opts *o, const uint8_t *universe, sae_error *err) {
    (void)out, (void)m, (void)input_scale, (void)o, (void)universe;
    return sae_error_set(err, SAE_ERR_UNSUPPORTED, f->path, "--attribute-regex is not implemented yet");
}
