/* cli/cmd_synth.c: `sae synth`, synthetic activation files (data/synth.h). */
#include <string.h>

#include "cli/cli.h"
#include "data/actfile.h"
#include "data/synth.h"
#include "common/fileutil.h"
#include "common/gemm.h"


int cmd_synth(int argc, char **argv) {
    data_synth_params p = data_synth_default_params();
    const char *out = NULL;
    int dtype = 0, threads = cli_default_threads();
    cli_opt opts[] = {
        {"out", CLI_STR, &out, "output activation file (.h5)", 0, NULL},
        {"n", CLI_SIZE, &p.n, "rows (tokens)", 0, NULL},
        {"d", CLI_SIZE, &p.d, "width d_model", 0, NULL},
        {"features", CLI_SIZE, &p.features, "planted features F", 0, NULL},
        {"active", CLI_DOUBLE, &p.active, "mean active features per row", 0, NULL},
        {"seed", CLI_U64, &p.seed, "random seed", 0, NULL},
        {"alpha", CLI_DOUBLE, &p.alpha, "power-law exponent of feature frequencies", 0, NULL},
        {"noise", CLI_DOUBLE, &p.noise, "Gaussian noise std per coordinate", 0, NULL},
        {"token-noise", CLI_DOUBLE, &p.token_noise, "probability a row's token is random", 0, NULL},
        {"doc-len", CLI_SIZE, &p.doc_len, "rows per document", 0, NULL},
        {"dtype", CLI_CHOICE, &dtype, "storage type of /activations", 0, data_dtype_names},
        {"heldout", CLI_TRUE, &p.heldout, "fresh rows from the same dictionary (evaluation split)", 0, NULL},
        {"threads", CLI_INT, &threads, "threads", 0, NULL},
    };
    size_t n_opts = sizeof opts / sizeof opts[0], n_pos;
    const char *pos[1];
    int help;
    int rc = cli_parse(argc, argv, "synth", opts, n_opts, pos, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        cli_usage(stdout, "synth", "--out F.h5 [options]",
                  "Writes a schema-v1 activation file whose rows are sparse combinations of a\n"
                  "planted dictionary (/truth/features), with tokens tied to the features.",
                  opts, n_opts);
        return CLI_EXIT_OK;
    }
    if (!out) {
        cli_errorf("synth", "--out is required");
        return CLI_EXIT_USAGE;
    }
    if (!(p.noise >= 0) || !(p.token_noise >= 0 && p.token_noise <= 1) || !(p.alpha >= 0)) {
        cli_errorf("synth", "--noise and --alpha must be >= 0, --token-noise in [0, 1]");
        return CLI_EXIT_USAGE;
    }
    sae_paths ps = {0};
    sae_paths_add(&ps, "--out", out, SAE_PATH_OUT);
    if ((rc = cli_check_paths(&ps))) return rc;
    p.float16 = dtype == 1;
    sae_set_threads(threads);
    sae_error err = {0};
    if (data_synth_write(out, &p, &err) < 0) {
        cli_error(&err);
        return err.code == SAE_ERR_ARG ? CLI_EXIT_USAGE : CLI_EXIT_ERROR;
    }
    fprintf(stderr, "sae synth: wrote %s (%zu rows x d=%zu, %zu planted features, %s)\n", out, p.n,
            p.d, p.features, data_dtype_names[dtype]);
    return CLI_EXIT_OK;
}
