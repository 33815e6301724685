/* tests/test_search.c: sae search against independent computations.
 *
 * The SAE is built in memory: a ReLU SAE whose encoder rows are the unit
 * vectors, b_enc = b_dec = 0, so feature j's activation is max(0, x[j]) and
 * the test knows every activation without encoding anything.
 *  - planted: "ja" and "en" documents; feature 0 fires before 'ん' in ja
 *    documents only (40% of the time), features 1 and 2 fire on 90% of all ja
 *    positions. Without --where the dense features win AUROC and the planted
 *    one wins the default sort (f1); with --where label=ja it wins both. Every
 *    statistic against a direct count.
 *  - universe: --where semantics and its errors.
 *  - null: random document labels over several seeds; q < 0.05 stays rare,
 *    and the reported best-of-M null matches a direct simulation; document
 *    AUROC, pooling, p-values and BH q-values against brute force.
 *  - predictions: P(match) correlation and top-1 class against a direct
 *    computation from the stored /predictions (written here with HDF5). */
#include <hdf5.h>
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
#include "data/actfile.h"
#include "features/feat.h"
#include "sae/sae.h"
#include "tests/testutil.h"

static const char *dir;

static int setup(void **state) {
    (void)state;
    dir = tu_tmpdir();
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) != 0;
}

/* ReLU SAE with identity encoder: act_j = max(0, x_j) */
static void identity_sae(sae_model *m, size_t d) {
    sae_error err = {0};
    sae_config c = sae_config_default(SAE_ARCH_RELU);
    assert_int_equal(sae_config_resolve(&c, d, &err), 0);
    c.m = d;
    assert_int_equal(sae_config_resolve(&c, d, &err), 0);
    assert_int_equal(sae_model_init(m, &c, 512, 0, &err), 0);
    sae_model_init_params(m, 1);
    memset(m->p.W_enc, 0, d * d * sizeof(float));
    for (size_t j = 0; j < d; j++) m->p.W_enc[j * d + j] = 1.0f;
    memset(m->p.b_enc, 0, d * sizeof(float));
    memset(m->p.b_dec, 0, d * sizeof(float));
}

typedef struct {
    size_t n, d, n_win, V;
    float *x;          /* (n, d) */
    int32_t *tok;      /* (n) */
    int64_t *off;      /* (n_win + 1) */
    int64_t *source;   /* (n_win) or NULL */
    const char **label;/* (n_win) */
    char **vocab;      /* (V) */
} file_spec;

static void write_spec(const char *path, const file_spec *s) {
    sae_error err = {0};
    data_actwriter *w;
    data_actwriter_opts o = {.d = s->d, .model = "test", .hook = "resid_post", .layer = 0};
    assert_int_equal(data_actwriter_open(&w, path, &o, &err), 0);
    assert_int_equal(data_actwriter_append(w, s->x, s->tok, s->n, &err), 0);
    assert_int_equal(data_actwriter_set_docs(w, s->off, s->n_win, s->label, &err), 0);
    assert_int_equal(data_actwriter_set_vocab(w, (const char *const *)s->vocab, s->V, &err), 0);
    if (s->source) assert_int_equal(data_actwriter_put_i64(w, "doc_source", s->source, s->n_win, &err), 0);
    assert_int_equal(data_actwriter_finish(w, &err), 0);
}

static char **make_vocab(size_t V) {
    char **v = calloc(V, sizeof *v);
    for (size_t i = 0; i < V; i++) v[i] = malloc(16), snprintf(v[i], 16, "t%zu", i);
    return v;
}
static void free_vocab(char **v, size_t V) {
    for (size_t i = 0; i < V; i++) free(v[i]);
    free(v);
}

/* --- planted ------------------------------------------------------------------ */
enum { P_DOCS = 60, P_LEN = 80, P_D = 6, P_V = 22, TOK_N = 20, TOK_SAN = 21 };

