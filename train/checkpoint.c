/* train/checkpoint.c: training checkpoints (layout in train.h), written to a
 * temporary name and renamed, so a kill at any moment leaves either the
 * previous checkpoint or the new one, never a torn file. */
#include <math.h>
#include <string.h>

#include "common/fileutil.h"
#include "common/mem.h"
#include "data/h5.h"
#include "sae/io.h"
#include "train/train_internal.h"

/* Hyperparameters that must match for a resume to continue the same run. */
typedef struct {
    const char *name;
    double value;
} hyper;

static size_t run_hypers(const train_params *p, const data_actfile *f, hyper *h) {
    size_t n = 0;
#define H(nm, v) h[n++] = (hyper){nm, (double)(v)}
    H("batch", p->batch);
    H("tokens", p->tokens);
    H("seed", p->seed);
    H("lr", p->lr);
    H("lr_warmup", p->lr_warmup);
    H("lr_decay", p->lr_decay);
    H("l1", p->sparsity_coef); /* named before jumprelu shared it with relu */
    H("l1_warmup", p->sparsity_warmup);
    H("beta1", p->beta1);
    H("beta2", p->beta2);
    H("eps", p->eps);
    H("grad_clip", p->grad_clip);
    H("dead_tokens", p->dead_tokens);
    H("buffer_rows", p->buffer_rows);
    H("skip_nonfinite", p->skip_nonfinite);
    H("bdec_init", p->bdec_init);
    H("init_rows", p->init_rows);
    H("precision", p->precision);
    H("data_rows", f->n);
#undef H
    return n;
}

int train__checkpoint_save(const char *path, const train_params *p, const train__state *s,
                           const data_actfile *f, int complete, sae_error *err) {
    char tmp[4200], msg[256];
    int rc = sae_tmp_path(tmp, sizeof tmp, path, err);
    if (rc < 0) return rc;
    const sae_model *m = &s->model;
    size_t P = sae_param_count(&m->cfg), M = m->cfg.m;
    data_h5_init();
    data_h5_lock();
    hid_t h = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (h < 0) {
        data_h5_unlock();
        return sae_error_set(err, SAE_ERR_IO, path, "cannot create checkpoint (%s)",
                             data_h5_last_error(msg, sizeof msg));
    }
    rc = sae_file_write_model(h, m, s->input_scale, path, err);
    hsize_t dp[1] = {P};
    if (rc == SAE_OK) rc = data_h5_write_f32(h, "train/adam_m", s->adam_m, 1, dp, 0, path, err);
    if (rc == SAE_OK) rc = data_h5_write_f32(h, "train/adam_v", s->adam_v, 1, dp, 0, path, err);
    if (rc == SAE_OK)
        rc = data_h5_write_i64(h, "train/tokens_since_fired", (const int64_t *)s->since_fired, M,
                               path, err);
    if (rc == SAE_OK) {
        hyper hy[32];
        size_t nh = run_hypers(p, f, hy);
        int a = 0;
        for (size_t i = 0; i < nh; i++) a |= data_h5_set_attr_f64(h, hy[i].name, hy[i].value);
        a |= data_h5_set_attr_i64(h, "threads", p->threads);
        /* data, data_n, data_d, data_fingerprint, model, layer, hook, tokenizer */
        a |= data_identity_write_attrs(h, &s->data_id);
        a |= data_h5_set_attr_str(h, "bdec_init_name", train_bdec_init_name(p->bdec_init));
        hid_t g = H5Gopen2(h, "train", H5P_DEFAULT);
        a |= g < 0;
        if (g >= 0) {
            a |= data_h5_set_attr_i64(g, "step", (int64_t)s->step);
            a |= data_h5_set_attr_i64(g, "tokens", (int64_t)s->tokens);
            a |= data_h5_set_attr_i64(g, "total_steps", (int64_t)s->total_steps);
            a |= data_h5_set_attr_i64(g, "epoch", (int64_t)s->pos.epoch);
            a |= data_h5_set_attr_i64(g, "window", (int64_t)s->pos.window);
            a |= data_h5_set_attr_i64(g, "offset", (int64_t)s->pos.offset);
            a |= data_h5_set_attr_i64(g, "skipped_rows", (int64_t)s->skipped);
            a |= data_h5_set_attr_i64(g, "complete", complete);
            H5Gclose(g);
        }
        if (a) rc = sae_error_set(err, SAE_ERR_IO, path, "cannot write checkpoint attributes (%s)",
                                  data_h5_last_error(msg, sizeof msg));
    }
    if (H5Fclose(h) < 0 && rc == SAE_OK)
        rc = sae_error_set(err, SAE_ERR_IO, path, "cannot write checkpoint (%s): disk full?",
                           data_h5_last_error(msg, sizeof msg));
    data_h5_unlock();
    if (rc == SAE_OK) rc = sae_commit_file(tmp, path, err);
    if (rc < 0) remove(tmp);
    return rc;
}

