/* tests/test_docs.c: corpus documents and windows (data/docs.h).
 *  - every row maps to its window and corpus document and back, against a
 *    brute-force scan of the offsets and sources the test wrote: with
 *    /doc_source (a corpus document without windows included), without it
 *    (each window its own document), and without /doc_offsets (one window);
 *  - data_docs_resolve's answers and its range errors;
 *  - data_vocab_text against UTF-8 strings written out by hand: byte pieces
 *    joined into Japanese characters, invalid bytes dropped, truncation never
 *    cutting a character;
 *  - data_actfile_identity: the same rows give the same fingerprint at any
 *    path, a changed or added row another; the fingerprint equals FNV-1a
 *    computed here independently over the rows it is defined on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/mem.h"
#include "data/actfile.h"
#include "data/docs.h"
#include "tests/testutil.h"

static const char *dir;

/* n rows of width 4 (row r: r, r/2, -r, 1), tokens r % 7, the given windows
 * (n_win + 1 offsets, NULL: no /doc_offsets) and sources (NULL: none). */
static void write_file(const char *path, size_t n, const int64_t *off, size_t n_win, const int64_t *src,
                       const char *const *labels, float bump) {
    sae_error err = {0};
    data_actwriter *w;
    data_actwriter_opts o = {.d = 4, .model = "m", .hook = "resid_post", .layer = 1};
    assert_int_equal(data_actwriter_open(&w, path, &o, &err), SAE_OK);
    float *rows = calloc(n * 4, sizeof *rows);
    int32_t *tok = calloc(n, sizeof *tok);
    for (size_t r = 0; r < n; r++) {
        rows[r * 4] = (float)r + (r == 0 ? bump : 0), rows[r * 4 + 1] = (float)r / 2, rows[r * 4 + 2] = -(float)r;
        rows[r * 4 + 3] = 1, tok[r] = (int32_t)(r % 7);
    }
    assert_int_equal(data_actwriter_append(w, rows, tok, n, &err), SAE_OK);
    if (off) assert_int_equal(data_actwriter_set_docs(w, off, n_win, labels, &err), SAE_OK);
    if (src) assert_int_equal(data_actwriter_put_i64(w, "doc_source", src, n_win, &err), SAE_OK);
    const char *vocab[7] = {"a", "b", "c", "d", "e", "f", "g"};
    assert_int_equal(data_actwriter_set_vocab(w, vocab, 7, &err), SAE_OK);
    assert_int_equal(data_actwriter_finish(w, &err), SAE_OK);
    free(rows), free(tok);
}

static data_actfile *open_file(const char *path) {
    data_actfile *f;
    sae_error err = {0};
    assert_int_equal(data_actfile_open(&f, path, &err), SAE_OK);
    return f;
}

/* Everything data_docs says, against brute force over off (n_win + 1) and
 * src (the corpus document of each window). */
static void check_mapping(const data_docs *d, size_t n, const int64_t *off, size_t n_win, const int64_t *src,
                          size_t n_docs) {
    assert_int_equal(d->n_rows, n);
    assert_int_equal(d->n_windows, n_win);
    assert_int_equal(d->n_docs, n_docs);
    for (size_t r = 0; r < n; r++) {
        size_t w = 0;
        while (!(off[w] <= (int64_t)r && (int64_t)r < off[w + 1])) w++;
        assert_int_equal(data_docs_window_of_row(d, (int64_t)r), w);
        assert_int_equal(data_docs_doc_of_row(d, (int64_t)r), src[w]);
    }
    for (size_t doc = 0; doc < n_docs; doc++) {
        size_t k = 0; /* the k-th window of doc, by scanning every window */
        int64_t lo = -1, hi = -1;
        for (size_t w = 0; w < n_win; w++) {
            if ((size_t)src[w] != doc) continue;
            size_t got;
            sae_error err = {0};
            assert_int_equal(data_docs_resolve(d, doc, k, &got, &err), SAE_OK);
            assert_int_equal(got, w);
            if (lo < 0) lo = off[w];
            hi = off[w + 1], k++;
        }
        assert_int_equal(d->doc_win[doc + 1] - d->doc_win[doc], k);
        int64_t a, b;
        data_docs_doc_rows(d, doc, &a, &b);
        if (k) assert_int_equal(a, lo), assert_int_equal(b, hi);
        else assert_int_equal(a, b);
        sae_error err = {0};
        size_t got;
        assert_int_equal(data_docs_resolve(d, doc, k, &got, &err), SAE_ERR_ARG); /* one past the last */
        assert_string_equal(err.subject, k ? "--window" : "--doc");
        if (!k) assert_non_null(strstr(err.msg, "no tokens"));
    }
    sae_error err = {0};
    size_t got;
    assert_int_equal(data_docs_resolve(d, n_docs, 0, &got, &err), SAE_ERR_ARG);
    assert_string_equal(err.subject, "--doc");
    assert_non_null(strstr(err.msg, "out of range"));
}

