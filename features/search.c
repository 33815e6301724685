/* features/search.c: ranking features for a question (see feat.h): the
 * universe, the classes, one streamed pass, then the statistics. */
#include <locale.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/gemm.h"
#include "common/mem.h"
#include "data/docs.h"
#include "data/h5.h"
#include "features/feat_internal.h"

#define NB (FEAT_SEARCH_BINS + 1) /* bin 0 holds zeros */

const char *const feat_sort_names[] = {"auto", "auroc", "lift", "precision", "recall", "f1",
                                       "mean-diff", "q", "corr", NULL};
const char *const feat_pool_names[] = {"none", "max", "mean", NULL};

static int nomem(sae_error *err) { return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory"); }

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
    sae_free(r->matches);
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

static const char *kind_flag(feat_search_kind k) {
    switch (k) {
    case FEAT_SEARCH_TOKEN: return "--token-regex";
    case FEAT_SEARCH_LOGIT: return "--logit-regex";
    case FEAT_SEARCH_CONTRAST: return "--contrast";
    case FEAT_SEARCH_PREDICTED: return "--predicted-regex";
    default: return "--attribute-regex";
    }
}

/* --- the universe --------------------------------------------------------------- */
int feat_where_parse(feat_where *out, const char *text, sae_error *err) {
    memset(out, 0, sizeof *out);
    const char *ne = strstr(text, "!="), *eq = strchr(text, '=');
    const char *sep = ne && ne < eq ? ne : eq;
    size_t klen = sep ? (size_t)(sep - text) : 0;
    if (!sep || klen == 0)
        return sae_error_set(err, SAE_ERR_ARG, "--where", "expects KEY=VALUE or KEY!=VALUE, got '%s'", text);
    out->negate = sep == ne;
    const char *value = sep + (out->negate ? 2 : 1);
    if (klen >= sizeof out->key || strlen(value) >= sizeof out->value)
        return sae_error_set(err, SAE_ERR_ARG, "--where", "'%.60s...' is too long", text);
    memcpy(out->key, text, klen);
    strcpy(out->value, value);
    return SAE_OK;
}

/* "'en', 'ja'" (the distinct labels, in order of first appearance; quote 0:
 * "en, ja"), cut with "..." to fit cap */
static void labels_present(const data_docs *d, char *buf, size_t cap, int quote) {
    data_label_count *lc;
    size_t n, o = 0;
    sae_error ignore = {0};
    buf[0] = 0;
    if (data_docs_labels(d, &lc, &n, &ignore) < 0) { /* only the message's detail is lost */
        snprintf(buf, cap, "(out of memory listing them)");
        return;
    }
    for (size_t k = 0; k < n; k++) {
        int w = snprintf(buf + o, cap - o, quote ? "%s'%s'" : "%s%s", o ? ", " : "", lc[k].label);
        if (w < 0 || (size_t)w >= cap - o) {
            if (cap > 4) strcpy(buf + (o < cap - 4 ? o : cap - 4), "...");
            break;
        }
        o += (size_t)w;
    }
    sae_free(lc);
}

/* does window w satisfy one condition (ignoring negation)? */
static int where_hit(const data_docs *d, size_t w, const feat_where *c, uint64_t doc) {
    if (strcmp(c->key, "label") == 0) return strcmp(d->win_label[w], c->value) == 0;
    return (uint64_t)d->win_doc[w] == doc;
}

static int where_check(const data_docs *d, const feat_where *c, uint64_t *doc, sae_error *err) {
    char present[400];
    if (strcmp(c->key, "label") == 0) {
        if (!d->win_label)
            return sae_error_set(err, SAE_ERR_ARG, "--where", "%s%s%s: the data has no /doc_labels", c->key,
                                 c->negate ? "!=" : "=", c->value);
        for (size_t w = 0; w < d->n_windows; w++)
            if (strcmp(d->win_label[w], c->value) == 0) return SAE_OK;
        labels_present(d, present, sizeof present, 1);
        return sae_error_set(err, SAE_ERR_ARG, "--where", "no window is labelled '%s' (labels present: %s)",
                             c->value, present);
    }
    if (strcmp(c->key, "doc") == 0) {
        char *end;
        unsigned long long v = strtoull(c->value, &end, 10);
        if (!c->value[0] || *end || c->value[0] == '-')
            return sae_error_set(err, SAE_ERR_ARG, "--where", "doc=%s: a corpus document index is a number", c->value);
        if (v >= d->n_docs)
            return sae_error_set(err, SAE_ERR_ARG, "--where", "doc=%s matches no corpus document (there are %zu: 0..%zu)",
                                 c->value, d->n_docs, d->n_docs - 1);
        *doc = v;
        return SAE_OK;
    }
    if (d->win_label) labels_present(d, present, sizeof present, 1);
    return sae_error_set(err, SAE_ERR_ARG, "--where", "unknown key '%s': the keys are label (%s) and doc (0..%zu)",
                         c->key, d->win_label ? present : "this file has no /doc_labels", d->n_docs - 1);
}

int feat_universe_mask(uint8_t *mask, const data_docs *d, const feat_where *w, size_t n, uint64_t *n_in,
                       sae_error *err) {
    uint64_t docs[64];
    if (n > 64) return sae_error_set(err, SAE_ERR_ARG, "--where", "at most 64 conditions");
    for (size_t i = 0; i < n; i++) {
        int rc = where_check(d, &w[i], &docs[i], err);
        if (rc < 0) return rc;
    }
    static const char *const keys[] = {"label", "doc"};
    *n_in = 0;
    for (size_t win = 0; win < d->n_windows; win++) {
        int pass = 1;
        for (size_t k = 0; k < 2 && pass; k++) {
            int has_eq = 0, any_eq = 0, any_ne = 0;
            for (size_t i = 0; i < n; i++) {
                if (strcmp(w[i].key, keys[k]) != 0) continue;
                int hit = where_hit(d, win, &w[i], docs[i]);
                if (w[i].negate) any_ne |= hit;
                else has_eq = 1, any_eq |= hit;
            }
            pass = (!has_eq || any_eq) && !any_ne; /* equalities OR'd, inequalities AND'd */
        }
        for (int64_t r = d->win_off[win]; r < d->win_off[win + 1]; r++) mask[r] = (uint8_t)pass;
        if (pass) *n_in += (uint64_t)(d->win_off[win + 1] - d->win_off[win]);
    }
    if (*n_in == 0)
        return sae_error_set(err, SAE_ERR_ARG, "--where", "no position passes every condition: the universe is empty");
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
        feat_search_row *r = &x->rows[j0 + i];
        r->feature = j0 + i, r->logit_score = hit / (double)x->n_match;
    }
}