static int check_hypers(hid_t h, const char *path, const train_params *p, const data_actfile *f,
                        sae_error *err) {
    hyper hy[32];
    size_t nh = run_hypers(p, f, hy);
    for (size_t i = 0; i < nh; i++) {
        double v;
        int missing = data_h5_get_attr_f64(h, hy[i].name, &v) != SAE_OK;
        if (missing && strcmp(hy[i].name, "precision") == 0) v = SAE_PRECISION_F32, missing = 0; /* older files */
        if (missing)
            return sae_error_set(err, SAE_ERR_FORMAT, path, "checkpoint lacks attribute %s",
                                 hy[i].name);
        /* values were written from the same float/integer types: exact match */
        if (v != hy[i].value)
            return sae_error_set(err, SAE_ERR_MISMATCH, path,
                                 "checkpoint was made with %s=%.9g but this run has %s=%.9g; "
                                 "resume needs the same settings",
                                 hy[i].name, v, hy[i].name, hy[i].value);
    }
    return SAE_OK;
}

static int check_config(const sae_config *a, const sae_config *b, const char *path, sae_error *err) {
    char what[160];
    if (sae_config_compare(a, b, what, sizeof what))
        return sae_error_set(err, SAE_ERR_MISMATCH, path,
                             "checkpoint holds a %s SAE (d=%zu, M=%zu) that differs from this run's %s "
                             "(d=%zu, M=%zu) in %s",
                             sae_arch_name(a->arch), a->d, a->m, sae_arch_name(b->arch), b->d, b->m, what);
    return SAE_OK;
}

/* The /train counters, each >= 0. */
static int read_counters(hid_t h, train__state *s, int64_t *complete, const char *path, sae_error *err) {
    hid_t g = H5Gopen2(h, "train", H5P_DEFAULT);
    int64_t v[8] = {0};
    const char *names[8] = {"step", "tokens", "total_steps", "epoch", "window", "offset", "skipped_rows", "complete"};
    int rc = SAE_OK;
    for (int i = 0; i < 8 && rc == SAE_OK; i++) {
        if (g < 0 || data_h5_get_attr_i64(g, names[i], &v[i]) != SAE_OK)
            rc = sae_error_set(err, SAE_ERR_FORMAT, path, "checkpoint lacks /train attribute %s", names[i]);
        else if (v[i] < 0)
            rc = sae_error_set(err, SAE_ERR_FORMAT, path, "checkpoint's /train %s = %lld is negative", names[i],
                               (long long)v[i]);
    }
    if (g >= 0) H5Gclose(g);
    s->step = (uint64_t)v[0];
    s->tokens = (uint64_t)v[1];
    s->total_steps = (uint64_t)v[2];
    s->pos = (data_stream_pos){(uint64_t)v[3], (uint64_t)v[4], (uint64_t)v[5]};
    s->skipped = (uint64_t)v[6];
    *complete = v[7];
    return rc;
}

#define BAD_STATE(...) sae_error_set(err, SAE_ERR_FORMAT, path, "checkpoint is inconsistent: " __VA_ARGS__)

/* The counters against each other and against this run's settings: a
 * checkpoint that passes describes a point this run could have reached. */
static int check_counters(const train__state *s, int64_t complete, const train_params *p, const data_actfile *f,
                          const char *path, sae_error *err) {
    uint64_t total = train__total_steps(p, f), tokens, rows_seen;
    unsigned long long st = (unsigned long long)s->step;
    if (s->total_steps != total)
        return BAD_STATE("it plans %llu steps but this run's --tokens and --batch give %llu",
                         (unsigned long long)s->total_steps, (unsigned long long)total);
    if (s->step > total) return BAD_STATE("step %llu is past the run's last step %llu", st, (unsigned long long)total);
    if (complete != 0 && complete != 1) return BAD_STATE("complete = %lld (0 or 1)", (long long)complete);
    if (complete != (s->step == total))
        return BAD_STATE("step %llu of %llu but marked %s", st, (unsigned long long)total,
                         complete ? "complete" : "incomplete");
    if (__builtin_mul_overflow(s->step, (uint64_t)p->batch, &tokens) || s->tokens != tokens)
        return BAD_STATE("%llu tokens seen after %llu steps of %zu rows", (unsigned long long)s->tokens, st, p->batch);
    /* every row of each finished epoch was either trained on or skipped
     * (skipped_rows may count a resumed window twice: it only loosens this) */
    if (__builtin_add_overflow(s->tokens, s->skipped, &rows_seen) || s->pos.epoch > rows_seen / f->n)
        return BAD_STATE("epoch %llu after %llu tokens of a %zu-row file", (unsigned long long)s->pos.epoch,
                         (unsigned long long)s->tokens, f->n);
    /* the offset is within one window, and a window is at most half the
     * buffer (data/reader.c); a larger one would silently skip to the next */
    size_t half = p->buffer_rows / 2 ? p->buffer_rows / 2 : 1;
    if (s->pos.offset > half)
        return BAD_STATE("offset %llu is past the %zu-row window of the %zu-row shuffle buffer",
                         (unsigned long long)s->pos.offset, half, p->buffer_rows);
    for (size_t j = 0; j < s->model.cfg.m; j++)
        if (s->since_fired[j] > s->tokens)
            return BAD_STATE("latent %zu last fired %llu tokens ago, after only %llu tokens", j,
                             (unsigned long long)s->since_fired[j], (unsigned long long)s->tokens);
    return SAE_OK;
}

