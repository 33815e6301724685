/* tests/test_predict.c: capture --predictions, /predictions validation, the
 * JSON Lines key rules with /doc_meta, and the attribution search, against
 * independent references:
 *
 *  - the stored top-K ids and log-probabilities against tu_ref (testutil.c),
 *    the token-by-token forward with double accumulation, window by window,
 *    its log-softmax and ordering computed here in double: on the tiny random
 *    model (always) and on stories260K and jaen-6m (when ../shared is there);
 *  - /predictions files written with the raw HDF5 API, valid and broken;
 *  - attribution against a brute-force float64 sum over rows and features,
 *    from the model's own classifier and final norm, the SAE's W_dec and its
 *    codes (encoded one row at a time), for a match set chosen by strcmp;
 *  - corpus records: misspelt keys refused with the right suggestion, other
 *    keys carried through to /doc_meta. */
#include <hdf5.h>
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
#include "data/actfile.h"
#include "data/capture.h"
#include "data/h5.h"
#include "data/llama.h"
#include "data/tokenizer.h"
#include "features/feat_internal.h"
#include "sae/sae.h"
#include "tests/testutil.h"

static char shared[1024];
static const char *tmp;

static int have_shared(void) { return tu_have_shared_models(shared); }

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(s, f);
    fclose(f);
}

/* --- the reference top-K ------------------------------------------------------ */
static const double *sort_key;
static int by_logit_desc(const void *a, const void *b) {
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    if (sort_key[i] != sort_key[j]) return sort_key[i] > sort_key[j] ? -1 : 1;
    return i < j ? -1 : 1;
}

typedef struct {
    double worst_lp;    /* max |stored - reference| log-probability */
    double tol;
    size_t near_ties;   /* id differences explained by a near tie */
    size_t rows;
} pred_check;

/* Checks one row's stored predictions (ids, lp: K) against reference logits. */
static void check_row(const float *ref_logits, size_t V, size_t K, const int32_t *ids,
                      const float *lp, pred_check *pc) {
    double *l = malloc(V * sizeof *l), mx = -INFINITY, sum = 0;
    int32_t *order = malloc(V * sizeof *order);
    for (size_t v = 0; v < V; v++) l[v] = ref_logits[v], mx = fmax(mx, l[v]), order[v] = (int32_t)v;
    for (size_t v = 0; v < V; v++) sum += exp(l[v] - mx);
    double lse = mx + log(sum);
    sort_key = l;
    qsort(order, V, sizeof *order, by_logit_desc);
    for (size_t k = 0; k < K; k++) {
        assert_true(ids[k] >= 0 && (size_t)ids[k] < V);
        for (size_t q = 0; q < k; q++) assert_int_not_equal(ids[q], ids[k]);
        double want = l[order[k]] - lse;           /* the k-th largest log-probability */
        double of_id = l[ids[k]] - lse;            /* the reference's value for the stored id */
        double e = fmax(fabs(lp[k] - want), fabs(lp[k] - of_id));
        pc->worst_lp = fmax(pc->worst_lp, e);
        if (e > pc->tol)
            fail_msg("row %zu entry %zu: stored id %d logprob %.7f; reference id %d %.7f, id %d %.7f",
                     pc->rows, k, ids[k], (double)lp[k], order[k], want, ids[k], of_id);
        if (ids[k] != order[k]) pc->near_ties++; /* allowed only because e <= tol above */
    }
    pc->rows++;
    free(l), free(order);
}

/* Captures corpus with --predictions K and checks every stored row against
 * the reference forward of its window. Returns the measured worst error. */