/* --- the search's state ----------------------------------------------------------- */
typedef struct {
    const feat_search_opts *o;
    data_actfile *f;
    size_t N, M;
    data_docs docs;
    int have_docs;
    uint8_t *universe;    /* (N) */
    int8_t *cls;          /* (N) 1 positive, 0 negative, -1 not compared */
    float *pmatch;        /* (N) predicted: P(match) from the stored top-K */
    char *match;          /* (V) the match set */
    uint64_t *match_count;/* (V) */
    size_t n_match;
    /* pooled contrasts: the A and B corpus documents of the universe ("units") */
    int32_t *unit_of_row; /* (N) unit or -1 */
    size_t n_units;
    int64_t *unit_doc;    /* (n_units) corpus document */
    uint8_t *unit_is_a;   /* (n_units) */
    uint64_t *unit_rows;  /* (n_units) rows encoded */
} search_ctx;

static void ctx_free(search_ctx *c) {
    if (c->have_docs) data_docs_free(&c->docs);
    sae_free(c->universe), sae_free(c->cls), sae_free(c->pmatch), sae_free(c->match), sae_free(c->match_count);
    sae_free(c->unit_of_row), sae_free(c->unit_doc), sae_free(c->unit_is_a), sae_free(c->unit_rows);
}

int feat__match_vocab(data_actfile *f, const feat_search_opts *o, char *match, size_t *n_match, sae_error *err) {
    const char *flag = kind_flag(o->kind);
    if (!f->vocab_size) /* a token search names /tokens too when both are missing */
        return sae_error_set(err, SAE_ERR_FORMAT, f->path, "%s needs %s in the data (`sae capture` writes it)", flag,
                             o->kind == FEAT_SEARCH_TOKEN && !f->has_tokens ? "/tokens and /vocab" : "/vocab");
    regex_t re, ex;
    int rc = compile(&re, o->regex, flag, err);
    if (rc < 0) return rc;
    int has_ex = o->exclude_regex && *o->exclude_regex;
    if (has_ex && (rc = compile(&ex, o->exclude_regex, "--exclude-regex", err)) < 0) {
        regfree(&re);
        return rc;
    }
    size_t V = f->vocab_size, n_re = 0;
    char **vocab = NULL;
    rc = data_actfile_read_vocab(f, &vocab, err);
    *n_match = 0;
    for (size_t v = 0; rc == SAE_OK && v < V; v++) {
        int hit = regexec(&re, vocab[v], 0, NULL, 0) == 0;
        n_re += hit;
        if (hit && has_ex) hit = regexec(&ex, vocab[v], 0, NULL, 0) != 0;
        *n_match += (size_t)(match[v] = (char)hit);
    }
    if (rc == SAE_OK && *n_match == 0) {
        if (n_re)
            rc = sae_error_set(err, SAE_ERR_ARG, "--exclude-regex",
                               "'%s' takes out all %zu vocabulary entries '%s' matched", o->exclude_regex, n_re, o->regex);
        else
            rc = sae_error_set(err, SAE_ERR_ARG, flag, "'%s' matches no token of the vocabulary", o->regex);
    }
    regfree(&re);
    if (has_ex) regfree(&ex);
    if (vocab) data_h5_free_strings(vocab, V);
    return rc;
}

/* The match set of the search, with a count per entry for the report. */
static int build_match(search_ctx *c, sae_error *err) {
    size_t V = c->f->vocab_size ? c->f->vocab_size : 1;
    c->match = sae_calloc_n(V, 1);
    c->match_count = sae_calloc_n(V, sizeof *c->match_count);
    if (!c->match || !c->match_count) return nomem(err);
    return feat__match_vocab(c->f, c->o, c->match, &c->n_match, err);
}

/* token search: positive when the token at row + offset (same window) matches */
static int classify_token(search_ctx *c, sae_error *err) {
    data_actfile *f = c->f;
    if (!f->has_tokens)
        return sae_error_set(err, SAE_ERR_FORMAT, f->path,
                             "%s needs /tokens in the data (`sae capture` writes /tokens and /vocab)", kind_flag(c->o->kind));
    int32_t *tok = sae_malloc(c->N * sizeof *tok);
    if (!tok) return nomem(err);
    int rc = data_actfile_read_tokens(f, 0, c->N, tok, err);
    for (size_t w = 0; rc == SAE_OK && w < c->docs.n_windows; w++) {
        int64_t lo = c->docs.win_off[w], hi = c->docs.win_off[w + 1];
        for (int64_t r = lo; r < hi; r++) {
            int64_t t = r + c->o->offset;
            if (!c->universe[r] || t < lo || t >= hi) { c->cls[r] = -1; continue; }
            c->cls[r] = (int8_t)c->match[tok[t]];
            if (c->cls[r]) c->match_count[tok[t]]++;
        }
    }
    sae_free(tok);
    return rc;
}