static file_spec planted_spec(void) {
    file_spec s = {.n = P_DOCS * P_LEN, .d = P_D, .n_win = P_DOCS, .V = P_V};
    s.x = calloc(s.n * s.d, sizeof(float));
    s.tok = calloc(s.n, sizeof(int32_t));
    s.off = calloc(s.n_win + 1, sizeof(int64_t));
    s.label = calloc(s.n_win, sizeof(char *));
    s.vocab = make_vocab(P_V);
    snprintf(s.vocab[TOK_N], 16, "ん");
    snprintf(s.vocab[TOK_SAN], 16, "さん");
    sae_rng r;
    sae_rng_seed(&r, 77, 0);
    for (size_t w = 0; w <= s.n_win; w++) s.off[w] = (int64_t)(w * P_LEN);
    for (size_t w = 0; w < s.n_win; w++) {
        int ja = w % 2 == 1;
        s.label[w] = ja ? "ja" : "en";
        for (size_t i = 0; i < P_LEN; i++) {
            size_t row = w * P_LEN + i;
            float u = sae_rng_uniform(&r);
            s.tok[row] = ja && u < 0.08f ? TOK_N : ja && u < 0.10f ? TOK_SAN : (int32_t)sae_rng_below(&r, TOK_N);
        }
        for (size_t i = 0; i < P_LEN; i++) {
            size_t row = w * P_LEN + i;
            float *x = s.x + row * s.d;
            int before_n = i + 1 < P_LEN && s.tok[row + 1] == TOK_N;
            x[0] = ja && before_n && sae_rng_uniform(&r) < 0.4f ? 1.0f + sae_rng_uniform(&r) : 0.0f;
            if (sae_rng_uniform(&r) < 0.003f) x[0] = 0.5f; /* a little noise anywhere */
            for (int k = 1; k <= 2; k++) x[k] = ja && sae_rng_uniform(&r) < 0.9f ? 0.5f + sae_rng_uniform(&r) : 0.0f;
            /* feature 3: rare, fires only before ん and only in the first 4 ja documents */
            x[3] = ja && before_n && w < 8 && i % 2 == 0 ? 1.0f : -1.0f;
            for (int k = 4; k < P_D; k++) x[k] = sae_rng_uniform(&r) < 0.3f ? sae_rng_uniform(&r) : -1.0f;
        }
    }
    return s;
}

static void free_spec(file_spec *s) {
    free(s->x), free(s->tok), free(s->off), free(s->label), free(s->source);
    free_vocab(s->vocab, s->V);
}

/* exact AUROC of pairs */
static double auroc_pairs(const double *pos, size_t np, const double *neg, size_t nn) {
    double acc = 0;
    for (size_t i = 0; i < np; i++)
        for (size_t k = 0; k < nn; k++) acc += pos[i] > neg[k] ? 1.0 : pos[i] == neg[k] ? 0.5 : 0.0;
    return acc / ((double)np * (double)nn);
}

static const feat_search_row *row_of(const feat_search_result *r, size_t j, size_t *rank) {
    for (size_t i = 0; i < r->n; i++)
        if (r->rows[i].feature == j) return *rank = i, &r->rows[i];
    fail_msg("feature %zu not ranked", j);
    return NULL;
}

/* direct counts for the token search 'ん$' at offset 1 within ja (ja_only) or everywhere */
static void check_token_rows(const file_spec *s, const feat_search_result *r, int ja_only, int san_excluded) {
    size_t n = s->n;
    int8_t *cls = malloc(n);
    uint64_t np = 0, nn = 0, cnt_n = 0, cnt_san = 0;
    for (size_t row = 0; row < n; row++) {
        size_t w = row / P_LEN;
        int in = !ja_only || w % 2 == 1;
        if (!in || (row + 1) % P_LEN == 0) { cls[row] = -1; continue; }
        int32_t t = s->tok[row + 1];
        cls[row] = t == TOK_N || (t == TOK_SAN && !san_excluded);
        cnt_n += t == TOK_N, cnt_san += t == TOK_SAN && !san_excluded;
        if (cls[row]) np++;
        else nn++;
    }
    assert_int_equal(r->n_pos, np);
    assert_int_equal(r->n_neg, nn);
    assert_true(fabs(r->base_rate - (double)np / (double)(np + nn)) < 1e-15);
    /* matched vocabulary and its counts */
    assert_int_equal(r->n_matching_tokens, san_excluded ? 1 : 2);
    assert_int_equal(r->matches[0].id, TOK_N);
    assert_int_equal(r->matches[0].count, cnt_n);
    if (!san_excluded) assert_int_equal(r->matches[1].count, cnt_san);
    double *pos = malloc(n * sizeof(double)), *neg = malloc(n * sizeof(double));
    for (size_t k = 0; k < r->n; k++) {
        const feat_search_row *w = &r->rows[k];
        size_t j = w->feature, a = 0, b = 0;
        uint64_t fp = 0, fn = 0;
        for (size_t row = 0; row < n; row++) {
            double v = fmax(0.0, s->x[row * s->d + j]);
            if (cls[row] == 1) pos[a++] = v, fp += v > 0;
            else if (cls[row] == 0) neg[b++] = v, fn += v > 0;
        }
        assert_int_equal(w->fires_pos, fp);
        assert_int_equal(w->fires_neg, fn);
        double prec = (double)fp / (double)(fp + fn), rec = (double)fp / (double)np;
        double base = (double)np / (double)(np + nn);
        assert_true(fabs(w->precision - prec) < 1e-12);
        assert_true(fabs(w->recall - rec) < 1e-12);
        assert_true(fabs(w->lift - prec / base) < 1e-9);
        assert_true(fabs(w->f1 - 2 * prec * rec / (prec + rec)) < 1e-12);
        /* binned AUROC: ties within a 7% bin count half; 0.02 bounds it here */
        double exact = auroc_pairs(pos, a, neg, b);
        if (fabs(w->auroc - exact) > 0.02) fail_msg("feature %zu: auroc %.4f, pairs %.4f", j, w->auroc, exact);
    }
    free(pos), free(neg), free(cls);
}