static double check_capture(const data_llama *m, const char *model_path, const data_tokenizer *t,
                            const char *corpus, size_t K, size_t seq_len, const char *out) {
    sae_error err = {0};
    data_capture_params p = {.corpus_path = corpus, .out_path = out, .layer = 0,
                             .site = DATA_SITE_RESID_POST, .seq_len = seq_len, .batch_rows = 100,
                             .predictions = K};
    if (data_capture_run(m, model_path, t, "tok", &p, NULL, NULL, &err) < 0)
        fail_msg("capture: %s: %s", err.subject, err.msg);
    data_actfile *f;
    if (data_actfile_open(&f, out, &err) < 0) fail_msg("open: %s", err.msg);
    assert_int_equal(f->n_pred, K);
    size_t N = f->n, V = (size_t)m->c.vocab_size, W = f->n_docs;
    int32_t *tok = malloc(N * 4), *ids = malloc(N * K * 4);
    float *lp = malloc(N * K * 4);
    int64_t *off = malloc((W + 1) * 8);
    assert_int_equal(data_actfile_read_tokens(f, 0, N, tok, &err), 0);
    assert_int_equal(data_actfile_read_doc_offsets(f, off, &err), 0);
    /* in two pieces: the reader's hyperslab offsets are exercised */
    assert_int_equal(data_actfile_read_predictions(f, 0, N / 2, ids, lp, &err), 0);
    assert_int_equal(data_actfile_read_predictions(f, N / 2, N - N / 2, ids + N / 2 * K,
                                                   lp + N / 2 * K, &err), 0);
    /* test_llama measures the batched forward's logits within 2.2e-6 of the
     * reference, relative to the largest |logit|, and fails above 5e-5; a
     * log-probability l - logsumexp(l) moves by at most twice a logit's
     * error, so 1e-4 x max|logit| is the bound, plus float32 storage. */
    pred_check pc = {0};
    int32_t *seq = malloc(seq_len * 4);
    double max_logit = 0;
    for (size_t w = 0; w < W; w++) {
        size_t r0 = (size_t)off[w], T = (size_t)(off[w + 1] - off[w]) + 1;
        seq[0] = DATA_TOKEN_BOS;
        memcpy(seq + 1, tok + r0, (T - 1) * 4);
        tu_ref r;
        assert_int_equal(tu_ref_init(&r, m, T), 0);
        tu_ref_run(&r, seq, T);
        for (size_t i = 0; i < T * V; i++) max_logit = fmax(max_logit, fabs(r.logits[i]));
        pc.tol = 1e-4 * fmax(max_logit, 1.0) + 1e-6;
        for (size_t i = 1; i < T; i++) /* row r0 + i - 1 is position i of the window */
            check_row(r.logits + i * V, V, K, ids + (r0 + i - 1) * K, lp + (r0 + i - 1) * K, &pc);
        tu_ref_free(&r);
    }
    print_message("%s K=%zu: %zu rows, worst logprob error %.2e (tolerance %.2e, max |logit| %.1f), "
                  "%zu ids swapped in near ties\n", model_path, K, pc.rows, pc.worst_lp, pc.tol,
                  max_logit, pc.near_ties);
    assert_int_equal(pc.rows, N);
    if (K == V) /* every token: the probabilities sum to 1 */
        for (size_t r = 0; r < N; r++) {
            double s = 0;
            for (size_t k = 0; k < K; k++) s += exp((double)lp[r * K + k]);
            if (fabs(s - 1) > 1e-4) fail_msg("row %zu: probabilities sum to %.7f", r, s);
        }
    free(seq), free(tok), free(ids), free(lp), free(off);
    data_actfile_close(f);
    return pc.worst_lp;
}

