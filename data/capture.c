/* data/capture.c: corpus reading, windowing, batched prefill, streaming
 * writes (see capture.h). */
#include "data/capture.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fileutil.h"
#include "common/mem.h"
#include "data/actfile.h"

/* --- corpus: one document at a time ---------------------------------------- */
struct data_corpus {
    const char *path;
    FILE *f;
    int jsonl;
    char *line;
    size_t line_cap, line_no;
    uint64_t bytes, docs;
    char *text; /* the current document (plain text accumulates lines here) */
    size_t text_len, text_cap;
    char *label;
    size_t doc_line; /* line where the current document starts */
};

static const unsigned char utf8_bom[3] = {0xef, 0xbb, 0xbf};

int data_corpus_open(data_corpus **out, const char *path, sae_error *err) {
    *out = NULL;
    int rc = sae_check_input_file(path, "--corpus", err);
    if (rc < 0) return rc;
    struct stat st;
    if (stat(path, &st) != 0) return sae_error_set(err, SAE_ERR_IO, path, "%s", strerror(errno));
    if (!S_ISREG(st.st_mode)) return sae_error_set(err, SAE_ERR_IO, path, "not a regular file");
    data_corpus *c = sae_calloc_n(1, sizeof *c);
    if (!c) return sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory");
    c->path = path;
    c->f = fopen(path, "rb");
    if (!c->f) {
        int e = errno;
        sae_free(c);
        return sae_error_set(err, SAE_ERR_IO, path, "%s", strerror(e));
    }
    /* a UTF-8 byte order mark is not text: skip it before deciding the format
     * (with it, a JSON Lines corpus used to be read as plain text) */
    unsigned char bom[3];
    size_t got = fread(bom, 1, 3, c->f);
    long start = got == 3 && memcmp(bom, utf8_bom, 3) == 0 ? 3 : 0;
    fseek(c->f, start, SEEK_SET);
    int ch;
    while ((ch = fgetc(c->f)) != EOF && isspace(ch)) {}
    c->jsonl = ch == '{';
    fseek(c->f, start, SEEK_SET);
    c->bytes = (uint64_t)start;
    *out = c;
    return SAE_OK;
}

void data_corpus_close(data_corpus *c) {
    if (!c) return;
    if (c->f) fclose(c->f);
    sae_free(c->line), sae_free(c->text), sae_free(c->label);
    sae_free(c);
}

uint64_t data_corpus_bytes(const data_corpus *c) { return c->bytes; }

static int append_text(data_corpus *c, const char *s, size_t n) {
    if (c->text_len + n + 1 > c->text_cap) {
        size_t cap = (c->text_len + n + 1) * 2;
        char *t = sae_realloc(c->text, cap);
        if (!t) return -1;
        c->text = t;
        c->text_cap = cap;
    }
    memcpy(c->text + c->text_len, s, n);
    c->text_len += n;
    c->text[c->text_len] = 0;
    return 0;
}

static int blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)s[i])) return 0;
    return 1;
}

/* 1 if the JSON text s[0..n) writes a NUL as \u0000 inside a string: cJSON
 * decodes it, and the C string it hands back ends there, silently cutting
 * the text. Escapes are skipped pairwise, so "\\u0000" (a backslash, then
 * the letters) is not one. */
static int json_has_nul_escape(const char *s, size_t n) {
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '\\') continue;
        if (s[i + 1] == 'u' && i + 5 < n && memcmp(s + i + 2, "0000", 4) == 0) return 1;
        i++; /* the escaped character */
    }
    return 0;
}

/* One JSON Lines record: an object with a "text" string and an optional
 * "label" string, nothing after it but white space. */
static int parse_jsonl(data_corpus *c, size_t len, sae_error *err) {
    if (json_has_nul_escape(c->line, len))
        return sae_error_set(err, SAE_ERR_FORMAT, c->path,
                             "line %zu: the text contains \\u0000 (a NUL character); the tokenizer "
                             "takes text without NUL", c->line_no);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(c->line, len, &end, 0);
    if (j && !blank(end, len - (size_t)(end - c->line))) {
        cJSON_Delete(j);
        return sae_error_set(err, SAE_ERR_FORMAT, c->path,
                             "line %zu: junk after the JSON object at byte %zu", c->line_no,
                             (size_t)(end - c->line) + 1);
    }
    cJSON *text = j ? cJSON_GetObjectItemCaseSensitive(j, "text") : NULL;
    cJSON *label = j ? cJSON_GetObjectItemCaseSensitive(j, "label") : NULL;
    int ok = cJSON_IsObject(j) && cJSON_IsString(text) && (!label || cJSON_IsString(label));
    int rc = ok ? SAE_OK : -1;
    if (ok && append_text(c, text->valuestring, strlen(text->valuestring)) < 0) rc = -2;
    if (ok && label && !(c->label = sae_strdup(label->valuestring))) rc = -2;
    cJSON_Delete(j);
    if (rc == -1)
        return sae_error_set(err, SAE_ERR_FORMAT, c->path,
                             "line %zu: not a JSON object with a \"text\" string "
                             "(and an optional \"label\" string)", c->line_no);
    if (rc == -2) return sae_error_set(err, SAE_ERR_NOMEM, c->path, "out of memory");
    return 1;
}

