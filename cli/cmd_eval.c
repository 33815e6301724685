/* cli/cmd_eval.c: `sae eval`, one JSON object on stdout. */
#include <math.h>
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/mem.h"
#include "common/gemm.h"
#include "data/llama.h"
#include "data/tokenizer.h"
#include "sae/io.h"
#include "sae/splice.h"
#include "train/splice_eval.h"
#include "train/train.h"

typedef struct model_opts {
    const char *model, *tokenizer, *corpus;
    int layer, site, by_label, replace_error;
    size_t seq_len;
    cli_strs steer, ablate, clamp;
} model_opts;


static cJSON *scores_json(const train_splice_scores *s, int edited) {
    cJSON *j = cJSON_CreateObject();
    cli_json_num(j, "ce_clean", s->ce_clean);
    cli_json_num(j, "ce_sae", s->ce_sae);
    cli_json_num(j, "ce_zero", s->ce_zero);
    cli_json_num(j, "ce_score", s->ce_score);
    cli_json_num(j, "kl_sae", s->kl_sae);
    cli_json_num(j, "kl_zero", s->kl_zero);
    cli_json_num(j, "kl_score", s->kl_score);
    if (edited) {
        cli_json_num(j, "ce_edit", s->ce_edit);
        cli_json_num(j, "ce_edit_delta", s->ce_edit - s->ce_clean);
        cli_json_num(j, "kl_edit", s->kl_edit);
    }
    cli_json_num(j, "fvu", s->fvu);
    cli_json_num(j, "mse", s->mse);
    cli_json_num(j, "l0", s->l0);
    cJSON_AddNumberToObject(j, "tokens", (double)s->tokens);
    cJSON_AddNumberToObject(j, "windows", (double)s->windows);
    return j;
}

static void on_progress(uint64_t tokens, uint64_t done, uint64_t total, void *user) {
    (void)user;
    if (total) fprintf(stderr, "\reval: %llu tokens scored, %.0f%%\033[K", (unsigned long long)tokens,
                       100.0 * (double)done / (double)total);
}

