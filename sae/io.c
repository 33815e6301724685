/* sae/io.c: reading and writing SAE tensors and config (layout in io.h). */
#include "sae/io.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "common/mem.h"
#include "data/h5.h"

/* (rows, cols) -> (cols, rows) */
static void transpose(float *dst, const float *src, size_t rows, size_t cols) {
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c];
}

int sae_file_write_model(int64_t h5_loc, const sae_model *m, double input_scale, const char *path,
                         sae_error *err) {
    hid_t h = (hid_t)h5_loc;
    size_t D = m->cfg.d, M = m->cfg.m;
    hsize_t ddec[2] = {M, D}, dm[1] = {M}, dd[1] = {D};
    /* files hold W_enc as (D, M), the layout other tools expect */
    int rc = data_h5_write_f32_transposed(h, "W_enc", m->p.W_enc, M, D, path, err);
    if (rc == SAE_OK) rc = data_h5_write_f32(h, "b_enc", m->p.b_enc, 1, dm, 0, path, err);
    if (rc == SAE_OK) rc = data_h5_write_f32(h, "W_dec", m->p.W_dec, 2, ddec, 0, path, err);
    if (rc == SAE_OK) rc = data_h5_write_f32(h, "b_dec", m->p.b_dec, 1, dd, 0, path, err);
    if (rc < 0) return rc;
    int a = 0;
    a |= data_h5_set_attr_str(h, "format", "sae");
    a |= data_h5_set_attr_i64(h, "format_version", SAE_FILE_FORMAT_VERSION);
    a |= data_h5_set_attr_str(h, "arch", sae_arch_name(m->cfg.arch));
    a |= data_h5_set_attr_i64(h, "d_model", (int64_t)D);
    a |= data_h5_set_attr_i64(h, "n_latents", (int64_t)M);
    a |= data_h5_set_attr_i64(h, "k", (int64_t)m->cfg.k);
    a |= data_h5_set_attr_i64(h, "aux_k", (int64_t)m->cfg.aux_k);
    a |= data_h5_set_attr_f64(h, "aux_coef", m->cfg.aux_coef);
    a |= data_h5_set_attr_f64(h, "input_scale", input_scale);
    if (a) return sae_error_set(err, SAE_ERR_IO, path, "cannot write attributes");
    return SAE_OK;
}

int sae_file_read_config(int64_t h5_loc, sae_config *c, double *input_scale, const char *path,
                         sae_error *err) {
    hid_t h = (hid_t)h5_loc;
    char fmt[64], arch[64];
    if (data_h5_get_attr_str(h, "format", fmt, sizeof fmt) != SAE_OK || strcmp(fmt, "sae") != 0) {
        data_h5_info info;
        if (data_h5_dataset_info(h, "activations", &info) == SAE_OK)
            return sae_error_set(err, SAE_ERR_FORMAT, path,
                                 "is an activation file, not an SAE (pass it as --data)");
        return sae_error_set(err, SAE_ERR_FORMAT, path,
                             "not an SAE file (no format=\"sae\" attribute)");
    }
    int64_t ver = 0, d = 0, m = 0, k = 0, aux_k = 0;
    double aux_coef = 0, scale = 1;
    data_h5_get_attr_i64(h, "format_version", &ver);
    if (ver > SAE_FILE_FORMAT_VERSION)
        return sae_error_set(err, SAE_ERR_UNSUPPORTED, path,
                             "SAE format_version %lld is newer than this tool reads (%d)",
                             (long long)ver, SAE_FILE_FORMAT_VERSION);
    memset(c, 0, sizeof *c);
    if (data_h5_get_attr_str(h, "arch", arch, sizeof arch) != SAE_OK ||
        sae_arch_parse(arch, &c->arch) != 0)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "unknown or missing arch attribute '%s'",
                             arch);
    if (data_h5_get_attr_i64(h, "d_model", &d) != SAE_OK ||
        data_h5_get_attr_i64(h, "n_latents", &m) != SAE_OK || d <= 0 || m <= 0)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "missing or bad d_model/n_latents attributes");
    data_h5_get_attr_i64(h, "k", &k);
    data_h5_get_attr_i64(h, "aux_k", &aux_k);
    data_h5_get_attr_f64(h, "aux_coef", &aux_coef);
    if (data_h5_get_attr_f64(h, "input_scale", &scale) != SAE_OK || !(scale > 0) || !isfinite(scale))
        return sae_error_set(err, SAE_ERR_FORMAT, path, "missing or bad input_scale attribute");
    c->d = (size_t)d;
    c->m = (size_t)m;
    c->k = k > 0 ? (size_t)k : 0;
    c->aux_k = aux_k > 0 ? (size_t)aux_k : 0;
    c->aux_coef = (float)aux_coef;
    *input_scale = scale;
    sae_error tmp = {0};
    if (sae_config_validate(c, &tmp) < 0)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "bad SAE config: %s %s", tmp.subject, tmp.msg);
    return SAE_OK;
}

