/* train/loop.c: the training loop:
 *   batch -> scale -> forward -> backward -> (project decoder grad) -> clip ->
 *   Adam -> (renormalise decoder) -> dead-latent counters -> log / checkpoint.
 * Everything the loop needs is allocated before the first step. */
#include <math.h>
#include <string.h>
#include <time.h>

#include "common/fileutil.h"
#include "common/mem.h"
#include "data/reader.h"
#include "common/gemm.h"
#include "train/train_internal.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void warn(const train_observer *obs, const char *msg) {
    if (obs && obs->on_warning) obs->on_warning(msg, obs->user);
}

static void state_free(train__state *s) {
    sae_model_free(&s->model);
    sae_free(s->adam_m);
    sae_free(s->adam_v);
    sae_free(s->since_fired);
    sae_free(s->fire_count);
    sae_free(s->dead);
    memset(s, 0, sizeof *s);
}

static int state_init(train__state *s, const train_params *p, sae_error *err) {
    memset(s, 0, sizeof *s);
    int rc = sae_model_init(&s->model, &p->sae, p->batch, 1, err);
    if (rc == SAE_OK && p->precision != SAE_PRECISION_F32)
        rc = sae_model_set_precision(&s->model, p->precision, err);
    if (rc < 0) {
        sae_model_free(&s->model);
        return rc;
    }
    size_t P = sae_param_count(&p->sae), M = p->sae.m;
    s->adam_m = sae_calloc(P * sizeof(float));
    s->adam_v = sae_calloc(P * sizeof(float));
    s->since_fired = sae_calloc(M * sizeof(uint64_t));
    s->fire_count = sae_calloc(M * sizeof(uint32_t));
    s->dead = sae_calloc(M * sizeof(int32_t));
    if (!s->adam_m || !s->adam_v || !s->since_fired || !s->fire_count || !s->dead) {
        state_free(s);
        return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory for the optimiser state");
    }
    return SAE_OK;
}

/* Geometric median by Weiszfeld's iteration, started from the mean. */
static int geometric_median(float *out, const float *x, size_t n, size_t d, sae_error *err) {
    double *y = sae_calloc_n(d, sizeof *y), *acc = sae_calloc_n(d, sizeof *acc);
    if (!y || !acc) {
        sae_free(y), sae_free(acc);
        return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory for the geometric median");
    }
    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < d; c++) y[c] += x[i * d + c] / (double)n;
    for (int it = 0; it < 100; it++) {
        double wsum = 0.0, shift = 0.0, norm = 0.0;
        memset(acc, 0, d * sizeof *acc);
        for (size_t i = 0; i < n; i++) {
            double dist = 0.0;
            for (size_t c = 0; c < d; c++) {
                double t = x[i * d + c] - y[c];
                dist += t * t;
            }
            double w = 1.0 / fmax(sqrt(dist), 1e-8);
            wsum += w;
            for (size_t c = 0; c < d; c++) acc[c] += w * x[i * d + c];
        }
        for (size_t c = 0; c < d; c++) {
            double ny = acc[c] / wsum;
            shift += (ny - y[c]) * (ny - y[c]);
            norm += ny * ny;
            y[c] = ny;
        }
        if (shift <= 1e-12 * fmax(norm, 1e-30)) break;
    }
    for (size_t c = 0; c < d; c++) out[c] = (float)y[c];
    sae_free(y);
    sae_free(acc);
    return SAE_OK;
}

/* 1 when all n rows (n, d) equal the first: zero variance, FVU undefined. */
static int rows_identical(const float *x, size_t n, size_t d) {
    for (size_t i = 1; i < n; i++)
        if (memcmp(x + i * d, x, d * sizeof *x) != 0) return 0;
    return 1;
}

