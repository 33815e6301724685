/* features/file.c: the features file (HDF5) and its JSON-lines twin.
 *
 * Layout (M features; N = top_n; T = FEAT_TOP_TOKENS; L = FEAT_LENS):
 *   /count int64 [M], /density float64 [M] (count / tokens), /mean_act, /max_act float32 [M]
 *   /hist int64 [M, FEAT_HIST_BINS]      log10(act) bins; attributes hist_log10_min/max
 *   /top/value float32 [M, N], /top/row int64 [M, N]      descending; row -1 = none
 *   /quantile/value, /quantile/row [M, 5]                 attribute levels
 *   /tokens/by_count_id int32 [M, T], /tokens/by_count int64 [M, T]
 *   /tokens/by_mean_id int32 [M, T], /tokens/by_mean float32 [M, T]
 *   /label vlen UTF-8 [M]
 *   /lens/promote_id, /lens/suppress_id int32 [M, L], /lens/promote, /lens/suppress float32 [M, L]
 *   /vocab vlen UTF-8 [V]                                 copied from the data, when it has one
 *   root attributes: format = "sae-features", format_version, sae, data, n_tokens, top_n, context
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileutil.h"
#include "common/mem.h"
#include "data/h5.h"
#include "features/feat_internal.h"

/* An integer dataset [rows] (cols = 0) or [rows, cols], created with its groups. */
static int put_int(hid_t h, const char *name, hid_t filetype, hid_t memtype, const void *d, size_t rows,
                   size_t cols, const char *path, sae_error *err) {
    hsize_t dims[2] = {rows, cols};
    hid_t sp = H5Screate_simple(cols ? 2 : 1, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t ds = H5Dcreate2(h, name, filetype, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = ds >= 0 ? H5Dwrite(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, d) : -1;
    if (ds >= 0) H5Dclose(ds);
    H5Pclose(lcpl), H5Sclose(sp);
    return rc < 0 ? sae_error_set(err, SAE_ERR_IO, path, "cannot write /%s", name) : SAE_OK;
}

static int put_i64_2d(hid_t h, const char *name, const int64_t *d, size_t rows, size_t cols,
                      const char *path, sae_error *err) {
    return put_int(h, name, H5T_STD_I64LE, H5T_NATIVE_INT64, d, rows, cols, path, err);
}

static int put_i32_2d(hid_t h, const char *name, const int32_t *d, size_t rows, size_t cols,
                      const char *path, sae_error *err) {
    return put_int(h, name, H5T_STD_I32LE, H5T_NATIVE_INT32, d, rows, cols, path, err);
}

static int put_f32_2d(hid_t h, const char *name, const float *d, size_t rows, size_t cols,
                      const char *path, sae_error *err) {
    hsize_t dims[2] = {rows, cols};
    return data_h5_write_f32(h, name, d, cols ? 2 : 1, dims, 0, path, err);
}

int feat_write(const feat_dict *fd, const char *path, sae_error *err) {
    char tmp[4200];
    int rc = sae_tmp_path(tmp, sizeof tmp, path, err);
    if (rc < 0) return rc;
    size_t M = fd->M, N = fd->top_n, T = FEAT_TOP_TOKENS, L = FEAT_LENS, Q = FEAT_QUANTILES;
    double *density = sae_malloc(M * sizeof *density);
    if (!density) return sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory");
    for (size_t j = 0; j < M; j++) density[j] = fd->n_tokens ? (double)fd->count[j] / (double)fd->n_tokens : 0;
    data_h5_init();
    data_h5_lock();
    hid_t h = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (h < 0) rc = sae_error_set(err, SAE_ERR_IO, path, "cannot create the output");
    if (rc == SAE_OK) rc = put_i64_2d(h, "count", (const int64_t *)fd->count, M, 0, path, err);
    if (rc == SAE_OK) {
        hsize_t dm = M;
        hid_t sp = H5Screate_simple(1, &dm, NULL);
        hid_t ds = H5Dcreate2(h, "density", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (ds < 0 || H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, density) < 0)
            rc = sae_error_set(err, SAE_ERR_IO, path, "cannot write /density");
        if (ds >= 0) H5Dclose(ds);
        H5Sclose(sp);
    }
    if (rc == SAE_OK) rc = put_f32_2d(h, "mean_act", fd->mean, M, 0, path, err);
    if (rc == SAE_OK) rc = put_f32_2d(h, "max_act", fd->max, M, 0, path, err);
    if (rc == SAE_OK) rc = put_i64_2d(h, "hist", (const int64_t *)fd->hist, M, FEAT_HIST_BINS, path, err);
    if (rc == SAE_OK) rc = put_f32_2d(h, "top/value", fd->top_val, M, N, path, err);
    if (rc == SAE_OK) rc = put_i64_2d(h, "top/row", fd->top_row, M, N, path, err);
    if (rc == SAE_OK) rc = put_f32_2d(h, "quantile/value", fd->q_val, M, Q, path, err);
    if (rc == SAE_OK) rc = put_i64_2d(h, "quantile/row", fd->q_row, M, Q, path, err);
    if (rc == SAE_OK) rc = put_i32_2d(h, "tokens/by_count_id", fd->tok_count_id, M, T, path, err);
    if (rc == SAE_OK) rc = put_i64_2d(h, "tokens/by_count", fd->tok_count, M, T, path, err);
    if (rc == SAE_OK) rc = put_i32_2d(h, "tokens/by_mean_id", fd->tok_mean_id, M, T, path, err);
    if (rc == SAE_OK) rc = put_f32_2d(h, "tokens/by_mean", fd->tok_mean, M, T, path, err);
    if (rc == SAE_OK) rc = data_h5_write_strings(h, "label", (const char *const *)fd->label, M, path, err);
    if (rc == SAE_OK && fd->has_lens) {
        rc = put_i32_2d(h, "lens/promote_id", fd->lens_up_id, M, L, path, err);
        if (rc == SAE_OK) rc = put_i32_2d(h, "lens/suppress_id", fd->lens_down_id, M, L, path, err);
        if (rc == SAE_OK) rc = put_f32_2d(h, "lens/promote", fd->lens_up, M, L, path, err);
        if (rc == SAE_OK) rc = put_f32_2d(h, "lens/suppress", fd->lens_down, M, L, path, err);
    }
    if (rc == SAE_OK && fd->vocab)
        rc = data_h5_write_strings(h, "vocab", (const char *const *)fd->vocab, fd->vocab_size, path, err);
    if (rc == SAE_OK) {
        int a = 0;
        a |= data_h5_set_attr_str(h, "format", "sae-features");
        a |= data_h5_set_attr_i64(h, "format_version", FEAT_FORMAT_VERSION);
        a |= data_h5_set_attr_str(h, "sae", fd->sae_path);
        a |= data_h5_set_attr_str(h, "data", fd->data_path);
        a |= data_h5_set_attr_i64(h, "n_tokens", (int64_t)fd->n_tokens);
        a |= data_h5_set_attr_i64(h, "top_n", (int64_t)fd->top_n);
        a |= data_h5_set_attr_i64(h, "context", (int64_t)fd->context);
        a |= data_h5_set_attr_f64(h, "hist_log10_min", FEAT_HIST_LOG10_MIN);
        a |= data_h5_set_attr_f64(h, "hist_log10_max", FEAT_HIST_LOG10_MAX);
        if (a) rc = sae_error_set(err, SAE_ERR_IO, path, "cannot write attributes");
    }
    if (h >= 0 && H5Fclose(h) < 0 && rc == SAE_OK)
        rc = sae_error_set(err, SAE_ERR_IO, path, "cannot write the output: disk full?");
    data_h5_unlock();
    sae_free(density);
    if (rc == SAE_OK) rc = sae_commit_file(tmp, path, err);
    if (rc < 0) remove(tmp);
    return rc;
}

static int get_i64(hid_t h, const char *name, int64_t *d, size_t n, const char *path, sae_error *err) {
    return data_h5_read_i64(h, name, d, n, path, err);
}

int feat_read(feat_dict **out, const char *path, sae_error *err) {
    *out = NULL;
    data_h5_init();
    data_h5_lock();
    char fmt[64] = "", msg[256];
    hid_t h = -1;
    int rc = SAE_OK;
    if (H5Fis_hdf5(path) <= 0)
        rc = sae_error_set(err, SAE_ERR_FORMAT, path, sae_file_exists(path) ? "not an HDF5 file" : "no such file");
    else if ((h = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
        rc = sae_error_set(err, SAE_ERR_FORMAT, path, "cannot open (%s)", data_h5_last_error(msg, sizeof msg));
    else if (data_h5_get_attr_str(h, "format", fmt, sizeof fmt) != SAE_OK || strcmp(fmt, "sae-features") != 0)
        rc = sae_error_set(err, SAE_ERR_FORMAT, path, "not a features file (make one with `sae features`)");
    data_h5_info info;
    int64_t top_n = 0, ntok = 0, ctx = 8;
    if (rc == SAE_OK) {
        data_h5_get_attr_i64(h, "top_n", &top_n);
        data_h5_get_attr_i64(h, "n_tokens", &ntok);
        data_h5_get_attr_i64(h, "context", &ctx);
        if (data_h5_dataset_info(h, "count", &info) != SAE_OK || info.rank != 1 || top_n <= 0)
            rc = sae_error_set(err, SAE_ERR_FORMAT, path, "features file lacks /count or top_n");
    }
    feat_dict *fd = NULL;
    if (rc == SAE_OK) {
        size_t M = (size_t)info.dims[0], N = (size_t)top_n, T = FEAT_TOP_TOKENS, L = FEAT_LENS;
        fd = feat__alloc(M, N);
        if (!fd) rc = sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory");
        else fd->n_tokens = (uint64_t)ntok, fd->context = (size_t)ctx;
        if (rc == SAE_OK) rc = get_i64(h, "count", (int64_t *)fd->count, M, path, err);
        if (rc == SAE_OK) rc = data_h5_read_f32(h, "mean_act", fd->mean, M, path, err);
        if (rc == SAE_OK) rc = data_h5_read_f32(h, "max_act", fd->max, M, path, err);
        if (rc == SAE_OK) rc = get_i64(h, "hist", (int64_t *)fd->hist, M * FEAT_HIST_BINS, path, err);
        if (rc == SAE_OK) rc = data_h5_read_f32(h, "top/value", fd->top_val, M * N, path, err);
        if (rc == SAE_OK) rc = get_i64(h, "top/row", fd->top_row, M * N, path, err);
        if (rc == SAE_OK) rc = data_h5_read_f32(h, "quantile/value", fd->q_val, M * FEAT_QUANTILES, path, err);
        if (rc == SAE_OK) rc = get_i64(h, "quantile/row", fd->q_row, M * FEAT_QUANTILES, path, err);
        if (rc == SAE_OK) rc = data_h5_read_i32(h, "tokens/by_count_id", fd->tok_count_id, M * T, path, err);
        if (rc == SAE_OK) rc = get_i64(h, "tokens/by_count", fd->tok_count, M * T, path, err);
        if (rc == SAE_OK) rc = data_h5_read_i32(h, "tokens/by_mean_id", fd->tok_mean_id, M * T, path, err);
        if (rc == SAE_OK) rc = data_h5_read_f32(h, "tokens/by_mean", fd->tok_mean, M * T, path, err);
        size_t n;
        char **labels = NULL;
        if (rc == SAE_OK) rc = data_h5_read_strings(h, "label", &labels, &n, path, err);
        if (rc == SAE_OK) {
            sae_free(fd->label);
            fd->label = labels;
        }
        if (rc == SAE_OK && data_h5_dataset_info(h, "lens/promote_id", &info) == SAE_OK) {
            fd->has_lens = 1;
            rc = data_h5_read_i32(h, "lens/promote_id", fd->lens_up_id, M * L, path, err);
            if (rc == SAE_OK) rc = data_h5_read_i32(h, "lens/suppress_id", fd->lens_down_id, M * L, path, err);
            if (rc == SAE_OK) rc = data_h5_read_f32(h, "lens/promote", fd->lens_up, M * L, path, err);
            if (rc == SAE_OK) rc = data_h5_read_f32(h, "lens/suppress", fd->lens_down, M * L, path, err);
        }
        if (rc == SAE_OK && data_h5_dataset_info(h, "vocab", &info) == SAE_OK)
            rc = data_h5_read_strings(h, "vocab", &fd->vocab, &fd->vocab_size, path, err);
        if (rc == SAE_OK) {
            data_h5_get_attr_str(h, "sae", fd->sae_path, sizeof fd->sae_path);
            data_h5_get_attr_str(h, "data", fd->data_path, sizeof fd->data_path);
        }
    }
    if (h >= 0) H5Fclose(h);
    data_h5_unlock();
    if (rc < 0) {
        feat_free(fd);
        return rc;
    }
    *out = fd;
    return SAE_OK;
}

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
