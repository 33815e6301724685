/* data/capture.c: corpus reading, windowing, batched prefill, streaming
 * writes (see capture.h). */
#include "data/capture.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fileutil.h"
#include "common/mem.h"
#include "data/actfile.h"
#include "data/windows.h"

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
    char *meta;      /* the record's other keys as a compact JSON object, or NULL */
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
    sae_free(c->line), sae_free(c->text), sae_free(c->label), sae_free(c->meta);
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

/* --- JSON Lines keys ------------------------------------------------------------
 * "text" (or its alias "content", used by many published datasets) is the
 * document, "label" its group; every other key is metadata, carried through
 * to /doc_meta. A key that looks like a misspelt "text" or "label" is an
 * error rather than metadata, since the document would silently lose its
 * text or label: a different spelling of the whole key (case-insensitive
 * optimal string alignment distance <= 1: one letter inserted, deleted,
 * replaced, or two neighbours swapped: "txt", "labl", "Text", "labels",
 * "lable") or a prefix of one of at least 3 letters ("tex", "lab", "labe").
 * Distance 2 would also catch "level", "set" and "tests", common metadata
 * keys, so it stops at 1. */
static const char *const text_keys[] = {"text", "content", NULL};

static int is_text_key(const char *k) {
    for (int i = 0; text_keys[i]; i++)
        if (strcmp(k, text_keys[i]) == 0) return 1;
    return 0;
}

/* Case-insensitive optimal string alignment distance of a and b, or 99 when
 * either is longer than 31 bytes (far from "text" and "label" anyway). */
static int key_distance(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    if (na > 31 || nb > 31) return 99;
    int d[32][32];
    for (size_t i = 0; i <= na; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= nb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= na; i++)
        for (size_t j = 1; j <= nb; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            int best = d[i - 1][j - 1] + (ca != cb);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1; /* two neighbours swapped */
            d[i][j] = best;
        }
    return d[na][nb];
}

/* "text" or "label" when key looks like a misspelling of it, else NULL. */
static const char *misspelt_key(const char *key) {
    static const char *const wanted[] = {"text", "label"};
    if (is_text_key(key) || strcmp(key, "label") == 0) return NULL;
    size_t n = strlen(key);
    for (int i = 0; i < 2; i++)
        if (key_distance(key, wanted[i]) <= 1 || (n >= 3 && strncmp(key, wanted[i], n) == 0 &&
                                                  n < strlen(wanted[i])))
            return wanted[i];
    return NULL;
}

/* The record's keys, quoted and comma-separated, for messages. */
static void list_keys(const cJSON *obj, char *buf, size_t cap) {
    size_t at = 0;
    buf[0] = 0;
    for (const cJSON *it = obj->child; it && at + 1 < cap; it = it->next) {
        int w = snprintf(buf + at, cap - at, "%s\"%.40s\"", at ? ", " : "", it->string);
        if (w < 0) break;
        at += (size_t)w;
    }
    if (!obj->child) snprintf(buf, cap, "none");
}

/* The record's metadata: every key but the text and label taken, as a
 * compact JSON object (NULL in *out when there is none). */
static int record_meta(const cJSON *obj, const cJSON *text, const cJSON *label, char **out) {
    *out = NULL;
    cJSON *meta = NULL;
    for (const cJSON *it = obj->child; it; it = it->next) {
        if (it == text || it == label) continue;
        if (!meta && !(meta = cJSON_CreateObject())) return -1;
        cJSON *dup = cJSON_Duplicate(it, 1);
        if (!dup || !cJSON_AddItemToObject(meta, it->string, dup)) {
            cJSON_Delete(dup);
            cJSON_Delete(meta);
            return -1;
        }
    }
    if (!meta) return 0;
    char *printed = cJSON_PrintUnformatted(meta);
    cJSON_Delete(meta);
    if (!printed) return -1;
    *out = sae_strdup(printed);
    cJSON_free(printed);
    return *out ? 0 : -1;
}

