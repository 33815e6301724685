/* tests/test_eval.c: the SAEBench reconstruction metrics, the density
 * metrics, the linear sum assignment and MCC (train/metrics.c, train/assign.c).
 *  - each reconstruction metric against a direct two-pass f64 computation on
 *    random rows fed in uneven batches (and the batching changes nothing);
 *  - density thresholds at their exact boundaries;
 *  - the assignment against brute force over every injective map (n <= 6,
 *    m <= 8, with and without ties), and against scipy's answers stored in
 *    tests/ref/lsa_fixture.txt (written by tests/ref/gen_lsa.py);
 *  - MCC: a permuted, sign-flipped, noisy copy of the truth scores ~1, random
 *    directions score low, small cases match a brute-force f64 matching. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/gemm.h"
#include "common/rng.h"
#include "train/train.h"

/* ------------------------------------------------------------------------- */
/* reconstruction metrics                                                    */

/* direct f64 reference: mean first, then each metric from its definition */
static train_recon_metrics recon_direct(const float *x, const float *e, size_t N, size_t D) {
    double *mean = calloc(D, sizeof *mean);
    for (size_t i = 0; i < N; i++)
        for (size_t c = 0; c < D; c++) mean[c] += x[i * D + c] / (double)N;
    double sse = 0, sst = 0, cos = 0, ratio = 0, hh = 0, xh = 0;
    for (size_t i = 0; i < N; i++) {
        double nx = 0, nh = 0, dot = 0;
        for (size_t c = 0; c < D; c++) {
            double xv = x[i * D + c], hv = xv + (double)e[i * D + c];
            sse += (hv - xv) * (hv - xv);
            sst += (xv - mean[c]) * (xv - mean[c]);
            nx += xv * xv;
            nh += hv * hv;
            dot += xv * hv;
        }
        hh += nh;
        xh += dot;
        cos += nx > 0 && nh > 0 ? dot / sqrt(nx * nh) : 0.0;
        ratio += sqrt(nh) / (sqrt(nx) < 1e-4 ? 1.0 : sqrt(nx));
    }
    free(mean);
    train_recon_metrics r = {N, 1.0 - sse / sst, cos / (double)N, ratio / (double)N, hh / xh};
    return r;
}

/* N rows of D: mean 3 per column (so the variance identity has something to
 * cancel), unit spread; err ~ 0.3 N(0,1); row 5 is zero, row 9 has norm ~1e-5
 * (below SAEBench's 1e-4 guard of l2_ratio), row 11 reconstructs to zero. */
static void recon_data(float *x, float *e, size_t N, size_t D) {
    sae_rng r;
    sae_rng_seed(&r, 7, 0);
    for (size_t i = 0; i < N * D; i++) {
        x[i] = 3.0f + sae_rng_normal(&r);
        e[i] = 0.3f * sae_rng_normal(&r);
    }
    for (size_t c = 0; c < D; c++) {
        x[5 * D + c] = 0.0f;
        x[9 * D + c] = 1e-5f / sqrtf((float)D);
        e[11 * D + c] = -x[11 * D + c];
    }
}

static train_recon_metrics recon_batched(const float *x, const float *e, size_t D,
                                         const size_t *sizes, size_t n_sizes, double *colsum) {
    train_recon_acc a;
    train_recon_acc_init(&a, D, colsum);
    size_t r0 = 0;
    for (size_t b = 0; b < n_sizes; b++) {
        train_recon_acc_add(&a, x + r0 * D, e + r0 * D, sizes[b], D);
        r0 += sizes[b];
    }
    train_recon_metrics m;
    train_recon_acc_result(&a, &m);
    return m;
}

static void assert_close(double got, double want, double tol, const char *what) {
    if (!(fabs(got - want) <= tol * fmax(1.0, fabs(want))))
        fail_msg("%s: got %.17g, want %.17g (diff %.3g, tol %.3g)", what, got, want,
                 fabs(got - want), tol);
}

