/* cli/cmd_search.c: `sae search` (rank features for a question). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/fileutil.h"
#include "common/mem.h"
#include "common/gemm.h"
#include "data/h5.h"
#include "features/feat.h"
#include "sae/io.h"

static double elapsed(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

int cmd_search(int argc, char **argv) {
    const char *sae_path = NULL, *data = NULL, *token_re = NULL, *logit_re = NULL, *contrast = NULL;
    const char *features = NULL;
    int offset = 0, json = 0, threads = cli_default_threads();
    size_t top = 20, batch = 4096;
    cli_opt opts[] = {
        {"sae", CLI_STR, &sae_path, "SAE (.h5)", 0, NULL},
        {"data", CLI_STR, &data, "activation file (schema v1)", 0, NULL},
        {"token-regex", CLI_STR, &token_re, "features selective for positions whose token matches RE", 0, NULL},
        {"offset", CLI_INT, &offset, "with --token-regex: test the token K positions later (1 = predicts it)", 0, NULL},
        {"logit-regex", CLI_STR, &logit_re, "features whose decoder promotes tokens matching RE", 0, NULL},
        {"contrast", CLI_STR, &contrast, "A:B, features that differ between documents labelled A and B", 0, NULL},
        {"features", CLI_STR, &features, "features file, to show labels", 0, NULL},
        {"top", CLI_SIZE, &top, "rows to print", 0, NULL},
        {"json", CLI_TRUE, &json, "print a JSON array of rows, best first", 0, NULL},
        {"batch", CLI_SIZE, &batch, "rows per encoder sgemm", 0, NULL},
        {"threads", CLI_INT, &threads, "threads", 0, NULL},
    };
    size_t n_opts = sizeof opts / sizeof opts[0], n_pos;
    const char *pos[1];
    int help, rc = cli_parse(argc, argv, "search", opts, n_opts, pos, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        cli_usage(stdout, "search", "--sae S.h5 --data A.h5 (--token-regex RE [--offset K] | --logit-regex RE | --contrast A:B)",
                  "Ranks features: by AUROC (and precision/recall of firing) for positions whose\n"
                  "token matches RE; by how much their decoder promotes matching tokens; or by the\n"
                  "difference between two groups of documents, with variance ratios.",
                  opts, n_opts);
        return CLI_EXIT_OK;
    }
    int modes = (token_re != NULL) + (logit_re != NULL) + (contrast != NULL);
    if (!sae_path || !data || modes != 1) {
        cli_errorf("search", "needs --sae, --data and exactly one of --token-regex, --logit-regex, --contrast");
        return CLI_EXIT_USAGE;
    }
    feat_search_opts o = {.batch = batch, .offset = offset};
    char a_label[256] = "", b_label[256] = "";
    if (token_re) o.kind = FEAT_SEARCH_TOKEN, o.regex = token_re;
    if (logit_re) o.kind = FEAT_SEARCH_LOGIT, o.regex = logit_re;
    if (contrast) {
        const char *colon = strchr(contrast, ':');
        if (!colon || colon == contrast || !colon[1] || (size_t)(colon - contrast) >= sizeof a_label) {
            cli_errorf("--contrast", "expects A:B (two document labels), got '%s'", contrast);
            return CLI_EXIT_USAGE;
        }
        snprintf(a_label, sizeof a_label, "%.*s", (int)(colon - contrast), contrast);
        snprintf(b_label, sizeof b_label, "%s", colon + 1);
        o.kind = FEAT_SEARCH_CONTRAST, o.label_a = a_label, o.label_b = b_label;
    }
    if (batch == 0 || threads < 1) {
        cli_errorf("search", "--batch and --threads must be positive");
        return CLI_EXIT_USAGE;
    }
    sae_paths ps = {0};
    sae_paths_add(&ps, "--sae", sae_path, SAE_PATH_IN);
    sae_paths_add(&ps, "--data", data, SAE_PATH_IN);
    sae_paths_add(&ps, "--features", features, SAE_PATH_IN);
    if ((rc = cli_check_paths(&ps))) return rc;
    sae_set_threads(threads);
    sae_error err = {0};
    sae_model m;
    double scale;
    data_actfile *f = NULL;
    feat_dict *fd = NULL;
    if (sae_file_load(sae_path, &m, batch, &scale, &err) < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    rc = data_actfile_open(&f, data, &err);
    if (rc == SAE_OK && features) rc = feat_read(&fd, features, &err);
    if (rc == SAE_OK && fd && fd->M != m.cfg.m)
        rc = sae_error_set(&err, SAE_ERR_MISMATCH, features, "has %zu features but the SAE has %zu", fd->M, m.cfg.m);
    feat_search_result r = {0};
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (rc == SAE_OK) rc = feat_search(&r, &m, scale, f, &o, &err);
    double secs = elapsed(&t0);
    if (rc < 0) {
        cli_error(&err);
        feat_free(fd), data_actfile_close(f), sae_model_free(&m);
        return err.code == SAE_ERR_ARG ? CLI_EXIT_USAGE : CLI_EXIT_ERROR;
    }
    size_t n = top < r.n ? top : r.n;
    if (json) {
        printf("[");
        for (size_t i = 0; i < n; i++) {
            const feat_search_row *w = &r.rows[i];
            printf("%s\n {\"feature\": %zu", i ? "," : "", w->feature);
            if (fd) {
                printf(", \"label\": \"");
                for (const char *c = fd->label[w->feature]; *c; c++)
                    if (*c == '"' || *c == '\\') printf("\\%c", *c);
                    else if ((unsigned char)*c < 0x20) printf("\\u%04x", *c);
                    else putchar(*c);
                printf("\"");
            }
            if (o.kind == FEAT_SEARCH_LOGIT)
                printf(", \"logit_score\": %.6g", w->logit_score);
            else
                printf(", \"auroc\": %.6g, \"precision\": %.6g, \"recall\": %.6g, \"fires_pos\": %llu, "
                       "\"fires_neg\": %llu, \"n_pos\": %llu, \"n_neg\": %llu, \"mean_pos\": %.6g, "
                       "\"mean_neg\": %.6g, \"var_pos\": %.6g, \"var_neg\": %.6g, \"var_ratio\": %.6g, "
                       "\"var_ratio_all_features\": %.6g, \"var_ratio_resid\": %.6g",
                       w->auroc, w->precision, w->recall, (unsigned long long)w->fires_pos,
                       (unsigned long long)w->fires_neg, (unsigned long long)w->n_pos,
                       (unsigned long long)w->n_neg, w->mean_pos, w->mean_neg, w->var_pos, w->var_neg,
                       isfinite(w->var_ratio) ? w->var_ratio : -1.0, r.var_ratio_features, r.var_ratio_resid);
            printf("}");
        }
        printf("\n]\n");
    } else if (o.kind == FEAT_SEARCH_LOGIT) {
        printf("features whose decoder promotes tokens matching '%s' (%zu vocabulary entries)\n", o.regex,
               r.n_matching_tokens);
        printf("%4s %8s %10s  %s\n", "rank", "feature", "z-score", fd ? "label" : "");
        for (size_t i = 0; i < n; i++)
            printf("%4zu %8zu %10.3f  %s\n", i + 1, r.rows[i].feature, r.rows[i].logit_score,
                   fd ? fd->label[r.rows[i].feature] : "");
    } else if (o.kind == FEAT_SEARCH_TOKEN) {
        printf("features selective for positions whose token at offset %+d matches '%s' (%zu vocabulary "
               "entries): %llu of %llu positions, %.1f s\n",
               offset, o.regex, r.n_matching_tokens, (unsigned long long)r.n_pos,
               (unsigned long long)(r.n_pos + r.n_neg), secs);
        printf("%4s %8s %7s %9s %7s %9s  %s\n", "rank", "feature", "auroc", "precision", "recall", "fires", fd ? "label" : "");
        for (size_t i = 0; i < n; i++) {
            const feat_search_row *w = &r.rows[i];
            printf("%4zu %8zu %7.4f %9.4f %7.4f %9llu  %s\n", i + 1, w->feature, w->auroc, w->precision, w->recall,
                   (unsigned long long)(w->fires_pos + w->fires_neg), fd ? fd->label[w->feature] : "");
        }
    } else {
        printf("contrast %s (%llu positions) vs %s (%llu positions), %.1f s\n", a_label,
               (unsigned long long)r.n_pos, b_label, (unsigned long long)r.n_neg, secs);
        printf("variance ratio var(%s)/var(%s): %.3f over all SAE features, %.3f of the raw activations\n",
               a_label, b_label, r.var_ratio_features, r.var_ratio_resid);
        printf("%4s %8s %9s %9s %9s %7s %9s  %s\n", "rank", "feature", "mean A", "mean B", "diff", "auroc", "var A/B",
               fd ? "label" : "");
        for (size_t i = 0; i < n; i++) {
            const feat_search_row *w = &r.rows[i];
            printf("%4zu %8zu %9.4f %9.4f %9.4f %7.4f %9.3f  %s\n", i + 1, w->feature, w->mean_pos, w->mean_neg,
                   w->mean_pos - w->mean_neg, w->auroc, w->var_ratio, fd ? fd->label[w->feature] : "");
        }
    }
    feat_search_result_free(&r);
    feat_free(fd);
    data_actfile_close(f);
    sae_model_free(&m);
    return CLI_EXIT_OK;
}
