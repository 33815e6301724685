/* features/build.c: the streamed pass that builds a feature dictionary (see
 * feat.h for what is computed and why it is deterministic). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/gemm.h"
#include "common/mem.h"
#include "features/feat_internal.h"
#include "sae/kernels.h"

_Static_assert(FEAT_BIN_SAMPLES >= FEAT_QUANTILES, "distinct levels need a sample each");
/* the levels in tenths, so that ranks are computed in integers */
static const unsigned QUANTILE_TENTHS[FEAT_QUANTILES] = {1, 3, 5, 7, 9};
const double feat_quantile_levels[FEAT_QUANTILES] = {0.1, 0.3, 0.5, 0.7, 0.9}; /* the same, as shown */

feat_opts feat_default_opts(void) {
    feat_opts o = {.top_n = 32, .context = 8, .batch = 4096};
    return o;
}

typedef struct {
    float v;
    int64_t r;
} vr;

/* Accumulators of the pass, beside the results they become. */
typedef struct {
    feat_dict *fd;
    double *sum;           /* (M) */
    size_t *heap_n;        /* (M) filled entries of each top-N heap */
    float *res_val;        /* (M, BINS, FEAT_BIN_SAMPLES) reservoir of each histogram bin */
    int64_t *res_row;      /* the same: the rows sampled, -1 where unused */
    int32_t *sk_id;        /* (M, SKETCH) Misra-Gries slots, -1 empty */
    uint64_t *sk_cnt;      /* (M, SKETCH) sketch counts (ranking) */
    uint64_t *sk_hits;     /* (M, SKETCH) true hits since the slot was taken */
    double *sk_sum;        /* (M, SKETCH) activation summed over those hits */
    vr *sort;              /* (M, top_n) scratch for ordering each top-N heap */
    int has_tokens;
} pass_state;

static int hist_bin(float v) {
    double b = (log10((double)v) - FEAT_HIST_LOG10_MIN) /
               (FEAT_HIST_LOG10_MAX - FEAT_HIST_LOG10_MIN) * FEAT_HIST_BINS;
    if (!(b >= 0)) return 0;
    return b >= FEAT_HIST_BINS ? FEAT_HIST_BINS - 1 : (int)b;
}

/* deterministic "random" in [0,1) from (feature, bin, count): reservoir
 * sampling that does not depend on thread scheduling */
static double hash01(uint64_t a, uint64_t b, uint64_t c) {
    uint64_t x = a * 0x9e3779b97f4a7c15ULL ^ b * 0xc2b2ae3d27d4eb4fULL ^ c * 0x165667b19e3779f9ULL;
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 29;
    return (double)(x >> 11) * (1.0 / 9007199254740992.0);
}

