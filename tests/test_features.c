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

#include "common/gemm.h"
#include "common/mem.h"
#include "common/rng.h"
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
        sae_codes c;
        assert_int_equal(sae_model_encode(&m, x, b, &err), 0);
        assert_int_equal(sae_model_codes(&m, &c, &err), 0);
        for (size_t j = 0; j < M; j++)
            for (uint32_t t = c.start[j]; t < c.start[j + 1]; t++) {
                float v = c.val[t];
                if (cnt[j] == cap[j]) cap[j] = cap[j] ? 2 * cap[j] : 64, all[j] = realloc(all[j], cap[j] * sizeof(vr));
                all[j][cnt[j]++] = (vr){v, (int64_t)(r0 + c.row[t])};
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

/* exact AUROC by comparing every (positive, negative) pair */
static double auroc_pairs(const float *pos, size_t np, const float *neg, size_t nn) {
    double acc = 0;
    for (size_t i = 0; i < np; i++)
        for (size_t k = 0; k < nn; k++) acc += pos[i] > neg[k] ? 1.0 : pos[i] == neg[k] ? 0.5 : 0.0;
    return acc / ((double)np * (double)nn);
}

static void check_search(feat_search_kind kind) {
    const char *p = tu_path(dir, "search.h5");
    size_t n = 3000, d = 8, M = 12;
    assert_int_equal(tu_write_acts(p, n, d, 10, 50, 0, 256, NULL, 0), 0);
    data_actfile *f;
    sae_error err = {0};
    assert_int_equal(data_actfile_open(&f, p, &err), 0);
    sae_config c = {.arch = SAE_ARCH_TOPK, .d = d, .m = M, .k = 4};
    sae_model m;
    assert_int_equal(sae_model_init(&m, &c, 512, 0, &err), 0);
    sae_model_init_params(&m, 11);
    double scale = 0.01; /* rows grow with their index: keep activations moderate */
    feat_search_opts o = {.kind = kind, .regex = "^w[37]$", .offset = 1, .label_a = "ja", .label_b = "en", .batch = 512,
                          .sort = FEAT_SORT_AUROC};
    feat_search_result r;
    assert_int_equal(feat_search(&r, &m, scale, f, &o, &err), 0);
    /* direct: every activation, every class, by hand */
    float *x = malloc(n * d * 4), *act = calloc(n * M, 4);
    int32_t *tok = malloc(n * 4);
    data_actfile_read_rows(f, 0, n, x, &err);
    data_actfile_read_tokens(f, 0, n, tok, &err);
    for (size_t r0 = 0; r0 < n; r0 += 512) {
        size_t b = n - r0 < 512 ? n - r0 : 512;
        float xs[512 * 8];
        for (size_t i = 0; i < b * d; i++) xs[i] = x[r0 * d + i] * (float)scale;
        sae_codes cv;
        assert_int_equal(sae_model_encode(&m, xs, b, &err), 0);
        assert_int_equal(sae_model_codes(&m, &cv, &err), 0);
        for (size_t j = 0; j < M; j++)
            for (uint32_t t = cv.start[j]; t < cv.start[j + 1]; t++) act[(r0 + cv.row[t]) * M + j] = cv.val[t];
    }
    int8_t *cls = malloc(n);
    for (size_t i = 0; i < n; i++) {
        size_t doc = i / 50;
        if (kind == FEAT_SEARCH_CONTRAST) cls[i] = doc % 2 ? 1 : 0; /* testutil labels odd docs "ja" */
        else if (i + 1 >= (doc + 1) * 50) cls[i] = -1;           /* offset leaves the document */
        else cls[i] = tok[i + 1] == 3 || tok[i + 1] == 7;
    }
    float *pos = malloc(n * 4), *neg = malloc(n * 4);
    for (size_t k = 0; k < r.n; k++) {
        const feat_search_row *w = &r.rows[k];
        size_t j = w->feature, np = 0, nn = 0, fp = 0;
        double sp = 0, sn = 0, qp = 0, qn = 0;
        for (size_t i = 0; i < n; i++) {
            float v = act[i * M + j];
            if (cls[i] == 1) pos[np++] = v, sp += v, qp += (double)v * v, fp += v > 0;
            else if (cls[i] == 0) neg[nn++] = v, sn += v, qn += (double)v * v;
        }
        assert_int_equal(w->n_pos, np);
        assert_int_equal(w->n_neg, nn);
        assert_int_equal(w->fires_pos, fp);
        /* binned ties count half: bins span 7% of an activation, so pairs
         * closer than that may be misordered; 0.02 bounds it on this data */
        double exact = auroc_pairs(pos, np, neg, nn);
        if (fabs(w->auroc - exact) > 0.02) fail_msg("feature %zu: auroc %.4f, pairs %.4f", j, w->auroc, exact);
        double vp = qp / (double)np - (sp / (double)np) * (sp / (double)np);
        double vn = qn / (double)nn - (sn / (double)nn) * (sn / (double)nn);
        assert_true(fabs(w->var_pos - vp) <= 1e-9 + 1e-6 * vp);
        if (vn > 0) assert_true(fabs(w->var_ratio - vp / vn) <= 1e-6 * (vp / vn) + 1e-12);
        if (k > 0 && kind == FEAT_SEARCH_TOKEN) assert_true(r.rows[k - 1].auroc >= w->auroc); /* best first */
    }
    free(pos), free(neg), free(cls), free(x), free(act), free(tok);
    feat_search_result_free(&r);
    sae_model_free(&m);
    data_actfile_close(f);
}

static void test_search_token_regex(void **s) { (void)s; check_search(FEAT_SEARCH_TOKEN); }
static void test_search_contrast(void **s) { (void)s; check_search(FEAT_SEARCH_CONTRAST); }

/* logit lens: promoted/suppressed tokens equal a direct argmax/argmin of
 * (W_dec[j] * final_norm) . unembed[v], computed here in double */
static void test_logit_lens_direct(void **state) {
    (void)state;
    const char *p = tu_path(dir, "lens.h5");
    size_t n = 2000, d = 8, V = 30, M = 10;
    sae_error err = {0};
    data_actwriter *w;
    data_actwriter_opts o = {.d = d, .model = "t", .hook = "resid_post", .layer = 0};
    assert_int_equal(data_actwriter_open(&w, p, &o, &err), 0);
    float *x = malloc(n * d * 4), *U = malloc(V * d * 4), g[8];
    int32_t *tok = malloc(n * 4);
    sae_rng r;
    sae_rng_seed(&r, 3, 0);
    for (size_t i = 0; i < n * d; i++) x[i] = sae_rng_normal(&r);
    for (size_t i = 0; i < V * d; i++) U[i] = sae_rng_normal(&r);
    for (size_t c = 0; c < d; c++) g[c] = 0.5f + (float)c * 0.1f;
    for (size_t i = 0; i < n; i++) tok[i] = (int32_t)(i % V);
    char *vocab[30];
    for (size_t v = 0; v < V; v++) vocab[v] = malloc(8), snprintf(vocab[v], 8, "t%zu", v);
    assert_int_equal(data_actwriter_append(w, x, tok, n, &err), 0);
    assert_int_equal(data_actwriter_set_vocab(w, (const char *const *)vocab, V, &err), 0);
    assert_int_equal(data_actwriter_put_f32(w, "unembed", U, V, d, &err), 0);
    assert_int_equal(data_actwriter_put_f32(w, "final_norm", g, d, 0, &err), 0);
    assert_int_equal(data_actwriter_finish(w, &err), 0);
    data_actfile *f;
    assert_int_equal(data_actfile_open(&f, p, &err), 0);
    sae_config c = {.arch = SAE_ARCH_TOPK, .d = d, .m = M, .k = 3};
    sae_model m;
    assert_int_equal(sae_model_init(&m, &c, 512, 0, &err), 0);
    sae_model_init_params(&m, 5);
    feat_opts fo = feat_default_opts();
    fo.batch = 512;
    feat_dict *fd;
    assert_int_equal(feat_build(&fd, &m, 1.0, f, &fo, NULL, NULL, &err), 0);
    assert_true(fd->has_lens);
    for (size_t j = 0; j < M; j++) {
        double best = -1e300, worst = 1e300;
        int32_t bi = -1, wi = -1;
        for (size_t v = 0; v < V; v++) {
            double l = 0;
            for (size_t k = 0; k < d; k++) l += (double)m.p.W_dec[j * d + k] * g[k] * U[v * d + k];
            if (l > best) best = l, bi = (int32_t)v;
            if (l < worst) worst = l, wi = (int32_t)v;
        }
        assert_int_equal(fd->lens_up_id[j * FEAT_LENS], bi);
        assert_int_equal(fd->lens_down_id[j * FEAT_LENS], wi);
        assert_true(fabs(fd->lens_up[j * FEAT_LENS] - best) < 1e-4 * (1 + fabs(best)));
        assert_true(fd->lens_up[j * FEAT_LENS + 1] <= fd->lens_up[j * FEAT_LENS]); /* sorted */
    }
    for (size_t v = 0; v < V; v++) free(vocab[v]);
    free(x), free(U), free(tok);
    feat_free(fd);
    sae_model_free(&m);
    data_actfile_close(f);
}

/* feat_align against a direct float64 computation: every shown cosine, the
 * mean best match, the ordering by best match, one column per row, and a
 * permuted noisy copy matched back to its permutation. */
static double cos64(const float *a, const float *b, size_t d) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t c = 0; c < d; c++) ab += (double)a[c] * b[c], aa += (double)a[c] * a[c], bb += (double)b[c] * b[c];
    return ab / sqrt(aa * bb);
}

