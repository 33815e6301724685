/* tests/test_quantiles.c: the feature dictionary's quantile examples and its
 * JSON examples, on data whose activations the test chooses.
 *
 * The SAE is a ReLU SAE with identity encoder and no biases, so latent j's
 * activation at row r is max(x[r][j], 0): each column of the data is one
 * feature's distribution (spread over decades, inside one histogram bin,
 * exactly 5 or 3 firings, never, with ties, beyond the histogram's range).
 *  - every quantile example is within one histogram bin (in log10) of the
 *    brute-force quantile (sort the feature's non-zero activations, take rank
 *    ceil(q n)); exact when the feature fires at most FEAT_BIN_SAMPLES times;
 *    five distinct rows once it fires on 5 rows or more; the stored value is
 *    the activation at the stored row; the same result for 1 and 2 threads;
 *  - the JSON Lines file, parsed with cJSON: each example's document, window,
 *    position and context text against the data as written, no negative
 *    (sentinel) numbers anywhere, and no location keys without the data. */
#include <cjson/cJSON.h>
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
#include "common/mem.h"
#include "common/rng.h"
#include "features/feat.h"
#include "sae/sae.h"
#include "tests/testutil.h"

#define N_ROWS 50000
#define D 8            /* = M: one feature per column */
#define V 50
#define WIN 100        /* rows per window */
#define WIN_PER_DOC 2  /* windows per corpus document (/doc_source) */
#define CONTEXT 3

static const char *dir, *data_path;
static float *X; /* (N_ROWS, D) as written */
static int32_t TOK[N_ROWS];
static char VOCAB[V][16];

/* column j of row r: feature j's activation there (0 = does not fire) */
static float draw(sae_rng *g, size_t j, size_t r) {
    float u = sae_rng_uniform(g), w = sae_rng_uniform(g);
    switch (j) {
    case 0: return u < 0.5f ? powf(10.0f, -2.0f + 4.0f * w) : 0.0f; /* four decades */
    case 1: return u < 0.3f ? 1.0f + 0.5f * w : 0.0f;               /* all in one bin [1, 1.585) */
    case 2: {                                                       /* exactly 5, one bin */
        static const size_t rows[5] = {10, 2000, 30000, 40000, N_ROWS - 1};
        for (int i = 0; i < 5; i++)
            if (r == rows[i]) return 1.1f + 0.07f * (float)i;
        return 0.0f;
    }
    case 3: return r == 7 ? 0.5f : r == 8 ? 0.7f : r == 20000 ? 3.0f : 0.0f; /* 3 firings */
    case 4: return -1.0f;                                                   /* never (ReLU) */
    case 5: return u < 0.2f ? -0.5f * logf(1.0f - w * 0.999f) + 1e-3f : 0.0f; /* exponential */
    case 6:                                                                 /* past both ends */
        if (u >= 0.1f) return 0.0f;
        return w < 0.1f ? 1e-6f * (1.0f + w) : w > 0.9f ? 2e4f * w : powf(10.0f, -1.0f + 2.5f * w);
    default: return u < 0.4f ? (w < 0.5f ? 1.0f : 100.0f) : 0.0f; /* ties */
    }
}