/* min-heap on value; ties keep the earlier row (it was there first) */
static void heap_push(float *val, int64_t *row, size_t *n, size_t cap, float v, int64_t r) {
    if (*n < cap) {
        size_t i = (*n)++;
        while (i > 0 && val[(i - 1) / 2] > v) {
            val[i] = val[(i - 1) / 2];
            row[i] = row[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        val[i] = v;
        row[i] = r;
        return;
    }
    if (!(v > val[0])) return;
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, rr = l + 1, m = i;
        float mv = v;
        if (l < cap && val[l] < mv) m = l, mv = val[l];
        if (rr < cap && val[rr] < mv) m = rr;
        if (m == i) break;
        val[i] = val[m];
        row[i] = row[m];
        i = m;
    }
    val[i] = v;
    row[i] = r;
}

static void sketch_add(pass_state *s, size_t j, int32_t tok, float v) {
    int32_t *id = s->sk_id + j * FEAT_SKETCH;
    uint64_t *cnt = s->sk_cnt + j * FEAT_SKETCH, *hits = s->sk_hits + j * FEAT_SKETCH;
    double *sum = s->sk_sum + j * FEAT_SKETCH;
    int empty = -1;
    for (int k = 0; k < FEAT_SKETCH; k++) {
        if (id[k] == tok) {
            cnt[k]++, hits[k]++, sum[k] += v;
            return;
        }
        if (id[k] < 0 && empty < 0) empty = k;
    }
    if (empty >= 0) {
        id[empty] = tok, cnt[empty] = 1, hits[empty] = 1, sum[empty] = v;
        return;
    }
    for (int k = 0; k < FEAT_SKETCH; k++) /* Misra-Gries: all counts pay for the newcomer */
        if (--cnt[k] == 0) id[k] = -1;
}

/* Reservoir sampling (Vitter's algorithm R) of a bin's activations: the c-th
 * one (from 1) takes a free slot while there are any, then replaces a slot
 * with probability FEAT_BIN_SAMPLES / c, so the slots are a uniform sample of
 * the bin (all of it while it holds at most FEAT_BIN_SAMPLES). u is the
 * deterministic uniform draw for this c. */
static void bin_sample(float *val, int64_t *row, uint64_t c, double u, float v, int64_t r) {
    uint64_t slot = c <= FEAT_BIN_SAMPLES ? c - 1 : (uint64_t)(u * (double)c);
    if (slot >= FEAT_BIN_SAMPLES) return;
    val[slot] = v;
    row[slot] = r;
}

static void update(pass_state *s, size_t j, int64_t row, float v, int32_t tok) {
    feat_dict *fd = s->fd;
    fd->count[j]++;
    s->sum[j] += v;
    if (v > fd->max[j]) fd->max[j] = v;
    int b = hist_bin(v);
    uint64_t c = ++fd->hist[j * FEAT_HIST_BINS + b];
    bin_sample(s->res_val + (j * FEAT_HIST_BINS + (size_t)b) * FEAT_BIN_SAMPLES,
               s->res_row + (j * FEAT_HIST_BINS + (size_t)b) * FEAT_BIN_SAMPLES, c,
               hash01(j, (uint64_t)b, c), v, row);
    heap_push(fd->top_val + j * fd->top_n, fd->top_row + j * fd->top_n, &s->heap_n[j], fd->top_n, v,
              row);
    if (s->has_tokens) sketch_add(s, j, tok, v);
}

typedef struct {
    pass_state *s;
    const int64_t *rowid; /* block row -> data row */
    const int32_t *tok;   /* block row -> token, or NULL */
} block_ctx;

static void update_code(size_t j, size_t b, float v, void *user) {
    block_ctx *c = user;
    update(c->s, j, c->rowid[b], v, c->tok ? c->tok[b] : -1);
}

static int cmp_desc_val_row(const void *a, const void *b) {
    const struct { float v; int64_t r; } *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return x->r < y->r ? -1 : x->r > y->r;
}

static int cmp_asc_val_row(const void *a, const void *b) { return -cmp_desc_val_row(a, b); }

/* The 1-based rank of the q-th level among n sorted activations: the
 * inverse of the empirical distribution, ceil(level * n), at least 1. */
static uint64_t quantile_rank(int q, uint64_t n) {
    uint64_t r = (QUANTILE_TENTHS[q] * n + 9) / 10;
    return r ? r : 1;
}

/* Examples at the quantile levels of feature j. The histogram is exact, so
 * the bin holding the level-q activation (rank quantile_rank(q, n)) is known;
 * its reservoir, sorted, approximates the bin's order statistics, and the
 * sample whose place in it matches the rank's place in the bin is taken (the
 * exact activation while the bin holds at most FEAT_BIN_SAMPLES). Levels are
 * placed in increasing order, each on a later sample than the previous level
 * of its bin and leaving one for each later level of that bin: a bin holding
 * m distinct ranks has at least min(m, FEAT_BIN_SAMPLES) >= m samples (m <=
 * FEAT_QUANTILES <= FEAT_BIN_SAMPLES), so distinct ranks get distinct rows. */
static void quantile_examples(pass_state *s, size_t j) {
    feat_dict *fd = s->fd;
    const uint64_t *hist = fd->hist + j * FEAT_HIST_BINS, n = fd->count[j];
    float *qv = fd->q_val + j * FEAT_QUANTILES;
    int64_t *qr = fd->q_row + j * FEAT_QUANTILES;
    uint64_t rank[FEAT_QUANTILES], below[FEAT_QUANTILES]; /* rows in the bins before */
    int bin[FEAT_QUANTILES];
    for (int q = 0; q < FEAT_QUANTILES; q++) {
        qv[q] = 0.0f, qr[q] = -1, bin[q] = -1;
        if (!n) continue;
        rank[q] = quantile_rank(q, n);
        uint64_t cum = 0;
        for (int b = 0; b < FEAT_HIST_BINS; b++) {
            if (cum + hist[b] >= rank[q]) {
                bin[q] = b, below[q] = cum;
                break;
            }
            cum += hist[b];
        }
    }
    vr sorted[FEAT_BIN_SAMPLES];
    int sorted_bin = -1, prev_idx = -1;
    for (int q = 0; q < FEAT_QUANTILES; q++) {
        int b = bin[q];
        if (b < 0) continue;
        size_t base = (j * FEAT_HIST_BINS + (size_t)b) * FEAT_BIN_SAMPLES;
        size_t k = hist[b] < FEAT_BIN_SAMPLES ? (size_t)hist[b] : FEAT_BIN_SAMPLES;
        if (b != sorted_bin) {
            for (size_t i = 0; i < k; i++) sorted[i] = (vr){s->res_val[base + i], s->res_row[base + i]};
            qsort(sorted, k, sizeof *sorted, cmp_asc_val_row);
            sorted_bin = b, prev_idx = -1;
        }
        if (q > 0 && bin[q - 1] == b && rank[q - 1] == rank[q]) { /* the same activation (n < 5) */
            qv[q] = qv[q - 1], qr[q] = qr[q - 1];
            continue;
        }
        /* its place in the bin, (rank - below - 1/2) / hist, as a sample index */
        double place = ((double)(rank[q] - below[q]) - 0.5) / (double)hist[b];
        int idx = (int)(place * (double)k);
        int later = 0; /* later levels of this bin at other ranks, each needing a sample */
        for (int p = q + 1; p < FEAT_QUANTILES; p++) later += bin[p] == b && rank[p] != rank[p - 1];
        if (idx > (int)k - 1 - later) idx = (int)k - 1 - later;
        if (idx <= prev_idx) idx = prev_idx + 1;
        prev_idx = idx;
        qv[q] = sorted[idx].v, qr[q] = sorted[idx].r;
    }
}

static void finish_feature(pass_state *s, size_t j) {
    feat_dict *fd = s->fd;
    size_t N = fd->top_n, n = s->heap_n[j];
    fd->mean[j] = fd->count[j] ? (float)(s->sum[j] / (double)fd->count[j]) : 0.0f;
    vr *tmp = s->sort + j * N;
    for (size_t i = 0; i < n; i++) tmp[i] = (vr){fd->top_val[j * N + i], fd->top_row[j * N + i]};
    qsort(tmp, n, sizeof *tmp, cmp_desc_val_row);
    for (size_t i = 0; i < N; i++) {
        fd->top_val[j * N + i] = i < n ? tmp[i].v : 0.0f;
        fd->top_row[j * N + i] = i < n ? tmp[i].r : -1;
    }
    quantile_examples(s, j);
    /* frequent tokens: by sketch count, and by mean activation (>= 3 hits) */
    const int32_t *id = s->sk_id + j * FEAT_SKETCH;
    const uint64_t *cnt = s->sk_cnt + j * FEAT_SKETCH, *hits = s->sk_hits + j * FEAT_SKETCH;
    const double *sum = s->sk_sum + j * FEAT_SKETCH;
    char used_c[FEAT_SKETCH] = {0}, used_m[FEAT_SKETCH] = {0};
    for (int t = 0; t < FEAT_TOP_TOKENS; t++) {
        int bc = -1, bm = -1;
        for (int k = 0; k < FEAT_SKETCH; k++) {
            if (id[k] < 0) continue;
            if (!used_c[k] && (bc < 0 || cnt[k] > cnt[bc] || (cnt[k] == cnt[bc] && id[k] < id[bc]))) bc = k;
            double mk = hits[k] ? sum[k] / (double)hits[k] : 0;
            if (!used_m[k] && hits[k] >= 3 &&
                (bm < 0 || mk > sum[bm] / (double)hits[bm] || (mk == sum[bm] / (double)hits[bm] && id[k] < id[bm])))
                bm = k;
        }
        size_t o = j * FEAT_TOP_TOKENS + (size_t)t;
        fd->tok_count_id[o] = bc >= 0 ? id[bc] : -1;
        fd->tok_count[o] = bc >= 0 ? (int64_t)cnt[bc] : 0;
        fd->tok_mean_id[o] = bm >= 0 ? id[bm] : -1;
        fd->tok_mean[o] = bm >= 0 ? (float)(sum[bm] / (double)hits[bm]) : 0.0f;
        if (bc >= 0) used_c[bc] = 1;
        if (bm >= 0) used_m[bm] = 1;
    }
}

void feat_make_label(char *buf, size_t cap, const char *const *tokens, size_t n) {
    size_t o = 0;
    const char *seen[FEAT_TOP_TOKENS];
    size_t n_seen = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n && n_seen < 3; i++) {
        const char *t = tokens[i];
        for (;;) { /* trim leading spaces, ASCII and ideographic (U+3000) */
            if (*t == ' ') t++;
            else if (strncmp(t, "\xe3\x80\x80", 3) == 0) t += 3;
            else break;
        }
        if (!*t) continue;
        int dup = 0;
        for (size_t k = 0; k < n_seen; k++) dup |= strcmp(seen[k], t) == 0;
        if (dup) continue;
        seen[n_seen++] = t;
        int w = snprintf(buf + o, cap - o, "%s%s", o ? " · " : "", t);
        if (w < 0 || (size_t)w >= cap - o) break;
        o += (size_t)w;
    }
}

