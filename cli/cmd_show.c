/* cli/cmd_show.c: `sae show` (print one feature's card, as text or JSON, or
 * the feature over one corpus document). */
#include <cjson/cJSON.h>
#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/fileutil.h"
#include "common/mem.h"
#include "data/docs.h"
#include "data/h5.h"
#include "features/feat.h"
#include "sae/io.h"

/* The data the features' rows index: the file, its windows and documents. */
typedef struct {
    data_actfile *f;
    data_docs docs;
    int has_docs;
    char **vocab;
} show_data;

static const char *piece(const show_data *sd, int32_t id) {
    return id >= 0 && (size_t)id < sd->f->vocab_size && sd->vocab[id] ? sd->vocab[id] : "<?>";
}

/* Token ids [a, b) of tok (relative to s) as text. */
static void ids_text(const show_data *sd, const int32_t *ids, size_t n, const char *newline, char *buf, size_t cap) {
    data_vocab_text(buf, cap, (const char *const *)sd->vocab, sd->f->vocab_size, ids, n, newline);
}

/* --- an example: where it is, and its context --------------------------------- */
typedef struct {
    int64_t row;
    float value;
    int located; /* the data is open: at holds its place (and text) */
    data_example at;
} example;

static void locate(const show_data *sd, int64_t row, float value, size_t context, const char *newline, example *ex) {
    ex->row = row, ex->value = value, ex->located = 0;
    if (row < 0 || !sd->f || !sd->has_docs || (uint64_t)row >= sd->f->n) return;
    sae_error err = {0};
    ex->located = 1;
    if (data_example_at(&ex->at, sd->f, &sd->docs, (const char *const *)sd->vocab, sd->f->vocab_size, row, context,
                        newline, &err) < 0) /* the place is known; only the text is missing */
        cli_warn("%s: %s; example row %lld shown without its text", err.subject, err.msg, (long long)row);
}

static void print_example(const example *ex, int color) {
    if (ex->row < 0) return;
    const data_example *at = &ex->at;
    printf("    %8.3f  row %lld", ex->value, (long long)ex->row);
    if (ex->located)
        printf("  doc %zu, window %zu of %zu (file window %zu), pos %zu", at->doc, at->window, at->windows,
               at->file_window, at->pos);
    if (ex->located && at->has_text)
        printf("  %s%s%s%s%s%s%s", at->cut_before ? "…" : "", at->before, color ? "\033[1;30;43m" : "[", at->token,
               color ? "\033[0m" : "]", at->after, at->cut_after ? "…" : "");
    printf("\n");
}

/* --- the card ------------------------------------------------------------------ */
static const char *vocab_of(const feat_dict *fd, int32_t id) {
    return fd->vocab && id >= 0 && (size_t)id < fd->vocab_size ? fd->vocab[id] : "?";
}

static void print_tokens(const feat_dict *fd, const char *title, const int32_t *ids, const void *vals,
                         int is_f32, size_t n) {
    printf("  %-12s", title);
    for (size_t i = 0; i < n && ids[i] >= 0; i++) {
        const char *t = vocab_of(fd, ids[i]);
        if (is_f32) printf("  %s (%.2f)", t, (double)((const float *)vals)[i]);
        else printf("  %s ×%lld", t, (long long)((const int64_t *)vals)[i]);
    }
    printf("\n");
}

static cJSON *tokens_json(const feat_dict *fd, const int32_t *ids, const void *vals, int is_f32, size_t n,
                          const char *key) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n && ids[i] >= 0; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "token", vocab_of(fd, ids[i]));
        cJSON_AddNumberToObject(o, "id", ids[i]);
        cJSON_AddNumberToObject(o, key, is_f32 ? (double)((const float *)vals)[i] : (double)((const int64_t *)vals)[i]);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

