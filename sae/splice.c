/* sae/splice.c: the SAE at one site of a model's forward (see splice.h). */
#include "sae/splice.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

static const char *const edit_names[] = {"steer", "ablate", "clamp"};

int sae_edit_parse(const char *arg, sae_edit_kind kind, size_t n_latents, const char *flag,
                   sae_edit *out, sae_error *err) {
    const char *want = kind == SAE_EDIT_ABLATE ? "F (a feature index)" : "F:A (feature:amount)";
    char *end;
    errno = 0;
    unsigned long long f = strtoull(arg, &end, 10);
    if (end == arg || arg[0] == '-' || arg[0] == '+' || errno)
        return sae_error_set(err, SAE_ERR_ARG, flag, "'%s' is not %s", arg, want);
    if (f >= n_latents)
        return sae_error_set(err, SAE_ERR_ARG, flag, "feature %llu is out of range: the SAE has %zu (0..%zu)",
                             f, n_latents, n_latents - 1);
    *out = (sae_edit){.kind = kind, .feature = (uint32_t)f};
    if (kind == SAE_EDIT_ABLATE) {
        if (*end) return sae_error_set(err, SAE_ERR_ARG, flag, "'%s' is not %s", arg, want);
        return SAE_OK;
    }
    if (*end != ':') return sae_error_set(err, SAE_ERR_ARG, flag, "'%s' is not %s, e.g. 12:4", arg, want);
    const char *v = end + 1;
    errno = 0;
    float a = strtof(v, &end);
    if (end == v || *end || errno || !isfinite(a))
        return sae_error_set(err, SAE_ERR_ARG, flag, "'%s': the amount after ':' must be a finite number", arg);
    if (kind == SAE_EDIT_CLAMP && a < 0.0f)
        return sae_error_set(err, SAE_ERR_ARG, flag, "'%s': a feature's code is never negative; clamp to >= 0",
                             arg);
    out->value = a;
    return SAE_OK;
}

int sae_edits_check(const sae_edit *e, size_t n, sae_error *err) {
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (e[i].feature == e[j].feature)
                return sae_error_set(err, SAE_ERR_ARG, "--steer/--ablate/--clamp",
                                     "feature %u is edited twice (%s and %s): give one edit per feature",
                                     e[i].feature, edit_names[e[j].kind], edit_names[e[i].kind]);
    return SAE_OK;
}

void sae_edits_describe(const sae_edit *e, size_t n, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && len < cap; i++) {
        int w = e[i].kind == SAE_EDIT_ABLATE
                    ? snprintf(buf + len, cap - len, "%sablate %u", i ? ", " : "", e[i].feature)
                    : snprintf(buf + len, cap - len, "%s%s %u:%g", i ? ", " : "", edit_names[e[i].kind],
                               e[i].feature, (double)e[i].value);
        if (w < 0) break;
        len += (size_t)w;
    }
}

int sae_splice_init(sae_splice *sp, sae_model *m, double scale, int layer, data_site site,
                    size_t capacity, sae_error *err) {
    memset(sp, 0, sizeof *sp);
    if (capacity > m->capacity)
        return sae_error_set(err, SAE_ERR_ARG, NULL, "the SAE was loaded for %zu rows, the splice needs %zu",
                             m->capacity, capacity);
    int ovf = 0;
    size_t bytes = sae_mul_size(sae_mul_size(capacity, m->cfg.d, &ovf), sizeof(float), &ovf);
    sp->xs = ovf ? NULL : sae_alloc(bytes);
    sp->src = sae_malloc((capacity ? capacity : 1) * sizeof *sp->src);
    if (!sp->xs || !sp->src) {
        sae_splice_free(sp);
        return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory for the splice's rows");
    }
    sp->m = m, sp->scale = scale, sp->layer = layer, sp->site = site, sp->capacity = capacity;
    return SAE_OK;
}

void sae_splice_free(sae_splice *sp) {
    sae_free(sp->xs), sae_free(sp->src);
    sp->xs = NULL, sp->src = NULL;
}

void sae_splice_set_batch(sae_splice *sp, const size_t *off, size_t n_seq) {
    sp->off = off, sp->n_seq = n_seq;
}

/* rows x[src[i]] += a * dir for i < n */
static void add_dir(float *x, const uint32_t *src, size_t n, const float *dir, float a, size_t D) {
    for (size_t i = 0; i < n; i++) {
        float *row = x + (size_t)src[i] * D;
        for (size_t j = 0; j < D; j++) row[j] += a * dir[j];
    }
}