/* Checks the keys of record obj and finds its text and label. */
static int record_keys(data_corpus *c, const cJSON *obj, const cJSON **text, const cJSON **label,
                       sae_error *err) {
    *text = *label = NULL;
    for (const cJSON *it = obj->child; it; it = it->next) {
        const char *want = misspelt_key(it->string);
        if (want)
            return sae_error_set(err, SAE_ERR_FORMAT, c->path,
                                 "line %zu: key \"%.60s\" looks like a misspelling of \"%s\" "
                                 "(keys are case-sensitive: a record has \"text\" and an optional "
                                 "\"label\"; other keys are kept as metadata)",
                                 c->line_no, it->string, want);
        if (strcmp(it->string, "label") == 0 && !*label) *label = it;
    }
    for (int i = 0; text_keys[i] && !*text; i++)
        *text = cJSON_GetObjectItemCaseSensitive(obj, text_keys[i]);
    if (!*text) {
        char keys[512];
        list_keys(obj, keys, sizeof keys);
        return sae_error_set(err, SAE_ERR_FORMAT, c->path,
                             "line %zu: the record has no \"text\" key (nor its alias \"content\"); "
                             "its keys: %s", c->line_no, keys);
    }
    if (!cJSON_IsString(*text) || (*label && !cJSON_IsString(*label)))
        return sae_error_set(err, SAE_ERR_FORMAT, c->path,
                             "line %zu: \"%s\" must be a string%s", c->line_no,
                             !cJSON_IsString(*text) ? (*text)->string : "label",
                             !cJSON_IsString(*text) ? "" : " when present");
    return SAE_OK;
}

/* One JSON Lines record: an object with a "text" string, an optional
 * "label" string and any other keys (metadata), nothing after it but white
 * space. */
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
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return sae_error_set(err, SAE_ERR_FORMAT, c->path,
                             "line %zu: not a JSON object with a \"text\" string "
                             "(and an optional \"label\" string)", c->line_no);
    }
    const cJSON *text, *label;
    int rc = record_keys(c, j, &text, &label, err);
    if (rc == SAE_OK && (append_text(c, text->valuestring, strlen(text->valuestring)) < 0 ||
                         (label && !(c->label = sae_strdup(label->valuestring))) ||
                         record_meta(j, text, label, &c->meta) < 0))
        rc = sae_error_set(err, SAE_ERR_NOMEM, c->path, "out of memory");
    cJSON_Delete(j);
    size_t bad;
    if (rc == SAE_OK && c->meta && data_utf8_check(c->meta, strlen(c->meta), &bad) != 0)
        rc = sae_error_set(err, SAE_ERR_FORMAT, c->path,
                           "line %zu: a metadata key or value is not valid UTF-8", c->line_no);
    return rc < 0 ? rc : 1;
}

/* 1: a document in c->text / c->label; 0: end of corpus; < 0: error */
static int corpus_read(data_corpus *c, sae_error *err) {
    c->text_len = 0;
    if (c->text) c->text[0] = 0;
    sae_free(c->label), sae_free(c->meta);
    c->label = c->meta = NULL;
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
    *doc = (data_corpus_doc){c->text, c->text_len, c->label, c->doc_line, c->meta};
    return 1;
}

/* --- next-token predictions ----------------------------------------------------- */
/* a before b in the prediction order: more probable, or as probable and a
 * lower id */
static int pred_before(float va, int32_t ia, float vb, int32_t ib) {
    return va > vb || (va == vb && ia < ib);
}

/* Sifts entry i of a min-heap (the least probable at the root) down. */
static void heap_down(float *val, int32_t *id, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, worst = i;
        if (l < n && pred_before(val[worst], id[worst], val[l], id[l])) worst = l;
        if (r < n && pred_before(val[worst], id[worst], val[r], id[r])) worst = r;
        if (worst == i) return;
        float tv = val[i];
        int32_t ti = id[i];
        val[i] = val[worst], id[i] = id[worst];
        val[worst] = tv, id[worst] = ti;
        i = worst;
    }
}

