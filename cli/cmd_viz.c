/* cli/cmd_viz.c: `sae viz align|trace|text|curves|density`, wiring the
 * toolkit's files to viz/ figures. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/fileutil.h"
#include "common/gemm.h"
#include "common/mem.h"
#include "data/actfile.h"
#include "data/docs.h"
#include "data/h5.h"
#include "features/feat.h"
#include "sae/io.h"
#include "viz/viz.h"

static void join_args(char *buf, size_t cap, int argc, char **argv) {
    size_t o = (size_t)snprintf(buf, cap, "sae viz");
    for (int i = 0; i < argc && o < cap; i++) o += (size_t)snprintf(buf + o, cap - o, " %s", argv[i]);
}

static int fail(sae_error *err) {
    cli_error(err);
    return err->code == SAE_ERR_ARG ? CLI_EXIT_USAGE : CLI_EXIT_ERROR;
}

/* A figure's inputs (declared by the caller), its font and its PNG. */
static int check_paths(sae_paths *ps, const viz_render_opts *ro, const char *out) {
    sae_paths_add(ps, "--font", ro->font, SAE_PATH_IN);
    sae_paths_add(ps, "--out", out, SAE_PATH_OUT);
    return cli_check_paths(ps);
}

/* Loads a dictionary: an SAE's decoder rows, or a data file's /truth/features. */
static int load_dict(const char *path, float **rows, size_t *n, size_t *d, int *is_truth, sae_error *err) {
    sae_model m;
    double scale;
    sae_error e1 = {0};
    if (sae_file_load(path, &m, 1, &scale, &e1) == SAE_OK) {
        *n = m.cfg.m, *d = m.cfg.d, *is_truth = 0;
        *rows = sae_malloc(*n * *d * sizeof(float));
        if (*rows) memcpy(*rows, m.p.W_dec, *n * *d * sizeof(float));
        sae_model_free(&m);
        return *rows ? SAE_OK : sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    }
    data_actfile *f;
    sae_error e2 = {0};
    if (data_actfile_open(&f, path, &e2) == SAE_OK) {
        if (!f->n_truth) {
            data_actfile_close(f);
            return sae_error_set(err, SAE_ERR_FORMAT, path, "is an activation file without /truth/features; "
                                                           "pass an SAE or a synthetic file");
        }
        *n = f->n_truth, *d = f->d, *is_truth = 1;
        *rows = sae_malloc(*n * *d * sizeof(float));
        int rc = *rows ? data_actfile_read_truth(f, *rows, err) : sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
        data_actfile_close(f);
        /* a NaN row's cosines are all NaN, and fmaxf skips NaN: the mean best
         * match came out as its -2 sentinel */
        for (size_t i = 0; rc == SAE_OK && i < *n * *d; i++)
            if (!isfinite((*rows)[i]))
                rc = sae_error_set(err, SAE_ERR_NONFINITE, path, "/truth/features holds NaN or Inf (row %zu)",
                                   i / *d);
        return rc;
    }
    *err = e1;
    return e1.code;
}

static char **load_labels(const char *features, size_t M, sae_error *err, int *rc) {
    *rc = SAE_OK;
    if (!features) return NULL;
    feat_dict *fd;
    if ((*rc = feat_read(&fd, features, err)) < 0) return NULL;
    if (fd->M != M) {
        *rc = sae_error_set(err, SAE_ERR_MISMATCH, features, "has %zu features, the dictionary has %zu", fd->M, M);
        feat_free(fd);
        return NULL;
    }
    char **labels = fd->label;
    fd->label = NULL;
    feat_free(fd);
    return labels;
}