void feat_free(feat_dict *fd) {
    if (!fd) return;
    sae_free(fd->count), sae_free(fd->mean), sae_free(fd->max), sae_free(fd->hist), sae_free(fd->top_val);
    sae_free(fd->top_row), sae_free(fd->q_val), sae_free(fd->q_row), sae_free(fd->tok_count_id), sae_free(fd->tok_count);
    sae_free(fd->tok_mean_id), sae_free(fd->tok_mean);
    for (size_t j = 0; fd->label && j < fd->M; j++) sae_free(fd->label[j]);
    sae_free(fd->label);
    sae_free(fd->lens_up_id), sae_free(fd->lens_down_id), sae_free(fd->lens_up), sae_free(fd->lens_down);
    for (size_t i = 0; fd->vocab && i < fd->vocab_size; i++) sae_free(fd->vocab[i]);
    sae_free(fd->vocab);
    sae_free(fd);
}

feat_dict *feat__alloc(size_t M, size_t top_n) {
    feat_dict *fd = sae_calloc_n(1, sizeof *fd);
    if (!fd) return NULL;
    fd->M = M;
    fd->top_n = top_n;
    fd->count = sae_calloc_n(M, sizeof *fd->count);
    fd->mean = sae_calloc_n(M, sizeof *fd->mean);
    fd->max = sae_calloc_n(M, sizeof *fd->max);
    fd->hist = sae_calloc_n(M * FEAT_HIST_BINS, sizeof *fd->hist);
    fd->top_val = sae_calloc_n(M * top_n, sizeof *fd->top_val);
    fd->top_row = sae_calloc_n(M * top_n, sizeof *fd->top_row);
    fd->q_val = sae_calloc_n(M * FEAT_QUANTILES, sizeof *fd->q_val);
    fd->q_row = sae_calloc_n(M * FEAT_QUANTILES, sizeof *fd->q_row);
    fd->tok_count_id = sae_calloc_n(M * FEAT_TOP_TOKENS, sizeof *fd->tok_count_id);
    fd->tok_count = sae_calloc_n(M * FEAT_TOP_TOKENS, sizeof *fd->tok_count);
    fd->tok_mean_id = sae_calloc_n(M * FEAT_TOP_TOKENS, sizeof *fd->tok_mean_id);
    fd->tok_mean = sae_calloc_n(M * FEAT_TOP_TOKENS, sizeof *fd->tok_mean);
    fd->label = sae_calloc_n(M, sizeof *fd->label);
    fd->lens_up_id = sae_calloc_n(M * FEAT_LENS, sizeof *fd->lens_up_id);
    fd->lens_down_id = sae_calloc_n(M * FEAT_LENS, sizeof *fd->lens_down_id);
    fd->lens_up = sae_calloc_n(M * FEAT_LENS, sizeof *fd->lens_up);
    fd->lens_down = sae_calloc_n(M * FEAT_LENS, sizeof *fd->lens_down);
    if (!fd->count || !fd->mean || !fd->max || !fd->hist || !fd->top_val || !fd->top_row ||
        !fd->q_val || !fd->q_row || !fd->tok_count_id || !fd->tok_count || !fd->tok_mean_id ||
        !fd->tok_mean || !fd->label || !fd->lens_up_id || !fd->lens_down_id || !fd->lens_up ||
        !fd->lens_down) {
        feat_free(fd);
        return NULL;
    }
    return fd;
}