static void run(feat_search_result *r, sae_model *m, data_actfile *f, feat_search_opts *o) {
    sae_error err = {0};
    o->batch = 512;
    if (feat_search(r, m, 1.0, f, o, &err) != 0) fail_msg("search: %s", err.msg);
}

static void test_planted(void **state) {
    (void)state;
    file_spec s = planted_spec();
    const char *p = tu_path(dir, "planted.h5");
    write_spec(p, &s);
    data_actfile *f;
    sae_error err = {0};
    assert_int_equal(data_actfile_open(&f, p, &err), 0);
    sae_model m;
    identity_sae(&m, P_D);
    feat_where ja;
    assert_int_equal(feat_where_parse(&ja, "label=ja", &err), 0);
    static const feat_sort sorts[] = {FEAT_SORT_AUTO, FEAT_SORT_AUROC, FEAT_SORT_LIFT, FEAT_SORT_PRECISION, FEAT_SORT_F1};
    static const char *const names[] = {"default (f1)", "auroc", "lift", "precision", "f1"};
    size_t rank_all[5], rank_ja[5];
    for (int wh = 0; wh < 2; wh++)
        for (size_t k = 0; k < 5; k++) {
            feat_search_opts o = {.kind = FEAT_SEARCH_TOKEN, .regex = "ん$", .offset = 1, .sort = sorts[k],
                                  .where = wh ? &ja : NULL, .n_where = (size_t)wh};
            feat_search_result r;
            run(&r, &m, f, &o);
            size_t rank = 0, rare = 0;
            const feat_search_row *w = row_of(&r, 0, &rank);
            row_of(&r, 3, &rare);
            (wh ? rank_ja : rank_all)[k] = rank + 1;
            if (k == 2 || k == 3) assert_int_equal(rare, 0); /* lift and precision crown the rare feature */
            print_message("%-13s %-10s planted rank %zu (f1 %.3f auroc %.3f lift %.2f, fires %llu); top feature %zu (f1 "
                          "%.3f auroc %.3f lift %.2f, fires %llu)\n", names[k], wh ? "label=ja" : "all", rank + 1, w->f1,
                          w->auroc, w->lift, (unsigned long long)w->fires, r.rows[0].feature, r.rows[0].f1,
                          r.rows[0].auroc, r.rows[0].lift, (unsigned long long)r.rows[0].fires);
            if (k == 0) {
                check_token_rows(&s, &r, wh, 0);
                assert_int_equal(r.universe_rows, wh ? s.n / 2 : s.n);
                assert_int_equal(r.universe_docs, wh ? P_DOCS / 2 : P_DOCS);
            }
            feat_search_result_free(&r);
        }
    /* without --where the dense ja features win AUROC (ja is where ん occurs) */
    assert_true(rank_all[1] > 1);
    /* the default sort finds the planted feature either way; within ja, auroc does too */
    assert_int_equal(rank_all[0], 1);
    assert_int_equal(rank_ja[0], 1);
    assert_int_equal(rank_ja[1], 1);
    /* with --min-count above the rare feature's count, lift finds the planted one */
    feat_search_opts lo = {.kind = FEAT_SEARCH_TOKEN, .regex = "ん$", .offset = 1, .sort = FEAT_SORT_LIFT, .min_count = 20};
    feat_search_result lr;
    run(&lr, &m, f, &lo);
    assert_int_equal(lr.rows[0].feature, 0);
    assert_int_equal(lr.n_below_min_count, 1);
    feat_search_result_free(&lr);
    /* --exclude-regex takes さん out of the class */
    feat_search_opts o = {.kind = FEAT_SEARCH_TOKEN, .regex = "ん$", .exclude_regex = "^さ", .offset = 1,
                          .where = &ja, .n_where = 1, .min_count = 0};
    feat_search_result r;
    run(&r, &m, f, &o);
    check_token_rows(&s, &r, 1, 1);
    feat_search_result_free(&r);
    /* --min-count leaves out features firing less often: feature 0 fires ~100 times */
    o.min_count = 100000;
    o.exclude_regex = NULL;
    err = (sae_error){0};
    o.batch = 512;
    assert_int_equal(feat_search(&r, &m, 1.0, f, &o, &err), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.n_below_min_count, P_D);
    feat_search_result_free(&r);
    sae_model_free(&m);
    data_actfile_close(f);
    free_spec(&s);
}