/* 1: a document in c->text / c->label; 0: end of corpus; < 0: error */
static int corpus_read(data_corpus *c, sae_error *err) {
    c->text_len = 0;
    if (c->text) c->text[0] = 0;
    sae_free(c->label);
    c->label = NULL;
    ssize_t n;
    while ((n = getline(&c->line, &c->line_cap, c->f)) >= 0) {
        c->line_no++;
        c->bytes += (uint64_t)n;
        size_t len = (size_t)n;
        while (len && (c->line[len - 1] == '\n' || c->line[len - 1] == '\r')) len--;
        if (memchr(c->line, 0, len))
            return sae_error_set(err, SAE_ERR_FORMAT, c->path,
                                 "line %zu: contains a NUL byte (not text)", c->line_no);
        if (c->jsonl) {
            if (blank(c->line, len)) continue;
            c->doc_line = c->line_no;
            return parse_jsonl(c, len, err);
        }
        if (blank(c->line, len)) {
            if (c->text_len) return 1; /* a blank line ends the document */
            continue;
        }
        if (c->text_len == 0) c->doc_line = c->line_no;
        if ((c->text_len && append_text(c, "\n", 1) < 0) || append_text(c, c->line, len) < 0)
            return sae_error_set(err, SAE_ERR_NOMEM, c->path, "out of memory");
    }
    if (ferror(c->f)) return sae_error_set(err, SAE_ERR_IO, c->path, "read error: %s", strerror(errno));
    return c->text_len ? 1 : 0;
}

int data_corpus_next(data_corpus *c, data_corpus_doc *doc, sae_error *err) {
    int got = corpus_read(c, err);
    if (got <= 0) return got;
    c->docs++;
    size_t bad;
    if (data_utf8_check(c->text, c->text_len, &bad) != 0)
        return sae_error_set(err, SAE_ERR_FORMAT, c->path,
                             "document %llu (line %zu) is not valid UTF-8 at byte %zu of its text",
                             (unsigned long long)c->docs, c->doc_line, bad);
    *doc = (data_corpus_doc){c->text, c->text_len, c->label, c->doc_line};
    return 1;
}

/* --- windows and batches ------------------------------------------------------- */
typedef struct {
    int layer;
    data_site site;
    float *dst; /* (rows, dim) */
    size_t dim;
} site_copy;

static void copy_hook(int layer, data_site site, const float *x, size_t rows, void *user) {
    site_copy *s = user;
    if (layer == s->layer && site == s->site) memcpy(s->dst, x, rows * s->dim * sizeof(float));
}

typedef struct {
    int32_t *tokens; /* (cap) window tokens, BOS first */
    size_t *off;     /* (max_windows + 1) */
    size_t n_rows, n_win, cap, max_win;
    float *acts;     /* (cap, dim) */
    float *rows_out; /* (cap, dim) written rows */
    int32_t *tok_out;
} batch;

typedef struct {
    int64_t *off;     /* window row offsets in the output */
    char **labels;
    int64_t *source;
    size_t n, cap;
    int any_label;
} window_index;

static int index_add(window_index *w, int64_t end, const char *label, int64_t source) {
    if (w->n + 2 > w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 1024;
        int64_t *o = sae_realloc(w->off, cap * sizeof *o);
        if (o) w->off = o;
        char **l = o ? sae_realloc(w->labels, cap * sizeof *l) : NULL;
        if (l) w->labels = l;
        int64_t *s = l ? sae_realloc(w->source, cap * sizeof *s) : NULL;
        if (s) w->source = s;
        if (!s) return -1;
        w->cap = cap;
    }
    if (w->n == 0) w->off[0] = 0;
    w->labels[w->n] = sae_strdup(label ? label : "");
    if (!w->labels[w->n]) return -1;
    w->any_label |= label != NULL;
    w->source[w->n] = source;
    w->off[++w->n] = end;
    return 0;
}

static void index_free(window_index *w) {
    for (size_t i = 0; i < w->n; i++) sae_free(w->labels[i]);
    sae_free(w->off), sae_free(w->labels), sae_free(w->source);
}

