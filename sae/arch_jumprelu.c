/* sae/arch_jumprelu.c: the JumpReLU SAE (Rajamanoharan et al. 2024, "Jumping
 * Ahead: Improving Reconstruction Fidelity with JumpReLU Sparse
 * Autoencoders"; the architecture of Gemma Scope), trained toward a target L0
 * as dictionary_learning's JumpReLU trainer does:
 *   z    = ReLU(pre) * H(pre - theta_j)            theta (M) learned, directly
 *   l0   = (1/B) sum_{b,j} H(pre_bj - theta_j)     mean active latents per row
 *   L    = ||xhat - x||^2 / V  +  lambda * (l0 / target_l0 - 1)^2
 * theta is parameterised directly, not as log theta: SAELens found a log
 * threshold barely moves under Adam. Its gradient is the paper's
 * straight-through estimate through a rectangle kernel of width `bandwidth`
 * (sae_jumprelu_backward in kernels.c). lambda follows the trainer's
 * sparsity schedule (a linear warm-up, as for the ReLU L1 term). Decoder
 * rows are kept unit norm (gradient projected, rows renormalised), and theta
 * is clamped at 0 after each step so that z = pre * H(pre - theta) holds.
 * Dense like relu: pre and z are (cap, M). */
#include <math.h>
#include <string.h>

#include "common/gemm.h"
#include "sae/arch.h"
#include "sae/kernels.h"

typedef struct {
    uint32_t *row_count; /* (cap) calibration scratch */
    float *z;  /* (cap, M) codes */
    float *dz; /* (cap, M) dL/dz, then dL/dpre */
    double l0; /* of the last forward */
} jump_ws;

static void jump_defaults(sae_config *c, sae_train_hints *h) {
    c->target_l0 = 32;
    c->bandwidth = 0.05f;
    c->threshold_init = -1.0f; /* from the data: see jump_calibrate */
    *h = (sae_train_hints){.lr = 5e-3f, .sparsity_coef = 10.0f, .sparsity_warmup = 0.05f};
}

static int jump_validate(const sae_config *c, sae_error *err) {
    if (c->target_l0 == 0 || c->target_l0 > c->m)
        return sae_error_set(err, SAE_ERR_ARG, "--target-l0", "must be in 1..--latents (%zu)", c->m);
    if (!(c->bandwidth > 0.0f))
        return sae_error_set(err, SAE_ERR_ARG, "--bandwidth", "must be positive");
    if (!(c->threshold_init >= 0.0f || c->threshold_init == -1.0f))
        return sae_error_set(err, SAE_ERR_ARG, "--threshold-init", "must be >= 0, or -1 (from the data)");
    return SAE_OK;
}

static size_t jump_tensors(const sae_config *c, sae_tensor *t) {
    size_t n = sae__base_tensors(c, t);
    t[n++] = (sae_tensor){"threshold", c->m, 0, 1, 0, offsetof(sae_params, threshold)};
    return n;
}

static size_t jump_workspace(sae_model *m, sae__ws_item *it) {
    jump_ws *w = m->arch_ws;
    size_t n = m->capacity * m->cfg.m * sizeof(float);
    it[0] = (sae__ws_item){(void **)&w->z, n};
    it[1] = (sae__ws_item){(void **)&w->dz, n};
    it[2] = (sae__ws_item){(void **)&w->row_count, m->capacity * sizeof(uint32_t)};
    return 3;
}

static void jump_init(sae_model *m, uint64_t seed) {
    sae__init_tied(m, seed, 1.0f);
    /* automatic (negative): 0 until calibrate sees the data */
    float t0 = m->cfg.threshold_init > 0.0f ? m->cfg.threshold_init : 0.0f;
    for (size_t j = 0; j < m->cfg.m; j++) m->p.threshold[j] = t0;
}

/* threshold_init "auto": one threshold for every latent at which the
 * initial SAE has mean L0 = target_l0 on the sample, found by bisection on
 * the count. Short runs cannot move thresholds far (Adam moves each about lr
 * per step), so starting at the target matters more than any fixed value. */
