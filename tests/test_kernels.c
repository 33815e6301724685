/* tests/test_kernels.c: the SAE's math against independent references.
 *
 *  - sae_gemm (OpenBLAS) against the naive double-accumulating sae_gemm_ref;
 *  - TopK selection against a brute-force full sort;
 *  - BatchTopK's chunked, threaded selection against a sort of the whole batch;
 *  - every parameter gradient of every architecture (AuxK included) against
 *    central finite differences of a separate double-precision implementation
 *    of the loss written here from the formulas in sae/arch_*.c, and the
 *    JumpReLU threshold's straight-through estimate against its definition.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/rng.h"
#include "common/gemm.h"
#include "sae/kernels.h"
#include "sae/sae.h"

static void fill_normal(float *a, size_t n, float scale, uint64_t seed) {
    sae_rng g;
    sae_rng_seed(&g, seed, 1);
    for (size_t i = 0; i < n; i++) a[i] = scale * sae_rng_normal(&g);
}

static void test_gemm_matches_reference(void **state) {
    (void)state;
    /* odd sizes exercise the BLAS edge kernels; all four transpose cases */
    size_t m = 37, n = 29, k = 53;
    float *A = malloc(m * k * 4), *B = malloc(k * n * 4), *C = malloc(m * n * 4), *R = malloc(m * n * 4);
    fill_normal(A, m * k, 1, 1);
    fill_normal(B, k * n, 1, 2);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            size_t lda = ta ? m : k, ldb = tb ? k : n;
            fill_normal(C, m * n, 1, 3);
            memcpy(R, C, m * n * 4);
            sae_gemm(ta, tb, m, n, k, 0.5f, A, lda, B, ldb, 2.0f, C, n);
            sae_gemm_ref(ta, tb, m, n, k, 0.5f, A, lda, B, ldb, 2.0f, R, n);
            double maxd = 0;
            for (size_t i = 0; i < m * n; i++) maxd = fmax(maxd, fabs((double)C[i] - R[i]));
            /* float32 dot products of 53 terms of size ~1: error ~ sqrt(53) * 6e-8 * |terms| */
            if (maxd > 1e-4) fail_msg("gemm ta=%d tb=%d maxdiff %g", ta, tb, maxd);
        }
    free(A), free(B), free(C), free(R);
}

/* bf16 rounding as the hardware does it (nearest even), for the reference */
static float round_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

