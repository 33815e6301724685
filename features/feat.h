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
#include "data/docs.h"
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
    data_identity data_id;  /* of the data it was built from (has_fingerprint 0 if unknown) */
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

/* The quantile levels of q_val / q_row: 0.1 0.3 0.5 0.7 0.9. */
extern const double feat_quantile_levels[FEAT_QUANTILES];

/* One example as JSON, the same in the features JSON and `sae show --json`:
 * quantile (when >= 0), value, row, and where ex (when not NULL) puts it: doc,
 * window, windows, file_window, pos; with text, before, token, after and
 * context = before "[" token "]" after. NULL when out of memory. */
struct cJSON;
struct cJSON *feat_example_json(const data_example *ex, float value, int64_t row, double quantile);

/* --- one stretch of the data -------------------------------------------------- */
/* Latent values of rows [r0, r1) of f (inputs times scale, as trained; a row
 * holding NaN or Inf is left out: its values stay 0): out is (r1 - r0) x nf for features
 * ids[0..nf), or (r1 - r0) x M for all of them when ids is NULL. */
int feat_encode_rows(sae_model *m, double scale, data_actfile *f, size_t r0, size_t r1,
                     const size_t *ids, size_t nf, float *out, sae_error *err);
/* The file window of corpus document doc where any of features ids peaks
 * (*peak its value; the document's first window when none fires). */
int feat_peak_window(sae_model *m, double scale, data_actfile *f, const data_docs *d,
                     size_t doc, const size_t *ids, size_t nf, size_t *window, float *peak, sae_error *err);

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
 * Ranks features for a question. Every search over the data first fixes a
 * universe: the positions whose window passes the --where conditions (all
 * positions without any). Within it, positions (or, for pooled contrasts,
 * corpus documents) fall into a positive and a negative class:
 *   token      the token at row + offset (same window) matches the regex;
 *   contrast   the window is labelled A (positive) or B (negative);
 *   predicted  the model's top-1 next-token prediction (/predictions) matches;
 * and each feature's activation is scored as a classifier of the two:
 *   AUROC = P(act_pos > act_neg) + P(tie) / 2, zeros included. Over positions
 *     it comes from FEAT_SEARCH_BINS log-spaced bins (ties within a bin count
 *     half: |error| <= the mass sharing a bin, a 7% activation range); over
 *     documents it is exact (Mann-Whitney with midranks);
 *   "fires" = act > 0 (a pooled document: fires somewhere in it);
 *   precision = positives among firing positions, recall = firing positives
 *     among positives, base rate = positives among the universe, lift =
 *     precision / base rate (1 = no better than firing at random), F1;
 *   mean and variance in each class (exact sums), their difference and ratio;
 *   predicted: Pearson correlation of the activation with P(match), the
 *     probability the model puts on matching tokens, summed over the stored
 *     top-K predictions (a lower bound of the true probability).
 * Features firing fewer than min_count times in the universe are left out of
 * the ranking (counted in n_below_min_count).
 *
 * Pooled contrasts (pool max or mean) score one value per corpus document
 * (data/docs.h: all windows of one /doc_source entry): the max or the mean of
 * the feature over the document's positions in the universe. With
 * permutations > 0 the A/B labels of those documents are shuffled (the counts
 * kept) that many times: each feature's p = (1 + #{perm score >= observed}) /
 * (1 + N), one-sided (A higher), Benjamini-Hochberg q-values over the ranked
 * features, and per permutation the best score over all ranked features: the
 * null distribution of the top of the list.
 *
 * Logit search scores each feature's decoder direction by the mean z-score,
 * over vocabulary tokens matching the regex, of its logit-lens logits (no
 * pass over the data, so no universe). Attribute search is attrib.c's. */
#define FEAT_SEARCH_BINS 256

/* [search section: owned by the search work; attribution lives in attrib.c] */
typedef enum {
    FEAT_SEARCH_TOKEN,     /* --token-regex: the token at row + offset matches */
    FEAT_SEARCH_LOGIT,     /* --logit-regex: decoder directions, no pass over the data */
    FEAT_SEARCH_CONTRAST,  /* --contrast A:B: documents labelled A against B */
    FEAT_SEARCH_PREDICTED, /* --predicted-regex: what the model predicts (/predictions) */
    FEAT_SEARCH_ATTRIBUTE, /* --attribute-regex: direct logit contribution to predicted matches */
} feat_search_kind;

/* Ranking keys, all descending except q. FEAT_SORT_AUTO: f1 for token
 * searches (it needs both selectivity and coverage, see the README), corr for
 * predicted, auroc for contrasts, attribution, logit z-score. */
typedef enum {
    FEAT_SORT_AUTO, FEAT_SORT_AUROC, FEAT_SORT_LIFT, FEAT_SORT_PRECISION, FEAT_SORT_RECALL,
    FEAT_SORT_F1, FEAT_SORT_MEAN_DIFF, FEAT_SORT_Q, FEAT_SORT_CORR,
} feat_sort;
extern const char *const feat_sort_names[]; /* "auto", "auroc", ... NULL-terminated */

typedef enum { FEAT_POOL_NONE, FEAT_POOL_MAX, FEAT_POOL_MEAN } feat_pool;
extern const char *const feat_pool_names[]; /* "none", "max", "mean", NULL */

/* One --where condition: key=value or key!=value (negate). Keys: "label"
 * (the window's /doc_labels entry) and "doc" (corpus document index). For one
 * key, equalities are OR'd and inequalities AND'd; different keys AND'd. */
