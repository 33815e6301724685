/* sae/model.c: SAE orchestration per architecture: allocation, init, forward,
 * backward. The math is in kernels.c; the only GEMM calls go through common/gemm.h. */
#include "sae/sae.h"

#include <math.h>
#include <string.h>

#include "common/mem.h"
#include "common/rng.h"
#include "common/gemm.h"
#include "sae/kernels.h"

const char *sae_arch_name(sae_arch a) { return a == SAE_ARCH_RELU ? "relu" : "topk"; }

int sae_arch_parse(const char *s, sae_arch *out) {
    if (strcmp(s, "topk") == 0) *out = SAE_ARCH_TOPK;
    else if (strcmp(s, "relu") == 0) *out = SAE_ARCH_RELU;
    else return -1;
    return 0;
}

int sae_config_validate(const sae_config *c, sae_error *err) {
    if (c->d == 0) return sae_error_set(err, SAE_ERR_ARG, "d", "input width must be positive");
    if (c->m == 0) return sae_error_set(err, SAE_ERR_ARG, "--latents", "must be positive");
    if (c->m > (size_t)INT32_MAX)
        return sae_error_set(err, SAE_ERR_ARG, "--latents", "at most %d latents", INT32_MAX);
    if (c->arch == SAE_ARCH_TOPK) {
        if (c->k == 0) return sae_error_set(err, SAE_ERR_ARG, "--k", "must be positive");
        if (c->k > c->m)
            return sae_error_set(err, SAE_ERR_ARG, "--k", "k=%zu is larger than --latents %zu",
                                 c->k, c->m);
        if (c->aux_k > c->m)
            return sae_error_set(err, SAE_ERR_ARG, "--aux-k", "aux_k=%zu is larger than --latents %zu",
                                 c->aux_k, c->m);
        if (!(c->aux_coef >= 0.0f))
            return sae_error_set(err, SAE_ERR_ARG, "--aux-coef", "must be >= 0");
    }
    return SAE_OK;
}

void sae_param_sizes(size_t n[SAE_NPARAM], const sae_config *c) {
    n[0] = c->m * c->d; /* W_enc */
    n[1] = c->m;        /* b_enc */
    n[2] = c->m * c->d; /* W_dec */
    n[3] = c->d;        /* b_dec */
}

size_t sae_param_count(const sae_config *c) {
    size_t n[SAE_NPARAM], t = 0;
    sae_param_sizes(n, c);
    for (int i = 0; i < SAE_NPARAM; i++) t += n[i];
    return t;
}

void sae_params_point(sae_params *p, float *blob, const sae_config *c) {
    size_t n[SAE_NPARAM];
    sae_param_sizes(n, c);
    float **ptrs[SAE_NPARAM] = {&p->W_enc, &p->b_enc, &p->W_dec, &p->b_dec};
    for (int i = 0; i < SAE_NPARAM; i++) {
        *ptrs[i] = blob;
        blob += n[i];
    }
}

/* --- allocation ------------------------------------------------------------ */
size_t sae_encode_chunk_rows(const sae_config *c, size_t capacity) {
    if (c->arch != SAE_ARCH_TOPK) return capacity; /* relu keeps all of pre: it is z */
    /* ~16 MiB of pre-activations per chunk (so the memory budget holds, see
     * README), in multiples of 64 rows, and at least 256 rows so the product
     * stays near its full rate: 512 rows at d=512, M=8192 */
    size_t rows = ((size_t)16 << 20) / (c->m * sizeof(float)) / 64 * 64;
    if (rows < 256) rows = 256;
    return rows < capacity ? rows : capacity;
}

typedef struct {
    void **ptr;
    size_t bytes;
} ws_item;

static size_t ws_items(sae_model *m, ws_item *it) {
    size_t cap = m->capacity, D = m->cfg.d, M = m->cfg.m, S = m->S, n = 0;
    int topk = m->cfg.arch == SAE_ARCH_TOPK, aux = topk && m->cfg.aux_k > 0;
#define WS(field, count) it[n++] = (ws_item){(void **)&m->field, (count) * sizeof *m->field}
    WS(xc, cap * D);
    WS(pre, (topk ? m->chunk : cap) * M);
    WS(xhat, cap * D); /* err and dxhat share it: see sae.h */
    WS(dpre_sum, M);
    WS(scratch_d, (cap > 2 * D ? cap : 2 * D));
    if (topk) {
        WS(idx, cap * S);
        WS(val, cap * S);
        WS(dval, cap * S);
        WS(lat_start, M + 1);
        WS(lat_entry, cap * S);
        WS(topk_scratch, SAE_TOPK_SLOTS * sae_topk_scratch_len(S));
    } else {
        WS(dz, cap * M);
        WS(dec_norm, M);
    }
    if (aux) WS(ehat, cap * D); /* dehat shares it */
#undef WS
    return n;
}

