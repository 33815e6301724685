/* features/file.c: the features file (HDF5).
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
 *   and, since issue 12, the data's identity (data_identity_write_attrs, data/docs.h): data is
 *   then its absolute path, with data_n, data_d, data_fingerprint, model, layer, hook and
 *   tokenizer. Older files (a relative data path, no identity) are read the same way.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileutil.h"
#include "common/mem.h"
#include "data/docs.h"
#include "data/h5.h"
#include "features/feat_internal.h"
#include "sae/io.h"

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
    /* the data's identity beside its path, so that a reader can tell a copy of
     * it from another file */
    const data_identity id = fd->data_id;
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
        if (id.has_fingerprint) a |= data_identity_write_attrs(h, &id);
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

/* --- reading: everything checked once, here, so consumers can index freely --- */
#define FEAT_MAX_TOP 1000000      /* top_n: sae features caps --top far lower */
#define FEAT_MAX_CONTEXT 1000000  /* context: tokens either side, only displayed */

/* Dataset `name` must be [rows] (cols = 0) or [rows, cols] of class cls, and
 * its storage must hold that shape (so reading it cannot scan fill values). */
static int check_shape(hid_t h, const char *name, H5T_class_t cls, size_t rows, size_t cols,
                       const char *path, sae_error *err) {
    data_h5_info in;
    if (data_h5_dataset_info(h, name, &in) != SAE_OK)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "features file lacks /%s", name);
    if (in.rank != (cols ? 2 : 1) || in.cls != cls || in.dims[0] != rows || (cols && in.dims[1] != cols)) {
        if (cols)
            return sae_error_set(err, SAE_ERR_FORMAT, path, "/%s must be [%zu, %zu] %s (M = %zu from /count)",
                                 name, rows, cols, cls == H5T_FLOAT ? "float" : "integer", rows);
        return sae_error_set(err, SAE_ERR_FORMAT, path, "/%s must be [%zu] %s (M = %zu from /count)", name,
                             rows, cls == H5T_FLOAT ? "float" : cls == H5T_STRING ? "strings" : "integer", rows);
    }
    return sae_file_check_stored(h, name, path, err);
}

typedef struct {
    const char *name;
    H5T_class_t cls;
    size_t cols; /* 0: [M] */
} feat_ds;

/* The file's root attributes, range-checked. */
static int read_attrs(hid_t h, feat_dict *fd, const char *path, sae_error *err) {
    int64_t ntok = 0, ctx = 8;
    data_h5_get_attr_i64(h, "n_tokens", &ntok);
    data_h5_get_attr_i64(h, "context", &ctx);
    if (ntok < 0) return sae_error_set(err, SAE_ERR_FORMAT, path, "attribute n_tokens = %lld is negative", (long long)ntok);
    if (ctx < 0 || ctx > FEAT_MAX_CONTEXT)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "attribute context = %lld is out of range (0 .. %d)",
                             (long long)ctx, FEAT_MAX_CONTEXT);
    fd->n_tokens = (uint64_t)ntok, fd->context = (size_t)ctx;
    /* absent or unreadable paths stay "" (they are only shown), but running
     * out of memory is reported, not taken for a missing attribute */
    if (data_h5_get_attr_str(h, "sae", fd->sae_path, sizeof fd->sae_path) == SAE_ERR_NOMEM ||
        data_h5_get_attr_str(h, "data", fd->data_path, sizeof fd->data_path) == SAE_ERR_NOMEM)
        return sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory reading its attributes");
    data_identity_read_attrs(h, &fd->data_id); /* absent in older files: has_fingerprint 0 */
    return SAE_OK;
}

