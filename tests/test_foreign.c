/* tests/test_foreign.c: published SAEs (SAELens, sparsify, Gemma Scope) read
 * through sae_file_load, against the float64 numpy encodings that
 * tests/make_foreign.py writes with each format's own rule (an independent
 * writer: numpy/json/struct/zipfile, nothing of ours).
 *
 *   test_foreign            generates the files into a temporary folder
 *   test_foreign DIR        uses DIR (from make_foreign.py) and also checks
 *                           DIR/imported/NAME.h5 (`sae import` output) where
 *                           present: same codes as the source SAE
 * Tolerance: relative Frobenius error < 1e-5 for codes and reconstructions.
 * The models are d=16, M=64 in float32: the encoder dot products carry about
 * 16 * 2^-24 relative rounding, far below 1e-5; bf16/f16 files are compared
 * with numpy on the same rounded values, so the dtype adds no error. The
 * active sets must be identical (make_foreign drops ill-conditioned rows).
 * Skips (77) when python3 lacks numpy or h5py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "data/h5.h"
#include "sae/foreign.h"
#include "sae/io.h"
#include "testutil.h"

static const char *g_dir;
static int g_external; /* DIR given: imported files may be there */

static double *read_f64(const char *path, const char *name, size_t n) {
    double *v = sae_malloc(n * sizeof *v);
    assert_non_null(v);
    data_h5_lock();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    assert_true(ds >= 0);
    hid_t sp = H5Dget_space(ds);
    assert_int_equal((size_t)H5Sget_simple_extent_npoints(sp), n);
    assert_true(H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Sclose(sp);
    H5Dclose(ds);
    H5Fclose(f);
    data_h5_unlock();
    return v;
}

static size_t rows_of(const char *path) {
    data_h5_lock();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "x", H5P_DEFAULT), sp = H5Dget_space(ds);
    hsize_t dims[2] = {0, 0};
    H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    H5Dclose(ds);
    H5Fclose(f);
    data_h5_unlock();
    return (size_t)dims[0];
}

static double rel_err(const double *got, const double *want, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) num += (got[i] - want[i]) * (got[i] - want[i]), den += want[i] * want[i];
    return sqrt(num / (den > 0 ? den : 1));
}

/* Codes (dense, N x M) and reconstruction (N x D) of rows x, raw units. */
static void run_sae(const char *path, const float *x, size_t N, size_t D, double **codes, double **recon,
                    size_t *M_out) {
    sae_model m;
    double scale = 0;
    sae_error err = {0};
    int rc = sae_file_load(path, &m, N, &scale, &err);
    if (rc < 0) fail_msg("%s: %s %s", path, err.subject, err.msg);
    assert_int_equal(m.cfg.d, D);
    size_t M = m.cfg.m;
    float *xs = sae_malloc(N * D * sizeof *xs);
    assert_non_null(xs);
    for (size_t i = 0; i < N * D; i++) xs[i] = (float)(x[i] * scale); /* the SAE encodes x * input_scale */
    assert_int_equal(sae_model_encode(&m, xs, N, &err), SAE_OK);
    sae_codes c;
    assert_int_equal(sae_model_codes(&m, &c, &err), SAE_OK);
    *codes = sae_calloc_n(N * M, sizeof(double));
    assert_non_null(*codes);
    for (size_t j = 0; j < M; j++)
        for (uint32_t e = c.start[j]; e < c.start[j + 1]; e++) (*codes)[c.row[e] * M + j] = c.val[e];
    sae_loss loss;
    assert_int_equal(sae_model_forward(&m, xs, N, NULL, &loss, &err), SAE_OK);
    const float *r = sae_model_residual(&m); /* xhat - x, scaled units */
    *recon = sae_malloc(N * D * sizeof(double));
    assert_non_null(*recon);
    for (size_t i = 0; i < N * D; i++) (*recon)[i] = ((double)r[i] + xs[i]) / scale;
    *M_out = M;
    sae_free(xs);
    sae_model_free(&m);
}