/* The K most probable of V logits, most probable first (ties: lower id),
 * with their natural-log probabilities l - logsumexp(l), the sum in double.
 * A bounded min-heap: O(V log K). Returns -1 if a logit is not finite. */
static int top_logprobs(const float *logits, size_t V, size_t K, int32_t *ids, float *logprob) {
    float mx = logits[0];
    for (size_t v = 0; v < V; v++) {
        if (!isfinite(logits[v])) return -1;
        if (logits[v] > mx) mx = logits[v];
    }
    double sum = 0;
    for (size_t v = 0; v < V; v++) sum += exp((double)logits[v] - mx);
    double lse = (double)mx + log(sum);
    float *val = logprob; /* the heap lives in the output until it is sorted */
    size_t n = 0;
    for (size_t v = 0; v < V; v++) {
        float x = logits[v];
        if (n < K) { /* sift the new entry up */
            size_t i = n++;
            val[i] = x, ids[i] = (int32_t)v;
            while (i && pred_before(val[(i - 1) / 2], ids[(i - 1) / 2], val[i], ids[i])) {
                size_t up = (i - 1) / 2;
                float tv = val[i];
                int32_t ti = ids[i];
                val[i] = val[up], ids[i] = ids[up];
                val[up] = tv, ids[up] = ti;
                i = up;
            }
        } else if (pred_before(x, (int32_t)v, val[0], ids[0])) {
            val[0] = x, ids[0] = (int32_t)v;
            heap_down(val, ids, n, 0);
        }
    }
    /* heap sort: repeatedly move the least probable to the end */
    for (size_t end = n; end > 1; end--) {
        float tv = val[0];
        int32_t ti = ids[0];
        val[0] = val[end - 1], ids[0] = ids[end - 1];
        val[end - 1] = tv, ids[end - 1] = ti;
        heap_down(val, ids, end - 1, 0);
    }
    for (size_t k = 0; k < n; k++) logprob[k] = (float)((double)val[k] - lse);
    return 0;
}

/* --- windows and batches ------------------------------------------------------- */
/* What the hook copies: each requested site into its own (rows, dim) buffer,
 * and for --predictions the last block's resid_post. The hook only reads x. */
typedef struct {
    const data_capture_site *sites;
    float **dst; /* (n, ) each (rows, dim) */
    size_t n, dim;
    int last_layer;
    float *final; /* (rows, dim) the last block's resid_post, or NULL */
} site_copy;

static void copy_hook(int layer, data_site site, float *x, size_t rows, void *user) {
    site_copy *s = user;
    for (size_t i = 0; i < s->n; i++)
        if (layer == s->sites[i].layer && site == s->sites[i].site)
            memcpy(s->dst[i], x, rows * s->dim * sizeof(float));
    if (s->final && layer == s->last_layer && site == DATA_SITE_RESID_POST)
        memcpy(s->final, x, rows * s->dim * sizeof(float));
}

typedef struct {
    float **acts;    /* (n_sites) each (cap, dim): the forward's rows, then the
                        written ones packed to the front in place */
    int32_t *tok_out; /* (cap) the written rows' tokens */
    /* --predictions */
    float *final;    /* (cap, dim) the last block's resid_post, packed likewise */
    float *normed, *logits; /* (PRED_ROWS, dim), (PRED_ROWS, V) */
    int32_t *pred_id; /* (cap, K) */
    float *pred_lp;   /* (cap, K) */
} batch;

/* rows per classifier product: bounds the logits buffer (rows x V floats) */
#define PRED_ROWS 256

typedef struct {
    int64_t *off;     /* window row offsets in the output */
    char **labels, **meta;
    int64_t *source;
    size_t n, cap;
    int any_label, any_meta;
} window_index;