static int viz_align(int argc, char **argv, const viz_render_opts *ro) {
    const char *a = NULL, *b = NULL, *out = NULL, *fa = NULL, *fb = NULL;
    size_t n = 64;
    cli_opt opts[] = {
        {"a", CLI_STR, &a, "first dictionary: an SAE", 0, NULL},
        {"b", CLI_STR, &b, "second: an SAE, or a synthetic data file (its /truth/features)", 0, NULL},
        {"n", CLI_SIZE, &n, "best-matched pairs shown", 0, NULL},
        {"features-a", CLI_STR, &fa, "features file of --a, for labels", 0, NULL},
        {"features-b", CLI_STR, &fb, "features file of --b, for labels", 0, NULL},
        {"out", CLI_STR, &out, "PNG to write", 0, NULL},
        {"scale", CLI_DOUBLE, (void *)&ro->scale, "pixels per point", 0, NULL},
        {"font", CLI_STR, (void *)&ro->font, "font file (default: fontconfig, Japanese-capable)", 0, NULL},
    };
    size_t n_opts = sizeof opts / sizeof opts[0], n_pos;
    const char *pos[1];
    int help, rc = cli_parse(argc, argv, "viz align", opts, n_opts, pos, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        cli_usage(stdout, "viz align", "--a S1.h5 --b S2.h5 --out align.png",
                  "Cosine similarity between the decoder directions of two dictionaries, rows and\n"
                  "columns matched greedily and ordered so matched pairs lie on the diagonal.", opts, n_opts);
        return CLI_EXIT_OK;
    }
    if (!a || !b || !out || n == 0) {
        cli_errorf("viz align", "--a, --b and --out are required, --n positive");
        return CLI_EXIT_USAGE;
    }
    sae_paths ps = {0};
    sae_paths_add(&ps, "--a", a, SAE_PATH_IN_DIR);
    sae_paths_add(&ps, "--b", b, SAE_PATH_IN_DIR);
    sae_paths_add(&ps, "--features-a", fa, SAE_PATH_IN);
    sae_paths_add(&ps, "--features-b", fb, SAE_PATH_IN);
    if ((rc = check_paths(&ps, ro, out))) return rc;
    sae_error err = {0};
    float *A = NULL, *B = NULL;
    size_t na, nb, da, db;
    int ta, tb;
    if ((rc = load_dict(a, &A, &na, &da, &ta, &err)) < 0 || (rc = load_dict(b, &B, &nb, &db, &tb, &err)) < 0) {
        sae_free(A), sae_free(B);
        return fail(&err);
    }
    if (da != db) {
        sae_free(A), sae_free(B);
        cli_errorf(b, "has d=%zu but %s has d=%zu: decoder directions are not comparable", db, a, da);
        return CLI_EXIT_ERROR;
    }
    char **la = load_labels(fa, na, &err, &rc);
    char **lb = rc == SAE_OK ? load_labels(fb, nb, &err, &rc) : NULL;
    if (rc < 0) {
        sae_free(A), sae_free(B);
        return fail(&err);
    }
    feat_alignment al;
    rc = feat_align(A, na, B, nb, da, n, &al, &err);
    sae_free(A), sae_free(B);
    size_t shown = rc == SAE_OK ? al.shown : 0;
    char **rl = sae_calloc_n(shown, sizeof *rl), **cl = sae_calloc_n(shown, sizeof *cl);
    if (rc == SAE_OK && (!rl || !cl)) rc = sae_error_set(&err, SAE_ERR_NOMEM, NULL, "out of memory");
    for (size_t r = 0; rc == SAE_OK && r < shown; r++) {
        size_t i = al.row[r], j = al.col[r];
        char buf[256];
        snprintf(buf, sizeof buf, "#%zu%s%.40s", i, la && la[i][0] ? "  " : "", la ? la[i] : "");
        rl[r] = sae_strdup(buf);
        snprintf(buf, sizeof buf, "%s%zu%s%.30s", tb ? "truth " : "#", j, lb && lb[j][0] ? "  " : "", lb ? lb[j] : "");
        cl[r] = sae_strdup(buf);
        if (!rl[r] || !cl[r]) rc = sae_error_set(&err, SAE_ERR_NOMEM, NULL, "out of memory");
    }
    double mean_best = rc == SAE_OK ? al.mean_best : 0;
    if (rc == SAE_OK) {
        char title[512], caption[512];
        snprintf(title, sizeof title, "Feature alignment: %s vs %s", a, tb ? "planted features" : b);
        snprintf(caption, sizeof caption,
                 "mean best-match cosine %.3f over all %zu features of A; %.3f over the %zu pairs shown",
                 al.mean_best, na, al.mean_matched, shown);
        viz_heatmap h = {.title = title, .caption = caption,
                         .x_title = tb ? "planted feature (matched)" : "B feature (matched)",
                         .y_title = "A feature", .cbar_title = "cosine similarity", .values = al.cos,
                         .rows = shown, .cols = shown, .row_labels = (const char *const *)rl,
                         .col_labels = (const char *const *)cl, .col_labels_vertical = 1, .vmin = -1,
                         .vmax = 1, .cmap = VIZ_CMAP_RDBU};
        rc = viz_render_heatmap(&h, out, ro, &err);
    }
    for (size_t r = 0; rl && cl && r < shown; r++) sae_free(rl[r]), sae_free(cl[r]);
    sae_free(rl), sae_free(cl);
    if (shown) feat_alignment_free(&al);
    for (size_t i = 0; la && i < na; i++) sae_free(la[i]);
    for (size_t i = 0; lb && i < nb; i++) sae_free(lb[i]);
    sae_free(la), sae_free(lb);
    if (rc < 0) return fail(&err);
    fprintf(stderr, "sae viz: wrote %s (mean best-match cosine %.3f)\n", out, mean_best);
    return CLI_EXIT_OK;
}