static void test_with_source(void **state) {
    (void)state;
    /* five windows of four corpus documents; document 1 produced none */
    const int64_t off[] = {0, 3, 5, 9, 10, 14}, src[] = {0, 0, 2, 2, 3};
    const char *labels[] = {"ja", "ja", "en", "en", "ja"};
    const char *path = tu_path(dir, "src.h5");
    write_file(path, 14, off, 5, src, labels, 0);
    data_actfile *f = open_file(path);
    data_docs d;
    sae_error err = {0};
    assert_int_equal(data_docs_load(&d, f, &err), SAE_OK);
    assert_true(d.has_source);
    check_mapping(&d, 14, off, 5, src, 4);
    assert_string_equal(d.doc_label[0], "ja");
    assert_string_equal(d.doc_label[1], ""); /* no window, no label */
    assert_string_equal(d.doc_label[2], "en");
    assert_string_equal(d.doc_label[3], "ja");
    data_docs_free(&d);
    data_actfile_close(f);
}

static void test_without_source(void **state) {
    (void)state;
    const int64_t off[] = {0, 2, 7, 8}, own[] = {0, 1, 2};
    const char *path = tu_path(dir, "nosrc.h5");
    write_file(path, 8, off, 3, NULL, NULL, 0);
    data_actfile *f = open_file(path);
    data_docs d;
    sae_error err = {0};
    assert_int_equal(data_docs_load(&d, f, &err), SAE_OK);
    assert_false(d.has_source);
    assert_null(d.doc_label);
    check_mapping(&d, 8, off, 3, own, 3); /* every window its own document */
    data_docs_free(&d);
    data_actfile_close(f);
}

static void test_without_offsets(void **state) {
    (void)state;
    const int64_t off[] = {0, 6}, own[] = {0};
    const char *path = tu_path(dir, "nooff.h5");
    write_file(path, 6, NULL, 0, NULL, NULL, 0);
    data_actfile *f = open_file(path);
    data_docs d;
    sae_error err = {0};
    assert_int_equal(data_docs_load(&d, f, &err), SAE_OK);
    check_mapping(&d, 6, off, 1, own, 1); /* the whole file: one window of one document */
    data_docs_free(&d);
    data_actfile_close(f);
}

/* み = E3 81 BF, ん = E3 82 93 */
static const char *const VOCAB[] = {"<0xE3>", "<0x81>", "<0xBF>", "<0x82>", "<0x93>", "a", "\\n", "<0xFF>", " cat"};
#define V (sizeof VOCAB / sizeof VOCAB[0])

static const char *text_of(const int32_t *ids, size_t n, size_t cap, const char *nl) {
    static char buf[256];
    size_t len = data_vocab_text(buf, cap, VOCAB, V, ids, n, nl);
    assert_int_equal(len, strlen(buf));
    return buf;
}

static void test_vocab_text(void **state) {
    (void)state;
    const int32_t mi[] = {0, 1, 2}, mi_n[] = {0, 1, 2, 0, 3, 4}, cut_end[] = {5, 0, 1}, cut_start[] = {1, 2, 5};
    const int32_t nl[] = {5, 6, 5}, bad[] = {5, 7, 5}, outside[] = {5, 99, -1}, word[] = {8, 0, 1, 2};
    assert_string_equal(text_of(mi, 3, 256, NULL), "み");
    assert_string_equal(text_of(mi_n, 6, 256, NULL), "みん");
    assert_string_equal(text_of(cut_end, 3, 256, NULL), "a");   /* a character cut by the window's end */
    assert_string_equal(text_of(cut_start, 3, 256, NULL), "a"); /* and by its start */
    assert_string_equal(text_of(nl, 3, 256, "⏎"), "a⏎a");
    assert_string_equal(text_of(nl, 3, 256, NULL), "a\\na");
    assert_string_equal(text_of(nl, 3, 256, "\n"), "a\na");
    assert_string_equal(text_of(bad, 3, 256, NULL), "aa");       /* 0xFF is never UTF-8 */
    assert_string_equal(text_of(outside, 3, 256, NULL), "a<?><?>");
    assert_string_equal(text_of(word, 4, 256, NULL), " catみ");
    /* every capacity: a prefix of the full text, whole characters only */
    const char *full = " catみん";
    const int32_t both[] = {8, 0, 1, 2, 0, 3, 4};
    const size_t cuts[] = {0, 1, 2, 3, 4, 4, 4, 7, 7, 7, 10}; /* expected length for cap = 1 .. 11 */
    for (size_t cap = 1; cap <= 11; cap++) {
        const char *t = text_of(both, 7, cap, NULL);
        assert_int_equal(strlen(t), cuts[cap - 1]);
        assert_memory_equal(t, full, strlen(t));
    }
    char one[1] = {'x'};
    assert_int_equal(data_vocab_text(one, 0, VOCAB, V, mi, 3, NULL), 0); /* cap 0 writes nothing */
    assert_int_equal(one[0], 'x');
}

/* FNV-1a as the identity defines it, written out again: the row count and
 * width as two uint64, then DATA_IDENTITY_ROWS rows i * (n - 1) / 15. */