static void test_matmul_plans(void **state) {
    (void)state;
    /* odd sizes (edge kernels); fewer rows than planned (padding path) */
    size_t R = 67, N = 131, K = 97;
    float *A = malloc(R * K * 4), *W = malloc(N * K * 4), *C = malloc(R * N * 4),
          *G = malloc(R * N * 4), *Ar = malloc(R * K * 4), *Wr = malloc(N * K * 4);
    fill_normal(A, R * K, 1, 11);
    fill_normal(W, N * K, 1, 12);
    sae_error err = {0};
    sae_matmul *mm;
    /* OpenBLAS f32: exactly sae_gemm */
    assert_int_equal(sae_matmul_create_kind(&mm, SAE_MATMUL_OPENBLAS_F32, R, N, K, &err), SAE_OK);
    sae_matmul_set_weights(mm, W);
    for (size_t rows = R; rows >= R - 5; rows -= 5) {
        sae_matmul_run(mm, A, rows, C);
        sae_gemm(0, 1, rows, N, K, 1.0f, A, K, W, K, 0.0f, G, N);
        assert_memory_equal(C, G, rows * N * 4);
    }
    sae_matmul_free(mm);
    /* oneDNN f32 and the default f32 plan: f32 rounding only (97 terms of
     * size ~1: ~1e-5), with all rows and with fewer rows than planned */
    for (int t = 0; t < 2; t++) {
        int rc = t == 0 ? sae_matmul_create_kind(&mm, SAE_MATMUL_ONEDNN_F32, R, N, K, &err)
                        : sae_matmul_create(&mm, SAE_PRECISION_F32, R, N, K, &err);
        assert_int_equal(rc, SAE_OK);
        sae_matmul_set_weights(mm, W);
        for (size_t rows = R; rows >= R - 5; rows -= 5) {
            sae_matmul_run(mm, A, rows, C);
            sae_gemm_ref(0, 1, rows, N, K, 1.0f, A, K, W, K, 0.0f, G, N);
            for (size_t i = 0; i < rows * N; i++) assert_true(fabsf(C[i] - G[i]) < 1e-4f);
        }
        sae_matmul_free(mm);
    }
    if (sae_precision_check(SAE_PRECISION_BF16, &err) < 0) {
        print_message("bf16 plan not tested: %s\n", err.msg);
        free(A), free(W), free(C), free(G), free(Ar), free(Wr);
        return;
    }
    assert_int_equal(sae_matmul_create(&mm, SAE_PRECISION_BF16, R, N, K, &err), SAE_OK);
    sae_matmul_set_weights(mm, W);
    /* reference: the same bf16-rounded inputs, exact (double) sums. Products
     * of two bf16 values are exact in f32, so the only error is f32
     * accumulation: K terms of size ~1 give ~sqrt(K) * 6e-8 relative; 1e-4 of
     * the row's absolute sum is generous. Against the unrounded inputs the
     * error is the rounding itself, ~2^-9 per factor. */
    for (size_t i = 0; i < R * K; i++) Ar[i] = round_bf16(A[i]);
    for (size_t i = 0; i < N * K; i++) Wr[i] = round_bf16(W[i]);
    for (size_t rows = R; rows >= R - 5; rows -= 5) {
        sae_matmul_run(mm, A, rows, C);
        sae_gemm_ref(0, 1, rows, N, K, 1.0f, Ar, K, Wr, K, 0.0f, G, N);
        double worst = 0, worst_f32 = 0;
        for (size_t r = 0; r < rows; r++)
            for (size_t c = 0; c < N; c++) {
                double abs_sum = 0;
                for (size_t p = 0; p < K; p++) abs_sum += fabs((double)A[r * K + p] * W[c * K + p]);
                double exact = 0;
                for (size_t p = 0; p < K; p++) exact += (double)A[r * K + p] * W[c * K + p];
                worst = fmax(worst, fabs(C[r * N + c] - G[r * N + c]) / abs_sum);
                worst_f32 = fmax(worst_f32, fabs(C[r * N + c] - exact) / abs_sum);
            }
        if (worst > 1e-4) fail_msg("bf16 matmul vs rounded reference: %g of the abs sum", worst);
        if (worst_f32 > 1e-2) fail_msg("bf16 matmul vs f32: %g of the abs sum", worst_f32);
    }
    assert_non_null(strstr(sae_matmul_impl(mm), "onednn"));
    sae_matmul_free(mm);
    free(A), free(W), free(C), free(G), free(Ar), free(Wr);
}

typedef struct {
    float v;
    int32_t j;
} vi;
static int cmp_vi(const void *a, const void *b) {
    const vi *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return x->j < y->j ? -1 : 1;
}

/* Brute-force reference: sort all candidates by (value desc, index asc). */
static void check_topk_row(const float *pre, const float *bias, const int32_t *cand, size_t n,
                           const int32_t *idx, const float *val, size_t K) {
    vi *all = malloc(n * sizeof *all), *got = malloc(K * sizeof *got);
    for (size_t c = 0; c < n; c++) {
        int32_t j = cand ? cand[c] : (int32_t)c;
        all[c] = (vi){fmaxf(pre[j] + bias[j], 0), j};
    }
    qsort(all, n, sizeof *all, cmp_vi);
    size_t kk = K < n ? K : n;
    for (size_t s = 0; s < kk; s++) got[s] = (vi){val[s], idx[s]};
    qsort(got, kk, sizeof *got, cmp_vi);
    for (size_t s = 0; s < kk; s++) {
        assert_float_equal(got[s].v, all[s].v, 0);
        assert_int_equal(got[s].j, all[s].j);
    }
    for (size_t s = kk; s < K; s++) assert_int_equal(idx[s], -1);
    free(all);
    free(got);
}