int feat__logit_lens_blocks(const sae_model *m, data_actfile *f, feat__lens_visit visit, void *user,
                            sae_error *err) {
    size_t D = m->cfg.d, M = m->cfg.m, V = f->vocab_size;
    const size_t blk = 256;
    float *U = sae_alloc(V * D * sizeof(float)), *g = sae_malloc(D * sizeof(float));
    float *dirs = sae_alloc(blk * D * sizeof(float)), *lg = sae_alloc(blk * V * sizeof(float));
    int rc = U && g && dirs && lg ? SAE_OK : sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    if (rc == SAE_OK) rc = data_actfile_read_f32(f, "unembed", U, V * D, err);
    if (rc == SAE_OK) {
        if (f->has_final_norm) rc = data_actfile_read_f32(f, "final_norm", g, D, err);
        else
            for (size_t c = 0; c < D; c++) g[c] = 1.0f; /* no final norm: the raw direction */
    }
    for (size_t j0 = 0; rc == SAE_OK && j0 < M; j0 += blk) {
        size_t nb = M - j0 < blk ? M - j0 : blk;
        for (size_t i = 0; i < nb; i++)
            for (size_t c = 0; c < D; c++) dirs[i * D + c] = m->p.W_dec[(j0 + i) * D + c] * g[c];
        sae_gemm(0, 1, nb, V, D, 1.0f, dirs, D, U, D, 0.0f, lg, V);
        visit(j0, nb, lg, V, user);
    }
    sae_free(U), sae_free(g), sae_free(dirs), sae_free(lg);
    return rc;
}