/* Tokens of rows [r0, r1) as display strings, byte pieces joined back into
 * characters; values (per row) are combined by max over the joined pieces.
 * Returns their count, or SIZE_MAX when out of memory (nothing kept). */
static size_t doc_tokens(data_actfile *f, char **vocab, size_t r0, size_t r1, const float *vals, char ***out_tok,
                         float **out_val) {
    int32_t *tok = sae_malloc((r1 - r0) * sizeof *tok);
    sae_error err = {0};
    char **t = sae_calloc_n(r1 - r0, sizeof *t);
    float *v = sae_calloc_n(r1 - r0, sizeof *v);
    size_t n = 0;
    int ok = tok && t && v && data_actfile_read_tokens(f, r0, r1 - r0, tok, &err) == SAE_OK;
    for (size_t i = 0; ok && i < r1 - r0;) {
        char buf[256];
        size_t o = 0;
        float mx = vals ? vals[i] : 0;
        unsigned byte;
        const char *p = vocab[tok[i]];
        if (strlen(p) == 6 && sscanf(p, "<0x%02X>", &byte) == 1 && byte >= 0x80) {
            while (i < r1 - r0 && strlen(vocab[tok[i]]) == 6 && sscanf(vocab[tok[i]], "<0x%02X>", &byte) == 1 &&
                   byte >= 0x80 && o + 1 < sizeof buf) {
                buf[o++] = (char)byte;
                if (vals) mx = fmaxf(mx, vals[i]);
                i++;
            }
            buf[o] = 0;
        } else {
            snprintf(buf, sizeof buf, "%s", strcmp(p, "\\n") == 0 ? "\n" : p);
            i++;
        }
        t[n] = sae_strdup(buf), v[n] = mx;
        ok = t[n++] != NULL;
    }
    sae_free(tok);
    if (!ok) {
        for (size_t i = 0; t && i < n; i++) sae_free(t[i]);
        sae_free(t), sae_free(v);
        return SIZE_MAX;
    }
    *out_tok = t, *out_val = v;
    return n;
}

typedef struct {
    sae_model m;
    double scale;
    data_actfile *f;
    data_docs docs;
    int has_docs;
    char **vocab;
    size_t window;  /* the file window shown */
    int64_t r0, r1; /* its rows */
    float *acts;    /* (r1 - r0, M) */
} doc_ctx;

/* Loads the SAE and the data, and checks they fit (cli_check_provenance
 * prints; its exit code is returned in *exit_rc). */
static int open_doc(doc_ctx *dc, const char *sae_path, const char *data, int *exit_rc, sae_error *err) {
    memset(dc, 0, sizeof *dc);
    *exit_rc = 0;
    int rc = sae_file_load(sae_path, &dc->m, 1024, &dc->scale, err);
    if (rc == SAE_OK) rc = data_actfile_open(&dc->f, data, err);
    if (rc < 0) return rc;
    if ((*exit_rc = cli_check_provenance(sae_path, dc->m.cfg.d, dc->f))) return SAE_ERR_MISMATCH;
    if (!dc->f->has_tokens || !dc->f->vocab_size)
        return sae_error_set(err, SAE_ERR_FORMAT, data, "needs /tokens and /vocab (`sae capture` writes them)");
    if ((rc = data_docs_load(&dc->docs, dc->f, err)) < 0) return rc;
    dc->has_docs = 1;
    return data_actfile_read_vocab(dc->f, &dc->vocab, err);
}

/* Window `window` of corpus document doc, or (window = SIZE_MAX) the one where
 * features ids peak (window 0 without ids); then every latent over it. */
