/* sae/arch_topk.c: the TopK family, which shares selection, sparse decoding,
 * AuxK and the sparse backward:
 *
 * topk (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"):
 *   z = the k largest of ReLU(pre) in each row
 *   L = ||xhat - x||^2 / V  +  aux_coef * min(n_dead/aux_k, 1) * ||ehat - r||^2 / V_r
 *   with V the batch's total variance (so the first term is the batch FVU),
 *   r = x - xhat held constant, and ehat the reconstruction of r from the
 *   aux_k largest pre-activations among dead latents (AuxK).
 * batchtopk (Bussmann, Leask & Nanda 2024, "BatchTopK Sparse Autoencoders"):
 *   training keeps the k*B largest values of ReLU(pre) over the whole batch
 *   (k is then the mean L0), same loss. Inference uses a threshold instead:
 *   z = pre * [pre > theta], so a token's L0 varies. theta is a running
 *   estimate of the smallest selected value: after each step
 *   theta += threshold_lr * (min_selected - theta), started at the first
 *   batch's value. dictionary_learning takes an EMA with decay 0.999 from step
 *   1000 and SAELens a rate of 0.01, for runs of tens of thousands of steps.
 *   Runs here are hundreds of steps, and there an estimate that old lags the
 *   parameters: with 0.01 the inference L0 came out 18% below k (synthetic
 *   d=64, M=512, k=8, 292 steps), with 0.05 within 1%. One batch's k*B-th
 *   value is already a quantile of k*B samples, so the short average costs
 *   little precision; the default is 0.05 (about the last 20 batches).
 * matryoshka (Bussmann et al. 2025, "Learning Multi-Level Features with
 *   Matryoshka SAEs"; Nabeshima 2024): batchtopk selection, and the loss sums
 *   the reconstruction error of every nested prefix of the dictionary:
 *   L = sum_g ||xhat_g - x||^2 / V + AuxK, xhat_g = b_dec + sum_{j < widths[g]} z_j W_dec_j,
 *   so early latents must reconstruct on their own and learn general features.
 *
 * Decoder rows are kept unit norm (gradient projected before the step, rows
 * renormalised after). All work after the encoder sgemm is O(B*(k+aux_k)*D).
 *
 * Codes are sparse rows (kernels.h): entries idx/val with per-row first and
 * count, main entries and AuxK entries described by two such lists.
 *   topk: row r owns slots r*S .. r*S + S (S = k + aux_k), main first, then AuxK.
 *   batch: AuxK rows at r*aux_k (B*aux_k entries), then the main selection
 *     sorted by (row, latent), its length known only when the batch is done.
 * The pre-activations exist only a chunk of rows at a time. */
#include <math.h>
#include <string.h>

#include "common/mem.h"
#include "sae/arch.h"
#include "sae/kernels.h"

typedef struct {
    size_t S;                 /* entries of capacity per row: k + aux_k */
    int32_t *idx;             /* (n_ent) selected latents, -1 unused */
    float *val, *dval;        /* (n_ent) */
    size_t n_ent;             /* entries allocated in idx/val (grows at inference) */
    uint32_t *ent_row;        /* (cap * S) row of each entry, | SAE_ROW_AUX for AuxK */
    uint32_t *main_first, *main_count, *aux_first, *aux_count; /* (cap) */
    size_t n_used;            /* entries of the last forward, AuxK included */
    uint32_t *lat_start;      /* (M + 1) latent index for the backward */
    uint32_t *lat_entry;      /* (cap * S) */
    sae_topk_pair *topk_scratch;
    float *ehat;              /* (cap, D) AuxK reconstruction, then ehat + err, then its gradient */
    size_t n_aux;             /* AuxK entries per row in the last forward */
    float aux_weight;         /* aux_coef * min(n_dead / aux_k, 1) of the last forward */
    double aux_var;           /* V_r of the last forward */
    /* batch selection */
    sae_batch_pair *sel, *local;
    size_t nthr;
    float batch_min;          /* smallest selected value of the last training forward */
    /* matryoshka */
    uint8_t *group;           /* (M) index of the first width above each latent */
    float *prefix;            /* (G - 1, cap, D) the nested reconstructions but the full one */
} topk_ws;

static int is_batch(const sae_config *c) { return c->arch != SAE_ARCH_TOPK; }
static size_t n_groups(const sae_config *c) { return c->arch == SAE_ARCH_MATRYOSHKA ? c->n_widths : 1; }

