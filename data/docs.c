/* data/docs.c: corpus documents and windows (see docs.h). */
#include "data/docs.h"

#include <stdio.h>
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
        return sae_error_set(err, SAE_ERR_ARG, "--doc", "%zu is out of range: there are %zu corpus documents (0..%zu)",
                             doc, d->n_docs, d->n_docs - 1);
    size_t nw = (size_t)(d->doc_win[doc + 1] - d->doc_win[doc]);
    if (nw == 0)
        return sae_error_set(err, SAE_ERR_ARG, "--doc", "corpus document %zu produced no tokens (an empty text)", doc);
    if (window >= nw)
        return sae_error_set(err, SAE_ERR_ARG, "--window", "%zu is out of range: corpus document %zu has %zu window%s (0..%zu)",
                             window, doc, nw, nw == 1 ? "" : "s", nw - 1);
    *out = (size_t)d->doc_win[doc] + window;
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