static int encode_window(doc_ctx *dc, size_t doc, size_t window, const size_t *ids, size_t nf, sae_error *err) {
    size_t w;
    int rc = data_docs_resolve(&dc->docs, doc, window == SIZE_MAX ? 0 : window, &w, err);
    float peak;
    if (rc == SAE_OK && window == SIZE_MAX && nf)
        rc = feat_peak_window(&dc->m, dc->scale, dc->f, &dc->docs, doc, ids, nf, &w, &peak, err);
    if (rc < 0) return rc;
    dc->window = w, dc->r0 = dc->docs.win_off[w], dc->r1 = dc->docs.win_off[w + 1];
    size_t n = (size_t)(dc->r1 - dc->r0), M = dc->m.cfg.m;
    dc->acts = sae_calloc_n(n * M, sizeof(float));
    if (!dc->acts) return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory for %zu x %zu activations", n, M);
    return feat_encode_rows(&dc->m, dc->scale, dc->f, (size_t)dc->r0, (size_t)dc->r1, NULL, 0, dc->acts, err);
}

static void close_doc(doc_ctx *dc) {
    if (dc->vocab) data_h5_free_strings(dc->vocab, dc->f->vocab_size);
    if (dc->has_docs) data_docs_free(&dc->docs);
    sae_free(dc->acts);
    data_actfile_close(dc->f);
    sae_model_free(&dc->m);
}

static int parse_ids(const char *s, size_t **ids, size_t *n, size_t M) {
    *n = 0;
    *ids = sae_malloc((strlen(s) / 2 + 2) * sizeof **ids);
    for (const char *p = s; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || (size_t)v >= M) {
            cli_errorf("--features", "'%s': feature ids must be in 0..%zu, comma-separated", s, M - 1);
            return CLI_EXIT_USAGE;
        }
        (*ids)[(*n)++] = (size_t)v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') {
            cli_errorf("--features", "'%s': expected comma-separated ids", s);
            return CLI_EXIT_USAGE;
        }
    }
    return *n ? 0 : (cli_errorf("--features", "no feature ids given"), CLI_EXIT_USAGE);
}