int sae_file_read_params(int64_t h5_loc, sae_model *m, const char *path, sae_error *err) {
    hid_t h = (hid_t)h5_loc;
    size_t D = m->cfg.d, M = m->cfg.m;
    struct {
        const char *name;
        int rank;
        hsize_t d0, d1;
    } want[4] = {{"W_enc", 2, D, M}, {"b_enc", 1, M, 0}, {"W_dec", 2, M, D}, {"b_dec", 1, D, 0}};
    for (int i = 0; i < 4; i++) {
        data_h5_info info;
        if (data_h5_dataset_info(h, want[i].name, &info) != SAE_OK)
            return sae_error_set(err, SAE_ERR_FORMAT, path, "missing dataset /%s", want[i].name);
        if (info.rank != want[i].rank || info.cls != H5T_FLOAT || info.dims[0] != want[i].d0 ||
            (want[i].rank == 2 && info.dims[1] != want[i].d1))
            return sae_error_set(err, SAE_ERR_FORMAT, path,
                                 "/%s has the wrong shape or type for d=%zu, M=%zu", want[i].name, D, M);
    }
    float *t = sae_alloc(D * M * sizeof(float));
    if (!t) return sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory");
    int rc = data_h5_read_f32(h, "W_enc", t, D * M, path, err);
    if (rc == SAE_OK) transpose(m->p.W_enc, t, D, M);
    sae_free(t);
    if (rc == SAE_OK) rc = data_h5_read_f32(h, "b_enc", m->p.b_enc, M, path, err);
    if (rc == SAE_OK) rc = data_h5_read_f32(h, "W_dec", m->p.W_dec, M * D, path, err);
    if (rc == SAE_OK) rc = data_h5_read_f32(h, "b_dec", m->p.b_dec, D, path, err);
    if (rc == SAE_OK) {
        size_t n = sae_param_count(&m->cfg);
        for (size_t i = 0; i < n; i++)
            if (!isfinite(m->param_blob[i]))
                return sae_error_set(err, SAE_ERR_NONFINITE, path, "SAE parameters hold NaN or Inf");
    }
    return rc;
}

int sae_file_open_h5(const char *path, int64_t *h5_out, sae_error *err) {
    data_h5_init();
    struct stat st;
    if (stat(path, &st) != 0) return sae_error_set(err, SAE_ERR_IO, path, "%s", strerror(errno));
    if (!S_ISREG(st.st_mode)) return sae_error_set(err, SAE_ERR_IO, path, "not a regular file");
    if (st.st_size == 0) return sae_error_set(err, SAE_ERR_FORMAT, path, "empty file");
    char msg[256];
    if (H5Fis_hdf5(path) <= 0) return sae_error_set(err, SAE_ERR_FORMAT, path, "not an HDF5 file");
    hid_t h = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (h < 0)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "cannot open HDF5 file (%s); truncated or damaged?",
                             data_h5_last_error(msg, sizeof msg));
    *h5_out = h;
    return SAE_OK;
}

int sae_file_load(const char *path, sae_model *m, size_t capacity, double *input_scale,
                  sae_error *err) {
    memset(m, 0, sizeof *m);
    int64_t h;
    data_h5_lock();
    int rc = sae_file_open_h5(path, &h, err);
    if (rc < 0) {
        data_h5_unlock();
        return rc;
    }
    sae_config c;
    rc = sae_file_read_config(h, &c, input_scale, path, err);
    if (rc == SAE_OK) rc = sae_model_init(m, &c, capacity, 0, err);
    if (rc == SAE_OK) {
        rc = sae_file_read_params(h, m, path, err);
        if (rc < 0) sae_model_free(m);
    }
    H5Fclose((hid_t)h);
    data_h5_unlock();
    return rc;
}