static int write_data(const char *path) {
    sae_error err = {0};
    data_actwriter *w;
    data_actwriter_opts o = {.d = D, .model = "test", .hook = "resid_post", .layer = 1};
    if (data_actwriter_open(&w, path, &o, &err) < 0) return -1;
    sae_rng g;
    sae_rng_seed(&g, 12, 0);
    for (size_t r = 0; r < N_ROWS; r++) {
        for (size_t j = 0; j < D; j++) X[r * D + j] = draw(&g, j, r);
        TOK[r] = (int32_t)((r * 7 + r / 13) % V);
    }
    int rc = data_actwriter_append(w, X, TOK, N_ROWS, &err);
    size_t nw = N_ROWS / WIN;
    int64_t off[N_ROWS / WIN + 1], src[N_ROWS / WIN];
    const char *labels[N_ROWS / WIN];
    for (size_t i = 0; i <= nw; i++) off[i] = (int64_t)(i * WIN);
    for (size_t i = 0; i < nw; i++) src[i] = (int64_t)(i / WIN_PER_DOC), labels[i] = "en";
    if (rc == 0) rc = data_actwriter_set_docs(w, off, nw, labels, &err);
    if (rc == 0) rc = data_actwriter_put_i64(w, "doc_source", src, nw, &err);
    const char *vocab[V];
    for (size_t i = 0; i < V; i++) {
        snprintf(VOCAB[i], sizeof VOCAB[i], i % 5 ? " w%zu" : "語%zu", i); /* some multi-byte text */
        vocab[i] = VOCAB[i];
    }
    if (rc == 0) rc = data_actwriter_set_vocab(w, vocab, V, &err);
    if (rc == 0) return data_actwriter_finish(w, &err);
    data_actwriter_abort(w);
    return rc;
}

static int setup(void **state) {
    (void)state;
    dir = tu_tmpdir();
    data_path = strdup(tu_path(dir, "q_data.h5"));
    X = malloc((size_t)N_ROWS * D * sizeof *X);
    return X && data_path ? write_data(data_path) : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    free(X);
    return system(cmd) != 0;
}

/* ReLU SAE, identity encoder and decoder, no biases: latent j = relu(x_j) */
static void identity_sae(sae_model *m, size_t capacity) {
    sae_error err = {0};
    sae_config c = {.arch = SAE_ARCH_RELU, .d = D, .m = D};
    assert_int_equal(sae_model_init(m, &c, capacity, 0, &err), 0);
    memset(m->p.W_enc, 0, D * D * sizeof(float));
    memset(m->p.W_dec, 0, D * D * sizeof(float));
    memset(m->p.b_enc, 0, D * sizeof(float));
    memset(m->p.b_dec, 0, D * sizeof(float));
    for (size_t j = 0; j < D; j++) m->p.W_enc[j * D + j] = m->p.W_dec[j * D + j] = 1.0f;
}

