/* data/windows.h: a corpus cut into model windows, batch by batch. The one
 * place that decides what a window is, so `sae capture` (which writes the
 * activations) and `sae eval --model` (which runs the model over the same
 * text) see the same sequences.
 *
 * Each corpus document (data/capture.h's reader) is encoded once, without
 * BOS, and cut into pieces of seq_len - 1 tokens; each piece becomes a window
 * BOS + piece, run as its own sequence. A batch holds whole windows, at most
 * batch_rows tokens in all (at least one window: batch_rows is raised to
 * seq_len).
 *
 *     data_windows *w;
 *     data_windows_open(&w, "corpus.jsonl", tok, 256, 4096, &err);
 *     data_window_batch b;
 *     while ((rc = data_windows_next(w, &b, &err)) > 0)
 *         data_llama_forward(run, b.tokens, b.off, b.n_win, ...);
 *     data_windows_close(w);
 */
#ifndef SAE_DATA_WINDOWS_H
#define SAE_DATA_WINDOWS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "data/tokenizer.h"

typedef struct data_window_batch {
    const int32_t *tokens;    /* (n_rows) every window BOS first */
    const size_t *off;        /* (n_win + 1) window s = tokens[off[s] .. off[s+1]) */
    size_t n_win, n_rows;
    const char *const *label; /* (n_win) the source document's label, NULL if none */
    const char *const *meta;  /* (n_win) its other JSON Lines keys, NULL if none */
    const int64_t *source;    /* (n_win) corpus document, from 0 */
} data_window_batch;

typedef struct data_windows_progress {
    uint64_t docs, windows, tokens; /* so far; tokens excludes the BOS of each window */
    uint64_t bytes_done, bytes_total;
} data_windows_progress;

typedef struct data_windows data_windows;

/* seq_len >= 2 is the window length with BOS. The tokenizer must outlive w. */
int data_windows_open(data_windows **out, const char *corpus_path, const data_tokenizer *t,
                      size_t seq_len, size_t batch_rows, sae_error *err);
/* 1: *b holds the next batch (valid until the next call); 0: the corpus is
 * done; < 0: error (a corpus line, the tokenizer, memory). */
int data_windows_next(data_windows *w, data_window_batch *b, sae_error *err);
/* The most tokens (rows) one batch may hold: whole windows of seq_len,
 * batch_rows raised to at least one window. */
size_t data_windows_capacity(size_t seq_len, size_t batch_rows);
size_t data_windows_max_rows(const data_windows *w);
void data_windows_get_progress(const data_windows *w, data_windows_progress *p);
void data_windows_close(data_windows *w);

#endif
