/* features/search.c: ranking features for a question (see feat.h). */
#include <locale.h>
#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "common/gemm.h"
#include "common/mem.h"
#include "data/h5.h"
#include "features/feat_internal.h"

#define NB (FEAT_SEARCH_BINS + 1) /* bin 0 holds zeros */

static int search_bin(float v) {
    if (!(v > 0.0f)) return 0;
    double b = (log10((double)v) - FEAT_HIST_LOG10_MIN) / (FEAT_HIST_LOG10_MAX - FEAT_HIST_LOG10_MIN) *
               FEAT_SEARCH_BINS;
    int i = b < 0 ? 0 : b >= FEAT_SEARCH_BINS ? FEAT_SEARCH_BINS - 1 : (int)b;
    return 1 + i;
}

double feat_auroc_from_bins(const uint64_t *pos, const uint64_t *neg, size_t bins) {
    double np = 0, nn = 0;
    for (size_t b = 0; b < bins; b++) np += (double)pos[b], nn += (double)neg[b];
    if (np == 0 || nn == 0) return 0.5;
    double below = 0, acc = 0; /* negatives in lower bins so far */
    for (size_t b = 0; b < bins; b++) {
        acc += (double)pos[b] * (below + 0.5 * (double)neg[b]);
        below += (double)neg[b];
    }
    return acc / (np * nn);
}

void feat_search_result_free(feat_search_result *r) {
    sae_free(r->rows);
    memset(r, 0, sizeof *r);
}

static int compile(regex_t *re, const char *pattern, const char *flag, sae_error *err) {
    /* UTF-8 aware matching: 'ん$' must see characters, not bytes */
    setlocale(LC_CTYPE, "C.UTF-8");
    int rc = regcomp(re, pattern, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char msg[256];
        regerror(rc, re, msg, sizeof msg);
        return sae_error_set(err, SAE_ERR_ARG, flag, "'%s' does not compile: %s", pattern, msg);
    }
    return SAE_OK;
}

/* --- logit search: no pass over the data ------------------------------------ */
typedef struct {
    const char *match; /* (V) 1 where the regex matched */
    size_t n_match;
    feat_search_row *rows;
} logit_ctx;

/* mean z-score, over matching tokens, of each feature's logit-lens logits */
static void logit_score(size_t j0, size_t nb, const float *lg, size_t V, void *user) {
    logit_ctx *x = user;
    for (size_t i = 0; i < nb; i++) {
        const float *l = lg + i * V;
        double s = 0, ss = 0, hit = 0;
        for (size_t v = 0; v < V; v++) s += l[v], ss += (double)l[v] * l[v];
        double mean = s / (double)V, sd = sqrt(fmax(ss / (double)V - mean * mean, 1e-30));
        for (size_t v = 0; v < V; v++)
            if (x->match[v]) hit += (l[v] - mean) / sd;
        x->rows[j0 + i] = (feat_search_row){.feature = j0 + i, .logit_score = hit / (double)x->n_match};
    }
}

static int logit_search(feat_search_result *out, const sae_model *m, data_actfile *f,
                        const feat_search_opts *o, sae_error *err) {
    if (!f->has_unembed || !f->vocab_size)
        return sae_error_set(err, SAE_ERR_FORMAT, f->path,
                             "--logit-regex needs /unembed and /vocab in the data (`sae capture` writes them)");
    regex_t re;
    int rc = compile(&re, o->regex, "--logit-regex", err);
    if (rc < 0) return rc;
    size_t M = m->cfg.m, V = f->vocab_size, n_match = 0;
    char **vocab = NULL;
    char *match = sae_calloc_n(V, 1);
    out->rows = sae_calloc_n(M, sizeof *out->rows);
    if (!match || !out->rows) rc = sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    if (rc == SAE_OK) rc = data_actfile_read_vocab(f, &vocab, err);
    for (size_t v = 0; rc == SAE_OK && v < V; v++) n_match += (match[v] = regexec(&re, vocab[v], 0, NULL, 0) == 0);
    if (rc == SAE_OK && n_match == 0)
        rc = sae_error_set(err, SAE_ERR_ARG, "--logit-regex", "'%s' matches no token of the vocabulary", o->regex);
    logit_ctx ctx = {match, n_match, out->rows};
    if (rc == SAE_OK) rc = feat__logit_lens_blocks(m, f, logit_score, &ctx, err);
    out->n = M;
    out->n_matching_tokens = n_match;
    regfree(&re);
    if (vocab) data_h5_free_strings(vocab, V);
    sae_free(match);
    return rc;
}

