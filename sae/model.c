/* sae/model.c: the architecture table's one owner, and what every
 * architecture shares: config checks, the tensor list and blob layout,
 * allocation, the encoder product, the codes view and the decoder-norm hooks.
 * The architectures' own math is in sae/arch_*.c and sae/kernels.c; the only
 * GEMM calls go through common/gemm.h. */
#include "sae/sae.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "common/mem.h"
#include "common/rng.h"
#include "sae/arch.h"
#include "sae/kernels.h"

/* Indexed by sae_arch: the one place an architecture is chosen. */
static const sae_arch_ops *const ARCHS[SAE_ARCH_COUNT] = {
    [SAE_ARCH_TOPK] = &sae__arch_topk,
    [SAE_ARCH_RELU] = &sae__arch_relu,
    [SAE_ARCH_BATCHTOPK] = &sae__arch_batchtopk,
    [SAE_ARCH_JUMPRELU] = &sae__arch_jumprelu,
    [SAE_ARCH_MATRYOSHKA] = &sae__arch_matryoshka,
};

const char *const sae_arch_names[SAE_ARCH_COUNT + 1] = {
    [SAE_ARCH_TOPK] = "topk",         [SAE_ARCH_RELU] = "relu",
    [SAE_ARCH_BATCHTOPK] = "batchtopk", [SAE_ARCH_JUMPRELU] = "jumprelu",
    [SAE_ARCH_MATRYOSHKA] = "matryoshka", [SAE_ARCH_COUNT] = NULL,
};

static const sae_arch_ops *ops_of(sae_arch a) {
    SAE_ASSERT((unsigned)a < SAE_ARCH_COUNT);
    return ARCHS[a];
}

const char *sae_arch_name(sae_arch a) { return (unsigned)a < SAE_ARCH_COUNT ? sae_arch_names[a] : "?"; }
const char *sae_arch_summary(sae_arch a) { return ops_of(a)->summary; }
int sae_arch_file_version(sae_arch a) { return ops_of(a)->file_version; }

int sae_arch_parse(const char *s, sae_arch *out) {
    for (int a = 0; a < SAE_ARCH_COUNT; a++)
        if (strcmp(s, sae_arch_names[a]) == 0) {
            *out = (sae_arch)a;
            return 0;
        }
    return -1;
}

sae_config sae_config_default(sae_arch a) {
    sae_config c;
    sae_train_hints h;
    memset(&c, 0, sizeof c);
    c.arch = a;
    ops_of(a)->defaults(&c, &h);
    return c;
}

sae_train_hints sae_arch_train_hints(sae_arch a) {
    sae_config c;
    sae_train_hints h;
    memset(&c, 0, sizeof c);
    memset(&h, 0, sizeof h);
    ops_of(a)->defaults(&c, &h);
    return h;
}

unsigned sae_arch_uses(sae_arch a) { return ops_of(a)->uses; }

int sae_config_resolve(sae_config *c, size_t d, sae_error *err) {
    unsigned u = ops_of(c->arch)->uses;
    c->d = d;
    if (c->m == 0) c->m = 8 * d;
    if (!(u & SAE_USES_K)) c->k = 0;
    if (!(u & SAE_USES_AUX)) c->aux_k = 0, c->aux_coef = 0.0f;
    else if (c->aux_k == SAE_AUTO) c->aux_k = d / 2 < c->m ? d / 2 : c->m;
    if (!(u & SAE_USES_THRESHOLD_LR)) c->threshold_lr = 0.0f;
    if (!(u & SAE_USES_JUMP)) c->target_l0 = 0, c->bandwidth = 0.0f, c->threshold_init = 0.0f;
    if (!(u & SAE_USES_WIDTHS)) {
        c->n_widths = 0;
        memset(c->widths, 0, sizeof c->widths);
    } else if (c->n_widths == 0) {
        /* nested dictionaries a factor 4 apart, as in the Matryoshka paper's runs */
        size_t cand[3] = {c->m / 16, c->m / 4, c->m};
        for (int i = 0; i < 3; i++)
            if (cand[i] > 0 && (c->n_widths == 0 || cand[i] > c->widths[c->n_widths - 1]))
                c->widths[c->n_widths++] = cand[i];
    }
    return sae_config_validate(c, err);
}

