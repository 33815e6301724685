/* cli/cmd_docs.c: `sae docs` (the corpus documents of an activation file), and
 * the document helpers `sae show`, `sae viz` and `sae info` share: naming a
 * window by its corpus document, and label counts. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/fileutil.h"
#include "common/mem.h"
#include "data/docs.h"
#include "data/h5.h"
#include "sae/sae.h"

void cli_window_name(char *buf, size_t cap, const data_docs *d, size_t w) {
    size_t doc = (size_t)d->win_doc[w], w0 = (size_t)d->doc_win[doc], nw = (size_t)(d->doc_win[doc + 1] - d->doc_win[doc]);
    snprintf(buf, cap, "doc %zu, window %zu of %zu (file window %zu)", doc, w - w0, nw, w);
}

/* Distinct labels with their number of corpus documents, in first-seen order. */
void cli_print_label_counts(const data_docs *d, const char *indent) {
    if (!d->doc_label) return;
    data_label_count *lc;
    size_t n;
    sae_error err = {0};
    if (data_docs_labels(d, &lc, &n, &err) < 0) {
        cli_warn("cannot count the labels: %s", err.msg);
        return;
    }
    printf("%slabels       ", indent);
    for (size_t k = 0; k < n && k < 40; k++)
        printf("%s%s %zu", k ? ", " : "", lc[k].label[0] ? lc[k].label : "(none)", lc[k].docs);
    printf("%s (corpus documents)\n", n > 40 ? ", ..." : "");
    sae_free(lc);
}

/* --- sae docs ------------------------------------------------------------------ */
typedef struct {
    data_actfile *f;
    data_docs d;
    char **vocab;
    size_t max_piece; /* longest /vocab piece in bytes, at least 6 ("<0xXX>" and "⏎") */
} docs_ctx;

/* The text of rows [lo, hi) decoded (data_vocab_text; newline as `newline`),
 * allocated; NULL when out of memory or unreadable. */
static char *rows_text(docs_ctx *c, int64_t lo, int64_t hi, const char *newline, sae_error *err) {
    size_t n = (size_t)(hi - lo);
    if (n == 0) return sae_strdup(""); /* a corpus document that produced no window */
    int32_t *ids = sae_malloc(n * sizeof *ids);
    int ovf = 0;
    size_t cap = sae_mul_size(n, c->max_piece, &ovf) + 1;
    char *text = ovf ? NULL : sae_malloc(cap);
    if (!ids || !text) sae_error_set(err, SAE_ERR_NOMEM, c->f->path, "out of memory for the text of %zu tokens", n);
    if (ids && text && data_actfile_read_tokens(c->f, (size_t)lo, n, ids, err) == SAE_OK)
        data_vocab_text(text, cap, (const char *const *)c->vocab, c->f->vocab_size, ids, n, newline);
    else
        sae_free(text), text = NULL;
    sae_free(ids);
    return text;
}

/* The first `chars` UTF-8 characters of s, in place, with "…" when cut. */
static void cut_chars(char *s, size_t cap, size_t chars) {
    size_t i = 0, k = 0;
    while (s[i] && k < chars) {
        i++;
        while (((unsigned char)s[i] & 0xC0) == 0x80) i++;
        k++;
    }
    if (s[i] && i + 4 <= cap) memcpy(s + i, "…", 4);
    else s[i] = 0;
}

static int docs_open(docs_ctx *c, const char *path, sae_error *err) {
    memset(c, 0, sizeof *c);
    int rc = data_actfile_open(&c->f, path, err);
    if (rc < 0) return rc;
    if (!c->f->has_tokens || !c->f->vocab_size)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "has no /tokens or /vocab: there is no text to list "
                                                        "(`sae capture` writes both)");
    if ((rc = data_docs_load(&c->d, c->f, err)) < 0) return rc;
    if ((rc = data_actfile_read_vocab(c->f, &c->vocab, err)) < 0) return rc;
    c->max_piece = 6;
    for (size_t i = 0; i < c->f->vocab_size; i++) {
        size_t l = c->vocab[i] ? strlen(c->vocab[i]) : 0;
        if (!c->vocab[i]) c->vocab[i] = sae_strdup("");
        if (!c->vocab[i]) return sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory");
        c->max_piece = l > c->max_piece ? l : c->max_piece;
    }
    return SAE_OK;
}

static void docs_close(docs_ctx *c) {
    if (c->vocab) data_h5_free_strings(c->vocab, c->f->vocab_size);
    data_docs_free(&c->d);
    data_actfile_close(c->f);
}

#define DOCS_PREVIEW_CHARS 48
#define DOCS_PREVIEW_TOKENS 160