/* --- the universe ---------------------------------------------------------------- */
static void test_where(void **state) {
    (void)state;
    file_spec s = planted_spec();
    const char *p = tu_path(dir, "where.h5");
    write_spec(p, &s);
    data_actfile *f;
    sae_error err = {0};
    assert_int_equal(data_actfile_open(&f, p, &err), 0);
    sae_model m;
    identity_sae(&m, P_D);
    feat_where w[4];
    /* label!=en is label=ja here; doc=3 OR doc=5 (both ja); doc!=1 AND doc!=3 */
    const char *cases[][3] = {{"label!=en", NULL, NULL}, {"doc=3", "doc=5", NULL}, {"doc!=1", "doc!=3", "label=ja"}};
    const uint64_t want[] = {s.n / 2, 2 * P_LEN, s.n / 2 - 2 * P_LEN};
    for (size_t c = 0; c < 3; c++) {
        size_t n = 0;
        for (; n < 3 && cases[c][n]; n++) assert_int_equal(feat_where_parse(&w[n], cases[c][n], &err), 0);
        feat_search_opts o = {.kind = FEAT_SEARCH_TOKEN, .regex = "ん$", .offset = 1, .where = w, .n_where = n};
        feat_search_result r;
        run(&r, &m, f, &o);
        assert_int_equal(r.universe_rows, want[c]);
        feat_search_result_free(&r);
    }
    /* errors: unknown key, absent label, document out of range, malformed */
    const char *bad[][2] = {{"lang=ja", "unknown key 'lang'"}, {"label=fr", "labels present: 'en', 'ja'"},
                            {"doc=999", "matches no corpus document"}, {"doc=x", "is a number"}};
    for (size_t c = 0; c < 4; c++) {
        assert_int_equal(feat_where_parse(&w[0], bad[c][0], &err), 0);
        feat_search_opts o = {.kind = FEAT_SEARCH_TOKEN, .regex = "ん$", .offset = 1, .where = w, .n_where = 1, .batch = 512};
        feat_search_result r;
        err = (sae_error){0};
        assert_int_equal(feat_search(&r, &m, 1.0, f, &o, &err), SAE_ERR_ARG);
        if (!strstr(err.msg, bad[c][1])) fail_msg("%s: '%s'", bad[c][0], err.msg);
    }
    assert_true(feat_where_parse(&w[0], "nokey", &err) < 0);
    assert_true(feat_where_parse(&w[0], "=x", &err) < 0);
    assert_int_equal(feat_where_parse(&w[0], "label!=a=b", &err), 0);
    assert_true(w[0].negate && strcmp(w[0].key, "label") == 0 && strcmp(w[0].value, "a=b") == 0);
    sae_model_free(&m);
    data_actfile_close(f);
    free_spec(&s);
}

/* --- kernels against brute force ---------------------------------------------------- */
static void test_kernels(void **state) {
    (void)state;
    sae_error err = {0};
    /* midranks and Mann-Whitney with ties */
    double pos[] = {3, 1, 2, 2, 5}, neg[] = {2, 0, 0, 4};
    double a;
    assert_int_equal(feat_mann_whitney_auroc(pos, 5, neg, 4, &a, &err), 0);
    assert_true(fabs(a - auroc_pairs(pos, 5, neg, 4)) < 1e-12);
    /* BH against its definition: q_i = min over p_k >= p_i of p_k n / #{p <= p_k} */
    sae_rng r;
    sae_rng_seed(&r, 5, 0);
    enum { N = 300 };
    double p[N], q[N];
    for (size_t i = 0; i < N; i++) p[i] = i % 7 == 0 ? 0.0001 * (double)(i % 5) : (double)((sae_rng_below(&r, 1000) + 1)) / 1000.0;
    assert_int_equal(feat_bh_qvalues(p, N, q, &err), 0);
    for (size_t i = 0; i < N; i++) {
        double best = 1.0;
        for (size_t k = 0; k < N; k++) {
            if (p[k] < p[i]) continue;
            size_t le = 0;
            for (size_t t = 0; t < N; t++) le += p[t] <= p[k];
            best = fmin(best, p[k] * N / (double)le);
        }
        if (fabs(q[i] - best) > 1e-12) fail_msg("q[%zu] = %g, brute force %g", i, q[i], best);
    }
}