/* Input scale (so that E||x||^2 = d) and b_dec from a shuffled sample. */
static int init_from_sample(const train_params *p, data_actfile *f, train__state *s,
                            sae_error *err) {
    size_t d = f->d, n = p->init_rows < f->n ? p->init_rows : f->n;
    float *x = sae_alloc(n * d * sizeof(float));
    if (!x) return sae_error_set(err, SAE_ERR_NOMEM, f->path, "out of memory for the init sample");
    /* a shuffled stream of its own (different seed), so the sample is spread
     * over the file and does not overlap the first training batches' order */
    /* a shuffle buffer of 4x the sample, not the training one: the sample
     * still comes from blocks spread over the whole file, and this phase no
     * longer holds a full-size buffer beside the model (it set the peak RSS) */
    size_t buf = 4 * n < p->buffer_rows ? 4 * n : p->buffer_rows;
    data_reader_params rp = {.buffer_rows = buf, .seed = p->seed ^ 0x1d17ULL,
                             .skip_nonfinite = p->skip_nonfinite};
    data_reader *r = NULL;
    int rc = data_reader_open(&r, f, &rp, NULL, err);
    if (rc == SAE_OK) rc = data_reader_next(r, x, n, err);
    data_reader_close(r);
    if (rc == SAE_OK) {
        double msn = 0.0;
        for (size_t i = 0; i < n * d; i++) msn += (double)x[i] * x[i];
        msn /= (double)n;
        if (!(msn > 0.0))
            rc = sae_error_set(err, SAE_ERR_FORMAT, f->path, "every sampled activation is zero");
        else if (f->n == 1 || (n > 1 && rows_identical(x, n, d)))
            rc = sae_error_set(err, SAE_ERR_FORMAT, f->path,
                               f->n == 1 ? "holds a single row: its variance is 0, so FVU (the loss's denominator) "
                                        "is undefined; train on more rows"
                                      : "all %zu sampled rows are identical (zero variance): FVU (the loss's "
                                        "denominator) is undefined, and there is nothing to learn",
                               n);
        else
            s->input_scale = (float)sqrt((double)d / msn);
    }
    if (rc == SAE_OK) {
        float sc = (float)s->input_scale;
        for (size_t i = 0; i < n * d; i++) x[i] *= sc;
        float *b_dec = s->model.p.b_dec;
        if (p->bdec_init == TRAIN_BDEC_MEDIAN) {
            rc = geometric_median(b_dec, x, n, d, err);
        } else if (p->bdec_init == TRAIN_BDEC_MEAN) {
            for (size_t c = 0; c < d; c++) {
                double m = 0.0;
                for (size_t i = 0; i < n; i++) m += x[i * d + c];
                b_dec[c] = (float)(m / (double)n);
            }
        } else {
            memset(b_dec, 0, d * sizeof(float));
        }
        sae_model_calibrate(&s->model, x, n);
    }
    sae_free(x);
    return rc;
}

/* Dead latents: not fired in the last dead_tokens tokens. */
static size_t collect_dead(const train__state *s, uint64_t dead_tokens, int32_t *dead) {
    size_t n = 0;
    for (size_t j = 0; j < s->model.cfg.m; j++)
        if (s->since_fired[j] >= dead_tokens) dead[n++] = (int32_t)j;
    return n;
}

static void update_fired(train__state *s, size_t B) {
    size_t M = s->model.cfg.m;
    memset(s->fire_count, 0, M * sizeof(uint32_t));
    sae_model_count_active(&s->model, s->fire_count);
    for (size_t j = 0; j < M; j++) s->since_fired[j] = s->fire_count[j] ? 0 : s->since_fired[j] + B;
}

