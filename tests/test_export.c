/* tests/test_export.c: sae/export.c. The safetensors bytes against a file
 * spelled out by hand from the format's description; the fold of
 * input_scale, for every architecture, against a brute-force double
 * implementation of SAELens's encoding rule compared with our model's own
 * encode; and the refusal of a non-empty output folder. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "common/mem.h"
#include "common/rng.h"
#include "sae/export.h"
#include "sae/tensorfile.h"
#include "testutil.h"

static void test_safetensors_bytes(void **state) {
    (void)state;
    const float a[2] = {1.0f, -2.0f}, b[1] = {0.5f};
    sae_st_tensor t[2] = {{"a", 1, {2, 0}, a}, {"b", 2, {1, 1}, b}};
    const char *path = tu_path(tu_tmpdir(), "t.safetensors");
    sae_error err = {0};
    assert_int_equal(sae_safetensors_write(path, t, 2, &err), SAE_OK);
    const char *json = "{\"__metadata__\":{\"format\":\"pt\"},"
                       "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[1,1],\"data_offsets\":[8,12]}}";
    size_t n = strlen(json), padded = (n + 7) / 8 * 8;
    unsigned char want[512] = {0};
    want[0] = (unsigned char)padded, want[1] = (unsigned char)(padded >> 8);
    memcpy(want + 8, json, n);
    memset(want + 8 + n, ' ', padded - n);
    /* IEEE 754 single, little-endian: 1.0 = 3f800000, -2.0 = c0000000, 0.5 = 3f000000 */
    const unsigned char data[12] = {0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0, 0, 0, 0, 0x3f};
    memcpy(want + 8 + padded, data, 12);
    size_t total = 8 + padded + 12;
    unsigned char got[512];
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    size_t r = fread(got, 1, sizeof got, fp);
    fclose(fp);
    assert_int_equal(r, total);
    assert_memory_equal(got, want, total);
}

/* SAELens's rule on raw x (sae/export.h), in double. */
static void saelens_forward(const char *arch, size_t k, size_t D, size_t M, const float *We, const float *be,
                            const float *Wd, const float *bd, const float *th, const float *x, double *z,
                            double *xhat) {
    double *pre = sae_malloc(M * sizeof *pre);
    for (size_t j = 0; j < M; j++) {
        double s = be[j];
        for (size_t i = 0; i < D; i++) s += ((double)x[i] - bd[i]) * We[i * M + j];
        pre[j] = s;
    }
    for (size_t j = 0; j < M; j++) {
        if (!strcmp(arch, "standard")) z[j] = pre[j] > 0 ? pre[j] : 0;
        else if (!strcmp(arch, "jumprelu")) z[j] = pre[j] > 0 && pre[j] > fmax(th[j], 0) ? pre[j] : 0;
        else { /* topk: rank among all pre-activations, then ReLU */
            size_t above = 0;
            for (size_t i = 0; i < M; i++) above += pre[i] > pre[j];
            z[j] = above < k && pre[j] > 0 ? pre[j] : 0;
        }
    }
    for (size_t i = 0; i < D; i++) {
        double s = bd[i];
        for (size_t j = 0; j < M; j++) s += z[j] * Wd[j * D + i];
        xhat[i] = s;
    }
    sae_free(pre);
}

static void check_arch(sae_arch a) {
    const size_t D = 8, M = 24, B = 40;
    const double scale = 2.75;
    sae_config c = sae_config_default(a);
    c.k = 3;
    c.target_l0 = 3;
    c.m = M;
    sae_error err = {0};
    assert_int_equal(sae_config_resolve(&c, D, &err), SAE_OK);
    sae_model m;
    assert_int_equal(sae_model_init(&m, &c, B, 0, &err), SAE_OK);
    sae_model_init_params(&m, 7);
    sae_rng rng;
    sae_rng_seed(&rng, 11, 0);
    for (size_t j = 0; j < M; j++) m.p.b_enc[j] = 0.1f * sae_rng_normal(&rng);
    for (size_t i = 0; i < D; i++) m.p.b_dec[i] = 0.5f * sae_rng_normal(&rng);
    if (a == SAE_ARCH_JUMPRELU)
        for (size_t j = 0; j < M; j++) m.p.threshold[j] = 0.3f * fabsf(sae_rng_normal(&rng));
    if (a == SAE_ARCH_BATCHTOPK || a == SAE_ARCH_MATRYOSHKA) m.p.threshold[0] = 0.25f;
    float x[B * 8], xs[B * 8];
    for (size_t i = 0; i < B * D; i++) x[i] = 0.4f * sae_rng_normal(&rng), xs[i] = (float)(x[i] * scale);
    /* ours: the model's own inference encode on x * s */
    assert_int_equal(sae_model_encode(&m, xs, B, &err), SAE_OK);
    sae_codes codes;
    assert_int_equal(sae_model_codes(&m, &codes, &err), SAE_OK);
    double *z0 = sae_calloc_n(B * M, sizeof *z0);
    for (size_t j = 0; j < M; j++)
        for (uint32_t t = codes.start[j]; t < codes.start[j + 1]; t++) z0[codes.row[t] * M + j] = codes.val[t];
    float We[8 * 24], be[24], Wd[24 * 8], bd[8], th[24];
    int has_th;
    sae_export_fold(&m, scale, We, be, Wd, bd, th, &has_th);
    assert_int_equal(has_th, a != SAE_ARCH_RELU && a != SAE_ARCH_TOPK);
    const char *arch = sae_export_saelens_arch(a);
    double z[24], xhat[8], dz = 0, nz = 0, dr = 0, nr = 0;
    size_t active = 0;
    for (size_t r = 0; r < B; r++) {
        saelens_forward(arch, c.k, D, M, We, be, Wd, bd, th, x + r * D, z, xhat);
        for (size_t j = 0; j < M; j++) {
            dz += (z[j] - z0[r * M + j]) * (z[j] - z0[r * M + j]), nz += z0[r * M + j] * z0[r * M + j];
            active += z0[r * M + j] > 0;
        }
        for (size_t i = 0; i < D; i++) { /* our decode, in double: (z V + b) / s */
            double s = m.p.b_dec[i];
            for (size_t j = 0; j < M; j++) s += z0[r * M + j] * m.p.W_dec[j * D + i];
            s /= scale;
            dr += (xhat[i] - s) * (xhat[i] - s), nr += s * s;
        }
    }
    assert_true(active > B); /* the comparison is not empty */
    /* float32 weights rounded once in the fold: relative ~1e-7 */
    assert_true(sqrt(dz / nz) < 1e-5);
    assert_true(sqrt(dr / nr) < 1e-5);
    sae_free(z0);
    sae_model_free(&m);
}

static void test_fold_every_arch(void **state) {
    (void)state;
    for (int a = 0; a < SAE_ARCH_COUNT; a++) check_arch((sae_arch)a);
}

static void test_refuses_nonempty_out(void **state) {
    (void)state;
    const char *dir = tu_path(tu_tmpdir(), "full");
    assert_int_equal(mkdir(dir, 0777), 0);
    FILE *fp = fopen(tu_path(dir, "keep.txt"), "w");
    assert_non_null(fp);
    fclose(fp);
    sae_error err = {0};
    assert_int_equal(sae_export_saelens("unused.h5", dir, NULL, 0, &err), SAE_ERR_ARG);
    assert_non_null(strstr(err.msg, "not empty"));
    struct stat st;
    assert_int_equal(stat(tu_path(dir, "keep.txt"), &st), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safetensors_bytes),
        cmocka_unit_test(test_fold_every_arch),
        cmocka_unit_test(test_refuses_nonempty_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