static uint64_t reference_fingerprint(size_t n, size_t d, float bump) {
    uint64_t h = 0xcbf29ce484222325ULL, dims[2] = {n, d};
    for (size_t b = 0; b < sizeof dims; b++) h = (h ^ ((unsigned char *)dims)[b]) * 0x100000001b3ULL;
    size_t k = n < DATA_IDENTITY_ROWS ? n : DATA_IDENTITY_ROWS;
    for (size_t i = 0; i < k; i++) {
        size_t r = k > 1 ? i * (n - 1) / (k - 1) : 0;
        float row[4] = {(float)r + (r == 0 ? bump : 0), (float)r / 2, -(float)r, 1};
        for (size_t b = 0; b < sizeof row; b++) h = (h ^ ((unsigned char *)row)[b]) * 0x100000001b3ULL;
    }
    return h;
}

static data_identity identity_of(const char *path) {
    data_actfile *f = open_file(path);
    data_identity id;
    sae_error err = {0};
    assert_int_equal(data_actfile_identity(f, &id, &err), SAE_OK);
    data_actfile_close(f);
    return id;
}

/* data_docs_labels against a direct count: few labels, every label distinct,
 * and "" (documents without a label) */
static void check_labels(size_t D, size_t n_labels) {
    char (*names)[16] = malloc(D * sizeof *names);
    const char **lab = malloc(D * sizeof *lab);
    for (size_t i = 0; i < D; i++) {
        size_t l = (i * 7 + i / 3) % n_labels;
        if (l == 0) names[i][0] = 0;
        else snprintf(names[i], sizeof names[i], "l%zu", l);
        lab[i] = names[i];
    }
    data_docs d = {.n_docs = D, .doc_label = lab};
    data_label_count *lc;
    size_t n;
    sae_error err = {0};
    assert_int_equal(data_docs_labels(&d, &lc, &n, &err), 0);
    /* direct: walk the documents, a label is new when no earlier one has it */
    size_t k = 0, total = 0;
    for (size_t i = 0; i < D; i++) {
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) seen = strcmp(lab[j], lab[i]) == 0;
        if (seen) continue;
        size_t count = 0;
        for (size_t j = i; j < D; j++) count += strcmp(lab[j], lab[i]) == 0;
        assert_true(k < n);
        assert_string_equal(lc[k].label, lab[i]);
        assert_int_equal(lc[k].first_doc, i);
        assert_int_equal(lc[k].docs, count);
        total += count, k++;
    }
    assert_int_equal(k, n);
    assert_int_equal(total, D);
    sae_free(lc), free(lab), free(names);
}

static void test_labels(void **state) {
    (void)state;
    check_labels(1, 1);
    check_labels(500, 3);
    check_labels(2000, 2000); /* every label its own */
    data_docs none = {0};
    data_label_count *lc = (data_label_count *)1;
    size_t n = 7;
    sae_error err = {0};
    assert_int_equal(data_docs_labels(&none, &lc, &n, &err), 0);
    assert_null(lc);
    assert_int_equal(n, 0);
}

static void test_identity(void **state) {
    (void)state;
    const int64_t off[] = {0, 20, 40};
    const char *a = tu_path(dir, "id_a.h5");
    write_file(a, 40, off, 2, NULL, NULL, 0);
    char *pa = strdup(a);
    const char *b = tu_path(dir, "id_b.h5");
    write_file(b, 40, off, 2, NULL, NULL, 0); /* the same rows elsewhere */
    char *pb = strdup(b);
    data_identity ia = identity_of(pa), ib = identity_of(pb);
    assert_true(ia.has_fingerprint);
    assert_int_equal(ia.rows, 40), assert_int_equal(ia.d, 4);
    assert_int_equal(ia.fingerprint, reference_fingerprint(40, 4, 0));
    assert_true(data_identity_same(&ia, &ib));
    assert_string_not_equal(ia.path, ib.path);
    assert_true(ia.path[0] == '/'); /* absolute */
    assert_string_equal(ia.model, "m"), assert_string_equal(ia.hook, "resid_post"), assert_int_equal(ia.layer, 1);
    /* row 0 changed */
    write_file(pb, 40, off, 2, NULL, NULL, 0.5f);
    ib = identity_of(pb);
    assert_int_equal(ib.fingerprint, reference_fingerprint(40, 4, 0.5f));
    assert_false(data_identity_same(&ia, &ib));
    /* one more row */
    const int64_t off41[] = {0, 20, 41};
    write_file(pb, 41, off41, 2, NULL, NULL, 0);
    ib = identity_of(pb);
    assert_int_equal(ib.fingerprint, reference_fingerprint(41, 4, 0));
    assert_false(data_identity_same(&ia, &ib));
    /* an identity without a fingerprint (an older file) matches nothing */
    data_identity none = ia;
    none.has_fingerprint = 0;
    assert_false(data_identity_same(&ia, &none));
    free(pa), free(pb);
}

int main(void) {
    dir = tu_tmpdir();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_with_source),
        cmocka_unit_test(test_without_source),
        cmocka_unit_test(test_without_offsets),
        cmocka_unit_test(test_vocab_text),
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