/* One optimisation step on x (B rows, already scaled). */
static int train_step(train__state *s, const train_params *p, const float *x, float lr,
                      float sparsity, sae_loss *loss, size_t *n_dead) {
    sae_model *m = &s->model;
    size_t B = p->batch, P = sae_param_count(&m->cfg);
    *n_dead = collect_dead(s, p->dead_tokens, s->dead);
    sae_step st = {.train = 1, .sparsity_coef = sparsity, .dead = s->dead, .n_dead = *n_dead};
    int rc = sae_model_forward(m, x, B, &st, loss, NULL);
    if (rc < 0) return rc;
    if (!isfinite(loss->loss)) return SAE_ERR_NONFINITE;
    sae_model_backward(m, &st);
    sae_model_before_update(m);
    if (p->grad_clip > 0.0f) {
        double gn = train_grad_norm(m->grad_blob, P);
        if (gn > p->grad_clip) train_scale(m->grad_blob, P, (float)(p->grad_clip / gn));
    }
    train_adam_step(m->param_blob, m->grad_blob, s->adam_m, s->adam_v, P, lr, p->beta1, p->beta2,
                    p->eps, s->step + 1);
    sae_model_after_update(m);
    update_fired(s, B);
    return SAE_OK;
}

/* Names what made a step's loss non-finite. Only the last case is a real
 * divergence that a lower learning rate can cure. */
static void nonfinite_loss_error(const train__state *s, const sae_loss *loss, size_t batch, const char *data,
                                 sae_error *err) {
    unsigned long long step = (unsigned long long)s->step;
    size_t nb = sae_blob_count(&s->model.cfg);
    size_t bad = 0;
    while (bad < nb && isfinite(s->model.param_blob[bad])) bad++;
    if (bad < nb)
        sae_error_set(err, SAE_ERR_NONFINITE, NULL,
                      "the SAE's parameters hold NaN or Inf at step %llu (parameter %zu), before its loss was "
                      "computed: the optimiser state went non-finite", step, bad);
    else if (!(loss->var > 0.0) && batch == 1)
        sae_error_set(err, SAE_ERR_NONFINITE, data,
                      "the row at step %llu coincides with b_dec, so its variance estimate is 0 and FVU, the "
                      "loss's denominator, is undefined; use --batch 2 or more", step);
    else if (!(loss->var > 0.0))
        sae_error_set(err, SAE_ERR_NONFINITE, data,
                      "the batch at step %llu has zero variance (its %zu rows are identical): FVU, the loss's "
                      "denominator, is undefined; use a larger --batch or more varied data", step, batch);
    else
        sae_error_set(err, SAE_ERR_NONFINITE, NULL,
                      "training diverged at step %llu (loss is not finite); try a lower --lr", step);
}

static int load_or_init(const train_params *p, data_actfile *f, const char *out, int resume,
                        const train_observer *obs, train__state *s, int *complete,
                        sae_error *err) {
    *complete = 0;
    if (resume && sae_file_exists(out)) {
        unsigned notes = 0;
        int rc = train__checkpoint_load(out, p, s, f, complete, &notes, err);
        if (rc < 0) return rc;
        if (notes & TRAIN__CKPT_THREADS_DIFFER)
            warn(obs, "resuming with a different thread count: the result will be close to, "
                      "but not bitwise equal to, an uninterrupted run");
        if (notes & TRAIN__CKPT_NO_FINGERPRINT)
            warn(obs, "the checkpoint predates data fingerprints: only --data's row count can be checked "
                      "against the file it was made on (its next checkpoint records one)");
        return SAE_OK;
    }
    if (resume) warn(obs, "--resume: no checkpoint at the output path yet; starting from scratch");
    sae_model_init_params(&s->model, p->seed);
    return init_from_sample(p, f, s, err);
}