static void test_tiny_model_predictions(void **state) {
    (void)state;
    assert_int_equal(tu_write_tiny_llama(tmp), 0);
    data_llama *m;
    data_tokenizer *t;
    sae_error err = {0};
    char mp[1200], corpus[1200];
    snprintf(mp, sizeof mp, "%s", tu_path(tmp, "tiny.bin"));
    snprintf(corpus, sizeof corpus, "%s", tu_path(tmp, "good.jsonl"));
    assert_int_equal(data_llama_load(&m, mp, &err), 0);
    assert_int_equal(data_tokenizer_load(&t, tu_path(tmp, "tiny_tok.bin"), 300, &err), 0);
    check_capture(m, mp, t, corpus, 7, 16, tu_path(tmp, "tiny_pred.h5"));
    check_capture(m, mp, t, corpus, 300, 32, tu_path(tmp, "tiny_pred_all.h5")); /* K = V */
    /* K beyond the vocabulary: a usage error before anything is written */
    data_capture_params p = {.corpus_path = corpus, .out_path = tu_path(tmp, "no.h5"), .layer = 0,
                             .batch_rows = 64, .predictions = 301};
    assert_int_equal(data_capture_run(m, mp, t, "tok", &p, NULL, NULL, &err), SAE_ERR_ARG);
    if (!strstr(err.msg, "vocabulary")) fail_msg("'%s'", err.msg);
    data_tokenizer_free(t);
    data_llama_free(m);
}

/* --- /predictions written with the raw HDF5 API ------------------------------- */
static void add_predictions(const char *path, size_t rows, size_t K, const int32_t *ids,
                            const float *lp, int64_t k_attr, int with_logprob) {
    data_h5_lock();
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t g = H5Gcreate2(f, "predictions", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (k_attr) data_h5_set_attr_i64(g, "k", k_attr);
    hsize_t dims[2] = {rows, K};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t ds = H5Dcreate2(g, "token", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids);
    H5Dclose(ds);
    if (with_logprob) {
        ds = H5Dcreate2(g, "logprob", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, lp);
        H5Dclose(ds);
    }
    H5Sclose(sp), H5Gclose(g), H5Fclose(f);
    data_h5_unlock();
}

typedef enum { GOOD, UNSORTED, POSITIVE, BAD_ID, SHORT, NO_LOGPROB, K_TOO_BIG, MASS, K_ATTR, NAN_LP } pred_case;

static void test_predictions_validated(void **state) {
    (void)state;
    static const struct { pred_case c; const char *phrase; } cases[] = {
        {UNSORTED, "not sorted"}, {POSITIVE, "at most 0"}, {BAD_ID, "not a token id"},
        {SHORT, "both must be N x K"}, {NO_LOGPROB, "has token but not logprob"},
        {K_TOO_BIG, "K must be in 1..10"}, {MASS, "sum to"}, {K_ATTR, "attribute k=4"},
        {NAN_LP, "must be finite"}, {GOOD, NULL}};
    const size_t N = 20, V = 10;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        pred_case c = cases[ci].c;
        size_t K = c == K_TOO_BIG ? 11 : 3, rows = c == SHORT ? N - 1 : N;
        const char *path = tu_path(tmp, "pred_case.h5");
        assert_int_equal(tu_write_acts(path, N, 4, V, 5, 0, 0, NULL, 0), 0);
        int32_t *ids = calloc(rows * K, 4);
        float *lp = calloc(rows * K, 4);
        for (size_t r = 0; r < rows; r++)
            for (size_t k = 0; k < K; k++) {
                ids[r * K + k] = (int32_t)((r + k) % (K > V ? K : V));
                lp[r * K + k] = -0.5f - (float)k - 0.01f * (float)r; /* e^-0.5 + e^-1.5 + ... < 1 */
            }
        if (c == UNSORTED) lp[7 * K + 2] = -0.6f;
        if (c == POSITIVE) lp[3 * K] = 0.01f;
        if (c == BAD_ID) ids[5 * K + 1] = 10;
        if (c == MASS) lp[2 * K] = -0.01f, lp[2 * K + 1] = -0.02f, lp[2 * K + 2] = -0.03f;
        if (c == NAN_LP) lp[9 * K + 2] = NAN;
        add_predictions(path, rows, K, ids, lp, c == K_ATTR ? 4 : (int64_t)K, c != NO_LOGPROB);
        data_actfile *f = NULL;
        sae_error err = {0};
        int rc = data_actfile_open(&f, path, &err);
        if (c == GOOD) {
            assert_int_equal(rc, 0);
            assert_int_equal(f->n_pred, K);
            int32_t got_ids[6];
            float got_lp[6];
            assert_int_equal(data_actfile_read_predictions(f, 11, 2, got_ids, got_lp, &err), 0);
            assert_memory_equal(got_ids, ids + 11 * K, sizeof got_ids);
            assert_memory_equal(got_lp, lp + 11 * K, sizeof got_lp);
            data_actfile_close(f);
        } else if (c == UNSORTED || c == POSITIVE || c == BAD_ID || c == MASS || c == NAN_LP) {
            /* a damaged row: the shapes open, and reading that row is the error */
            assert_int_equal(rc, 0);
            int32_t *got_ids = calloc(N * K, 4);
            float *got_lp = calloc(N * K, 4);
            if (data_actfile_read_predictions(f, 0, N, got_ids, got_lp, &err) == 0) fail_msg("case %zu read", ci);
            if (!strstr(err.msg, cases[ci].phrase)) fail_msg("case %zu: '%s' lacks '%s'", ci, err.msg, cases[ci].phrase);
            free(got_ids), free(got_lp);
            data_actfile_close(f);
        } else {
            if (rc == 0) fail_msg("case %zu opened", ci);
            if (!strstr(err.msg, cases[ci].phrase)) fail_msg("case %zu: '%s' lacks '%s'", ci, err.msg, cases[ci].phrase);
        }
        free(ids), free(lp);
    }
    /* without /predictions: n_pred 0 and the reader says what is missing */
    const char *path = tu_path(tmp, "no_pred.h5");
    assert_int_equal(tu_write_acts(path, N, 4, V, 5, 0, 0, NULL, 0), 0);
    data_actfile *f;
    sae_error err = {0};
    assert_int_equal(data_actfile_open(&f, path, &err), 0);
    assert_int_equal(f->n_pred, 0);
    int32_t id;
    float l;
    assert_int_equal(data_actfile_read_predictions(f, 0, 1, &id, &l, &err), SAE_ERR_UNSUPPORTED);
    assert_int_equal(f->has_doc_meta, 0);
    data_actfile_close(f);
    /* /doc_meta whose count is not the windows' */
    data_h5_lock();
    hid_t h = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    const char *meta[3] = {"{}", "", "{\"id\":1}"};
    data_h5_write_strings(h, "doc_meta", meta, 3, "", NULL);
    H5Fclose(h);
    data_h5_unlock();
    err = (sae_error){0}; /* the first error is kept: start afresh */
    assert_true(data_actfile_open(&f, path, &err) < 0);
    if (!strstr(err.msg, "/doc_meta has 3 entries but there are 4 windows")) fail_msg("'%s'", err.msg);
}