static int viz_trace_or_text(int argc, char **argv, const viz_render_opts *ro, int text_mode) {
    const char *sae_path = NULL, *data = NULL, *out = NULL, *ids_s = NULL, *ff = NULL;
    const size_t UNSET = SIZE_MAX;
    size_t doc = UNSET, window = UNSET, top = UNSET, start = UNSET, len = UNSET, feature = UNSET;
    cli_opt opts[] = {
        {"sae", CLI_STR, &sae_path, "SAE (.h5)", 0, NULL},
        {"data", CLI_STR, &data, "activation file with tokens", 0, NULL},
        {"doc", CLI_SIZE, &doc, "corpus document (`sae docs` lists them)", 0, NULL},
        {"window", CLI_SIZE, &window, "window of the document, from 0 (default: where the feature(s) peak; trace --top: 0)", 0, NULL},
        {text_mode ? "feature" : "features", text_mode ? CLI_SIZE : CLI_STR, text_mode ? (void *)&feature : (void *)&ids_s,
         text_mode ? "the feature shading the text" : "feature ids a,b,c (default: --top)", 0, NULL},
        {"top", CLI_SIZE, &top, "trace: the features most active in the window (default 12)", 0, NULL},
        {"start", CLI_SIZE, &start, "trace: first token shown, within the window (default: --len tokens around the peak)", 0, NULL},
        {"len", CLI_SIZE, &len, "trace: tokens shown (default 64)", 0, NULL},
        {"features-file", CLI_STR, &ff, "features file, for labels", 0, NULL},
        {"out", CLI_STR, &out, "PNG to write", 0, NULL},
        {"scale", CLI_DOUBLE, (void *)&ro->scale, "pixels per point", 0, NULL},
        {"font", CLI_STR, (void *)&ro->font, "font file (default: fontconfig, Japanese-capable)", 0, NULL},
    };
    const char *name = text_mode ? "viz text" : "viz trace";
    size_t n_opts = sizeof opts / sizeof opts[0], n_pos;
    const char *pos[1];
    int help, rc = cli_parse(argc, argv, name, opts, n_opts, pos, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        cli_usage(stdout, name, text_mode ? "--sae S.h5 --data A.h5 --doc N [--window W] --feature F --out text.png"
                                          : "--sae S.h5 --data A.h5 --doc N [--window W] [--features a,b | --top 12] --out trace.png",
                  text_mode ? "One window of a corpus document as flowing text, each token shaded by one\n"
                              "feature's activation; by default the window where the feature peaks."
                            : "Features (rows) by tokens (columns) of one window of a corpus document,\n"
                              "coloured by activation; by default the window where --features peak.",
                  opts, n_opts);
        return CLI_EXIT_OK;
    }
    if (!sae_path || !data || !out || doc == UNSET || (text_mode && feature == UNSET)) {
        cli_errorf(name, "--sae, --data, --doc%s and --out are required", text_mode ? ", --feature" : "");
        return CLI_EXIT_USAGE;
    }
    /* a flag this figure would ignore is refused, not silently dropped */
    if (text_mode && (start != UNSET || len != UNSET || top != UNSET)) {
        cli_errorf(name, "%s is not used by viz text, which shows the whole window (choose it with --window)",
                   start != UNSET ? "--start" : len != UNSET ? "--len" : "--top");
        return CLI_EXIT_USAGE;
    }
    if (ids_s && top != UNSET) {
        cli_errorf(name, "--top is not used with --features, which names the rows");
        return CLI_EXIT_USAGE;
    }
    if (top == UNSET) top = 12;
    if (len == UNSET) len = 64;
    if (len == 0 || top == 0) {
        cli_errorf(name, "%s must be at least 1", len == 0 ? "--len" : "--top");
        return CLI_EXIT_USAGE;
    }
    sae_paths ps = {0};
    sae_paths_add(&ps, "--sae", sae_path, SAE_PATH_IN_DIR);
    sae_paths_add(&ps, "--data", data, SAE_PATH_IN);
    sae_paths_add(&ps, "--features-file", ff, SAE_PATH_IN);
    if ((rc = check_paths(&ps, ro, out))) return rc;
    sae_error err = {0};
    doc_ctx dc;
    int exit_rc = 0;
    if ((rc = open_doc(&dc, sae_path, data, &exit_rc, &err)) < 0) {
        close_doc(&dc);
        return exit_rc ? exit_rc : fail(&err);
    }
    size_t M = dc.m.cfg.m;
    char **labels = load_labels(ff, M, &err, &rc);
    if (rc < 0 || (text_mode && feature >= M)) {
        if (rc == SAE_OK) sae_error_set(&err, SAE_ERR_ARG, "--feature", "%zu is out of range: the SAE has %zu features", feature, M);
        close_doc(&dc);
        return fail(&err);
    }
    size_t *ids = NULL, nf = 0;
    if (ids_s && (rc = parse_ids(ids_s, &ids, &nf, M))) {
        for (size_t j = 0; labels && j < M; j++) sae_free(labels[j]);
        sae_free(labels), sae_free(ids), close_doc(&dc);
        return rc;
    }
    rc = text_mode ? encode_window(&dc, doc, window, &feature, 1, &err) : encode_window(&dc, doc, window, ids, nf, &err);
    size_t n = (size_t)(dc.r1 - dc.r0);
    if (rc == SAE_OK && start != UNSET && start >= n)
        rc = sae_error_set(&err, SAE_ERR_ARG, "--start", "%zu is beyond the window: it has %zu tokens (0..%zu)", start, n,
                           n - 1);
    if (rc < 0) {
        for (size_t j = 0; labels && j < M; j++) sae_free(labels[j]);
        sae_free(labels), sae_free(ids), close_doc(&dc);
        return fail(&err);
    }
    if (start == UNSET) { /* trace: the shown tokens include where the named features peak */
        size_t peak_pos = 0, nids = text_mode ? 0 : nf;
        float best = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < nids; k++)
                if (dc.acts[i * M + ids[k]] > best) best = dc.acts[i * M + ids[k]], peak_pos = i;
        start = peak_pos >= len / 2 ? peak_pos - len / 2 : 0;
        if (n > len && start > n - len) start = n - len;
        if (n <= len) start = 0;
    }
    char where[200];
    cli_window_name(where, sizeof where, &dc.docs, dc.window);
    size_t s0 = start, s1 = text_mode ? n : (s0 + len < n ? s0 + len : n);
    char cmdline[1024];
    snprintf(cmdline, sizeof cmdline, "%s", ro->command);
    if (text_mode) {
        float *vals = sae_malloc(n * sizeof *vals);
        double vmax = 0;
        for (size_t i = 0; vals && i < n; i++) vals[i] = dc.acts[i * M + feature], vmax = fmax(vmax, vals[i]);
        char **tok = NULL;
        float *tv = NULL;
        size_t nt = vals ? doc_tokens(dc.f, dc.vocab, (size_t)dc.r0, (size_t)dc.r1, vals, &tok, &tv) : SIZE_MAX;
        if (nt == SIZE_MAX) {
            sae_free(vals);
            for (size_t j = 0; labels && j < M; j++) sae_free(labels[j]);
            sae_free(labels), close_doc(&dc);
            sae_error_set(&err, SAE_ERR_NOMEM, NULL, "out of memory");
            return fail(&err);
        }
        char title[512], caption[256], cb[64];
        snprintf(title, sizeof title, "Feature %zu%s%s on %s", feature, labels && labels[feature][0] ? ": " : "",
                 labels ? labels[feature] : "", where);
        snprintf(caption, sizeof caption, "%s, %zu tokens; max activation %.3g", data, n, vmax);
        snprintf(cb, sizeof cb, "activation");
        viz_shaded_text st = {.title = title, .caption = caption, .cbar_title = cb, .tokens = (const char *const *)tok,
                              .values = tv, .n = nt, .vmax = vmax > 0 ? vmax : 1, .width_pt = 560};
        rc = viz_render_text(&st, out, ro, &err);
        for (size_t i = 0; i < nt; i++) sae_free(tok[i]);
        sae_free(tok), sae_free(tv), sae_free(vals);
    } else {
        if (!ids_s) { /* the features with the highest max activation in the window */
            float *mx = sae_calloc_n(M, sizeof *mx);
            ids = sae_malloc(top * sizeof *ids);
            for (size_t i = s0; mx && i < s1; i++)
                for (size_t j = 0; j < M; j++) mx[j] = fmaxf(mx[j], dc.acts[i * M + j]);
            for (size_t k = 0; mx && ids && k < top; k++) {
                size_t b = 0;
                for (size_t j = 1; j < M; j++)
                    if (mx[j] > mx[b]) b = j;
                if (!(mx[b] > 0)) break;
                ids[nf++] = b, mx[b] = -1;
            }
            int oom = !mx || !ids;
            sae_free(mx);
            if (oom) sae_error_set(&err, SAE_ERR_NOMEM, NULL, "out of memory");
            if (!nf && !oom)
                sae_error_set(&err, SAE_ERR_ARG, "--doc", "no feature fires in tokens %zu..%zu of %s", s0, s1 - 1, where);
            if (!nf || oom) {
                for (size_t j = 0; labels && j < M; j++) sae_free(labels[j]);
                sae_free(labels);
                sae_free(ids), close_doc(&dc);
                return fail(&err);
            }
        }
        /* columns: one per token row (byte pieces shown joined where they start) */
        size_t cols = s1 - s0;
        float *mat = sae_malloc(nf * cols * sizeof *mat);
        double vmax = 0;
        for (size_t r = 0; mat && r < nf; r++)
            for (size_t c2 = 0; c2 < cols; c2++) {
                mat[r * cols + c2] = dc.acts[(s0 + c2) * M + ids[r]];
                vmax = fmax(vmax, mat[r * cols + c2]);
            }
        char **tok = NULL;
        float *tv = NULL;
        size_t nt = doc_tokens(dc.f, dc.vocab, (size_t)dc.r0 + s0, (size_t)dc.r0 + s1, NULL, &tok, &tv);
        char **cl = sae_calloc_n(cols, sizeof *cl), **rl = sae_calloc_n(nf, sizeof *rl);
        /* a joined character goes on the first of its byte columns, the rest stay blank */
        int32_t *raw = sae_malloc(cols * sizeof *raw);
        int ok = mat && nt != SIZE_MAX && cl && rl && raw;
        if (nt == SIZE_MAX) nt = 0;
        if (ok) rc = data_actfile_read_tokens(dc.f, (size_t)dc.r0 + s0, cols, raw, &err);
        for (size_t c2 = 0, k = 0; ok && rc == SAE_OK && c2 < cols; c2++) {
            unsigned byte;
            const char *p = dc.vocab[raw[c2]];
            int cont = strlen(p) == 6 && sscanf(p, "<0x%02X>", &byte) == 1 && byte >= 0x80 && (byte & 0xC0) == 0x80;
            if (cont || k >= nt) cl[c2] = sae_strdup("");
            else cl[c2] = sae_strdup(strcmp(tok[k], "\n") == 0 ? "⏎" : tok[k]), k++;
            ok = cl[c2] != NULL;
        }
        for (size_t r = 0; ok && rc == SAE_OK && r < nf; r++) {
            char buf[256];
            snprintf(buf, sizeof buf, "#%zu%s%.40s", ids[r], labels && labels[ids[r]][0] ? "  " : "", labels ? labels[ids[r]] : "");
            ok = (rl[r] = sae_strdup(buf)) != NULL;
        }
        if (!ok && rc == SAE_OK) rc = sae_error_set(&err, SAE_ERR_NOMEM, NULL, "out of memory");
        char title[512], caption[256];
        snprintf(title, sizeof title, "Feature activations on %s, tokens %zu-%zu", where, s0, s1 - 1);
        snprintf(caption, sizeof caption, "%s; SAE %s", data, sae_path);
        viz_heatmap h = {.title = title, .caption = caption, .x_title = "token", .y_title = "feature",
                         .cbar_title = "activation", .values = mat, .rows = nf, .cols = cols,
                         .row_labels = (const char *const *)rl, .col_labels = (const char *const *)cl,
                         .col_labels_vertical = 1, .vmin = 0, .vmax = vmax > 0 ? vmax : 1, .cmap = VIZ_CMAP_VIRIDIS,
                         .cell_w = 14, .cell_h = 14};
        if (rc == SAE_OK) rc = viz_render_heatmap(&h, out, ro, &err);
        for (size_t i = 0; tok && i < nt; i++) sae_free(tok[i]);
        for (size_t c2 = 0; cl && c2 < cols; c2++) sae_free(cl[c2]);
        for (size_t r = 0; rl && r < nf; r++) sae_free(rl[r]);
        sae_free(tok), sae_free(tv), sae_free(cl), sae_free(rl), sae_free(raw), sae_free(mat), sae_free(ids);
    }
    for (size_t j = 0; labels && j < M; j++) sae_free(labels[j]);
    sae_free(labels);
    close_doc(&dc);
    if (rc < 0) return fail(&err);
    fprintf(stderr, "sae viz: wrote %s (%s)\n", out, where);
    return CLI_EXIT_OK;
}