int train_run(const train_params *p_in, data_actfile *f, const char *out, int resume,
              const train_observer *obs, sae_error *err) {
    train_params p = *p_in;
    int rc = train_resolve(&p, f->d, err);
    if (rc < 0) return rc;
    uint64_t total_steps = train__total_steps(&p, f);

    train__state s;
    if ((rc = state_init(&s, &p, err)) < 0) return rc;
    float *x = sae_alloc(p.batch * f->d * sizeof(float));
    data_reader *reader = NULL;
    int complete = 0;
    if (!x) rc = sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory for the batch");
    if (rc == SAE_OK) rc = data_actfile_identity(f, &s.data_id, err);
    if (rc == SAE_OK) rc = load_or_init(&p, f, out, resume, obs, &s, &complete, err);
    s.total_steps = total_steps;
    if (rc == SAE_OK && complete) {
        warn(obs, "--resume: the checkpoint at the output path is already complete");
        goto done;
    }
    data_reader_params rp = {.buffer_rows = p.buffer_rows, .seed = p.seed,
                             .skip_nonfinite = p.skip_nonfinite};
    if (rc == SAE_OK) rc = data_reader_open(&reader, f, &rp, &s.pos, err);
    if (rc < 0) goto done;
    if (obs && obs->on_start) obs->on_start(&p, &s.model, s.input_scale, s.step, total_steps, obs->user);

    uint64_t ce = p.checkpoint_every;
    uint64_t next_ckpt = ce ? (s.tokens / ce + 1) * ce : UINT64_MAX;
    uint64_t skipped0 = s.skipped;
    double t0 = now_s(), t_last = t0;
    uint64_t tokens_last = s.tokens;
    float sc = (float)s.input_scale;
    size_t D = f->d;
    while (s.step < total_steps) {
        if ((rc = data_reader_next(reader, x, p.batch, err)) < 0) break;
        for (size_t i = 0; i < p.batch * D; i++) x[i] *= sc;
        float lr = train_lr_at(&p, s.step, total_steps);
        float sparsity = train_sparsity_at(&p, s.step, total_steps);
        sae_loss loss;
        size_t n_dead;
        rc = train_step(&s, &p, x, lr, sparsity, &loss, &n_dead);
        if (rc < 0) {
            nonfinite_loss_error(&s, &loss, p.batch, f->path, err);
            break;
        }
        s.step++;
        s.tokens += p.batch;
        s.pos = data_reader_pos(reader);
        s.skipped = skipped0 + data_reader_skipped(reader);
        int last = s.step == total_steps;
        if (obs && obs->on_metrics) {
            int due = s.step % p.log_every == 0 || last;
            double t = now_s();
            size_t dead_now = collect_dead(&s, p.dead_tokens, s.dead);
            train_metrics mt = {
                .log_due = due, .step = s.step, .total_steps = total_steps, .tokens = s.tokens,
                .total_tokens = total_steps * p.batch, .loss = loss.loss,
                .mse = loss.sse / ((double)p.batch * D) / (s.input_scale * s.input_scale),
                .fvu = loss.sse / loss.var, .l0 = loss.l0,
                .dead_frac = (double)dead_now / (double)p.sae.m, .aux_loss = loss.aux_loss,
                .sparsity = loss.sparsity, .lr = lr, .sparsity_coef = sparsity,
                .tokens_per_s = t > t_last ? (double)(s.tokens - tokens_last) / (t - t_last) : 0,
                .elapsed_s = t - t0};
            obs->on_metrics(&mt, obs->user);
            if (due) { /* the rate covers the tokens since the last logged step */
                t_last = t;
                tokens_last = s.tokens;
            }
        }
        int stop = obs && obs->stop && *obs->stop;
        if (!last && (s.tokens >= next_ckpt || stop)) {
            if ((rc = train__checkpoint_save(out, &p, &s, f, 0, err)) < 0) break;
            if (obs && obs->on_checkpoint) obs->on_checkpoint(out, s.tokens, obs->user);
            while (next_ckpt <= s.tokens) next_ckpt += ce;
        }
        if (stop && !last) {
            rc = 1;
            break;
        }
    }
    if (rc == SAE_OK) {
        rc = train__checkpoint_save(out, &p, &s, f, 1, err);
        if (rc == SAE_OK && obs && obs->on_checkpoint) obs->on_checkpoint(out, s.tokens, obs->user);
    }
done:
    data_reader_close(reader);
    sae_free(x);
    state_free(&s);
    return rc;
}