/* The FEAT_LENS most promoted and most suppressed tokens of each feature. */
static void lens_top(size_t j0, size_t nb, const float *lg, size_t V, void *user) {
    feat_dict *fd = user;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < nb; i++) {
        const float *l = lg + i * V;
        size_t j = j0 + i;
        for (int t = 0; t < FEAT_LENS; t++) { /* selection: K passes over V */
            int32_t up = -1, dn = -1;
            for (size_t v = 0; v < V; v++) {
                int taken_u = 0, taken_d = 0;
                for (int k = 0; k < t; k++) {
                    taken_u |= fd->lens_up_id[j * FEAT_LENS + k] == (int32_t)v;
                    taken_d |= fd->lens_down_id[j * FEAT_LENS + k] == (int32_t)v;
                }
                if (!taken_u && (up < 0 || l[v] > l[up])) up = (int32_t)v;
                if (!taken_d && (dn < 0 || l[v] < l[dn])) dn = (int32_t)v;
            }
            fd->lens_up_id[j * FEAT_LENS + t] = up, fd->lens_up[j * FEAT_LENS + t] = l[up];
            fd->lens_down_id[j * FEAT_LENS + t] = dn, fd->lens_down[j * FEAT_LENS + t] = l[dn];
        }
    }
}

static int logit_lens(feat_dict *fd, const sae_model *m, data_actfile *f, sae_error *err) {
    int rc = feat__logit_lens_blocks(m, f, lens_top, fd, err);
    fd->has_lens = rc == SAE_OK;
    return rc;
}

static void pass_free(pass_state *s) {
    sae_free(s->sum), sae_free(s->heap_n), sae_free(s->res_val), sae_free(s->res_row);
    sae_free(s->sk_id), sae_free(s->sk_cnt), sae_free(s->sk_hits), sae_free(s->sk_sum);
    sae_free(s->sort);
}