/* --- token and contrast searches: one pass ----------------------------------- */
typedef struct {
    uint64_t *fires[2];  /* (M) */
    double *sum[2], *sumsq[2];
    uint64_t *hist[2];   /* (M, NB) firing values; zeros filled in at the end */
} class_acc;

static void acc_add(class_acc *a, size_t j, int c, float v) {
    a->fires[c][j]++;
    a->sum[c][j] += v;
    a->sumsq[c][j] += (double)v * v;
    a->hist[c][j * NB + (size_t)search_bin(v)]++;
}

typedef struct {
    class_acc *a;
    const int8_t *cls; /* block row -> class */
} acc_block;

static void acc_code(size_t j, size_t b, float v, void *user) {
    acc_block *k = user;
    acc_add(k->a, j, k->cls[b], v);
}

/* Class of every row: 1 positive, 0 negative, -1 not counted. */
static int classify(int8_t *cls, data_actfile *f, const feat_search_opts *o, size_t *n_match,
                    sae_error *err) {
    size_t N = f->n;
    int64_t *off = NULL;
    if (f->n_docs) {
        off = sae_malloc((f->n_docs + 1) * sizeof *off);
        if (!off) return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
        int rc = data_actfile_read_doc_offsets(f, off, err);
        if (rc < 0) return sae_free(off), rc;
    }
    int rc = SAE_OK;
    if (o->kind == FEAT_SEARCH_CONTRAST) {
        char **labels = NULL;
        if (!f->has_doc_labels)
            return sae_free(off), sae_error_set(err, SAE_ERR_FORMAT, f->path, "--contrast needs /doc_labels in the data");
        rc = data_actfile_read_doc_labels(f, &labels, err);
        size_t na = 0, nb = 0;
        char seen[512] = "";
        for (size_t d = 0; rc == SAE_OK && d < f->n_docs; d++) {
            int c = strcmp(labels[d], o->label_a) == 0 ? 1 : strcmp(labels[d], o->label_b) == 0 ? 0 : -1;
            na += c == 1, nb += c == 0;
            for (int64_t r = off[d]; r < off[d + 1]; r++) cls[r] = (int8_t)c;
            if (!strstr(seen, labels[d]) && strlen(seen) + strlen(labels[d]) + 3 < sizeof seen)
                strcat(strcat(seen, seen[0] ? ", " : ""), labels[d]);
        }
        if (rc == SAE_OK && (!na || !nb))
            rc = sae_error_set(err, SAE_ERR_ARG, "--contrast", "no document is labelled '%s' (labels present: %s)",
                               !na ? o->label_a : o->label_b, seen);
        for (size_t d = 0; labels && d < f->n_docs; d++) sae_free(labels[d]);
        sae_free(labels);
        sae_free(off);
        return rc;
    }
    /* token search */
    if (!f->has_tokens || !f->vocab_size) {
        sae_free(off);
        return sae_error_set(err, SAE_ERR_FORMAT, f->path,
                             "--token-regex needs %s in the data (`sae capture` writes /tokens and /vocab)",
                             !f->has_tokens ? "/tokens" : "/vocab");
    }
    regex_t re;
    if ((rc = compile(&re, o->regex, "--token-regex", err)) < 0) return sae_free(off), rc;
    char **vocab = NULL;
    char *match = sae_calloc_n(f->vocab_size, 1);
    int32_t *tok = sae_malloc(N * sizeof *tok);
    if (!match || !tok) rc = sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    if (rc == SAE_OK) rc = data_actfile_read_vocab(f, &vocab, err);
    if (rc == SAE_OK) rc = data_actfile_read_tokens(f, 0, N, tok, err);
    *n_match = 0;
    for (size_t v = 0; rc == SAE_OK && v < f->vocab_size; v++)
        *n_match += (match[v] = regexec(&re, vocab[v], 0, NULL, 0) == 0);
    if (rc == SAE_OK && *n_match == 0)
        rc = sae_error_set(err, SAE_ERR_ARG, "--token-regex", "'%s' matches no token of the vocabulary", o->regex);
    size_t n_docs = f->n_docs ? f->n_docs : 1;
    for (size_t d = 0; rc == SAE_OK && d < n_docs; d++) {
        int64_t lo = off ? off[d] : 0, hi = off ? off[d + 1] : (int64_t)N;
        for (int64_t r = lo; r < hi; r++) {
            int64_t t = r + o->offset;
            cls[r] = t < lo || t >= hi ? -1 : (int8_t)match[tok[t]];
        }
    }
    regfree(&re);
    if (vocab) for (size_t v = 0; v < f->vocab_size; v++) sae_free(vocab[v]);
    sae_free(vocab), sae_free(match), sae_free(tok), sae_free(off);
    return rc;
}