static int index_add(window_index *w, int64_t end, const char *label, const char *meta,
                     int64_t source) {
    if (w->n + 2 > w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 1024;
        int64_t *o = sae_realloc(w->off, cap * sizeof *o);
        if (o) w->off = o;
        char **l = o ? sae_realloc(w->labels, cap * sizeof *l) : NULL;
        if (l) w->labels = l;
        char **mt = l ? sae_realloc(w->meta, cap * sizeof *mt) : NULL;
        if (mt) w->meta = mt;
        int64_t *s = mt ? sae_realloc(w->source, cap * sizeof *s) : NULL;
        if (s) w->source = s;
        if (!s) return -1;
        w->cap = cap;
    }
    if (w->n == 0) w->off[0] = 0;
    w->labels[w->n] = sae_strdup(label ? label : "");
    w->meta[w->n] = w->labels[w->n] ? sae_strdup(meta ? meta : "") : NULL;
    if (!w->meta[w->n]) {
        sae_free(w->labels[w->n]);
        return -1;
    }
    w->any_label |= label != NULL;
    w->any_meta |= meta != NULL;
    w->source[w->n] = source;
    w->off[++w->n] = end;
    return 0;
}

static void index_free(window_index *w) {
    for (size_t i = 0; i < w->n; i++) sae_free(w->labels[i]), sae_free(w->meta[i]);
    sae_free(w->off), sae_free(w->labels), sae_free(w->meta), sae_free(w->source);
}

typedef struct {
    const data_llama *m;
    data_llama_run *run;
    const data_capture_params *p;
    const data_capture_site *sites; /* (n_sites) */
    size_t n_sites;
    int last_layer;     /* the deepest block asked for */
    data_actwriter **w; /* (n_sites) one output per site */
    window_index idx;   /* the same windows in every output */
    batch b;
    uint64_t rows_written;
} capture_ctx;

/* Top-K predictions of the n written rows from their final residuals:
 * classifier products of PRED_ROWS rows, then the selection in parallel;
 * computed once and appended to every output. */
static int predict_rows(capture_ctx *c, size_t n, sae_error *err) {
    batch *b = &c->b;
    size_t D = (size_t)c->m->c.dim, V = (size_t)c->m->c.vocab_size, K = c->p->predictions;
    for (size_t r0 = 0; r0 < n; r0 += PRED_ROWS) {
        size_t cnt = n - r0 < PRED_ROWS ? n - r0 : PRED_ROWS;
        data_llama_logits(c->m, b->final + r0 * D, cnt, b->normed, b->logits);
        int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad)
        for (size_t i = 0; i < cnt; i++)
            bad |= top_logprobs(b->logits + i * V, V, K, b->pred_id + (r0 + i) * K,
                                b->pred_lp + (r0 + i) * K) < 0;
        if (bad)
            return sae_error_set(err, SAE_ERR_FORMAT, c->m->path,
                                 "the model's logits are not finite near output row %llu: "
                                 "damaged weights?", (unsigned long long)(c->rows_written + r0));
    }
    int rc = SAE_OK;
    for (size_t s = 0; rc == SAE_OK && s < c->n_sites; s++)
        rc = data_actwriter_append_predictions(c->w[s], b->pred_id, b->pred_lp, n, K, err);
    return rc;
}

/* Moves the written rows of x (rows, D) to its front, in order: row i goes
 * to n <= i, so the move never overwrites a row still to be read. */
static void pack_rows(float *x, size_t D, const data_window_batch *w, int keep_bos) {
    size_t n = 0;
    for (size_t s = 0; s < w->n_win; s++)
        for (size_t i = w->off[s] + (keep_bos ? 0 : 1); i < w->off[s + 1]; i++, n++)
            if (n != i) memcpy(x + n * D, x + i * D, D * sizeof(float));
}

/* Runs one batch of windows, once for every site, and appends their rows
 * (minus BOS unless kept) to each output. */
