/* features/json.c: the features file's JSON Lines twin, one object per feature.
 *
 * Each object: feature, label, count, density, mean_act, max_act, top_tokens,
 * top_tokens_by_mean, promotes / suppresses (with a logit lens), and
 *   top_examples       [{value, row, ...}], largest first;
 *   quantile_examples  [{quantile, value, row, ...}] at 0.1 0.3 0.5 0.7 0.9,
 *                      levels of a feature that never fired left out.
 * With the data file the examples also carry where they are, as `sae show
 * --json` names it: doc (corpus document), window (of that document, from 0),
 * windows (the document's count), file_window, pos (in the window); and with
 * /tokens and a vocabulary their text: before, token, after, the window's
 * fd->context tokens either side (cut at the window's edges; the token widened
 * to whole characters when byte-fallback pieces split one), and context =
 * before + "[" + token + "]" + after. A key that does not apply is absent:
 * no sentinel numbers. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileutil.h"
#include "common/mem.h"
#include "data/docs.h"
#include "data/h5.h"
#include "features/feat_internal.h"

static cJSON *tok_array(const feat_dict *fd, const int32_t *ids, const void *vals, int is_f32, size_t n) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n && ids[i] >= 0; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", ids[i]);
        if (fd->vocab) cJSON_AddStringToObject(o, "token", fd->vocab[ids[i]]);
        cJSON_AddNumberToObject(o, "value", is_f32 ? (double)((const float *)vals)[i]
                                                   : (double)((const int64_t *)vals)[i]);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

/* What the examples are located and decoded with; every part optional. */
typedef struct {
    data_actfile *f;        /* NULL: rows and values only */
    data_docs docs;
    int has_docs;
    const char *const *vocab; /* NULL: no text */
    size_t vocab_size;
    char **own_vocab;       /* read here when the dictionary has none */
    size_t context;
    data_example ex;
} example_src;

cJSON *feat_example_json(const data_example *ex, float value, int64_t row, double quantile) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    int ok = 1;
    if (quantile >= 0) ok &= cJSON_AddNumberToObject(o, "quantile", quantile) != NULL;
    ok &= cJSON_AddNumberToObject(o, "value", value) != NULL;
    ok &= cJSON_AddNumberToObject(o, "row", (double)row) != NULL;
    if (ex) {
        ok &= cJSON_AddNumberToObject(o, "doc", (double)ex->doc) != NULL;
        ok &= cJSON_AddNumberToObject(o, "window", (double)ex->window) != NULL;
        ok &= cJSON_AddNumberToObject(o, "windows", (double)ex->windows) != NULL;
        ok &= cJSON_AddNumberToObject(o, "file_window", (double)ex->file_window) != NULL;
        ok &= cJSON_AddNumberToObject(o, "pos", (double)ex->pos) != NULL;
    }
    if (ex && ex->has_text) {
        ok &= cJSON_AddStringToObject(o, "before", ex->before) != NULL;
        ok &= cJSON_AddStringToObject(o, "token", ex->token) != NULL;
        ok &= cJSON_AddStringToObject(o, "after", ex->after) != NULL;
        size_t n = strlen(ex->before) + strlen(ex->token) + strlen(ex->after) + 3;
        char *ctx = sae_malloc(n);
        if (ctx) snprintf(ctx, n, "%s[%s]%s", ex->before, ex->token, ex->after);
        ok &= ctx && cJSON_AddStringToObject(o, "context", ctx) != NULL;
        sae_free(ctx);
    }
    if (!ok) cJSON_Delete(o), o = NULL;
    return o;
}

/* One example (level < 0 for a top example) added to array a. */
static int add_example(cJSON *a, example_src *src, double level, float value, int64_t row, sae_error *err) {
    const data_example *ex = NULL;
    if (src->has_docs && row >= 0 && (uint64_t)row < src->docs.n_rows) {
        int rc = data_example_at(&src->ex, src->f, &src->docs, src->vocab, src->vocab_size, row, src->context,
                                 "\n", err);
        if (rc < 0) return rc;
        ex = &src->ex;
    }
    cJSON *o = feat_example_json(ex, value, row, level);
    if (!o || !cJSON_AddItemToArray(a, o)) {
        cJSON_Delete(o);
        return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    }
    return SAE_OK;
}