/* M, top_n, and the shape of every dataset, before anything is allocated. */
static int read_layout(hid_t h, size_t *M_out, size_t *N_out, int *has_lens, size_t *V, const char *path,
                       sae_error *err) {
    data_h5_info in;
    int64_t top_n = 0;
    data_h5_get_attr_i64(h, "top_n", &top_n);
    if (data_h5_dataset_info(h, "count", &in) != SAE_OK || in.rank != 1)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "features file lacks /count");
    if (in.dims[0] < 1 || in.dims[0] > INT32_MAX)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "/count holds %llu features (1 .. %d allowed)",
                             (unsigned long long)in.dims[0], INT32_MAX);
    if (top_n <= 0 || top_n > FEAT_MAX_TOP)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "attribute top_n = %lld is missing or out of range (1 .. %d)",
                             (long long)top_n, FEAT_MAX_TOP);
    size_t M = (size_t)in.dims[0], N = (size_t)top_n;
    const feat_ds req[] = {
        {"count", H5T_INTEGER, 0}, {"mean_act", H5T_FLOAT, 0}, {"max_act", H5T_FLOAT, 0},
        {"hist", H5T_INTEGER, FEAT_HIST_BINS}, {"top/value", H5T_FLOAT, N}, {"top/row", H5T_INTEGER, N},
        {"quantile/value", H5T_FLOAT, FEAT_QUANTILES}, {"quantile/row", H5T_INTEGER, FEAT_QUANTILES},
        {"tokens/by_count_id", H5T_INTEGER, FEAT_TOP_TOKENS}, {"tokens/by_count", H5T_INTEGER, FEAT_TOP_TOKENS},
        {"tokens/by_mean_id", H5T_INTEGER, FEAT_TOP_TOKENS}, {"tokens/by_mean", H5T_FLOAT, FEAT_TOP_TOKENS},
        {"label", H5T_STRING, 0}};
    const feat_ds lens[] = {{"lens/promote_id", H5T_INTEGER, FEAT_LENS}, {"lens/suppress_id", H5T_INTEGER, FEAT_LENS},
                            {"lens/promote", H5T_FLOAT, FEAT_LENS}, {"lens/suppress", H5T_FLOAT, FEAT_LENS}};
    int rc = SAE_OK;
    for (size_t i = 0; i < sizeof req / sizeof req[0] && rc == SAE_OK; i++)
        rc = check_shape(h, req[i].name, req[i].cls, M, req[i].cols, path, err);
    *has_lens = rc == SAE_OK && data_h5_dataset_info(h, "lens/promote_id", &in) == SAE_OK;
    for (size_t i = 0; *has_lens && i < sizeof lens / sizeof lens[0] && rc == SAE_OK; i++)
        rc = check_shape(h, lens[i].name, lens[i].cls, M, lens[i].cols, path, err);
    *V = 0;
    if (rc == SAE_OK && data_h5_dataset_info(h, "vocab", &in) == SAE_OK) {
        if (in.rank != 1 || in.cls != H5T_STRING || in.dims[0] > INT32_MAX)
            return sae_error_set(err, SAE_ERR_FORMAT, path, "/vocab must be a list of at most %d strings", INT32_MAX);
        rc = sae_file_check_stored(h, "vocab", path, err);
        *V = (size_t)in.dims[0];
    }
    *M_out = M, *N_out = N;
    return rc;
}