/* predicted search: P(match) from the stored top-K, positive when the top-1 matches */
static int classify_predicted(search_ctx *c, int need_p, sae_error *err) {
    data_actfile *f = c->f;
    size_t K = f->n_pred, V = f->vocab_size, B = 4096;
    if (!K)
        return sae_error_set(err, SAE_ERR_FORMAT, f->path,
                             "%s needs /predictions in the data (`sae capture --predictions` writes them)",
                             kind_flag(c->o->kind));
    int32_t *ids = sae_calloc_n(B * K, sizeof *ids);
    float *lp = sae_calloc_n(B * K, sizeof *lp);
    if (need_p) c->pmatch = sae_calloc_n(c->N, sizeof *c->pmatch);
    int rc = ids && lp && (!need_p || c->pmatch) ? SAE_OK : nomem(err);
    for (size_t r0 = 0; rc == SAE_OK && r0 < c->N; r0 += B) {
        size_t cnt = c->N - r0 < B ? c->N - r0 : B;
        if ((rc = data_actfile_read_predictions(f, r0, cnt, ids, lp, err)) < 0) break;
        for (size_t i = 0; i < cnt; i++) {
            size_t r = r0 + i;
            const int32_t *id = ids + i * K;
            double p = 0;
            for (size_t k = 0; k < K; k++)
                if (id[k] >= 0 && (size_t)id[k] < V && c->match[id[k]] && isfinite(lp[i * K + k]))
                    p += exp((double)lp[i * K + k]);
            if (c->pmatch) c->pmatch[r] = (float)fmin(p, 1.0);
            int top = id[0] >= 0 && (size_t)id[0] < V && c->match[id[0]];
            c->cls[r] = c->universe[r] ? (int8_t)top : -1;
            if (c->universe[r] && top) c->match_count[id[0]]++;
        }
    }
    sae_free(ids), sae_free(lp);
    return rc;
}

/* contrast: windows labelled A positive, B negative; pooled: their documents */
static int classify_contrast(search_ctx *c, sae_error *err) {
    data_actfile *f = c->f;
    const feat_search_opts *o = c->o;
    const data_docs *d = &c->docs;
    if (!d->win_label) return sae_error_set(err, SAE_ERR_FORMAT, f->path, "--contrast needs /doc_labels in the data");
    size_t na = 0, nb = 0;
    for (size_t w = 0; w < d->n_windows; w++)
        na += strcmp(d->win_label[w], o->label_a) == 0, nb += strcmp(d->win_label[w], o->label_b) == 0;
    if (!na || !nb) {
        char present[400]; /* unquoted, as in "labels present: en, ja" */
        labels_present(d, present, sizeof present, 0);
        return sae_error_set(err, SAE_ERR_ARG, "--contrast", "no document is labelled '%s' (labels present: %s)",
                             !na ? o->label_a : o->label_b, present);
    }
    for (size_t w = 0; w < d->n_windows; w++) {
        int a = strcmp(d->win_label[w], o->label_a) == 0, b = strcmp(d->win_label[w], o->label_b) == 0;
        for (int64_t r = d->win_off[w]; r < d->win_off[w + 1]; r++)
            c->cls[r] = c->universe[r] && (a || b) ? (int8_t)a : -1;
    }
    if (o->pool == FEAT_POOL_NONE) return SAE_OK;
    c->unit_of_row = sae_malloc(c->N * sizeof *c->unit_of_row);
    c->unit_doc = sae_calloc_n(d->n_docs, sizeof *c->unit_doc);
    c->unit_is_a = sae_calloc_n(d->n_docs, 1);
    c->unit_rows = sae_calloc_n(d->n_docs, sizeof *c->unit_rows);
    if (!c->unit_of_row || !c->unit_doc || !c->unit_is_a || !c->unit_rows) return nomem(err);
    for (size_t i = 0; i < d->n_docs; i++) {
        int cls = -1;
        for (int64_t w = d->doc_win[i]; w < d->doc_win[i + 1]; w++) {
            int8_t wc = -1;
            for (int64_t r = d->win_off[w]; r < d->win_off[w + 1] && wc < 0; r++) wc = c->cls[r];
            if (wc < 0) continue;
            if (cls >= 0 && wc != cls)
                return sae_error_set(err, SAE_ERR_ARG, "--pool",
                                     "corpus document %zu has windows labelled both '%s' and '%s': "
                                     "pool per window with a file without /doc_source, or use --pool none",
                                     i, o->label_a, o->label_b);
            cls = wc;
        }
        int32_t u = -1;
        if (cls >= 0) {
            u = (int32_t)c->n_units++;
            c->unit_doc[u] = (int64_t)i, c->unit_is_a[u] = (uint8_t)cls;
        }
        for (int64_t w = d->doc_win[i]; w < d->doc_win[i + 1]; w++)
            for (int64_t r = d->win_off[w]; r < d->win_off[w + 1]; r++) c->unit_of_row[r] = c->cls[r] >= 0 ? u : -1;
    }
    return SAE_OK;
}

/* --- the pass ------------------------------------------------------------------ */
typedef struct {
    uint64_t *fires[2]; /* (M) per position */
    double *sum[2], *sumsq[2];
    uint64_t *hist[2];  /* (M, NB) firing values; zeros filled in at the end */
    double *sxp;        /* (M) predicted: sum of act * P(match) */
    double p_sum, p_sumsq; /* predicted: of P(match) over the compared positions */
    size_t n_units;     /* pooled contrasts: */
    feat_pool pool;
    double *pool_val;   /* (M, n_units) max, or sum, over the document's rows */
    float *peak;        /* (M, n_units) largest activation in the document */
    int64_t *peak_row;  /* (M, n_units) its row, -1 if none */
} pass_acc;

