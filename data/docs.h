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

/* The distinct labels of the corpus documents in order of first appearance,
 * with the number of documents carrying each (label pointers into d). O(D log D),
 * so a corpus whose every document has its own label costs no more than one
 * with two. *out is NULL and *n 0 for a file without labels; free with sae_free. */
typedef struct data_label_count {
    const char *label;
    size_t docs, first_doc;
} data_label_count;
int data_docs_labels(const data_docs *d, data_label_count **out, size_t *n, sae_error *err);

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

/* 1 when piece is a byte-fallback piece "<0xXX>" of a UTF-8 continuation byte
 * (10xxxxxx): it belongs to the character before it. */
int data_vocab_is_continuation(const char *piece);

/* --- an example position, located and in its context --------------------------
 * Where row lies (corpus document, window of that document, the file's window,
 * position in the window) and, given a vocabulary and a file with /tokens, its
 * text: up to `context` tokens either side within its window, split around the
 * token, which is widened to whole characters where byte-fallback pieces split
 * one. `sae show`, `sae show --json` and the features JSON all use it. */
#define DATA_EXAMPLE_MAX_CONTEXT 512 /* wider contexts: location only */
typedef struct data_example {
    int64_t row;
    size_t doc, window, windows, file_window, pos; /* window: from 0 within doc, of windows */
    int has_text;
    int cut_before, cut_after; /* the context stops short of the window's edge */
    char before[8192], token[1024], after[8192];
} data_example;

/* row must be in 0 .. d->n_rows - 1; vocab may be NULL (location only).
 * newline as in data_vocab_text. Errors: the token read failed. */
int data_example_at(data_example *ex, data_actfile *f, const data_docs *d, const char *const *vocab,
                    size_t vocab_size, int64_t row, size_t context, const char *newline, sae_error *err);

/* --- which file, and what it was captured from ---------------------------------
 * A data file's identity: its absolute path (only shown: a copy or a move keeps
 * the identity), its shape, and a content fingerprint, an FNV-1a hash of the
 * row count, the width and DATA_IDENTITY_ROWS rows spread evenly through the
 * file (first and last included, as float32), so that a different file of the
 * same shape almost surely differs and reading it costs 16 rows. Beside it,
 * the root attributes saying what the activations are: model, layer, hook
 * (the site, e.g. resid_post) and tokenizer ("" / -1 when absent).
 *
 * SAE files and features files record it as root attributes (names below),
 * so that a later command can tell whether its --data is the same file. */
#define DATA_IDENTITY_ROWS 16
typedef struct data_identity {
    char path[4096];        /* absolute (realpath), or as given when that fails */
    uint64_t rows, d;
    uint64_t fingerprint;
    int has_fingerprint;    /* 0 when read from a file that predates it */
    char model[256], hook[64], tokenizer[4096];
    int64_t layer;          /* -1 when unknown */
} data_identity;

int data_actfile_identity(data_actfile *f, data_identity *out, sae_error *err);
/* The attributes data (path), data_n (rows), data_d, data_fingerprint, model,
 * layer, hook, tokenizer on an open HDF5 object (an hid_t; call with the HDF5
 * lock held). Writing returns 0 or nonzero on failure. */
int data_identity_write_attrs(int64_t h5_loc, const data_identity *id);
/* Reads what is there: absent attributes leave "", 0 or -1, and
 * has_fingerprint says whether data_fingerprint was present. */
void data_identity_read_attrs(int64_t h5_loc, data_identity *out);
/* 1 when two identities name the same content (rows, d, fingerprint equal);
 * both must have a fingerprint. */
int data_identity_same(const data_identity *a, const data_identity *b);

#endif