static void jump_calibrate(sae_model *m, size_t B) {
    jump_ws *w = m->arch_ws;
    size_t M = m->cfg.m;
    if (m->cfg.threshold_init >= 0.0f) return;
    sae__encode_rows(m, 0, B, m->pre);
    float hi = 0.0f, lo = 0.0f;
    for (size_t i = 0; i < B * M; i++) hi = fmaxf(hi, m->pre[i] + m->p.b_enc[i % M]);
    double want = (double)m->cfg.target_l0 * (double)B;
    for (int it = 0; it < 40; it++) {
        float mid = 0.5f * (lo + hi);
        sae_threshold_count(w->row_count, m->pre, m->p.b_enc, mid, B, M);
        double n = 0;
        for (size_t r = 0; r < B; r++) n += w->row_count[r];
        if (n > want) lo = mid;
        else hi = mid;
    }
    for (size_t j = 0; j < M; j++) m->p.threshold[j] = hi;
}

static size_t jump_encode_only(sae_model *m, size_t B) {
    jump_ws *w = m->arch_ws;
    sae__encode_rows(m, 0, B, m->pre);
    return sae_jumprelu_forward(w->z, m->pre, m->p.b_enc, m->p.threshold, B, m->cfg.m);
}

static int jump_encode(sae_model *m, size_t B, sae_error *err) {
    (void)err;
    jump_encode_only(m, B);
    return SAE_OK;
}

static int jump_forward(sae_model *m, const float *x, size_t B, const sae_step *st, sae_loss *out,
                        sae_error *err) {
    (void)err;
    jump_ws *w = m->arch_ws;
    size_t active = jump_encode_only(m, B);
    sae__dense_decode(m, w->z, B);
    sae__residual_and_variance(m, x, B, out);
    w->l0 = out->l0 = (double)active / (double)B;
    double dev = w->l0 / (double)m->cfg.target_l0 - 1.0;
    out->sparsity = st ? st->sparsity_coef * dev * dev : 0.0;
    out->loss = out->sse / out->var + out->sparsity;
    return SAE_OK;
}

static void jump_backward(sae_model *m, const sae_step *st) {
    jump_ws *w = m->arch_ws;
    size_t B = m->B, D = m->cfg.d, M = m->cfg.m;
    double t = (double)m->cfg.target_l0;
    sae_scale(m->dxhat, m->err, (float)(2.0 / m->var), B * D);
    sae_col_sum(m->g.b_dec, m->dxhat, 1.0f, B, D, 0);
    /* dW_dec (M,D) = z^T @ dxhat; dz (B,M) = dxhat @ W_dec^T */
    sae_gemm(1, 0, M, D, B, 1.0f, w->z, M, m->dxhat, D, 0.0f, m->g.W_dec, D);
    sae_gemm(0, 1, B, M, D, 1.0f, m->dxhat, D, m->p.W_dec, D, 0.0f, w->dz, M);
    /* d lambda (l0/t - 1)^2 / d(sum of H) = lambda * 2 (l0/t - 1) / (t B) */
    float l0_grad = (float)(st->sparsity_coef * 2.0 * (w->l0 / t - 1.0) / (t * (double)B));
    sae_jumprelu_backward(w->dz, m->g.threshold, m->pre, m->p.threshold, m->cfg.bandwidth, l0_grad,
                          B, M);
    sae__dense_encoder_backward(m, w->dz, B);
}

static void jump_count_active(const sae_model *m, uint32_t *counts) {
    const jump_ws *w = m->arch_ws;
    sae_col_count_positive(counts, w->z, m->B, m->cfg.m);
}

static int jump_codes(sae_model *m, sae_error *err) {
    jump_ws *w = m->arch_ws;
    return sae__codes_from_dense(m, w->z, m->B, err);
}

static void jump_after_update(sae_model *m) {
    sae__normalize_decoder(m);
    for (size_t j = 0; j < m->cfg.m; j++)
        if (!(m->p.threshold[j] > 0.0f)) m->p.threshold[j] = 0.0f;
}

const sae_arch_ops sae__arch_jumprelu = {
    .name = "jumprelu",
    .summary = "JumpReLU, learned thresholds, L0 steered to --target-l0 (Rajamanoharan et al. 2024)",
    .file_version = 2,
    .dense = 1,
    .uses = SAE_USES_JUMP | SAE_USES_SPARSITY,
    .ws_struct_bytes = sizeof(jump_ws),
    .defaults = jump_defaults,
    .validate = jump_validate,
    .tensors = jump_tensors,
    .workspace = jump_workspace,
    .init = jump_init,
    .calibrate = jump_calibrate,
    .encode = jump_encode,
    .forward = jump_forward,
    .backward = jump_backward,
    .count_active = jump_count_active,
    .codes = jump_codes,
    .before_update = sae__project_decoder_grad,
    .after_update = jump_after_update,
};