int cmd_docs(int argc, char **argv) {
    const char *label = NULL, *grep = NULL;
    int json = 0;
    cli_opt opts[] = {
        {"label", CLI_STR, &label, "only documents with this label", 0, NULL},
        {"grep", CLI_STR, &grep, "only documents whose decoded text contains TEXT (a plain substring)", 0, NULL},
        {"json", CLI_TRUE, &json, "print one JSON object", 0, NULL},
    };
    size_t n_opts = sizeof opts / sizeof opts[0], n_pos;
    const char *pos[1];
    int help, rc = cli_parse(argc, argv, "docs", opts, n_opts, pos, 1, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        cli_usage(stdout, "docs", "A.h5 [--label X] [--grep TEXT] [--json]",
                  "Lists the corpus documents of an activation file: index, label, how many capture\n"
                  "windows and tokens each became, and its first characters. --doc N in `sae show`\n"
                  "and `sae viz` means this index. --grep searches each document's whole text as\n"
                  "decoded from /tokens (byte pieces joined into characters, newline pieces as\n"
                  "newlines; BOS not kept), as a plain, case-sensitive substring.",
                  opts, n_opts);
        return CLI_EXIT_OK;
    }
    if (n_pos != 1) {
        cli_errorf("docs", "expects one activation file (try 'sae docs --help')");
        return CLI_EXIT_USAGE;
    }
    if (grep && !grep[0]) {
        cli_errorf("--grep", "is empty: give the text to look for");
        return CLI_EXIT_USAGE;
    }
    sae_paths ps = {0};
    sae_paths_add(&ps, "FILE", pos[0], SAE_PATH_IN);
    if ((rc = cli_check_paths(&ps))) return rc;
    sae_error err = {0};
    docs_ctx c;
    if ((rc = docs_open(&c, pos[0], &err)) < 0) {
        docs_close(&c);
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    if (label && !c.d.doc_label) {
        docs_close(&c);
        cli_errorf("--label", "%s has no /doc_labels", pos[0]);
        return CLI_EXIT_ERROR;
    }
    cJSON *root = json ? cJSON_CreateObject() : NULL, *arr = NULL;
    if (json) {
        cJSON_AddStringToObject(root, "file", pos[0]);
        cJSON_AddNumberToObject(root, "corpus_documents", (double)c.d.n_docs);
        cJSON_AddNumberToObject(root, "windows", (double)c.d.n_windows);
        cJSON_AddNumberToObject(root, "tokens", (double)c.d.n_rows);
        cJSON_AddBoolToObject(root, "has_doc_source", c.d.has_source);
        if (grep) cJSON_AddStringToObject(root, "grep", grep);
        if (label) cJSON_AddStringToObject(root, "label", label);
        arr = cJSON_AddArrayToObject(root, "docs");
    } else {
        printf("%s: %zu corpus document%s in %zu window%s, %zu tokens%s\n", pos[0], c.d.n_docs,
               c.d.n_docs == 1 ? "" : "s", c.d.n_windows, c.d.n_windows == 1 ? "" : "s",
               c.d.n_rows, c.d.has_source ? "" : " (no /doc_source: each window is its own document)");
        if (grep)
            printf("--grep '%s': documents whose whole decoded text contains it (a plain substring)\n", grep);
        printf("%6s  %-10s %7s %8s %8s  %s\n", "doc", "label", "windows", "tokens", "1st win", "text");
    }
    size_t shown = 0;
    for (size_t i = 0; rc == SAE_OK && i < c.d.n_docs; i++) {
        const char *lab = c.d.doc_label ? c.d.doc_label[i] : "";
        if (label && strcmp(lab, label) != 0) continue;
        int64_t lo, hi;
        data_docs_doc_rows(&c.d, i, &lo, &hi);
        if (grep) {
            char *full = rows_text(&c, lo, hi, "\n", &err);
            if (!full) rc = SAE_ERR_NOMEM;
            int hit = full && strstr(full, grep) != NULL;
            sae_free(full);
            if (!hit) continue;
        }
        int64_t phi = hi - lo > DOCS_PREVIEW_TOKENS ? lo + DOCS_PREVIEW_TOKENS : hi;
        char *text = rc == SAE_OK ? rows_text(&c, lo, phi, json ? "\n" : "⏎", &err) : NULL;
        if (!text) {
            rc = rc == SAE_OK ? SAE_ERR_NOMEM : rc;
            break;
        }
        size_t nw = (size_t)(c.d.doc_win[i + 1] - c.d.doc_win[i]), cap = strlen(text) + 1;
        cut_chars(text, cap, DOCS_PREVIEW_CHARS);
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "doc", (double)i);
            cJSON_AddStringToObject(o, "label", lab);
            cJSON_AddNumberToObject(o, "windows", (double)nw);
            cJSON_AddNumberToObject(o, "first_window", (double)c.d.doc_win[i]);
            cJSON_AddNumberToObject(o, "tokens", (double)(hi - lo));
            cJSON_AddNumberToObject(o, "first_row", (double)lo);
            cJSON_AddStringToObject(o, "text_start", text);
            cJSON_AddItemToArray(arr, o);
        } else {
            printf("%6zu  %-10.10s %7zu %8lld %8lld  %s\n", i, lab[0] ? lab : "-", nw, (long long)(hi - lo),
                   (long long)c.d.doc_win[i], text);
        }
        sae_free(text);
        shown++;
    }
    if (rc < 0) {
        cJSON_Delete(root);
        docs_close(&c);
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    if (json) {
        cJSON_AddNumberToObject(root, "shown", (double)shown);
        char *s = cJSON_Print(root);
        if (s) printf("%s\n", s);
        sae_free(s);
        cJSON_Delete(root);
    } else {
        printf("%zu of %zu corpus documents shown\n", shown, c.d.n_docs);
    }
    docs_close(&c);
    return CLI_EXIT_OK;
}
