/* common/rng.h: explicit-state pseudo-random numbers (xoshiro256**).
 *
 * The state is a plain struct passed by pointer: no hidden globals, so any
 * stream can be re-created from its seed, which is what makes data shuffling
 * and initialisation reproducible and resumable. Streams for independent
 * pieces of work (a synthetic chunk, a shuffle window) are derived with
 * sae_rng_seed(&r, seed, stream) instead of being drawn in sequence, so the
 * result does not depend on the thread count or on where a run resumed.
 *
 *     sae_rng r;
 *     sae_rng_seed(&r, 42, 0);
 *     float u = sae_rng_uniform(&r);   // [0, 1)
 */
#ifndef SAE_COMMON_RNG_H
#define SAE_COMMON_RNG_H

#include <stdint.h>

typedef struct sae_rng {
    uint64_t s[4];
} sae_rng;

/* Seeds from (seed, stream) through splitmix64; distinct streams are
 * statistically independent. */
void sae_rng_seed(sae_rng *r, uint64_t seed, uint64_t stream);
uint64_t sae_rng_u64(sae_rng *r);
/* uniform integer in [0, n), n > 0, without modulo bias */
uint64_t sae_rng_below(sae_rng *r, uint64_t n);
/* uniform float in [0, 1) with 24 random bits */
float sae_rng_uniform(sae_rng *r);
/* uniform double in (0, 1) */
double sae_rng_uniform_open(sae_rng *r);
/* standard normal (Box-Muller; draws two uniforms per call, keeps no cache) */
float sae_rng_normal(sae_rng *r);
/* Fisher-Yates shuffle of an index array */
void sae_rng_shuffle_u32(sae_rng *r, uint32_t *a, uint64_t n);

#endif