typedef struct feat_where {
    char key[32], value[256];
    int negate;
} feat_where;

/* "label=ja", "doc!=3" -> *out; errors name --where. */
int feat_where_parse(feat_where *out, const char *text, sae_error *err);

/* The universe: mask[r] = 1 for each of d->n_rows rows whose window passes
 * every condition (all rows when n == 0); *n_in = how many. An unknown key, a
 * label condition without /doc_labels, a value that matches no window, or an
 * empty universe is an SAE_ERR_ARG error naming the labels present. */
struct data_docs;
int feat_universe_mask(uint8_t *mask, const struct data_docs *d, const feat_where *w, size_t n,
                       uint64_t *n_in, sae_error *err);

typedef struct feat_search_opts {
    feat_search_kind kind;
    const char *regex;         /* token, logit, predicted or attribute search */
    const char *exclude_regex; /* vocabulary entries matching this are taken out of the match set */
    int offset;                /* token search: look at the token offset positions later */
    const char *label_a, *label_b; /* contrast */
    const feat_where *where;   /* restrict the universe of positions */
    size_t n_where;
    size_t batch;
    feat_pool pool;            /* contrast: per corpus document (NONE: per position) */
    feat_sort sort;
    uint64_t min_count;        /* rank only features firing >= this often in the universe */
    size_t permutations;       /* pooled contrast: label permutations (0: none) */
    uint64_t seed;
} feat_search_opts;

typedef struct feat_search_row {
    size_t feature;
    double auroc;
    double precision, recall, lift, f1;
    uint64_t fires_pos, fires_neg, n_pos, n_neg; /* documents when pooled */
    uint64_t fires;      /* positions of the universe where it fires (min_count) */
    double mean_pos, mean_neg, var_pos, var_neg, var_ratio;
    double logit_score;
    double corr;        /* predicted search: correlation with P(model predicts a match) */
    double attribution; /* attribute search: mean direct contribution to the matching logits */
    uint64_t n_attr;    /* attribute search: positions averaged over */
    double p_value, q_value; /* permutation test; NAN without one */
    int64_t top_doc, top_window; /* pooled: the document scoring highest, the window of its peak; -1 */
    double top_value;
} feat_search_row;

typedef struct feat_search_match {
    int32_t id;
    uint64_t count; /* positive positions of the universe it accounts for */
} feat_search_match;

typedef struct feat_search_result {
    feat_search_row *rows; /* ranked rows, best first */
    size_t n;              /* rows ranked */
    size_t n_features, n_below_min_count;
    double var_ratio_features; /* sum of var_pos / sum of var_neg over features */
    double var_ratio_resid;    /* the same for the raw activations, over dimensions */
    uint64_t n_pos, n_neg;     /* positions (documents when pooled) in each class */
    uint64_t universe_rows, universe_docs; /* positions encoded, corpus documents touched */
    double base_rate;          /* n_pos / (n_pos + n_neg) */
    size_t n_matching_tokens;  /* vocabulary entries the regex matched (after exclusion) */
    feat_search_match *matches; /* (n_matching_tokens) by count, then id */
    feat_sort sort;            /* the key actually used */
    feat_pool pool;
    /* permutation test (pooled contrasts with permutations > 0) */
    size_t permutations;
    double null_median, null_p95; /* best score over features, per permutation */
    double top_score, fwer_p;     /* the observed best, and P(null best >= it) */
    double log10_labellings;      /* log10 C(nA + nB, nA) */
    double min_p;                 /* smallest p the test can give: 1 / (1 + N), or 1/C when coarser */
    double p_needed;              /* 0.05 / ranked features: what a lone feature needs for q < 0.05 */
} feat_search_result;

int feat_search(feat_search_result *out, sae_model *m, double input_scale, data_actfile *f,
                const feat_search_opts *o, sae_error *err);
void feat_search_result_free(feat_search_result *r);
/* AUROC of two binned samples (index 0 = zero activations), exposed for tests. */
double feat_auroc_from_bins(const uint64_t *pos, const uint64_t *neg, size_t bins);

/* --- statistics kernels (stats.c), exposed for tests -------------------------- */
typedef struct feat_rank_pair {
    double v;
    size_t i;
} feat_rank_pair;
/* Midranks (1-based; ties share their mean rank) of x (n); scratch holds n pairs. */
void feat_midranks(const double *x, size_t n, double *rank, feat_rank_pair *scratch);
/* Exact AUROC of pos (np) against neg (nn) through midranks; 0.5 if either is empty. */
int feat_mann_whitney_auroc(const double *pos, size_t np, const double *neg, size_t nn, double *auroc,
                            sae_error *err);
/* Benjamini-Hochberg q-values of p (n): q_(i) = min over k >= i of p_(k) n / k, capped at 1. */
int feat_bh_qvalues(const double *p, size_t n, double *q, sae_error *err);
/* Label-permutation test over n units for M features, values (M, n) row-major,
 * unit u positive when is_a[u]. Statistic: auroc (mean_diff = 0) or the
 * difference of class means. Fills obs (M), p (M) and null_max (n_perm: per
 * permutation the best score over features). Deterministic for a seed. */
int feat_perm_test(const double *values, size_t M, size_t n, const uint8_t *is_a, int mean_diff,
                   size_t n_perm, uint64_t seed, double *obs, double *p, double *null_max, sae_error *err);
/* The q-quantile of x (n, sorted ascending) with linear interpolation. */
double feat_quantile_sorted(const double *x, size_t n, double q);

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
