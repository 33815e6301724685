/* features/neuronpedia.c: Neuronpedia's feature-upload JSON (schema and what
 * is filled in features/neuronpedia.h). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileutil.h"
#include "common/mem.h"
#include "data/docs.h"
#include "data/h5.h"
#include "features/neuronpedia.h"

typedef struct {
    const feat_dict *fd;
    sae_model *m;
    double scale;
    data_actfile *f;
    data_docs docs;
    char **vocab;
    size_t V;
    int32_t *tok;  /* one window's tokens */
    float *val;    /* one window's values of the batch's features (rows, nf) */
    size_t win_cap, nf, nf_max;
    size_t longest; /* the longest window */
    size_t *ids;   /* the batch's features */
    struct np_job *jobs; /* the batch's examples, to be filled window by window */
    size_t n_jobs, job_cap;
} np_ctx;

/* An example whose activation object awaits its window's tokens and values. */
typedef struct np_job {
    size_t window, col; /* col: the feature's place in the batch */
    cJSON *act;
} np_job;

static const char *piece(const np_ctx *c, int32_t id) {
    return id >= 0 && (size_t)id < c->V && c->vocab[id] ? c->vocab[id] : "<|outofrange|>";
}

static double bin_width(void) { return (FEAT_HIST_LOG10_MAX - FEAT_HIST_LOG10_MIN) / FEAT_HIST_BINS; }

/* The histogram bin of a value, as features/build.c bins it (ends clamped). */
static size_t bin_of(float v) {
    double b = floor((log10((double)v) - FEAT_HIST_LOG10_MIN) / bin_width());
    return b < 0 ? 0 : b >= FEAT_HIST_BINS ? FEAT_HIST_BINS - 1 : (size_t)b;
}

static int add_doubles(cJSON *o, const char *name, const double *x, size_t n) {
    cJSON *a = cJSON_AddArrayToObject(o, name);
    for (size_t i = 0; a && i < n; i++)
        if (!cJSON_AddItemToArray(a, cJSON_CreateNumber(x[i]))) return 0;
    return a != NULL;
}

/* One example: an activation object with its bin marks; its tokens and
 * values come when its window is encoded (fill_window). */
static int add_activation(np_ctx *c, cJSON *acts, size_t col, int64_t row, double bmin, double bmax, double bcont,
                          sae_error *err) {
    if ((uint64_t)row >= c->docs.n_rows)
        return sae_error_set(err, SAE_ERR_MISMATCH, c->f->path, "has %zu rows, the features file names row %lld",
                             c->docs.n_rows, (long long)row);
    if (c->n_jobs == c->job_cap) {
        size_t cap = c->job_cap ? 2 * c->job_cap : 256;
        np_job *j = sae_realloc_n(c->jobs, cap, sizeof *j);
        if (!j) return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory for the Neuronpedia JSON");
        c->jobs = j, c->job_cap = cap;
    }
    cJSON *a = cJSON_CreateObject();
    int ok = a && cJSON_AddItemToArray(acts, a) && cJSON_AddNumberToObject(a, "bin_min", bmin) &&
             cJSON_AddNumberToObject(a, "bin_max", bmax) && cJSON_AddNumberToObject(a, "bin_contains", bcont);
    if (!ok) return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory for the Neuronpedia JSON");
    c->jobs[c->n_jobs++] = (np_job){data_docs_window_of_row(&c->docs, row), col, a};
    return SAE_OK;
}

static int job_order(const void *a, const void *b) {
    const np_job *x = a, *y = b;
    return x->window < y->window ? -1 : x->window > y->window;
}

/* Jobs [j0, j1), all of one window: its tokens, and the values of each job's
 * feature at each of them, from one encoding of the window. */
static int fill_window(np_ctx *c, size_t j0, size_t j1, sae_error *err) {
    size_t w = c->jobs[j0].window;
    size_t lo = (size_t)c->docs.win_off[w], n = (size_t)c->docs.win_off[w + 1] - lo;
    if (n > c->win_cap) { /* windows are short (a capture's seq_len): grown to the longest */
        sae_free(c->tok), sae_free(c->val);
        c->tok = sae_malloc(n * sizeof *c->tok), c->val = sae_alloc(n * c->nf_max * sizeof *c->val);
        c->win_cap = c->tok && c->val ? n : 0;
        if (!c->win_cap) return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory for a window of %zu rows", n);
    }
    int rc = data_actfile_read_tokens(c->f, lo, n, c->tok, err);
    if (rc == SAE_OK) rc = feat_encode_rows(c->m, c->scale, c->f, lo, lo + n, c->ids, c->nf, c->val, err);
    for (size_t j = j0; rc == SAE_OK && j < j1; j++) {
        cJSON *toks = cJSON_AddArrayToObject(c->jobs[j].act, "tokens");
        cJSON *vals = cJSON_AddArrayToObject(c->jobs[j].act, "values");
        int ok = toks && vals;
        for (size_t i = 0; ok && i < n; i++)
            ok = cJSON_AddItemToArray(toks, cJSON_CreateString(piece(c, c->tok[i]))) &&
                 cJSON_AddItemToArray(vals, cJSON_CreateNumber((double)c->val[i * c->nf + c->jobs[j].col]));
        if (!ok) rc = sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory for the Neuronpedia JSON");
    }
    return rc;
}