/* --- corpus keys -------------------------------------------------------------- */
typedef struct {
    char text[256], label[64], meta[512];
} one_doc;

/* The first record of a one-line corpus, its strings copied ("(none)" for
 * an absent label or metadata). A fresh error each time: the first is kept. */
static int read_one(const char *jsonl, one_doc *d, sae_error *err) {
    const char *p = tu_path(tmp, "keys.jsonl");
    write_text(p, jsonl);
    *err = (sae_error){0};
    data_corpus *c;
    data_corpus_doc doc;
    int rc = data_corpus_open(&c, p, err);
    if (rc < 0) return rc;
    rc = data_corpus_next(c, &doc, err);
    if (rc == 1) {
        snprintf(d->text, sizeof d->text, "%s", doc.text);
        snprintf(d->label, sizeof d->label, "%s", doc.label ? doc.label : "(none)");
        snprintf(d->meta, sizeof d->meta, "%s", doc.meta ? doc.meta : "(none)");
    }
    data_corpus_close(c);
    return rc;
}

static void test_corpus_keys(void **state) {
    (void)state;
    static const char *const misspelt[][2] = {
        {"{\"txt\": \"a\"}", "\"text\""},         {"{\"Text\": \"a\"}", "\"text\""},
        {"{\"text\": \"a\", \"lab\": \"x\"}", "\"label\""},
        {"{\"text\": \"a\", \"labl\": \"x\"}", "\"label\""},
        {"{\"text\": \"a\", \"labels\": [\"x\"]}", "\"label\""},
        {"{\"text\": \"a\", \"lable\": \"x\"}", "\"label\""},
        {"{\"tex\": \"a\"}", "\"text\""},         {"{\"text\": \"a\", \"LABEL\": \"x\"}", "\"label\""}};
    one_doc d;
    sae_error err;
    for (size_t i = 0; i < sizeof misspelt / sizeof misspelt[0]; i++) {
        assert_int_equal(read_one(misspelt[i][0], &d, &err), SAE_ERR_FORMAT);
        if (!strstr(err.msg, "line 1: key") || !strstr(err.msg, misspelt[i][1]))
            fail_msg("%s: '%s'", misspelt[i][0], err.msg);
    }
    assert_int_equal(read_one("{\"body\": \"a\", \"id\": 3}", &d, &err), SAE_ERR_FORMAT);
    if (!strstr(err.msg, "no \"text\" key") || !strstr(err.msg, "\"body\", \"id\"")) fail_msg("'%s'", err.msg);
    /* metadata keys, including ones a distance-2 rule would have refused */
    assert_int_equal(read_one("{\"id\": 7, \"text\": \"hello\", \"level\": 2, \"set\": \"train\", "
                              "\"src\": {\"a\": [1, 2.5]}, \"label\": \"en\"}",
                              &d, &err), 1);
    assert_string_equal(d.text, "hello");
    assert_string_equal(d.label, "en");
    assert_string_equal(d.meta, "{\"id\":7,\"level\":2,\"set\":\"train\",\"src\":{\"a\":[1,2.5]}}");
    assert_int_equal(read_one("{\"content\": \"via alias\"}", &d, &err), 1);
    assert_string_equal(d.text, "via alias");
    assert_string_equal(d.meta, "(none)");
    /* label of the wrong type */
    assert_int_equal(read_one("{\"text\": \"a\", \"label\": 3}", &d, &err), SAE_ERR_FORMAT);
    if (!strstr(err.msg, "\"label\" must be a string")) fail_msg("'%s'", err.msg);
}

