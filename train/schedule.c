/* train/schedule.c: learning-rate and sparsity-coefficient schedules, pure
 * functions of the step so a resumed run follows the same curve. */
#include <math.h>
#include <string.h>

#include "train/train.h"

train_params train_default_params(sae_arch arch) {
    train_params p;
    memset(&p, 0, sizeof p);
    p.sae = sae_config_default(arch);
    p.sae.m = 0; /* 8 * d once d is known */
    sae_train_hints h = sae_arch_train_hints(arch);
    p.lr = h.lr;
    p.grad_clip = h.grad_clip;
    p.sparsity_coef = h.sparsity_coef;
    p.sparsity_warmup = h.sparsity_warmup;
    p.batch = 4096;
    p.beta1 = 0.9f;
    p.beta2 = 0.999f;
    p.eps = 1e-8f;
    p.seed = 0;
    p.dead_tokens = 1000000;
    p.buffer_rows = 262144;
    p.bdec_init = TRAIN_BDEC_MEDIAN;
    p.init_rows = 16384;
    p.log_every = 10;
    p.lr_warmup = 0.05f;
    p.lr_decay = 0.2f;
    return p;
}

int train_resolve(train_params *p, size_t d, sae_error *err) {
    int rc = sae_config_resolve(&p->sae, d, err);
    if (rc < 0) return rc;
    if (!(sae_arch_uses(p->sae.arch) & SAE_USES_SPARSITY)) p->sparsity_coef = p->sparsity_warmup = 0.0f;
    if (p->batch == 0) return sae_error_set(err, SAE_ERR_ARG, "--batch", "must be positive");
    if (!(p->lr > 0.0f) || !isfinite(p->lr))
        return sae_error_set(err, SAE_ERR_ARG, "--lr", "must be a positive number");
    if (!(p->lr_warmup >= 0.0f && p->lr_warmup <= 1.0f && p->lr_decay >= 0.0f && p->lr_decay <= 1.0f))
        return sae_error_set(err, SAE_ERR_ARG, "--lr-warmup/--lr-decay", "must be fractions in [0, 1]");
    if (!(p->sparsity_coef >= 0.0f) || !isfinite(p->sparsity_coef))
        return sae_error_set(err, SAE_ERR_ARG, "--sparsity-coef", "must be >= 0");
    if (!(p->sparsity_warmup >= 0.0f && p->sparsity_warmup <= 1.0f))
        return sae_error_set(err, SAE_ERR_ARG, "--sparsity-warmup", "must be a fraction in [0, 1]");
    if (!(p->grad_clip >= 0.0f)) return sae_error_set(err, SAE_ERR_ARG, "--grad-clip", "must be >= 0");
    if (!(p->beta1 >= 0.0f && p->beta1 < 1.0f && p->beta2 >= 0.0f && p->beta2 < 1.0f && p->eps > 0.0f))
        return sae_error_set(err, SAE_ERR_ARG, "adam", "need 0 <= beta < 1 and eps > 0");
    if (p->buffer_rows == 0) return sae_error_set(err, SAE_ERR_ARG, "--buffer", "must be positive");
    if (p->init_rows == 0) return sae_error_set(err, SAE_ERR_ARG, "init_rows", "must be positive");
    if (p->log_every == 0) p->log_every = 1;
    return SAE_OK;
}

const char *const train_bdec_init_names[] = {
    [TRAIN_BDEC_MEDIAN] = "median", [TRAIN_BDEC_MEAN] = "mean", [TRAIN_BDEC_ZERO] = "zero", NULL};

const char *train_bdec_init_name(train_bdec_init b) {
    return (unsigned)b <= TRAIN_BDEC_ZERO ? train_bdec_init_names[b] : "?";
}

int train_bdec_init_parse(const char *s, train_bdec_init *out) {
    for (int i = 0; train_bdec_init_names[i]; i++)
        if (strcmp(s, train_bdec_init_names[i]) == 0) {
            *out = (train_bdec_init)i;
            return 0;
        }
    return -1;
}

float train_lr_at(const train_params *p, uint64_t step, uint64_t total) {
    double s = (double)step + 1.0, T = (double)total;
    double warm = p->lr_warmup * T, decay_start = (1.0 - p->lr_decay) * T;
    double f = 1.0;
    if (warm > 0 && s < warm) f = s / warm;
    if (p->lr_decay > 0 && s > decay_start) {
        double g = (T - s + 1.0) / (T - decay_start + 1.0);
        if (g < f) f = g;
    }
    return (float)(p->lr * f);
}

float train_sparsity_at(const train_params *p, uint64_t step, uint64_t total) {
    double warm = p->sparsity_warmup * (double)total, s = (double)step + 1.0;
    if (warm > 0 && s < warm) return (float)(p->sparsity_coef * s / warm);
    return p->sparsity_coef;
}