static int viz_curves(int argc, char **argv, const viz_render_opts *ro) {
    const char *log = NULL, *out = NULL;
    cli_opt opts[] = {
        {"log", CLI_STR, &log, "metrics JSON lines from sae train --log", 0, NULL},
        {"out", CLI_STR, &out, "PNG to write", 0, NULL},
        {"scale", CLI_DOUBLE, (void *)&ro->scale, "pixels per point", 0, NULL},
        {"font", CLI_STR, (void *)&ro->font, "font file", 0, NULL},
    };
    size_t n_opts = sizeof opts / sizeof opts[0], n_pos;
    const char *pos[1];
    int help, rc = cli_parse(argc, argv, "viz curves", opts, n_opts, pos, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        cli_usage(stdout, "viz curves", "--log metrics.jsonl --out curves.png",
                  "Training curves: FVU, L0 and the dead fraction against tokens (log axes).", opts, n_opts);
        return CLI_EXIT_OK;
    }
    if (!log || !out) {
        cli_errorf("viz curves", "--log and --out are required");
        return CLI_EXIT_USAGE;
    }
    sae_paths ps = {0};
    sae_paths_add(&ps, "--log", log, SAE_PATH_IN);
    if ((rc = check_paths(&ps, ro, out))) return rc;
    sae_error err = {0};
    viz_train_log tl;
    if ((rc = viz_train_log_read(&tl, log, &err)) < 0) return fail(&err);
    char title[512];
    snprintf(title, sizeof title, "Training curves: %s", log);
    rc = viz_render_curves(&tl, title, out, ro, &err);
    viz_train_log_free(&tl);
    if (rc < 0) return fail(&err);
    fprintf(stderr, "sae viz: wrote %s\n", out);
    return CLI_EXIT_OK;
}