typedef struct {
    const data_llama *m;
    data_llama_run *run;
    const data_capture_params *p;
    data_actwriter *w;
    window_index idx;
    batch b;
    uint64_t rows_written;
} capture_ctx;

/* Runs the pending windows and appends their rows (minus BOS unless kept). */
static int flush(capture_ctx *c, const char *label_of_pending[], const int64_t *source_of_pending,
                 sae_error *err) {
    batch *b = &c->b;
    if (b->n_win == 0) return SAE_OK;
    size_t D = (size_t)c->m->c.dim, n = 0;
    site_copy sc = {c->p->layer, c->p->site, b->acts, D};
    data_llama_forward(c->run, b->tokens, b->off, b->n_win, c->p->layer, copy_hook, &sc, NULL);
    for (size_t s = 0; s < b->n_win; s++) {
        for (size_t i = b->off[s] + (c->p->keep_bos ? 0 : 1); i < b->off[s + 1]; i++) {
            memcpy(b->rows_out + n * D, b->acts + i * D, D * sizeof(float));
            b->tok_out[n++] = b->tokens[i];
        }
        if (index_add(&c->idx, (int64_t)(c->rows_written + n), label_of_pending[s],
                      source_of_pending[s]) < 0)
            return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    }
    int rc = data_actwriter_append(c->w, b->rows_out, b->tok_out, n, err);
    c->rows_written += n;
    b->n_rows = b->n_win = 0;
    return rc;
}

static int write_meta(capture_ctx *c, const data_tokenizer *t, const char *tokenizer_path,
                      size_t seq_len, sae_error *err) {
    size_t V = data_tokenizer_vocab_size(t), D = (size_t)c->m->c.dim;
    char **vocab = sae_calloc_n(V, sizeof *vocab);
    int rc = vocab ? SAE_OK : sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; rc == SAE_OK && i < V; i++) {
        char buf[512];
        data_tokenizer_display(t, (int32_t)i, buf, sizeof buf);
        if (!(vocab[i] = sae_strdup(buf))) rc = sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    }
    if (rc == SAE_OK)
        rc = data_actwriter_set_docs(c->w, c->idx.off, c->idx.n,
                                     c->idx.any_label ? (const char *const *)c->idx.labels : NULL, err);
    if (rc == SAE_OK) rc = data_actwriter_put_i64(c->w, "doc_source", c->idx.source, c->idx.n, err);
    if (rc == SAE_OK) rc = data_actwriter_set_vocab(c->w, (const char *const *)vocab, V, err);
    if (rc == SAE_OK) rc = data_actwriter_put_f32(c->w, "unembed", c->m->wcls, V, D, err);
    if (rc == SAE_OK) rc = data_actwriter_put_f32(c->w, "final_norm", c->m->rms_final, D, 0, err);
    if (rc == SAE_OK) {
        data_actwriter_set_attr_str(c->w, "tokenizer", tokenizer_path);
        data_actwriter_set_attr_i64(c->w, "seq_len", (int64_t)seq_len);
        data_actwriter_set_attr_i64(c->w, "keep_bos", c->p->keep_bos);
    }
    for (size_t i = 0; vocab && i < V; i++) sae_free(vocab[i]);
    sae_free(vocab);
    return rc;
}

