/* bench/bench_mcc.c: the time of train_mcc (the |cos| GEMM plus the exact
 * assignment) at a dictionary-recovery size, by default SynthSAEBench-like
 * 4096 true features against M = 8192 latents in D = 512.
 *
 *     build/bench/bench_mcc [n_truth] [M] [D] [threads]
 *
 * Two decoders: "planted" (the truth permuted, sign-flipped, rescaled, plus 10%
 * noise, in n_truth of the M rows) and "random" (M random directions, where
 * the matching has the most contention). The planted case validates first:
 * its optimum is the planted matching, so MCC must equal the f64 mean |cos|
 * of the planted pairs. Prints one JSON line per case. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/gemm.h"
#include "common/rng.h"
#include "train/train.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double abs_cos64(const float *a, const float *b, size_t D) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t c = 0; c < D; c++) {
        ab += (double)a[c] * b[c];
        aa += (double)a[c] * a[c];
        bb += (double)b[c] * b[c];
    }
    return fabs(ab / sqrt(aa * bb));
}

/* Plants truth row i at decoder row perm[i]; returns the planted mean |cos|. */
static double plant(float *W, const float *truth, size_t n, size_t M, size_t D, sae_rng *r) {
    uint32_t *perm = malloc(M * sizeof *perm);
    for (uint32_t j = 0; j < M; j++) perm[j] = j;
    sae_rng_shuffle_u32(r, perm, M);
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        float *w = W + (size_t)perm[i] * D;
        float sign = (i & 1) ? -1.0f : 1.0f, scale = 0.5f + (float)(i % 7);
        for (size_t c = 0; c < D; c++)
            w[c] = scale * (sign * truth[i * D + c] + 0.1f * sae_rng_normal(r));
        sum += abs_cos64(truth + i * D, w, D);
    }
    free(perm);
    return sum / (double)n;
}

static int run(const char *name, const float *truth, size_t n, const float *W, size_t M,
               size_t D, double expect) {
    double mcc, t0 = now();
    sae_error err = {0};
    if (train_mcc(truth, n, W, M, D, &mcc, &err) < 0) {
        fprintf(stderr, "bench_mcc: %s\n", err.msg);
        return 1;
    }
    double t = now() - t0;
    /* f32 GEMM on unit vectors in D = 512: each cosine within ~1e-6 */
    if (expect >= 0 && fabs(mcc - expect) > 1e-5) {
        fprintf(stderr, "bench_mcc: %s: mcc %.9f, planted matching %.9f\n", name, mcc, expect);
        return 1;
    }
    printf("{\"case\":\"%s\",\"n_truth\":%zu,\"M\":%zu,\"D\":%zu,\"threads\":%d,\"mcc\":%.6f,"
           "\"seconds\":%.3f}\n",
           name, n, M, D, sae_get_threads(), mcc, t);
    return 0;
}

int main(int argc, char **argv) {
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 4096;
    size_t M = argc > 2 ? strtoul(argv[2], NULL, 10) : 8192;
    size_t D = argc > 3 ? strtoul(argv[3], NULL, 10) : 512;
    sae_set_threads(argc > 4 ? atoi(argv[4]) : 2);
    if (n == 0 || M < n || D == 0) {
        fprintf(stderr, "usage: bench_mcc [n_truth] [M >= n_truth] [D] [threads]\n");
        return 2;
    }
    float *truth = malloc(n * D * sizeof(float)), *W = malloc(M * D * sizeof(float));
    float *Wp = malloc(M * D * sizeof(float));
    sae_rng r;
    sae_rng_seed(&r, 1, 0);
    for (size_t i = 0; i < n * D; i++) truth[i] = sae_rng_normal(&r);
    for (size_t i = 0; i < M * D; i++) Wp[i] = W[i] = sae_rng_normal(&r);
    double planted = plant(Wp, truth, n, M, D, &r);
    int rc = run("planted", truth, n, Wp, M, D, planted);
    rc = rc || run("random", truth, n, W, M, D, -1.0);
    free(truth);
    free(W);
    free(Wp);
    return rc;
}
