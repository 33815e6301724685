/* features/json.c: the features file's JSON Lines twin, one object per feature. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileutil.h"
#include "common/mem.h"
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

int feat_write_json(const feat_dict *fd, const char *path, sae_error *err) {
    char tmp[4200];
    int rc = sae_tmp_path(tmp, sizeof tmp, path, err);
    if (rc < 0) return rc;
    FILE *f = fopen(tmp, "w");
    if (!f) return sae_error_set(err, SAE_ERR_IO, path, "cannot create the output");
    size_t N = fd->top_n, T = FEAT_TOP_TOKENS, L = FEAT_LENS;
    for (size_t j = 0; j < fd->M && rc == SAE_OK; j++) {
        cJSON *o = cJSON_CreateObject();
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
        cJSON *top = cJSON_CreateArray();
        for (size_t i = 0; i < N && fd->top_row[j * N + i] >= 0; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "row", (double)fd->top_row[j * N + i]);
            cJSON_AddNumberToObject(e, "value", fd->top_val[j * N + i]);
            cJSON_AddItemToArray(top, e);
        }
        cJSON_AddItemToObject(o, "top_examples", top);
        char *s = cJSON_PrintUnformatted(o);
        if (!s || fprintf(f, "%s\n", s) < 0) rc = sae_error_set(err, SAE_ERR_IO, path, "cannot write");
        sae_free(s);
        cJSON_Delete(o);
    }
    if (fclose(f) != 0 && rc == SAE_OK) rc = sae_error_set(err, SAE_ERR_IO, path, "cannot write: disk full?");
    if (rc == SAE_OK) rc = sae_commit_file(tmp, path, err);
    if (rc < 0) remove(tmp);
    return rc;
}