static int src_open(example_src *src, const feat_dict *fd, data_actfile *f, sae_error *err) {
    src->f = f, src->context = fd->context;
    if (!f) return SAE_OK;
    int rc = data_docs_load(&src->docs, f, err);
    if (rc < 0) return rc;
    src->has_docs = 1;
    if (!f->has_tokens || !f->vocab_size) return SAE_OK;
    if (fd->vocab && fd->vocab_size == f->vocab_size) {
        src->vocab = (const char *const *)fd->vocab, src->vocab_size = fd->vocab_size;
        return SAE_OK;
    }
    if ((rc = data_actfile_read_vocab(f, &src->own_vocab, err)) < 0) return rc;
    src->vocab = (const char *const *)src->own_vocab, src->vocab_size = f->vocab_size;
    return SAE_OK;
}

static void src_close(example_src *src) {
    if (src->has_docs) data_docs_free(&src->docs);
    if (src->own_vocab) data_h5_free_strings(src->own_vocab, src->vocab_size);
}

/* Feature j's object into *out. */
static int feature_json(cJSON **out, const feat_dict *fd, size_t j, example_src *src, sae_error *err) {
    size_t N = fd->top_n, T = FEAT_TOP_TOKENS, L = FEAT_LENS, Q = FEAT_QUANTILES;
    cJSON *o = *out = cJSON_CreateObject();
    if (!o) return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    cJSON_AddNumberToObject(o, "feature", (double)j);
    cJSON_AddStringToObject(o, "label", fd->label[j] ? fd->label[j] : "");
    cJSON_AddNumberToObject(o, "count", (double)fd->count[j]);
    cJSON_AddNumberToObject(o, "density", fd->n_tokens ? (double)fd->count[j] / (double)fd->n_tokens : 0);
    cJSON_AddNumberToObject(o, "mean_act", fd->mean[j]);
    cJSON_AddNumberToObject(o, "max_act", fd->max[j]);
    cJSON_AddItemToObject(o, "top_tokens", tok_array(fd, fd->tok_count_id + j * T, fd->tok_count + j * T, 0, T));
    cJSON_AddItemToObject(o, "top_tokens_by_mean", tok_array(fd, fd->tok_mean_id + j * T, fd->tok_mean + j * T, 1, T));
    if (fd->has_lens) {
        cJSON_AddItemToObject(o, "promotes", tok_array(fd, fd->lens_up_id + j * L, fd->lens_up + j * L, 1, L));
        cJSON_AddItemToObject(o, "suppresses", tok_array(fd, fd->lens_down_id + j * L, fd->lens_down + j * L, 1, L));
    }
    cJSON *top = cJSON_AddArrayToObject(o, "top_examples");
    cJSON *qex = cJSON_AddArrayToObject(o, "quantile_examples");
    int rc = top && qex ? SAE_OK : sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; rc == SAE_OK && i < N && fd->top_row[j * N + i] >= 0; i++)
        rc = add_example(top, src, -1, fd->top_val[j * N + i], fd->top_row[j * N + i], err);
    for (size_t q = 0; rc == SAE_OK && q < Q; q++)
        if (fd->q_row[j * Q + q] >= 0)
            rc = add_example(qex, src, feat_quantile_levels[q], fd->q_val[j * Q + q], fd->q_row[j * Q + q], err);
    return rc;
}

int feat_write_json(const feat_dict *fd, data_actfile *data, const char *path, sae_error *err) {
    char tmp[4200];
    int rc = sae_tmp_path(tmp, sizeof tmp, path, err);
    if (rc < 0) return rc;
    example_src *src = sae_calloc_n(1, sizeof *src);
    if (!src) return sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory");
    rc = src_open(src, fd, data, err);
    FILE *f = rc == SAE_OK ? fopen(tmp, "w") : NULL;
    if (rc == SAE_OK && !f) rc = sae_error_set(err, SAE_ERR_IO, path, "cannot create the output");
    for (size_t j = 0; j < fd->M && rc == SAE_OK; j++) {
        cJSON *o = NULL;
        rc = feature_json(&o, fd, j, src, err);
        char *s = rc == SAE_OK ? cJSON_PrintUnformatted(o) : NULL;
        if (s) {
            if (fprintf(f, "%s\n", s) < 0) rc = sae_error_set(err, SAE_ERR_IO, path, "cannot write");
            cJSON_free(s);
        } else if (rc == SAE_OK) {
            rc = sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory");
        }
        cJSON_Delete(o);
    }
    if (f && fclose(f) != 0 && rc == SAE_OK) rc = sae_error_set(err, SAE_ERR_IO, path, "cannot write: disk full?");
    if (rc == SAE_OK) rc = sae_commit_file(tmp, path, err);
    if (rc < 0 && f) remove(tmp);
    src_close(src);
    sae_free(src);
    return rc;
}