int feat_build(feat_dict **out, sae_model *m, double input_scale, data_actfile *f,
               const feat_opts *opts, feat_progress_cb cb, void *user, sae_error *err) {
    *out = NULL;
    size_t D = m->cfg.d, M = m->cfg.m, B = opts->batch;
    if (D != f->d)
        return sae_error_set(err, SAE_ERR_MISMATCH, f->path,
                             "the data has d=%zu but the SAE was trained on d=%zu", f->d, D);
    SAE_ASSERT(B > 0 && B <= m->capacity && opts->top_n > 0);
    feat_dict *fd = feat__alloc(M, opts->top_n);
    pass_state s = {.fd = fd, .has_tokens = f->has_tokens && f->vocab_size > 0};
    s.sum = sae_calloc_n(M, sizeof *s.sum);
    s.heap_n = sae_calloc_n(M, sizeof *s.heap_n);
    s.res_val = sae_calloc_n(M * FEAT_HIST_BINS * FEAT_BIN_SAMPLES, sizeof *s.res_val);
    s.res_row = sae_calloc_n(M * FEAT_HIST_BINS * FEAT_BIN_SAMPLES, sizeof *s.res_row);
    s.sk_id = sae_malloc(M * FEAT_SKETCH * sizeof *s.sk_id);
    s.sk_cnt = sae_calloc_n(M * FEAT_SKETCH, sizeof *s.sk_cnt);
    s.sk_hits = sae_calloc_n(M * FEAT_SKETCH, sizeof *s.sk_hits);
    s.sk_sum = sae_calloc_n(M * FEAT_SKETCH, sizeof *s.sk_sum);
    s.sort = sae_calloc_n(M * opts->top_n, sizeof *s.sort);
    float *raw = sae_alloc(B * D * sizeof(float)), *x = sae_alloc(B * D * sizeof(float));
    int32_t *tok = sae_malloc(B * sizeof *tok);
    int64_t *rowid = sae_malloc(B * sizeof *rowid);
    int rc = fd && s.sum && s.heap_n && s.res_val && s.res_row && s.sk_id && s.sk_cnt && s.sk_hits &&
                     s.sk_sum && s.sort && raw && x && tok && rowid
                 ? SAE_OK
                 : sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory for %zu features", M);
    if (rc == SAE_OK) {
        snprintf(fd->data_path, sizeof fd->data_path, "%s", f->path);
        fd->context = opts->context;
        rc = data_actfile_identity(f, &fd->data_id, err);
    }
    if (rc == SAE_OK) {
        for (size_t i = 0; i < M * FEAT_SKETCH; i++) s.sk_id[i] = -1;
        for (size_t i = 0; i < M * FEAT_HIST_BINS * FEAT_BIN_SAMPLES; i++) s.res_row[i] = -1;
    }
    float sc = (float)input_scale;
    uint64_t skipped = 0;
    for (size_t r0 = 0; rc == SAE_OK && r0 < f->n; r0 += B) {
        size_t cnt = f->n - r0 < B ? f->n - r0 : B, n = 0;
        rc = data_actfile_read_rows(f, r0, cnt, raw, err);
        if (rc == SAE_OK && s.has_tokens) rc = data_actfile_read_tokens(f, r0, cnt, tok, err);
        if (rc < 0) break;
        for (size_t i = 0; i < cnt; i++) { /* non-finite rows are skipped, and counted */
            if (data_row_nonfinite(raw + i * D, D)) {
                skipped++;
                continue;
            }
            for (size_t c = 0; c < D; c++) x[n * D + c] = raw[i * D + c] * sc;
            if (s.has_tokens) tok[n] = tok[i];
            rowid[n++] = (int64_t)(r0 + i);
        }
        if (n == 0) continue;
        if ((rc = sae_model_encode(m, x, n, err)) < 0) break;
        block_ctx bctx = {&s, rowid, s.has_tokens ? tok : NULL};
        if ((rc = feat__each_code(m, update_code, &bctx, err)) < 0) break;
        fd->n_tokens += n;
        if (cb) cb(r0 + cnt, f->n, user);
    }
    if (rc == SAE_OK) {
#pragma omp parallel for schedule(static)
        for (size_t j = 0; j < M; j++) finish_feature(&s, j);
        if (s.has_tokens) {
            fd->vocab_size = f->vocab_size;
            rc = data_actfile_read_vocab(f, &fd->vocab, err);
        }
        for (size_t j = 0; rc == SAE_OK && j < M; j++) {
            const char *toks[FEAT_TOP_TOKENS];
            size_t nt = 0;
            for (int t = 0; fd->vocab && t < FEAT_TOP_TOKENS; t++) {
                int32_t id = fd->tok_count_id[j * FEAT_TOP_TOKENS + t];
                if (id >= 0) toks[nt++] = fd->vocab[id];
            }
            char label[256];
            feat_make_label(label, sizeof label, toks, nt);
            if (!(fd->label[j] = sae_strdup(label))) rc = sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
        }
    }
    if (rc == SAE_OK && f->has_unembed) rc = logit_lens(fd, m, f, err);
    if (fd) fd->n_skipped = skipped;
    pass_free(&s);
    sae_free(raw), sae_free(x);
    sae_free(tok), sae_free(rowid);
    if (rc < 0) {
        feat_free(fd);
        return rc;
    }
    *out = fd;
    return SAE_OK;
}