static void test_recon_vs_direct(void **state) {
    (void)state;
    const size_t N = 1000, D = 37;
    float *x = malloc(N * D * sizeof(float)), *e = malloc(N * D * sizeof(float));
    double colsum[37];
    recon_data(x, e, N, D);
    const size_t uneven[] = {1, 0, 17, 300, 5, 677}, whole[] = {N};
    train_recon_metrics got = recon_batched(x, e, D, uneven, 6, colsum);
    train_recon_metrics want = recon_direct(x, e, N, D);
    /* Both are f64 over the same f32 inputs. They differ in summation order
     * and in the one-pass identity sum||x - mean||^2 = sum||x||^2 - ||sum x||^2/N,
     * which with mean/spread = 3 loses about one digit: ~1e-14 relative.
     * 1e-12 leaves room and still catches any real formula slip. */
    assert_int_equal(got.n, N);
    assert_close(got.explained_variance, want.explained_variance, 1e-12, "explained_variance");
    assert_close(got.cossim, want.cossim, 1e-12, "cossim");
    assert_close(got.l2_ratio, want.l2_ratio, 1e-12, "l2_ratio");
    assert_close(got.relative_reconstruction_bias, want.relative_reconstruction_bias, 1e-12,
                 "relative_reconstruction_bias");
    /* the sums see the rows in the same order however they are batched: equal bits */
    train_recon_metrics one = recon_batched(x, e, D, whole, 1, colsum);
    assert_memory_equal(&one, &got, sizeof got);
    free(x);
    free(e);
}

static void test_recon_corners(void **state) {
    (void)state;
    double colsum[3];
    train_recon_acc a;
    train_recon_metrics m;
    train_recon_acc_init(&a, 3, colsum);
    train_recon_acc_result(&a, &m); /* no rows: every metric undefined */
    assert_true(isnan(m.explained_variance) && isnan(m.cossim) && isnan(m.l2_ratio) &&
                isnan(m.relative_reconstruction_bias));
    /* perfect reconstruction: exactly 1 everywhere (x = 2^k keeps it exact) */
    const float x[6] = {1, 2, 4, -2, 0.5f, 8}, zero[6] = {0};
    train_recon_acc_add(&a, x, zero, 2, 3);
    train_recon_acc_result(&a, &m);
    assert_true(m.explained_variance == 1.0 && m.l2_ratio == 1.0 &&
                m.relative_reconstruction_bias == 1.0);
    assert_close(m.cossim, 1.0, 1e-15, "cossim"); /* one sqrt rounding per row */
    /* reconstructing the mean explains nothing: EV = 0 */
    const float xm[4] = {1, 3, 3, 5}, em[4] = {1, 1, -1, -1}; /* xhat = (2, 4) both rows */
    train_recon_acc_init(&a, 2, colsum);
    train_recon_acc_add(&a, xm, em, 2, 2);
    train_recon_acc_result(&a, &m);
    assert_close(m.explained_variance, 0.0, 1e-15, "explained_variance of the mean");
}

static void test_freq_boundaries(void **state) {
    (void)state;
    /* 1000 rows: density 0.01 is 10 rows and 0.1 is 100; both are strict '>' */
    const uint32_t c[8] = {0, 1, 10, 11, 100, 101, 1000, 0};
    double alive, f1, f10;
    train_freq_metrics(c, 8, 1000, &alive, &f1, &f10);
    assert_true(alive == 6.0 / 8 && f1 == 4.0 / 8 && f10 == 2.0 / 8);
    train_freq_metrics(c, 8, 0, &alive, &f1, &f10);
    assert_true(alive == 0 && f1 == 0 && f10 == 0);
    /* large counts: 100 * count must not wrap */
    const uint32_t big[2] = {UINT32_MAX, 50000000u};
    train_freq_metrics(big, 2, 5000000000ull, &alive, &f1, &f10);
    assert_true(alive == 1.0 && f1 == 0.5 && f10 == 0.5); /* 5e7 / 5e9 is exactly 1% */
}

