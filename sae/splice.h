/* sae/splice.h: an SAE inside a model's forward pass. A llama hook
 * (data/llama.h) that, at one site of one block, replaces the activations
 * with the SAE's reconstruction, with zeros, or edits features in them:
 * what `sae eval --model` scores and `sae generate --steer` runs.
 *
 * At every row of every sequence but its first (BOS: the SAE never trained
 * on it, and its huge norm would dominate), with x the site's activation,
 * s the SAE's input_scale and xhat = decode(encode(x s)) / s:
 *   SAE_SPLICE_RECON        x <- xhat
 *   SAE_SPLICE_RECON_ERROR  x <- xhat + (x - xhat): the exact splice, a check
 *                           that the machinery changes nothing
 *   SAE_SPLICE_ZERO         x <- 0
 *   SAE_SPLICE_EDIT         x <- x + sum_F delta_F W_dec[F] / s, the SAE's
 *                           error term kept, with z_F feature F's code of x:
 *       steer F:A   delta = A at every row (A in the feature's own units, those
 *                   of its activations in sae show)
 *       ablate F    delta = -z_F (nothing where F does not fire)
 *       clamp F:V   delta = V - z_F at every row
 *   codes are those of the unedited x (one encode per row).
 *
 * Optional statistics of the unedited rows (RECON, RECON_ERROR, EDIT), per
 * row of the forward, BOS rows left untouched: row_sse = ||x s - xhat s||^2
 * (scaled units, as sae eval --data), row_l0 = active latents.
 *
 * The splice owns a (capacity, d) scratch; the SAE must have been loaded for
 * at least capacity rows. Not thread-safe: one splice per forward.
 *
 *     sae_splice sp;
 *     sae_splice_init(&sp, &model, scale, 3, DATA_SITE_RESID_POST, 4096, &err);
 *     sp.mode = SAE_SPLICE_RECON;
 *     sae_splice_set_batch(&sp, off, n_seq);
 *     data_llama_forward(run, ids, off, n_seq, -1, sae_splice_hook, &sp, logits);
 *     if (sp.failed) ... sp.err ...
 *     sae_splice_free(&sp);
 */
#ifndef SAE_SAE_SPLICE_H
#define SAE_SAE_SPLICE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "data/llama.h"
#include "sae/sae.h"

typedef enum sae_splice_mode {
    SAE_SPLICE_NONE = 0, /* leave the site as it is (a clean run) */
    SAE_SPLICE_RECON,
    SAE_SPLICE_RECON_ERROR,
    SAE_SPLICE_ZERO,
    SAE_SPLICE_EDIT,
} sae_splice_mode;

typedef enum sae_edit_kind { SAE_EDIT_STEER = 0, SAE_EDIT_ABLATE, SAE_EDIT_CLAMP } sae_edit_kind;

typedef struct sae_edit {
    sae_edit_kind kind;
    uint32_t feature;
    float value; /* steer: A; clamp: V; ablate: unused */
} sae_edit;

/* "F:A" (steer, clamp) or "F" (ablate) for an SAE of n_latents features. The
 * error names flag (e.g. "--steer"). */
int sae_edit_parse(const char *arg, sae_edit_kind kind, size_t n_latents, const char *flag,
                   sae_edit *out, sae_error *err);
/* Refuses two edits of one feature (which would win is not obvious). */
int sae_edits_check(const sae_edit *e, size_t n, sae_error *err);
/* "steer 12:+4, ablate 7" */
void sae_edits_describe(const sae_edit *e, size_t n, char *buf, size_t cap);

typedef struct sae_splice {
    sae_model *m;
    double scale;
    int layer;
    data_site site;
    sae_splice_mode mode;
    const sae_edit *edits;
    size_t n_edits;
    double *row_sse;   /* NULL or (rows) per row, set by the hook */
    uint32_t *row_l0;  /* NULL or (rows) */
    /* set by the hook when the SAE fails (out of memory for a threshold
     * rule's codes); the forward cannot stop, so the caller checks */
    int failed;
    sae_error err;
    /* private */
    const size_t *off;
    size_t n_seq, capacity;
    float *xs;         /* (capacity, d) the non-BOS rows, scaled */
    uint32_t *src;     /* (capacity) their row in the forward */
} sae_splice;

int sae_splice_init(sae_splice *sp, sae_model *m, double scale, int layer, data_site site,
                    size_t capacity, sae_error *err);
void sae_splice_free(sae_splice *sp);
/* The sequences of the next forward (their first rows are left alone);
 * off NULL: every forward is one sequence (generation). */
void sae_splice_set_batch(sae_splice *sp, const size_t *off, size_t n_seq);
/* The data_llama_hook; user is the sae_splice. */
void sae_splice_hook(int layer, data_site site, float *x, size_t rows, void *user);

#endif