/* --- config ------------------------------------------------------------------------ */
static void topk_defaults(sae_config *c, sae_train_hints *h) {
    c->k = 32;
    c->aux_k = SAE_AUTO;
    c->aux_coef = 1.0f / 32.0f;
    if (is_batch(c)) c->threshold_lr = 0.05f;
    /* Gao et al. 2024 recipe; lr chosen so short runs converge (2e-3 reaches
     * FVU ~0.08 on d=512, M=8192 in 2M tokens, sparsify's 2.8e-4 does not) */
    *h = (sae_train_hints){.lr = 2e-3f};
}

static int topk_validate(const sae_config *c, sae_error *err) {
    if (c->k == 0) return sae_error_set(err, SAE_ERR_ARG, "--k", "must be positive");
    if (c->k > c->m)
        return sae_error_set(err, SAE_ERR_ARG, "--k", "k=%zu is larger than --latents %zu", c->k, c->m);
    if (c->aux_k > c->m)
        return sae_error_set(err, SAE_ERR_ARG, "--aux-k", "aux_k=%zu is larger than --latents %zu",
                             c->aux_k, c->m);
    if (!(c->aux_coef >= 0.0f)) return sae_error_set(err, SAE_ERR_ARG, "--aux-coef", "must be >= 0");
    if (is_batch(c) && !(c->threshold_lr > 0.0f && c->threshold_lr <= 1.0f))
        return sae_error_set(err, SAE_ERR_ARG, "--threshold-lr", "must be in (0, 1]");
    if (c->arch == SAE_ARCH_MATRYOSHKA) {
        if (c->n_widths < 1 || c->n_widths > SAE_MAX_WIDTHS)
            return sae_error_set(err, SAE_ERR_ARG, "--widths", "give 1 to %d widths", SAE_MAX_WIDTHS);
        for (size_t i = 0; i < c->n_widths; i++)
            if (c->widths[i] == 0 || (i && c->widths[i] <= c->widths[i - 1]))
                return sae_error_set(err, SAE_ERR_ARG, "--widths", "must be positive and strictly increasing");
        if (c->widths[c->n_widths - 1] != c->m)
            return sae_error_set(err, SAE_ERR_ARG, "--widths", "the last width (%zu) must equal --latents (%zu)",
                                 c->widths[c->n_widths - 1], c->m);
    }
    return SAE_OK;
}

static size_t topk_tensors(const sae_config *c, sae_tensor *t) {
    size_t n = sae__base_tensors(c, t);
    /* the inference threshold: state, set by the trainer's hook, never by Adam */
    if (is_batch(c)) t[n++] = (sae_tensor){"threshold", 1, 0, 0, 0, offsetof(sae_params, threshold)};
    return n;
}

/* --- workspace --------------------------------------------------------------------- */
static size_t topk_workspace(sae_model *m, sae__ws_item *it) {
    topk_ws *w = m->arch_ws;
    const sae_config *c = &m->cfg;
    size_t cap = m->capacity, M = c->m, D = c->d, n = 0;
    int train = m->grad_blob != NULL;
    w->S = c->k + c->aux_k;
    if (!w->n_ent) w->n_ent = cap * w->S;
    if (!w->nthr) { /* fixed at init: the number of scan buffers (at most 64 threads scan) */
        int t = sae_get_threads();
        w->nthr = t < 1 ? 1 : t > 64 ? 64 : (size_t)t;
    }
#define WS(field, count) it[n++] = (sae__ws_item){(void **)&w->field, (count) * sizeof *w->field}
    WS(idx, w->n_ent);
    WS(val, w->n_ent);
    WS(main_first, cap);
    WS(main_count, cap);
    WS(aux_first, cap);
    WS(aux_count, cap);
    WS(topk_scratch, SAE_TOPK_SLOTS * sae_topk_scratch_len(w->S));
    if (train) {
        WS(dval, cap * w->S);
        WS(ent_row, cap * w->S);
        WS(lat_start, M + 1);
        WS(lat_entry, cap * w->S);
        if (c->aux_k) WS(ehat, cap * D);
        if (is_batch(c)) {
            WS(sel, (w->nthr + 1) * c->k * cap);
            WS(local, w->nthr * sae_batch_local_len(c->k * cap));
        }
        if (n_groups(c) > 1) {
            WS(group, M);
            WS(prefix, (n_groups(c) - 1) * cap * D);
        }
    }
#undef WS
    return n;
}