int data_capture_run(const data_llama *m, const char *model_path, const data_tokenizer *t,
                     const char *tokenizer_path, const data_capture_params *p, data_capture_cb cb,
                     void *user, sae_error *err) {
    const data_llama_config *mc = &m->c;
    if (p->layer < 0 || p->layer >= mc->n_layers)
        return sae_error_set(err, SAE_ERR_ARG, "--layer", "layer %d is out of range: the model has %d "
                             "blocks (0..%d)", p->layer, mc->n_layers, mc->n_layers - 1);
    size_t seq_len = p->seq_len ? p->seq_len : (size_t)mc->seq_len;
    if (seq_len < 2 || seq_len > (size_t)mc->seq_len)
        return sae_error_set(err, SAE_ERR_ARG, "--seq-len", "must be in 2..%d (the model's seq_len)",
                             mc->seq_len);
    size_t batch_rows = p->batch_rows < seq_len ? seq_len : p->batch_rows;
    size_t max_win = batch_rows / seq_len, cap = max_win * seq_len, D = (size_t)mc->dim;

    data_corpus *cp;
    int rc = data_corpus_open(&cp, p->corpus_path, err);
    if (rc < 0) return rc;
    struct stat st;
    uint64_t total_bytes = stat(p->corpus_path, &st) == 0 ? (uint64_t)st.st_size : 0;
    capture_ctx c = {.m = m, .p = p};
    batch *b = &c.b;
    b->cap = cap;
    b->max_win = max_win;
    b->tokens = sae_malloc(cap * sizeof *b->tokens);
    b->off = sae_malloc((max_win + 1) * sizeof *b->off);
    b->acts = sae_alloc(cap * D * sizeof(float));
    b->rows_out = sae_alloc(cap * D * sizeof(float));
    b->tok_out = sae_malloc(cap * sizeof *b->tok_out);
    const char **pending_label = sae_calloc_n(max_win, sizeof *pending_label);
    int64_t *pending_source = sae_calloc_n(max_win, sizeof *pending_source);
    char **doc_labels = sae_calloc_n(max_win, sizeof *doc_labels); /* owned copies for pending windows */
    if (!b->tokens || !b->off || !b->acts || !b->rows_out || !b->tok_out || !pending_label ||
        !pending_source || !doc_labels)
        rc = sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    /* attention scores sized by the window, not the model's context */
    if (rc == SAE_OK) rc = data_llama_run_init_seq(&c.run, m, cap, seq_len, err);
    if (rc == SAE_OK) {
        /* "jaen-6m/model.bin": the file name alone is often just "model.bin" */
        const char *name = model_path + strlen(model_path);
        int slashes = 0;
        while (name > model_path && !(name[-1] == '/' && ++slashes == 2)) name--;
        data_actwriter_opts o = {.d = D, .float16 = p->float16, .model = name,
                                 .hook = data_site_name(p->site), .layer = p->layer};
        rc = data_actwriter_open(&c.w, p->out_path, &o, err);
    }
    data_capture_progress pr = {.bytes_total = total_bytes};
    int32_t *ids = NULL;
    while (rc == SAE_OK) {
        data_corpus_doc doc_in;
        int got = data_corpus_next(cp, &doc_in, err);
        if (got < 0) rc = got;
        if (got <= 0) break;
        size_t n;
        sae_free(ids);
        ids = NULL;
        if ((rc = data_tokenizer_encode(t, doc_in.text, doc_in.len, 0, &ids, &n, err)) < 0) break;
        int64_t doc = (int64_t)pr.docs++;
        size_t W = seq_len - 1;
        for (size_t w0 = 0; w0 < n && rc == SAE_OK; w0 += W) {
            size_t len = n - w0 < W ? n - w0 : W;
            if (b->n_win == max_win) {
                rc = flush(&c, pending_label, pending_source, err);
                for (size_t i = 0; i < max_win; i++) sae_free(doc_labels[i]), doc_labels[i] = NULL;
                if (rc < 0) break;
                pr.bytes_done = data_corpus_bytes(cp);
                if (cb) cb(&pr, user);
            }
            b->off[b->n_win] = b->n_rows;
            b->tokens[b->n_rows++] = DATA_TOKEN_BOS;
            memcpy(b->tokens + b->n_rows, ids + w0, len * sizeof *ids);
            b->n_rows += len;
            doc_labels[b->n_win] = doc_in.label ? sae_strdup(doc_in.label) : NULL;
            if (doc_in.label && !doc_labels[b->n_win]) {
                rc = sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory for a document label");
                break;
            }
            pending_label[b->n_win] = doc_labels[b->n_win];
            pending_source[b->n_win] = doc;
            b->off[++b->n_win] = b->n_rows;
            pr.windows++;
            pr.tokens += len + (p->keep_bos ? 1 : 0);
        }
    }
    if (rc == SAE_OK) rc = flush(&c, pending_label, pending_source, err);
    if (rc == SAE_OK && c.rows_written == 0)
        rc = sae_error_set(err, SAE_ERR_FORMAT, p->corpus_path, "no text to capture (empty corpus)");
    pr.bytes_done = data_corpus_bytes(cp);
    pr.finished = 1;
    if (rc == SAE_OK && cb) cb(&pr, user);
    if (rc == SAE_OK) rc = write_meta(&c, t, tokenizer_path, seq_len, err);
    if (c.w) {
        if (rc == SAE_OK) rc = data_actwriter_finish(c.w, err);
        else data_actwriter_abort(c.w);
    }
    for (size_t i = 0; doc_labels && i < max_win; i++) sae_free(doc_labels[i]);
    sae_free(doc_labels), sae_free(pending_label), sae_free(pending_source), sae_free(ids);
    sae_free(b->tokens), sae_free(b->off), sae_free(b->acts), sae_free(b->rows_out), sae_free(b->tok_out);
    data_llama_run_free(c.run);
    index_free(&c.idx);
    data_corpus_close(cp);
    return rc;
}
