/* data/docs.c: corpus documents and windows (see docs.h). */
/* realpath is X/Open, beyond the project-wide _POSIX_C_SOURCE */
#define _XOPEN_SOURCE 700
#include "data/docs.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "data/h5.h"

void data_docs_free(data_docs *d) {
    if (d->win_label) data_h5_free_strings(d->win_label, d->n_windows);
    sae_free(d->win_off), sae_free(d->win_doc), sae_free(d->doc_win), sae_free((void *)d->doc_label);
    memset(d, 0, sizeof *d);
}

int data_docs_load(data_docs *out, data_actfile *f, sae_error *err) {
    memset(out, 0, sizeof *out);
    data_docs *d = out;
    d->n_rows = f->n;
    d->n_windows = f->n_docs ? f->n_docs : 1;
    size_t W = d->n_windows;
    d->win_off = sae_calloc_n(W + 1, sizeof *d->win_off);
    d->win_doc = sae_calloc_n(W, sizeof *d->win_doc);
    if (!d->win_off || !d->win_doc) return data_docs_free(d), sae_error_set(err, SAE_ERR_NOMEM, f->path, "out of memory");
    int rc = SAE_OK;
    if (f->n_docs) rc = data_actfile_read_doc_offsets(f, d->win_off, err);
    else d->win_off[0] = 0, d->win_off[1] = (int64_t)f->n;
    if (rc == SAE_OK && f->has_doc_source) {
        rc = data_actfile_read_doc_source(f, d->win_doc, err);
        d->has_source = 1;
    } else {
        for (size_t w = 0; w < W; w++) d->win_doc[w] = (int64_t)w;
    }
    /* data_actfile_open validated /doc_source as non-decreasing and >= 0 */
    d->n_docs = rc == SAE_OK ? (size_t)d->win_doc[W - 1] + 1 : 0;
    if (rc == SAE_OK) {
        d->doc_win = sae_calloc_n(d->n_docs + 1, sizeof *d->doc_win);
        if (!d->doc_win) rc = sae_error_set(err, SAE_ERR_NOMEM, f->path, "out of memory");
    }
    if (rc == SAE_OK) { /* doc_win[i] = first window whose document is >= i */
        size_t w = 0;
        for (size_t i = 0; i <= d->n_docs; i++) {
            while (w < W && (size_t)d->win_doc[w] < i) w++;
            d->doc_win[i] = (int64_t)w;
        }
    }
    if (rc == SAE_OK && f->has_doc_labels) {
        rc = data_actfile_read_doc_labels(f, &d->win_label, err);
        if (rc == SAE_OK) {
            d->doc_label = sae_calloc_n(d->n_docs ? d->n_docs : 1, sizeof *d->doc_label);
            if (!d->doc_label) rc = sae_error_set(err, SAE_ERR_NOMEM, f->path, "out of memory");
        }
        for (size_t i = 0; rc == SAE_OK && i < d->n_docs; i++)
            d->doc_label[i] = d->doc_win[i] < d->doc_win[i + 1] ? d->win_label[d->doc_win[i]] : "";
    }
    if (rc < 0) data_docs_free(d);
    return rc;
}

static int by_label_then_doc(const void *a, const void *b) {
    const data_label_count *x = a, *y = b;
    int c = strcmp(x->label, y->label);
    return c ? c : (x->first_doc > y->first_doc) - (x->first_doc < y->first_doc);
}
static int by_first_doc(const void *a, const void *b) {
    const data_label_count *x = a, *y = b;
    return (x->first_doc > y->first_doc) - (x->first_doc < y->first_doc);
}

int data_docs_labels(const data_docs *d, data_label_count **out, size_t *n, sae_error *err) {
    *out = NULL, *n = 0;
    if (!d->doc_label || !d->n_docs) return SAE_OK;
    data_label_count *lc = sae_calloc_n(d->n_docs, sizeof *lc);
    if (!lc) return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < d->n_docs; i++) lc[i] = (data_label_count){d->doc_label[i], 1, i};
    /* equal labels become runs, each led by its first document; merge the runs */
    qsort(lc, d->n_docs, sizeof *lc, by_label_then_doc);
    size_t k = 0;
    for (size_t i = 0; i < d->n_docs; i++) {
        if (k && strcmp(lc[k - 1].label, lc[i].label) == 0) lc[k - 1].docs++;
        else lc[k++] = lc[i];
    }
    qsort(lc, k, sizeof *lc, by_first_doc);
    *out = lc, *n = k;
    return SAE_OK;
}

size_t data_docs_window_of_row(const data_docs *d, int64_t row) {
    size_t a = 0, b = d->n_windows; /* win_off[a] <= row < win_off[b] */
    while (a + 1 < b) {
        size_t mid = a + (b - a) / 2;
        if (d->win_off[mid] <= row) a = mid;
        else b = mid;
    }
    return a;
}

