/* data/capture.h: text in, activation files out. Runs a llama2.c model over a
 * corpus and writes sites of layers as schema-v1 activation files, one file
 * per (layer, site) from one forward pass per batch.
 *
 * Corpus: JSON Lines ({"text": ..., "label": ...}, label optional, other keys
 * kept as metadata; detected by a first non-blank byte '{') or plain text,
 * documents separated by blank lines. Each document is encoded once (llama2.c encode: dummy-prefix space,
 * pieces by merge score, byte fallback) and cut into windows of seq_len - 1
 * tokens (data/windows.h); every window starts with BOS and runs as its own
 * sequence. The BOS position is run but not written unless keep_bos.
 *
 * Several sites: the forward of a batch runs once, through the deepest
 * layer asked for (every block with predictions), and a hook copies each
 * site's rows as it passes; memory is one (batch rows, dim) float buffer per
 * site (plus one for the final residual with predictions). Each output is
 * exactly the file a capture of its site alone writes, byte for byte (the
 * writer stores no object times), so a multi-site capture is only faster.
 * Every output is written under a temporary name and renamed at the end; if
 * any fails, none is left (those already renamed are removed).
 *
 *     data_capture_site s[2] = {{1, DATA_SITE_RESID_POST, "l1.h5"},
 *                               {3, DATA_SITE_MLP_OUT, "l3_mlp.h5"}};
 *     data_capture_params p = {.corpus_path = "c.jsonl", .sites = s, .n_sites = 2,
 *                              .batch_rows = 4096};
 *     data_capture_run(m, "m.bin", tok, "tok.bin", &p, NULL, NULL, &err);
 *
 * Output, beyond the schema-v1 datasets: each window is a document in
 * /doc_offsets and /doc_labels (its source document's label); /doc_source
 * int64 [D] gives the corpus document (0-based) each window came from, and
 * /doc_meta (only when some JSON Lines record has keys besides text and
 * label) that document's other keys as a compact JSON object. With
 * predictions = K, /predictions holds each written row's K most probable
 * next tokens and their log-probabilities (layout in actfile.h), computed
 * once and the same in every output.
 * Attributes: model (its file name with its folder), layer, hook (the site),
 * tokenizer, seq_len, keep_bos, predictions (K, 0 for none).
 * Activations are written batch by batch: memory does not grow with the corpus.
 */
#ifndef SAE_DATA_CAPTURE_H
#define SAE_DATA_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "data/llama.h"
#include "data/tokenizer.h"

/* The corpus reader capture uses, on its own (for tests and fuzzing). A UTF-8
 * byte order mark is skipped before the format is decided. JSON Lines: each
 * non-blank line one object, nothing after it but white space; text with
 * \u0000 or a raw NUL byte is refused (the tokenizer takes NUL-free UTF-8);
 * every document's text must be valid UTF-8. Keys: "text" (alias "content")
 * is required, "label" optional, others are metadata; a key that looks like
 * a misspelt "text" or "label" is an error (rule in capture.c: one edit away,
 * case-insensitive, or a prefix of 3+ letters: "txt", "Text", "lab",
 * "labels"). Errors name the line ("line 3: ..."). The document's strings
 * belong to the reader and last until the next call. */
typedef struct data_corpus data_corpus;
typedef struct data_corpus_doc {
    const char *text;
    size_t len;
    const char *label; /* NULL if none */
    size_t line;       /* where the document starts, from 1 */
    const char *meta;  /* JSON Lines: the record's other keys as a compact JSON
                          object, e.g. {"id":7,"source":"aozora"}; NULL if none */
} data_corpus_doc;
int data_corpus_open(data_corpus **out, const char *path, sae_error *err);
/* 1: *doc filled; 0: end of the corpus; < 0: error */
int data_corpus_next(data_corpus *c, data_corpus_doc *doc, sae_error *err);
uint64_t data_corpus_bytes(const data_corpus *c); /* bytes consumed so far */
void data_corpus_close(data_corpus *c);

/* One output: a site of a block, and the file it goes to. */
typedef struct data_capture_site {
    int layer; /* block index, from 0 */
    data_site site;
    const char *out_path;
} data_capture_site;

typedef struct data_capture_params {
    const char *corpus_path;
    /* n_sites > 0: the outputs, sites[0 .. n_sites); each (layer, site) at
     * most once, each to its own path. n_sites = 0: the one output
     * layer/site/out_path. */
    const data_capture_site *sites;
    size_t n_sites;
    const char *out_path;
    int layer;          /* block index, from 0 */
    data_site site;
    size_t seq_len;     /* tokens per window including BOS; 0 = the model's seq_len */
    int float16;
    int keep_bos;
    size_t batch_rows;  /* tokens per forward pass */
    size_t predictions; /* K > 0: also store each row's top-K next tokens in
                           /predictions (runs every block and the classifier);
                           at most min(V, DATA_MAX_PREDICTIONS) */
} data_capture_params;

typedef struct data_capture_progress {
    uint64_t docs, windows, tokens, bytes_done, bytes_total;
    int finished; /* the last report */
} data_capture_progress;

typedef void (*data_capture_cb)(const data_capture_progress *p, void *user);

int data_capture_run(const data_llama *m, const char *model_path, const data_tokenizer *t,
                     const char *tokenizer_path, const data_capture_params *p, data_capture_cb cb,
                     void *user, sae_error *err);

#endif
