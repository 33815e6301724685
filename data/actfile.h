/* data/actfile.h: activation files, the toolkit's interchange format (schema v1).
 *
 * An activation file is HDF5, readable by h5py with no custom code:
 *   /activations  float32|float16 [N, d], chunked by rows     required
 *   /tokens       int32 [N]         token id of each row       optional
 *   /doc_offsets  int64 [D+1]       doc i = rows [off[i], off[i+1]); 0 .. N, increasing
 *   /vocab        vlen UTF-8 [V]    token id -> text piece     optional
 *   /doc_labels   vlen UTF-8 [D]    group label per document   optional
 *   /doc_source   int64 [D]         corpus document of each window (capture: a
 *                                   "document" above is a window), non-decreasing
 *   /doc_meta     vlen UTF-8 [D]    per window, its corpus document's extra
 *                                   JSON Lines keys as one compact JSON object
 *                                   ("" when none)             optional
 *   /unembed      float32 [V, d], /final_norm float32 [d]      optional
 *   /truth/features float32 [F, d]  planted dictionary         optional
 *   /predictions/token   int32 [N, K]   the model's K most probable next
 *   /predictions/logprob float32 [N, K] tokens after each row's position, most
 *                                   probable first (ties: lower id first), and
 *                                   their natural-log probabilities (log-softmax
 *                                   of the final logits); group attribute k = K;
 *                                   1 <= K <= min(V, 1024)     optional
 *   root attributes: d_model, model, layer, hook (+ schema_version = 1)
 * Readers ignore datasets and attributes they do not know, so the schema can
 * grow compatibly.
 *
 * data_actfile_open validates every present dataset against this contract
 * (shapes, dtypes, offsets, token range) so later stages can trust it; rows are
 * then read on demand, never the whole matrix.
 *
 *     data_actfile *f;
 *     if (data_actfile_open(&f, "acts.h5", &err) < 0) fail(&err);
 *     float *rows = malloc(64 * f->d * sizeof(float));
 *     data_actfile_read_rows(f, 0, 64, rows, &err);
 *     data_actfile_close(f);
 *
 * data_actwriter writes one: rows are appended in blocks (the file never needs
 * to fit in memory), everything else is set before data_actwriter_finish,
 * which writes to a temporary name and renames it into place.
 */
#ifndef SAE_DATA_ACTFILE_H
#define SAE_DATA_ACTFILE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define DATA_SCHEMA_VERSION 1
/* The most next-token predictions a row may store (/predictions width K). */
#define DATA_MAX_PREDICTIONS 1024

/* Storage types of /activations, in order, NULL-terminated (the CLI's --dtype choices). */
typedef enum data_dtype { DATA_DTYPE_F32 = 0, DATA_DTYPE_F16 = 1 } data_dtype;
extern const char *const data_dtype_names[];

typedef struct data_actfile {
    char path[4096];
    size_t n;          /* rows N */
    size_t d;          /* width d_model */
    int dtype_bytes;   /* 4: float32, 2: float16 on disk */
    size_t chunk_rows; /* rows per HDF5 chunk (reads aligned to it are cheapest) */
    int has_tokens;
    size_t n_docs;     /* D (0 if /doc_offsets is absent) */
    int has_doc_labels;
    int has_doc_source; /* /doc_source present (validated: non-decreasing, >= 0) */
    int has_doc_meta;   /* /doc_meta present, one string per document */
    size_t vocab_size; /* V (0 if /vocab is absent) */
    int has_unembed, has_final_norm;
    size_t n_truth;    /* F (0 if /truth/features is absent) */
    size_t n_pred;     /* K: the model's top-K next-token predictions per row (0 if /predictions is absent) */
    char model[256], hook[64];
    int64_t layer;     /* -1 if absent */
    int64_t schema_version;
    int64_t h5;        /* hid_t of the open file (opaque to callers) */
    int64_t h5_acts;   /* hid_t of /activations */
    uint16_t *half_buf; /* float16 files: raw rows read under the HDF5 lock */
} data_actfile;

int data_actfile_open(data_actfile **out, const char *path, sae_error *err);
void data_actfile_close(data_actfile *f);

/* Rows [row0, row0 + count) as float32 into out (count x d). Thread-safe. */
int data_actfile_read_rows(data_actfile *f, size_t row0, size_t count, float *out, sae_error *err);
/* /tokens[row0 .. row0 + count) (has_tokens must be set). Thread-safe. */
int data_actfile_read_tokens(data_actfile *f, size_t row0, size_t count, int32_t *out,
                             sae_error *err);
/* /vocab as n = vocab_size malloc'd strings (free with data_h5_free_strings),
 * and /doc_labels likewise (n_docs). */