/* The buffers that share storage, each overwriting the other element by
 * element: xhat -> err = xhat - x -> dxhat = c * err, and ehat -> dehat. */
static void ws_alias(sae_model *m) {
    m->err = m->dxhat = m->xhat;
    m->dehat = m->ehat;
}

size_t sae_model_workspace_bytes(const sae_model *m) {
    ws_item it[32];
    size_t n = ws_items((sae_model *)m, it), t = 0;
    for (size_t i = 0; i < n; i++) t += it[i].bytes;
    return t;
}

int sae_model_init(sae_model *m, const sae_config *c, size_t capacity, int with_grads,
                   sae_error *err) {
    memset(m, 0, sizeof *m);
    int rc = sae_config_validate(c, err);
    if (rc < 0) return rc;
    m->cfg = *c;
    m->capacity = capacity;
    m->S = c->arch == SAE_ARCH_TOPK ? c->k + c->aux_k : 0;
    m->chunk = sae_encode_chunk_rows(c, capacity);
    size_t np = sae_param_count(c);
    m->param_blob = sae_calloc(np * sizeof(float));
    if (with_grads) m->grad_blob = sae_calloc(np * sizeof(float));
    int ok = m->param_blob && (!with_grads || m->grad_blob);
    ws_item it[32];
    size_t n = ws_items(m, it);
    for (size_t i = 0; i < n && ok; i++) ok = (*it[i].ptr = sae_calloc(it[i].bytes)) != NULL;
    if (!ok) {
        size_t need = np * sizeof(float) * (with_grads ? 2 : 1) + sae_model_workspace_bytes(m);
        sae_model_free(m);
        return sae_error_set(err, SAE_ERR_NOMEM, NULL,
                             "out of memory allocating the SAE (%.1f MiB needed)", need / 1048576.0);
    }
    ws_alias(m);
    sae_params_point(&m->p, m->param_blob, c);
    if (m->grad_blob) sae_params_point(&m->g, m->grad_blob, c);
    rc = sae_matmul_create(&m->enc, SAE_PRECISION_F32, m->chunk, c->m, c->d, err);
    if (rc < 0) sae_model_free(m);
    return rc;
}

int sae_model_set_precision(sae_model *m, sae_precision p, sae_error *err) {
    sae_matmul *mm;
    int rc = sae_matmul_create(&mm, p, m->chunk, m->cfg.m, m->cfg.d, err);
    if (rc < 0) return rc;
    sae_matmul_free(m->enc);
    m->enc = mm;
    m->precision = p;
    return SAE_OK;
}

void sae_model_free(sae_model *m) {
    ws_item it[32];
    size_t n = ws_items(m, it);
    for (size_t i = 0; i < n; i++) {
        sae_free(*it[i].ptr);
        *it[i].ptr = NULL;
    }
    m->err = m->dxhat = m->dehat = NULL;
    sae_free(m->param_blob);
    sae_free(m->grad_blob);
    m->param_blob = m->grad_blob = NULL;
    sae_matmul_free(m->enc);
    m->enc = NULL;
}

void sae_model_init_params(sae_model *m, uint64_t seed) {
    size_t D = m->cfg.d, M = m->cfg.m;
    float norm = m->cfg.arch == SAE_ARCH_TOPK ? 1.0f : 0.1f;
    sae_rng g;
    sae_rng_seed(&g, seed, 0x5ae);
    for (size_t j = 0; j < M; j++) {
        float *w = m->p.W_dec + j * D;
        double nn = 0;
        for (size_t c = 0; c < D; c++) {
            w[c] = sae_rng_normal(&g);
            nn += (double)w[c] * w[c];
        }
        float s = norm / (float)sqrt(nn);
        for (size_t c = 0; c < D; c++) w[c] *= s;
    }
    /* W_enc is stored (M, D), so "encoder = decoder transpose" is a copy */
    memcpy(m->p.W_enc, m->p.W_dec, M * D * sizeof(float));
    memset(m->p.b_enc, 0, M * sizeof(float));
    memset(m->p.b_dec, 0, D * sizeof(float));
}

