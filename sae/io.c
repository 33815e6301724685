/* sae/io.c: reading and writing SAE tensors and config (layout in io.h). */
#include "sae/io.h"

#include <errno.h>
#include <float.h>
#include <stddef.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "common/mem.h"
#include "data/docs.h"
#include "data/h5.h"
#include "sae/foreign.h"

/* (rows, cols) -> (cols, rows) */
static void transpose(float *dst, const float *src, size_t rows, size_t cols) {
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c];
}

/* Settings beyond v1's (k, aux_k, aux_coef), written only where the
 * architecture uses them, so topk and relu files stay readable by v1 readers. */
typedef struct {
    const char *name;
    unsigned uses;
    size_t off;
    int is_float;
} cfg_attr;
static const cfg_attr EXTRA[] = {
    {"threshold_lr", SAE_USES_THRESHOLD_LR, offsetof(sae_config, threshold_lr), 1},
    {"target_l0", SAE_USES_JUMP, offsetof(sae_config, target_l0), 0},
    {"bandwidth", SAE_USES_JUMP, offsetof(sae_config, bandwidth), 1},
    {"threshold_init", SAE_USES_JUMP, offsetof(sae_config, threshold_init), 1},
};
#define N_EXTRA (sizeof EXTRA / sizeof EXTRA[0])

static int write_config(hid_t h, const sae_config *c, double input_scale) {
    unsigned uses = sae_arch_uses(c->arch);
    int a = 0;
    a |= data_h5_set_attr_str(h, "format", "sae");
    a |= data_h5_set_attr_i64(h, "format_version", sae_arch_file_version(c->arch));
    a |= data_h5_set_attr_str(h, "arch", sae_arch_name(c->arch));
    a |= data_h5_set_attr_i64(h, "d_model", (int64_t)c->d);
    a |= data_h5_set_attr_i64(h, "n_latents", (int64_t)c->m);
    a |= data_h5_set_attr_i64(h, "k", (int64_t)c->k);
    a |= data_h5_set_attr_i64(h, "aux_k", (int64_t)c->aux_k);
    a |= data_h5_set_attr_f64(h, "aux_coef", c->aux_coef);
    a |= data_h5_set_attr_f64(h, "input_scale", input_scale);
    for (size_t i = 0; i < N_EXTRA; i++) {
        if (!(uses & EXTRA[i].uses)) continue;
        const char *f = (const char *)c + EXTRA[i].off;
        if (EXTRA[i].is_float) a |= data_h5_set_attr_f64(h, EXTRA[i].name, *(const float *)f);
        else a |= data_h5_set_attr_i64(h, EXTRA[i].name, (int64_t) * (const size_t *)f);
    }
    return a;
}

int sae_file_write_model(int64_t h5_loc, const sae_model *m, double input_scale, const char *path,
                         sae_error *err) {
    hid_t h = (hid_t)h5_loc;
    sae_tensor t[SAE_MAX_TENSORS];
    size_t nt = sae_tensors(&m->cfg, t);
    int rc = SAE_OK;
    for (size_t i = 0; i < nt && rc == SAE_OK; i++) {
        const float *data = sae_tensor_data(&m->p, &t[i]);
        hsize_t dims[2] = {t[i].rows, t[i].cols};
        /* W_enc is held (M, D) and stored (D, M), the layout other tools expect */
        if (t[i].file_transposed)
            rc = data_h5_write_f32_transposed(h, t[i].name, data, t[i].rows, t[i].cols, path, err);
        else
            rc = data_h5_write_f32(h, t[i].name, data, t[i].cols ? 2 : 1, dims, 0, path, err);
    }
    if (rc == SAE_OK && m->cfg.n_widths) {
        int64_t w[SAE_MAX_WIDTHS];
        for (size_t i = 0; i < m->cfg.n_widths; i++) w[i] = (int64_t)m->cfg.widths[i];
        rc = data_h5_write_i64(h, "widths", w, m->cfg.n_widths, path, err);
    }
    if (rc < 0) return rc;
    if (write_config(h, &m->cfg, input_scale))
        return sae_error_set(err, SAE_ERR_IO, path, "cannot write attributes");
    return SAE_OK;
}

