/* tests/test_features.c: the feature dictionary against brute force and
 * against a planted truth.
 *  - top examples, counts, means and maxima equal a brute-force pass that
 *    keeps every activation and sorts;
 *  - on synthetic data whose tokens are the words of planted features, the
 *    label of the learned feature matching each planted feature names it. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/blas.h"
#include "common/mem.h"
#include "data/synth.h"
#include "features/feat.h"
#include "sae/io.h"
#include "tests/testutil.h"
#include "train/train.h"

static const char *dir;
static const char *data_path, *sae_path;

static int setup(void **state) {
    (void)state;
    dir = tu_tmpdir();
    data_path = strdup(tu_path(dir, "feat_data.h5"));
    sae_path = strdup(tu_path(dir, "feat_sae.h5"));
    data_synth_params sp = data_synth_default_params();
    sp.n = 200000, sp.d = 32, sp.features = 64, sp.active = 3, sp.seed = 9;
    sae_error err = {0};
    if (data_synth_write(data_path, &sp, &err) < 0) return -1;
    data_actfile *f;
    if (data_actfile_open(&f, data_path, &err) < 0) return -1;
    train_params p = train_default_params(SAE_ARCH_TOPK);
    p.sae.m = 128, p.sae.k = 6, p.batch = 1024, p.tokens = 400000, p.threads = 2;
    int rc = train_run(&p, f, sae_path, 0, NULL, &err);
    data_actfile_close(f);
    return rc;
}

static int teardown(void **state) {
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) != 0;
}

typedef struct {
    float v;
    int64_t r;
} vr;
static int cmp_vr(const void *a, const void *b) {
    const vr *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return x->r < y->r ? -1 : x->r > y->r;
}

static void test_matches_brute_force(void **state) {
    (void)state;
    sae_error err = {0};
    sae_model m;
    double scale;
    data_actfile *f;
    assert_int_equal(sae_file_load(sae_path, &m, 777, &scale, &err), 0);
    assert_int_equal(data_actfile_open(&f, data_path, &err), 0);
    feat_opts o = feat_default_opts();
    o.top_n = 20;
    o.batch = 777; /* blocks that do not divide N */
    feat_dict *fd;
    assert_int_equal(feat_build(&fd, &m, scale, f, &o, NULL, NULL, &err), 0);
    /* brute force: every activation of every feature, then sort */
    size_t M = m.cfg.m, D = f->d, n = f->n;
    vr **all = calloc(M, sizeof *all);
    size_t *cnt = calloc(M, sizeof *cnt), *cap = calloc(M, sizeof *cap);
    double *sum = calloc(M, sizeof *sum);
    float *x = sae_alloc(777 * D * 4);
    for (size_t r0 = 0; r0 < n; r0 += 777) {
        size_t b = n - r0 < 777 ? n - r0 : 777;
        data_actfile_read_rows(f, r0, b, x, &err);
        for (size_t i = 0; i < b * D; i++) x[i] *= (float)scale;
        sae_loss loss;
        sae_model_forward(&m, x, b, 0, NULL, 0, &loss);
        for (size_t i = 0; i < b; i++)
            for (size_t s = 0; s < m.cfg.k; s++) {
                int32_t j = m.idx[i * m.S + s];
                float v = m.val[i * m.S + s];
                if (j < 0 || !(v > 0)) continue;
                if (cnt[j] == cap[j]) cap[j] = cap[j] ? 2 * cap[j] : 64, all[j] = realloc(all[j], cap[j] * sizeof(vr));
                all[j][cnt[j]++] = (vr){v, (int64_t)(r0 + i)};
                sum[j] += v;
            }
    }
    size_t checked = 0;
    for (size_t j = 0; j < M; j++) {
        assert_int_equal(fd->count[j], cnt[j]);
        if (!cnt[j]) continue;
        qsort(all[j], cnt[j], sizeof(vr), cmp_vr);
        assert_float_equal(fd->max[j], all[j][0].v, 0);
        assert_true(fabs(fd->mean[j] - sum[j] / (double)cnt[j]) <= 1e-6 * fabs(fd->mean[j]));
        for (size_t i = 0; i < o.top_n; i++) {
            int64_t want_row = i < cnt[j] ? all[j][i].r : -1;
            if (fd->top_row[j * o.top_n + i] != want_row)
                fail_msg("feature %zu example %zu: row %lld, brute force %lld", j, i,
                         (long long)fd->top_row[j * o.top_n + i], (long long)want_row);
            if (i < cnt[j]) assert_float_equal(fd->top_val[j * o.top_n + i], all[j][i].v, 0);
        }
        uint64_t hsum = 0;
        for (int b = 0; b < FEAT_HIST_BINS; b++) hsum += fd->hist[j * FEAT_HIST_BINS + b];
        assert_int_equal(hsum, cnt[j]);
        checked++;
        free(all[j]);
    }
    assert_true(checked > M / 2);
    /* the file round-trips */
    const char *out = tu_path(dir, "feat.h5");
    assert_int_equal(feat_write(fd, out, &err), 0);
    feat_dict *back;
    assert_int_equal(feat_read(&back, out, &err), 0);
    assert_int_equal(back->M, M);
    assert_memory_equal(back->top_row, fd->top_row, M * o.top_n * sizeof(int64_t));
    assert_memory_equal(back->count, fd->count, M * sizeof(uint64_t));
    assert_string_equal(back->label[7], fd->label[7]);
    feat_free(back);
    free(all), free(cnt), free(cap), free(sum), sae_free(x);
    feat_free(fd);
    data_actfile_close(f);
    sae_model_free(&m);
}