/* Grows idx/val (inference only: a threshold rule has no bound on the codes),
 * keeping the first `keep` entries. */
static int grow_entries(topk_ws *w, size_t need, size_t keep, sae_error *err) {
    if (need <= w->n_ent) return SAE_OK;
    size_t cap = need + need / 2;
    int32_t *idx = sae_alloc(cap * sizeof *idx);
    float *val = sae_alloc(cap * sizeof *val);
    if (!idx || !val) {
        sae_free(idx), sae_free(val);
        return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory for %zu codes", need);
    }
    memcpy(idx, w->idx, keep * sizeof *idx);
    memcpy(val, w->val, keep * sizeof *val);
    sae_free(w->idx), sae_free(w->val);
    w->idx = idx, w->val = val, w->n_ent = cap;
    return SAE_OK;
}

static void topk_init(sae_model *m, uint64_t seed) {
    sae__init_tied(m, seed, 1.0f);
    if (m->p.threshold) m->p.threshold[0] = 0.0f; /* not yet estimated: ReLU */
}

/* --- selection ------------------------------------------------------------------ */
/* AuxK: the ka best of the dead latents of rows r0.. (pre is (rows, M)) into
 * the rows' AuxK entries; the rest of each row's AuxK capacity is cleared. */
static void select_aux(sae_model *m, size_t r0, size_t rows, const float *pre, const sae_step *st,
                       size_t ka) {
    topk_ws *w = m->arch_ws;
    size_t stride = m->cfg.aux_k;
    if (!stride) return;
    int32_t *idx = w->idx + w->aux_first[r0];
    float *val = w->val + w->aux_first[r0];
    size_t row_stride = is_batch(&m->cfg) ? stride : w->S; /* see the layouts above */
    if (ka > 0)
        sae_topk_forward(idx, val, pre, m->p.b_enc, st->dead, st->n_dead, rows, m->cfg.m, row_stride,
                         ka, w->topk_scratch);
    for (size_t r = 0; r < rows; r++)
        for (size_t s = ka; s < stride; s++) idx[r * row_stride + s] = -1, val[r * row_stride + s] = 0.0f;
}

/* Entry lists of the topk layout for B rows (main k, AuxK ka per row). */
static void topk_layout(topk_ws *w, size_t B, size_t K, size_t ka) {
    for (size_t r = 0; r < B; r++) {
        w->main_first[r] = (uint32_t)(r * w->S), w->main_count[r] = (uint32_t)K;
        w->aux_first[r] = (uint32_t)(r * w->S + K), w->aux_count[r] = (uint32_t)ka;
    }
    w->n_used = B * w->S;
}

static void select_topk(sae_model *m, size_t B, const sae_step *st, size_t ka) {
    topk_ws *w = m->arch_ws;
    size_t M = m->cfg.m, K = m->cfg.k, S = w->S;
    topk_layout(w, B, K, ka);
    for (size_t r0 = 0; r0 < B; r0 += m->chunk) {
        size_t rows = B - r0 < m->chunk ? B - r0 : m->chunk;
        sae__encode_rows(m, r0, rows, m->pre);
        sae_topk_forward(w->idx + r0 * S, w->val + r0 * S, m->pre, m->p.b_enc, NULL, 0, rows, M, S, K,
                         w->topk_scratch);
        select_aux(m, r0, rows, m->pre, st, ka);
    }
}

/* Training rule of the batch architectures: k*B over the batch. */
static void select_batch(sae_model *m, size_t B, const sae_step *st, size_t ka) {
    topk_ws *w = m->arch_ws;
    size_t M = m->cfg.m, N = m->cfg.k * B, aux = m->cfg.aux_k, n_sel = 0;
    float t = 0.0f;
    for (size_t r = 0; r < B; r++)
        w->aux_first[r] = (uint32_t)(r * aux), w->aux_count[r] = (uint32_t)ka;
    for (size_t r0 = 0; r0 < B; r0 += m->chunk) {
        size_t rows = B - r0 < m->chunk ? B - r0 : m->chunk;
        sae__encode_rows(m, r0, rows, m->pre);
        sae_batchtopk_chunk(w->sel, &n_sel, &t, N, w->local, w->nthr, m->pre, m->p.b_enc, r0, rows, M);
        select_aux(m, r0, rows, m->pre, st, ka);
    }
    w->batch_min = sae_batchtopk_finish(w->idx, w->val, w->main_first, w->main_count,
                                        (uint32_t)(B * aux), w->sel, n_sel, N, B);
    w->n_used = B * aux + (n_sel < N ? n_sel : N);
}