/* sae eval --model: the SAE spliced into the model over a corpus */
static int eval_model(const char *sae_path, model_opts *o, uint64_t tokens, size_t batch) {
    sae_paths ps = {0};
    sae_paths_add(&ps, "--sae", sae_path, SAE_PATH_IN_DIR);
    sae_paths_add(&ps, "--model", o->model, SAE_PATH_IN);
    sae_paths_add(&ps, "--tokenizer", o->tokenizer, SAE_PATH_IN);
    sae_paths_add(&ps, "--corpus", o->corpus, SAE_PATH_IN);
    int rc = cli_check_paths(&ps);
    if (rc) return rc;
    data_llama *lm = NULL;
    data_tokenizer *t = NULL;
    if ((rc = cli_load_model(o->model, o->tokenizer, &lm, &t))) return rc;
    train_splice_params p = {.corpus_path = o->corpus, .seq_len = o->seq_len, .batch_rows = batch,
                             .max_tokens = tokens, .replace_error = o->replace_error, .by_label = o->by_label};
    sae_model m;
    double scale;
    int layer = o->layer, site = o->site;
    rc = cli_open_sae_for_model(sae_path, lm, o->model, train_splice_capacity(lm, &p), &m, &scale, &layer, &site);
    if (rc) {
        data_llama_free(lm), data_tokenizer_free(t);
        return rc;
    }
    sae_edit edits[3 * CLI_STRS_MAX];
    size_t n_edits = 0;
    rc = cli_parse_edits(&o->steer, &o->ablate, &o->clamp, m.cfg.m, edits, &n_edits);
    p.layer = layer, p.site = (data_site)site, p.edits = edits, p.n_edits = n_edits;
    train_splice_result r;
    sae_error err = {0};
    int tty = isatty(STDERR_FILENO);
    if (!rc && train_splice_eval(lm, t, &m, scale, &p, tty ? on_progress : NULL, NULL, &r, &err) < 0) {
        if (tty) fputc('\n', stderr);
        cli_error(&err);
        rc = err.code == SAE_ERR_ARG ? CLI_EXIT_USAGE : CLI_EXIT_ERROR;
    } else if (!rc) {
        if (tty) fputs("\r\033[K", stderr);
        if (!isfinite(r.all.ce_score))
            cli_warn("ce_score is undefined: zeroing %s of block %d does not raise the loss", data_site_name(p.site),
                     p.layer);
        cJSON *j = scores_json(&r.all, n_edits > 0);
        cJSON_AddNumberToObject(j, "layer", p.layer);
        cJSON_AddStringToObject(j, "site", data_site_name(p.site));
        cJSON_AddBoolToObject(j, "replace_error", p.replace_error);
        if (n_edits) {
            char desc[1024];
            sae_edits_describe(edits, n_edits, desc, sizeof desc);
            cJSON_AddStringToObject(j, "edits", desc);
        }
        if (p.by_label) {
            cJSON *bl = cJSON_AddObjectToObject(j, "by_label");
            for (size_t g = 0; g < r.n_labels; g++)
                cJSON_AddItemToObject(bl, r.labels[g][0] ? r.labels[g] : "(none)", scores_json(&r.by_label[g], n_edits > 0));
        }
        char *s = cJSON_PrintUnformatted(j);
        printf("%s\n", s);
        sae_free(s);
        cJSON_Delete(j);
        train_splice_result_free(&r);
    }
    sae_model_free(&m);
    data_llama_free(lm), data_tokenizer_free(t);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    const char *sae_path = NULL, *data = NULL;
    uint64_t tokens = 0;
    size_t batch = 0; /* by mode, below */
    int threads = cli_default_threads();
    model_opts mo = {.layer = -1, .site = -1};
    cli_opt opts[] = {
        {"sae", CLI_STR, &sae_path, "SAE checkpoint (.h5)", 0, NULL},
        {"data", CLI_STR, &data, "activation file (schema v1)", 0, NULL},
        {"tokens", CLI_U64, &tokens, "evaluate the first T rows (--model: whole windows until T tokens are scored; 0 = all)", 0, NULL},
        {"batch", CLI_SIZE, &batch, "rows per forward pass (0: 4096 rows with --data, 2048 tokens with --model, whose logits take 2 x batch x V floats)", 0, NULL},
        {"threads", CLI_INT, &threads, "threads", 0, NULL},
        {"model", CLI_STR, &mo.model, "llama2.c model: score the SAE spliced into it (with --tokenizer, --corpus)", 0, NULL},
        {"tokenizer", CLI_STR, &mo.tokenizer, "its tokenizer.bin (--model)", 0, NULL},
        {"corpus", CLI_STR, &mo.corpus, "text to run the model on, as sae capture reads it (--model)", 0, NULL},
        {"layer", CLI_INT, &mo.layer, "the SAE's block (--model; default: the SAE's provenance)", 0, NULL},
        {"site", CLI_CHOICE, &mo.site, "the SAE's site (--model; default: its provenance, else resid_post)", 0, data_site_names},
        {"seq-len", CLI_SIZE, &mo.seq_len, "tokens per window with BOS (--model; 0 = the model's)", 0, NULL},
        {"by-label", CLI_TRUE, &mo.by_label, "also every figure per document label (--model)", 0, NULL},
        {"replace-error", CLI_TRUE, &mo.replace_error, "splice xhat + (x - xhat): a check that ce_sae = ce_clean (--model)", 0, NULL},
        {"ablate", CLI_STRS, &mo.ablate, "F: also a run with feature F's contribution removed (--model; repeatable)", 0, NULL},
        {"steer", CLI_STRS, &mo.steer, "F:A: ... with A x feature F's direction added (--model)", 0, NULL},
        {"clamp", CLI_STRS, &mo.clamp, "F:V: ... with feature F's code set to V (--model)", 0, NULL},
    };
    size_t n_opts = sizeof opts / sizeof opts[0], n_pos;
    const char *pos[1];
    int help;
    int rc = cli_parse(argc, argv, "eval", opts, n_opts, pos, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        cli_usage(stdout, "eval", "--sae S.h5 (--data A.h5 | --model M.bin --tokenizer T.bin --corpus C) [options]",
                  "With --model: runs the model over the corpus (the windows of sae capture) with\n"
                  "the SAE's site clean, replaced by the SAE's reconstruction, and zeroed, and\n"
                  "prints ce_clean, ce_sae, ce_zero (mean next-token cross-entropy, nats),\n"
                  "ce_score = (ce_zero - ce_sae) / (ce_zero - ce_clean), kl_sae, kl_zero (mean\n"
                  "KL(p_clean || p) per token), kl_score = (kl_zero - kl_sae) / kl_zero, and fvu,\n"
                  "mse, l0 on the same activations. BOS is never spliced, and the prediction\n"
                  "made at BOS is left out of every mean. --ablate/--steer/--clamp add a run\n"
                  "with those edits (the SAE's error kept): ce_edit, ce_edit_delta, kl_edit.\n\n"
                  "With --data: one JSON object: fvu (sum of squared error / sum of squared deviation\n"
                  "from the mean), mse, l0, dead_frac (latents that never fired), tokens; with\n"
                  "/truth/features in the data also mmcs and recovered (best cosine > 0.9).\n"
                  "SAEBench core metrics: explained_variance, cossim, l2_ratio,\n"
                  "rel_reconstruction_bias, frac_alive, freq_over_1pct, freq_over_10pct\n"
                  "(SAEBench's relative_reconstruction_bias, freq_over_1_percent, ...); with the\n"
                  "truth also mcc (mean |cos| of the one-to-one best matching).",
                  opts, n_opts);
        return CLI_EXIT_OK;
    }
    if (data && mo.model) {
        cli_errorf("eval", "give --data (score the SAE on activations) or --model (score it inside the model), "
                   "not both");
        return CLI_EXIT_USAGE;
    }
    if (!sae_path || (!data && !mo.model)) {
        cli_errorf("eval", "--sae and one of --data or --model are required (try 'sae eval --help')");
        return CLI_EXIT_USAGE;
    }
    if (threads < 1) {
        cli_errorf("eval", "--threads must be positive");
        return CLI_EXIT_USAGE;
    }
    int model_only = mo.tokenizer || mo.corpus || mo.layer != -1 || mo.site != -1 || mo.seq_len || mo.by_label ||
                     mo.replace_error || mo.ablate.n || mo.steer.n || mo.clamp.n;
    if (data && model_only) {
        cli_errorf("eval", "--tokenizer, --corpus, --layer, --site, --seq-len, --by-label, --replace-error, "
                   "--ablate, --steer and --clamp go with --model, not --data");
        return CLI_EXIT_USAGE;
    }
    if (mo.model && (!mo.tokenizer || !mo.corpus)) {
        cli_errorf("eval", "--model needs --tokenizer and --corpus");
        return CLI_EXIT_USAGE;
    }
    if (mo.model) {
        sae_set_threads(threads);
        return eval_model(sae_path, &mo, tokens, batch ? batch : 2048);
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
    if (!batch) batch = 4096;
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
