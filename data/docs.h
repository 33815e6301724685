/* data/docs.h: corpus documents, and the capture windows they were cut into.
 *
 * An activation file's /doc_offsets splits its rows into "documents"; capture
 * writes one per window of seq_len - 1 tokens, so a long corpus document is
 * many of them, and /doc_source names the corpus document of each. This
 * module is the one place that turns those datasets into both views:
 *
 *   window w   rows [win_off[w], win_off[w+1]), of corpus document win_doc[w]
 *   document i windows [doc_win[i], doc_win[i+1]), label doc_label[i]
 *
 * Without /doc_source every window is its own corpus document (files written
 * by `sae synth` or by hand); without /doc_offsets the whole file is one
 * window of one document. A corpus document that produced no window (an empty
 * text) keeps its index, with no windows and label "".
 *
 *     data_docs d;
 *     if (data_docs_load(&d, f, &err) < 0) fail(&err);
 *     size_t w = data_docs_window_of_row(&d, row), doc = d.win_doc[w];
 *     data_docs_free(&d);
 */
#ifndef SAE_DATA_DOCS_H
#define SAE_DATA_DOCS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "data/actfile.h"

typedef struct data_docs {
    size_t n_rows, n_windows, n_docs;
    int64_t *win_off;   /* (n_windows + 1) */
    int64_t *win_doc;   /* (n_windows) */
    int64_t *doc_win;   /* (n_docs + 1) */
    char **win_label;   /* (n_windows) owned strings, or NULL when the file has no labels */
    const char **doc_label; /* (n_docs) its first window's label ("" if none), or NULL likewise */
    int has_source;     /* windows were mapped through /doc_source */
} data_docs;

int data_docs_load(data_docs *out, data_actfile *f, sae_error *err);
void data_docs_free(data_docs *d);

/* The window holding row (0 <= row < n_rows), by binary search. */
size_t data_docs_window_of_row(const data_docs *d, int64_t row);
static inline size_t data_docs_doc_of_row(const data_docs *d, int64_t row) {
    return (size_t)d->win_doc[data_docs_window_of_row(d, row)];
}
/* Rows of corpus document doc: [*lo, *hi) (empty when it has no windows). */
void data_docs_doc_rows(const data_docs *d, size_t doc, int64_t *lo, int64_t *hi);

/* The window a --doc/--window pair names: window `window` (from 0) of corpus
 * document doc. Errors name the flag and the valid range. */
int data_docs_resolve(const data_docs *d, size_t doc, size_t window, size_t *out, sae_error *err);

/* Text of token ids through /vocab strings as capture writes them: a
 * "<0xXX>" piece is the byte XX (so characters split by byte fallback come
 * back whole), "\n" (two characters) is a newline when newline is not NULL
 * (written as `newline`, e.g. "⏎"). Bytes that do not form valid UTF-8 (a
 * character cut by a window's edge) are dropped, so the text is always valid
 * UTF-8. Writes at most cap - 1 bytes and a NUL; returns the length. Ids
 * outside the vocabulary are written as "<?>". */
size_t data_vocab_text(char *buf, size_t cap, const char *const *vocab, size_t vocab_size,
                       const int32_t *ids, size_t n, const char *newline);

#endif