/* Capture keeps the metadata per window, "" for documents without any. */
static void test_doc_meta_roundtrip(void **state) {
    (void)state;
    assert_int_equal(tu_write_tiny_llama(tmp), 0);
    data_llama *m;
    data_tokenizer *t;
    sae_error err = {0};
    char mp[1200], corpus[1200], out[1200];
    snprintf(mp, sizeof mp, "%s", tu_path(tmp, "tiny.bin"));
    snprintf(corpus, sizeof corpus, "%s", tu_path(tmp, "meta.jsonl"));
    snprintf(out, sizeof out, "%s", tu_path(tmp, "meta.h5"));
    write_text(corpus, "{\"text\": \"the cat sat on the mat and then the cat sat on the mat again\", \"id\": 1}\n"
                       "{\"text\": \"no metadata here\"}\n"
                       "{\"text\": \"a\", \"url\": \"http://x/\\u00e9\"}\n");
    assert_int_equal(data_llama_load(&m, mp, &err), 0);
    assert_int_equal(data_tokenizer_load(&t, tu_path(tmp, "tiny_tok.bin"), 300, &err), 0);
    data_capture_params p = {.corpus_path = corpus, .out_path = out, .layer = 1, .seq_len = 8,
                             .batch_rows = 16};
    if (data_capture_run(m, mp, t, "tok", &p, NULL, NULL, &err) < 0) fail_msg("%s", err.msg);
    data_actfile *f;
    assert_int_equal(data_actfile_open(&f, out, &err), 0);
    assert_true(f->has_doc_meta && f->has_doc_source);
    char **meta;
    int64_t *src = malloc(f->n_docs * 8);
    assert_int_equal(data_actfile_read_doc_meta(f, &meta, &err), 0);
    assert_int_equal(data_actfile_read_doc_source(f, src, &err), 0);
    static const char *const want[] = {"{\"id\":1}", "", "{\"url\":\"http://x/\xc3\xa9\"}"};
    assert_true(f->n_docs > 3); /* the first document spans several windows */
    for (size_t w = 0; w < f->n_docs; w++) assert_string_equal(meta[w], want[src[w]]);
    data_h5_free_strings(meta, f->n_docs);
    free(src);
    data_actfile_close(f);
    data_tokenizer_free(t);
    data_llama_free(m);
}

