/* data/synth.h: synthetic activation files with a planted dictionary.
 *
 * Each row is a sparse positive combination of F unit-norm "true" features
 * plus small Gaussian noise:  x = sum_i m_i f_i + eps.
 *   - feature i is picked with probability proportional to (i+1)^-alpha (a
 *     power law: a few common features, a long tail of rare ones);
 *   - the number of active features per row is Poisson(active), at least 1;
 *   - magnitudes m_i ~ Uniform(0.5, 1.5); eps ~ N(0, noise^2) per coordinate.
 * The token of a row is the word of its strongest feature (vocabulary id =
 * feature id), replaced by a random word with probability token_noise, so
 * feature labelling can be checked against the truth. Words are pseudo-words
 * in romaji; every eighth is a hiragana word ending in ん.
 *
 * Output is the same for a seed whatever the thread count: rows are made in
 * fixed-size chunks, each from its own RNG stream.
 */
#ifndef SAE_DATA_SYNTH_H
#define SAE_DATA_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct data_synth_params {
    size_t n;          /* rows */
    size_t d;          /* width */
    size_t features;   /* F, planted features */
    double active;     /* mean active features per row */
    uint64_t seed;
    double alpha;      /* power-law exponent of feature frequencies */
    double noise;      /* per-coordinate noise standard deviation */
    double token_noise;/* probability a row's token is random */
    size_t doc_len;    /* rows per document */
    int float16;       /* store activations as float16 */
    int heldout;       /* fresh rows from the same dictionary (an evaluation split) */
} data_synth_params;

data_synth_params data_synth_default_params(void);

/* Writes the file atomically (temporary name, then rename). */
int data_synth_write(const char *path, const data_synth_params *p, sae_error *err);

/* The word for feature i (UTF-8) into buf. */
void data_synth_word(char *buf, size_t cap, size_t i);

#endif