static int read_widths(hid_t h, sae_config *c, const char *path, sae_error *err) {
    data_h5_info info;
    if (data_h5_dataset_info(h, "widths", &info) != SAE_OK) return SAE_OK; /* none */
    if (info.rank != 1 || info.cls != H5T_INTEGER || info.dims[0] < 1 || info.dims[0] > SAE_MAX_WIDTHS)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "/widths must hold 1 to %d integers", SAE_MAX_WIDTHS);
    int64_t w[SAE_MAX_WIDTHS];
    int rc = data_h5_read_i64(h, "widths", w, (size_t)info.dims[0], path, err);
    if (rc < 0) return rc;
    c->n_widths = (size_t)info.dims[0];
    for (size_t i = 0; i < c->n_widths; i++) {
        if (w[i] <= 0 || (uint64_t)w[i] > c->m)
            return sae_error_set(err, SAE_ERR_FORMAT, path, "/widths[%zu] = %lld is out of range", i, (long long)w[i]);
        c->widths[i] = (size_t)w[i];
    }
    return SAE_OK;
}

/* A double attribute that converts to a finite float (a larger one would be
 * undefined behaviour to convert, and Inf passes the ">= 0" range checks). */
static int float_attr_ok(double v) { return isfinite(v) && fabs(v) <= FLT_MAX; }

int sae_file_read_config(int64_t h5_loc, sae_config *c, double *input_scale, const char *path,
                         sae_error *err) {
    hid_t h = (hid_t)h5_loc;
    char fmt[64], arch[64] = "";
    /* out of memory reading a string attribute is not "no such attribute" */
    int fr = data_h5_get_attr_str(h, "format", fmt, sizeof fmt);
    if (fr == SAE_ERR_NOMEM) return sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory reading /format");
    if (fr != SAE_OK || strcmp(fmt, "sae") != 0) {
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
    int ar = data_h5_get_attr_str(h, "arch", arch, sizeof arch);
    if (ar == SAE_ERR_NOMEM) return sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory reading /arch");
    if (ar != SAE_OK || sae_arch_parse(arch, &c->arch) != 0)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "unknown or missing arch attribute '%s'",
                             arch);
    if (data_h5_get_attr_i64(h, "d_model", &d) != SAE_OK ||
        data_h5_get_attr_i64(h, "n_latents", &m) != SAE_OK)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "missing d_model/n_latents attributes");
    /* plausibility before any size is computed from them (the tensors' shapes
     * are checked against them later, before allocation) */
    if (d <= 0 || m <= 0 || d > INT32_MAX || m > INT32_MAX)
        return sae_error_set(err, SAE_ERR_FORMAT, path,
                             "d_model = %lld, n_latents = %lld: each must be in 1 .. %d",
                             (long long)d, (long long)m, INT32_MAX);
    data_h5_get_attr_i64(h, "k", &k);
    data_h5_get_attr_i64(h, "aux_k", &aux_k);
    data_h5_get_attr_f64(h, "aux_coef", &aux_coef);
    if (!float_attr_ok(aux_coef))
        return sae_error_set(err, SAE_ERR_FORMAT, path, "attribute aux_coef = %g is not a finite float", aux_coef);
    if (data_h5_get_attr_f64(h, "input_scale", &scale) != SAE_OK || !(scale > 0) || !isfinite(scale))
        return sae_error_set(err, SAE_ERR_FORMAT, path, "missing or bad input_scale attribute");
    c->d = (size_t)d;
    c->m = (size_t)m;
    c->k = k > 0 ? (size_t)k : 0;
    c->aux_k = aux_k > 0 ? (size_t)aux_k : 0;
    c->aux_coef = (float)aux_coef;
    for (size_t i = 0; i < N_EXTRA; i++) {
        char *f = (char *)c + EXTRA[i].off;
        double v = 0;
        int64_t iv = 0;
        if (EXTRA[i].is_float && data_h5_get_attr_f64(h, EXTRA[i].name, &v) == SAE_OK) {
            if (!float_attr_ok(v))
                return sae_error_set(err, SAE_ERR_FORMAT, path, "attribute %s = %g is not a finite float",
                                     EXTRA[i].name, v);
            *(float *)f = (float)v;
        }
        if (!EXTRA[i].is_float && data_h5_get_attr_i64(h, EXTRA[i].name, &iv) == SAE_OK)
            *(size_t *)f = iv > 0 ? (size_t)iv : 0;
    }
    int rc = read_widths(h, c, path, err);
    if (rc < 0) return rc;
    *input_scale = scale;
    sae_error tmp = {0};
    if (sae_config_validate(c, &tmp) < 0)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "bad SAE config: %s %s", tmp.subject, tmp.msg);
    return SAE_OK;
}

/* What a dataset actually stores, against what its shape declares. An
 * unwritten (or partly written) dataset reads back fill values, so a tiny file
 * could otherwise declare gigabytes: uncompressed storage must cover the
 * shape, and compressed storage must be within what deflate can reach (about
 * 1032:1; 4096 leaves room for other filters). */