static void test_align_direct(void **state) {
    (void)state;
    enum { NA = 20, NB = 25, D = 8 };
    float A[NA * D], B[NB * D];
    size_t perm[NA];
    uint64_t x = 12345;
    for (size_t i = 0; i < NA * D; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        A[i] = (float)((double)(x >> 11) / 9007199254740992.0 - 0.5);
    }
    for (size_t i = 0; i < NA; i++) perm[i] = (i * 7 + 3) % NB; /* 7 is coprime with 25 */
    for (size_t j = 0; j < NB * D; j++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        B[j] = (float)((double)(x >> 11) / 9007199254740992.0 - 0.5); /* unrelated rows */
    }
    for (size_t i = 0; i < NA; i++)
        for (size_t c = 0; c < D; c++) B[perm[i] * D + c] = 3.0f * A[i * D + c] + 0.01f * (float)((i + c) % 3);
    feat_alignment al;
    sae_error err = {0};
    assert_int_equal(feat_align(A, NA, B, NB, D, 64, &al, &err), 0);
    assert_int_equal(al.shown, NA);
    double mean_best = 0, prev = INFINITY;
    int used[NB] = {0};
    for (size_t r = 0; r < al.shown; r++) {
        double best = -2;
        for (size_t j = 0; j < NB; j++) best = fmax(best, cos64(A + al.row[r] * D, B + j * D, D));
        mean_best += best;
        assert_true(best <= prev + 1e-6); /* ordered by best match */
        prev = best;
        assert_false(used[al.col[r]]);
        used[al.col[r]] = 1;
        assert_int_equal(al.col[r], perm[al.row[r]]); /* the planted copy is found */
        for (size_t c = 0; c < al.shown; c++)
            assert_true(fabs(al.cos[r * al.shown + c] - cos64(A + al.row[r] * D, B + al.col[c] * D, D)) < 1e-5);
    }
    assert_true(fabs(al.mean_best - mean_best / NA) < 1e-5);
    feat_alignment_free(&al);
}