static int viz_density(int argc, char **argv, const viz_render_opts *ro) {
    const char *features = NULL, *out = NULL;
    cli_opt opts[] = {
        {"features", CLI_STR, &features, "features file from sae features", 0, NULL},
        {"out", CLI_STR, &out, "PNG to write", 0, NULL},
        {"scale", CLI_DOUBLE, (void *)&ro->scale, "pixels per point", 0, NULL},
        {"font", CLI_STR, (void *)&ro->font, "font file", 0, NULL},
    };
    size_t n_opts = sizeof opts / sizeof opts[0], n_pos;
    const char *pos[1];
    int help, rc = cli_parse(argc, argv, "viz density", opts, n_opts, pos, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        cli_usage(stdout, "viz density", "--features F.h5 --out density.png", "Histogram of log10 feature density.",
                  opts, n_opts);
        return CLI_EXIT_OK;
    }
    if (!features || !out) {
        cli_errorf("viz density", "--features and --out are required");
        return CLI_EXIT_USAGE;
    }
    sae_paths ps = {0};
    sae_paths_add(&ps, "--features", features, SAE_PATH_IN);
    if ((rc = check_paths(&ps, ro, out))) return rc;
    sae_error err = {0};
    feat_dict *fd;
    if (feat_read(&fd, features, &err) < 0) return fail(&err);
    double lo = 0, hi = -10;
    size_t dead = 0;
    for (size_t j = 0; j < fd->M; j++) {
        if (!fd->count[j]) {
            dead++;
            continue;
        }
        double v = log10((double)fd->count[j] / (double)fd->n_tokens);
        lo = fmin(lo, v), hi = fmax(hi, v);
    }
    if (dead == fd->M) lo = -1, hi = 0; /* nothing fired: an empty, labelled axis */
    lo = floor(lo * 4) / 4, hi = ceil(hi * 4) / 4 + 0.25;
    long nbl = lround((hi - lo) * 8); /* bins of 1/8 decade */
    size_t nb = nbl < 1 ? 1 : nbl > 400 ? 400 : (size_t)nbl;
    double *edges = sae_malloc((nb + 1) * 8), *counts = sae_calloc_n(nb, 8);
    if (!edges || !counts) {
        sae_free(edges), sae_free(counts), feat_free(fd);
        cli_errorf(NULL, "out of memory");
        return CLI_EXIT_ERROR;
    }
    for (size_t b = 0; b <= nb; b++) edges[b] = lo + (hi - lo) * (double)b / (double)nb;
    for (size_t j = 0; j < fd->M; j++) {
        if (!fd->count[j]) continue;
        double v = log10((double)fd->count[j] / (double)fd->n_tokens);
        size_t b = (size_t)((v - lo) / (hi - lo) * (double)nb);
        counts[b < nb ? b : nb - 1] += 1;
    }
    char title[512], caption[256];
    snprintf(title, sizeof title, "Feature density: %s", features);
    snprintf(caption, sizeof caption, "%zu features over %llu tokens; %zu never fired (not shown)", fd->M,
             (unsigned long long)fd->n_tokens, dead);
    viz_bars b = {.title = title, .x_title = "log10 density (fraction of tokens a feature fires on)",
                  .y_title = "features", .caption = caption, .edges = edges, .counts = counts, .n = nb};
    rc = viz_render_bars(&b, out, ro, &err);
    sae_free(edges), sae_free(counts);
    feat_free(fd);
    if (rc < 0) return fail(&err);
    fprintf(stderr, "sae viz: wrote %s\n", out);
    return CLI_EXIT_OK;
}