int data_actfile_read_vocab(data_actfile *f, char ***out, sae_error *err);
int data_actfile_read_doc_labels(data_actfile *f, char ***out, sae_error *err);
/* The model's K = n_pred most probable next tokens at rows [row0, row0 + count),
 * most probable first: ids (count x K) and natural-log probabilities (count x K).
 * Every read checks the rows it returns (a damaged row is SAE_ERR_FORMAT naming
 * it): ids index /vocab, log-probabilities are finite, <= 1e-4
 * and non-increasing along a row, and a row's probabilities sum to <= 1.001.
 * SAE_ERR_UNSUPPORTED when the file has none (n_pred == 0). Thread-safe. */
int data_actfile_read_predictions(data_actfile *f, size_t row0, size_t count, int32_t *ids,
                                  float *logprob, sae_error *err);
/* /doc_meta as n_docs malloc'd strings (free with data_h5_free_strings);
 * SAE_ERR_UNSUPPORTED without it. Each is "" or a JSON object. */
int data_actfile_read_doc_meta(data_actfile *f, char ***out, sae_error *err);
/* A whole float dataset by name (e.g. "unembed"), count elements. */
int data_actfile_read_f32(data_actfile *f, const char *name, float *out, size_t count,
                          sae_error *err);
/* The planted dictionary (n_truth x d). */
int data_actfile_read_truth(data_actfile *f, float *out, sae_error *err);
/* /doc_source (n_docs values; has_doc_source must be set). */
int data_actfile_read_doc_source(data_actfile *f, int64_t *out, sae_error *err);
/* /doc_offsets (n_docs + 1 values). */
int data_actfile_read_doc_offsets(data_actfile *f, int64_t *out, sae_error *err);
/* Streams the whole matrix once; counts rows holding NaN or Inf. Also proves
 * every chunk is readable (a truncated file fails here, before training). */
int data_actfile_count_nonfinite(data_actfile *f, size_t *bad_rows, size_t *first_bad,
                                 sae_error *err);
/* IEEE binary16 bits of f, rounded to nearest even (overflow -> Inf). HDF5
 * 1.10's own float->half conversion mis-rounds values whose mantissa carries
 * into the exponent (-0.99989 became -0.5), so the writer converts itself. */
uint16_t data_f32_to_f16(float f);
/* The float value of IEEE binary16 bits h (exact: every half is a float). */
float data_f16_to_f32(uint16_t h);

/* 1 if any of the d values is NaN or +-Inf */
int data_row_nonfinite(const float *row, size_t d);

/* --- writing ----------------------------------------------------------- */
typedef struct data_actwriter data_actwriter;

typedef struct data_actwriter_opts {
    size_t d;
    int float16;       /* store activations as IEEE half */
    const char *model; /* root attributes; NULL -> "" */
    const char *hook;
    int64_t layer;
    size_t chunk_rows; /* rows per HDF5 chunk; 0 = about 1 MiB per chunk */
} data_actwriter_opts;

int data_actwriter_open(data_actwriter **out, const char *path, const data_actwriter_opts *o,
                        sae_error *err);
/* Appends count rows (count x d) and, if tokens != NULL, their token ids. All
 * appends must pass tokens or none must. */
int data_actwriter_append(data_actwriter *w, const float *rows, const int32_t *tokens,
                          size_t count, sae_error *err);
int data_actwriter_set_docs(data_actwriter *w, const int64_t *offsets, size_t n_docs,
                            const char *const *labels, sae_error *err);
int data_actwriter_set_vocab(data_actwriter *w, const char *const *vocab, size_t v,
                             sae_error *err);
int data_actwriter_set_truth(data_actwriter *w, const float *features, size_t f, sae_error *err);
/* Any other dataset (e.g. /unembed, /final_norm, /doc_source): cols = 0 for 1-D. */
int data_actwriter_put_f32(data_actwriter *w, const char *name, const float *data, size_t rows,
                           size_t cols, sae_error *err);
int data_actwriter_put_i64(data_actwriter *w, const char *name, const int64_t *data, size_t n,
                           sae_error *err);
/* A 1-D variable-length UTF-8 string dataset (e.g. /doc_meta). */
int data_actwriter_put_strings(data_actwriter *w, const char *name, const char *const *s, size_t n,
                               sae_error *err);
/* Appends count rows (count x k) to /predictions, created with width k on the
 * first call; k never changes. Call it once per data_actwriter_append, with
 * the same count: finish refuses a file whose /predictions rows differ from
 * /activations'. */
int data_actwriter_append_predictions(data_actwriter *w, const int32_t *ids, const float *logprob,
                                      size_t count, size_t k, sae_error *err);
int data_actwriter_set_attr_str(data_actwriter *w, const char *name, const char *value);
int data_actwriter_set_attr_i64(data_actwriter *w, const char *name, int64_t value);
/* Closes and renames into place. On any earlier failure, or if this fails, the
 * temporary file is removed and nothing appears at path. Frees w. */
int data_actwriter_finish(data_actwriter *w, sae_error *err);
void data_actwriter_abort(data_actwriter *w); /* removes the temporary file; frees w */

#endif
