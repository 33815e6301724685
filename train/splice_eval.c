/* train/splice_eval.c: CE and KL with an SAE spliced into the model (see
 * splice_eval.h). */
#include "train/splice_eval.h"

#include <math.h>
#include <string.h>

#include "common/mem.h"
#include "data/windows.h"

/* the runs after the clean one, in this order */
enum { RUN_SAE = 0, RUN_ZERO = 1, RUN_EDIT = 2, N_RUNS = 3 };

/* sums behind one train_splice_scores */
typedef struct {
    uint64_t windows, tokens, rows;
    double ce_clean, ce[N_RUNS], kl[N_RUNS];
    double sse, sq, l0; /* sq: sum ||x s||^2 */
    double *sum_x;      /* (d) sum of x s */
} group_sums;

typedef struct {
    const data_llama *lm;
    sae_model *m;
    const train_splice_params *p;
    size_t D, V, cap;
    sae_splice sp;
    float *saved;     /* (cap, dim) the residual entering the site's block */
    float *site_x;    /* (cap, dim) the clean run's site activations */
    float *logits;    /* (cap, V) */
    float *logp;      /* (cap, V) the clean run's log-probabilities */
    double *ce, *kl;  /* (cap) per row of the current run */
    double *ce_clean; /* (cap) */
    double *row_sse;  /* (cap) */
    uint32_t *row_l0; /* (cap) */
    group_sums all;
    group_sums *groups;
    char **labels;
    size_t n_groups, groups_cap;
} eval_ctx;

size_t train_splice_capacity(const data_llama *lm, const train_splice_params *p) {
    size_t seq = p->seq_len ? p->seq_len : (size_t)lm->c.seq_len;
    return data_windows_capacity(seq, p->batch_rows);
}

/* The clean run's hook: keeps the site's activations for the statistics. */
typedef struct {
    int layer;
    data_site site;
    float *dst;
    size_t D;
} copy_site;

static void copy_hook(int layer, data_site site, float *x, size_t rows, void *user) {
    copy_site *c = user;
    if (layer == c->layer && site == c->site) memcpy(c->dst, x, rows * c->D * sizeof(float));
}

/* Sum of exp(z[v] - mx) over a row, in float terms added in double: the
 * terms are at most 1, so float exp loses nothing the double sum keeps, and
 * it vectorises. */
static double sum_exp(const float *z, size_t V, float mx) {
    double sum = 0;
    for (size_t v0 = 0; v0 < V; v0 += 256) {
        size_t v1 = v0 + 256 < V ? v0 + 256 : V;
        float part = 0.0f;
        for (size_t v = v0; v < v1; v++) part += expf(z[v] - mx);
        sum += part;
    }
    return sum;
}

/* KL(p || q) of one row from log p (lp) and q's logits z with log-sum-exp
 * lse: sum p (lp - (z - lse)), in float terms added in double per block. */
static double kl_row(const float *lp, const float *z, size_t V, float lse) {
    double acc = 0;
    for (size_t v0 = 0; v0 < V; v0 += 256) {
        size_t v1 = v0 + 256 < V ? v0 + 256 : V;
        float part = 0.0f;
        for (size_t v = v0; v < v1; v++) part += expf(lp[v]) * (lp[v] - (z[v] - lse));
        acc += part;
    }
    return acc;
}

/* ce[i] and kl[i] of the batch's rows from c->logits (0 for a row that
 * predicts nothing inside its window); with store, the clean run: the
 * log-probabilities are kept in c->logp for the later runs' KL. */