/* Inference rule of the batch architectures: pre > theta. */
static int select_threshold(sae_model *m, size_t B, sae_error *err) {
    topk_ws *w = m->arch_ws;
    size_t M = m->cfg.m, used = 0;
    float theta = m->p.threshold[0];
    for (size_t r0 = 0; r0 < B; r0 += m->chunk) {
        size_t rows = B - r0 < m->chunk ? B - r0 : m->chunk;
        sae__encode_rows(m, r0, rows, m->pre);
        sae_threshold_count(w->main_count + r0, m->pre, m->p.b_enc, theta, rows, M);
        size_t at = used;
        for (size_t r = r0; r < r0 + rows; r++) w->main_first[r] = (uint32_t)at, at += w->main_count[r];
        if (at > UINT32_MAX)
            return sae_error_set(err, SAE_ERR_ARG, NULL, "%zu active codes in one batch: use a smaller --batch", at);
        int rc = grow_entries(w, at, used, err);
        if (rc < 0) return rc;
        sae_threshold_fill(w->idx, w->val, w->main_first + r0, m->pre, m->p.b_enc, theta, rows, M);
        used = at;
    }
    for (size_t r = 0; r < B; r++) w->aux_first[r] = 0, w->aux_count[r] = 0;
    w->n_used = used;
    return SAE_OK;
}

static int encode_codes(sae_model *m, size_t B, const sae_step *st, size_t ka, sae_error *err) {
    if (!is_batch(&m->cfg)) select_topk(m, B, st, ka);
    else if (st) select_batch(m, B, st, ka);
    else return select_threshold(m, B, err);
    return SAE_OK;
}

static int topk_encode(sae_model *m, size_t B, sae_error *err) { return encode_codes(m, B, NULL, 0, err); }

/* --- forward ---------------------------------------------------------------------- */
static void aux_clear(topk_ws *w, size_t B) {
    for (size_t r = 0; r < B; r++)
        for (uint32_t e = w->aux_first[r]; e < w->aux_first[r] + w->aux_count[r]; e++) w->idx[e] = -1;
    w->n_aux = 0;
    w->aux_weight = 0.0f;
}

/* The AuxK term on the residual m->err of the full reconstruction. */
static void aux_forward(sae_model *m, size_t B, size_t ka, size_t n_dead, sae_loss *out) {
    topk_ws *w = m->arch_ws;
    size_t D = m->cfg.d;
    w->n_aux = 0;
    w->aux_weight = 0.0f;
    if (ka == 0) return;
    w->n_aux = ka;
    w->aux_weight = m->cfg.aux_coef * (float)fmin((double)n_dead / (double)m->cfg.aux_k, 1.0);
    sae_sparse_decode_forward(w->ehat, w->idx, w->val, m->p.W_dec, NULL, B, D, w->aux_first, w->aux_count);
    /* target r = x - xhat = -err; ehat - r = ehat + err, in place */
    double aux_sse = sae_add_sumsq(w->ehat, w->ehat, m->err, B, D, m->scratch_d);
    w->aux_var = sae_total_variance(m->err, B, D, m->scratch_d);
    if (w->aux_var > 0.0 && w->aux_weight > 0.0f) {
        out->aux_loss = w->aux_weight * aux_sse / w->aux_var;
        out->loss += out->aux_loss;
    } else {
        aux_clear(w, B); /* a perfect fit leaves nothing to explain: drop the aux entries */
    }
}

static size_t count_main(const topk_ws *w, size_t B) {
    size_t active = 0;
    for (size_t r = 0; r < B; r++)
        for (uint32_t e = w->main_first[r]; e < w->main_first[r] + w->main_count[r]; e++)
            active += w->val[e] > 0.0f;
    return active;
}

