/* bench/bench_encoder.c: the encoder product's speed, the ceiling for every
 * pass that encodes activations (training, features, search).
 *
 *     build/bench/bench_encoder D M [B] [threads]
 *
 * Checks sae_gemm against the naive reference on a small case first, then
 * times pre (B, M) = x (B, D) @ W_enc^T over repeated runs and prints the
 * median rate in GFLOP/s and tokens/s (2*D*M flops per token). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <math.h>

#include "common/gemm.h"
#include "common/mem.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    size_t D = argc > 1 ? (size_t)atol(argv[1]) : 512, M = argc > 2 ? (size_t)atol(argv[2]) : 8192;
    size_t B = argc > 3 ? (size_t)atol(argv[3]) : 4096;
    int threads = argc > 4 ? atoi(argv[4]) : 2;
    sae_set_threads(threads);
    /* validate first */
    float a[37 * 29], w[41 * 29], c1[37 * 41], c2[37 * 41];
    for (size_t i = 0; i < sizeof a / 4; i++) a[i] = (float)((i * 7919) % 97) / 97.0f - 0.5f;
    for (size_t i = 0; i < sizeof w / 4; i++) w[i] = (float)((i * 104729) % 89) / 89.0f - 0.5f;
    sae_gemm(0, 1, 37, 41, 29, 1.0f, a, 29, w, 29, 0.0f, c1, 41);
    sae_gemm_ref(0, 1, 37, 41, 29, 1.0f, a, 29, w, 29, 0.0f, c2, 41);
    for (size_t i = 0; i < 37 * 41; i++)
        if (fabsf(c1[i] - c2[i]) > 1e-4f) {
            fprintf(stderr, "bench_encoder: sgemm disagrees with the reference\n");
            return 1;
        }
    float *x = sae_alloc(B * D * 4), *W = sae_alloc(M * D * 4), *pre = sae_alloc(B * M * 4);
    for (size_t i = 0; i < B * D; i++) x[i] = (float)(i % 13) * 0.1f;
    for (size_t i = 0; i < M * D; i++) W[i] = (float)(i % 7) * 0.01f;
    double t[15];
    sae_gemm(0, 1, B, M, D, 1.0f, x, D, W, D, 0.0f, pre, M); /* warm-up */
    for (int r = 0; r < 15; r++) {
        double t0 = now();
        sae_gemm(0, 1, B, M, D, 1.0f, x, D, W, D, 0.0f, pre, M);
        t[r] = now() - t0;
    }
    qsort(t, 15, sizeof *t, cmp_d);
    double gflops = 2.0 * (double)B * (double)M * (double)D / t[7] / 1e9;
    printf("{\"d\": %zu, \"m\": %zu, \"batch\": %zu, \"threads\": %d, \"median_s\": %.5f, "
           "\"gflops\": %.1f, \"tokens_per_s\": %.0f}\n",
           D, M, B, threads, t[7], gflops, (double)B / t[7]);
    sae_free(x), sae_free(W), sae_free(pre);
    return 0;
}
