/* data/generate.c: prompt continuation (see generate.h). */
#include "data/generate.h"

#include <math.h>

#include "common/err.h"
#include "common/rng.h"

int32_t data_sample(const float *logits, size_t V, float temperature, sae_rng *g) {
    size_t best = 0;
    for (size_t i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (temperature <= 0.0f) return (int32_t)best;
    double u = sae_rng_uniform_open(g), sum = 0;
    for (size_t i = 0; i < V; i++) sum += exp((logits[i] - logits[best]) / temperature);
    u *= sum;
    for (size_t i = 0; i < V; i++) {
        u -= exp((logits[i] - logits[best]) / temperature);
        if (u <= 0) return (int32_t)i;
    }
    return (int32_t)best;
}

size_t data_generate(data_llama_run *r, int32_t *ids, size_t n, const data_generate_params *g,
                     data_llama_hook hook, void *hook_user, data_generate_cb cb, void *cb_user,
                     float *logits) {
    size_t V = (size_t)data_llama_run_vocab(r);
    sae_rng rng;
    sae_rng_seed(&rng, g->seed, 0);
    for (size_t step = 0; n < g->steps && n > 0; step++) {
        size_t off[2] = {0, n};
        data_llama_forward(r, ids, off, 1, -1, hook, hook_user, logits);
        const float *last = logits + (n - 1) * V;
        int32_t next = data_sample(last, V, g->temperature, &rng);
        if (cb) cb(step, last, V, next, cb_user);
        if (next == DATA_TOKEN_BOS) break;
        ids[n++] = next;
    }
    return n;
}
