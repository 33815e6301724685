/* data/generate.h: continuing a prompt with a llama2.c model, optionally with
 * a hook in the forward (an SAE splice or a feature edit, sae/splice.h).
 * Each step re-runs the prefill over the whole sequence: simple, exact, and
 * fast enough for the small models this is for, and a hook sees every
 * position of every step the same way (as a splice over a corpus does).
 *
 *     int32_t ids[256] = {1, ...prompt...};
 *     data_generate_params g = {.steps = 64};
 *     size_t n = data_generate(run, ids, n_prompt, &g, NULL, NULL, NULL, NULL, logits);
 */
#ifndef SAE_DATA_GENERATE_H
#define SAE_DATA_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "data/llama.h"
#include "data/tokenizer.h"

typedef struct data_generate_params {
    size_t steps;      /* tokens in all, prompt included (at most the run's max_seq) */
    float temperature; /* 0 = greedy: the most probable token, lowest id on ties */
    uint64_t seed;     /* sampling seed (the same seed gives the same draws) */
} data_generate_params;

/* Called after each step with the last position's logits (V) and the token
 * chosen from them (DATA_TOKEN_BOS ends the continuation and is not kept). */
typedef void (*data_generate_cb)(size_t step, const float *logits, size_t V, int32_t next, void *user);

/* Extends ids[0 .. n) (BOS first, room for g->steps) and returns its new
 * length. logits: scratch of (g->steps, V) floats. Generation stops at BOS,
 * as llama2.c's run does. */
size_t data_generate(data_llama_run *r, int32_t *ids, size_t n, const data_generate_params *g,
                     data_llama_hook hook, void *hook_user, data_generate_cb cb, void *cb_user,
                     float *logits);

/* The token drawn from logits (V) at this temperature (0 = argmax). */
struct sae_rng;
int32_t data_sample(const float *logits, size_t V, float temperature, struct sae_rng *g);

#endif