/* The edits on the gathered rows, from the codes of the last encode. */
static void apply_edits(sae_splice *sp, float *x, size_t n, const sae_codes *c) {
    size_t D = sp->m->cfg.d;
    float inv = (float)(1.0 / sp->scale);
    for (size_t e = 0; e < sp->n_edits; e++) {
        const sae_edit *ed = &sp->edits[e];
        const float *dir = sp->m->p.W_dec + (size_t)ed->feature * D; /* scaled units */
        if (ed->kind != SAE_EDIT_ABLATE) add_dir(x, sp->src, n, dir, ed->value * inv, D);
        if (ed->kind == SAE_EDIT_STEER) continue;
        for (uint32_t q = c->start[ed->feature]; q < c->start[ed->feature + 1]; q++) {
            float *row = x + (size_t)sp->src[c->row[q]] * D, a = -c->val[q] * inv;
            for (size_t j = 0; j < D; j++) row[j] += a * dir[j];
        }
    }
}

static int needs_codes(const sae_splice *sp) {
    if (sp->mode != SAE_SPLICE_EDIT) return 1;
    for (size_t e = 0; e < sp->n_edits; e++)
        if (sp->edits[e].kind != SAE_EDIT_STEER) return 1;
    return 0;
}

void sae_splice_hook(int layer, data_site site, float *x, size_t rows, void *user) {
    sae_splice *sp = user;
    if (layer != sp->layer || site != sp->site || sp->mode == SAE_SPLICE_NONE || sp->failed) return;
    size_t whole[2] = {0, rows}, n_seq = sp->off ? sp->n_seq : 1;
    const size_t *off = sp->off ? sp->off : whole;
    SAE_ASSERT(off[n_seq] == rows && rows <= sp->capacity);
    size_t D = sp->m->cfg.d, n = 0;
    for (size_t s = 0; s < n_seq; s++)
        for (size_t i = off[s] + 1; i < off[s + 1]; i++) sp->src[n++] = (uint32_t)i;
    if (sp->mode == SAE_SPLICE_ZERO) {
        for (size_t i = 0; i < n; i++) memset(x + (size_t)sp->src[i] * D, 0, D * sizeof(float));
        return;
    }
    int stats = sp->row_sse || sp->row_l0, decode = stats || sp->mode != SAE_SPLICE_EDIT;
    if (!decode && !needs_codes(sp)) { /* steering only: no SAE pass at all */
        apply_edits(sp, x, n, NULL);
        return;
    }
    float s = (float)sp->scale;
    for (size_t i = 0; i < n; i++) {
        const float *in = x + (size_t)sp->src[i] * D;
        float *out = sp->xs + i * D;
        for (size_t j = 0; j < D; j++) out[j] = in[j] * s;
    }
    sae_loss loss;
    sae_codes c;
    int rc = decode ? sae_model_forward(sp->m, sp->xs, n, NULL, &loss, &sp->err)
                    : sae_model_encode(sp->m, sp->xs, n, &sp->err);
    if (rc == SAE_OK) rc = sae_model_codes(sp->m, &c, &sp->err);
    if (rc < 0) {
        sp->failed = 1;
        return;
    }
    const float *res = decode ? sae_model_residual(sp->m) : NULL; /* xhat s - x s */
    if (sp->row_sse)
        for (size_t i = 0; i < n; i++) {
            double e2 = 0;
            for (size_t j = 0; j < D; j++) e2 += (double)res[i * D + j] * res[i * D + j];
            sp->row_sse[sp->src[i]] = e2;
        }
    if (sp->row_l0) {
        for (size_t i = 0; i < n; i++) sp->row_l0[sp->src[i]] = 0;
        for (size_t q = 0; q < c.nnz; q++) sp->row_l0[sp->src[c.row[q]]]++;
    }
    if (sp->mode == SAE_SPLICE_EDIT) {
        apply_edits(sp, x, n, &c);
        return;
    }
    double inv = 1.0 / sp->scale;
    for (size_t i = 0; i < n; i++) {
        float *row = x + (size_t)sp->src[i] * D;
        const float *xs = sp->xs + i * D, *r = res + i * D;
        for (size_t j = 0; j < D; j++) {
            float xhat = (float)((xs[j] + r[j]) * inv);
            row[j] = sp->mode == SAE_SPLICE_RECON ? xhat : xhat + (row[j] - xhat);
        }
    }
}