typedef struct {
    pass_acc *a;
    const int8_t *cls;   /* block row -> class */
    const int32_t *unit; /* block row -> pooled unit */
    const int64_t *row;  /* block row -> data row */
    const float *p;      /* block row -> P(match) */
} pass_block;

/* one active code: latent j of block row b; per latent one thread (feat__each_code) */
static void pass_code(size_t j, size_t b, float v, void *user) {
    pass_block *k = user;
    pass_acc *a = k->a;
    if (!(v > 0)) return; /* "fires" is act > 0: a code kept at zero is not a firing */
    int c = k->cls[b];
    a->fires[c][j]++;
    a->sum[c][j] += v;
    a->sumsq[c][j] += (double)v * v;
    a->hist[c][j * NB + (size_t)search_bin(v)]++;
    if (a->sxp) a->sxp[j] += (double)v * k->p[b];
    if (a->pool_val) {
        size_t s = j * a->n_units + (size_t)k->unit[b];
        if (a->pool == FEAT_POOL_MAX) a->pool_val[s] = fmax(a->pool_val[s], v);
        else a->pool_val[s] += v;
        if (v > a->peak[s]) a->peak[s] = v, a->peak_row[s] = k->row[b];
    }
}

static void acc_free(pass_acc *a) {
    for (int c = 0; c < 2; c++) sae_free(a->fires[c]), sae_free(a->sum[c]), sae_free(a->sumsq[c]), sae_free(a->hist[c]);
    sae_free(a->sxp), sae_free(a->pool_val), sae_free(a->peak), sae_free(a->peak_row);
}

static int acc_alloc(pass_acc *a, size_t M, const search_ctx *c, sae_error *err) {
    int ok = 1;
    for (int k = 0; k < 2; k++) {
        a->fires[k] = sae_calloc_n(M, sizeof(uint64_t));
        a->sum[k] = sae_calloc_n(M, sizeof(double));
        a->sumsq[k] = sae_calloc_n(M, sizeof(double));
        a->hist[k] = sae_calloc_n(M * NB, sizeof(uint64_t));
        ok = ok && a->fires[k] && a->sum[k] && a->sumsq[k] && a->hist[k];
    }
    if (c->pmatch) ok = ok && (a->sxp = sae_calloc_n(M, sizeof(double)));
    if (c->unit_of_row) {
        a->n_units = c->n_units, a->pool = c->o->pool;
        size_t U = c->n_units ? c->n_units : 1;
        if (M > SIZE_MAX / U / sizeof(double)) return sae_error_set(err, SAE_ERR_NOMEM, NULL, "too many documents");
        a->pool_val = sae_calloc_n(M * U, sizeof(double));
        a->peak = sae_calloc_n(M * U, sizeof(float));
        a->peak_row = sae_calloc_n(M * U, sizeof(int64_t));
        ok = ok && a->pool_val && a->peak && a->peak_row;
        for (size_t i = 0; ok && i < M * U; i++) a->peak_row[i] = -1;
    }
    return ok ? SAE_OK : nomem(err);
}

/* Encodes every compared row once; also sums the raw activations per class
 * (the variance ratio of the residual stream). */
static int run_pass(search_ctx *c, pass_acc *a, sae_model *m, double input_scale, uint64_t n_c[2],
                    double rv[2], sae_error *err) {
    size_t D = m->cfg.d, N = c->N, B = c->o->batch;
    double *rs[2] = {sae_calloc_n(D, sizeof(double)), sae_calloc_n(D, sizeof(double))}, rss[2] = {0, 0};
    float *raw = sae_alloc(B * D * 4), *x = sae_alloc(B * D * 4), *bp = sae_calloc_n(B, sizeof(float));
    int8_t *bc = sae_malloc(B);
    int32_t *bu = sae_calloc_n(B, sizeof(int32_t));
    int64_t *br = sae_calloc_n(B, sizeof(int64_t));
    int rc = rs[0] && rs[1] && raw && x && bp && bc && bu && br ? SAE_OK : nomem(err);
    float sc = (float)input_scale;
    n_c[0] = n_c[1] = 0;
    for (size_t r0 = 0; rc == SAE_OK && r0 < N; r0 += B) {
        size_t cnt = N - r0 < B ? N - r0 : B, n = 0;
        size_t first = cnt;
        for (size_t i = 0; i < cnt && first == cnt; i++) first = c->cls[r0 + i] >= 0 ? i : cnt;
        if (first == cnt) continue; /* nothing compared in this block: skip the read */
        if ((rc = data_actfile_read_rows(c->f, r0, cnt, raw, err)) < 0) break;
        for (size_t i = 0; i < cnt; i++) {
            int k = c->cls[r0 + i];
            if (k < 0 || data_row_nonfinite(raw + i * D, D)) continue;
            for (size_t t = 0; t < D; t++) {
                double v = raw[i * D + t];
                rs[k][t] += v;
                rss[k] += v * v;
                x[n * D + t] = raw[i * D + t] * sc;
            }
            bc[n] = (int8_t)k, br[n] = (int64_t)(r0 + i);
            bp[n] = c->pmatch ? c->pmatch[r0 + i] : 0;
            a->p_sum += bp[n], a->p_sumsq += (double)bp[n] * bp[n];
            bu[n] = c->unit_of_row ? c->unit_of_row[r0 + i] : 0;
            if (c->unit_of_row) c->unit_rows[bu[n]]++;
            n_c[k]++, n++;
        }
        if (!n) continue;
        if ((rc = sae_model_encode(m, x, n, err)) < 0) break;
        pass_block blk = {a, bc, bu, br, bp};
        if ((rc = feat__each_code(m, pass_code, &blk, err)) < 0) break;
    }
    for (int k = 0; rc == SAE_OK && k < 2; k++) {
        double mean_sq = 0;
        for (size_t t = 0; t < D && n_c[k]; t++) mean_sq += (rs[k][t] / (double)n_c[k]) * (rs[k][t] / (double)n_c[k]);
        rv[k] = n_c[k] ? rss[k] / (double)n_c[k] - mean_sq : NAN;
    }
    sae_free(rs[0]), sae_free(rs[1]), sae_free(raw), sae_free(x), sae_free(bp), sae_free(bc), sae_free(bu), sae_free(br);
    return rc;
}