/* --- the shared models --------------------------------------------------------- */
static void load(const char *model, const char *tok, data_llama **m, data_tokenizer **t, char *mp) {
    char tp[1200];
    snprintf(mp, 1200, "%s/models/%s", shared, model);
    snprintf(tp, sizeof tp, "%s/models/%s", shared, tok);
    sae_error err = {0};
    if (data_llama_load(m, mp, &err) < 0) fail_msg("%s: %s", err.subject, err.msg);
    if (data_tokenizer_load(t, tp, (size_t)(*m)->c.vocab_size, &err) < 0) fail_msg("%s", err.msg);
}

static const char *mixed_corpus(void) {
    const char *p = tu_path(tmp, "mixed.jsonl");
    write_text(p, "{\"text\": \"Once upon a time, there was a little girl named Lily. She loved to play "
                  "outside in the park with her friends. One day, she saw a big red ball.\", \"label\": \"en\"}\n"
                  "{\"text\": \"吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。\", \"label\": \"ja\"}\n"
                  "{\"text\": \"The dog was happy. He ran to the tree and sat down.\", \"label\": \"en\", \"id\": 3}\n");
    static char keep[1200];
    snprintf(keep, sizeof keep, "%s", p);
    return keep;
}

static void test_stories_predictions(void **state) {
    (void)state;
    data_llama *m;
    data_tokenizer *t;
    char mp[1200];
    load("stories260K/stories260K.bin", "stories260K/tok512.bin", &m, &t, mp);
    check_capture(m, mp, t, mixed_corpus(), 5, 40, tu_path(tmp, "stories5.h5"));
    check_capture(m, mp, t, mixed_corpus(), 512, 64, tu_path(tmp, "stories_all.h5"));
    data_tokenizer_free(t);
    data_llama_free(m);
}

static void test_jaen_predictions(void **state) {
    (void)state;
    data_llama *m;
    data_tokenizer *t;
    char mp[1200];
    load("jaen-6m/model.bin", "jaen-6m/tokenizer.bin", &m, &t, mp);
    check_capture(m, mp, t, mixed_corpus(), 20, 48, tu_path(tmp, "jaen20.h5"));
    data_tokenizer_free(t);
    data_llama_free(m);
}

/* --- attribution ----------------------------------------------------------------- */
static int in_list(const char *s, const char *const *list) {
    for (; *list; list++)
        if (strcmp(s, *list) == 0) return 1;
    return 0;
}

/* The brute-force reference: mean over positions of a_j / s * sum_c
 * W_dec[j][c] g[c] U[t][c], everything in double, codes one row at a time. */