static int by_auroc(const void *a, const void *b) {
    const feat_search_row *x = a, *y = b;
    if (x->auroc != y->auroc) return x->auroc > y->auroc ? -1 : 1;
    return x->feature < y->feature ? -1 : 1;
}
static int by_diff(const void *a, const void *b) {
    const feat_search_row *x = a, *y = b;
    double dx = x->mean_pos - x->mean_neg, dy = y->mean_pos - y->mean_neg;
    if (dx != dy) return dx > dy ? -1 : 1;
    return x->feature < y->feature ? -1 : 1;
}
static int by_logit(const void *a, const void *b) {
    const feat_search_row *x = a, *y = b;
    if (x->logit_score != y->logit_score) return x->logit_score > y->logit_score ? -1 : 1;
    return x->feature < y->feature ? -1 : 1;
}

int feat_search(feat_search_result *out, sae_model *m, double input_scale, data_actfile *f,
                const feat_search_opts *o, sae_error *err) {
    memset(out, 0, sizeof *out);
    size_t D = m->cfg.d, M = m->cfg.m, N = f->n, B = o->batch;
    if (D != f->d)
        return sae_error_set(err, SAE_ERR_MISMATCH, f->path, "the data has d=%zu but the SAE was trained on d=%zu",
                             f->d, D);
    if (o->kind == FEAT_SEARCH_LOGIT) {
        int rc = logit_search(out, m, f, o, err);
        if (rc == SAE_OK) qsort(out->rows, out->n, sizeof *out->rows, by_logit);
        return rc;
    }
    SAE_ASSERT(B > 0 && B <= m->capacity);
    int8_t *cls = sae_malloc(N);
    class_acc a = {0};
    for (int c = 0; c < 2; c++) {
        a.fires[c] = sae_calloc_n(M, sizeof(uint64_t));
        a.sum[c] = sae_calloc_n(M, sizeof(double));
        a.sumsq[c] = sae_calloc_n(M, sizeof(double));
        a.hist[c] = sae_calloc_n(M * NB, sizeof(uint64_t));
    }
    double *rs[2] = {sae_calloc_n(D, sizeof(double)), sae_calloc_n(D, sizeof(double))};
    double rss[2] = {0, 0};
    float *raw = sae_alloc(B * D * 4), *x = sae_alloc(B * D * 4);
    int8_t *bc = sae_malloc(B);
    int rc = cls && a.fires[0] && a.fires[1] && a.sum[0] && a.sum[1] && a.sumsq[0] && a.sumsq[1] &&
                     a.hist[0] && a.hist[1] && rs[0] && rs[1] && raw && x && bc
                 ? SAE_OK
                 : sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    size_t n_match = 0;
    if (rc == SAE_OK) rc = classify(cls, f, o, &n_match, err);
    uint64_t n_c[2] = {0, 0};
    for (size_t i = 0; rc == SAE_OK && i < N; i++)
        if (cls[i] >= 0) n_c[cls[i]]++;
    if (rc == SAE_OK && (!n_c[0] || !n_c[1]))
        rc = sae_error_set(err, SAE_ERR_ARG, o->kind == FEAT_SEARCH_TOKEN ? "--token-regex" : "--contrast",
                           "no position falls in the %s class: nothing to compare", !n_c[1] ? "matching" : "other");
    float sc = (float)input_scale;
    for (size_t r0 = 0; rc == SAE_OK && r0 < N; r0 += B) {
        size_t cnt = N - r0 < B ? N - r0 : B, n = 0;
        if ((rc = data_actfile_read_rows(f, r0, cnt, raw, err)) < 0) break;
        for (size_t i = 0; i < cnt; i++) {
            int c = cls[r0 + i];
            if (c < 0 || data_row_nonfinite(raw + i * D, D)) continue;
            for (size_t k = 0; k < D; k++) {
                double v = raw[i * D + k];
                rs[c][k] += v;
                rss[c] += v * v;
                x[n * D + k] = raw[i * D + k] * sc;
            }
            bc[n++] = (int8_t)c;
        }
        if (!n) continue;
        if ((rc = sae_model_encode(m, x, n, err)) < 0) break;
        acc_block blk = {&a, bc};
        if ((rc = feat__each_code(m, acc_code, &blk, err)) < 0) break;
    }
    if (rc == SAE_OK) {
        out->rows = sae_calloc_n(M, sizeof *out->rows);
        if (!out->rows) rc = sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    }
    if (rc == SAE_OK) {
        double vsum[2] = {0, 0};
        for (size_t j = 0; j < M; j++) {
            feat_search_row *r = &out->rows[j];
            r->feature = j;
            for (int c = 0; c < 2; c++) /* non-firing positions are zeros */
                a.hist[c][j * NB] = n_c[c] - a.fires[c][j];
            r->auroc = feat_auroc_from_bins(a.hist[1] + j * NB, a.hist[0] + j * NB, NB);
            r->fires_pos = a.fires[1][j], r->fires_neg = a.fires[0][j];
            r->n_pos = n_c[1], r->n_neg = n_c[0];
            uint64_t fired = r->fires_pos + r->fires_neg;
            r->precision = fired ? (double)r->fires_pos / (double)fired : 0;
            r->recall = (double)r->fires_pos / (double)n_c[1];
            r->mean_pos = a.sum[1][j] / (double)n_c[1];
            r->mean_neg = a.sum[0][j] / (double)n_c[0];
            r->var_pos = a.sumsq[1][j] / (double)n_c[1] - r->mean_pos * r->mean_pos;
            r->var_neg = a.sumsq[0][j] / (double)n_c[0] - r->mean_neg * r->mean_neg;
            r->var_ratio = r->var_neg > 0 ? r->var_pos / r->var_neg : (r->var_pos > 0 ? INFINITY : NAN);
            vsum[1] += r->var_pos, vsum[0] += r->var_neg;
        }
        out->var_ratio_features = vsum[0] > 0 ? vsum[1] / vsum[0] : NAN;
        double rv[2];
        for (int c = 0; c < 2; c++) {
            double mean_sq = 0;
            for (size_t k = 0; k < D; k++) mean_sq += (rs[c][k] / (double)n_c[c]) * (rs[c][k] / (double)n_c[c]);
            rv[c] = rss[c] / (double)n_c[c] - mean_sq;
        }
        out->var_ratio_resid = rv[0] > 0 ? rv[1] / rv[0] : NAN;
        out->n = M;
        out->n_pos = n_c[1], out->n_neg = n_c[0];
        out->n_matching_tokens = n_match;
        qsort(out->rows, M, sizeof *out->rows, o->kind == FEAT_SEARCH_CONTRAST ? by_diff : by_auroc);
    }
    for (int c = 0; c < 2; c++) sae_free(a.fires[c]), sae_free(a.sum[c]), sae_free(a.sumsq[c]), sae_free(a.hist[c]), sae_free(rs[c]);
    sae_free(cls), sae_free(raw), sae_free(x), sae_free(bc);
    if (rc < 0) feat_search_result_free(out);
    return rc;
}