/* --- null and pooled contrasts ------------------------------------------------------- */
enum { C_DOCS = 24, C_WIN = 2, C_LEN = 10, C_D = 40 };

/* 24 corpus documents of 2 windows; random activations; labels by seed */
static file_spec contrast_spec(uint64_t seed, int planted, size_t n_docs) {
    file_spec s = {.n = n_docs * C_WIN * C_LEN, .d = C_D, .n_win = n_docs * C_WIN, .V = 4};
    s.x = calloc(s.n * s.d, sizeof(float));
    s.tok = calloc(s.n, sizeof(int32_t));
    s.off = calloc(s.n_win + 1, sizeof(int64_t));
    s.source = calloc(s.n_win, sizeof(int64_t));
    s.label = calloc(s.n_win, sizeof(char *));
    s.vocab = make_vocab(4);
    sae_rng r;
    sae_rng_seed(&r, seed, 1);
    /* exactly half A: a random subset */
    uint32_t perm[64];
    for (uint32_t i = 0; i < n_docs; i++) perm[i] = i;
    sae_rng_shuffle_u32(&r, perm, n_docs);
    int is_a[64] = {0};
    for (size_t i = 0; i < n_docs / 2; i++) is_a[perm[i]] = 1;
    for (size_t w = 0; w <= s.n_win; w++) s.off[w] = (int64_t)(w * C_LEN);
    for (size_t w = 0; w < s.n_win; w++) {
        s.source[w] = (int64_t)(w / C_WIN);
        s.label[w] = is_a[w / C_WIN] ? "A" : "B";
    }
    for (size_t row = 0; row < s.n; row++) {
        size_t doc = row / (C_WIN * C_LEN);
        for (size_t j = 0; j < C_D; j++) {
            float v = sae_rng_uniform(&r) < 0.2f ? sae_rng_uniform(&r) : -1.0f;
            if (planted && j == 0 && is_a[doc] && row % 7 == 0) v = 2.0f + sae_rng_uniform(&r);
            s.x[row * C_D + j] = v;
        }
    }
    return s;
}

/* pooled value of feature j over document doc (max or mean of max(0, x)) */
static double pooled(const file_spec *s, size_t doc, size_t j, int mean) {
    double acc = 0;
    size_t rows = C_WIN * C_LEN;
    for (size_t i = 0; i < rows; i++) {
        double v = fmax(0.0, s->x[(doc * rows + i) * s->d + j]);
        acc = mean ? acc + v : fmax(acc, v);
    }
    return mean ? acc / (double)rows : acc;
}

static double brute_doc_auroc(const double *v, const int *a, size_t n) {
    double pos[64], neg[64];
    size_t np = 0, nn = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i]) pos[np++] = v[i];
        else neg[nn++] = v[i];
    }
    return auroc_pairs(pos, np, neg, nn);
}