/* --- statistics ------------------------------------------------------------------ */
static void fill_rates(feat_search_row *r) {
    uint64_t fired = r->fires_pos + r->fires_neg, total = r->n_pos + r->n_neg;
    double base = total ? (double)r->n_pos / (double)total : NAN;
    r->precision = fired ? (double)r->fires_pos / (double)fired : NAN; /* never fires: undefined */
    r->recall = r->n_pos ? (double)r->fires_pos / (double)r->n_pos : NAN;
    r->lift = base > 0 ? r->precision / base : NAN;
    r->f1 = fired && r->fires_pos ? 2 * r->precision * r->recall / (r->precision + r->recall) : 0;
}

/* per position: the token, predicted and unpooled contrast statistics */
static void position_stats(feat_search_row *r, size_t j, pass_acc *a, const uint64_t n_c[2], double var_p,
                           double mean_p) {
    r->feature = j;
    for (int c = 0; c < 2; c++) a->hist[c][j * NB] = n_c[c] - a->fires[c][j]; /* non-firing positions are zeros */
    r->auroc = feat_auroc_from_bins(a->hist[1] + j * NB, a->hist[0] + j * NB, NB);
    r->fires_pos = a->fires[1][j], r->fires_neg = a->fires[0][j];
    r->fires = r->fires_pos + r->fires_neg;
    r->n_pos = n_c[1], r->n_neg = n_c[0];
    fill_rates(r);
    r->mean_pos = a->sum[1][j] / (double)n_c[1];
    r->mean_neg = a->sum[0][j] / (double)n_c[0];
    r->var_pos = a->sumsq[1][j] / (double)n_c[1] - r->mean_pos * r->mean_pos;
    r->var_neg = a->sumsq[0][j] / (double)n_c[0] - r->mean_neg * r->mean_neg;
    r->corr = r->p_value = r->q_value = r->top_value = NAN;
    r->top_doc = r->top_window = -1;
    if (a->sxp) { /* Pearson over every compared position */
        double n = (double)(n_c[0] + n_c[1]);
        double ma = (a->sum[0][j] + a->sum[1][j]) / n, va = (a->sumsq[0][j] + a->sumsq[1][j]) / n - ma * ma;
        double cov = a->sxp[j] / n - ma * mean_p;
        r->corr = va > 0 && var_p > 0 ? cov / sqrt(va * var_p) : NAN;
    }
}

/* per document: pooled values of feature j into v (n_units); returns their stats in r */
static int document_stats(feat_search_row *r, size_t j, const pass_acc *a, const search_ctx *c, double *v,
                          double *rank, feat_rank_pair *scratch) {
    size_t U = c->n_units;
    uint64_t n[2] = {0, 0}, fires[2] = {0, 0};
    double s[2] = {0, 0}, ss[2] = {0, 0};
    size_t best = 0;
    for (size_t u = 0; u < U; u++) {
        double x = a->pool_val[j * U + u];
        if (a->pool == FEAT_POOL_MEAN) x = c->unit_rows[u] ? x / (double)c->unit_rows[u] : 0;
        v[u] = x;
        int k = c->unit_is_a[u];
        n[k]++, fires[k] += x > 0, s[k] += x, ss[k] += x * x;
        if (x > v[best]) best = u;
    }
    r->n_pos = n[1], r->n_neg = n[0], r->fires_pos = fires[1], r->fires_neg = fires[0];
    fill_rates(r);
    r->mean_pos = s[1] / (double)n[1], r->mean_neg = s[0] / (double)n[0];
    r->var_pos = ss[1] / (double)n[1] - r->mean_pos * r->mean_pos;
    r->var_neg = ss[0] / (double)n[0] - r->mean_neg * r->mean_neg;
    feat_midranks(v, U, rank, scratch);
    double ra = 0;
    for (size_t u = 0; u < U; u++) ra += c->unit_is_a[u] ? rank[u] : 0;
    r->auroc = (ra - 0.5 * (double)n[1] * (double)(n[1] + 1)) / ((double)n[1] * (double)n[0]);
    int64_t row = a->peak_row[j * U + best];
    r->top_value = v[best];
    r->top_doc = v[best] > 0 ? c->unit_doc[best] : -1;
    r->top_window = v[best] > 0 && row >= 0 ? (int64_t)data_docs_window_of_row(&c->docs, row) : -1;
    return SAE_OK;
}

static double sort_key(const feat_search_row *r, feat_sort s) {
    double k;
    switch (s) {
    case FEAT_SORT_AUROC: k = r->auroc; break;
    case FEAT_SORT_LIFT: k = r->lift; break;
    case FEAT_SORT_PRECISION: k = r->precision; break;
    case FEAT_SORT_RECALL: k = r->recall; break;
    case FEAT_SORT_F1: k = r->f1; break;
    case FEAT_SORT_MEAN_DIFF: k = r->mean_pos - r->mean_neg; break;
    case FEAT_SORT_Q: k = -r->q_value; break;
    case FEAT_SORT_CORR: k = r->corr; break;
    default: k = r->logit_score; break;
    }
    return isnan(k) ? -INFINITY : k;
}

typedef struct {
    double key, tie;
    size_t feature, i;
} sort_item;

static int by_item(const void *a, const void *b) {
    const sort_item *x = a, *y = b;
    if (x->key != y->key) return x->key > y->key ? -1 : 1;
    if (x->tie != y->tie) return x->tie > y->tie ? -1 : 1;
    return x->feature < y->feature ? -1 : x->feature > y->feature;
}

