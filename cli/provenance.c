/* cli/provenance.c: does this data fit this SAE? One check shared by every
 * command that runs an SAE over an activation file (eval, features, viz,
 * search, show), and the loading of both that eval, features and search share. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "data/docs.h"
#include "common/gemm.h"
#include "sae/io.h"

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