static feat_dict *build(int threads, data_actfile **f_out) {
    sae_error err = {0};
    sae_model m;
    identity_sae(&m, 999);
    data_actfile *f;
    assert_int_equal(data_actfile_open(&f, data_path, &err), 0);
    feat_opts o = feat_default_opts();
    o.top_n = 6, o.batch = 999, o.context = CONTEXT; /* blocks that do not divide N */
    sae_set_threads(threads);
    feat_dict *fd;
    if (feat_build(&fd, &m, 1.0, f, &o, NULL, NULL, &err) != 0) fail_msg("feat_build: %s", err.msg);
    sae_model_free(&m);
    if (f_out) *f_out = f;
    else data_actfile_close(f);
    return fd;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static void test_quantiles_match_brute_force(void **state) {
    (void)state;
    feat_dict *fd = build(2, NULL);
    const double width = (FEAT_HIST_LOG10_MAX - FEAT_HIST_LOG10_MIN) / FEAT_HIST_BINS;
    const double levels[FEAT_QUANTILES] = {0.1, 0.3, 0.5, 0.7, 0.9};
    /* the histogram's end bins hold everything beyond its range */
    const double low_edge = FEAT_HIST_LOG10_MIN + width, high_edge = FEAT_HIST_LOG10_MAX - width;
    float *acts = malloc(N_ROWS * sizeof *acts);
    for (size_t j = 0; j < D; j++) {
        size_t n = 0;
        for (size_t r = 0; r < N_ROWS; r++)
            if (X[r * D + j] > 0) acts[n++] = X[r * D + j];
        assert_int_equal(fd->count[j], n);
        qsort(acts, n, sizeof *acts, cmp_float);
        double err_sum = 0;
        for (int q = 0; q < FEAT_QUANTILES; q++) {
            int64_t row = fd->q_row[j * FEAT_QUANTILES + q];
            float got = fd->q_val[j * FEAT_QUANTILES + q];
            if (n == 0) {
                assert_true(row == -1);
                continue;
            }
            assert_true(row >= 0 && row < N_ROWS);
            /* the stored value is the activation at the stored row */
            assert_true(got == X[(size_t)row * D + j]);
            size_t rank = (size_t)ceil(levels[q] * (double)n - 1e-9); /* 1-based */
            if (rank < 1) rank = 1;
            double truth = acts[rank - 1], lt = log10(truth), lg = log10((double)got);
            err_sum += fabs(lg - lt);
            if (n <= FEAT_BIN_SAMPLES && got != (float)truth)
                fail_msg("feature %zu level %.1f: %g, the exact quantile is %g", j, levels[q], (double)got, truth);
            if (lt < low_edge) assert_true(lg < low_edge);
            else if (lt >= high_edge) assert_true(lg >= high_edge);
            else if (!(fabs(lg - lt) < width))
                fail_msg("feature %zu level %.1f: %g, true quantile %g: %.3f decades apart (a bin is %.2f)", j,
                         levels[q], (double)got, truth, fabs(lg - lt), width);
            if (n >= 5)
                for (int p = 0; p < q; p++)
                    if (fd->q_row[j * FEAT_QUANTILES + p] == row)
                        fail_msg("feature %zu: levels %.1f and %.1f show the same row %lld", j, levels[p], levels[q],
                                 (long long)row);
            if (q > 0) assert_true(got >= fd->q_val[j * FEAT_QUANTILES + q - 1]); /* in order */
        }
        if (n) print_message("feature %zu: %zu firings, mean |log10 error| %.4f\n", j, n, err_sum / FEAT_QUANTILES);
    }
    free(acts);
    feat_free(fd);
}

static void test_same_for_any_thread_count(void **state) {
    (void)state;
    feat_dict *a = build(1, NULL), *b = build(2, NULL);
    assert_memory_equal(a->q_row, b->q_row, D * FEAT_QUANTILES * sizeof(int64_t));
    assert_memory_equal(a->q_val, b->q_val, D * FEAT_QUANTILES * sizeof(float));
    assert_memory_equal(a->top_row, b->top_row, D * a->top_n * sizeof(int64_t));
    assert_memory_equal(a->hist, b->hist, D * FEAT_HIST_BINS * sizeof(uint64_t));
    feat_free(a), feat_free(b);
}

/* every number in the tree is >= 0: no -1 standing for "none" */
static void assert_no_negative(const cJSON *o) {
    if (cJSON_IsNumber(o) && o->valuedouble < 0) fail_msg("negative number %g at key '%s'", o->valuedouble, o->string);
    for (const cJSON *c = o->child; c; c = c->next) assert_no_negative(c);
}

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) fail_msg("example has no number '%s'", key);
    return v->valuedouble;
}

static const char *str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v)) fail_msg("example has no string '%s'", key);
    return v->valuestring;
}

/* The example at row against the data as written: its window is row / WIN,
 * of corpus document window / WIN_PER_DOC; the text is the vocabulary
 * strings of the window's tokens within CONTEXT of it. */
static void check_example(const cJSON *e, const float *vals, const int64_t *rows, size_t i, size_t j, int located) {
    int64_t row = rows[i];
    assert_true(num(e, "row") == (double)row);
    /* cJSON prints 15 significant digits: enough to give the float back */
    assert_true((float)num(e, "value") == vals[i]);
    assert_true((float)num(e, "value") == X[(size_t)row * D + j]);
    if (!located) {
        assert_null(cJSON_GetObjectItem(e, "doc"));
        assert_null(cJSON_GetObjectItem(e, "context"));
        return;
    }
    size_t w = (size_t)row / WIN, lo = w * WIN, hi = lo + WIN, r = (size_t)row;
    assert_true(num(e, "file_window") == (double)w);
    assert_true(num(e, "doc") == (double)(w / WIN_PER_DOC));
    assert_true(num(e, "window") == (double)(w % WIN_PER_DOC));
    assert_true(num(e, "windows") == WIN_PER_DOC);
    assert_true(num(e, "pos") == (double)(r - lo));
    char before[256] = "", after[256] = "", ctx[800];
    for (size_t k = r >= lo + CONTEXT ? r - CONTEXT : lo; k < r; k++) strcat(before, VOCAB[TOK[k]]);
    for (size_t k = r + 1; k < hi && k <= r + CONTEXT; k++) strcat(after, VOCAB[TOK[k]]);
    snprintf(ctx, sizeof ctx, "%s[%s]%s", before, VOCAB[TOK[r]], after);
    assert_string_equal(str(e, "before"), before);
    assert_string_equal(str(e, "token"), VOCAB[TOK[r]]);
    assert_string_equal(str(e, "after"), after);
    assert_string_equal(str(e, "context"), ctx);
}