int sae_file_check_stored(int64_t h5_loc, const char *name, const char *path, sae_error *err) {
    hid_t ds = H5Dopen2((hid_t)h5_loc, name, H5P_DEFAULT);
    if (ds < 0) return sae_error_set(err, SAE_ERR_FORMAT, path, "cannot open /%s", name);
    hid_t sp = H5Dget_space(ds), ty = H5Dget_type(ds), dcpl = H5Dget_create_plist(ds);
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    size_t esize = ty >= 0 ? H5Tget_size(ty) : 0;
    int filters = dcpl >= 0 ? H5Pget_nfilters(dcpl) : 0;
    hsize_t stored = H5Dget_storage_size(ds);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (ty >= 0) H5Tclose(ty);
    if (sp >= 0) H5Sclose(sp);
    H5Dclose(ds);
    int ovf = n < 0 || esize == 0;
    size_t want = sae_mul_size(n < 0 ? 0 : (size_t)n, esize, &ovf);
    if (ovf) return sae_error_set(err, SAE_ERR_FORMAT, path, "/%s: cannot read its shape or type", name);
    if (want == 0) return SAE_OK;
    int ok = filters > 0 ? stored > 0 && want / 4096 <= stored : stored >= want;
    if (!ok)
        return sae_error_set(err, SAE_ERR_FORMAT, path,
                             "/%s declares %zu bytes but the file stores %llu of them; "
                             "truncated or never written?",
                             name, want, (unsigned long long)stored);
    return SAE_OK;
}

/* One tensor's dataset: its shape and type must be exactly the config's. */
static int check_tensor(hid_t h, const sae_tensor *t, const sae_config *c, const char *path,
                        sae_error *err) {
    data_h5_info info;
    hsize_t d0 = t->file_transposed ? t->cols : t->rows;
    hsize_t d1 = t->file_transposed ? t->rows : t->cols;
    if (data_h5_dataset_info(h, t->name, &info) != SAE_OK)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "missing dataset /%s", t->name);
    int shape_ok = info.rank == (t->cols ? 2 : 1) && info.dims[0] == d0 && (!t->cols || info.dims[1] == d1);
    if (shape_ok && info.cls != H5T_FLOAT) /* the right shape: say what is actually wrong */
        return sae_error_set(err, SAE_ERR_FORMAT, path, "/%s holds %s, not floating-point numbers", t->name,
                             info.cls == H5T_INTEGER ? "integers" : "values of another type");
    if (!shape_ok || info.cls != H5T_FLOAT) {
        if (info.rank == 2)
            return sae_error_set(err, SAE_ERR_FORMAT, path,
                                 "/%s is [%llu, %llu] (%s) but d_model=%zu, n_latents=%zu need [%llu, %llu]",
                                 t->name, (unsigned long long)info.dims[0], (unsigned long long)info.dims[1],
                                 info.cls == H5T_FLOAT ? "float" : "not float", c->d, c->m,
                                 (unsigned long long)d0, (unsigned long long)d1);
        return sae_error_set(err, SAE_ERR_FORMAT, path,
                             "/%s has the wrong shape or type for d_model=%zu, n_latents=%zu",
                             t->name, c->d, c->m);
    }
    return sae_file_check_stored(h, t->name, path, err);
}

int sae_file_check_tensors(int64_t h5_loc, const sae_config *c, const char *path, sae_error *err) {
    hid_t h = (hid_t)h5_loc;
    sae_tensor t[SAE_MAX_TENSORS];
    size_t nt = sae_tensors(c, t);
    int ovf = 0;
    size_t total = 0;
    for (size_t i = 0; i < nt; i++) {
        int rc = check_tensor(h, &t[i], c, path, err);
        if (rc < 0) return rc;
        size_t n = sae_mul_size(t[i].rows, t[i].cols ? t[i].cols : 1, &ovf);
        ovf |= __builtin_add_overflow(total, n, &total);
    }
    /* the blob's layout is computed from the config alone: it must be the sum
     * of exactly these datasets */
    if (ovf || total != sae_blob_count(c))
        return sae_error_set(err, SAE_ERR_FORMAT, path,
                             "the SAE's tensors do not add up to its parameter count");
    return SAE_OK;
}

