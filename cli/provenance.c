/* cli/provenance.c: does this data fit this SAE? One check shared by every
 * command that runs an SAE over an activation file (eval, features, viz,
 * search, show), and the loading of both that eval, features and search share. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "data/docs.h"
#include "common/gemm.h"
#include "data/llama.h"
#include "sae/io.h"
#include "sae/splice.h"

/* "jaen-6m/model.bin layer 3 resid_post" from what is known ("?" otherwise). */
static void describe_site(char *buf, size_t cap, const char *model, int64_t layer, const char *hook) {
    snprintf(buf, cap, "%s layer %lld %s", model[0] ? model : "?", (long long)layer, hook[0] ? hook : "?");
    if (layer < 0) snprintf(buf, cap, "%s layer ? %s", model[0] ? model : "?", hook[0] ? hook : "?");
}

int cli_check_provenance(const char *sae_path, size_t sae_d, const data_actfile *f) {
    if (f->d != sae_d) {
        cli_errorf(f->path, "the data has d=%zu but the SAE %s was trained on d=%zu: it cannot encode these rows",
                   f->d, sae_path, sae_d);
        return CLI_EXIT_ERROR;
    }
    data_identity was;
    int present = 0;
    sae_error err = {0};
    if (sae_file_read_provenance(sae_path, &was, &present, &err) < 0 || !present)
        return 0; /* an SAE from before provenance: nothing to compare */
    /* compare only what both files know */
    int model_differs = was.model[0] && f->model[0] && strcmp(was.model, f->model) != 0;
    int layer_differs = was.layer >= 0 && f->layer >= 0 && was.layer != f->layer;
    int hook_differs = was.hook[0] && f->hook[0] && strcmp(was.hook, f->hook) != 0;
    if (!model_differs && !layer_differs && !hook_differs) return 0;
    char a[512], b[512];
    describe_site(a, sizeof a, was.model, was.layer, was.hook);
    describe_site(b, sizeof b, f->model, f->layer, f->hook);
    cli_warn("%s was trained on activations of %s but %s holds %s (different %s%s%s): results are not "
             "meaningful for this SAE", sae_path, a, f->path, b, model_differs ? "model" : "",
             layer_differs ? (model_differs ? ", layer" : "layer") : "",
             hook_differs ? (model_differs || layer_differs ? ", site" : "site") : "");
    return 0;
}

int cli_open_sae_and_data(const char *sae_path, const char *data, size_t capacity, int precision, sae_model *m,
                          double *scale, data_actfile **f) {
    sae_error err = {0};
    *f = NULL;
    if (precision != SAE_PRECISION_F32 && sae_precision_check((sae_precision)precision, &err) < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    if (sae_file_load(sae_path, m, capacity, scale, &err) < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    int rc = SAE_OK;
    if (precision != SAE_PRECISION_F32) rc = sae_model_set_precision(m, (sae_precision)precision, &err);
    if (rc == SAE_OK) rc = data_actfile_open(f, data, &err);
    if (rc < 0) {
        cli_error(&err);
        sae_model_free(m);
        return CLI_EXIT_ERROR;
    }
    int exit_rc = cli_check_provenance(sae_path, m->cfg.d, *f);
    if (exit_rc) {
        data_actfile_close(*f), *f = NULL;
        sae_model_free(m);
    }
    return exit_rc;
}

int cli_open_sae_for_model(const char *sae_path, const data_llama *lm, const char *model_path,
                           size_t capacity, sae_model *m, double *scale, int *layer, int *site) {
    sae_error err = {0};
    data_identity was;
    int present = 0;
    if (sae_file_read_provenance(sae_path, &was, &present, &err) < 0) present = 0;
    int given_layer = *layer, given_site = *site;
    if (*layer < 0) {
        if (!present || was.layer < 0) {
            cli_errorf(sae_path, "the SAE does not record which layer it was trained on: give --layer");
            return CLI_EXIT_USAGE;
        }
        *layer = (int)was.layer;
    }
    if (*site < 0) {
        data_site s = DATA_SITE_RESID_POST;
        if (present && was.hook[0] && data_site_parse(was.hook, &s) != 0) {
            cli_errorf(sae_path, "the SAE was trained on site '%s', which this model's forward does not have: "
                       "give --site", was.hook);
            return CLI_EXIT_USAGE;
        }
        *site = (int)s;
    }
    if (*layer >= lm->c.n_layers) {
        cli_errorf("--layer", "layer %d is out of range: %s has %d blocks (0..%d)", *layer, model_path,
                   lm->c.n_layers, lm->c.n_layers - 1);
        return CLI_EXIT_USAGE;
    }
    if (sae_file_load(sae_path, m, capacity, scale, &err) < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    if (m->cfg.d != (size_t)lm->c.dim) {
        cli_errorf(sae_path, "the SAE has d=%zu but %s's %s has width %d: it was not trained on this model",
                   m->cfg.d, model_path, data_site_name((data_site)*site), lm->c.dim);
        sae_model_free(m);
        return CLI_EXIT_ERROR;
    }
    if (!present) return 0;
    const char *name = data_llama_short_name(model_path);
    int model_differs = was.model[0] && strcmp(was.model, name) != 0;
    int layer_differs = given_layer >= 0 && was.layer >= 0 && was.layer != given_layer;
    int site_differs = given_site >= 0 && was.hook[0] && strcmp(was.hook, data_site_name((data_site)*site)) != 0;
    if (model_differs || layer_differs || site_differs) {
        char a[512];
        describe_site(a, sizeof a, was.model, was.layer, was.hook);
        cli_warn("%s was trained on activations of %s, not %s layer %d %s: its reconstruction there is not "
                 "meaningful", sae_path, a, name, *layer, data_site_name((data_site)*site));
    }
    return 0;
}

int cli_parse_edits(const cli_strs *steer, const cli_strs *ablate, const cli_strs *clamp, size_t n_latents,
                    sae_edit *out, size_t *n_out) {
    const cli_strs *lists[3] = {steer, ablate, clamp};
    const sae_edit_kind kinds[3] = {SAE_EDIT_STEER, SAE_EDIT_ABLATE, SAE_EDIT_CLAMP};
    const char *flags[3] = {"--steer", "--ablate", "--clamp"};
    sae_error err = {0};
    size_t n = 0;
    for (int l = 0; l < 3; l++)
        for (size_t i = 0; lists[l] && i < lists[l]->n; i++)
            if (sae_edit_parse(lists[l]->v[i], kinds[l], n_latents, flags[l], &out[n++], &err) < 0) {
                cli_error(&err);
                return CLI_EXIT_USAGE;
            }
    if (sae_edits_check(out, n, &err) < 0) {
        cli_error(&err);
        return CLI_EXIT_USAGE;
    }
    *n_out = n;
    return 0;
}