static void check_json(const feat_dict *fd, const char *path, int located) {
    const double levels[FEAT_QUANTILES] = {0.1, 0.3, 0.5, 0.7, 0.9};
    FILE *in = fopen(path, "r");
    assert_non_null(in);
    char *line = NULL;
    size_t cap = 0, j = 0, examples = 0;
    while (getline(&line, &cap, in) > 0) {
        cJSON *o = cJSON_Parse(line);
        if (!o) fail_msg("line %zu is not JSON", j + 1);
        assert_true(j < fd->M);
        assert_true(num(o, "feature") == (double)j);
        assert_no_negative(o);
        const cJSON *top = cJSON_GetObjectItem(o, "top_examples"), *qex = cJSON_GetObjectItem(o, "quantile_examples");
        assert_true(cJSON_IsArray(top) && cJSON_IsArray(qex));
        size_t nt = 0, nq = 0;
        for (size_t i = 0; i < fd->top_n; i++) nt += fd->top_row[j * fd->top_n + i] >= 0;
        for (size_t q = 0; q < FEAT_QUANTILES; q++) nq += fd->q_row[j * FEAT_QUANTILES + q] >= 0;
        assert_int_equal(cJSON_GetArraySize(top), nt);
        assert_int_equal(cJSON_GetArraySize(qex), nq);
        for (size_t i = 0; i < nt; i++) {
            const cJSON *e = cJSON_GetArrayItem(top, (int)i);
            assert_null(cJSON_GetObjectItem(e, "quantile"));
            check_example(e, fd->top_val + j * fd->top_n, fd->top_row + j * fd->top_n, i, j, located);
        }
        for (size_t q = 0; q < nq; q++) { /* a feature with firings has all five levels */
            const cJSON *e = cJSON_GetArrayItem(qex, (int)q);
            assert_true(num(e, "quantile") == levels[q]);
            check_example(e, fd->q_val + j * FEAT_QUANTILES, fd->q_row + j * FEAT_QUANTILES, q, j, located);
        }
        examples += nt + nq;
        cJSON_Delete(o);
        j++;
    }
    free(line);
    fclose(in);
    assert_int_equal(j, fd->M);
    assert_true(examples > 30);
}

static void test_json_examples(void **state) {
    (void)state;
    data_actfile *f;
    feat_dict *fd = build(2, &f);
    sae_error err = {0};
    assert_true(fd->count[4] == 0 && fd->count[2] == 5); /* the cases the check must meet */
    const char *with = tu_path(dir, "with_data.jsonl"), *without = tu_path(dir, "without_data.jsonl");
    if (feat_write_json(fd, f, with, &err) != 0) fail_msg("feat_write_json: %s", err.msg);
    check_json(fd, with, 1);
    if (feat_write_json(fd, NULL, without, &err) != 0) fail_msg("feat_write_json: %s", err.msg);
    check_json(fd, without, 0);
    feat_free(fd);
    data_actfile_close(f);
}

int main(void) {
    cJSON_InitHooks(&(cJSON_Hooks){.malloc_fn = sae_malloc, .free_fn = sae_free});
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantiles_match_brute_force),
        cmocka_unit_test(test_same_for_any_thread_count),
        cmocka_unit_test(test_json_examples),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