static int cmp_d(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static void test_null(void **state) {
    (void)state;
    enum { SEEDS = 8, PERMS = 999, SIM = 3000 };
    size_t discoveries = 0, seeds_with_any = 0, tested = 0, before = 0;
    double worst_med = 0, worst_p95 = 0;
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        file_spec s = contrast_spec(seed, 0, C_DOCS);
        const char *p = tu_path(dir, "null.h5");
        write_spec(p, &s);
        data_actfile *f;
        sae_error err = {0};
        assert_int_equal(data_actfile_open(&f, p, &err), 0);
        sae_model m;
        identity_sae(&m, C_D);
        int mean = seed % 2 == 0; /* both pools */
        feat_search_opts o = {.kind = FEAT_SEARCH_CONTRAST, .label_a = "A", .label_b = "B",
                              .pool = mean ? FEAT_POOL_MEAN : FEAT_POOL_MAX, .permutations = PERMS, .seed = seed};
        feat_search_result r;
        run(&r, &m, f, &o);
        assert_int_equal(r.n_pos, C_DOCS / 2);
        assert_int_equal(r.n_neg, C_DOCS / 2);
        /* direct: pooled values, document AUROC of every feature */
        double v[C_D][C_DOCS];
        int a[C_DOCS];
        for (size_t d = 0; d < C_DOCS; d++) a[d] = strcmp(s.label[d * C_WIN], "A") == 0;
        for (size_t j = 0; j < C_D; j++)
            for (size_t d = 0; d < C_DOCS; d++) v[j][d] = pooled(&s, d, j, mean);
        double p_sorted[C_D], q_brute[C_D];
        for (size_t k = 0; k < r.n; k++) {
            const feat_search_row *w = &r.rows[k];
            double au = brute_doc_auroc(v[w->feature], a, C_DOCS);
            if (fabs(w->auroc - au) > 1e-12) fail_msg("feature %zu: doc auroc %.6f, pairs %.6f", w->feature, w->auroc, au);
            double ma = 0, mb = 0;
            size_t best = 0;
            for (size_t d = 0; d < C_DOCS; d++) {
                if (a[d]) ma += v[w->feature][d] / (C_DOCS / 2);
                else mb += v[w->feature][d] / (C_DOCS / 2);
                if (v[w->feature][d] > v[w->feature][best]) best = d;
            }
            assert_true(fabs(w->mean_pos - ma) < 1e-6 && fabs(w->mean_neg - mb) < 1e-6);
            if (v[w->feature][best] > 0) assert_int_equal(w->top_doc, best);
            assert_true(w->top_window / C_WIN == w->top_doc);
            /* p is (1 + count) / (1 + N) */
            double c = w->p_value * (PERMS + 1) - 1;
            assert_true(fabs(c - round(c)) < 1e-6 && c >= -1e-9 && c <= PERMS + 1e-9);
            p_sorted[k] = w->p_value;
            if (k > 0) assert_true(r.rows[k - 1].auroc >= w->auroc); /* sorted by auroc */
        }
        /* BH by its definition */
        for (size_t k = 0; k < r.n; k++) {
            double best = 1.0;
            for (size_t t = 0; t < r.n; t++) {
                if (p_sorted[t] < p_sorted[k]) continue;
                size_t le = 0;
                for (size_t u = 0; u < r.n; u++) le += p_sorted[u] <= p_sorted[t];
                best = fmin(best, p_sorted[t] * (double)r.n / (double)le);
            }
            q_brute[k] = best;
            assert_true(fabs(r.rows[k].q_value - best) < 1e-12);
            discoveries += r.rows[k].q_value < 0.05;
        }
        (void)q_brute;
        tested += r.n;
        /* the best-of-M null, simulated directly: random halves, brute-force AUROC */
        sae_rng rng;
        sae_rng_seed(&rng, 1000 + seed, 7);
        double *sim = malloc(SIM * sizeof *sim);
        for (size_t t = 0; t < SIM; t++) {
            uint32_t perm[C_DOCS];
            int b[C_DOCS] = {0};
            for (uint32_t i = 0; i < C_DOCS; i++) perm[i] = i;
            sae_rng_shuffle_u32(&rng, perm, C_DOCS);
            for (size_t i = 0; i < C_DOCS / 2; i++) b[perm[i]] = 1;
            double mx = -1;
            for (size_t k = 0; k < r.n; k++) mx = fmax(mx, brute_doc_auroc(v[r.rows[k].feature], b, C_DOCS));
            sim[t] = mx;
        }
        qsort(sim, SIM, sizeof *sim, cmp_d);
        double med = sim[SIM / 2], p95 = sim[(size_t)(0.95 * SIM)];
        print_message("seed %llu (%s): null best median %.4f (direct %.4f), p95 %.4f (direct %.4f); observed best %.4f, "
                      "fwer p %.3f; q < 0.05: %zu of %zu\n", (unsigned long long)seed, mean ? "mean" : "max", r.null_median,
                      med, r.null_p95, p95, r.top_score, r.fwer_p, discoveries - before, r.n);
        worst_med = fmax(worst_med, fabs(r.null_median - med));
        worst_p95 = fmax(worst_p95, fabs(r.null_p95 - p95));
        seeds_with_any += discoveries > before;
        before = discoveries;
        free(sim);
        feat_search_result_free(&r);
        sae_model_free(&m);
        data_actfile_close(f);
        free_spec(&s);
    }
    print_message("null: %zu of %zu feature tests with q < 0.05 (%zu of %d seeds with any); worst |median - direct| %.4f, |p95 - direct| %.4f\n",
                  discoveries, tested, seeds_with_any, SEEDS, worst_med, worst_p95);
    /* Under the global null BH keeps P(any q < 0.05) <= 0.05, so the share of
     * features with q < 0.05 is at most 0.05 in expectation; over 8 seeds x 40
     * features a share above 0.05 would need whole seeds full of false
     * discoveries. */
    assert_true((double)discoveries / (double)tested <= 0.05);
    assert_true(seeds_with_any <= 2); /* binomial(8, 0.05): P(>= 3) = 0.006 */
    /* Monte Carlo: 999 and 3000 draws give quantile standard errors of about
     * 0.002-0.004 on this scale, plus one AUROC step (1/144 = 0.007) of
     * discreteness: 0.02 is four such errors. */
    assert_true(worst_med <= 0.02);
    assert_true(worst_p95 <= 0.03);
}