static uint64_t reference_attribution(sae_model *sae, double scale, data_actfile *f,
                                      const data_llama *lm, const char *const *set,
                                      const uint8_t *universe, double *want) {
    size_t D = f->d, M = sae->cfg.m, N = f->n, K = f->n_pred;
    sae_error err = {0};
    char **vocab;
    assert_int_equal(data_actfile_read_vocab(f, &vocab, &err), 0);
    int32_t *ids = malloc(N * K * 4);
    float *lp = malloc(N * K * 4), *x = malloc(D * 4);
    assert_int_equal(data_actfile_read_predictions(f, 0, N, ids, lp, &err), 0);
    memset(want, 0, M * sizeof *want);
    uint64_t n = 0;
    for (size_t r = 0; r < N; r++) {
        int32_t t = ids[r * K];
        if ((universe && !universe[r]) || !in_list(vocab[t], set)) continue;
        assert_int_equal(data_actfile_read_rows(f, r, 1, x, &err), 0);
        for (size_t c = 0; c < D; c++) x[c] = (float)(x[c] * scale);
        assert_int_equal(sae_model_encode(sae, x, 1, &err), 0);
        sae_codes codes;
        assert_int_equal(sae_model_codes(sae, &codes, &err), 0);
        for (size_t j = 0; j < M; j++)
            for (uint32_t q = codes.start[j]; q < codes.start[j + 1]; q++) {
                double dot = 0;
                for (size_t c = 0; c < D; c++)
                    dot += (double)sae->p.W_dec[j * D + c] * lm->rms_final[c] * lm->wcls[(size_t)t * D + c];
                want[j] += codes.val[q] / scale * dot;
            }
        n++;
    }
    for (size_t j = 0; j < M; j++) want[j] /= (double)n;
    data_h5_free_strings(vocab, f->vocab_size);
    free(ids), free(lp), free(x);
    return n;
}

static void compare_attribution(const feat_search_result *r, const double *want, size_t M, uint64_t n) {
    assert_int_equal(r->n, M);
    double scale = 0, worst = 0;
    for (size_t j = 0; j < M; j++) scale = fmax(scale, fabs(want[j]));
    assert_true(scale > 0);
    for (size_t j = 0; j < M; j++) {
        assert_int_equal(r->rows[j].feature, j);
        assert_int_equal(r->rows[j].n_attr, n);
        worst = fmax(worst, fabs(r->rows[j].attribution - want[j]));
    }
    /* u_t is a float32 sgemm over d = 64 products (relative error ~1e-6);
     * the sums are double. 1e-5 of the largest attribution is the bound. */
    print_message("attribution: %llu positions, worst error %.2e of max %.3g\n",
                  (unsigned long long)n, worst, scale);
    if (worst > 1e-5 * scale) fail_msg("attribution differs by %.3g (max %.3g)", worst, scale);
}