/* rows in place, best first: the key descending (q ascending; undefined keys
 * last), ties by auroc, then by feature index */
static int sort_rows(feat_search_row *rows, size_t n, feat_sort s, int attribution, sae_error *err) {
    feat_search_row *tmp = sae_calloc_n(n ? n : 1, sizeof *tmp);
    sort_item *it = sae_calloc_n(n ? n : 1, sizeof *it);
    if (!tmp || !it) return sae_free(tmp), sae_free(it), nomem(err);
    for (size_t i = 0; i < n; i++) {
        double k = attribution ? rows[i].attribution : sort_key(&rows[i], s);
        it[i] = (sort_item){isnan(k) ? -INFINITY : k, isnan(rows[i].auroc) ? -INFINITY : rows[i].auroc,
                            rows[i].feature, i};
    }
    qsort(it, n, sizeof *it, by_item);
    for (size_t i = 0; i < n; i++) tmp[i] = rows[it[i].i];
    memcpy(rows, tmp, n * sizeof *rows);
    sae_free(tmp), sae_free(it);
    return SAE_OK;
}

/* The vocabulary entries matched, by count then id. */
static int list_matches(feat_search_result *out, const search_ctx *c, sae_error *err) {
    size_t V = c->f->vocab_size, k = 0;
    out->matches = sae_calloc_n(c->n_match ? c->n_match : 1, sizeof *out->matches);
    if (!out->matches) return nomem(err);
    for (size_t v = 0; v < V; v++)
        if (c->match[v]) out->matches[k++] = (feat_search_match){(int32_t)v, c->match_count[v]};
    for (size_t i = 1; i < k; i++) { /* insertion sort: stable, and k is often small */
        feat_search_match x = out->matches[i];
        size_t t = i;
        while (t > 0 && out->matches[t - 1].count < x.count) out->matches[t] = out->matches[t - 1], t--;
        out->matches[t] = x;
    }
    out->n_matching_tokens = k;
    return SAE_OK;
}

/* Moves rows firing fewer than min_count times to the end; returns how many stay. */
static size_t apply_min_count(feat_search_row *rows, size_t M, uint64_t min_count) {
    size_t k = 0;
    for (size_t i = 0; i < M; i++)
        if (rows[i].fires >= min_count) {
            feat_search_row t = rows[k];
            rows[k++] = rows[i], rows[i] = t;
        }
    return k;
}

static double log10_choose(size_t n, size_t k) {
    return (lgamma((double)n + 1) - lgamma((double)k + 1) - lgamma((double)(n - k) + 1)) / log(10.0);
}

static int by_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The permutation test over the ranked rows' pooled values (n_ranked, U). */
static int permutation_test(feat_search_result *out, const search_ctx *c, const double *values, size_t n_ranked,
                            int mean_diff, sae_error *err) {
    const feat_search_opts *o = c->o;
    size_t U = c->n_units, P = o->permutations, R = n_ranked ? n_ranked : 1;
    double *obs = sae_calloc_n(R, sizeof(double)), *p = sae_calloc_n(R, sizeof(double));
    double *q = sae_calloc_n(R, sizeof(double)), *null_max = sae_calloc_n(P, sizeof(double));
    int rc = obs && p && q && null_max ? SAE_OK : nomem(err);
    if (rc == SAE_OK) rc = feat_perm_test(values, n_ranked, U, c->unit_is_a, mean_diff, P, o->seed, obs, p, null_max, err);
    if (rc == SAE_OK) rc = feat_bh_qvalues(p, n_ranked, q, err);
    if (rc == SAE_OK) {
        double top = -INFINITY;
        for (size_t i = 0; i < n_ranked; i++) {
            out->rows[i].p_value = p[i], out->rows[i].q_value = q[i];
            top = fmax(top, obs[i]);
        }
        size_t ge = 0;
        for (size_t t = 0; t < P; t++) ge += null_max[t] >= top - 1e-9 * (1 + fabs(top));
        qsort(null_max, P, sizeof *null_max, by_double);
        out->permutations = P;
        out->top_score = top;
        out->fwer_p = (1.0 + (double)ge) / (1.0 + (double)P);
        out->null_median = feat_quantile_sorted(null_max, P, 0.5);
        out->null_p95 = feat_quantile_sorted(null_max, P, 0.95);
    }
    sae_free(obs), sae_free(p), sae_free(q), sae_free(null_max);
    return rc;
}

/* --- the search -------------------------------------------------------------------- */
static feat_sort resolve_sort(const feat_search_opts *o) {
    if (o->sort != FEAT_SORT_AUTO) return o->sort;
    switch (o->kind) {
    case FEAT_SEARCH_TOKEN: return FEAT_SORT_F1; /* selective and covering: see the README */
    case FEAT_SEARCH_PREDICTED: return FEAT_SORT_CORR;
    case FEAT_SEARCH_CONTRAST: return FEAT_SORT_AUROC;
    default: return FEAT_SORT_AUTO;
    }
}

