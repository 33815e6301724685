/* bench/bench_encoder.c: the encoder product's speed through each GEMM
 * library, the ceiling for every pass that encodes activations (training,
 * features, search).
 *
 *     build/bench/bench_encoder D M [B] [threads]
 *
 * For each kind of sae_matmul (OpenBLAS f32, oneDNN f32, oneDNN bf16 where the
 * CPU has bf16 instructions): checks it against the naive reference on a small
 * case, then times pre (B, M) = x (B, D) @ W_enc^T over repeated runs and
 * prints one JSON line with the median rate in GFLOP/s and tokens/s (2*D*M
 * flops per token). A kind this CPU cannot run prints "supported": false. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/gemm.h"
#include "common/mem.h"

#define REPS 15

static const char *const KIND_NAMES[] = {"openblas_f32", "onednn_f32", "onednn_bf16"};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A small odd-sized product against sae_gemm_ref, within the kind's rounding. */
static int validate(sae_matmul_kind kind) {
    enum { R = 37, N = 41, K = 29 };
    float a[R * K], w[N * K], c1[R * N], c2[R * N];
    for (size_t i = 0; i < R * K; i++) a[i] = (float)((i * 7919) % 97) / 97.0f - 0.5f;
    for (size_t i = 0; i < N * K; i++) w[i] = (float)((i * 104729) % 89) / 89.0f - 0.5f;
    sae_error err = {0};
    sae_matmul *mm;
    if (sae_matmul_create_kind(&mm, kind, R, N, K, &err) < 0) return -1;
    sae_matmul_set_weights(mm, w);
    sae_matmul_run(mm, a, R, c1);
    sae_matmul_free(mm);
    sae_gemm_ref(0, 1, R, N, K, 1.0f, a, K, w, K, 0.0f, c2, N);
    float tol = kind == SAE_MATMUL_ONEDNN_BF16 ? 0.05f : 1e-4f; /* |a|,|w| <= 0.5, 29 terms */
    for (size_t i = 0; i < R * N; i++)
        if (fabsf(c1[i] - c2[i]) > tol) return 1;
    return 0;
}

int main(int argc, char **argv) {
    size_t D = argc > 1 ? (size_t)atol(argv[1]) : 512, M = argc > 2 ? (size_t)atol(argv[2]) : 8192;
    size_t B = argc > 3 ? (size_t)atol(argv[3]) : 4096;
    int threads = argc > 4 ? atoi(argv[4]) : 2;
    if (!D || !M || !B || threads < 1) {
        fprintf(stderr, "usage: bench_encoder D M [B] [threads]\n");
        return 2;
    }
    sae_set_threads(threads);
    float *x = sae_alloc(B * D * 4), *W = sae_alloc(M * D * 4), *pre = sae_alloc(B * M * 4);
    if (!x || !W || !pre) {
        fprintf(stderr, "bench_encoder: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < B * D; i++) x[i] = (float)(i % 13) * 0.1f - 0.6f;
    for (size_t i = 0; i < M * D; i++) W[i] = (float)(i % 7) * 0.01f - 0.03f;
    for (int kind = 0; kind < 3; kind++) {
        printf("{\"kind\": \"%s\", \"d\": %zu, \"m\": %zu, \"batch\": %zu, \"threads\": %d, ",
               KIND_NAMES[kind], D, M, B, threads);
        sae_error err = {0};
        sae_matmul *mm;
        if (sae_matmul_create_kind(&mm, (sae_matmul_kind)kind, B, M, D, &err) < 0) {
            printf("\"supported\": false, \"why\": \"%s\"}\n", err.msg);
            continue;
        }
        if (validate((sae_matmul_kind)kind) != 0) {
            fprintf(stderr, "bench_encoder: %s disagrees with the reference\n", KIND_NAMES[kind]);
            return 1;
        }
        double t[REPS];
        sae_matmul_set_weights(mm, W);
        sae_matmul_run(mm, x, B, pre); /* warm-up: first-touch, JIT, packing buffers */
        for (int r = 0; r < REPS; r++) {
            double t0 = now();
            sae_matmul_run(mm, x, B, pre);
            t[r] = now() - t0;
        }
        qsort(t, REPS, sizeof *t, cmp_d);
        double med = t[REPS / 2], gflops = 2.0 * (double)B * (double)M * (double)D / med / 1e9;
        printf("\"supported\": true, \"impl\": \"%s\", \"median_s\": %.5f, \"gflops\": %.1f, "
               "\"tokens_per_s\": %.0f}\n",
               sae_matmul_impl(mm), med, gflops, (double)B / med);
        fflush(stdout);
        sae_matmul_free(mm);
    }
    sae_free(x), sae_free(W), sae_free(pre);
    return 0;
}