int sae_config_validate(const sae_config *c, sae_error *err) {
    if ((unsigned)c->arch >= SAE_ARCH_COUNT)
        return sae_error_set(err, SAE_ERR_ARG, "--arch", "unknown architecture %d", (int)c->arch);
    if (c->d == 0) return sae_error_set(err, SAE_ERR_ARG, "d", "input width must be positive");
    if (c->m == 0) return sae_error_set(err, SAE_ERR_ARG, "--latents", "must be positive");
    if (c->m > (size_t)INT32_MAX)
        return sae_error_set(err, SAE_ERR_ARG, "--latents", "at most %d latents", INT32_MAX);
    /* every tensor's element count must fit a size_t, and the blob in bytes */
    if (c->d > SIZE_MAX / 4 / c->m / 3)
        return sae_error_set(err, SAE_ERR_ARG, "--latents", "d x M = %zu x %zu is too large", c->d, c->m);
    return ops_of(c->arch)->validate(c, err);
}

void sae_config_describe(const sae_config *c, char *buf, size_t cap) {
    unsigned u = ops_of(c->arch)->uses;
    size_t n = 0;
    buf[0] = 0;
#define PUT(...) n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, __VA_ARGS__)
    if (u & SAE_USES_K) PUT("k=%zu ", c->k);
    if ((u & SAE_USES_AUX) && c->aux_k) PUT("aux_k=%zu aux_coef=%g ", c->aux_k, (double)c->aux_coef);
    if ((u & SAE_USES_AUX) && !c->aux_k) PUT("(AuxK off) ");
    if (u & SAE_USES_THRESHOLD_LR) PUT("threshold_lr=%g ", (double)c->threshold_lr);
    if (u & SAE_USES_JUMP)
        PUT("target_l0=%zu bandwidth=%g threshold_init=%g ", c->target_l0, (double)c->bandwidth,
            (double)c->threshold_init);
    if (u & SAE_USES_WIDTHS) {
        PUT("widths=");
        for (size_t i = 0; i < c->n_widths; i++) PUT(i ? ",%zu" : "%zu", c->widths[i]);
    }
#undef PUT
    n = strlen(buf);
    if (n && buf[n - 1] == ' ') buf[n - 1] = 0;
}