int cmd_viz(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        FILE *o = argc < 2 ? stderr : stdout;
        fprintf(o, "usage: sae viz align|trace|text|curves|density [options] --out FIG.png\n\n"
                   "  align    cosine similarity of two dictionaries' decoder directions\n"
                   "  trace    features x tokens heatmap of one document\n"
                   "  text     a document with tokens shaded by one feature\n"
                   "  curves   training curves from a --log file\n"
                   "  density  histogram of log10 feature density\n\n"
                   "Every figure takes --scale (pixels per point, default 2) and --font PATH.\n");
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    char cmdline[2048];
    join_args(cmdline, sizeof cmdline, argc - 1, argv + 1);
    viz_render_opts ro = {.scale = 2.0, .font = NULL, .command = cmdline};
    const char *w = argv[1];
    if (strcmp(w, "align") == 0) return viz_align(argc - 1, argv + 1, &ro);
    if (strcmp(w, "trace") == 0) return viz_trace_or_text(argc - 1, argv + 1, &ro, 0);
    if (strcmp(w, "text") == 0) return viz_trace_or_text(argc - 1, argv + 1, &ro, 1);
    if (strcmp(w, "curves") == 0) return viz_curves(argc - 1, argv + 1, &ro);
    if (strcmp(w, "density") == 0) return viz_density(argc - 1, argv + 1, &ro);
    cli_errorf("viz", "unknown figure '%s' (align, trace, text, curves, density)", w);
    return CLI_EXIT_USAGE;
}