static int read_numbers(hid_t h, feat_dict *fd, const char *path, sae_error *err) {
    /* each count below equals the dataset's shape, checked by read_layout, and
     * each product is bounded by the bytes the file stores */
    size_t M = fd->M, N = fd->top_n, T = FEAT_TOP_TOKENS, L = FEAT_LENS;
    int rc = data_h5_read_i64(h, "count", (int64_t *)fd->count, M, path, err);
    if (rc == SAE_OK) rc = data_h5_read_f32(h, "mean_act", fd->mean, M, path, err);
    if (rc == SAE_OK) rc = data_h5_read_f32(h, "max_act", fd->max, M, path, err);
    if (rc == SAE_OK) rc = data_h5_read_i64(h, "hist", (int64_t *)fd->hist, M * FEAT_HIST_BINS, path, err);
    if (rc == SAE_OK) rc = data_h5_read_f32(h, "top/value", fd->top_val, M * N, path, err);
    if (rc == SAE_OK) rc = data_h5_read_i64(h, "top/row", fd->top_row, M * N, path, err);
    if (rc == SAE_OK) rc = data_h5_read_f32(h, "quantile/value", fd->q_val, M * FEAT_QUANTILES, path, err);
    if (rc == SAE_OK) rc = data_h5_read_i64(h, "quantile/row", fd->q_row, M * FEAT_QUANTILES, path, err);
    if (rc == SAE_OK) rc = data_h5_read_i32(h, "tokens/by_count_id", fd->tok_count_id, M * T, path, err);
    if (rc == SAE_OK) rc = data_h5_read_i64(h, "tokens/by_count", fd->tok_count, M * T, path, err);
    if (rc == SAE_OK) rc = data_h5_read_i32(h, "tokens/by_mean_id", fd->tok_mean_id, M * T, path, err);
    if (rc == SAE_OK) rc = data_h5_read_f32(h, "tokens/by_mean", fd->tok_mean, M * T, path, err);
    if (rc == SAE_OK && fd->has_lens) {
        rc = data_h5_read_i32(h, "lens/promote_id", fd->lens_up_id, M * L, path, err);
        if (rc == SAE_OK) rc = data_h5_read_i32(h, "lens/suppress_id", fd->lens_down_id, M * L, path, err);
        if (rc == SAE_OK) rc = data_h5_read_f32(h, "lens/promote", fd->lens_up, M * L, path, err);
        if (rc == SAE_OK) rc = data_h5_read_f32(h, "lens/suppress", fd->lens_down, M * L, path, err);
    }
    return rc;
}

/* A string list of exactly n entries, NULL entries made "" (consumers print
 * them without checking). */
static int read_string_list(hid_t h, const char *name, char ***out, size_t n, const char *path,
                            sae_error *err) {
    char **s = NULL;
    size_t got = 0;
    int rc = data_h5_read_strings(h, name, &s, &got, path, err);
    if (rc < 0) return rc;
    if (got != n) rc = sae_error_set(err, SAE_ERR_FORMAT, path, "/%s holds %zu strings, expected %zu", name, got, n);
    for (size_t i = 0; i < got && rc == SAE_OK; i++)
        if (!s[i] && !(s[i] = sae_strdup("")))
            rc = sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory");
    if (rc < 0) {
        data_h5_free_strings(s, got);
        return rc;
    }
    *out = s;
    return SAE_OK;
}

/* Ids (rows, cols) are -1 (none) or index /vocab (any id >= 0 without one:
 * then nothing indexes a vocabulary with them). */
static int check_ids(const int32_t *ids, size_t rows, size_t cols, size_t V, int has_vocab, const char *name,
                     const char *path, sae_error *err) {
    for (size_t i = 0; i < rows * cols; i++) {
        if (ids[i] < -1)
            return sae_error_set(err, SAE_ERR_FORMAT, path,
                                 "/%s[%zu][%zu] = %d is not a token id (ids are >= 0, or -1 for none)", name,
                                 i / cols, i % cols, (int)ids[i]);
        if (has_vocab && ids[i] >= 0 && (size_t)ids[i] >= V)
            return sae_error_set(err, SAE_ERR_FORMAT, path,
                                 "/%s[%zu][%zu] = %d is not a token id (/vocab has %zu entries)", name, i / cols,
                                 i % cols, (int)ids[i], V);
    }
    return SAE_OK;
}

static int check_rows(const int64_t *rows, size_t n, const char *name, const char *path, sae_error *err) {
    for (size_t i = 0; i < n; i++)
        if (rows[i] < -1)
            return sae_error_set(err, SAE_ERR_FORMAT, path, "/%s holds row %lld (rows are >= 0, or -1 for none)",
                                 name, (long long)rows[i]);
    return SAE_OK;
}