int sae_config_compare(const sae_config *a, const sae_config *b, char *what, size_t cap) {
#define SAME(f, fmt, cast)                                                                         \
    if (a->f != b->f) {                                                                            \
        snprintf(what, cap, #f " " fmt " vs " fmt, (cast)a->f, (cast)b->f);                        \
        return 1;                                                                                  \
    }
    if (a->arch != b->arch) {
        snprintf(what, cap, "arch %s vs %s", sae_arch_name(a->arch), sae_arch_name(b->arch));
        return 1;
    }
    SAME(d, "%zu", size_t) SAME(m, "%zu", size_t) SAME(k, "%zu", size_t)
    SAME(aux_k, "%zu", size_t) SAME(aux_coef, "%g", double) SAME(threshold_lr, "%g", double)
    SAME(target_l0, "%zu", size_t) SAME(bandwidth, "%g", double)
    SAME(threshold_init, "%g", double) SAME(n_widths, "%zu", size_t)
    for (size_t i = 0; i < a->n_widths; i++) SAME(widths[i], "%zu", size_t)
#undef SAME
    return 0;
}

/* --- tensors and the blob ------------------------------------------------------- */
size_t sae__base_tensors(const sae_config *c, sae_tensor *t) {
    t[0] = (sae_tensor){"W_enc", c->m, c->d, 1, 1, offsetof(sae_params, W_enc)};
    t[1] = (sae_tensor){"b_enc", c->m, 0, 1, 0, offsetof(sae_params, b_enc)};
    t[2] = (sae_tensor){"W_dec", c->m, c->d, 1, 0, offsetof(sae_params, W_dec)};
    t[3] = (sae_tensor){"b_dec", c->d, 0, 1, 0, offsetof(sae_params, b_dec)};
    return 4;
}

size_t sae_tensors(const sae_config *c, sae_tensor t[SAE_MAX_TENSORS]) {
    return ops_of(c->arch)->tensors(c, t);
}

size_t sae_tensor_numel(const sae_tensor *t) { return t->rows * (t->cols ? t->cols : 1); }

float *sae_tensor_data(const sae_params *p, const sae_tensor *t) {
    return *(float *const *)((const char *)p + t->field);
}

static size_t count_floats(const sae_config *c, int learned_only) {
    sae_tensor t[SAE_MAX_TENSORS];
    size_t n = sae_tensors(c, t), total = 0;
    for (size_t i = 0; i < n; i++)
        if (t[i].learned || !learned_only) total += sae_tensor_numel(&t[i]);
    return total;
}

size_t sae_param_count(const sae_config *c) { return count_floats(c, 1); }
size_t sae_blob_count(const sae_config *c) { return count_floats(c, 0); }

void sae_params_point(sae_params *p, float *blob, const sae_config *c) {
    sae_tensor t[SAE_MAX_TENSORS];
    size_t n = sae_tensors(c, t);
    memset(p, 0, sizeof *p);
    for (size_t i = 0; i < n; i++) {
        *(float **)((char *)p + t[i].field) = blob;
        blob += sae_tensor_numel(&t[i]);
    }
}

/* Gradients cover the learned tensors only (state pointers stay NULL). */
static void grads_point(sae_params *g, float *blob, const sae_config *c) {
    sae_tensor t[SAE_MAX_TENSORS];
    size_t n = sae_tensors(c, t);
    memset(g, 0, sizeof *g);
    for (size_t i = 0; i < n && t[i].learned; i++) {
        *(float **)((char *)g + t[i].field) = blob;
        blob += sae_tensor_numel(&t[i]);
    }
}

/* --- allocation ------------------------------------------------------------------ */
static size_t chunk_rows(const sae_model *m) {
    if (m->ops->dense) return m->capacity; /* dense codes live in pre */
    /* ~16 MiB of pre-activations per chunk (so the memory budget holds, see
     * README), in multiples of 64 rows, and at least 256 rows so the product
     * stays near its full rate: 512 rows at d=512, M=8192 */
    size_t rows = ((size_t)16 << 20) / (m->cfg.m * sizeof(float)) / 64 * 64;
    if (rows < 256) rows = 256;
    return rows < m->capacity ? rows : m->capacity;
}

static size_t ws_items(sae_model *m, sae__ws_item *it) {
    size_t cap = m->capacity, D = m->cfg.d, M = m->cfg.m, n = 0;
#define WS(field, count) it[n++] = (sae__ws_item){(void **)&m->field, (count) * sizeof *m->field}
    WS(xc, cap * D);
    WS(pre, m->chunk * M);
    WS(xhat, cap * D); /* err and dxhat share it: see sae.h */
    WS(dpre_sum, M);
    WS(scratch_d, (cap > 2 * D ? cap : 2 * D));
    WS(code_start, M + 1);
#undef WS
    if (m->arch_ws) n += m->ops->workspace(m, it + n);
    SAE_ASSERT(n <= SAE__MAX_WS);
    return n;
}

size_t sae_model_workspace_bytes(const sae_model *m) {
    sae__ws_item it[SAE__MAX_WS];
    size_t n = ws_items((sae_model *)m, it), t = m->ops->ws_struct_bytes;
    for (size_t i = 0; i < n; i++) t += it[i].bytes;
    return t + m->code_cap * (sizeof *m->code_row + sizeof *m->code_val);
}

int sae_model_init(sae_model *m, const sae_config *c, size_t capacity, int with_grads,
                   sae_error *err) {
    memset(m, 0, sizeof *m);
    int rc = sae_config_validate(c, err);
    if (rc < 0) return rc;
    /* Every workspace size is a small multiple (at most ~2 x 8 bytes per
     * element) of capacity x d or capacity x M: check the products once, here,
     * so none of the unchecked size expressions below can wrap. */
    int ovf = capacity == 0;
    sae_mul_size(sae_mul_size(capacity, c->d + c->m + 2, &ovf), 64, &ovf);
    if (ovf)
        return sae_error_set(err, SAE_ERR_ARG, NULL, "workspace for %zu rows of d=%zu, M=%zu is too large",
                             capacity, c->d, c->m);
    m->cfg = *c;
    m->ops = ops_of(c->arch);
    m->capacity = capacity;
    m->chunk = chunk_rows(m);
    size_t nb = sae_blob_count(c), np = sae_param_count(c);
    m->param_blob = sae_calloc(nb * sizeof(float));
    if (with_grads) m->grad_blob = sae_calloc(np * sizeof(float));
    if (m->ops->ws_struct_bytes) m->arch_ws = sae_calloc(m->ops->ws_struct_bytes);
    int ok = m->param_blob && (!with_grads || m->grad_blob) &&
             (!m->ops->ws_struct_bytes || m->arch_ws);
    sae__ws_item it[SAE__MAX_WS];
    size_t n = ok ? ws_items(m, it) : 0;
    for (size_t i = 0; i < n && ok; i++) ok = (*it[i].ptr = sae_calloc(it[i].bytes)) != NULL;
    if (!ok) {
        size_t need = (nb + (with_grads ? np : 0)) * sizeof(float);
        if (m->arch_ws) need += sae_model_workspace_bytes(m);
        sae_model_free(m);
        return sae_error_set(err, SAE_ERR_NOMEM, NULL,
                             "out of memory allocating the SAE (%.1f MiB needed)", need / 1048576.0);
    }
    m->err = m->dxhat = m->xhat;
    sae_params_point(&m->p, m->param_blob, c);
    if (m->grad_blob) grads_point(&m->g, m->grad_blob, c);
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
    if (m->ops) {
        sae__ws_item it[SAE__MAX_WS];
        size_t n = ws_items(m, it);
        for (size_t i = 0; i < n; i++) {
            sae_free(*it[i].ptr);
            *it[i].ptr = NULL;
        }
    }
    sae_free(m->arch_ws);
    sae_free(m->code_row);
    sae_free(m->code_val);
    sae_free(m->param_blob);
    sae_free(m->grad_blob);
    sae_matmul_free(m->enc);
    memset(m, 0, sizeof *m);
}

/* --- init, forward, backward: through the table ----------------------------------- */
void sae__init_tied(sae_model *m, uint64_t seed, float dec_norm) {
    size_t D = m->cfg.d, M = m->cfg.m;
    sae_rng g;
    sae_rng_seed(&g, seed, 0x5ae);
    for (size_t j = 0; j < M; j++) {
        float *w = m->p.W_dec + j * D;
        double nn = 0;
        for (size_t c = 0; c < D; c++) {
            w[c] = sae_rng_normal(&g);
            nn += (double)w[c] * w[c];
        }
        float s = dec_norm / (float)sqrt(nn);
        for (size_t c = 0; c < D; c++) w[c] *= s;
    }
    /* W_enc is stored (M, D), so "encoder = decoder transpose" is a copy */
    memcpy(m->p.W_enc, m->p.W_dec, M * D * sizeof(float));
    memset(m->p.b_enc, 0, M * sizeof(float));
    memset(m->p.b_dec, 0, D * sizeof(float));
}

void sae_model_init_params(sae_model *m, uint64_t seed) { m->ops->init(m, seed); }

/* xc = x - b_dec, and the encoder plan fed the current W_enc. bf16 rounds
 * W_enc into its own copy: redone on every forward because callers write
 * parameters directly (an optimiser step, a file load), and it costs ~1% of
 * the product it feeds. */
static void encode_begin(sae_model *m, const float *x, size_t B) {
    SAE_ASSERT(B > 0 && B <= m->capacity);
    m->B = B;
    m->codes_ready = 0;
    sae_sub_bias_forward(m->xc, x, m->p.b_dec, B, m->cfg.d);
    sae_matmul_set_weights(m->enc, m->p.W_enc);
}

void sae__encode_rows(sae_model *m, size_t r0, size_t rows, float *pre) {
    sae_matmul_run(m->enc, m->xc + r0 * m->cfg.d, rows, pre);
}

void sae__residual_and_variance(sae_model *m, const float *x, size_t B, sae_loss *out) {
    size_t D = m->cfg.d;
    out->sse = sae_residual(m->err, m->xhat, x, B, D, m->scratch_d);
    m->var = out->var = sae_total_variance(x, B, D, m->scratch_d);
    if (B == 1) {
        /* One row has no spread of its own, so V = 0 and the loss would be Inf
         * (--batch 1 "diverged" at step 0). Its squared distance to b_dec, the
         * data's centre (initialised to its median or mean), estimates the
         * per-row variance that V stands for. */
        double v = 0.0;
        for (size_t c = 0; c < D; c++) v += (double)m->xc[c] * m->xc[c];
        m->var = out->var = v;
    }
}

void sae__dense_decode(sae_model *m, const float *z, size_t B) {
    size_t D = m->cfg.d, M = m->cfg.m;
    for (size_t r = 0; r < B; r++) memcpy(m->xhat + r * D, m->p.b_dec, D * sizeof(float));
    sae_gemm(0, 0, B, D, M, 1.0f, z, M, m->p.W_dec, D, 1.0f, m->xhat, D);
}

void sae__dense_encoder_backward(sae_model *m, const float *dpre, size_t B) {
    size_t D = m->cfg.d, M = m->cfg.m;
    sae_gemm(1, 0, M, D, B, 1.0f, dpre, M, m->xc, D, 0.0f, m->g.W_enc, D);
    sae_col_sum(m->dpre_sum, dpre, 1.0f, B, M, 0);
    memcpy(m->g.b_enc, m->dpre_sum, M * sizeof *m->g.b_enc);
    sae_gemv(1, M, D, -1.0f, m->p.W_enc, D, m->dpre_sum, 1.0f, m->g.b_dec);
}

int sae_model_forward(sae_model *m, const float *x, size_t B, const sae_step *st, sae_loss *out,
                      sae_error *err) {
    memset(out, 0, sizeof *out);
    encode_begin(m, x, B);
    return m->ops->forward(m, x, B, st && st->train ? st : NULL, out, err);
}

const float *sae_model_residual(const sae_model *m) { return m->err; }

void sae_model_calibrate(sae_model *m, const float *x, size_t n) {
    if (!m->ops->calibrate || n == 0) return;
    size_t B = n < m->capacity ? n : m->capacity;
    encode_begin(m, x, B);
    m->ops->calibrate(m, B);
}

int sae_model_encode(sae_model *m, const float *x, size_t B, sae_error *err) {
    encode_begin(m, x, B);
    return m->ops->encode(m, B, err);
}

void sae_model_backward(sae_model *m, const sae_step *st) {
    SAE_ASSERT(m->grad_blob && m->B > 0 && st && st->train);
    m->ops->backward(m, st);
}

void sae_model_count_active(const sae_model *m, uint32_t *counts) { m->ops->count_active(m, counts); }

void sae_model_before_update(sae_model *m) {
    if (m->ops->before_update) m->ops->before_update(m);
}

void sae_model_after_update(sae_model *m) {
    if (m->ops->after_update) m->ops->after_update(m);
}

/* --- the codes view ------------------------------------------------------------------ */
int sae_model_codes(sae_model *m, sae_codes *out, sae_error *err) {
    SAE_ASSERT(m->B > 0);
    if (!m->codes_ready) {
        int rc = m->ops->codes(m, err);
        if (rc < 0) return rc;
        m->codes_ready = 1;
    }
    *out = (sae_codes){.B = m->B, .M = m->cfg.m, .nnz = m->code_start[m->cfg.m],
                       .start = m->code_start, .row = m->code_row, .val = m->code_val};
    return SAE_OK;
}

static int codes_reserve(sae_model *m, size_t nnz, sae_error *err) {
    if (nnz > UINT32_MAX)
        return sae_error_set(err, SAE_ERR_ARG, NULL, "%zu active codes in one batch: use a smaller --batch", nnz);
    if (nnz <= m->code_cap && m->code_row) return SAE_OK;
    size_t cap = nnz + nnz / 2 + 1024; /* grow geometrically: a steady state never reallocates */
    uint32_t *r = sae_alloc(cap * sizeof *r);
    float *v = sae_alloc(cap * sizeof *v);
    if (!r || !v) {
        sae_free(r);
        sae_free(v);
        return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory for %zu codes", nnz);
    }
    sae_free(m->code_row);
    sae_free(m->code_val);
    m->code_row = r, m->code_val = v, m->code_cap = cap;
    return SAE_OK;
}

/* Counting sort by latent; rows visited in order, so each latent's rows increase. */
int sae__codes_from_lists(sae_model *m, const int32_t *idx, const float *val,
                          const uint32_t *first, const uint32_t *count, size_t B, sae_error *err) {
    size_t M = m->cfg.m;
    uint32_t *start = m->code_start;
    memset(start, 0, (M + 1) * sizeof *start);
    for (size_t r = 0; r < B; r++)
        for (uint32_t e = first[r]; e < first[r] + count[r]; e++)
            if (idx[e] >= 0 && val[e] > 0.0f) start[idx[e] + 1]++;
    for (size_t j = 0; j < M; j++) start[j + 1] += start[j];
    int rc = codes_reserve(m, start[M], err);
    if (rc < 0) return rc;
    for (size_t r = 0; r < B; r++)
        for (uint32_t e = first[r]; e < first[r] + count[r]; e++)
            if (idx[e] >= 0 && val[e] > 0.0f) {
                uint32_t t = start[idx[e]]++;
                m->code_row[t] = (uint32_t)r;
                m->code_val[t] = val[e];
            }
    for (size_t j = M; j > 0; j--) start[j] = start[j - 1];
    start[0] = 0;
    return SAE_OK;
}

int sae__codes_from_dense(sae_model *m, const float *z, size_t B, sae_error *err) {
    size_t M = m->cfg.m;
    uint32_t *start = m->code_start;
    memset(start, 0, (M + 1) * sizeof *start);
    sae_col_count_positive(start + 1, z, B, M);
    for (size_t j = 0; j < M; j++) start[j + 1] += start[j];
    int rc = codes_reserve(m, start[M], err);
    if (rc < 0) return rc;
    /* latents in parallel: each fills its own range, rows in order */
#pragma omp parallel for schedule(dynamic, 64)
    for (size_t j = 0; j < M; j++) {
        uint32_t t = start[j];
        for (size_t r = 0; r < B; r++)
            if (z[r * M + j] > 0.0f) {
                m->code_row[t] = (uint32_t)r;
                m->code_val[t++] = z[r * M + j];
            }
    }
    return SAE_OK;
}

/* --- unit-norm decoders ----------------------------------------------------------------- */
void sae__project_decoder_grad(sae_model *m) {
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

void sae__normalize_decoder(sae_model *m) {
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