static void test_topk_matches_sort(void **state) {
    (void)state;
    /* M large enough for many buffer compactions; K from 1 up to more than
     * the row's positive values; ties, all-negative rows, NaN, sorted rows
     * (every latent beats the threshold: worst case for the filter) */
    size_t B = 12, M = 3001, S = 300, Ks[] = {1, 6, 32, 300};
    float *pre = malloc(B * M * 4), *bias = malloc(M * 4), *val = malloc(B * S * 4);
    int32_t *idx = malloc(B * S * 4);
    sae_topk_pair *scratch = malloc(SAE_TOPK_SLOTS * sae_topk_scratch_len(S) * sizeof *scratch);
    fill_normal(pre, B * M, 1, 4);
    fill_normal(bias, M, 0.1f, 5);
    for (size_t j = 0; j < M; j += 7) pre[0 * M + j] = 5.0f - bias[j]; /* 429 exact ties */
    for (size_t j = 0; j < M; j++) pre[2 * M + j] = -1.0f - (float)j;
    for (size_t j = 0; j < M; j++) pre[3 * M + j] = (j % 500 == 0 ? 1.0f : -1.0f) - bias[j];
    for (size_t j = 0; j < M; j++) pre[4 * M + j] = (float)j; /* ascending */
    for (size_t j = 0; j < M; j++) pre[5 * M + j] = (float)(M - j);
    pre[6 * M + 10] = NAN;
    for (size_t k = 0; k < sizeof Ks / sizeof *Ks; k++) {
        size_t K = Ks[k];
        sae_topk_forward(idx, val, pre, bias, NULL, 0, B, M, S, K, scratch);
        for (size_t r = 0; r < B; r++)
            check_topk_row(pre + r * M, bias, NULL, M, idx + r * S, val + r * S, K);
        /* candidate-restricted selection (AuxK), including fewer candidates than K */
        int32_t cand[400];
        for (size_t c = 0; c < 400; c++) cand[c] = (int32_t)(c * 7 + 3);
        size_t ncs[] = {3, 400};
        for (size_t t = 0; t < 2; t++) {
            sae_topk_forward(idx, val, pre, bias, cand, ncs[t], B, M, S, K, scratch);
            for (size_t r = 0; r < B; r++)
                check_topk_row(pre + r * M, bias, cand, ncs[t], idx + r * S, val + r * S, K);
        }
    }
    free(pre), free(bias), free(val), free(idx), free(scratch);
}

/* ---- double-precision reference of the losses in sae/sae.h ---------------- */
typedef struct {
    size_t B, D, M, K, aux_k;
    double aux_coef, l1;
    const int32_t *dead;
    size_t n_dead;
    sae_arch arch;
    const size_t *widths; /* matryoshka */
    size_t n_widths;
    size_t target_l0;     /* jumprelu */
} ref_cfg;

/* The selected codes, brute force: z (B, M) from ReLU'd pre-activations a. */
static void ref_select(const ref_cfg *c, const double *a, const double *raw, const double *theta,
                       double *z) {
    size_t B = c->B, M = c->M;
    memset(z, 0, B * M * sizeof *z);
    if (c->arch == SAE_ARCH_RELU) {
        memcpy(z, a, B * M * sizeof *z);
    } else if (c->arch == SAE_ARCH_JUMPRELU) {
        for (size_t i = 0; i < B * M; i++) z[i] = raw[i] > theta[i % M] && raw[i] > 0 ? raw[i] : 0;
    } else if (c->arch == SAE_ARCH_TOPK) {
        for (size_t r = 0; r < B; r++)
            for (size_t s = 0; s < c->K; s++) { /* repeated arg-max, ties: lower index */
                int best = -1;
                for (size_t j = 0; j < M; j++)
                    if (z[r * M + j] == 0 && a[r * M + j] > 0 && (best < 0 || a[r * M + j] > a[r * M + best]))
                        best = (int)j;
                if (best >= 0) z[r * M + best] = a[r * M + best];
            }
    } else { /* batch: K*B over the whole batch, ties: lower flat index */
        for (size_t s = 0; s < c->K * B; s++) {
            long best = -1;
            for (size_t i = 0; i < B * M; i++)
                if (z[i] == 0 && a[i] > 0 && (best < 0 || a[i] > a[best])) best = (long)i;
            if (best >= 0) z[best] = a[best];
        }
    }
}