/* Adam's moments: finite, and the second one >= 0 (it is a mean of squares). */
static int check_optimiser(const train__state *s, size_t P, const char *path, sae_error *err) {
    for (size_t i = 0; i < P; i++) {
        if (!isfinite(s->adam_m[i]))
            return sae_error_set(err, SAE_ERR_NONFINITE, path,
                                 "checkpoint's optimiser state /train/adam_m holds %g at element %zu; "
                                 "it cannot be resumed (train again without --resume)", (double)s->adam_m[i], i);
        if (!isfinite(s->adam_v[i]) || s->adam_v[i] < 0.0f)
            return sae_error_set(err, SAE_ERR_NONFINITE, path,
                                 "checkpoint's optimiser state /train/adam_v holds %g at element %zu (must be a "
                                 "finite mean of squares); it cannot be resumed (train again without --resume)",
                                 (double)s->adam_v[i], i);
    }
    return SAE_OK;
}

/* The data file against the one the checkpoint was made on. */
static int check_data(hid_t h, const train__state *s, const data_actfile *f, unsigned *notes, const char *path,
                      sae_error *err) {
    int64_t fp;
    if (data_h5_get_attr_i64(h, "data_fingerprint", &fp) != SAE_OK) {
        *notes |= TRAIN__CKPT_NO_FINGERPRINT; /* older checkpoints: accepted, with a warning */
        return SAE_OK;
    }
    char was[4096] = "";
    data_h5_get_attr_str(h, "data", was, sizeof was);
    if ((uint64_t)fp != s->data_id.fingerprint)
        return sae_error_set(err, SAE_ERR_MISMATCH, path,
                             "checkpoint was made on different data (%s; fingerprint %016llx) than --data %s "
                             "(%016llx), though both have %zu rows; resume needs the same data",
                             was[0] ? was : "?", (unsigned long long)fp, f->path, (unsigned long long)s->data_id.fingerprint,
                             f->n);
    return SAE_OK;
}

int train__checkpoint_load(const char *path, const train_params *p, train__state *s,
                           const data_actfile *f, int *complete, unsigned *notes, sae_error *err) {
    int64_t h;
    *notes = 0;
    data_h5_lock();
    int rc = sae_file_open_h5(path, &h, err);
    if (rc < 0) {
        data_h5_unlock();
        return rc;
    }
    sae_config c;
    int64_t done = 0;
    size_t P = sae_param_count(&s->model.cfg), M = s->model.cfg.m;
    rc = sae_file_read_config(h, &c, &s->input_scale, path, err);
    if (rc == SAE_OK) rc = check_config(&c, &s->model.cfg, path, err);
    if (rc == SAE_OK) rc = check_hypers((hid_t)h, path, p, f, err);
    if (rc == SAE_OK) rc = check_data((hid_t)h, s, f, notes, path, err);
    if (rc == SAE_OK) rc = sae_file_read_params(h, &s->model, path, err);
    if (rc == SAE_OK) rc = data_h5_read_f32((hid_t)h, "train/adam_m", s->adam_m, P, path, err);
    if (rc == SAE_OK) rc = data_h5_read_f32((hid_t)h, "train/adam_v", s->adam_v, P, path, err);
    if (rc == SAE_OK)
        rc = data_h5_read_i64((hid_t)h, "train/tokens_since_fired", (int64_t *)s->since_fired, M,
                              path, err);
    if (rc == SAE_OK) rc = read_counters((hid_t)h, s, &done, path, err);
    if (rc == SAE_OK) rc = check_counters(s, done, p, f, path, err);
    if (rc == SAE_OK) rc = check_optimiser(s, P, path, err);
    if (rc == SAE_OK) {
        *complete = done != 0;
        int64_t th = 0;
        data_h5_get_attr_i64((hid_t)h, "threads", &th);
        if (th != p->threads) *notes |= TRAIN__CKPT_THREADS_DIFFER;
    }
    H5Fclose((hid_t)h);
    data_h5_unlock();
    return rc;
}