static int run_batch(capture_ctx *c, const data_window_batch *w, sae_error *err) {
    batch *b = &c->b;
    size_t D = (size_t)c->m->c.dim, n = 0;
    int predict = c->p->predictions > 0, keep = c->p->keep_bos;
    site_copy sc = {c->sites, b->acts, c->n_sites, D, c->m->c.n_layers - 1,
                    predict ? b->final : NULL};
    /* predictions need every block, not just those up to the deepest site */
    data_llama_forward(c->run, w->tokens, w->off, w->n_win, predict ? -1 : c->last_layer, copy_hook,
                       &sc, NULL);
    for (size_t s = 0; s < w->n_win; s++) {
        for (size_t i = w->off[s] + (keep ? 0 : 1); i < w->off[s + 1]; i++)
            b->tok_out[n++] = w->tokens[i];
        if (index_add(&c->idx, (int64_t)(c->rows_written + n), w->label[s], w->meta[s], w->source[s]) < 0)
            return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    }
    if (!keep) {
        for (size_t s = 0; s < c->n_sites; s++) pack_rows(b->acts[s], D, w, keep);
        if (predict) pack_rows(b->final, D, w, keep);
    }
    int rc = SAE_OK;
    for (size_t s = 0; rc == SAE_OK && s < c->n_sites; s++)
        rc = data_actwriter_append(c->w[s], b->acts[s], b->tok_out, n, err);
    if (rc == SAE_OK && predict) rc = predict_rows(c, n, err);
    c->rows_written += n;
    return rc;
}

/* Everything but the rows, into output w: the same in every output. */
static int write_meta(capture_ctx *c, data_actwriter *w, const char *const *vocab, size_t V,
                      const char *tokenizer_path, size_t seq_len, sae_error *err) {
    size_t D = (size_t)c->m->c.dim;
    int rc = data_actwriter_set_docs(w, c->idx.off, c->idx.n,
                                     c->idx.any_label ? (const char *const *)c->idx.labels : NULL, err);
    if (rc == SAE_OK) rc = data_actwriter_put_i64(w, "doc_source", c->idx.source, c->idx.n, err);
    if (rc == SAE_OK && c->idx.any_meta)
        rc = data_actwriter_put_strings(w, "doc_meta", (const char *const *)c->idx.meta, c->idx.n,
                                        err);
    if (rc == SAE_OK) rc = data_actwriter_set_vocab(w, vocab, V, err);
    if (rc == SAE_OK) rc = data_actwriter_put_f32(w, "unembed", c->m->wcls, V, D, err);
    if (rc == SAE_OK) rc = data_actwriter_put_f32(w, "final_norm", c->m->rms_final, D, 0, err);
    if (rc == SAE_OK) {
        data_actwriter_set_attr_str(w, "tokenizer", tokenizer_path);
        data_actwriter_set_attr_i64(w, "seq_len", (int64_t)seq_len);
        data_actwriter_set_attr_i64(w, "keep_bos", c->p->keep_bos);
        data_actwriter_set_attr_i64(w, "predictions", (int64_t)c->p->predictions);
    }
    return rc;
}

/* The tokenizer's display pieces (V malloc'd strings), for /vocab. */
static char **vocab_pieces(const data_tokenizer *t, size_t V) {
    char **vocab = sae_calloc_n(V, sizeof *vocab);
    for (size_t i = 0; vocab && i < V; i++) {
        char buf[512];
        data_tokenizer_display(t, (int32_t)i, buf, sizeof buf);
        if (!(vocab[i] = sae_strdup(buf))) {
            for (size_t j = 0; j < i; j++) sae_free(vocab[j]);
            sae_free(vocab);
            vocab = NULL;
        }
    }
    return vocab;
}

/* Writes the metadata into every output, then closes and renames each. If
 * one fails, the outputs not yet finished are aborted and those already
 * renamed into place are removed: all of them appear or none. */