/* theta: params in the blob layout (W_enc (M,D), b_enc, W_dec (M,D), b_dec,
 * jumprelu thresholds (M)). r_fixed: the AuxK target, held constant (NULL:
 * compute it and return in r_out). The sparsity terms are given their exact
 * value; their gradients are checked separately where they are estimates. */
static double ref_loss(const ref_cfg *c, const double *th, const float *x, const double *r_fixed,
                       double *r_out) {
    size_t B = c->B, D = c->D, M = c->M;
    const double *We = th, *be = th + M * D, *Wd = be + M, *bd = Wd + M * D, *thr = bd + D;
    double *raw = malloc(B * M * sizeof(double)), *pre = malloc(B * M * sizeof(double));
    double *z = malloc(B * M * sizeof(double)), *xhat = malloc(B * D * sizeof(double));
    for (size_t r = 0; r < B; r++)
        for (size_t j = 0; j < M; j++) {
            double a = be[j];
            for (size_t k = 0; k < D; k++) a += (x[r * D + k] - bd[k]) * We[j * D + k];
            raw[r * M + j] = a;
            pre[r * M + j] = a > 0 ? a : 0;
        }
    ref_select(c, pre, raw, thr, z);
    double var = 0, loss = 0, sse = 0;
    for (size_t k = 0; k < D; k++) {
        double mu = 0;
        for (size_t r = 0; r < B; r++) mu += x[r * D + k] / (double)B;
        for (size_t r = 0; r < B; r++) var += (x[r * D + k] - mu) * (x[r * D + k] - mu);
    }
    /* nested prefixes (matryoshka), else one: the whole dictionary */
    size_t one = M, G = c->n_widths ? c->n_widths : 1;
    const size_t *widths = c->n_widths ? c->widths : &one;
    for (size_t g = 0; g < G; g++) {
        sse = 0;
        for (size_t r = 0; r < B; r++)
            for (size_t k = 0; k < D; k++) {
                double v = bd[k];
                for (size_t j = 0; j < widths[g]; j++) v += z[r * M + j] * Wd[j * D + k];
                xhat[r * D + k] = v;
                sse += (v - x[r * D + k]) * (v - x[r * D + k]);
            }
        loss += c->arch == SAE_ARCH_RELU ? sse / (double)B : sse / var;
    }
    if (r_out)
        for (size_t i = 0; i < B * D; i++) r_out[i] = x[i] - xhat[i];
    if (c->arch == SAE_ARCH_RELU) {
        double sp = 0;
        for (size_t j = 0; j < M; j++) {
            double nn = 0, zs = 0;
            for (size_t k = 0; k < D; k++) nn += Wd[j * D + k] * Wd[j * D + k];
            for (size_t r = 0; r < B; r++) zs += z[r * M + j];
            sp += sqrt(nn) * zs;
        }
        loss += c->l1 * sp / (double)B;
    }
    if (c->arch == SAE_ARCH_JUMPRELU) {
        double l0 = 0;
        for (size_t i = 0; i < B * M; i++) l0 += z[i] > 0;
        l0 /= (double)B;
        loss += c->l1 * (l0 / (double)c->target_l0 - 1) * (l0 / (double)c->target_l0 - 1);
    }
    if (c->aux_k && c->n_dead) {
        size_t ka = c->n_dead < c->aux_k ? c->n_dead : c->aux_k;
        double w = c->aux_coef * fmin((double)c->n_dead / (double)c->aux_k, 1.0);
        const double *rr = r_fixed ? r_fixed : r_out;
        double aux = 0, vr = 0;
        for (size_t k = 0; k < D; k++) {
            double mu = 0;
            for (size_t r = 0; r < B; r++) mu += rr[r * D + k] / (double)B;
            for (size_t r = 0; r < B; r++) vr += (rr[r * D + k] - mu) * (rr[r * D + k] - mu);
        }
        for (size_t r = 0; r < B; r++) {
            int used[64] = {0};
            double eh[16] = {0};
            for (size_t s = 0; s < ka; s++) {
                int best = -1;
                for (size_t t = 0; t < c->n_dead; t++) {
                    int j = c->dead[t];
                    if (!used[j] && (best < 0 || pre[r * M + j] > pre[r * M + best])) best = j;
                }
                used[best] = 1;
                for (size_t k = 0; k < D; k++) eh[k] += pre[r * M + best] * Wd[best * D + k];
            }
            for (size_t k = 0; k < D; k++) aux += (eh[k] - rr[r * D + k]) * (eh[k] - rr[r * D + k]);
        }
        loss += w * aux / vr;
    }
    free(raw), free(pre), free(z), free(xhat);
    return loss;
}