void data_docs_doc_rows(const data_docs *d, size_t doc, int64_t *lo, int64_t *hi) {
    int64_t w0 = d->doc_win[doc], w1 = d->doc_win[doc + 1];
    *lo = d->win_off[w0];
    *hi = w1 > w0 ? d->win_off[w1] : *lo;
}

int data_docs_resolve(const data_docs *d, size_t doc, size_t window, size_t *out, sae_error *err) {
    if (doc >= d->n_docs)
        return sae_error_set(err, SAE_ERR_ARG, "--doc", "%zu is out of range: there %s %zu corpus document%s (0..%zu)",
                             doc, d->n_docs == 1 ? "is" : "are", d->n_docs, d->n_docs == 1 ? "" : "s", d->n_docs - 1);
    size_t nw = (size_t)(d->doc_win[doc + 1] - d->doc_win[doc]);
    if (nw == 0)
        return sae_error_set(err, SAE_ERR_ARG, "--doc", "corpus document %zu produced no tokens (an empty text)", doc);
    if (window >= nw)
        return sae_error_set(err, SAE_ERR_ARG, "--window", "%zu is out of range: corpus document %zu has %zu window%s (0..%zu)",
                             window, doc, nw, nw == 1 ? "" : "s", nw - 1);
    *out = (size_t)d->doc_win[doc] + window;
    return SAE_OK;
}

int data_vocab_is_continuation(const char *piece) {
    unsigned b;
    return piece && strlen(piece) == 6 && sscanf(piece, "<0x%02X>", &b) == 1 && (b & 0xC0) == 0x80;
}

static int continues(const char *const *vocab, size_t vocab_size, int32_t id) {
    return id >= 0 && (size_t)id < vocab_size && data_vocab_is_continuation(vocab[id]);
}

int data_example_at(data_example *ex, data_actfile *f, const data_docs *d, const char *const *vocab,
                    size_t vocab_size, int64_t row, size_t context, const char *newline, sae_error *err) {
    memset(ex, 0, sizeof *ex);
    size_t w = data_docs_window_of_row(d, row), doc = (size_t)d->win_doc[w];
    size_t lo = (size_t)d->win_off[w], hi = (size_t)d->win_off[w + 1], r = (size_t)row;
    ex->row = row, ex->doc = doc, ex->file_window = w;
    ex->window = w - (size_t)d->doc_win[doc];
    ex->windows = (size_t)(d->doc_win[doc + 1] - d->doc_win[doc]);
    ex->pos = r - lo;
    if (!vocab || !f->has_tokens || context > DATA_EXAMPLE_MAX_CONTEXT) return SAE_OK;
    size_t s = r >= lo + context ? r - context : lo, e = r + context + 1 < hi ? r + context + 1 : hi;
    int32_t tok[2 * DATA_EXAMPLE_MAX_CONTEXT + 1];
    int rc = data_actfile_read_tokens(f, s, e - s, tok, err);
    if (rc < 0) return rc;
    size_t a = r - s, b = a + 1; /* the marked span [a, b) */
    while (a > 0 && continues(vocab, vocab_size, tok[a])) a--;
    while (b < e - s && continues(vocab, vocab_size, tok[b])) b++;
    data_vocab_text(ex->before, sizeof ex->before, vocab, vocab_size, tok, a, newline);
    data_vocab_text(ex->token, sizeof ex->token, vocab, vocab_size, tok + a, b - a, newline);
    data_vocab_text(ex->after, sizeof ex->after, vocab, vocab_size, tok + b, e - s - b, newline);
    ex->has_text = 1, ex->cut_before = s > lo, ex->cut_after = e < hi;
    return SAE_OK;
}

/* Length of the valid UTF-8 character starting at s (n bytes left), 0 if invalid. */
static size_t utf8_char(const unsigned char *s, size_t n) {
    size_t len = s[0] < 0x80 ? 1 : (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (!len || len > n || (len == 2 && s[0] < 0xC2)) return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (len == 3 && ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0))) return 0;
    if (len == 4 && ((s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] >= 0x90) || s[0] > 0xF4)) return 0;
    return len;
}