static void score_rows(eval_ctx *c, const data_window_batch *b, double *ce, double *kl, int store) {
    size_t V = c->V, N = b->n_rows;
#pragma omp parallel for schedule(dynamic, 16)
    for (size_t i = 0; i < N; i++) {
        ce[i] = 0.0;
        if (kl) kl[i] = 0.0;
        if (i + 1 >= N) continue;
        const float *z = c->logits + i * V;
        float mx = z[0];
        for (size_t v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
        double lse = mx + log(sum_exp(z, V, mx));
        ce[i] = lse - z[b->tokens[i + 1]];
        if (store) {
            float *lp = c->logp + i * V;
            for (size_t v = 0; v < V; v++) lp[v] = (float)(z[v] - lse);
        } else if (kl) {
            kl[i] = kl_row(c->logp + i * V, z, V, (float)lse);
        }
    }
}

static group_sums *group_of(eval_ctx *c, const char *label, sae_error *err) {
    const char *l = label ? label : "";
    for (size_t g = 0; g < c->n_groups; g++)
        if (strcmp(c->labels[g], l) == 0) return &c->groups[g];
    if (c->n_groups == c->groups_cap) {
        size_t cap = c->groups_cap ? 2 * c->groups_cap : 8;
        group_sums *gs = sae_realloc(c->groups, cap * sizeof *gs);
        if (gs) c->groups = gs;
        char **ls = gs ? sae_realloc(c->labels, cap * sizeof *ls) : NULL;
        if (ls) c->labels = ls;
        if (!ls) return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory"), NULL;
        c->groups_cap = cap;
    }
    group_sums *g = &c->groups[c->n_groups];
    memset(g, 0, sizeof *g);
    g->sum_x = sae_calloc_n(c->D, sizeof *g->sum_x);
    c->labels[c->n_groups] = g->sum_x ? sae_strdup(l) : NULL;
    if (!c->labels[c->n_groups]) {
        sae_free(g->sum_x);
        return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory"), NULL;
    }
    c->n_groups++;
    return g;
}

/* Adds window s's rows to g. run_ce/run_kl: per run, per row. */
static void add_window(eval_ctx *c, group_sums *g, const data_window_batch *b, size_t s,
                       double *const run_ce[N_RUNS], double *const run_kl[N_RUNS], int n_runs) {
    size_t o = b->off[s], e = b->off[s + 1], D = c->D;
    g->windows++;
    for (size_t i = o + 1; i + 1 < e; i++) {
        g->tokens++;
        g->ce_clean += c->ce_clean[i];
        for (int r = 0; r < n_runs; r++) g->ce[r] += run_ce[r][i], g->kl[r] += run_kl[r][i];
    }
    for (size_t i = o + 1; i < e; i++) {
        g->rows++;
        g->sse += c->row_sse[i];
        g->l0 += c->row_l0[i];
        const float *x = c->site_x + i * D;
        for (size_t j = 0; j < D; j++) {
            double v = (double)x[j] * c->sp.scale;
            g->sum_x[j] += v;
            g->sq += v * v;
        }
    }
}

static void finish_scores(const group_sums *g, size_t D, double scale, train_splice_scores *s) {
    double nt = (double)g->tokens, nr = (double)g->rows;
    memset(s, 0, sizeof *s);
    s->windows = g->windows, s->tokens = g->tokens, s->rows = g->rows;
    s->ce_clean = g->ce_clean / nt;
    s->ce_sae = g->ce[RUN_SAE] / nt, s->ce_zero = g->ce[RUN_ZERO] / nt, s->ce_edit = g->ce[RUN_EDIT] / nt;
    s->kl_sae = g->kl[RUN_SAE] / nt, s->kl_zero = g->kl[RUN_ZERO] / nt, s->kl_edit = g->kl[RUN_EDIT] / nt;
    double gap = s->ce_zero - s->ce_clean;
    s->ce_score = gap > 0 ? (s->ce_zero - s->ce_sae) / gap : NAN;
    s->kl_score = s->kl_zero > 0 ? (s->kl_zero - s->kl_sae) / s->kl_zero : NAN;
    double mean2 = 0;
    for (size_t j = 0; j < D; j++) mean2 += g->sum_x[j] * g->sum_x[j];
    double var = g->sq - mean2 / nr; /* sum ||x - mean||^2 */
    s->fvu = var > 0 ? g->sse / var : NAN;
    s->mse = g->sse / (scale * scale * nr * (double)D); /* model units, as sae eval --data */
    s->l0 = g->l0 / nr;
}

/* One batch: the shared prefix, the clean run, then each splice. The
 * residual stream is saved where the runs part: entering the site's block,
 * or, for resid_post, leaving it (the saved stream is then the site itself,
 * spliced directly, and the block is not run again). */
static int eval_batch(eval_ctx *c, data_llama_run *run, const data_window_batch *b, sae_error *err) {
    const train_splice_params *p = c->p;
    int last = c->lm->c.n_layers - 1, n_runs = p->n_edits ? 3 : 2;
    int at_post = p->site == DATA_SITE_RESID_POST, resume = at_post ? p->layer + 1 : p->layer;
    size_t N = b->n_rows, bytes = N * c->D * sizeof(float);
    float *resid = data_llama_residual(run);
    copy_site cs = {p->layer, p->site, c->site_x, c->D};
    data_llama_begin(run, b->tokens, b->off, b->n_win);
    if (resume > 0) data_llama_blocks(run, b->off, b->n_win, 0, resume - 1, copy_hook, &cs);
    memcpy(c->saved, resid, bytes);
    if (resume <= last) data_llama_blocks(run, b->off, b->n_win, resume, last, copy_hook, &cs);
    data_llama_end(run, N, c->logits);
    score_rows(c, b, c->ce_clean, NULL, 1);
    sae_splice_mode modes[N_RUNS] = {p->replace_error ? SAE_SPLICE_RECON_ERROR : SAE_SPLICE_RECON,
                                     SAE_SPLICE_ZERO, SAE_SPLICE_EDIT};
    double *run_ce[N_RUNS], *run_kl[N_RUNS];
    for (int r = 0; r < n_runs; r++) {
        run_ce[r] = c->ce + (size_t)r * c->cap, run_kl[r] = c->kl + (size_t)r * c->cap;
        memcpy(resid, c->saved, bytes);
        c->sp.mode = modes[r];
        c->sp.row_sse = r == RUN_SAE ? c->row_sse : NULL;
        c->sp.row_l0 = r == RUN_SAE ? c->row_l0 : NULL;
        sae_splice_set_batch(&c->sp, b->off, b->n_win);
        if (at_post) sae_splice_hook(p->layer, p->site, resid, N, &c->sp);
        if (resume <= last)
            data_llama_blocks(run, b->off, b->n_win, resume, last, at_post ? NULL : sae_splice_hook, &c->sp);
        if (c->sp.failed) {
            *err = c->sp.err;
            return err->code ? err->code : SAE_ERR_NOMEM;
        }
        data_llama_end(run, N, c->logits);
        score_rows(c, b, run_ce[r], run_kl[r], 0);
    }
    for (size_t s = 0; s < b->n_win; s++) {
        add_window(c, &c->all, b, s, run_ce, run_kl, n_runs);
        if (!p->by_label) continue;
        group_sums *g = group_of(c, b->label[s], err);
        if (!g) return err->code;
        add_window(c, g, b, s, run_ce, run_kl, n_runs);
    }
    return SAE_OK;
}

static int check_params(const data_llama *lm, const sae_model *m, const train_splice_params *p,
                        sae_error *err) {
    const data_llama_config *mc = &lm->c;
    if (p->layer < 0 || p->layer >= mc->n_layers)
        return sae_error_set(err, SAE_ERR_ARG, "--layer", "layer %d is out of range: the model has %d blocks "
                             "(0..%d)", p->layer, mc->n_layers, mc->n_layers - 1);
    if (m->cfg.d != (size_t)mc->dim)
        return sae_error_set(err, SAE_ERR_ARG, lm->path, "the model's %s has width %d but the SAE has d=%zu: "
                             "this SAE was not trained on this model", data_site_name(p->site), mc->dim, m->cfg.d);
    size_t seq = p->seq_len ? p->seq_len : (size_t)mc->seq_len;
    if (seq < 3 || seq > (size_t)mc->seq_len)
        return sae_error_set(err, SAE_ERR_ARG, "--seq-len", "must be in 3..%d (the model's seq_len): a "
                             "window needs BOS and two tokens to score one prediction", mc->seq_len);
    for (size_t e = 0; e < p->n_edits; e++)
        if (p->edits[e].feature >= m->cfg.m)
            return sae_error_set(err, SAE_ERR_ARG, "--ablate", "feature %u is out of range: the SAE has %zu",
                                 p->edits[e].feature, m->cfg.m);
    return sae_edits_check(p->edits, p->n_edits, err);
}

static void ctx_free(eval_ctx *c) {
    sae_splice_free(&c->sp);
    sae_free(c->saved), sae_free(c->site_x), sae_free(c->logits), sae_free(c->logp);
    sae_free(c->ce), sae_free(c->kl), sae_free(c->ce_clean), sae_free(c->row_sse), sae_free(c->row_l0);
    sae_free(c->all.sum_x);
    for (size_t g = 0; g < c->n_groups; g++) sae_free(c->groups[g].sum_x), sae_free(c->labels[g]);
    sae_free(c->groups), sae_free(c->labels);
}

static int ctx_alloc(eval_ctx *c, sae_error *err) {
    int ovf = 0;
    size_t cv = sae_mul_size(sae_mul_size(c->cap, c->V, &ovf), sizeof(float), &ovf);
    size_t cd = sae_mul_size(sae_mul_size(c->cap, c->D, &ovf), sizeof(float), &ovf);
    if (ovf) return sae_error_set(err, SAE_ERR_ARG, "--batch", "too large for this model's vocabulary");
    c->saved = sae_alloc(cd), c->site_x = sae_alloc(cd);
    c->logits = sae_alloc(cv), c->logp = sae_alloc(cv);
    c->ce = sae_calloc_n(N_RUNS * c->cap, sizeof *c->ce), c->kl = sae_calloc_n(N_RUNS * c->cap, sizeof *c->kl);
    c->ce_clean = sae_calloc_n(c->cap, sizeof *c->ce_clean);
    c->row_sse = sae_calloc_n(c->cap, sizeof *c->row_sse);
    c->row_l0 = sae_calloc_n(c->cap, sizeof *c->row_l0);
    c->all.sum_x = sae_calloc_n(c->D, sizeof *c->all.sum_x);
    if (!c->saved || !c->site_x || !c->logits || !c->logp || !c->ce || !c->kl || !c->ce_clean ||
        !c->row_sse || !c->row_l0 || !c->all.sum_x)
        return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory for a batch of %zu tokens: lower --batch",
                             c->cap);
    return SAE_OK;
}