static int check_opts(const feat_search_opts *o, sae_error *err) {
    int data_kind = o->kind != FEAT_SEARCH_LOGIT;
    if (o->kind != FEAT_SEARCH_CONTRAST && !o->regex)
        return sae_error_set(err, SAE_ERR_ARG, kind_flag(o->kind), "needs a regular expression");
    if (o->kind == FEAT_SEARCH_CONTRAST && (!o->label_a || !o->label_b))
        return sae_error_set(err, SAE_ERR_ARG, "--contrast", "needs two labels A:B");
    if (o->pool != FEAT_POOL_NONE && o->kind != FEAT_SEARCH_CONTRAST)
        return sae_error_set(err, SAE_ERR_ARG, "--pool",
                             "pools the documents of a --contrast; %s compares positions, which have no document class",
                             kind_flag(o->kind));
    if (o->permutations && o->kind != FEAT_SEARCH_CONTRAST)
        return sae_error_set(err, SAE_ERR_ARG, "--permutations",
                             "shuffles the document labels of a --contrast; %s has none to shuffle", kind_flag(o->kind));
    if (o->permutations && o->pool == FEAT_POOL_NONE)
        return sae_error_set(err, SAE_ERR_ARG, "--permutations",
                             "needs pooled documents (--pool max or mean): positions of one document are not exchangeable");
    if (o->sort == FEAT_SORT_Q && !o->permutations)
        return sae_error_set(err, SAE_ERR_ARG, "--sort", "q needs --permutations N");
    if (o->sort == FEAT_SORT_CORR && o->kind != FEAT_SEARCH_PREDICTED)
        return sae_error_set(err, SAE_ERR_ARG, "--sort", "corr is the --predicted-regex correlation");
    if (!data_kind && o->sort != FEAT_SORT_AUTO)
        return sae_error_set(err, SAE_ERR_ARG, "--sort", "--logit-regex ranks by its z-score only");
    if (o->kind == FEAT_SEARCH_ATTRIBUTE && o->sort != FEAT_SORT_AUTO)
        return sae_error_set(err, SAE_ERR_ARG, "--sort", "--attribute-regex ranks by attribution only");
    if (!data_kind && o->n_where)
        return sae_error_set(err, SAE_ERR_ARG, "--where", "--logit-regex reads no positions of the data to restrict");
    return SAE_OK;
}

static int logit_search(feat_search_result *out, sae_model *m, search_ctx *c, sae_error *err) {
    data_actfile *f = c->f;
    if (!f->has_unembed || !f->vocab_size)
        return sae_error_set(err, SAE_ERR_FORMAT, f->path,
                             "--logit-regex needs /unembed and /vocab in the data (`sae capture` writes them)");
    int rc = build_match(c, err);
    out->rows = sae_calloc_n(c->M, sizeof *out->rows);
    if (rc == SAE_OK && !out->rows) rc = nomem(err);
    for (size_t j = 0; rc == SAE_OK && j < c->M; j++) {
        feat_search_row *r = &out->rows[j];
        r->auroc = r->precision = r->recall = r->lift = r->f1 = r->corr = r->attribution = NAN;
        r->mean_pos = r->mean_neg = r->var_pos = r->var_neg = r->var_ratio = NAN;
        r->p_value = r->q_value = r->top_value = NAN;
        r->top_doc = r->top_window = -1;
    }
    logit_ctx lc = {c->match, c->n_match, out->rows};
    if (rc == SAE_OK) rc = feat__logit_lens_blocks(m, f, logit_score, &lc, err);
    if (rc == SAE_OK) rc = list_matches(out, c, err);
    if (rc == SAE_OK) rc = sort_rows(out->rows, c->M, FEAT_SORT_AUTO, 0, err);
    out->n = out->n_features = c->M;
    return rc;
}

static int attribute_search(feat_search_result *out, sae_model *m, double input_scale, search_ctx *c,
                            sae_error *err) {
    int rc = build_match(c, err);
    /* the vocabulary it matched, counted as the model's top-1 predictions */
    if (rc == SAE_OK && c->f->n_pred) rc = classify_predicted(c, 0, err);
    /* feat__search_attribute starts from a cleared result: keep the universe */
    uint64_t rows = out->universe_rows, docs = out->universe_docs;
    if (rc == SAE_OK) rc = feat__search_attribute(out, m, input_scale, c->f, c->o, c->universe, err);
    out->universe_rows = rows, out->universe_docs = docs;
    for (size_t j = 0; rc == SAE_OK && j < out->n; j++) {
        feat_search_row *r = &out->rows[j];
        r->p_value = r->q_value = r->top_value = r->corr = NAN;
        r->top_doc = r->top_window = -1;
    }
    if (rc == SAE_OK) rc = list_matches(out, c, err);
    if (rc == SAE_OK) rc = sort_rows(out->rows, out->n, FEAT_SORT_AUTO, 1, err);
    out->n_features = c->M;
    return rc;
}

/* After the pass: every statistic, the min_count cut, the permutation test, the order. */
static int rank_features(feat_search_result *out, search_ctx *c, pass_acc *a, const uint64_t n_c[2],
                         const double rv[2], sae_error *err) {
    size_t M = c->M, U = c->n_units, pooled = c->unit_of_row != NULL;
    out->rows = sae_calloc_n(M, sizeof *out->rows);
    double *values = pooled ? sae_calloc_n(M * U, sizeof(double)) : NULL;
    double *rank = pooled ? sae_calloc_n(U, sizeof(double)) : NULL;
    feat_rank_pair *scratch = pooled ? sae_calloc_n(U, sizeof *scratch) : NULL;
    if (!out->rows || (pooled && (!values || !rank || !scratch))) {
        sae_free(values), sae_free(rank), sae_free(scratch);
        return nomem(err);
    }
    double n_all = (double)(n_c[0] + n_c[1]);
    double mean_p = a->p_sum / n_all, var_p = a->p_sumsq / n_all - mean_p * mean_p;
    double vsum[2] = {0, 0};
    for (size_t j = 0; j < M; j++) {
        feat_search_row *r = &out->rows[j];
        position_stats(r, j, a, n_c, var_p, mean_p);
        if (pooled) document_stats(r, j, a, c, values + j * U, rank, scratch);
        r->var_ratio = r->var_neg > 0 ? r->var_pos / r->var_neg : (r->var_pos > 0 ? INFINITY : NAN);
        vsum[1] += r->var_pos, vsum[0] += r->var_neg;
    }
    out->var_ratio_features = vsum[0] > 0 ? vsum[1] / vsum[0] : NAN;
    out->var_ratio_resid = rv[0] > 0 ? rv[1] / rv[0] : NAN;
    out->n_pos = out->rows[0].n_pos, out->n_neg = out->rows[0].n_neg;
    out->base_rate = (double)out->n_pos / (double)(out->n_pos + out->n_neg);
    out->n_features = M;
    out->n = apply_min_count(out->rows, M, c->o->min_count);
    out->n_below_min_count = M - out->n;
    int rc = SAE_OK;
    if (pooled) {
        size_t nA = (size_t)out->n_pos;
        out->log10_labellings = log10_choose(U, nA);
        out->p_needed = out->n ? 0.05 / (double)out->n : NAN;
        out->min_p = c->o->permutations ? fmax(1.0 / (1.0 + (double)c->o->permutations), pow(10.0, -out->log10_labellings))
                                        : NAN;
        /* kept rows keep their order (features increasing), so compacting moves rows down */
        for (size_t i = 0; i < out->n; i++) memmove(values + i * U, values + out->rows[i].feature * U, U * sizeof *values);
        if (c->o->permutations && out->n)
            rc = permutation_test(out, c, values, out->n, out->sort == FEAT_SORT_MEAN_DIFF, err);
    }
    if (rc == SAE_OK) rc = sort_rows(out->rows, out->n, out->sort, 0, err);
    sae_free(values), sae_free(rank), sae_free(scratch);
    return rc;
}