/* Matryoshka: the nested reconstructions and their summed loss. */
static void prefix_forward(sae_model *m, const float *x, size_t B, sae_loss *out) {
    topk_ws *w = m->arch_ws;
    size_t D = m->cfg.d, G = n_groups(&m->cfg);
    float *outs[SAE_MAX_WIDTHS];
    for (size_t g = 0; g + 1 < G; g++) outs[g] = w->prefix + g * m->capacity * D;
    outs[G - 1] = m->xhat;
    sae_sparse_decode_prefixes(outs, w->idx, w->val, m->p.W_dec, m->p.b_dec, B, D, w->main_first,
                               w->main_count, m->cfg.widths, G);
    sae__residual_and_variance(m, x, B, out);
    double sum = out->sse;
    for (size_t g = 0; g + 1 < G; g++) sum += sae_residual(outs[g], outs[g], x, B, D, m->scratch_d);
    out->loss = sum / out->var;
}

static int topk_forward(sae_model *m, const float *x, size_t B, const sae_step *st, sae_loss *out,
                        sae_error *err) {
    topk_ws *w = m->arch_ws;
    size_t D = m->cfg.d, aux_k = m->cfg.aux_k;
    size_t ka = st && aux_k > 0 && st->dead ? (st->n_dead < aux_k ? st->n_dead : aux_k) : 0;
    int rc = encode_codes(m, B, st, ka, err);
    if (rc < 0) return rc;
    if (st && n_groups(&m->cfg) > 1) {
        prefix_forward(m, x, B, out);
    } else {
        sae_sparse_decode_forward(m->xhat, w->idx, w->val, m->p.W_dec, m->p.b_dec, B, D, w->main_first,
                                  w->main_count);
        sae__residual_and_variance(m, x, B, out);
        out->loss = out->sse / out->var;
    }
    aux_forward(m, B, ka, st ? st->n_dead : 0, out);
    out->l0 = (double)count_main(w, B) / (double)B;
    return SAE_OK;
}

/* --- backward ------------------------------------------------------------------------ */
static void fill_ent_rows(sae_model *m, size_t B) {
    topk_ws *w = m->arch_ws;
    for (size_t r = 0; r < B; r++) {
        for (uint32_t e = w->main_first[r]; e < w->main_first[r] + w->main_count[r]; e++)
            w->ent_row[e] = (uint32_t)r;
        for (uint32_t e = w->aux_first[r]; e < w->aux_first[r] + m->cfg.aux_k; e++)
            w->ent_row[e] = (uint32_t)r | SAE_ROW_AUX;
    }
}

/* dxhat_g for every prefix, then summed from the last: buffer g ends up
 * holding sum_{i >= g} dL/dxhat_i, the gradient every latent of group g sees. */
static void prefix_backward(sae_model *m, float sc, const float **douts) {
    topk_ws *w = m->arch_ws;
    size_t B = m->B, D = m->cfg.d, G = n_groups(&m->cfg);
    douts[G - 1] = m->dxhat;
    for (size_t g = G - 1; g-- > 0;) {
        float *p = w->prefix + g * m->capacity * D;
        sae_scale(p, p, sc, B * D);
        sae_add_sumsq(p, p, douts[g + 1], B, D, m->scratch_d);
        douts[g] = p;
    }
}

static void topk_backward(sae_model *m, const sae_step *st) {
    (void)st;
    topk_ws *w = m->arch_ws;
    size_t B = m->B, D = m->cfg.d, M = m->cfg.m;
    float sc = (float)(2.0 / m->var);
    const float *douts[SAE_MAX_WIDTHS];
    sae_scale(m->dxhat, m->err, sc, B * D);
    douts[0] = m->dxhat;
    if (n_groups(&m->cfg) > 1) prefix_backward(m, sc, douts);
    const uint8_t *group = n_groups(&m->cfg) > 1 ? w->group : NULL;
    sae_col_sum(m->g.b_dec, douts[0], 1.0f, B, D, 0);
    sae_sparse_decode_backward(w->dval, douts, group, w->idx, w->val, m->p.W_dec, B, D, w->main_first,
                               w->main_count);
    if (w->n_aux > 0) {
        const float *da[1] = {w->ehat};
        float sa = (float)(2.0 * w->aux_weight / w->aux_var);
        sae_scale(w->ehat, w->ehat, sa, B * D); /* held ehat + err: now dL/dehat */
        sae_sparse_decode_backward(w->dval, da, NULL, w->idx, w->val, m->p.W_dec, B, D, w->aux_first,
                                   w->aux_count);
    } /* else the forward left every aux entry at idx -1: no aux gradient */
    fill_ent_rows(m, B);
    sae_latent_index_build(w->lat_start, w->lat_entry, w->idx, w->val, w->n_used, M);
    sae_latent_scatter_backward(m->g.W_dec, m->g.W_enc, m->dpre_sum, w->lat_start, w->lat_entry,
                                w->ent_row, w->val, w->dval, m->xc, douts, group, w->ehat, M, D);
    memcpy(m->g.b_enc, m->dpre_sum, M * sizeof *m->g.b_enc);
    /* xc = x - b_dec: db_dec -= sum_b dpre_b @ W_enc = W_enc^T @ dpre_sum */
    sae_gemv(1, M, D, -1.0f, m->p.W_enc, D, m->dpre_sum, 1.0f, m->g.b_dec);
}