/* Encodes each window the batch's examples lie in once, for all its features. */
static int fill_jobs(np_ctx *c, sae_error *err) {
    qsort(c->jobs, c->n_jobs, sizeof *c->jobs, job_order);
    int rc = SAE_OK;
    for (size_t j0 = 0, j1; rc == SAE_OK && j0 < c->n_jobs; j0 = j1) {
        for (j1 = j0 + 1; j1 < c->n_jobs && c->jobs[j1].window == c->jobs[j0].window; j1++) {}
        rc = fill_window(c, j0, j1, err);
    }
    return rc;
}

static int add_lens(const np_ctx *c, cJSON *o, const char *sname, const char *vname, const int32_t *ids,
                    const float *v) {
    cJSON *s = cJSON_AddArrayToObject(o, sname), *vals = cJSON_AddArrayToObject(o, vname);
    if (!s || !vals) return 0;
    for (size_t i = 0; c->fd->has_lens && i < FEAT_LENS; i++) {
        if (ids[i] < 0) continue;
        if (!cJSON_AddItemToArray(s, cJSON_CreateString(piece(c, ids[i]))) ||
            !cJSON_AddItemToArray(vals, cJSON_CreateNumber((double)v[i])))
            return 0;
    }
    return 1;
}

static const char *const EMPTY_LISTS[] = {
    "neuron_alignment_indices", "neuron_alignment_values", "neuron_alignment_l1", "correlated_neurons_indices",
    "correlated_neurons_l1", "correlated_neurons_pearson", "correlated_features_indices", "correlated_features_l1",
    "correlated_features_pearson", "logits_hist_data_bar_heights", "logits_hist_data_bar_values",
    "decoder_weights_dist"};

static int feature_json(np_ctx *c, cJSON *list, size_t j, size_t col, const feat_np_opts *o, sae_error *err) {
    const feat_dict *fd = c->fd;
    cJSON *ft = cJSON_CreateObject();
    int ok = ft && cJSON_AddItemToArray(list, ft) && cJSON_AddNumberToObject(ft, "feature_index", (double)j);
    for (size_t i = 0; ok && i < sizeof EMPTY_LISTS / sizeof EMPTY_LISTS[0]; i++)
        ok = cJSON_AddArrayToObject(ft, EMPTY_LISTS[i]) != NULL;
    ok = ok && add_lens(c, ft, "neg_str", "neg_values", fd->lens_down_id + j * FEAT_LENS, fd->lens_down + j * FEAT_LENS);
    ok = ok && add_lens(c, ft, "pos_str", "pos_values", fd->lens_up_id + j * FEAT_LENS, fd->lens_up + j * FEAT_LENS);
    ok = ok && cJSON_AddNumberToObject(ft, "frac_nonzero", (double)fd->count[j] / (double)fd->n_tokens);
    double centre[FEAT_HIST_BINS], height[FEAT_HIST_BINS];
    for (size_t b = 0; b < FEAT_HIST_BINS; b++) {
        centre[b] = pow(10.0, FEAT_HIST_LOG10_MIN + ((double)b + 0.5) * bin_width());
        height[b] = (double)fd->hist[j * FEAT_HIST_BINS + b];
    }
    ok = ok && add_doubles(ft, "freq_hist_data_bar_values", centre, FEAT_HIST_BINS) &&
         add_doubles(ft, "freq_hist_data_bar_heights", height, FEAT_HIST_BINS);
    ok = ok && cJSON_AddNumberToObject(ft, "n_prompts_total", (double)c->docs.n_windows);
    ok = ok && cJSON_AddNumberToObject(ft, "n_tokens_in_prompt", (double)c->longest) &&
         cJSON_AddStringToObject(ft, "dataset", o->dataset ? o->dataset : "");
    cJSON *acts = ok ? cJSON_AddArrayToObject(ft, "activations") : NULL;
    if (!acts) return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory for the Neuronpedia JSON");
    int rc = SAE_OK;
    for (size_t t = 0; rc == SAE_OK && t < fd->top_n; t++) {
        int64_t row = fd->top_row[j * fd->top_n + t];
        if (row >= 0) rc = add_activation(c, acts, col, row, -1.0, (double)fd->max[j], -1.0, err);
    }
    for (size_t q = 0; rc == SAE_OK && q < FEAT_QUANTILES; q++) {
        int64_t row = fd->q_row[j * FEAT_QUANTILES + q];
        float v = fd->q_val[j * FEAT_QUANTILES + q];
        if (row < 0 || !(v > 0)) continue;
        size_t b = bin_of(v);
        double lo = pow(10.0, FEAT_HIST_LOG10_MIN + (double)b * bin_width());
        double hi = pow(10.0, FEAT_HIST_LOG10_MIN + (double)(b + 1) * bin_width());
        double share = fd->count[j] ? (double)fd->hist[j * FEAT_HIST_BINS + b] / (double)fd->count[j] : 0.0;
        rc = add_activation(c, acts, col, row, lo, hi, share, err);
    }
    return rc;
}