/* Drops the batch's windows past the token budget (at least one is kept). */
static void trim_batch(data_window_batch *b, uint64_t done, uint64_t max) {
    if (!max) return;
    size_t keep = 0;
    while (keep < b->n_win && done < max) {
        size_t T = b->off[keep + 1] - b->off[keep];
        done += T > 2 ? T - 2 : 0;
        keep++;
    }
    b->n_win = keep ? keep : 1;
    b->n_rows = b->off[b->n_win];
}

int train_splice_eval(const data_llama *lm, const data_tokenizer *t, sae_model *m, double scale,
                      const train_splice_params *p, train_splice_cb cb, void *user,
                      train_splice_result *out, sae_error *err) {
    memset(out, 0, sizeof *out);
    int rc = check_params(lm, m, p, err);
    if (rc < 0) return rc;
    eval_ctx c = {.lm = lm, .m = m, .p = p, .D = (size_t)lm->c.dim, .V = (size_t)lm->c.vocab_size,
                  .cap = train_splice_capacity(lm, p)};
    size_t seq = p->seq_len ? p->seq_len : (size_t)lm->c.seq_len;
    data_windows *w = NULL;
    data_llama_run *run = NULL;
    if ((rc = ctx_alloc(&c, err)) == SAE_OK && (rc = sae_splice_init(&c.sp, m, scale, p->layer, p->site, c.cap, err)) == SAE_OK) {
        c.sp.edits = p->edits, c.sp.n_edits = p->n_edits;
        rc = data_windows_open(&w, p->corpus_path, t, seq, c.cap, err);
    }
    if (rc == SAE_OK) rc = data_llama_run_init_seq(&run, lm, c.cap, seq, err);
    while (rc == SAE_OK && !(p->max_tokens && c.all.tokens >= p->max_tokens)) {
        data_window_batch b;
        int got = data_windows_next(w, &b, err);
        if (got <= 0) {
            rc = got;
            break;
        }
        trim_batch(&b, c.all.tokens, p->max_tokens);
        rc = eval_batch(&c, run, &b, err);
        if (rc == SAE_OK && cb) {
            data_windows_progress wp;
            data_windows_get_progress(w, &wp);
            cb(c.all.tokens, wp.bytes_done, wp.bytes_total, user);
        }
    }
    if (rc == SAE_OK && c.all.tokens == 0)
        rc = sae_error_set(err, SAE_ERR_FORMAT, p->corpus_path, "no token to score: every window is shorter "
                           "than 3 tokens (BOS and two) or the corpus is empty");
    if (rc == SAE_OK) {
        finish_scores(&c.all, c.D, scale, &out->all);
        if (p->by_label && !(out->by_label = sae_calloc_n(c.n_groups ? c.n_groups : 1, sizeof *out->by_label)))
            rc = sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    }
    if (rc == SAE_OK && p->by_label) {
        for (size_t g = 0; g < c.n_groups; g++) finish_scores(&c.groups[g], c.D, scale, &out->by_label[g]);
        out->n_labels = c.n_groups;
        out->labels = c.labels; /* handed over */
        c.labels = NULL;
        for (size_t g = 0; g < c.n_groups; g++) sae_free(c.groups[g].sum_x);
        c.n_groups = 0;
    }
    if (rc < 0) train_splice_result_free(out);
    data_llama_run_free(run);
    data_windows_close(w);
    ctx_free(&c);
    return rc;
}

void train_splice_result_free(train_splice_result *r) {
    for (size_t g = 0; g < r->n_labels; g++) sae_free(r->labels[g]);
    sae_free(r->labels), sae_free(r->by_label);
    memset(r, 0, sizeof *r);
}