static void test_against_numpy(void **state) {
    (void)state;
    char refs[4200], list[4200], line[8400], name[256], path[8000];
    snprintf(refs, sizeof refs, "%s/refs.h5", g_dir);
    snprintf(list, sizeof list, "%s/cases.txt", g_dir);
    size_t N = rows_of(refs), D = 16;
    double *x64 = read_f64(refs, "x", N * D);
    float *x = sae_malloc(N * D * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < N * D; i++) x[i] = (float)x64[i];
    FILE *f = fopen(list, "r");
    assert_non_null(f);
    int n_cases = 0;
    while (fgets(line, sizeof line, f) && sscanf(line, "%255s %7999s", name, path) == 2) {
        double *codes, *recon;
        size_t M;
        run_sae(path, x, N, D, &codes, &recon, &M);
        char ds[300];
        snprintf(ds, sizeof ds, "%s/codes", name);
        double *want_c = read_f64(refs, ds, N * M);
        snprintf(ds, sizeof ds, "%s/recon", name);
        double *want_r = read_f64(refs, ds, N * D);
        size_t support_diff = 0;
        for (size_t i = 0; i < N * M; i++) support_diff += (codes[i] != 0) != (want_c[i] != 0);
        double ec = rel_err(codes, want_c, N * M), er = rel_err(recon, want_r, N * D);
        printf("  %-22s codes rel err %.2e, recon rel err %.2e, support differences %zu\n", name, ec, er,
               support_diff);
        assert_int_equal(support_diff, 0);
        assert_true(ec < 1e-5);
        assert_true(er < 1e-5);
        /* `sae import`'s HDF5, where foreign_cli.sh made one: the same codes */
        char imp[8400];
        snprintf(imp, sizeof imp, "%s/imported/%s.h5", g_dir, name);
        FILE *t = g_external ? fopen(imp, "rb") : NULL;
        if (t) {
            fclose(t);
            double *c2, *r2;
            size_t M2;
            run_sae(imp, x, N, D, &c2, &r2, &M2);
            assert_int_equal(M2, M);
            double e2 = rel_err(c2, codes, N * M), e3 = rel_err(r2, recon, N * D);
            printf("  %-22s imported: codes rel diff %.2e, recon %.2e\n", "", e2, e3);
            assert_true(e2 < 1e-6 && e3 < 1e-6);
            sae_free(c2);
            sae_free(r2);
        }
        sae_free(codes);
        sae_free(recon);
        sae_free(want_c);
        sae_free(want_r);
        n_cases++;
    }
    fclose(f);
    assert_true(n_cases >= 13);
    sae_free(x);
    sae_free(x64);
}

/* The folder, or any file of it, names the same SAE. */
static void test_detection(void **state) {
    (void)state;
    char p[4400];
    snprintf(p, sizeof p, "%s/saelens_topk", g_dir);
    assert_int_equal(sae_foreign_detect(p), SAE_FMT_SAELENS);
    snprintf(p, sizeof p, "%s/saelens_topk/cfg.json", g_dir);
    assert_int_equal(sae_foreign_detect(p), SAE_FMT_SAELENS);
    snprintf(p, sizeof p, "%s/saelens_topk/sae_weights.safetensors", g_dir);
    assert_int_equal(sae_foreign_detect(p), SAE_FMT_SAELENS);
    snprintf(p, sizeof p, "%s/sparsify/layers.6", g_dir);
    assert_int_equal(sae_foreign_detect(p), SAE_FMT_SPARSIFY);
    snprintf(p, sizeof p, "%s/gemmascope/params.npz", g_dir);
    assert_int_equal(sae_foreign_detect(p), SAE_FMT_GEMMASCOPE);
    snprintf(p, sizeof p, "%s/acts.h5", g_dir);
    assert_int_equal(sae_foreign_detect(p), SAE_FMT_NATIVE);
    sae_foreign_info info;
    sae_model m;
    double s;
    sae_error err = {0};
    snprintf(p, sizeof p, "%s/saelens_bf16/cfg.json", g_dir);
    assert_int_equal(sae_foreign_load(p, &m, 4, &s, &info, &err), SAE_OK);
    assert_string_equal(info.model, "gpt2-small");
    assert_string_equal(info.hook, "blocks.8.hook_resid_pre");
    assert_string_equal(info.weight_dtypes, "BF16+F32");
    assert_int_equal(m.cfg.arch, SAE_ARCH_JUMPRELU);
    sae_model_free(&m);
    snprintf(p, sizeof p, "%s/saelens_norm", g_dir);
    assert_int_equal(sae_foreign_load(p, &m, 4, &s, &info, &err), SAE_OK);
    assert_true(fabs(s - 0.37) < 1e-12);
    sae_model_free(&m);
}

/* Every hostile file: one clear error, nothing left allocated. */
static void test_hostile(void **state) {
    (void)state;
    char list[4200], line[8400];
    snprintf(list, sizeof list, "%s/hostile.txt", g_dir);
    FILE *f = fopen(list, "r");
    assert_non_null(f);
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *bar = strchr(line, '|');
        assert_non_null(bar);
        *bar = 0;
        sae_model m;
        double s;
        sae_error err = {0};
        int rc = sae_file_load(line, &m, 4, &s, &err);
        if (rc == SAE_OK || !strstr(err.msg, bar + 1))
            fail_msg("%s: rc %d, message '%s', wanted '%s'", line, rc, err.msg, bar + 1);
        n++;
    }
    fclose(f);
    assert_true(n >= 15);
}

int main(int argc, char **argv) {
    if (argc > 1) {
        g_dir = argv[1];
        g_external = 1;
    } else {
        /* the generator sits beside this file */
        char script[4200], cmd[8600], src[4096];
        snprintf(src, sizeof src, "%s", __FILE__);
        char *slash = strrchr(src, '/');
        if (slash) *slash = 0;
        else snprintf(src, sizeof src, ".");
        snprintf(script, sizeof script, "%s/make_foreign.py", src);
        g_dir = tu_tmpdir();
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s' >/dev/null", script, g_dir);
        int rc = system(cmd);
        if (rc != 0) {
            printf("SKIP: %s could not run (needs /usr/bin/python3 with numpy and h5py)\n", script);
            return 77;
        }
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_numpy),
        cmocka_unit_test(test_detection),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