static int finish_all(capture_ctx *c, const data_tokenizer *t, const char *tokenizer_path,
                      size_t seq_len, int rc, sae_error *err) {
    size_t V = data_tokenizer_vocab_size(t);
    char **vocab = rc == SAE_OK ? vocab_pieces(t, V) : NULL;
    if (rc == SAE_OK && !vocab) rc = sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    for (size_t s = 0; rc == SAE_OK && s < c->n_sites; s++)
        rc = write_meta(c, c->w[s], (const char *const *)vocab, V, tokenizer_path, seq_len, err);
    size_t done = 0;
    for (; rc == SAE_OK && done < c->n_sites; done++) {
        rc = data_actwriter_finish(c->w[done], err); /* frees it, on failure too */
        c->w[done] = NULL;
    }
    for (size_t s = 0; s < c->n_sites; s++) {
        if (c->w[s]) data_actwriter_abort(c->w[s]);
        c->w[s] = NULL;
    }
    if (rc < 0)
        for (size_t s = 0; s + 1 < done; s++) remove(c->sites[s].out_path);
    for (size_t i = 0; vocab && i < V; i++) sae_free(vocab[i]);
    sae_free(vocab);
    return rc;
}

/* The sites asked for: p's list, or its one layer/site/out_path. Refuses a
 * layer out of range, a (layer, site) asked twice, two sites into one path. */
static int check_sites(const data_capture_site *sites, size_t n, int n_layers, sae_error *err) {
    for (size_t i = 0; i < n; i++) {
        const data_capture_site *a = &sites[i];
        if (a->layer < 0 || a->layer >= n_layers)
            return sae_error_set(err, SAE_ERR_ARG, "--layer", "layer %d is out of range: the model "
                                 "has %d blocks (0..%d)", a->layer, n_layers, n_layers - 1);
        if ((int)a->site < 0 || (int)a->site >= DATA_N_SITES)
            return sae_error_set(err, SAE_ERR_ARG, "--site", "site %d is not one of the %d sites",
                                 (int)a->site, DATA_N_SITES);
        if (!a->out_path || !a->out_path[0])
            return sae_error_set(err, SAE_ERR_ARG, "--out", "no output path for %s of layer %d",
                                 data_site_name(a->site), a->layer);
        for (size_t j = 0; j < i; j++) {
            if (sites[j].layer == a->layer && sites[j].site == a->site)
                return sae_error_set(err, SAE_ERR_ARG, "--layer", "%s of layer %d is asked for twice",
                                     data_site_name(a->site), a->layer);
            if (strcmp(sites[j].out_path, a->out_path) == 0)
                return sae_error_set(err, SAE_ERR_ARG, a->out_path, "%s of layer %d and %s of layer "
                                     "%d would both be written to this file",
                                     data_site_name(sites[j].site), sites[j].layer,
                                     data_site_name(a->site), a->layer);
        }
    }
    return SAE_OK;
}

