/* train/splice_eval.h: how much of a language model's behaviour survives an
 * SAE. Runs the model over a corpus (the windows of `sae capture`,
 * data/windows.h) with the SAE's site left clean, replaced by the SAE's
 * reconstruction, zeroed, and (with edits) with features edited
 * (sae/splice.h), and scores each against the clean run:
 *
 *   ce_X      mean next-token cross-entropy (nats) of run X
 *   kl_X      mean KL(p_clean || p_X) (nats) per predicted token
 *   ce_score  (ce_zero - ce_sae) / (ce_zero - ce_clean): 1 = the SAE loses
 *             nothing, 0 = as bad as deleting the site (SAELens's CE-loss score)
 *   kl_score  (kl_zero - kl_sae) / kl_zero
 *   fvu, mse, l0 of the SAE on the same (clean) site activations (mse in the
 *             model's units, as sae eval --data)
 *
 * Predicted tokens: positions 1 .. T-2 of each window of T tokens (BOS at 0).
 * The prediction made at BOS is left out of every mean (it sees no text, and
 * no run changes it, since BOS is never spliced); the last position's target
 * lies outside the window. fvu, mse and l0 are over positions 1 .. T-1, the
 * rows `sae capture` writes.
 *
 * Work: the blocks before the site run once per batch; their output is
 * saved and only the blocks after it run once per splice (for resid_post of
 * block L, blocks L+1 ...). Memory: a batch's
 * logits and clean log-probabilities (2 x batch_rows x V floats).
 */
#ifndef SAE_TRAIN_SPLICE_EVAL_H
#define SAE_TRAIN_SPLICE_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "data/llama.h"
#include "data/tokenizer.h"
#include "sae/sae.h"
#include "sae/splice.h"

typedef struct train_splice_params {
    const char *corpus_path;
    size_t seq_len;      /* window length with BOS; 0 = the model's */
    size_t batch_rows;   /* tokens per forward */
    uint64_t max_tokens; /* stop once this many predicted tokens are scored (whole windows); 0 = all */
    int layer;
    data_site site;
    int replace_error;   /* the "sae" run splices xhat + (x - xhat) */
    const sae_edit *edits;
    size_t n_edits;      /* > 0: also an edited run */
    int by_label;
} train_splice_params;

typedef struct train_splice_scores {
    uint64_t windows, tokens, rows; /* tokens: predicted positions; rows: spliced */
    double ce_clean, ce_sae, ce_zero, ce_edit;
    double kl_sae, kl_zero, kl_edit;
    double ce_score, kl_score; /* NaN when the zero run is no worse than clean */
    double fvu, mse, l0;       /* fvu NaN when the activations do not vary */
} train_splice_scores;

typedef struct train_splice_result {
    train_splice_scores all;
    size_t n_labels;       /* with by_label: distinct labels, in order of first appearance */
    char **labels;         /* "" for windows without a label */
    train_splice_scores *by_label;
} train_splice_result;

typedef void (*train_splice_cb)(uint64_t tokens_done, uint64_t bytes_done, uint64_t bytes_total, void *user);

/* m must have been loaded for at least batch_rows rows (sae_file_load's
 * capacity; see train_splice_capacity). */
int train_splice_eval(const data_llama *lm, const data_tokenizer *t, sae_model *m, double scale,
                      const train_splice_params *p, train_splice_cb cb, void *user,
                      train_splice_result *out, sae_error *err);
/* The SAE capacity train_splice_eval needs for these settings. */
size_t train_splice_capacity(const data_llama *lm, const train_splice_params *p);
void train_splice_result_free(train_splice_result *r);

#endif