/* --- forward ---------------------------------------------------------------- */
/* xc = x - b_dec, and the encoder plan fed the current W_enc. bf16 rounds
 * W_enc into its own copy: redone on every forward because callers write
 * parameters directly (an optimiser step, a file load), and it costs ~1% of
 * the product it feeds. */
static void encode_begin(sae_model *m, const float *x, size_t B) {
    sae_sub_bias_forward(m->xc, x, m->p.b_dec, B, m->cfg.d);
    sae_matmul_set_weights(m->enc, m->p.W_enc);
}

/* topk: pre = xc @ W_enc^T and the selections, chunk by chunk of rows, so
 * that only a (chunk, M) block of pre-activations ever exists. ka > 0 also
 * selects the ka best of the `dead` latents into the aux slots; otherwise
 * they are cleared so stale selections never reach the latent index. */
static void encode_select(sae_model *m, size_t B, const int32_t *dead, size_t n_dead, size_t ka) {
    size_t D = m->cfg.d, M = m->cfg.m, K = m->cfg.k, S = m->S;
    for (size_t r0 = 0; r0 < B; r0 += m->chunk) {
        size_t rows = B - r0 < m->chunk ? B - r0 : m->chunk;
        int32_t *idx = m->idx + r0 * S;
        float *val = m->val + r0 * S;
        sae_matmul_run(m->enc, m->xc + r0 * D, rows, m->pre);
        sae_topk_forward(idx, val, m->pre, m->p.b_enc, NULL, 0, rows, M, S, K, m->topk_scratch);
        if (ka > 0)
            sae_topk_forward(idx + K, val + K, m->pre, m->p.b_enc, dead, n_dead, rows, M, S, ka,
                             m->topk_scratch);
        for (size_t r = 0; r < rows; r++)
            for (size_t s = K + ka; s < S; s++) idx[r * S + s] = -1, val[r * S + s] = 0.0f;
    }
}

static void forward_topk(sae_model *m, const float *x, size_t B, const int32_t *dead,
                         size_t n_dead, sae_loss *out) {
    size_t D = m->cfg.d, K = m->cfg.k, S = m->S, aux_k = m->cfg.aux_k;
    size_t ka = aux_k > 0 && dead ? (n_dead < aux_k ? n_dead : aux_k) : 0;
    encode_begin(m, x, B);
    encode_select(m, B, dead, n_dead, ka);
    sae_sparse_decode_forward(m->xhat, m->idx, m->val, m->p.W_dec, m->p.b_dec, B, D, S, K);
    out->sse = sae_residual(m->err, m->xhat, x, B, D, m->scratch_d);
    m->var = out->var = sae_total_variance(x, B, D, m->scratch_d);
    out->loss = out->sse / m->var;

    m->n_aux = 0;
    m->aux_weight = 0.0f;
    if (ka > 0) {
        m->n_aux = ka;
        m->aux_weight = m->cfg.aux_coef * (float)fmin((double)n_dead / (double)aux_k, 1.0);
        sae_sparse_decode_forward(m->ehat, m->idx + K, m->val + K, m->p.W_dec, NULL, B, D, S, ka);
        /* target r = x - xhat = -err; ehat - r = ehat + err (dehat holds it for now) */
        double aux_sse = sae_add_sumsq(m->dehat, m->ehat, m->err, B, D, m->scratch_d);
        m->aux_var = sae_total_variance(m->err, B, D, m->scratch_d);
        if (m->aux_var > 0.0) {
            out->aux_loss = m->aux_weight * aux_sse / m->aux_var;
            out->loss += out->aux_loss;
        } else {
            /* a perfect fit leaves nothing to explain: drop the aux slots */
            m->aux_weight = 0.0f;
            m->n_aux = 0;
            for (size_t r = 0; r < B; r++)
                for (size_t s = K; s < S; s++) m->idx[r * S + s] = -1;
        }
    }
    size_t active = 0;
    for (size_t r = 0; r < B; r++)
        for (size_t s = 0; s < K; s++) active += m->val[r * S + s] > 0.0f;
    out->l0 = (double)active / (double)B;
}