/* A planted document-level signal is found with the smallest p, q < 0.05 and
 * a small family-wise p; too few documents are reported as such. */
static void test_planted_contrast(void **state) {
    (void)state;
    file_spec s = contrast_spec(3, 1, C_DOCS);
    const char *p = tu_path(dir, "contrast.h5");
    write_spec(p, &s);
    data_actfile *f;
    sae_error err = {0};
    assert_int_equal(data_actfile_open(&f, p, &err), 0);
    sae_model m;
    identity_sae(&m, C_D);
    feat_search_opts o = {.kind = FEAT_SEARCH_CONTRAST, .label_a = "A", .label_b = "B", .pool = FEAT_POOL_MAX,
                          .permutations = 2000, .seed = 9, .sort = FEAT_SORT_Q};
    feat_search_result r;
    run(&r, &m, f, &o);
    assert_int_equal(r.rows[0].feature, 0);
    assert_true(fabs(r.rows[0].auroc - 1.0) < 1e-12);
    assert_true(fabs(r.rows[0].p_value - 1.0 / 2001) < 1e-12);
    assert_true(r.rows[0].q_value < 0.05);
    assert_true(r.fwer_p < 0.01);
    assert_true(fabs(r.log10_labellings - log10(2704156.0)) < 1e-9); /* C(24, 12) */
    feat_search_result_free(&r);
    /* permutations with every other search, or without pooling, are refused */
    o.pool = FEAT_POOL_NONE;
    o.batch = 512;
    assert_int_equal(feat_search(&r, &m, 1.0, f, &o, &err), SAE_ERR_ARG);
    assert_non_null(strstr(err.msg, "not exchangeable"));
    data_actfile_close(f);
    free_spec(&s);
    /* 3 + 3 documents: 20 labellings cannot reach q < 0.05 among 40 features */
    s = contrast_spec(4, 1, 6);
    write_spec(p, &s);
    assert_int_equal(data_actfile_open(&f, p, &err), 0);
    o = (feat_search_opts){.kind = FEAT_SEARCH_CONTRAST, .label_a = "A", .label_b = "B", .pool = FEAT_POOL_MAX,
                           .permutations = 500, .seed = 1};
    run(&r, &m, f, &o);
    assert_true(fabs(r.log10_labellings - log10(20.0)) < 1e-9);
    assert_true(r.log10_labellings < log10(1.0 / r.p_needed));
    for (size_t k = 0; k < r.n; k++) assert_true(r.rows[k].q_value >= 0.05 || r.rows[k].p_value < 1.0 / 20);
    feat_search_result_free(&r);
    sae_model_free(&m);
    data_actfile_close(f);
    free_spec(&s);
}

