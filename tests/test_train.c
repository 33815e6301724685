/* tests/test_train.c: the optimiser, schedules, checkpoints and training.
 *  - Adam against its formula written out by hand;
 *  - lr/l1 schedules at their corners;
 *  - a run stopped mid-way and resumed ends bitwise equal to an uninterrupted
 *    one (both architectures), and a resume with other settings is refused;
 *  - a TopK SAE recovers a planted dictionary (mmcs >= 0.9). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/fileutil.h"
#include "data/synth.h"
#include "common/gemm.h"
#include "sae/io.h"
#include "tests/testutil.h"
#include "train/train.h"

static const char *dir;

static void test_adam_formula(void **state) {
    (void)state;
    float p[3] = {1, -2, 0.5f}, m[3] = {0}, v[3] = {0};
    double pd[3] = {1, -2, 0.5}, md[3] = {0}, vd[3] = {0};
    const float g[3][3] = {{0.1f, -0.2f, 0.0f}, {0.3f, 0.1f, -1.0f}, {-0.2f, 0.0f, 2.0f}};
    for (int t = 1; t <= 3; t++) {
        train_adam_step(p, g[t - 1], m, v, 3, 0.01f, 0.9f, 0.999f, 1e-8f, (uint64_t)t);
        for (int i = 0; i < 3; i++) {
            md[i] = 0.9 * md[i] + 0.1 * g[t - 1][i];
            vd[i] = 0.999 * vd[i] + 0.001 * g[t - 1][i] * g[t - 1][i];
            double mh = md[i] / (1 - pow(0.9, t)), vh = vd[i] / (1 - pow(0.999, t));
            pd[i] -= 0.01 * mh / (sqrt(vh) + 1e-8);
            /* float32 state vs double: steps of 0.01 agree to ~1e-6 */
            assert_true(fabs(p[i] - pd[i]) < 1e-5);
        }
    }
}

static void test_schedules(void **state) {
    (void)state;
    train_params p = train_default_params(SAE_ARCH_RELU);
    p.lr = 1.0f;
    p.lr_warmup = 0.1f;
    p.lr_decay = 0.2f;
    p.sparsity_coef = 5.0f;
    p.sparsity_warmup = 0.5f;
    assert_true(fabsf(train_lr_at(&p, 0, 100) - 0.1f) < 1e-6f);  /* first warm-up step */
    assert_true(fabsf(train_lr_at(&p, 50, 100) - 1.0f) < 1e-6f); /* plateau */
    assert_true(train_lr_at(&p, 99, 100) < 0.06f);               /* end of decay */
    assert_true(train_lr_at(&p, 90, 100) < train_lr_at(&p, 85, 100));
    assert_true(fabsf(train_sparsity_at(&p, 24, 100) - 2.5f) < 1e-5f);
    assert_true(fabsf(train_sparsity_at(&p, 60, 100) - 5.0f) < 1e-6f);
}

/* observer that asks the loop to stop after `stop_at` steps */
typedef struct {
    uint64_t stop_at;
    volatile sig_atomic_t flag;
} stopper;

static void stop_on_metrics(const train_metrics *m, void *user) {
    stopper *s = user;
    if (m->step >= s->stop_at) s->flag = 1;
}

static void load_params(const char *path, float **blob, size_t *n) {
    sae_model m;
    double scale;
    sae_error err = {0};
    if (sae_file_load(path, &m, 16, &scale, &err) < 0) fail_msg("%s: %s", path, err.msg);
    *n = sae_blob_count(&m.cfg); /* learned tensors and state (a threshold) */
    *blob = malloc(*n * sizeof(float));
    memcpy(*blob, m.param_blob, *n * sizeof(float));
    sae_model_free(&m);
}