int feat_search(feat_search_result *out, sae_model *m, double input_scale, data_actfile *f,
                const feat_search_opts *o, sae_error *err) {
    memset(out, 0, sizeof *out);
    out->null_median = out->null_p95 = out->top_score = out->fwer_p = NAN;
    out->log10_labellings = out->min_p = out->p_needed = NAN;
    if (m->cfg.d != f->d)
        return sae_error_set(err, SAE_ERR_MISMATCH, f->path, "the data has d=%zu but the SAE was trained on d=%zu",
                             f->d, m->cfg.d);
    int rc = check_opts(o, err);
    if (rc < 0) return rc;
    out->sort = resolve_sort(o);
    out->pool = o->kind == FEAT_SEARCH_CONTRAST ? o->pool : FEAT_POOL_NONE;
    search_ctx c = {.o = o, .f = f, .N = f->n, .M = m->cfg.m};
    if (o->kind == FEAT_SEARCH_LOGIT) {
        rc = logit_search(out, m, &c, err);
        ctx_free(&c);
        if (rc < 0) feat_search_result_free(out);
        return rc;
    }
    SAE_ASSERT(o->batch > 0 && o->batch <= m->capacity);
    if ((rc = data_docs_load(&c.docs, f, err)) == SAE_OK) c.have_docs = 1;
    c.universe = sae_malloc(c.N ? c.N : 1);
    c.cls = sae_malloc(c.N ? c.N : 1);
    if (rc == SAE_OK && (!c.universe || !c.cls)) rc = nomem(err);
    if (rc == SAE_OK) rc = feat_universe_mask(c.universe, &c.docs, o->where, o->n_where, &out->universe_rows, err);
    for (size_t i = 0; rc == SAE_OK && i < c.docs.n_docs; i++) {
        int64_t lo, hi;
        data_docs_doc_rows(&c.docs, i, &lo, &hi);
        int any = 0;
        for (int64_t r = lo; r < hi && !any; r++) any = c.universe[r];
        out->universe_docs += (uint64_t)any;
    }
    if (rc == SAE_OK && o->kind == FEAT_SEARCH_ATTRIBUTE) {
        rc = attribute_search(out, m, input_scale, &c, err);
        ctx_free(&c);
        if (rc < 0) feat_search_result_free(out);
        return rc;
    }
    if (rc == SAE_OK && o->kind == FEAT_SEARCH_PREDICTED && !f->n_pred) rc = classify_predicted(&c, 1, err); /* the error */
    if (rc == SAE_OK && o->kind != FEAT_SEARCH_CONTRAST) rc = build_match(&c, err);
    if (rc == SAE_OK) {
        if (o->kind == FEAT_SEARCH_TOKEN) rc = classify_token(&c, err);
        else if (o->kind == FEAT_SEARCH_PREDICTED) rc = classify_predicted(&c, 1, err);
        else rc = classify_contrast(&c, err);
    }
    uint64_t n_c[2] = {0, 0};
    for (size_t i = 0; rc == SAE_OK && i < c.N; i++)
        if (c.cls[i] >= 0) n_c[c.cls[i]]++;
    const char *what = o->kind == FEAT_SEARCH_CONTRAST ? (!n_c[1] ? o->label_a : o->label_b)
                                                       : (!n_c[1] ? "matching" : "non-matching");
    if (rc == SAE_OK && (!n_c[0] || !n_c[1]))
        rc = sae_error_set(err, SAE_ERR_ARG, kind_flag(o->kind),
                           "no position of the universe falls in the %s class: nothing to compare", what);
    pass_acc a = {0};
    double rv[2] = {NAN, NAN};
    if (rc == SAE_OK) rc = acc_alloc(&a, c.M, &c, err);
    if (rc == SAE_OK) rc = run_pass(&c, &a, m, input_scale, n_c, rv, err);
    if (rc == SAE_OK && (!n_c[0] || !n_c[1]))
        rc = sae_error_set(err, SAE_ERR_FORMAT, f->path, "every row of the %s class holds NaN or Inf", what);
    if (rc == SAE_OK) rc = rank_features(out, &c, &a, n_c, rv, err);
    if (rc == SAE_OK && c.match) rc = list_matches(out, &c, err);
    acc_free(&a);
    ctx_free(&c);
    if (rc < 0) feat_search_result_free(out);
    return rc;
}