/* --- predictions ------------------------------------------------------------------------ */
static void put_dataset(hid_t g, const char *name, hid_t type, const void *data, hsize_t n, hsize_t k) {
    hsize_t dims[2] = {n, k};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t ds = H5Dcreate2(g, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(ds >= 0);
    assert_true(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(ds), H5Sclose(sp);
}

static void test_predicted(void **state) {
    (void)state;
    enum { N = 3000, D = 5, V = 12, K = 4 };
    file_spec s = {.n = N, .d = D, .n_win = 30, .V = V};
    s.x = calloc(N * D, sizeof(float));
    s.tok = calloc(N, sizeof(int32_t));
    s.off = calloc(31, sizeof(int64_t));
    s.label = calloc(30, sizeof(char *));
    s.vocab = make_vocab(V);
    snprintf(s.vocab[3], 16, "ing"), snprintf(s.vocab[7], 16, "sing");
    int32_t *ids = malloc(N * K * sizeof *ids);
    float *lp = malloc(N * K * sizeof *lp);
    sae_rng r;
    sae_rng_seed(&r, 21, 0);
    for (size_t w = 0; w <= 30; w++) s.off[w] = (int64_t)(w * 100);
    for (size_t w = 0; w < 30; w++) s.label[w] = w % 3 ? "x" : "y";
    for (size_t i = 0; i < N; i++) {
        /* K distinct ids, decreasing probabilities summing below 1 */
        int used[V] = {0};
        double rest = 0.95, prev = 1;
        for (size_t k = 0; k < K; k++) {
            int32_t id;
            do id = (int32_t)sae_rng_below(&r, V); while (used[id]);
            used[id] = 1;
            double pr = fmin(prev, rest * (0.3 + 0.6 * sae_rng_uniform(&r)));
            rest -= pr, prev = pr;
            ids[i * K + k] = id, lp[i * K + k] = (float)log(pr);
        }
        s.tok[i] = (int32_t)sae_rng_below(&r, V);
        double pm = 0;
        for (size_t k = 0; k < K; k++)
            if (ids[i * K + k] == 3 || ids[i * K + k] == 7) pm += exp(lp[i * K + k]);
        s.x[i * D + 0] = (float)(2 * pm - 0.2 + 0.3 * sae_rng_normal(&r)); /* tracks P(match) */
        for (size_t j = 1; j < D; j++) s.x[i * D + j] = sae_rng_normal(&r);
    }
    const char *p = tu_path(dir, "pred.h5");
    write_spec(p, &s);
    hid_t h = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t g = H5Gcreate2(h, "predictions", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    put_dataset(g, "token", H5T_NATIVE_INT32, ids, N, K);
    put_dataset(g, "logprob", H5T_NATIVE_FLOAT, lp, N, K);
    H5Gclose(g), H5Fclose(h);
    data_actfile *f;
    sae_error err = {0};
    assert_int_equal(data_actfile_open(&f, p, &err), 0);
    if (f->n_pred == 0) { /* data_actfile_read_predictions is not in yet */
        data_actfile_close(f);
        free_spec(&s), free(ids), free(lp);
        skip();
    }
    sae_model m;
    identity_sae(&m, D);
    feat_where wy;
    assert_int_equal(feat_where_parse(&wy, "label!=y", &err), 0);
    feat_search_opts o = {.kind = FEAT_SEARCH_PREDICTED, .regex = "ing$", .where = &wy, .n_where = 1};
    feat_search_result res;
    run(&res, &m, f, &o);
    assert_int_equal(res.rows[0].feature, 0); /* sorted by correlation */
    /* direct, in double, over rows of windows not labelled y */
    for (size_t k = 0; k < res.n; k++) {
        const feat_search_row *w = &res.rows[k];
        size_t j = w->feature;
        double sa = 0, sp = 0, saa = 0, spp = 0, sap = 0, n = 0;
        uint64_t np = 0, fp = 0, fn = 0;
        for (size_t i = 0; i < N; i++) {
            if ((i / 100) % 3 == 0) continue;
            double pm = 0;
            for (size_t t = 0; t < K; t++)
                if (ids[i * K + t] == 3 || ids[i * K + t] == 7) pm += exp((double)lp[i * K + t]);
            pm = (float)pm; /* stored as float32 */
            double a = fmax(0.0, s.x[i * D + j]);
            int pos = ids[i * K] == 3 || ids[i * K] == 7;
            np += pos, fp += pos && a > 0, fn += !pos && a > 0;
            sa += a, sp += pm, saa += a * a, spp += pm * pm, sap += a * pm, n++;
        }
        double cov = sap / n - (sa / n) * (sp / n);
        double corr = cov / sqrt((saa / n - (sa / n) * (sa / n)) * (spp / n - (sp / n) * (sp / n)));
        if (fabs(w->corr - corr) > 1e-6) fail_msg("feature %zu: corr %.8f, direct %.8f", j, w->corr, corr);
        assert_int_equal(w->n_pos, np);
        assert_int_equal(w->fires_pos, fp);
        assert_int_equal(w->fires_neg, fn);
        assert_true(fabs(w->lift - ((double)fp / (double)(fp + fn)) / ((double)np / n)) < 1e-9);
    }
    print_message("predicted: feature 0 corr %.3f, next best %.3f\n", res.rows[0].corr, res.rows[1].corr);
    assert_int_equal(res.n_matching_tokens, 2);
    feat_search_result_free(&res);
    sae_model_free(&m);
    data_actfile_close(f);
    free_spec(&s), free(ids), free(lp);
}

int main(void) {
    sae_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernels),
        cmocka_unit_test(test_planted),
        cmocka_unit_test(test_where),
        cmocka_unit_test(test_planted_contrast),
        cmocka_unit_test(test_null),
        cmocka_unit_test(test_predicted),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