static int check_values(const feat_dict *fd, const char *path, sae_error *err) {
    size_t M = fd->M, T = FEAT_TOP_TOKENS, L = FEAT_LENS, V = fd->vocab_size;
    int hv = fd->vocab != NULL;
    for (size_t j = 0; j < M; j++)
        if ((int64_t)fd->count[j] < 0 || fd->count[j] > fd->n_tokens)
            return sae_error_set(err, SAE_ERR_FORMAT, path, "/count[%zu] = %lld is outside 0 .. n_tokens (%llu)", j,
                                 (long long)fd->count[j], (unsigned long long)fd->n_tokens);
    int rc = check_ids(fd->tok_count_id, M, T, V, hv, "tokens/by_count_id", path, err);
    if (rc == SAE_OK) rc = check_ids(fd->tok_mean_id, M, T, V, hv, "tokens/by_mean_id", path, err);
    if (rc == SAE_OK && fd->has_lens) rc = check_ids(fd->lens_up_id, M, L, V, hv, "lens/promote_id", path, err);
    if (rc == SAE_OK && fd->has_lens) rc = check_ids(fd->lens_down_id, M, L, V, hv, "lens/suppress_id", path, err);
    if (rc == SAE_OK) rc = check_rows(fd->top_row, M * fd->top_n, "top/row", path, err);
    if (rc == SAE_OK) rc = check_rows(fd->q_row, M * FEAT_QUANTILES, "quantile/row", path, err);
    return rc;
}

static int read_open(hid_t h, feat_dict **out, const char *path, sae_error *err) {
    size_t M = 0, N = 0, V = 0;
    int has_lens = 0;
    int rc = read_layout(h, &M, &N, &has_lens, &V, path, err);
    if (rc < 0) return rc;
    feat_dict *fd = feat__alloc(M, N);
    if (!fd) return sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory for %zu features", M);
    fd->has_lens = has_lens;
    rc = read_attrs(h, fd, path, err);
    if (rc == SAE_OK) rc = read_numbers(h, fd, path, err);
    char **labels = NULL;
    if (rc == SAE_OK) rc = read_string_list(h, "label", &labels, M, path, err);
    if (rc == SAE_OK) {
        sae_free(fd->label);
        fd->label = labels;
    }
    if (rc == SAE_OK && V) rc = read_string_list(h, "vocab", &fd->vocab, V, path, err);
    if (rc == SAE_OK) fd->vocab_size = fd->vocab ? V : 0;
    if (rc == SAE_OK) rc = check_values(fd, path, err);
    if (rc < 0) {
        feat_free(fd);
        return rc;
    }
    *out = fd;
    return SAE_OK;
}

int feat_read(feat_dict **out, const char *path, sae_error *err) {
    *out = NULL;
    data_h5_init();
    data_h5_lock();
    char fmt[64] = "";
    hid_t h = -1;
    int rc = SAE_OK;
    if (H5Fis_hdf5(path) <= 0)
        rc = sae_error_set(err, SAE_ERR_FORMAT, path, sae_file_exists(path) ? "not an HDF5 file" : "no such file");
    else if ((h = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
        rc = data_h5_open_error(path, err); /* a file locked by a writer is named as such */
    else if ((rc = data_h5_get_attr_str(h, "format", fmt, sizeof fmt)) == SAE_ERR_NOMEM)
        rc = sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory reading /format");
    else if (rc != SAE_OK || strcmp(fmt, "sae-features") != 0)
        rc = sae_error_set(err, SAE_ERR_FORMAT, path, "not a features file (make one with `sae features`)");
    if (rc == SAE_OK) rc = read_open(h, out, path, err);
    if (h >= 0) H5Fclose(h);
    data_h5_unlock();
    return rc;
}