static void test_labels_name_planted_words(void **state) {
    (void)state;
    sae_error err = {0};
    sae_model m;
    double scale;
    data_actfile *f;
    assert_int_equal(sae_file_load(sae_path, &m, 4096, &scale, &err), 0);
    assert_int_equal(data_actfile_open(&f, data_path, &err), 0);
    feat_opts o = feat_default_opts();
    feat_dict *fd;
    assert_int_equal(feat_build(&fd, &m, scale, f, &o, NULL, NULL, &err), 0);
    size_t F = f->n_truth, D = f->d, M = m.cfg.m;
    float *truth = malloc(F * D * 4);
    assert_int_equal(data_actfile_read_truth(f, truth, &err), 0);
    size_t recovered = 0, named = 0, first = 0;
    for (size_t i = 0; i < F; i++) {
        double best = -1;
        size_t bj = 0;
        for (size_t j = 0; j < M; j++) {
            double dot = 0, nn = 0;
            for (size_t c = 0; c < D; c++) {
                dot += (double)truth[i * D + c] * m.p.W_dec[j * D + c];
                nn += (double)m.p.W_dec[j * D + c] * m.p.W_dec[j * D + c];
            }
            if (dot / sqrt(nn) > best) best = dot / sqrt(nn), bj = j;
        }
        if (best < 0.9) continue;
        recovered++;
        char word[64];
        data_synth_word(word, sizeof word, i);
        /* the label names the planted word: one of its " · "-separated tokens */
        char label[256], *save = NULL;
        snprintf(label, sizeof label, "%s", fd->label[bj]);
        int found = 0;
        for (char *t = strtok_r(label, " ·", &save); t; t = strtok_r(NULL, " ·", &save))
            found |= strcmp(t, word) == 0;
        first += strncmp(fd->label[bj], word, strlen(word)) == 0;
        if (found) named++;
        else print_message("planted %zu '%s' -> feature %zu labelled '%s'\n", i, word, bj, fd->label[bj]);
    }
    print_message("%zu of %zu planted features recovered; %zu labels name their word, %zu first\n",
                  recovered, F, named, first);
    assert_true(recovered >= F / 2); /* recovery itself is test_train's business */
    assert_true(named >= recovered * 9 / 10);
    free(truth);
    feat_free(fd);
    data_actfile_close(f);
    sae_model_free(&m);
}

static void test_label_text(void **state) {
    (void)state;
    const char *toks[] = {" ん", "ん", "\xe3\x80\x80かん", "  ", "りん", "x"};
    char buf[64];
    feat_make_label(buf, sizeof buf, toks, 6);
    assert_string_equal(buf, "ん · かん · りん");
}

int main(void) {
    sae_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_text),
        cmocka_unit_test(test_matches_brute_force),
        cmocka_unit_test(test_labels_name_planted_words),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