static void test_auroc_bins(void **state) {
    (void)state;
    uint64_t pos[4] = {0, 0, 1, 3}, neg[4] = {2, 2, 0, 0}; /* perfectly separated */
    assert_true(fabs(feat_auroc_from_bins(pos, neg, 4) - 1.0) < 1e-12);
    uint64_t same[4] = {1, 1, 1, 1};
    assert_true(fabs(feat_auroc_from_bins(same, same, 4) - 0.5) < 1e-12);
}

/* feat_encode_rows against the model encoding each row on its own (ReLU, so
 * a row's codes do not depend on its batch), with a NaN row left at zero, and
 * the column selection of ids; feat_peak_window against the maximum of that. */
static void test_encode_rows(void **state) {
    (void)state;
    const size_t n = 70, d = 8, M = 24, nan_row = 33;
    const char *p = tu_path(dir, "encode_rows.h5");
    assert_int_equal(tu_write_acts(p, n, d, 16, 10, 0, 0, &nan_row, 1), 0);
    data_actfile *f;
    sae_error err = {0};
    assert_int_equal(data_actfile_open(&f, p, &err), 0);
    sae_config c = {.arch = SAE_ARCH_RELU, .d = d, .m = M};
    sae_model m;
    assert_int_equal(sae_model_init(&m, &c, 32, 0, &err), 0); /* capacity 32 < n: several blocks */
    sae_model_init_params(&m, 5);
    const double scale = 0.3;
    float *all = malloc(n * M * sizeof *all), *two = malloc(n * 2 * sizeof *two), x[8], row[8];
    assert_int_equal(feat_encode_rows(&m, scale, f, 0, n, NULL, 0, all, &err), 0);
    const size_t ids[2] = {17, 3};
    assert_int_equal(feat_encode_rows(&m, scale, f, 0, n, ids, 2, two, &err), 0);
    for (size_t r = 0; r < n; r++) {
        float want[24] = {0};
        assert_int_equal(data_actfile_read_rows(f, r, 1, row, &err), 0);
        if (r != nan_row) {
            for (size_t k = 0; k < d; k++) x[k] = row[k] * (float)scale;
            assert_int_equal(sae_model_encode(&m, x, 1, &err), 0);
            sae_codes cv;
            assert_int_equal(sae_model_codes(&m, &cv, &err), 0);
            for (size_t j = 0; j < M; j++)
                for (uint32_t t = cv.start[j]; t < cv.start[j + 1]; t++) want[j] = cv.val[t];
        }
        for (size_t j = 0; j < M; j++) assert_true(fabsf(all[r * M + j] - want[j]) <= 1e-5f * (1 + fabsf(want[j])));
        assert_true(two[r * 2] == all[r * M + 17] && two[r * 2 + 1] == all[r * M + 3]);
    }
    data_docs dd;
    assert_int_equal(data_docs_load(&dd, f, &err), 0);
    size_t w, doc = 3;
    float peak;
    assert_int_equal(feat_peak_window(&m, scale, f, &dd, doc, ids, 1, &w, &peak, &err), 0);
    int64_t lo, hi;
    data_docs_doc_rows(&dd, doc, &lo, &hi);
    float best = 0;
    for (int64_t r = lo; r < hi; r++) best = fmaxf(best, all[r * M + 17]);
    assert_true(peak == best);
    assert_int_equal(w, (size_t)dd.doc_win[doc]); /* without /doc_source a document is one window */
    data_docs_free(&dd);
    free(all), free(two);
    sae_model_free(&m);
    data_actfile_close(f);
}

int main(void) {
    sae_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_text),
        cmocka_unit_test(test_auroc_bins),
        cmocka_unit_test(test_align_direct),
        cmocka_unit_test(test_logit_lens_direct),
        cmocka_unit_test(test_search_token_regex),
        cmocka_unit_test(test_search_contrast),
        cmocka_unit_test(test_matches_brute_force),
        cmocka_unit_test(test_labels_name_planted_words),
        cmocka_unit_test(test_encode_rows),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