size_t data_vocab_text(char *buf, size_t cap, const char *const *vocab, size_t vocab_size,
                       const int32_t *ids, size_t n, const char *newline) {
    if (cap == 0) return 0;
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        const char *piece = ids[i] >= 0 && (size_t)ids[i] < vocab_size ? vocab[ids[i]] : "<?>";
        unsigned byte;
        char one[2] = {0, 0};
        if (strlen(piece) == 6 && sscanf(piece, "<0x%02X>", &byte) == 1) one[0] = (char)byte, piece = one;
        else if (newline && strcmp(piece, "\\n") == 0) piece = newline;
        size_t len = piece == one ? 1 : strlen(piece);
        if (o + len >= cap) len = cap - 1 - o;
        memcpy(buf + o, piece, len);
        o += len;
    }
    /* drop what is not valid UTF-8 (in place: the text only shrinks) */
    size_t r = 0, w = 0;
    while (r < o) {
        size_t len = utf8_char((const unsigned char *)buf + r, o - r);
        if (!len) { r++; continue; }
        memmove(buf + w, buf + r, len);
        w += len, r += len;
    }
    buf[w] = 0;
    return w;
}

/* --- identity ------------------------------------------------------------------ */
int data_actfile_identity(data_actfile *f, data_identity *out, sae_error *err) {
    memset(out, 0, sizeof *out);
    if (!realpath(f->path, out->path)) snprintf(out->path, sizeof out->path, "%s", f->path);
    out->rows = f->n, out->d = f->d, out->layer = f->layer;
    snprintf(out->model, sizeof out->model, "%s", f->model);
    snprintf(out->hook, sizeof out->hook, "%s", f->hook);
    data_h5_lock();
    data_h5_get_attr_str((hid_t)f->h5, "tokenizer", out->tokenizer, sizeof out->tokenizer);
    data_h5_unlock();
    size_t d = f->d, n = f->n < DATA_IDENTITY_ROWS ? f->n : DATA_IDENTITY_ROWS;
    float *row = sae_malloc(d * sizeof *row);
    if (!row) return sae_error_set(err, SAE_ERR_NOMEM, f->path, "out of memory");
    uint64_t hsh = 0xcbf29ce484222325ULL; /* FNV-1a, 64-bit */
#define MIX(p, len)                                                                                \
    for (size_t b_ = 0; b_ < (len); b_++) hsh = (hsh ^ ((const unsigned char *)(p))[b_]) * 0x100000001b3ULL
    uint64_t dims[2] = {f->n, d};
    MIX(dims, sizeof dims);
    int rc = SAE_OK;
    for (size_t i = 0; i < n && rc == SAE_OK; i++) {
        /* rows 0 .. N-1 spread evenly, first and last included */
        size_t r = n > 1 ? (size_t)((unsigned __int128)i * (f->n - 1) / (n - 1)) : 0;
        rc = data_actfile_read_rows(f, r, 1, row, err);
        if (rc == SAE_OK) MIX(row, d * sizeof *row);
    }
#undef MIX
    sae_free(row);
    out->fingerprint = hsh;
    out->has_fingerprint = rc == SAE_OK;
    return rc;
}

int data_identity_write_attrs(int64_t h5_loc, const data_identity *id) {
    hid_t h = (hid_t)h5_loc;
    int a = 0;
    a |= data_h5_set_attr_str(h, "data", id->path);
    a |= data_h5_set_attr_i64(h, "data_n", (int64_t)id->rows);
    a |= data_h5_set_attr_i64(h, "data_d", (int64_t)id->d);
    if (id->has_fingerprint) a |= data_h5_set_attr_i64(h, "data_fingerprint", (int64_t)id->fingerprint);
    a |= data_h5_set_attr_str(h, "model", id->model);
    a |= data_h5_set_attr_i64(h, "layer", id->layer);
    a |= data_h5_set_attr_str(h, "hook", id->hook);
    a |= data_h5_set_attr_str(h, "tokenizer", id->tokenizer);
    return a;
}

void data_identity_read_attrs(int64_t h5_loc, data_identity *out) {
    hid_t h = (hid_t)h5_loc;
    memset(out, 0, sizeof *out);
    int64_t v;
    out->layer = -1;
    data_h5_get_attr_str(h, "data", out->path, sizeof out->path);
    if (data_h5_get_attr_i64(h, "data_n", &v) == SAE_OK && v >= 0) out->rows = (uint64_t)v;
    if (data_h5_get_attr_i64(h, "data_d", &v) == SAE_OK && v >= 0) out->d = (uint64_t)v;
    if (data_h5_get_attr_i64(h, "data_fingerprint", &v) == SAE_OK) out->fingerprint = (uint64_t)v, out->has_fingerprint = 1;
    data_h5_get_attr_str(h, "model", out->model, sizeof out->model);
    if (data_h5_get_attr_i64(h, "layer", &v) == SAE_OK) out->layer = v;
    data_h5_get_attr_str(h, "hook", out->hook, sizeof out->hook);
    data_h5_get_attr_str(h, "tokenizer", out->tokenizer, sizeof out->tokenizer);
}

int data_identity_same(const data_identity *a, const data_identity *b) {
    return a->has_fingerprint && b->has_fingerprint && a->rows == b->rows && a->d == b->d &&
           a->fingerprint == b->fingerprint;
}