static void test_attribution(void **state) {
    (void)state;
    data_llama *lm;
    data_tokenizer *t;
    char mp[1200];
    load("stories260K/stories260K.bin", "stories260K/tok512.bin", &lm, &t, mp);
    const char *path = tu_path(tmp, "stories5.h5"); /* from test_stories_predictions */
    char keep[1200];
    snprintf(keep, sizeof keep, "%s", path);
    check_capture(lm, mp, t, mixed_corpus(), 5, 40, keep);
    data_actfile *f;
    sae_error err = {0};
    assert_int_equal(data_actfile_open(&f, keep, &err), 0);
    size_t D = f->d, M = 48;
    sae_config c = {.arch = SAE_ARCH_TOPK, .d = D, .m = M, .k = 4};
    sae_model sae;
    assert_int_equal(sae_model_init(&sae, &c, 256, 0, &err), 0);
    sae_model_init_params(&sae, 3);
    const double scale = 0.37; /* not 1: the convention divides by it */
    static const char *const set[] = {" the", " a", " was", " and", " to", ".", ",", NULL};
    feat_search_opts o = {.kind = FEAT_SEARCH_ATTRIBUTE, .regex = "^( the| a| was| and| to|\\.|,)$",
                          .batch = 64};
    double *want = malloc(M * sizeof *want);
    feat_search_result r;
    assert_int_equal(feat__search_attribute(&r, &sae, scale, f, &o, NULL, &err), 0);
    compare_attribution(&r, want, M, reference_attribution(&sae, scale, f, lm, set, NULL, want));
    /* "." and "," twice: as pieces and as byte pieces shown as the character */
    char **vocab;
    size_t n_in_set = 0;
    assert_int_equal(data_actfile_read_vocab(f, &vocab, &err), 0);
    for (size_t v = 0; v < f->vocab_size; v++) n_in_set += in_list(vocab[v], set);
    data_h5_free_strings(vocab, f->vocab_size);
    assert_int_equal(r.n_matching_tokens, n_in_set);
    feat_search_result_free(&r);
    /* a universe, and an exclusion */
    uint8_t *uni = malloc(f->n);
    for (size_t i = 0; i < f->n; i++) uni[i] = i % 3 != 0;
    static const char *const set2[] = {" the", " was", " and", " to", ".", ",", NULL};
    o.exclude_regex = "^ a$";
    assert_int_equal(feat__search_attribute(&r, &sae, scale, f, &o, uni, &err), 0);
    compare_attribution(&r, want, M, reference_attribution(&sae, scale, f, lm, set2, uni, want));
    feat_search_result_free(&r);
    /* errors */
    o.exclude_regex = NULL;
    o.regex = "^zzqx$";
    err = (sae_error){0};
    assert_int_equal(feat__search_attribute(&r, &sae, scale, f, &o, NULL, &err), SAE_ERR_ARG);
    if (!strstr(err.msg, "matches no token")) fail_msg("'%s'", err.msg);
    o.regex = "^<0x07>$"; /* the bell byte: never predicted in stories */
    err = (sae_error){0};
    assert_int_equal(feat__search_attribute(&r, &sae, scale, f, &o, NULL, &err), SAE_ERR_ARG);
    if (!strstr(err.msg, "at no position")) fail_msg("'%s'", err.msg);
    o.regex = "^ the$";
    o.exclude_regex = "the";
    err = (sae_error){0};
    assert_int_equal(feat__search_attribute(&r, &sae, scale, f, &o, NULL, &err), SAE_ERR_ARG);
    if (!strstr(err.msg, "takes out all")) fail_msg("'%s'", err.msg);
    data_actfile_close(f);
    /* a file without /predictions */
    const char *bare = tu_path(tmp, "attr_nopred.h5");
    assert_int_equal(tu_write_acts(bare, 40, D, 10, 8, 0, 0, NULL, 0), 0);
    assert_int_equal(data_actfile_open(&f, bare, &err), 0);
    o.exclude_regex = NULL;
    err = (sae_error){0};
    assert_int_equal(feat__search_attribute(&r, &sae, scale, f, &o, NULL, &err), SAE_ERR_ARG);
    if (!strstr(err.msg, "needs /predictions")) fail_msg("'%s'", err.msg);
    data_actfile_close(f);
    free(want), free(uni);
    sae_model_free(&sae);
    data_tokenizer_free(t);
    data_llama_free(lm);
}

int main(void) {
    snprintf(shared, sizeof shared, "%s", tu_shared_dir(SAE_SHARED_DIR));
    sae_set_threads(2);
    data_h5_init();
    tmp = tu_tmpdir();
    const struct CMUnitTest own[] = {
        cmocka_unit_test(test_tiny_model_predictions),
        cmocka_unit_test(test_predictions_validated),
        cmocka_unit_test(test_corpus_keys),
        cmocka_unit_test(test_doc_meta_roundtrip),
    };
    int rc = cmocka_run_group_tests_name("without_shared", own, NULL, NULL);
    if (rc == 0 && !have_shared()) {
        printf("SKIP: %s/models not found (set SAE_SHARED to the shared folder)\n", shared);
        rc = 77;
    } else if (rc == 0) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_stories_predictions),
            cmocka_unit_test(test_jaen_predictions),
            cmocka_unit_test(test_attribution),
        };
        rc = cmocka_run_group_tests_name("shared_models", tests, NULL, NULL);
    }
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0 && rc == 0) rc = 1;
    return rc;
}