static void check_gradients(sae_arch arch, int with_aux) {
    size_t B = 6, D = 5, M = 12, widths[3] = {3, 7, 12};
    sae_config c = sae_config_default(arch);
    c.aux_k = with_aux ? 4 : 0;
    c.aux_coef = 0.5f;
    c.k = 3;
    c.target_l0 = 4;
    c.bandwidth = 0.2f;
    memcpy(c.widths, widths, sizeof widths);
    c.n_widths = 3;
    sae_error err = {0};
    c.m = M;
    assert_int_equal(sae_config_resolve(&c, D, &err), 0);
    sae_model m;
    assert_int_equal(sae_model_init(&m, &c, B, 1, &err), 0);
    size_t P = sae_param_count(&c);
    fill_normal(m.param_blob, P, 0.5f, 10 + (uint64_t)arch);
    if (m.p.threshold && arch == SAE_ARCH_JUMPRELU)
        for (size_t j = 0; j < M; j++) m.p.threshold[j] = 0.3f + 0.05f * (float)j;
    float x[6 * 5];
    fill_normal(x, B * D, 1.0f, 20);
    int32_t dead[6] = {0, 2, 5, 7, 9, 11};
    ref_cfg rc = {B, D, M, c.k, c.aux_k, 0.5, 0.7, dead, with_aux ? 6 : 0, arch,
                  c.n_widths ? c.widths : NULL, c.n_widths, c.target_l0};
    sae_step st = {.train = 1, .sparsity_coef = (float)rc.l1, .dead = dead, .n_dead = rc.n_dead};

    sae_loss loss;
    /* backward must write every gradient: start from NaN, which would leak */
    for (size_t i = 0; i < P; i++) m.grad_blob[i] = NAN;
    assert_int_equal(sae_model_forward(&m, x, B, &st, &loss, &err), 0);
    sae_model_backward(&m, &st);

    double *th = calloc(P, sizeof(double)), r0[6 * 5] = {0};
    for (size_t i = 0; i < P; i++) th[i] = m.param_blob[i];
    double L0 = ref_loss(&rc, th, x, NULL, r0);
    /* the float forward must agree with the double reference: relative 1e-5
     * covers float32 rounding of sums over <= 12 terms */
    if (fabs(loss.loss - L0) > 1e-5 * fabs(L0)) fail_msg("loss %g vs reference %g", loss.loss, L0);

    /* jumprelu's thresholds get a straight-through estimate, not a gradient:
     * test_jumprelu_threshold_grad checks them against the estimator's definition */
    size_t n_true = arch == SAE_ARCH_JUMPRELU ? P - M : P;
    double gmax = 0;
    for (size_t i = 0; i < n_true; i++) gmax = fmax(gmax, fabs(m.grad_blob[i]));
    size_t bad = 0;
    for (size_t i = 0; i < n_true; i++) {
        double h = 1e-5, save = th[i];
        th[i] = save + h;
        double lp = ref_loss(&rc, th, x, r0, NULL);
        th[i] = save - h;
        double lm = ref_loss(&rc, th, x, r0, NULL);
        th[i] = save;
        double fd = (lp - lm) / (2 * h);
        /* double central differences are exact to ~1e-9 here; the analytic
         * gradient is float32, accurate to ~1e-6 of the largest gradient */
        double tol = 1e-4 * gmax + 1e-4 * fabs(fd);
        if (fabs(fd - m.grad_blob[i]) > tol) {
            if (bad++ < 5)
                print_error("param %zu: analytic %.8g, finite difference %.8g\n", i,
                            (double)m.grad_blob[i], fd);
        }
    }
    free(th);
    sae_model_free(&m);
    if (bad) fail_msg("%zu of %zu gradient entries disagree (%s, aux=%d)", bad, P, sae_arch_name(arch), with_aux);
}

