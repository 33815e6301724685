/* data/windows.c: corpus documents into batches of BOS-led windows (see windows.h). */
#include "data/windows.h"

#include <string.h>
#include <sys/stat.h>

#include "common/mem.h"
#include "data/capture.h"

struct data_windows {
    data_corpus *corpus;
    const data_tokenizer *t;
    size_t seq_len, max_win, cap;
    /* the batch being built */
    int32_t *tokens;
    size_t *off;
    char **label, **meta; /* owned copies, one per window of the batch */
    int64_t *source;
    /* the current document: ids[pos..n) are not yet in a window */
    int32_t *ids;
    size_t n_ids, pos;
    int have_doc, done;
    char *doc_label, *doc_meta; /* the current document's, owned */
    int64_t doc;
    data_windows_progress pr;
};

static void clear_batch(data_windows *w) {
    for (size_t i = 0; i < w->max_win; i++) {
        sae_free(w->label[i]), sae_free(w->meta[i]);
        w->label[i] = w->meta[i] = NULL;
    }
}

void data_windows_close(data_windows *w) {
    if (!w) return;
    if (w->label && w->meta) clear_batch(w);
    sae_free(w->tokens), sae_free(w->off), sae_free(w->label), sae_free(w->meta);
    sae_free(w->source), sae_free(w->ids), sae_free(w->doc_label), sae_free(w->doc_meta);
    data_corpus_close(w->corpus);
    sae_free(w);
}

int data_windows_open(data_windows **out, const char *corpus_path, const data_tokenizer *t,
                      size_t seq_len, size_t batch_rows, sae_error *err) {
    *out = NULL;
    if (seq_len < 2) return sae_error_set(err, SAE_ERR_ARG, "--seq-len", "must be at least 2 (BOS and one token)");
    data_windows *w = sae_calloc_n(1, sizeof *w);
    if (!w) return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    int rc = data_corpus_open(&w->corpus, corpus_path, err);
    if (rc < 0) {
        sae_free(w);
        return rc;
    }
    w->t = t;
    w->seq_len = seq_len;
    w->cap = data_windows_capacity(seq_len, batch_rows);
    w->max_win = w->cap / seq_len;
    w->tokens = sae_malloc(w->cap * sizeof *w->tokens);
    w->off = sae_malloc((w->max_win + 1) * sizeof *w->off);
    w->label = sae_calloc_n(w->max_win, sizeof *w->label);
    w->meta = sae_calloc_n(w->max_win, sizeof *w->meta);
    w->source = sae_calloc_n(w->max_win, sizeof *w->source);
    if (!w->tokens || !w->off || !w->label || !w->meta || !w->source) {
        data_windows_close(w);
        return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    }
    struct stat st;
    w->pr.bytes_total = stat(corpus_path, &st) == 0 ? (uint64_t)st.st_size : 0;
    *out = w;
    return SAE_OK;
}

/* Makes the next document with at least one token current; 0 at the end. */
static int next_doc(data_windows *w, sae_error *err) {
    for (;;) {
        data_corpus_doc d;
        int got = data_corpus_next(w->corpus, &d, err);
        if (got <= 0) return got;
        sae_free(w->ids), sae_free(w->doc_label), sae_free(w->doc_meta);
        w->ids = NULL, w->doc_label = w->doc_meta = NULL;
        int rc = data_tokenizer_encode(w->t, d.text, d.len, 0, &w->ids, &w->n_ids, err);
        if (rc < 0) return rc;
        w->doc = (int64_t)w->pr.docs++;
        w->pos = 0;
        if ((d.label && !(w->doc_label = sae_strdup(d.label))) || (d.meta && !(w->doc_meta = sae_strdup(d.meta))))
            return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory for a document label");
        if (w->n_ids > 0) return 1;
    }
}

int data_windows_next(data_windows *w, data_window_batch *b, sae_error *err) {
    clear_batch(w);
    size_t n_win = 0, n_rows = 0, piece = w->seq_len - 1;
    while (n_win < w->max_win && !w->done) {
        if (!w->have_doc || w->pos >= w->n_ids) {
            int got = next_doc(w, err);
            if (got < 0) return got;
            w->have_doc = got;
            if (!got) {
                w->done = 1;
                break;
            }
        }
        size_t len = w->n_ids - w->pos < piece ? w->n_ids - w->pos : piece;
        w->off[n_win] = n_rows;
        w->tokens[n_rows++] = DATA_TOKEN_BOS;
        memcpy(w->tokens + n_rows, w->ids + w->pos, len * sizeof *w->ids);
        n_rows += len;
        w->pos += len;
        if ((w->doc_label && !(w->label[n_win] = sae_strdup(w->doc_label))) ||
            (w->doc_meta && !(w->meta[n_win] = sae_strdup(w->doc_meta))))
            return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory for a document label");
        w->source[n_win] = w->doc;
        w->off[++n_win] = n_rows;
        w->pr.windows++;
        w->pr.tokens += len;
    }
    w->pr.bytes_done = data_corpus_bytes(w->corpus);
    if (n_win == 0) return 0;
    *b = (data_window_batch){.tokens = w->tokens, .off = w->off, .n_win = n_win, .n_rows = n_rows,
                             .label = (const char *const *)w->label, .meta = (const char *const *)w->meta,
                             .source = w->source};
    return 1;
}

size_t data_windows_max_rows(const data_windows *w) { return w->cap; }
size_t data_windows_capacity(size_t seq_len, size_t batch_rows) {
    if (seq_len < 2) return 0;
    return (batch_rows < seq_len ? seq_len : batch_rows) / seq_len * seq_len;
}
void data_windows_get_progress(const data_windows *w, data_windows_progress *p) { *p = w->pr; }
