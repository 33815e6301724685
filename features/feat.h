/* features/feat.h: the feature dictionary: per-feature statistics, top
 * activating examples, the tokens a feature fires on, a short label, and the
 * logit lens of its decoder direction.
 *
 * One streamed pass over an activation file in document order: each block of
 * rows is encoded (one sgemm), its codes are regrouped by latent, and every
 * latent's accumulators are updated by one thread in row order, so the result
 * is the same for any thread count.
 *
 *   - count, density, mean and max activation over the positions it fires on;
 *   - a histogram of log10(activation), FEAT_HIST_BINS bins over
 *     [FEAT_HIST_LOG10_MIN, FEAT_HIST_LOG10_MAX) (values outside go to the end bins);
 *   - the top_n largest activations (value, row), exact: a bounded min-heap;
 *   - examples at the activation quantiles 0.1 0.3 0.5 0.7 0.9 of its non-zero
 *     activations (level q: the activation of rank ceil(q * count) in
 *     increasing order): a reservoir of FEAT_BIN_SAMPLES (value, row) per
 *     histogram bin; the exact histogram names the bin holding each level,
 *     and the sample whose place among the bin's sorted samples matches the
 *     level's place in the bin is shown. Guaranteed: the example is in the
 *     same bin as the true quantile, so |log10(example) - log10(truth)| <
 *     one bin, (FEAT_HIST_LOG10_MAX - FEAT_HIST_LOG10_MIN) / FEAT_HIST_BINS
 *     = 0.2 (activations below 1e-4 or from 1e4 share the end bins, where
 *     only "also below 1e-4 / also above 1e4" holds); it is the exact
 *     quantile while its bin holds at most FEAT_BIN_SAMPLES activations;
 *     levels of distinct rank (every level once count >= 5) show distinct
 *     rows. Memory: FEAT_HIST_BINS * FEAT_BIN_SAMPLES * 12 B = 3.8 KiB per
 *     feature during the pass, nothing allocated per code;
 *   - frequent tokens among its firing positions: a Misra-Gries sketch of
 *     FEAT_SKETCH slots (exact whenever a feature fires on at most that many
 *     distinct tokens; otherwise counts are lower bounds, error <= n/slots),
 *     with the activation summed per tracked token for the mean;
 *   - a label: its three most frequent tokens, e.g. "ん · かん · りん";
 *   - with /unembed (and /final_norm) in the data: the vocabulary tokens its
 *     decoder direction promotes and suppresses most.
 * Activations are the SAE's latent values (on inputs scaled by input_scale).
 *
 *     feat_dict *fd;
 *     feat_build(&fd, &sae, scale, data, &opts, NULL, NULL, &err);
 *     feat_write(fd, "features.h5", &err);
 *     feat_free(fd);
 */
#ifndef SAE_FEATURES_FEAT_H
#define SAE_FEATURES_FEAT_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "data/actfile.h"
#include "sae/sae.h"

#define FEAT_HIST_BINS 40
#define FEAT_HIST_LOG10_MIN (-4.0)
#define FEAT_HIST_LOG10_MAX (4.0)
#define FEAT_SKETCH 64    /* frequent-token slots per feature */
#define FEAT_TOP_TOKENS 10 /* tokens reported per feature */
#define FEAT_LENS 10      /* promoted and suppressed tokens reported */
#define FEAT_QUANTILES 5  /* levels 0.1 0.3 0.5 0.7 0.9 */
#define FEAT_BIN_SAMPLES 8 /* reservoir per histogram bin for the quantile examples (>= FEAT_QUANTILES) */
#define FEAT_FORMAT_VERSION 1

typedef struct feat_opts {
    size_t top_n;   /* top examples per feature */
    size_t context; /* tokens shown either side of an example (stored for `sae show`) */
    size_t batch;   /* rows per encoder sgemm */
} feat_opts;

feat_opts feat_default_opts(void);

typedef struct feat_dict {
    size_t M, top_n, context;
    uint64_t n_tokens;      /* rows encoded */
    uint64_t n_skipped;     /* rows skipped as non-finite */
    char sae_path[4096], data_path[4096];
    uint64_t *count;        /* (M) positions with activation > 0 */
    float *mean, *max;      /* (M) over firing positions */
    uint64_t *hist;         /* (M, FEAT_HIST_BINS) */
    float *top_val;         /* (M, top_n) descending; 0 where unused */
    int64_t *top_row;       /* (M, top_n) row in the data; -1 where unused */
    float *q_val;           /* (M, FEAT_QUANTILES) */
    int64_t *q_row;         /* (M, FEAT_QUANTILES), -1 where none */
    int32_t *tok_count_id;  /* (M, FEAT_TOP_TOKENS) by count, -1 where none */
    int64_t *tok_count;     /* (M, FEAT_TOP_TOKENS) */
    int32_t *tok_mean_id;   /* (M, FEAT_TOP_TOKENS) by mean activation (tokens seen >= 3 times) */
    float *tok_mean;        /* (M, FEAT_TOP_TOKENS) */
    char **label;           /* (M) "" when the data has no /tokens or /vocab */
    int has_lens;
    int32_t *lens_up_id, *lens_down_id; /* (M, FEAT_LENS) */
    float *lens_up, *lens_down;         /* (M, FEAT_LENS) */
    char **vocab;           /* (V) from the data, or NULL */
    size_t vocab_size;
} feat_dict;

typedef void (*feat_progress_cb)(uint64_t rows_done, uint64_t rows_total, void *user);

