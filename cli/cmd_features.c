/* cli/cmd_features.c: `sae features` (build a feature dictionary) and
 * `sae show` (print one feature's card). */
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

typedef struct {
    int tty;
    struct timespec t0;
    double last;
} feat_progress;

static double elapsed(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

static void on_rows(uint64_t done, uint64_t total, void *user) {
    feat_progress *p = user;
    double el = elapsed(&p->t0);
    if (!p->tty || (done < total && el - p->last < 0.25)) return;
    p->last = el;
    double rate = el > 0 ? (double)done / el : 0;
    fprintf(stderr, "\rfeatures: %llu/%llu tokens  %.0f tok/s  ETA %.0fs\033[K%s",
            (unsigned long long)done, (unsigned long long)total, rate,
            rate > 0 ? (double)(total - done) / rate : 0.0, done == total ? "\n" : "");
}

int cmd_features(int argc, char **argv) {
    const char *sae_path = NULL, *data = NULL, *out = NULL, *json = NULL;
    feat_opts o = feat_default_opts();
    int threads = cli_default_threads(), precision = SAE_PRECISION_F32;
    cli_opt opts[] = {
        {"sae", CLI_STR, &sae_path, "SAE (.h5)", 0, NULL},
        {"data", CLI_STR, &data, "activation file (schema v1)", 0, NULL},
        {"out", CLI_STR, &out, "features file to write (.h5)", 0, NULL},
        {"top", CLI_SIZE, &o.top_n, "top activating examples kept per feature", 0, NULL},
        {"context", CLI_SIZE, &o.context, "tokens shown either side of an example by `sae show`", 0, NULL},
        {"json", CLI_STR, &json, "also write one JSON object per feature to this file", 0, NULL},
        {"batch", CLI_SIZE, &o.batch, "rows per encoder sgemm", 0, NULL},
        {"threads", CLI_INT, &threads, "threads", 0, NULL},
        {"precision", CLI_CHOICE, &precision, "encoder product: f32, or bf16 on CPUs with AVX512-BF16/AMX", 0, sae_precision_names},
    };
    size_t n_opts = sizeof opts / sizeof opts[0], n_pos;
    const char *pos[1];
    int help, rc = cli_parse(argc, argv, "features", opts, n_opts, pos, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        cli_usage(stdout, "features", "--sae S.h5 --data A.h5 --out F.h5 [options]",
                  "One streamed pass over the data: per feature its firing count, density, mean\n"
                  "and max activation, a log-scale histogram, top examples, examples at\n"
                  "activation quantiles, the tokens it fires on, a label, and its logit lens.",
                  opts, n_opts);
        return CLI_EXIT_OK;
    }
    if (!sae_path || !data || !out) {
        cli_errorf("features", "--sae, --data and --out are required (try 'sae features --help')");
        return CLI_EXIT_USAGE;
    }
    if (o.top_n == 0 || o.top_n > 100000 || o.batch == 0 || threads < 1) {
        cli_errorf("features", "--top must be in 1..100000, --batch and --threads positive");
        return CLI_EXIT_USAGE;
    }
    sae_paths ps = {0};
    sae_paths_add(&ps, "--sae", sae_path, SAE_PATH_IN);
    sae_paths_add(&ps, "--data", data, SAE_PATH_IN);
    sae_paths_add(&ps, "--out", out, SAE_PATH_OUT);
    sae_paths_add(&ps, "--json", json, SAE_PATH_OUT);
    if ((rc = cli_check_paths(&ps))) return rc;
    sae_set_threads(threads);
    sae_error err = {0};
    sae_model m;
    double scale;
    data_actfile *f = NULL;
    if (sae_precision_check((sae_precision)precision, &err) < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    if (sae_file_load(sae_path, &m, o.batch, &scale, &err) < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    if (sae_model_set_precision(&m, (sae_precision)precision, &err) < 0) {
        cli_error(&err);
        sae_model_free(&m);
        return CLI_EXIT_ERROR;
    }
    if (data_actfile_open(&f, data, &err) < 0) {
        cli_error(&err);
        sae_model_free(&m);
        return CLI_EXIT_ERROR;
    }
    if (f->d != m.cfg.d) {
        cli_errorf(data, "the data has d=%zu but the SAE %s was trained on d=%zu", f->d, sae_path, m.cfg.d);
        data_actfile_close(f);
        sae_model_free(&m);
        return CLI_EXIT_ERROR;
    }
    if (!f->has_tokens || !f->vocab_size)
        cli_warn("%s has no %s: features get statistics and examples but no labels or top tokens "
                 "(`sae capture` writes both)", data, !f->has_tokens ? "/tokens" : "/vocab");
    feat_progress pr = {.tty = isatty(STDERR_FILENO)};
    clock_gettime(CLOCK_MONOTONIC, &pr.t0);
    feat_dict *fd = NULL;
    rc = feat_build(&fd, &m, scale, f, &o, on_rows, &pr, &err);
    double secs = elapsed(&pr.t0);
    if (rc == SAE_OK) {
        snprintf(fd->sae_path, sizeof fd->sae_path, "%s", sae_path);
        rc = feat_write(fd, out, &err);
    }
    if (rc == SAE_OK && json) rc = feat_write_json(fd, json, &err);
    if (rc == SAE_OK) {
        size_t alive = 0;
        for (size_t j = 0; j < fd->M; j++) alive += fd->count[j] > 0;
        if (fd->n_skipped) cli_warn("%s: skipped %llu rows holding NaN or Inf", data, (unsigned long long)fd->n_skipped);
        fprintf(stderr, "sae features: %llu tokens in %.1f s (%.0f tokens/s); %zu of %zu features fired; wrote %s%s%s\n",
                (unsigned long long)fd->n_tokens, secs, secs > 0 ? (double)fd->n_tokens / secs : 0.0, alive,
                fd->M, out, json ? " and " : "", json ? json : "");
    } else {
        cli_error(&err);
    }
    feat_free(fd);
    data_actfile_close(f);
    sae_model_free(&m);
    return rc < 0 ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}

/* --- sae show ------------------------------------------------------------- */

/* Appends a vocabulary string, turning "<0xXX>" byte pieces back into bytes so
 * Japanese characters split by byte fallback print whole. */
static void append_piece(char *buf, size_t cap, size_t *o, const char *piece) {
    unsigned b;
    if (strlen(piece) == 6 && sscanf(piece, "<0x%02X>", &b) == 1) {
        if (*o + 1 < cap) buf[(*o)++] = (char)b;
    } else {
        size_t n = strlen(piece);
        if (*o + n < cap) memcpy(buf + *o, piece, n), *o += n;
    }
    buf[*o] = 0;
}

typedef struct {
    data_actfile *f;
    int64_t *off;
    char **vocab;
} show_data;

static void print_example(const show_data *sd, int64_t row, float value, size_t context, int color) {
    if (row < 0) return;
    printf("    %8.3f  row %lld", value, (long long)row);
    if (!sd->f || !sd->f->has_tokens || !sd->vocab || (uint64_t)row >= sd->f->n) {
        printf("\n");
        return;
    }
    size_t lo = 0, hi = sd->f->n; /* document bounds */
    if (sd->off) {
        size_t a = 0, b = sd->f->n_docs;
        while (a + 1 < b) {
            size_t mid = (a + b) / 2;
            if (sd->off[mid] <= row) a = mid;
            else b = mid;
        }
        lo = (size_t)sd->off[a], hi = (size_t)sd->off[a + 1];
        printf("  doc %zu pos %lld", a, (long long)(row - sd->off[a]));
    }
    size_t r = (size_t)row, s = r >= lo + context ? r - context : lo, e = r + context + 1 < hi ? r + context + 1 : hi;
    int32_t tok[1024];
    sae_error err = {0};
    if (e - s > 1024 || data_actfile_read_tokens(sd->f, s, e - s, tok, &err) < 0) {
        printf("\n");
        return;
    }
    char text[8192];
    size_t o = 0;
    text[0] = 0;
    for (size_t i = s; i < e; i++) {
        const char *piece = sd->vocab[tok[i - s]];
        if (i == r) append_piece(text, sizeof text, &o, color ? "\033[1;30;43m" : "[");
        if (strcmp(piece, "\\n") == 0) piece = "⏎";
        append_piece(text, sizeof text, &o, piece);
        if (i == r) append_piece(text, sizeof text, &o, color ? "\033[0m" : "]");
    }
    printf("  %s%s%s\n", s > lo ? "…" : "", text, e < hi ? "…" : "");
}

static void print_tokens(const feat_dict *fd, const char *title, const int32_t *ids, const void *vals,
                         int is_f32, size_t n) {
    printf("  %-12s", title);
    for (size_t i = 0; i < n && ids[i] >= 0; i++) {
        const char *t = fd->vocab ? fd->vocab[ids[i]] : "?";
        if (is_f32) printf("  %s (%.2f)", t, (double)((const float *)vals)[i]);
        else printf("  %s ×%lld", t, (long long)((const int64_t *)vals)[i]);
    }
    printf("\n");
}

int cmd_show(int argc, char **argv) {
    const char *data = NULL;
    size_t feature = (size_t)-1, examples = 10;
    int color_mode = 0;
    static const char *const COLOR[] = {"auto", "always", "never", NULL};
    cli_opt opts[] = {
        {"feature", CLI_SIZE, &feature, "feature id", 0, NULL},
        {"data", CLI_STR, &data, "activation file for example contexts (default: the one the features came from)", 0, NULL},
        {"examples", CLI_SIZE, &examples, "top examples to print", 0, NULL},
        {"color", CLI_CHOICE, &color_mode, "highlight the activating token", 0, COLOR},
    };
    size_t n_opts = sizeof opts / sizeof opts[0], n_pos;
    const char *pos[1];
    int help, rc = cli_parse(argc, argv, "show", opts, n_opts, pos, 1, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        cli_usage(stdout, "show", "F.h5 --feature N [options]",
                  "Prints a feature's card: statistics, label, top tokens, logit lens, and its\n"
                  "top and quantile examples in context with the activating token highlighted.",
                  opts, n_opts);
        return CLI_EXIT_OK;
    }
    if (n_pos != 1 || feature == (size_t)-1) {
        cli_errorf("show", "expects a features file and --feature N (try 'sae show --help')");
        return CLI_EXIT_USAGE;
    }
    sae_paths ps = {0};
    sae_paths_add(&ps, "FILE", pos[0], SAE_PATH_IN);
    sae_paths_add(&ps, "--data", data, SAE_PATH_IN);
    if ((rc = cli_check_paths(&ps))) return rc;
    sae_error err = {0};
    feat_dict *fd;
    if (feat_read(&fd, pos[0], &err) < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    if (feature >= fd->M) {
        cli_errorf("--feature", "%zu is out of range: %s has %zu features (0..%zu)", feature, pos[0],
                   fd->M, fd->M - 1);
        feat_free(fd);
        return CLI_EXIT_USAGE;
    }
    show_data sd = {0};
    const char *dpath = data ? data : fd->data_path;
    if (dpath[0] && data_actfile_open(&sd.f, dpath, &err) < 0) {
        if (data) {
            cli_error(&err);
            feat_free(fd);
            return CLI_EXIT_ERROR;
        }
        cli_warn("%s: %s; examples shown without context (pass --data)", err.subject, err.msg);
        sd.f = NULL;
    }
    if (sd.f && sd.f->n_docs) {
        sd.off = sae_malloc((sd.f->n_docs + 1) * sizeof *sd.off);
        if (!sd.off || data_actfile_read_doc_offsets(sd.f, sd.off, &err) < 0) sae_free(sd.off), sd.off = NULL;
    }
    if (sd.f && sd.f->vocab_size && data_actfile_read_vocab(sd.f, &sd.vocab, &err) < 0) sd.vocab = NULL;
    int color = color_mode == 1 || (color_mode == 0 && isatty(STDOUT_FILENO));
    size_t j = feature, T = FEAT_TOP_TOKENS, L = FEAT_LENS, N = fd->top_n;
    printf("feature %zu  %s\n", j, fd->label[j] && fd->label[j][0] ? fd->label[j] : "(no label)");
    printf("  fires on %llu of %llu tokens (density %.4f%%), mean %.3f, max %.3f\n",
           (unsigned long long)fd->count[j], (unsigned long long)fd->n_tokens,
           fd->n_tokens ? 100.0 * (double)fd->count[j] / (double)fd->n_tokens : 0.0, fd->mean[j], fd->max[j]);
    static const char *const BARS[] = {" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
    uint64_t hmax = 0;
    int first = FEAT_HIST_BINS, last = -1;
    for (int b = 0; b < FEAT_HIST_BINS; b++)
        if (fd->hist[j * FEAT_HIST_BINS + b]) {
            hmax = fd->hist[j * FEAT_HIST_BINS + b] > hmax ? fd->hist[j * FEAT_HIST_BINS + b] : hmax;
            first = b < first ? b : first, last = b;
        }
    if (last >= 0) {
        double w = (FEAT_HIST_LOG10_MAX - FEAT_HIST_LOG10_MIN) / FEAT_HIST_BINS;
        printf("  histogram   %.3g ", pow(10, FEAT_HIST_LOG10_MIN + first * w));
        for (int b = first; b <= last; b++)
            printf("%s", BARS[(int)ceil(8.0 * (double)fd->hist[j * FEAT_HIST_BINS + b] / (double)hmax)]);
        printf(" %.3g (log scale)\n", pow(10, FEAT_HIST_LOG10_MIN + (last + 1) * w));
    }
    if (fd->vocab) {
        print_tokens(fd, "top tokens", fd->tok_count_id + j * T, fd->tok_count + j * T, 0, T);
        print_tokens(fd, "by mean act", fd->tok_mean_id + j * T, fd->tok_mean + j * T, 1, T);
    }
    if (fd->has_lens && fd->vocab) {
        print_tokens(fd, "promotes", fd->lens_up_id + j * L, fd->lens_up + j * L, 1, L);
        print_tokens(fd, "suppresses", fd->lens_down_id + j * L, fd->lens_down + j * L, 1, L);
    }
    printf("  top examples\n");
    for (size_t i = 0; i < examples && i < N; i++)
        print_example(&sd, fd->top_row[j * N + i], fd->top_val[j * N + i], fd->context, color);
    printf("  examples at activation quantiles 0.1 0.3 0.5 0.7 0.9\n");
    for (int q = 0; q < FEAT_QUANTILES; q++)
        print_example(&sd, fd->q_row[j * FEAT_QUANTILES + q], fd->q_val[j * FEAT_QUANTILES + q], fd->context, color);
    if (sd.vocab) data_h5_free_strings(sd.vocab, sd.f->vocab_size);
    sae_free(sd.off);
    data_actfile_close(sd.f);
    feat_free(fd);
    return CLI_EXIT_OK;
}

/* --- sae search ------------------------------------------------------------ */
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