/* --- the rest of the table ------------------------------------------------------------- */
static void topk_count_active(const sae_model *m, uint32_t *counts) {
    const topk_ws *w = m->arch_ws;
    for (size_t r = 0; r < m->B; r++)
        for (uint32_t e = w->main_first[r]; e < w->main_first[r] + w->main_count[r]; e++)
            if (w->idx[e] >= 0 && w->val[e] > 0.0f) counts[w->idx[e]]++;
}

static int topk_codes(sae_model *m, sae_error *err) {
    topk_ws *w = m->arch_ws;
    return sae__codes_from_lists(m, w->idx, w->val, w->main_first, w->main_count, m->B, err);
}

static void batch_after_update(sae_model *m) {
    topk_ws *w = m->arch_ws;
    float *theta = m->p.threshold;
    sae__normalize_decoder(m);
    if (!(w->batch_min > 0.0f)) return; /* nothing was selected */
    if (!(theta[0] > 0.0f)) theta[0] = w->batch_min;
    else theta[0] += m->cfg.threshold_lr * (w->batch_min - theta[0]);
}

/* group[j] = the first width above latent j (the backward's lookup). */
static void ensure_groups(sae_model *m) {
    topk_ws *w = m->arch_ws;
    if (!w->group) return;
    for (size_t j = 0, g = 0; j < m->cfg.m; j++) {
        while (j >= m->cfg.widths[g]) g++;
        w->group[j] = (uint8_t)g;
    }
}

static int matryoshka_forward(sae_model *m, const float *x, size_t B, const sae_step *st, sae_loss *out,
                              sae_error *err) {
    if (st) ensure_groups(m);
    return topk_forward(m, x, B, st, out, err);
}

#define TOPK_COMMON                                                                                \
    .ws_struct_bytes = sizeof(topk_ws), .validate = topk_validate, .tensors = topk_tensors,        \
    .workspace = topk_workspace, .encode = topk_encode, .backward = topk_backward,                 \
    .count_active = topk_count_active, .codes = topk_codes, .defaults = topk_defaults,             \
    .before_update = sae__project_decoder_grad

const sae_arch_ops sae__arch_topk = {
    TOPK_COMMON,
    .name = "topk",
    .summary = "k largest ReLU pre-activations per token, AuxK (Gao et al. 2024)",
    .file_version = 1,
    .uses = SAE_USES_K | SAE_USES_AUX,
    .init = topk_init,
    .forward = topk_forward,
    .after_update = sae__normalize_decoder,
};

const sae_arch_ops sae__arch_batchtopk = {
    TOPK_COMMON,
    .name = "batchtopk",
    .summary = "k x batch largest over the batch, threshold at inference (Bussmann et al. 2024)",
    .file_version = 2,
    .uses = SAE_USES_K | SAE_USES_AUX | SAE_USES_THRESHOLD_LR,
    .init = topk_init,
    .forward = topk_forward,
    .after_update = batch_after_update,
};

const sae_arch_ops sae__arch_matryoshka = {
    TOPK_COMMON,
    .name = "matryoshka",
    .summary = "BatchTopK with nested --widths prefix losses (Bussmann et al. 2025)",
    .file_version = 2,
    .uses = SAE_USES_K | SAE_USES_AUX | SAE_USES_THRESHOLD_LR | SAE_USES_WIDTHS,
    .init = topk_init,
    .forward = matryoshka_forward,
    .after_update = batch_after_update,
};