static void print_card(const feat_dict *fd, size_t j, const show_data *sd, size_t examples, int color) {
    size_t T = FEAT_TOP_TOKENS, L = FEAT_LENS, N = fd->top_n;
    printf("feature %zu  %s\n", j, fd->label[j] && fd->label[j][0] ? fd->label[j] : "(no label)");
    printf("  fires on %llu of %llu tokens (density %.4f%%), mean %.3f, max %.3f\n",
           (unsigned long long)fd->count[j], (unsigned long long)fd->n_tokens,
           fd->n_tokens ? 100.0 * (double)fd->count[j] / (double)fd->n_tokens : 0.0, fd->mean[j], fd->max[j]);
    static const char *const BARS[] = {" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
    uint64_t hmax = 0;
    int first = FEAT_HIST_BINS, last = -1;
    const uint64_t *hist = fd->hist + j * FEAT_HIST_BINS;
    for (int b = 0; b < FEAT_HIST_BINS; b++)
        if (hist[b]) hmax = hist[b] > hmax ? hist[b] : hmax, first = b < first ? b : first, last = b;
    if (last >= 0) {
        double w = (FEAT_HIST_LOG10_MAX - FEAT_HIST_LOG10_MIN) / FEAT_HIST_BINS;
        printf("  histogram   %.3g ", pow(10, FEAT_HIST_LOG10_MIN + first * w));
        for (int b = first; b <= last; b++) printf("%s", BARS[(int)ceil(8.0 * (double)hist[b] / (double)hmax)]);
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
    example ex;
    printf("  top examples\n");
    for (size_t i = 0; i < examples && i < N; i++) {
        locate(sd, fd->top_row[j * N + i], fd->top_val[j * N + i], fd->context, "⏎", &ex);
        print_example(&ex, color);
    }
    printf("  examples at activation quantiles 0.1 0.3 0.5 0.7 0.9\n");
    for (int q = 0; q < FEAT_QUANTILES; q++) {
        locate(sd, fd->q_row[j * FEAT_QUANTILES + q], fd->q_val[j * FEAT_QUANTILES + q], fd->context, "⏎", &ex);
        print_example(&ex, color);
    }
}

static cJSON *card_json(const feat_dict *fd, size_t j, const show_data *sd, size_t examples, const char *fpath) {
    size_t T = FEAT_TOP_TOKENS, L = FEAT_LENS, N = fd->top_n;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "feature", (double)j);
    cJSON_AddStringToObject(c, "label", fd->label[j] ? fd->label[j] : "");
    cJSON_AddStringToObject(c, "features_file", fpath);
    if (sd->f) cJSON_AddStringToObject(c, "data", sd->f->path);
    else cJSON_AddNullToObject(c, "data");
    cJSON *st = cJSON_AddObjectToObject(c, "stats");
    cJSON_AddNumberToObject(st, "count", (double)fd->count[j]);
    cJSON_AddNumberToObject(st, "n_tokens", (double)fd->n_tokens);
    cJSON_AddNumberToObject(st, "density", fd->n_tokens ? (double)fd->count[j] / (double)fd->n_tokens : 0.0);
    cJSON_AddNumberToObject(st, "mean", fd->mean[j]);
    cJSON_AddNumberToObject(st, "max", fd->max[j]);
    cJSON *h = cJSON_AddObjectToObject(c, "histogram");
    cJSON_AddNumberToObject(h, "log10_min", FEAT_HIST_LOG10_MIN);
    cJSON_AddNumberToObject(h, "log10_max", FEAT_HIST_LOG10_MAX);
    cJSON *bins = cJSON_AddArrayToObject(h, "counts");
    for (int b = 0; b < FEAT_HIST_BINS; b++)
        cJSON_AddItemToArray(bins, cJSON_CreateNumber((double)fd->hist[j * FEAT_HIST_BINS + b]));
    if (fd->vocab) {
        cJSON_AddItemToObject(c, "top_tokens", tokens_json(fd, fd->tok_count_id + j * T, fd->tok_count + j * T, 0, T, "count"));
        cJSON_AddItemToObject(c, "by_mean_act", tokens_json(fd, fd->tok_mean_id + j * T, fd->tok_mean + j * T, 1, T, "mean"));
    }
    if (fd->has_lens && fd->vocab) {
        cJSON *lens = cJSON_AddObjectToObject(c, "lens");
        cJSON_AddItemToObject(lens, "promotes", tokens_json(fd, fd->lens_up_id + j * L, fd->lens_up + j * L, 1, L, "logit"));
        cJSON_AddItemToObject(lens, "suppresses", tokens_json(fd, fd->lens_down_id + j * L, fd->lens_down + j * L, 1, L, "logit"));
    }
    example ex;
    cJSON *top = cJSON_AddArrayToObject(c, "top_examples");
    for (size_t i = 0; i < examples && i < N; i++) {
        if (fd->top_row[j * N + i] < 0) continue;
        locate(sd, fd->top_row[j * N + i], fd->top_val[j * N + i], fd->context, "\n", &ex);
        cJSON_AddItemToArray(top, feat_example_json(ex.located ? &ex.at : NULL, ex.value, ex.row, -1));
    }
    cJSON *qa = cJSON_AddArrayToObject(c, "quantile_examples");
    for (int q = 0; q < FEAT_QUANTILES; q++) {
        if (fd->q_row[j * FEAT_QUANTILES + q] < 0) continue;
        locate(sd, fd->q_row[j * FEAT_QUANTILES + q], fd->q_val[j * FEAT_QUANTILES + q], fd->context, "\n", &ex);
        cJSON_AddItemToArray(qa, feat_example_json(ex.located ? &ex.at : NULL, ex.value, ex.row, feat_quantile_levels[q]));
    }
    return c;
}

/* --- the data the features came from -------------------------------------------- */
static void identity_text(char *buf, size_t cap, const data_identity *id) {
    if (id->has_fingerprint)
        snprintf(buf, cap, "%llu rows x d=%llu, fingerprint %016llx", (unsigned long long)id->rows,
                 (unsigned long long)id->d, (unsigned long long)id->fingerprint);
    else
        snprintf(buf, cap, "identity not recorded");
}

/* Opens the data: --data, else the recorded path (an older file's relative
 * path is also tried from the features file's folder). Returns 0, or the exit
 * code after printing; with need_data, failing to open is an error, else a
 * warning and sd->f stays NULL. */
static int open_data(show_data *sd, const char *data, const char *fpath, const feat_dict *fd,
                     const data_identity *rec, int need_data) {
    sae_error err = {0};
    char tried[8300] = "";
    int rc = SAE_ERR_IO;
    if (data) {
        rc = data_actfile_open(&sd->f, data, &err);
    } else if (fd->data_path[0]) {
        rc = data_actfile_open(&sd->f, fd->data_path, &err);
        if (rc < 0 && fd->data_path[0] != '/') {
            char dir[4096];
            snprintf(dir, sizeof dir, "%s", fpath);
            snprintf(tried, sizeof tried, "%s/%s", dirname(dir), fd->data_path);
            sae_error e2 = {0};
            if (data_actfile_open(&sd->f, tried, &e2) == SAE_OK) rc = SAE_OK;
        }
    }
    if (rc < 0) {
        sd->f = NULL;
        if (data) {
            cli_error(&err);
            return CLI_EXIT_ERROR;
        }
        char idt[128];
        identity_text(idt, sizeof idt, rec);
        if (!fd->data_path[0])
            snprintf(err.msg, sizeof err.msg, "records no data file");
        char msg[9000];
        snprintf(msg, sizeof msg, "%s needs its data file %s (%s), which cannot be opened (%s); pass --data with "
                 "that file or a copy of it (the same rows: same identity)", fpath,
                 fd->data_path[0] ? fd->data_path : "?", idt, err.msg);
        if (need_data) {
            cli_errorf(NULL, "%s", msg);
            return CLI_EXIT_ERROR;
        }
        cli_warn("%s; examples shown without context", msg);
        return 0;
    }
    if (rec->has_fingerprint) {
        data_identity now;
        if (data_actfile_identity(sd->f, &now, &err) == SAE_OK && !data_identity_same(rec, &now)) {
            char a[128], b[128];
            identity_text(a, sizeof a, rec), identity_text(b, sizeof b, &now);
            cli_warn("%s is not the file these features were built from (%s: %s; it has %s): example rows "
                     "index that file, so the contexts shown are not theirs", sd->f->path, rec->path, a, b);
        }
    }
    if (data_docs_load(&sd->docs, sd->f, &err) == SAE_OK) sd->has_docs = 1;
    if (sd->f->has_tokens && sd->f->vocab_size && data_actfile_read_vocab(sd->f, &sd->vocab, &err) < 0) sd->vocab = NULL;
    /* data_vocab_text reads every piece: an absent string is an empty one */
    for (size_t i = 0; sd->vocab && i < sd->f->vocab_size; i++)
        if (!sd->vocab[i] && !(sd->vocab[i] = sae_strdup(""))) {
            data_h5_free_strings(sd->vocab, sd->f->vocab_size);
            sd->vocab = NULL;
        }
    return 0;
}

static void close_data(show_data *sd) {
    if (sd->vocab) data_h5_free_strings(sd->vocab, sd->f->vocab_size);
    if (sd->has_docs) data_docs_free(&sd->docs);
    data_actfile_close(sd->f);
}

/* --- the feature over one corpus document ----------------------------------------- */
typedef struct {
    size_t doc, window; /* window: the file window shown */
    float peak;
    size_t n;           /* tokens of the window */
    int32_t *ids;
    float *act;         /* (n) the feature's activation per token */
} doc_view;

/* Level 0..5 of v relative to the peak, for shading. */
static int shade_level(float v, float peak) {
    if (!(v > 0) || !(peak > 0)) return 0;
    int l = (int)ceil(5.0 * v / peak);
    return l < 1 ? 1 : l > 5 ? 5 : l;
}

static void print_doc_view(const show_data *sd, const doc_view *dv, size_t j, int color) {
    char name[160];
    cli_window_name(name, sizeof name, &sd->docs, dv->window);
    size_t lo = (size_t)sd->docs.win_off[dv->window], peak_pos = 0;
    for (size_t i = 0; i < dv->n; i++)
        if (dv->act[i] > dv->act[peak_pos]) peak_pos = i;
    printf("feature %zu on %s, rows %zu..%zu\n", j, name, lo, lo + dv->n - 1);
    if (dv->peak > 0) printf("  peak %.3f at pos %zu (row %zu)\n", dv->peak, peak_pos, lo + peak_pos);
    else printf("  the feature does not fire in this window\n");
    /* tokens grouped into whole characters; each group takes its pieces' max */
    static const int SHADES[6] = {0, 230, 229, 228, 221, 214};
    printf("  ");
    for (size_t i = 0; i < dv->n;) {
        size_t e = i + 1;
        while (e < dv->n && data_vocab_is_continuation(piece(sd, dv->ids[e]))) e++;
        float v = 0;
        for (size_t k = i; k < e; k++) v = fmaxf(v, dv->act[k]);
        char text[1024];
        ids_text(sd, dv->ids + i, e - i, "⏎", text, sizeof text);
        int l = shade_level(v, dv->peak);
        if (color && l) printf("\033[30;48;5;%dm%s\033[0m", SHADES[l], text);
        else if (l) printf("[%s %.2f]", text, v);
        else printf("%s", text);
        i = e;
    }
    printf("\n");
    if (!color) printf("  [token value]: tokens where the feature fires, with its activation\n");
}

static cJSON *doc_view_json(const show_data *sd, const doc_view *dv) {
    cJSON *o = cJSON_CreateObject();
    const data_docs *d = &sd->docs;
    cJSON_AddNumberToObject(o, "doc", (double)dv->doc);
    cJSON_AddNumberToObject(o, "window", (double)(dv->window - (size_t)d->doc_win[dv->doc]));
    cJSON_AddNumberToObject(o, "windows", (double)(d->doc_win[dv->doc + 1] - d->doc_win[dv->doc]));
    cJSON_AddNumberToObject(o, "file_window", (double)dv->window);
    cJSON_AddNumberToObject(o, "first_row", (double)d->win_off[dv->window]);
    cJSON_AddNumberToObject(o, "peak", dv->peak);
    cJSON *toks = cJSON_AddArrayToObject(o, "tokens");
    for (size_t i = 0; i < dv->n; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddNumberToObject(t, "pos", (double)i);
        cJSON_AddNumberToObject(t, "id", dv->ids[i]);
        cJSON_AddStringToObject(t, "piece", piece(sd, dv->ids[i]));
        cJSON_AddNumberToObject(t, "act", dv->act[i]);
        cJSON_AddItemToArray(toks, t);
    }
    return o;
}

/* Loads the SAE (--sae or the one the features file records), finds the
 * window and encodes it for feature j. Returns 0 or the exit code (printed). */
static int build_doc_view(doc_view *dv, show_data *sd, const feat_dict *fd, const char *sae_arg, size_t j,
                          size_t doc, size_t window) {
    memset(dv, 0, sizeof *dv);
    sae_error err = {0};
    if (!sd->f->has_tokens || !sd->vocab || !sd->has_docs) {
        cli_errorf(sd->f->path, "--doc needs /tokens and /vocab in the data (`sae capture` writes them)");
        return CLI_EXIT_ERROR;
    }
    size_t w;
    if (data_docs_resolve(&sd->docs, doc, window == (size_t)-1 ? 0 : window, &w, &err) < 0) {
        cli_error(&err);
        return CLI_EXIT_USAGE;
    }
    const char *sae_path = sae_arg ? sae_arg : fd->sae_path;
    sae_model m;
    double scale;
    if (!sae_path[0] || sae_file_load(sae_path, &m, 1024, &scale, &err) < 0) {
        if (sae_arg) cli_error(&err);
        else cli_errorf(NULL, "--doc encodes the document with the SAE, and the one the features file records (%s) "
                              "cannot be loaded (%s); pass --sae", sae_path[0] ? sae_path : "none", err.msg);
        return CLI_EXIT_ERROR;
    }
    int rc = cli_check_provenance(sae_path, m.cfg.d, sd->f);
    if (!rc && m.cfg.m != fd->M) {
        cli_errorf(sae_path, "has %zu latents but the features file has %zu features: not the SAE they came from",
                   m.cfg.m, fd->M);
        rc = CLI_EXIT_ERROR;
    }
    if (!rc && window == (size_t)-1 && feat_peak_window(&m, scale, sd->f, &sd->docs, doc, &j, 1, &w, &dv->peak, &err) < 0)
        rc = (cli_error(&err), CLI_EXIT_ERROR);
    size_t lo = (size_t)sd->docs.win_off[w], hi = (size_t)sd->docs.win_off[w + 1];
    dv->doc = doc, dv->window = w, dv->n = hi - lo;
    dv->ids = sae_malloc(dv->n * sizeof *dv->ids);
    dv->act = sae_malloc(dv->n * sizeof *dv->act);
    if (!rc && (!dv->ids || !dv->act)) rc = (cli_errorf(NULL, "out of memory"), CLI_EXIT_ERROR);
    if (!rc && (data_actfile_read_tokens(sd->f, lo, dv->n, dv->ids, &err) < 0 ||
                feat_encode_rows(&m, scale, sd->f, lo, hi, &j, 1, dv->act, &err) < 0))
        rc = (cli_error(&err), CLI_EXIT_ERROR);
    if (!rc && window != (size_t)-1)
        for (size_t i = 0; i < dv->n; i++) dv->peak = fmaxf(dv->peak, dv->act[i]);
    sae_model_free(&m);
    return rc;
}

int cmd_show(int argc, char **argv) {
    const char *data = NULL, *sae_arg = NULL;
    size_t feature = (size_t)-1, examples = 10, doc = (size_t)-1, window = (size_t)-1;
    int color_mode = 0, json = 0;
    static const char *const COLOR[] = {"auto", "always", "never", NULL};
    cli_opt opts[] = {
        {"feature", CLI_SIZE, &feature, "feature id", 0, NULL},
        {"data", CLI_STR, &data, "activation file for example contexts (default: the one the features came from)", 0, NULL},
        {"examples", CLI_SIZE, &examples, "top examples to print", 0, NULL},
        {"doc", CLI_SIZE, &doc, "show the feature over corpus document N (`sae docs` lists them)", 0, NULL},
        {"window", CLI_SIZE, &window, "with --doc: window W of it, from 0 (default: where the feature peaks)", 0, NULL},
        {"sae", CLI_STR, &sae_arg, "with --doc: the SAE (default: the one the features file records)", 0, NULL},
        {"json", CLI_TRUE, &json, "print the card as one JSON object", 0, NULL},
        {"color", CLI_CHOICE, &color_mode, "highlight the activating token", 0, COLOR},
    };
    size_t n_opts = sizeof opts / sizeof opts[0], n_pos;
    const char *pos[1];
    int help, rc = cli_parse(argc, argv, "show", opts, n_opts, pos, 1, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        cli_usage(stdout, "show", "F.h5 --feature N [--doc D [--window W]] [--json] [options]",
                  "Prints a feature's card: statistics, label, top tokens, logit lens, and its\n"
                  "top and quantile examples in context with the activating token highlighted;\n"
                  "each example names its corpus document, the window of it and the position.\n"
                  "With --doc, the feature over one corpus document instead: the window where it\n"
                  "peaks (or --window), every token marked by its activation.",
                  opts, n_opts);
        return CLI_EXIT_OK;
    }
    if (n_pos != 1 || feature == (size_t)-1) {
        cli_errorf("show", "expects a features file and --feature N (try 'sae show --help')");
        return CLI_EXIT_USAGE;
    }
    if (doc == (size_t)-1 && (window != (size_t)-1 || sae_arg)) {
        cli_errorf("show", "%s is used only with --doc", window != (size_t)-1 ? "--window" : "--sae");
        return CLI_EXIT_USAGE;
    }
    sae_paths ps = {0};
    sae_paths_add(&ps, "FILE", pos[0], SAE_PATH_IN);
    sae_paths_add(&ps, "--data", data, SAE_PATH_IN);
    sae_paths_add(&ps, "--sae", sae_arg, SAE_PATH_IN_DIR);
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
    show_data sd = {0}; /* fd->data_id: the data it was built from (no fingerprint in older files) */
    if ((rc = open_data(&sd, data, pos[0], fd, &fd->data_id, doc != (size_t)-1))) {
        feat_free(fd);
        return rc;
    }
    int color = !json && (color_mode == 1 || (color_mode == 0 && isatty(STDOUT_FILENO)));
    doc_view dv = {0};
    int has_view = doc != (size_t)-1;
    if (has_view) rc = build_doc_view(&dv, &sd, fd, sae_arg, feature, doc, window);
    if (!rc && json) {
        cJSON *c = card_json(fd, feature, &sd, examples, pos[0]);
        if (has_view) cJSON_AddItemToObject(c, "document", doc_view_json(&sd, &dv));
        char *s = cJSON_Print(c);
        if (s) printf("%s\n", s);
        else rc = (cli_errorf(NULL, "out of memory"), CLI_EXIT_ERROR);
        sae_free(s);
        cJSON_Delete(c);
    } else if (!rc && has_view) {
        print_doc_view(&sd, &dv, feature, color);
    } else if (!rc) {
        print_card(fd, feature, &sd, examples, color);
    }
    sae_free(dv.ids), sae_free(dv.act);
    close_data(&sd);
    feat_free(fd);
    return rc;
}