static int write_batch(np_ctx *c, size_t j0, size_t j1, const feat_np_opts *o, const char *dir, size_t index,
                       sae_error *err) {
    cJSON *b = cJSON_CreateObject(), *list = NULL;
    int ok = b && cJSON_AddStringToObject(b, "model_id", o->model_id ? o->model_id : "") &&
             cJSON_AddNumberToObject(b, "layer", o->layer >= 0 ? (double)o->layer : 0.0) &&
             cJSON_AddStringToObject(b, "sae_set", o->sae_set ? o->sae_set : "") &&
             (list = cJSON_AddArrayToObject(b, "features"));
    int rc = ok ? SAE_OK : sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory for the Neuronpedia JSON");
    c->nf = j1 - j0, c->n_jobs = 0;
    for (size_t j = j0; j < j1; j++) c->ids[j - j0] = j;
    for (size_t j = j0; rc == SAE_OK && j < j1; j++) rc = feature_json(c, list, j, j - j0, o, err);
    if (rc == SAE_OK) rc = fill_jobs(c, err);
    char *s = rc == SAE_OK ? cJSON_PrintUnformatted(b) : NULL;
    cJSON_Delete(b);
    if (rc == SAE_OK && !s) rc = sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory for the Neuronpedia JSON");
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/batch-%zu.json", dir, index);
    if (rc == SAE_OK) rc = sae_tmp_path(tmp, sizeof tmp, path, err);
    if (rc == SAE_OK) {
        FILE *fp = fopen(tmp, "wb");
        size_t n = strlen(s);
        int bad = !fp || fwrite(s, 1, n, fp) != n;
        if (fp && fclose(fp) != 0) bad = 1;
        rc = bad ? sae_error_set(err, SAE_ERR_IO, path, "write failed") : sae_commit_file(tmp, path, err);
        if (bad) sae_tmp_discard(tmp);
    }
    sae_free(s);
    return rc;
}

int feat_export_neuronpedia(const feat_dict *fd, sae_model *m, double scale, data_actfile *f, const feat_np_opts *o,
                            const char *dir, sae_error *err) {
    if (!f->has_tokens || !f->vocab_size)
        return sae_error_set(err, SAE_ERR_ARG, f->path, "has no /tokens and /vocab: Neuronpedia shows token texts");
    if (m->cfg.m != fd->M)
        return sae_error_set(err, SAE_ERR_MISMATCH, NULL, "the features file has %zu latents, the SAE %zu", fd->M,
                             m->cfg.m);
    if (fd->n_tokens == 0) return sae_error_set(err, SAE_ERR_ARG, NULL, "the features file counted no rows");
    if (o->per_batch == 0) return sae_error_set(err, SAE_ERR_ARG, "--per-batch", "must be positive");
    np_ctx c = {.fd = fd, .m = m, .scale = scale, .f = f};
    size_t nf_max = o->per_batch < fd->M ? o->per_batch : fd->M;
    c.nf_max = nf_max;
    c.ids = sae_malloc(nf_max * sizeof *c.ids);
    if (!c.ids) return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    int rc = data_docs_load(&c.docs, f, err);
    if (rc < 0) {
        sae_free(c.ids);
        return rc;
    }
    /* the features' rows index this very file: same rows, width, fingerprint */
    data_identity id;
    if (rc == SAE_OK && fd->data_id.has_fingerprint && (rc = data_actfile_identity(f, &id, err)) == SAE_OK &&
        !data_identity_same(&id, &fd->data_id))
        rc = sae_error_set(err, SAE_ERR_MISMATCH, f->path, "is not the data the features were built on (%s)",
                           fd->data_id.path);
    for (size_t w = 0; w < c.docs.n_windows; w++) {
        size_t len = (size_t)(c.docs.win_off[w + 1] - c.docs.win_off[w]);
        if (len > c.longest) c.longest = len;
    }
    if (rc == SAE_OK) rc = data_actfile_read_vocab(f, &c.vocab, err);
    c.V = f->vocab_size;
    for (size_t j0 = 0, i = 0; rc == SAE_OK && j0 < fd->M; j0 += o->per_batch, i++)
        rc = write_batch(&c, j0, j0 + o->per_batch < fd->M ? j0 + o->per_batch : fd->M, o, dir, i, err);
    if (c.vocab) data_h5_free_strings(c.vocab, c.V);
    sae_free(c.tok), sae_free(c.val), sae_free(c.ids), sae_free(c.jobs);
    data_docs_free(&c.docs);
    return rc;
}