static void check_resume(sae_arch arch) {
    const char *data = tu_path(dir, "resume_data.h5");
    data_synth_params sp = data_synth_default_params();
    sp.n = 20000, sp.d = 16, sp.features = 32, sp.active = 3, sp.seed = 3;
    sae_error err = {0};
    if (!sae_file_exists(data)) assert_int_equal(data_synth_write(data, &sp, &err), 0);
    data_actfile *f;
    assert_int_equal(data_actfile_open(&f, data, &err), 0);
    train_params p = train_default_params(arch);
    p.sae.m = 64;
    p.sae.k = 4;         /* the topk family */
    p.sae.target_l0 = 4; /* jumprelu */
    p.batch = 256;
    p.tokens = 256 * 60;
    p.buffer_rows = 4096; /* several windows per epoch: the position crosses windows */
    p.dead_tokens = 2000; /* so AuxK is active during the run */
    p.checkpoint_every = 256 * 7;
    p.log_every = 1;
    p.threads = 2;
    const char *a = tu_path(dir, "uninterrupted.h5"), *b = tu_path(dir, "resumed.h5");
    assert_int_equal(train_run(&p, f, a, 0, NULL, &err), 0);

    stopper st = {.stop_at = 23};
    train_observer obs = {.on_metrics = stop_on_metrics, .user = &st, .stop = &st.flag};
    assert_int_equal(train_run(&p, f, b, 0, &obs, &err), 1); /* stopped, checkpointed */
    st.stop_at = 41;
    st.flag = 0;
    assert_int_equal(train_run(&p, f, b, 1, &obs, &err), 1); /* resumed, stopped again */
    assert_int_equal(train_run(&p, f, b, 1, NULL, &err), 0); /* resumed to the end */

    float *pa, *pb;
    size_t na, nb;
    load_params(a, &pa, &na);
    load_params(b, &pb, &nb);
    assert_int_equal(na, nb);
    if (memcmp(pa, pb, na * sizeof(float)) != 0) {
        size_t diff = 0;
        for (size_t i = 0; i < na; i++) diff += pa[i] != pb[i];
        fail_msg("%s: resumed run differs from uninterrupted in %zu of %zu parameters",
                 sae_arch_name(arch), diff, na);
    }
    free(pa), free(pb);

    /* a resume with other settings is refused and names the setting */
    p.batch = 128;
    memset(&err, 0, sizeof err);
    assert_int_equal(train_run(&p, f, b, 1, NULL, &err), SAE_ERR_MISMATCH);
    assert_non_null(strstr(err.msg, "batch"));
    data_actfile_close(f);
    remove(a);
    remove(b);
}

static void test_resume_bitwise_topk(void **s) { (void)s; check_resume(SAE_ARCH_TOPK); }
static void test_resume_bitwise_relu(void **s) { (void)s; check_resume(SAE_ARCH_RELU); }
static void test_resume_bitwise_batchtopk(void **s) { (void)s; check_resume(SAE_ARCH_BATCHTOPK); }
static void test_resume_bitwise_jumprelu(void **s) { (void)s; check_resume(SAE_ARCH_JUMPRELU); }
static void test_resume_bitwise_matryoshka(void **s) { (void)s; check_resume(SAE_ARCH_MATRYOSHKA); }

static void test_recovers_planted_dictionary(void **state) {
    (void)state;
    const char *data = tu_path(dir, "recover.h5"), *out = tu_path(dir, "recover_sae.h5");
    data_synth_params sp = data_synth_default_params();
    sp.n = 200000, sp.d = 32, sp.features = 64, sp.active = 3, sp.seed = 9;
    sae_error err = {0};
    assert_int_equal(data_synth_write(data, &sp, &err), 0);
    data_actfile *f;
    assert_int_equal(data_actfile_open(&f, data, &err), 0);
    train_params p = train_default_params(SAE_ARCH_TOPK);
    p.sae.m = 128;
    p.sae.k = 6;
    p.batch = 1024;
    p.tokens = 400000;
    p.threads = 2;
    assert_int_equal(train_run(&p, f, out, 0, NULL, &err), 0);
    sae_model m;
    double scale;
    assert_int_equal(sae_file_load(out, &m, 1024, &scale, &err), 0);
    train_eval_result r;
    assert_int_equal(train_eval(&m, scale, f, 0, &r, &err), 0);
    print_message("recovery: fvu %.4f mmcs %.4f recovered %.3f l0 %.2f\n", r.fvu, r.mmcs,
                  r.recovered_09, r.l0);
    assert_true(r.has_truth);
    assert_true(r.mmcs >= 0.9);
    assert_true(r.fvu < 0.2);
    assert_true(r.l0 <= 6.0 + 1e-9);
    sae_model_free(&m);
    data_actfile_close(f);
}

int main(void) {
    dir = tu_tmpdir();
    sae_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adam_formula),
        cmocka_unit_test(test_schedules),
        cmocka_unit_test(test_resume_bitwise_topk),
        cmocka_unit_test(test_resume_bitwise_relu),
        cmocka_unit_test(test_resume_bitwise_batchtopk),
        cmocka_unit_test(test_resume_bitwise_jumprelu),
        cmocka_unit_test(test_resume_bitwise_matryoshka),
        cmocka_unit_test(test_recovers_planted_dictionary),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) return 1;
    return rc;
}