/* ------------------------------------------------------------------------- */
/* assignment                                                                */

typedef struct {
    const double *a;
    size_t n, m;
    int sign; /* +1 minimise, -1 maximise */
    int used[8];
    double best;
} brute;

static void brute_rec(brute *b, size_t i, double sum) {
    if (i == b->n) {
        if (b->sign * sum < b->sign * b->best) b->best = sum;
        return;
    }
    for (size_t j = 0; j < b->m; j++)
        if (!b->used[j]) {
            b->used[j] = 1;
            brute_rec(b, i + 1, sum + b->a[i * b->m + j]);
            b->used[j] = 0;
        }
}

static double brute_best(const double *a, size_t n, size_t m, int maximize) {
    brute b = {a, n, m, maximize ? -1 : 1, {0}, maximize ? -INFINITY : INFINITY};
    brute_rec(&b, 0, 0.0);
    return b.best;
}

/* the solver's total, after checking col4row is an injective map into [0, m) */
static double lsa_total(const float *a, size_t n, size_t m, int maximize) {
    int32_t col[64];
    int seen[64] = {0};
    sae_error err = {0};
    assert_int_equal(train_lsa(col, a, n, m, maximize, &err), SAE_OK);
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(col[i] >= 0 && (size_t)col[i] < m);
        assert_false(seen[col[i]]);
        seen[col[i]] = 1;
        sum += a[i * m + (size_t)col[i]];
    }
    return sum;
}

static void test_lsa_brute_force(void **state) {
    (void)state;
    sae_rng r;
    sae_rng_seed(&r, 11, 0);
    float a[48];
    double ad[48];
    for (size_t n = 1; n <= 6; n++)
        for (size_t m = n; m <= 8; m++)
            for (int trial = 0; trial < 6; trial++) {
                int ties = trial % 2; /* odd trials: 3 levels, so optima tie */
                for (size_t e = 0; e < n * m; e++) {
                    a[e] = ties ? (float)sae_rng_below(&r, 3) : sae_rng_normal(&r);
                    ad[e] = a[e];
                }
                for (int maximize = 0; maximize <= 1; maximize++) {
                    /* f64 sums of <= 6 f32 values in two orders: they agree to
                     * ~1e-15; ties give equal totals exactly (small integers) */
                    double want = brute_best(ad, n, m, maximize);
                    double got = lsa_total(a, n, m, maximize);
                    if (fabs(got - want) > 1e-12)
                        fail_msg("%zux%zu trial %d maximize %d: lsa %.17g, brute %.17g", n, m,
                                 trial, maximize, got, want);
                }
            }
}

static void test_lsa_small_shapes(void **state) {
    (void)state;
    const float one = -2.5f;
    assert_true(lsa_total(&one, 1, 1, 0) == -2.5 && lsa_total(&one, 1, 1, 1) == -2.5);
    const float row[5] = {3, 1, 4, 1, 5}; /* n = 1 < m: the extreme entry */
    assert_true(lsa_total(row, 1, 5, 0) == 1.0 && lsa_total(row, 1, 5, 1) == 5.0);
    /* greedy row-by-row picks column 0 for row 0 and loses: optimum is 1 + 1 */
    const float trap[4] = {0, 1, 1, 100};
    assert_true(lsa_total(trap, 2, 2, 0) == 2.0);
    const float all_equal[6] = {7, 7, 7, 7, 7, 7};
    assert_true(lsa_total(all_equal, 2, 3, 1) == 14.0);
}

static void test_lsa_errors(void **state) {
    (void)state;
    int32_t col[3];
    float a[6] = {1, 2, 3, 4, 5, 6};
    sae_error err = {0};
    assert_int_equal(train_lsa(col, a, 3, 2, 0, &err), SAE_ERR_ARG); /* n > m */
    a[4] = NAN;
    sae_error err2 = {0};
    assert_int_equal(train_lsa(col, a, 2, 3, 0, &err2), SAE_ERR_NONFINITE);
    assert_non_null(strstr(err2.msg, "(1, 1)"));
}