static void forward_relu(sae_model *m, const float *x, size_t B, float l1, sae_loss *out) {
    size_t D = m->cfg.d, M = m->cfg.m;
    float *z = m->pre;
    encode_begin(m, x, B);
    sae_matmul_run(m->enc, m->xc, B, z);
    sae_relu_bias_forward(z, m->p.b_enc, B, M);
    /* xhat (B,D) = z (B,M) @ W_dec (M,D) + b_dec */
    for (size_t r = 0; r < B; r++) memcpy(m->xhat + r * D, m->p.b_dec, D * sizeof(float));
    sae_gemm(0, 0, B, D, M, 1.0f, z, M, m->p.W_dec, D, 1.0f, m->xhat, D);
    out->sse = sae_residual(m->err, m->xhat, x, B, D, m->scratch_d);
    m->var = out->var = sae_total_variance(x, B, D, m->scratch_d);
    sae_row_norms(m->dec_norm, m->p.W_dec, M, D);
    /* sparsity = l1/B * sum_j ||W_dec_j|| * sum_b z_bj ; dpre_sum holds sum_b z_bj */
    sae_col_sum(m->dpre_sum, z, 1.0f, B, M, 0);
    double sp = 0.0;
    size_t active = 0;
    for (size_t j = 0; j < M; j++) sp += (double)m->dec_norm[j] * m->dpre_sum[j];
#pragma omp parallel for schedule(static) reduction(+ : active)
    for (size_t i = 0; i < B * M; i++) active += z[i] > 0.0f; /* integer sum: order-free */
    out->sparsity = l1 * sp / (double)B;
    out->loss = out->sse / (double)B + out->sparsity;
    out->l0 = (double)active / (double)B;
}

void sae_model_forward(sae_model *m, const float *x, size_t B, float l1, const int32_t *dead,
                       size_t n_dead, sae_loss *out) {
    SAE_ASSERT(B > 0 && B <= m->capacity);
    memset(out, 0, sizeof *out);
    m->B = B;
    if (m->cfg.arch == SAE_ARCH_TOPK) forward_topk(m, x, B, dead, n_dead, out);
    else forward_relu(m, x, B, l1, out);
}

void sae_model_encode(sae_model *m, const float *x, size_t B) {
    SAE_ASSERT(B > 0 && B <= m->capacity);
    m->B = B;
    encode_begin(m, x, B);
    if (m->cfg.arch == SAE_ARCH_TOPK) {
        encode_select(m, B, NULL, 0, 0);
    } else {
        sae_matmul_run(m->enc, m->xc, B, m->pre);
        sae_relu_bias_forward(m->pre, m->p.b_enc, B, m->cfg.m);
    }
}

/* --- backward --------------------------------------------------------------- */
static void backward_topk(sae_model *m) {
    size_t B = m->B, D = m->cfg.d, M = m->cfg.m, K = m->cfg.k, S = m->S;
    float sc = (float)(2.0 / m->var);
    sae_scale(m->dxhat, m->err, sc, B * D);
    sae_col_sum(m->g.b_dec, m->dxhat, 1.0f, B, D, 0);
    sae_sparse_decode_backward(m->dval, m->dxhat, m->idx, m->val, m->p.W_dec, B, D, S, K);
    if (m->n_aux > 0 && m->aux_weight > 0.0f) {
        float sa = (float)(2.0 * m->aux_weight / m->aux_var);
        sae_scale(m->dehat, m->dehat, sa, B * D); /* held ehat + err */
        sae_sparse_decode_backward(m->dval + K, m->dehat, m->idx + K, m->val + K, m->p.W_dec, B,
                                   D, S, m->n_aux);
    } /* else the forward left every aux slot at idx -1: no aux gradient */
    sae_latent_index_build(m->lat_start, m->lat_entry, m->idx, m->val, B, M, S);
    sae_latent_scatter_backward(m->g.W_dec, m->g.W_enc, m->dpre_sum, m->lat_start, m->lat_entry,
                                m->val, m->dval, m->xc, m->dxhat, m->dehat, M, D, S, K);
    memcpy(m->g.b_enc, m->dpre_sum, M * sizeof *m->g.b_enc);
    /* xc = x - b_dec: db_dec -= sum_b dpre_b @ W_enc = W_enc^T @ dpre_sum */
    sae_gemv(1, M, D, -1.0f, m->p.W_enc, D, m->dpre_sum, 1.0f, m->g.b_dec);
}