static void test_grad_topk(void **s) { (void)s; check_gradients(SAE_ARCH_TOPK, 0); }
static void test_grad_topk_auxk(void **s) { (void)s; check_gradients(SAE_ARCH_TOPK, 1); }
static void test_grad_relu(void **s) { (void)s; check_gradients(SAE_ARCH_RELU, 0); }
static void test_grad_batchtopk(void **s) { (void)s; check_gradients(SAE_ARCH_BATCHTOPK, 0); }
static void test_grad_batchtopk_auxk(void **s) { (void)s; check_gradients(SAE_ARCH_BATCHTOPK, 1); }
static void test_grad_matryoshka(void **s) { (void)s; check_gradients(SAE_ARCH_MATRYOSHKA, 1); }
static void test_grad_jumprelu(void **s) { (void)s; check_gradients(SAE_ARCH_JUMPRELU, 0); }

/* The JumpReLU threshold estimate against its definition (Rajamanoharan et
 * al. 2024, eqs. 11-12), on a hand-made case: one row, two latents, so every
 * term can be written out. */
static void test_jumprelu_threshold_grad(void **state) {
    (void)state;
    /* pre = (0.5, 0.28), theta = (0.45, 0.3), eps = 0.2: both are within
     * eps/2 of their threshold; latent 0 is active (0.5 > 0.45), latent 1 not */
    float pre[2] = {0.5f, 0.28f}, theta[2] = {0.45f, 0.3f}, dz[2] = {2.0f, -1.0f}, dth[2];
    float eps = 0.2f, l0_grad = 0.25f;
    sae_jumprelu_backward(dz, dth, pre, theta, eps, l0_grad, 1, 2);
    /* dtheta_j = -(1/eps) K (theta_j dz_j + l0_grad) */
    assert_float_equal(dth[0], -(0.45f * 2.0f + 0.25f) / 0.2f, 1e-5);
    assert_float_equal(dth[1], -(0.3f * -1.0f + 0.25f) / 0.2f, 1e-5);
    /* dpre = dz * H(pre - theta): the active latent passes, the other is cut */
    assert_float_equal(dz[0], 2.0f, 0);
    assert_float_equal(dz[1], 0.0f, 0);
    /* outside the window nothing reaches theta */
    float pre2[2] = {0.9f, 0.0f}, dz2[2] = {1.0f, 1.0f};
    sae_jumprelu_backward(dz2, dth, pre2, theta, eps, l0_grad, 1, 2);
    assert_float_equal(dth[0], 0.0f, 0);
    assert_float_equal(dth[1], 0.0f, 0);
    float z[2], p3[2] = {0.5f, 0.28f}, b[2] = {0, 0};
    assert_int_equal(sae_jumprelu_forward(z, p3, b, theta, 1, 2), 1);
    assert_float_equal(z[0], 0.5f, 0);
    assert_float_equal(z[1], 0.0f, 0);
}

/* BatchTopK selection in chunks and threads against a brute-force sort of
 * the whole batch, ties included (many equal values across rows). */