/* reads one case of tests/ref/lsa_fixture.txt (format in tests/ref/gen_lsa.py) */
static int read_case(FILE *f, float **a, size_t *n, size_t *m, int *unique, double tot[2],
                     int32_t **cols) {
    if (fscanf(f, "%zu %zu %d", n, m, unique) != 3) return -1;
    *a = malloc(*n * *m * sizeof(float));
    *cols = malloc(2 * *n * sizeof(int32_t));
    for (size_t e = 0; e < *n * *m; e++)
        if (fscanf(f, "%f", &(*a)[e]) != 1) return -1;
    if (fscanf(f, "%lf %lf", &tot[0], &tot[1]) != 2) return -1;
    for (size_t e = 0; e < 2 * *n; e++)
        if (fscanf(f, "%d", &(*cols)[e]) != 1) return -1;
    return 0;
}

static void test_lsa_scipy_fixture(void **state) {
    (void)state;
    const char *path = SAE_REF_DIR "/lsa_fixture.txt";
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("%s: cannot open", path);
    char line[256];
    int c;
    while ((c = fgetc(f)) == '#')
        if (!fgets(line, sizeof line, f)) break;
    ungetc(c, f);
    size_t n_cases = 0;
    assert_int_equal(fscanf(f, "%zu", &n_cases), 1);
    for (size_t k = 0; k < n_cases; k++) {
        float *a = NULL;
        int32_t *cols = NULL, col[32];
        size_t n, m;
        int unique;
        double tot[2];
        assert_int_equal(read_case(f, &a, &n, &m, &unique, tot, &cols), 0);
        for (int maximize = 0; maximize <= 1; maximize++) {
            sae_error err = {0};
            assert_int_equal(train_lsa(col, a, n, m, maximize, &err), SAE_OK);
            double sum = 0;
            for (size_t i = 0; i < n; i++) sum += a[i * m + (size_t)col[i]];
            /* scipy sums the same f32 values in f64 in row order, as we do: a
             * different optimal matching could only differ by rounding, ~1e-14 */
            assert_close(sum, tot[maximize], 1e-12, "fixture total");
            if (unique) /* continuous values: the optimum is one matching */
                assert_memory_equal(col, cols + (size_t)maximize * n, n * sizeof(int32_t));
        }
        free(a);
        free(cols);
    }
    fclose(f);
}

/* ------------------------------------------------------------------------- */
/* MCC                                                                       */

static void fill_normal(float *x, size_t n, sae_rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = sae_rng_normal(r);
}

static double cos64(const float *a, const float *b, size_t D) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t c = 0; c < D; c++) {
        ab += (double)a[c] * b[c];
        aa += (double)a[c] * a[c];
        bb += (double)b[c] * b[c];
    }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0.0;
}

static void test_mcc_planted(void **state) {
    (void)state;
    const size_t n = 64, M = 100, D = 32;
    float *truth = malloc(n * D * sizeof(float)), *W = malloc(M * D * sizeof(float));
    uint32_t perm[100];
    sae_rng r;
    sae_rng_seed(&r, 3, 0);
    fill_normal(truth, n * D, &r);
    fill_normal(W, M * D, &r); /* the 36 unplanted rows stay random */
    for (uint32_t j = 0; j < M; j++) perm[j] = j;
    sae_rng_shuffle_u32(&r, perm, M);
    double planted = 0;
    for (size_t i = 0; i < n; i++) {
        float *w = W + (size_t)perm[i] * D;
        float sign = i % 3 ? 1.0f : -1.0f, scale = 0.5f + (float)i; /* MCC ignores norms */
        for (size_t c = 0; c < D; c++)
            w[c] = scale * (sign * truth[i * D + c] + 0.01f * sae_rng_normal(&r));
        planted += fabs(cos64(truth + i * D, w, D));
    }
    planted /= (double)n;
    double mcc;
    sae_error err = {0};
    assert_int_equal(train_mcc(truth, n, W, M, D, &mcc, &err), SAE_OK);
    /* noise 1% of each coordinate: every planted |cos| is ~1 - 5e-5, and any
     * other pair is far below, so the optimum is the planted matching; the
     * value then differs from the f64 mean only by f32 GEMM rounding (~1e-6
     * for unit vectors in D = 32) */
    assert_true(mcc > 0.999);
    assert_close(mcc, planted, 1e-5, "mcc vs planted pairs");
    free(truth);
    free(W);
}