/* The first non-finite parameter, named by tensor and index, or SAE_OK. */
static int check_finite(const sae_model *m, const char *path, sae_error *err) {
    sae_tensor t[SAE_MAX_TENSORS];
    size_t nt = sae_tensors(&m->cfg, t);
    for (size_t i = 0; i < nt; i++) {
        const float *v = sae_tensor_data(&m->p, &t[i]);
        size_t n = sae_tensor_numel(&t[i]);
        for (size_t j = 0; j < n; j++)
            if (!isfinite(v[j]))
                return sae_error_set(err, SAE_ERR_NONFINITE, path,
                                     "SAE parameters hold NaN or Inf (/%s, element %zu is %g); "
                                     "the file is damaged or came from a diverged run",
                                     t[i].name, j, (double)v[j]);
    }
    return SAE_OK;
}

int sae_file_read_params(int64_t h5_loc, sae_model *m, const char *path, sae_error *err) {
    hid_t h = (hid_t)h5_loc;
    sae_tensor t[SAE_MAX_TENSORS];
    size_t nt = sae_tensors(&m->cfg, t), big = 0;
    int rc = sae_file_check_tensors(h5_loc, &m->cfg, path, err);
    if (rc < 0) return rc;
    for (size_t i = 0; i < nt; i++)
        if (t[i].file_transposed && sae_tensor_numel(&t[i]) > big) big = sae_tensor_numel(&t[i]);
    float *tmp = big ? sae_alloc(big * sizeof(float)) : NULL;
    if (big && !tmp) return sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory");
    for (size_t i = 0; i < nt && rc == SAE_OK; i++) {
        float *dst = sae_tensor_data(&m->p, &t[i]);
        size_t n = sae_tensor_numel(&t[i]);
        rc = data_h5_read_f32(h, t[i].name, t[i].file_transposed ? tmp : dst, n, path, err);
        if (rc == SAE_OK && t[i].file_transposed) transpose(dst, tmp, t[i].cols, t[i].rows);
    }
    sae_free(tmp);
    if (rc == SAE_OK) rc = check_finite(m, path, err);
    return rc;
}

int sae_file_open_h5(const char *path, int64_t *h5_out, sae_error *err) {
    data_h5_init();
    struct stat st;
    if (stat(path, &st) != 0) return sae_error_set(err, SAE_ERR_IO, path, "%s", strerror(errno));
    if (S_ISDIR(st.st_mode)) /* sae_foreign_detect found no published SAE in it */
        return sae_error_set(err, SAE_ERR_FORMAT, path,
                             "is a folder: neither one of this toolkit's HDF5 files nor a published SAE, whose "
                             "folder holds cfg.json with sae_weights.safetensors (SAELens) or sae.safetensors "
                             "(sparsify: one folder per hookpoint, e.g. %s/layers.6), or params.npz (Gemma Scope)",
                             path);
    if (!S_ISREG(st.st_mode)) return sae_error_set(err, SAE_ERR_IO, path, "not a regular file");
    if (st.st_size == 0) return sae_error_set(err, SAE_ERR_FORMAT, path, "empty file");
    hid_t h; /* data_h5_open_read tells a file locked by a writer from a damaged one */
    int rc = data_h5_open_read(path, &h, err);
    if (rc < 0) return rc;
    *h5_out = h;
    return SAE_OK;
}

int sae_file_load(const char *path, sae_model *m, size_t capacity, double *input_scale,
                  sae_error *err) {
    memset(m, 0, sizeof *m);
    /* a published SAE (SAELens, sparsify, Gemma Scope): sae/foreign.h */
    if (sae_foreign_detect(path) != SAE_FMT_NATIVE) return sae_foreign_load(path, m, capacity, input_scale, NULL, err);
    int64_t h;
    data_h5_lock();
    int rc = sae_file_open_h5(path, &h, err);
    if (rc < 0) {
        data_h5_unlock();
        return rc;
    }
    sae_config c;
    rc = sae_file_read_config(h, &c, input_scale, path, err);
    /* shapes and storage first: nothing is allocated for what the file lacks */
    if (rc == SAE_OK) rc = sae_file_check_tensors(h, &c, path, err);
    if (rc == SAE_OK) rc = sae_model_init(m, &c, capacity, 0, err);
    if (rc == SAE_OK) {
        rc = sae_file_read_params(h, m, path, err);
        if (rc < 0) sae_model_free(m);
    }
    H5Fclose((hid_t)h);
    data_h5_unlock();
    return rc;
}

int sae_file_read_provenance(const char *path, data_identity *out, int *present, sae_error *err) {
    int64_t h = -1;
    data_h5_lock();
    int rc = sae_file_open_h5(path, &h, err);
    if (rc == SAE_OK) {
        data_identity_read_attrs(h, out);
        *present = H5Aexists((hid_t)h, "data_n") > 0 || H5Aexists((hid_t)h, "model") > 0;
        H5Fclose((hid_t)h);
    }
    data_h5_unlock();
    return rc;
}
