/* cli/cmd_eval.c: `sae eval`, one JSON object on stdout. */
#include <math.h>
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "common/mem.h"
#include "common/gemm.h"
#include "sae/io.h"
#include "train/train.h"

int cmd_eval(int argc, char **argv) {
    const char *sae_path = NULL, *data = NULL;
    uint64_t tokens = 0;
    size_t batch = 4096;
    int threads = cli_default_threads();
    cli_opt opts[] = {
        {"sae", CLI_STR, &sae_path, "SAE checkpoint (.h5)", 0, NULL},
        {"data", CLI_STR, &data, "activation file (schema v1)", 0, NULL},
        {"tokens", CLI_U64, &tokens, "evaluate the first T rows (0 = all)", 0, NULL},
        {"batch", CLI_SIZE, &batch, "rows per forward pass", 0, NULL},
        {"threads", CLI_INT, &threads, "threads", 0, NULL},
    };
    size_t n_opts = sizeof opts / sizeof opts[0], n_pos;
    const char *pos[1];
    int help;
    int rc = cli_parse(argc, argv, "eval", opts, n_opts, pos, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        cli_usage(stdout, "eval", "--sae S.h5 --data A.h5 [options]",
                  "Prints one JSON object: fvu (sum of squared error / sum of squared deviation\n"
                  "from the mean), mse, l0, dead_frac (latents that never fired), tokens; with\n"
                  "/truth/features in the data also mmcs and recovered (best cosine > 0.9).\n"
                  "SAEBench core metrics: explained_variance, cossim, l2_ratio,\n"
                  "rel_reconstruction_bias, frac_alive, freq_over_1pct, freq_over_10pct\n"
                  "(SAEBench's relative_reconstruction_bias, freq_over_1_percent, ...); with the\n"
                  "truth also mcc (mean |cos| of the one-to-one best matching).",
                  opts, n_opts);
        return CLI_EXIT_OK;
    }
    if (!sae_path || !data) {
        cli_errorf("eval", "--sae and --data are required (try 'sae eval --help')");
        return CLI_EXIT_USAGE;
    }
    if (batch == 0 || threads < 1) {
        cli_errorf("eval", "--batch and --threads must be positive");
        return CLI_EXIT_USAGE;
    }
    sae_paths ps = {0};
    sae_paths_add(&ps, "--sae", sae_path, SAE_PATH_IN_DIR);
    sae_paths_add(&ps, "--data", data, SAE_PATH_IN);
    if ((rc = cli_check_paths(&ps))) return rc;
    sae_set_threads(threads);
    sae_error err = {0};
    sae_model m;
    double scale;
    data_actfile *f = NULL;
    if ((rc = cli_open_sae_and_data(sae_path, data, batch, SAE_PRECISION_F32, &m, &scale, &f))) return rc;
    train_eval_result r;
    rc = train_eval(&m, scale, f, tokens, &r, &err);
    data_actfile_close(f);
    sae_model_free(&m);
    if (rc < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    if (r.skipped) cli_warn("%s: skipped %llu rows holding NaN or Inf", data, (unsigned long long)r.skipped);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "fvu", r.fvu);
    cJSON_AddNumberToObject(j, "mse", r.mse);
    cJSON_AddNumberToObject(j, "l0", r.l0);
    cJSON_AddNumberToObject(j, "dead_frac", r.dead_frac);
    cJSON_AddNumberToObject(j, "tokens", (double)r.tokens);
    if (r.has_core_metrics) { /* SAEBench core's names (train/metrics.c) */
        cJSON_AddNumberToObject(j, "explained_variance", r.explained_variance);
        cJSON_AddNumberToObject(j, "cossim", r.cossim);
        cJSON_AddNumberToObject(j, "l2_ratio", r.l2_ratio);
        cJSON_AddNumberToObject(j, "rel_reconstruction_bias", r.relative_reconstruction_bias);
        cJSON_AddNumberToObject(j, "frac_alive", r.frac_alive);
        cJSON_AddNumberToObject(j, "freq_over_1pct", r.freq_over_1_percent);
        cJSON_AddNumberToObject(j, "freq_over_10pct", r.freq_over_10_percent);
    }
    if (r.has_truth) {
        cJSON_AddNumberToObject(j, "mmcs", r.mmcs);
        if (r.has_core_metrics) cJSON_AddNumberToObject(j, "mcc", r.mcc);
        cJSON_AddNumberToObject(j, "recovered", r.recovered_09);
        cJSON_AddNumberToObject(j, "recovered_threshold", 0.9);
        cJSON_AddNumberToObject(j, "n_truth", (double)r.n_truth);
    }
    /* train_eval refuses undefined metrics with their cause; this keeps a
     * null (cJSON's rendering of NaN) out of the output whatever is added */
    for (cJSON *it = j->child; it; it = it->next)
        if (cJSON_IsNumber(it) && !isfinite(it->valuedouble)) {
            cli_errorf(sae_path, "metric %s is not finite on %s", it->string, data);
            cJSON_Delete(j);
            return CLI_EXIT_ERROR;
        }
    char *s = cJSON_PrintUnformatted(j);
    printf("%s\n", s);
    sae_free(s);
    cJSON_Delete(j);
    return CLI_EXIT_OK;
}
