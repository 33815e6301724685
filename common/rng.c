/* common/rng.c: xoshiro256** (Blackman & Vigna 2018) seeded by splitmix64. */
#include "common/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void sae_rng_seed(sae_rng *r, uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ULL + 0x632be59bd9b4e019ULL);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t sae_rng_u64(sae_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t sae_rng_below(sae_rng *r, uint64_t n) {
    /* rejection sampling on the top of the range removes modulo bias */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = sae_rng_u64(r);
    while (x >= limit);
    return x % n;
}

float sae_rng_uniform(sae_rng *r) { return (float)(sae_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

double sae_rng_uniform_open(sae_rng *r) {
    return ((double)(sae_rng_u64(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

float sae_rng_normal(sae_rng *r) {
    double u1 = sae_rng_uniform_open(r), u2 = sae_rng_uniform_open(r);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void sae_rng_shuffle_u32(sae_rng *r, uint32_t *a, uint64_t n) {
    for (uint64_t i = n; i > 1; i--) {
        uint64_t j = sae_rng_below(r, i);
        uint32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}