static void backward_relu(sae_model *m, float l1) {
    size_t B = m->B, D = m->cfg.d, M = m->cfg.m;
    const float *z = m->pre;
    float sc = 2.0f / (float)B;
    sae_scale(m->dxhat, m->err, sc, B * D);
    sae_col_sum(m->g.b_dec, m->dxhat, 1.0f, B, D, 0);
    /* decoder: dW_dec = z^T @ dxhat + (l1/B) (sum_b z_bj) W_dec_j / ||W_dec_j|| */
    sae_gemm(1, 0, M, D, B, 1.0f, z, M, m->dxhat, D, 0.0f, m->g.W_dec, D);
    float lb = l1 / (float)B;
#pragma omp parallel for schedule(static)
    for (size_t j = 0; j < M; j++) {
        if (m->dec_norm[j] <= 0.0f) continue;
        float s = lb * m->dpre_sum[j] / m->dec_norm[j];
        const float *w = m->p.W_dec + j * D;
        float *g = m->g.W_dec + j * D;
        for (size_t c = 0; c < D; c++) g[c] += s * w[c];
    }
    /* dz (B,M) = dxhat @ W_dec^T + (l1/B) ||W_dec_j||, gated by z > 0 */
    for (size_t r = 0; r < B; r++)
        for (size_t j = 0; j < M; j++) m->dz[r * M + j] = lb * m->dec_norm[j];
    sae_gemm(0, 1, B, M, D, 1.0f, m->dxhat, D, m->p.W_dec, D, 1.0f, m->dz, M);
    sae_relu_backward(m->dz, z, B, M);
    /* encoder: dW_enc (M,D) = dz^T @ xc; db_enc = sum_b dz; db_dec -= W_enc^T @ sum_b dz */
    sae_gemm(1, 0, M, D, B, 1.0f, m->dz, M, m->xc, D, 0.0f, m->g.W_enc, D);
    sae_col_sum(m->dpre_sum, m->dz, 1.0f, B, M, 0);
    memcpy(m->g.b_enc, m->dpre_sum, M * sizeof *m->g.b_enc);
    sae_gemv(1, M, D, -1.0f, m->p.W_enc, D, m->dpre_sum, 1.0f, m->g.b_dec);
}

void sae_model_backward(sae_model *m, float l1) {
    SAE_ASSERT(m->grad_blob && m->B > 0);
    if (m->cfg.arch == SAE_ARCH_TOPK) backward_topk(m);
    else backward_relu(m, l1);
}

void sae_model_count_active(const sae_model *m, uint32_t *counts) {
    size_t B = m->B, M = m->cfg.m;
    if (m->cfg.arch == SAE_ARCH_TOPK) {
        for (size_t r = 0; r < B; r++)
            for (size_t s = 0; s < m->cfg.k; s++) {
                size_t e = r * m->S + s;
                if (m->idx[e] >= 0 && m->val[e] > 0.0f) counts[m->idx[e]]++;
            }
    } else {
        sae_col_count_positive(counts, m->pre, B, M);
    }
}

void sae_model_project_decoder_grad(sae_model *m) {
    size_t D = m->cfg.d, M = m->cfg.m;
#pragma omp parallel for schedule(static)
    for (size_t j = 0; j < M; j++) {
        const float *w = m->p.W_dec + j * D;
        float *g = m->g.W_dec + j * D;
        double dot = 0.0, nn = 0.0;
        for (size_t c = 0; c < D; c++) {
            dot += (double)g[c] * w[c];
            nn += (double)w[c] * w[c];
        }
        if (nn <= 0.0) continue;
        float s = (float)(dot / nn);
        for (size_t c = 0; c < D; c++) g[c] -= s * w[c];
    }
}

void sae_model_normalize_decoder(sae_model *m) {
    size_t D = m->cfg.d, M = m->cfg.m;
#pragma omp parallel for schedule(static)
    for (size_t j = 0; j < M; j++) {
        float *w = m->p.W_dec + j * D;
        double nn = 0.0;
        for (size_t c = 0; c < D; c++) nn += (double)w[c] * w[c];
        if (nn <= 0.0) continue;
        float s = (float)(1.0 / sqrt(nn));
        for (size_t c = 0; c < D; c++) w[c] *= s;
    }
}