/* The pass. m must be an inference model with capacity >= opts->batch. */
int feat_build(feat_dict **out, sae_model *m, double input_scale, data_actfile *f,
               const feat_opts *opts, feat_progress_cb cb, void *user, sae_error *err);
void feat_free(feat_dict *fd);

/* Features file (HDF5; layout in the README), written atomically. */
int feat_write(const feat_dict *fd, const char *path, sae_error *err);
int feat_read(feat_dict **out, const char *path, sae_error *err);
/* One JSON object per feature per line (keys in features/json.c and the
 * README): statistics, tokens, lens, top_examples and quantile_examples. With
 * data (the file the rows index; may be NULL) each example also names its
 * corpus document, window and position, and with /tokens and /vocab carries
 * its context: fd->context tokens either side, the token marked "[...]". */
int feat_write_json(const feat_dict *fd, data_actfile *data, const char *path, sae_error *err);

/* --- search ---------------------------------------------------------------------
 * Ranks features for a question. Token and contrast searches split positions
 * into a positive class (token at row + offset matches the regex; documents
 * labelled A) and a negative class (every other position of a document whose
 * row + offset stays inside it; documents labelled B), then score each
 * feature's activation as a classifier of the two:
 *   AUROC = P(act_pos > act_neg) + P(tie) / 2, over all positions, zeros
 *     included, from FEAT_SEARCH_BINS log-spaced bins (ties within a bin
 *     count half: |error| <= the mass sharing a bin, a 7% activation range);
 *   precision / recall of "fires" (act > 0) for the positive class;
 *   mean and variance in each class (exact sums), their difference and ratio.
 * Logit search scores each feature's decoder direction by the mean z-score,
 * over vocabulary tokens matching the regex, of its logit-lens logits. */
#define FEAT_SEARCH_BINS 256

/* [search section: owned by the search work; attribution lives in attrib.c] */
typedef enum {
    FEAT_SEARCH_TOKEN,     /* --token-regex: the token at row + offset matches */
    FEAT_SEARCH_LOGIT,     /* --logit-regex: decoder directions, no pass over the data */
    FEAT_SEARCH_CONTRAST,  /* --contrast A:B: documents labelled A against B */
    FEAT_SEARCH_PREDICTED, /* --predicted-regex: what the model predicts (/predictions) */
    FEAT_SEARCH_ATTRIBUTE, /* --attribute-regex: direct logit contribution to predicted matches */
} feat_search_kind;

/* One --where condition: key=value or key!=value (negate). */
typedef struct feat_where {
    char key[32], value[256];
    int negate;
} feat_where;

typedef struct feat_search_opts {
    feat_search_kind kind;
    const char *regex;         /* token, logit, predicted or attribute search */
    const char *exclude_regex; /* vocabulary entries matching this are taken out of the match set */
    int offset;                /* token search: look at the token offset positions later */
    const char *label_a, *label_b; /* contrast */
    const feat_where *where;   /* restrict the universe of positions */
    size_t n_where;
    size_t batch;
} feat_search_opts;

typedef struct feat_search_row {
    size_t feature;
    double auroc;
    double precision, recall;
    uint64_t fires_pos, fires_neg, n_pos, n_neg;
    double mean_pos, mean_neg, var_pos, var_neg, var_ratio;
    double logit_score;
    double corr;        /* predicted search: correlation with P(model predicts a match) */
    double attribution; /* attribute search: mean direct contribution to the matching logits */
    uint64_t n_attr;    /* attribute search: positions averaged over */
} feat_search_row;

typedef struct feat_search_result {
    feat_search_row *rows; /* M rows, best first */
    size_t n;
    double var_ratio_features; /* sum of var_pos / sum of var_neg over features */
    double var_ratio_resid;    /* the same for the raw activations, over dimensions */
    uint64_t n_pos, n_neg;
    size_t n_matching_tokens;  /* vocabulary entries the regex matched */
} feat_search_result;

int feat_search(feat_search_result *out, sae_model *m, double input_scale, data_actfile *f,
                const feat_search_opts *o, sae_error *err);
void feat_search_result_free(feat_search_result *r);
/* AUROC of two binned samples (index 0 = zero activations), exposed for tests. */
double feat_auroc_from_bins(const uint64_t *pos, const uint64_t *neg, size_t bins);

/* --- aligning two dictionaries ------------------------------------------------
 * Cosine similarity between the unit decoder directions of A (na, d) and B
 * (nb, d), both finite. Rows of A are ordered by their best cosine, and in
 * that order each takes its best column of B not yet taken (greedy matching),
 * so matched pairs lie on the diagonal of the shown block. */
typedef struct feat_alignment {
    size_t shown;         /* min(shown_max, na, nb) */
    size_t *row, *col;    /* (shown) the r-th row of A and its matched column of B */
    float *cos;           /* (shown, shown) cos[r][c] = cos(A[row[r]], B[col[c]]) */
    double mean_best;     /* mean over all rows of A of their best cosine */
    double mean_matched;  /* mean cosine of the shown matched pairs */
} feat_alignment;

int feat_align(const float *A, size_t na, const float *B, size_t nb, size_t d, size_t shown_max,
               feat_alignment *out, sae_error *err);
void feat_alignment_free(feat_alignment *al);

/* The label text for a list of token strings (leading spaces trimmed,
 * duplicates after trimming dropped), joined by " · ". */
void feat_make_label(char *buf, size_t cap, const char *const *tokens, size_t n);

#endif