static void test_mcc_random(void **state) {
    (void)state;
    const size_t n = 32, M = 64, D = 256;
    float *truth = malloc(n * D * sizeof(float)), *W = malloc(M * D * sizeof(float));
    sae_rng r;
    sae_rng_seed(&r, 5, 0);
    fill_normal(truth, n * D, &r);
    fill_normal(W, M * D, &r);
    double mcc, row_max = 0;
    sae_error err = {0};
    assert_int_equal(train_mcc(truth, n, W, M, D, &mcc, &err), SAE_OK);
    for (size_t i = 0; i < n; i++) {
        double best = 0;
        for (size_t j = 0; j < M; j++) best = fmax(best, fabs(cos64(truth + i * D, W + j * D, D)));
        row_max += best / (double)n;
    }
    /* random |cos| in D = 256 has sd 1/16; the best of 64 is ~0.16, and a
     * one-to-one matching can only do worse than each row's best */
    assert_true(mcc <= row_max + 1e-6); /* f32 GEMM rounding */
    assert_true(mcc < 0.3);
    free(truth);
    free(W);
}

/* train_mcc on small shapes against brute force on the f64 |cos| matrix,
 * both orientations (n_truth < M and n_truth > M: mean over min(n, M)) */
static void test_mcc_brute_force(void **state) {
    (void)state;
    const size_t D = 4, shapes[3][2] = {{5, 7}, {7, 5}, {6, 6}};
    sae_rng r;
    sae_rng_seed(&r, 9, 0);
    for (int s = 0; s < 3; s++) {
        size_t n = shapes[s][0], M = shapes[s][1];
        float truth[28], W[28];
        double c[49];
        fill_normal(truth, n * D, &r);
        fill_normal(W, M * D, &r);
        if (s == 2) memset(W, 0, D * sizeof(float)); /* a zero decoder row: cos 0 */
        int t_rows = n <= M;
        size_t nr = t_rows ? n : M, nc = t_rows ? M : n;
        for (size_t i = 0; i < nr; i++)
            for (size_t j = 0; j < nc; j++)
                c[i * nc + j] = fabs(t_rows ? cos64(truth + i * D, W + j * D, D)
                                            : cos64(W + i * D, truth + j * D, D));
        double want = brute_best(c, nr, nc, 1) / (double)nr, mcc;
        sae_error err = {0};
        assert_int_equal(train_mcc(truth, n, W, M, D, &mcc, &err), SAE_OK);
        /* f32 GEMM and norms on D = 4: each cosine within ~1e-7 of f64; a
         * near-tie could swap the matching only within that margin */
        assert_close(mcc, want, 1e-6, "mcc vs brute force");
    }
    double mcc = 1;
    sae_error err = {0};
    assert_int_equal(train_mcc(NULL, 0, NULL, 0, 4, &mcc, &err), SAE_OK);
    assert_true(mcc == 0.0);
}

int main(void) {
    sae_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recon_vs_direct),   cmocka_unit_test(test_recon_corners),
        cmocka_unit_test(test_freq_boundaries),   cmocka_unit_test(test_lsa_brute_force),
        cmocka_unit_test(test_lsa_small_shapes),  cmocka_unit_test(test_lsa_errors),
        cmocka_unit_test(test_lsa_scipy_fixture), cmocka_unit_test(test_mcc_planted),
        cmocka_unit_test(test_mcc_random),        cmocka_unit_test(test_mcc_brute_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