static void test_batchtopk_matches_sort(void **state) {
    (void)state;
    size_t B = 37, M = 53, N = 5 * 37, nthr = 2, chunk = 8;
    float *pre = malloc(B * M * 4), *bias = calloc(M, 4), *val = malloc(N * 4);
    int32_t *idx = malloc(N * 4);
    uint32_t first[37], count[37];
    sae_batch_pair *sel = malloc((nthr + 1) * N * sizeof *sel);
    sae_batch_pair *local = malloc(nthr * sae_batch_local_len(N) * sizeof *local);
    fill_normal(pre, B * M, 1.0f, 77);
    for (size_t i = 0; i < B * M; i += 7) pre[i] = 0.75f; /* ties across rows and latents */
    for (size_t j = 0; j < M; j++) bias[j] = 0.01f * (float)(j % 5);
    size_t n_sel = 0;
    float t = 0.0f;
    for (size_t r0 = 0; r0 < B; r0 += chunk) {
        size_t rows = B - r0 < chunk ? B - r0 : chunk;
        sae_batchtopk_chunk(sel, &n_sel, &t, N, local, nthr, pre + r0 * M, bias, r0, rows, M);
    }
    float worst = sae_batchtopk_finish(idx, val, first, count, 0, sel, n_sel, N, B);
    /* reference: every (value, row, latent), sorted, first N */
    size_t total = B * M;
    sae_batch_pair *all = malloc(total * sizeof *all);
    for (size_t r = 0; r < B; r++)
        for (size_t j = 0; j < M; j++) {
            float v = pre[r * M + j] + bias[j];
            all[r * M + j] = (sae_batch_pair){v > 0 ? v : 0, (uint32_t)r, (int32_t)j};
        }
    for (size_t i = 1; i < total; i++) { /* insertion sort, better first */
        sae_batch_pair x = all[i];
        size_t k = i;
        while (k > 0 && (all[k - 1].v < x.v || (all[k - 1].v == x.v && (all[k - 1].row > x.row ||
                                                (all[k - 1].row == x.row && all[k - 1].j > x.j))))) {
            all[k] = all[k - 1];
            k--;
        }
        all[k] = x;
    }
    char *want = calloc(total, 1);
    for (size_t i = 0; i < N; i++) want[all[i].row * M + (size_t)all[i].j] = 1;
    size_t got = 0;
    for (size_t r = 0; r < B; r++)
        for (uint32_t e = first[r]; e < first[r] + count[r]; e++) {
            assert_true(want[r * M + (size_t)idx[e]]);
            assert_float_equal(val[e], pre[r * M + idx[e]] + bias[idx[e]], 0);
            if (e > first[r]) assert_true(idx[e] > idx[e - 1]); /* latent order within a row */
            got++;
        }
    assert_int_equal(got, N);
    assert_float_equal(worst, all[N - 1].v, 0);
    free(pre), free(bias), free(val), free(idx), free(sel), free(local), free(all), free(want);
}

static void test_decoder_projection(void **state) {
    (void)state;
    sae_config c = {.arch = SAE_ARCH_TOPK, .d = 8, .m = 4, .k = 2};
    sae_model m;
    /* before_update of a unit-norm architecture projects the decoder gradient */
    sae_error err = {0};
    assert_int_equal(sae_model_init(&m, &c, 4, 1, &err), 0);
    sae_model_init_params(&m, 3);
    fill_normal(m.g.W_dec, 32, 1, 5);
    sae_model_before_update(&m);
    for (int j = 0; j < 4; j++) {
        double dot = 0, nn = 0;
        for (int k = 0; k < 8; k++) {
            dot += (double)m.g.W_dec[j * 8 + k] * m.p.W_dec[j * 8 + k];
            nn += (double)m.p.W_dec[j * 8 + k] * m.p.W_dec[j * 8 + k];
        }
        assert_true(fabs(dot) < 1e-6);
        assert_true(fabs(nn - 1.0) < 1e-6); /* init gives unit rows */
    }
    sae_model_free(&m);
}

int main(void) {
    sae_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_matches_reference),
        cmocka_unit_test(test_matmul_plans),
        cmocka_unit_test(test_topk_matches_sort),
        cmocka_unit_test(test_grad_topk),
        cmocka_unit_test(test_grad_topk_auxk),
        cmocka_unit_test(test_grad_relu),
        cmocka_unit_test(test_grad_batchtopk),
        cmocka_unit_test(test_grad_batchtopk_auxk),
        cmocka_unit_test(test_grad_matryoshka),
        cmocka_unit_test(test_grad_jumprelu),
        cmocka_unit_test(test_jumprelu_threshold_grad),
        cmocka_unit_test(test_batchtopk_matches_sort),
        cmocka_unit_test(test_decoder_projection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