int data_capture_run(const data_llama *m, const char *model_path, const data_tokenizer *t,
                     const char *tokenizer_path, const data_capture_params *p, data_capture_cb cb,
                     void *user, sae_error *err) {
    const data_llama_config *mc = &m->c;
    data_capture_site one = {p->layer, p->site, p->out_path};
    const data_capture_site *sites = p->n_sites ? p->sites : &one;
    size_t n_sites = p->n_sites ? p->n_sites : 1;
    if (p->n_sites && !p->sites)
        return sae_error_set(err, SAE_ERR_ARG, NULL, "n_sites is %zu but no sites are given", n_sites);
    int rc = check_sites(sites, n_sites, mc->n_layers, err);
    if (rc < 0) return rc;
    size_t seq_len = p->seq_len ? p->seq_len : (size_t)mc->seq_len;
    if (seq_len < 2 || seq_len > (size_t)mc->seq_len)
        return sae_error_set(err, SAE_ERR_ARG, "--seq-len", "must be in 2..%d (the model's seq_len)",
                             mc->seq_len);
    size_t V = (size_t)mc->vocab_size;
    if (p->predictions > V || p->predictions > DATA_MAX_PREDICTIONS)
        return sae_error_set(err, SAE_ERR_ARG, "--predictions",
                             "%zu is more than %s (%zu): store at most that many predictions per row",
                             p->predictions, V <= DATA_MAX_PREDICTIONS ? "the model's vocabulary" : "the limit",
                             V <= DATA_MAX_PREDICTIONS ? V : (size_t)DATA_MAX_PREDICTIONS);
    size_t D = (size_t)mc->dim, K = p->predictions;

    data_windows *win;
    rc = data_windows_open(&win, p->corpus_path, t, seq_len, p->batch_rows, err);
    if (rc < 0) return rc;
    size_t cap = data_windows_max_rows(win);
    capture_ctx c = {.m = m, .p = p, .sites = sites, .n_sites = n_sites, .last_layer = 0};
    for (size_t s = 0; s < n_sites; s++)
        if (sites[s].layer > c.last_layer) c.last_layer = sites[s].layer;
    batch *b = &c.b;
    b->acts = sae_calloc_n(n_sites, sizeof *b->acts);
    c.w = sae_calloc_n(n_sites, sizeof *c.w);
    b->tok_out = sae_malloc(cap * sizeof *b->tok_out);
    int nomem = !b->acts || !c.w || !b->tok_out;
    for (size_t s = 0; !nomem && s < n_sites; s++)
        nomem = !(b->acts[s] = sae_alloc(cap * D * sizeof(float)));
    if (nomem) rc = sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    if (rc == SAE_OK && K) {
        b->final = sae_alloc(cap * D * sizeof(float));
        b->normed = sae_alloc(PRED_ROWS * D * sizeof(float));
        b->logits = sae_alloc(PRED_ROWS * V * sizeof(float));
        b->pred_id = sae_calloc_n(cap * K, sizeof *b->pred_id);
        b->pred_lp = sae_calloc_n(cap * K, sizeof *b->pred_lp);
        if (!b->final || !b->normed || !b->logits || !b->pred_id || !b->pred_lp)
            rc = sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory for --predictions %zu", K);
    }
    /* attention scores sized by the window, not the model's context */
    if (rc == SAE_OK) rc = data_llama_run_init_seq(&c.run, m, cap, seq_len, err);
    const char *name = data_llama_short_name(model_path);
    for (size_t s = 0; rc == SAE_OK && s < n_sites; s++) {
        data_actwriter_opts o = {.d = D, .float16 = p->float16, .model = name,
                                 .hook = data_site_name(sites[s].site), .layer = sites[s].layer};
        rc = data_actwriter_open(&c.w[s], sites[s].out_path, &o, err);
    }
    data_capture_progress pr = {0};
    data_windows_progress wp;
    while (rc == SAE_OK) {
        data_window_batch wb;
        int got = data_windows_next(win, &wb, err);
        if (got < 0) rc = got;
        if (got <= 0) break;
        rc = run_batch(&c, &wb, err);
        data_windows_get_progress(win, &wp);
        pr = (data_capture_progress){.docs = wp.docs, .windows = wp.windows,
                                     .tokens = wp.tokens + (p->keep_bos ? wp.windows : 0),
                                     .bytes_done = wp.bytes_done, .bytes_total = wp.bytes_total};
        if (rc == SAE_OK && cb) cb(&pr, user);
    }
    if (rc == SAE_OK && c.rows_written == 0)
        rc = sae_error_set(err, SAE_ERR_FORMAT, p->corpus_path, "no text to capture (empty corpus)");
    pr.finished = 1;
    if (rc == SAE_OK && cb) cb(&pr, user);
    if (c.w) rc = finish_all(&c, t, tokenizer_path, seq_len, rc, err);
    for (size_t s = 0; b->acts && s < n_sites; s++) sae_free(b->acts[s]);
    sae_free(b->acts), sae_free(c.w), sae_free(b->tok_out);
    sae_free(b->final), sae_free(b->normed), sae_free(b->logits);
    sae_free(b->pred_id), sae_free(b->pred_lp);
    data_llama_run_free(c.run);
    index_free(&c.idx);
    data_windows_close(win);
    return rc;
}
