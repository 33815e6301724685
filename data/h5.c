/* data/h5.c: HDF5 helpers: error capture, a global lock, typed whole reads
 * and writes, attributes. */
#include "data/h5.h"
#include "common/mem.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t h5_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t h5_once = PTHREAD_ONCE_INIT;

static void h5_init_once(void) {
    /* HDF5's exit-time cleanup retries closing files whose close already
     * failed (a full disk) and crashes doing so (seen with 1.10.8); every file
     * we write is closed explicitly, so skip that cleanup. */
    H5dont_atexit();
    H5open();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void data_h5_init(void) { pthread_once(&h5_once, h5_init_once); }
void data_h5_lock(void) { pthread_mutex_lock(&h5_mutex); }
void data_h5_unlock(void) { pthread_mutex_unlock(&h5_mutex); }

typedef struct {
    char *buf;
    size_t cap;
} walk_ctx;

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *user) {
    walk_ctx *c = user;
    /* the stack is walked innermost first; the innermost minor message names
     * the root cause (e.g. "file write failed", "address of object past end") */
    if (n == 0 && e->desc && e->desc[0]) snprintf(c->buf, c->cap, "%s", e->desc);
    if (n == 0 && c->buf[0] == 0) {
        char *min = H5Eget_minor(e->min_num);
        if (min) {
            snprintf(c->buf, c->cap, "%s", min);
            H5free_memory(min);
        }
    }
    return 0;
}

const char *data_h5_last_error(char *buf, size_t cap) {
    buf[0] = 0;
    walk_ctx c = {buf, cap};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &c);
    H5Eclear2(H5E_DEFAULT);
    return buf;
}

int data_h5_dataset_info(hid_t loc, const char *name, data_h5_info *info) {
    memset(info, 0, sizeof *info);
    /* check each path component exists, so "a/b" with no "a" is "missing" */
    char part[256];
    const char *p = name;
    while ((p = strchr(p, '/')) != NULL) {
        size_t n = (size_t)(p - name);
        if (n >= sizeof part) return 1;
        memcpy(part, name, n);
        part[n] = 0;
        if (n > 0 && H5Lexists(loc, part, H5P_DEFAULT) <= 0) return 1;
        p++;
    }
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) return 1;
    H5O_info_t oi;
    if (H5Oget_info_by_name(loc, name, &oi, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_DATASET)
        return 1;
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0) return 1;
    hid_t sp = H5Dget_space(ds), ty = H5Dget_type(ds);
    int rank = H5Sget_simple_extent_ndims(sp);
    if (rank >= 0 && rank <= 4) {
        info->rank = rank;
        H5Sget_simple_extent_dims(sp, info->dims, NULL);
    } else {
        info->rank = -1;
    }
    info->cls = H5Tget_class(ty);
    info->size = H5Tget_size(ty);
    info->is_vlen_str = info->cls == H5T_STRING && H5Tis_variable_str(ty) > 0;
    H5Tclose(ty);
    H5Sclose(sp);
    H5Dclose(ds);
    return SAE_OK;
}

static int read_all(hid_t loc, const char *name, hid_t memtype, void *out, size_t count,
                    const char *path, sae_error *err) {
    char h5msg[256];
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0) return sae_error_set(err, SAE_ERR_FORMAT, path, "missing dataset /%s", name);
    hid_t sp = H5Dget_space(ds);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    if (n < 0 || (size_t)n != count) {
        H5Dclose(ds);
        return sae_error_set(err, SAE_ERR_FORMAT, path, "/%s has %lld elements, expected %zu",
                             name, (long long)n, count);
    }
    herr_t rc = H5Dread(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
    H5Dclose(ds);
    if (rc < 0)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "cannot read /%s (%s); file damaged?",
                             name, data_h5_last_error(h5msg, sizeof h5msg));
    return SAE_OK;
}

int data_h5_read_f32(hid_t loc, const char *name, float *out, size_t count, const char *path,
                     sae_error *err) {
    return read_all(loc, name, H5T_NATIVE_FLOAT, out, count, path, err);
}
int data_h5_read_i64(hid_t loc, const char *name, int64_t *out, size_t count, const char *path,
                     sae_error *err) {
    return read_all(loc, name, H5T_NATIVE_INT64, out, count, path, err);
}
int data_h5_read_i32(hid_t loc, const char *name, int32_t *out, size_t count, const char *path,
                     sae_error *err) {
    return read_all(loc, name, H5T_NATIVE_INT32, out, count, path, err);
}

static hid_t vlen_utf8_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

int data_h5_read_strings(hid_t loc, const char *name, char ***out, size_t *n_out,
                         const char *path, sae_error *err) {
    *out = NULL;
    *n_out = 0;
    data_h5_info info;
    if (data_h5_dataset_info(loc, name, &info) != SAE_OK)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "missing dataset /%s", name);
    if (info.rank != 1 || !info.is_vlen_str)
        return sae_error_set(err, SAE_ERR_FORMAT, path,
                             "/%s must be a 1-D variable-length string dataset", name);
    size_t n = (size_t)info.dims[0];
    char **s = sae_calloc_n(n + 1, sizeof *s);
    if (!s) return sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory reading /%s", name);
    hid_t t = vlen_utf8_type();
    int rc = n ? read_all(loc, name, t, s, n, path, err) : SAE_OK;
    H5Tclose(t);
    if (rc < 0) {
        sae_free(s);
        return rc;
    }
    /* HDF5 allocated each string; copy into our allocator's ownership */
    for (size_t i = 0; i < n; i++) {
        char *h = s[i];
        s[i] = sae_strdup(h ? h : "");
        H5free_memory(h);
        if (!s[i]) {
            for (size_t j = i + 1; j < n; j++) H5free_memory(s[j]); /* still HDF5's */
            data_h5_free_strings(s, i);
            return sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory reading /%s", name);
        }
    }
    *out = s;
    *n_out = n;
    return SAE_OK;
}

void data_h5_free_strings(char **s, size_t n) {
    if (!s) return;
    for (size_t i = 0; i < n; i++) sae_free(s[i]);
    sae_free(s);
}

/* The error of a failed dataset write, naming a full disk when errno says so
 * (errno is cleared before each write). */
static int write_failed(const char *name, const char *path, sae_error *err) {
    char h5msg[256];
    int full = errno == ENOSPC || errno == EFBIG;
    data_h5_last_error(h5msg, sizeof h5msg);
    return sae_error_set(err, SAE_ERR_IO, path, "cannot write /%s%s%s%s%s", name,
                         h5msg[0] ? " (" : "", h5msg, h5msg[0] ? ")" : "",
                         full ? ": disk full or file too large" : "");
}

static int write_ds(hid_t loc, const char *name, hid_t filetype, hid_t memtype, const void *data,
                    int rank, const hsize_t *dims, hsize_t chunk_rows, const char *path,
                    sae_error *err) {
    errno = 0; /* so ENOSPC/EFBIG below come from this write */
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunk_rows > 0 && dims[0] > 0) {
        hsize_t chunk[2] = {chunk_rows < dims[0] ? chunk_rows : dims[0], rank > 1 ? dims[1] : 1};
        H5Pset_chunk(dcpl, rank, chunk);
    }
    hid_t ds = H5Dcreate2(loc, name, filetype, sp, lcpl, dcpl, H5P_DEFAULT);
    herr_t rc = -1;
    if (ds >= 0) {
        rc = H5Dwrite(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
        if (H5Dclose(ds) < 0) rc = -1;
    }
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    H5Sclose(sp);
    return rc < 0 ? write_failed(name, path, err) : SAE_OK;
}

int data_h5_write_f32(hid_t loc, const char *name, const float *data, int rank,
                      const hsize_t *dims, hsize_t chunk_rows, const char *path, sae_error *err) {
    return write_ds(loc, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, data, rank, dims, chunk_rows,
                    path, err);
}
/* Block by block through a small buffer, so a large matrix never needs a
 * second full copy in memory. */
#define TRANSPOSE_BLOCK 256
int data_h5_write_f32_transposed(hid_t loc, const char *name, const float *src, size_t rows,
                                 size_t cols, const char *path, sae_error *err) {
    errno = 0;
    float *tmp = sae_malloc(TRANSPOSE_BLOCK * cols * sizeof *tmp);
    if (!tmp) return sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory writing /%s", name);
    hsize_t dims[2] = {cols, rows};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t ds = H5Dcreate2(loc, name, H5T_IEEE_F32LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = ds < 0 ? -1 : 0;
    for (size_t r0 = 0; rc >= 0 && r0 < rows; r0 += TRANSPOSE_BLOCK) {
        size_t nb = rows - r0 < TRANSPOSE_BLOCK ? rows - r0 : TRANSPOSE_BLOCK;
        for (size_t c = 0; c < cols; c++)
            for (size_t r = 0; r < nb; r++) tmp[c * nb + r] = src[(r0 + r) * cols + c];
        hsize_t start[2] = {0, r0}, count[2] = {cols, nb};
        hid_t ms = H5Screate_simple(2, count, NULL);
        rc = H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, count, NULL);
        if (rc >= 0) rc = H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, sp, H5P_DEFAULT, tmp);
        H5Sclose(ms);
    }
    if (ds >= 0 && H5Dclose(ds) < 0) rc = -1;
    H5Pclose(lcpl);
    H5Sclose(sp);
    sae_free(tmp);
    return rc < 0 ? write_failed(name, path, err) : SAE_OK;
}

int data_h5_write_i64(hid_t loc, const char *name, const int64_t *data, hsize_t n,
                      const char *path, sae_error *err) {
    return write_ds(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, data, 1, &n, 0, path, err);
}
int data_h5_write_i32(hid_t loc, const char *name, const int32_t *data, hsize_t n,
                      const char *path, sae_error *err) {
    return write_ds(loc, name, H5T_STD_I32LE, H5T_NATIVE_INT32, data, 1, &n, 0, path, err);
}
int data_h5_write_strings(hid_t loc, const char *name, const char *const *s, hsize_t n,
                          const char *path, sae_error *err) {
    hid_t t = vlen_utf8_type();
    int rc = write_ds(loc, name, t, t, s, 1, &n, 0, path, err);
    H5Tclose(t);
    return rc;
}

static int set_attr(hid_t loc, const char *name, hid_t filetype, hid_t memtype, const void *v) {
    if (H5Aexists(loc, name) > 0) H5Adelete(loc, name);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, filetype, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a >= 0 ? H5Awrite(a, memtype, v) : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return rc < 0 ? SAE_ERR_IO : SAE_OK;
}

int data_h5_set_attr_str(hid_t loc, const char *name, const char *value) {
    hid_t t = vlen_utf8_type();
    int rc = set_attr(loc, name, t, t, &value);
    H5Tclose(t);
    return rc;
}
int data_h5_set_attr_i64(hid_t loc, const char *name, int64_t value) {
    return set_attr(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}
int data_h5_set_attr_f64(hid_t loc, const char *name, double value) {
    return set_attr(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

static int get_attr_num(hid_t loc, const char *name, hid_t memtype, void *v) {
    if (H5Aexists(loc, name) <= 0) return 1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return 1;
    hid_t ty = H5Aget_type(a), sp = H5Aget_space(a);
    int ok = H5Sget_simple_extent_npoints(sp) == 1 &&
             (H5Tget_class(ty) == H5T_INTEGER || H5Tget_class(ty) == H5T_FLOAT);
    herr_t rc = ok ? H5Aread(a, memtype, v) : -1;
    H5Sclose(sp);
    H5Tclose(ty);
    H5Aclose(a);
    return rc < 0 ? SAE_ERR_FORMAT : SAE_OK;
}

int data_h5_get_attr_i64(hid_t loc, const char *name, int64_t *value) {
    return get_attr_num(loc, name, H5T_NATIVE_INT64, value);
}
int data_h5_get_attr_f64(hid_t loc, const char *name, double *value) {
    return get_attr_num(loc, name, H5T_NATIVE_DOUBLE, value);
}

int data_h5_get_attr_str(hid_t loc, const char *name, char *buf, size_t cap) {
    buf[0] = 0;
    if (H5Aexists(loc, name) <= 0) return 1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return 1;
    hid_t ty = H5Aget_type(a);
    int rc = SAE_ERR_FORMAT;
    if (H5Tget_class(ty) == H5T_STRING) {
        if (H5Tis_variable_str(ty) > 0) {
            hid_t mt = vlen_utf8_type();
            char *s = NULL;
            if (H5Aread(a, mt, &s) >= 0 && s) {
                snprintf(buf, cap, "%s", s);
                H5free_memory(s);
                rc = SAE_OK;
            }
            H5Tclose(mt);
        } else {
            /* fixed-length strings, as numpy's bytes attributes are stored */
            size_t n = H5Tget_size(ty);
            char *tmp = sae_calloc_n(n + 1, 1);
            hid_t mt = H5Tcopy(ty);
            if (tmp && H5Aread(a, mt, tmp) >= 0) {
                snprintf(buf, cap, "%s", tmp);
                rc = SAE_OK;
            }
            H5Tclose(mt);
            sae_free(tmp);
        }
    } else if (H5Tget_class(ty) == H5T_INTEGER) {
        int64_t v;
        if (H5Aread(a, H5T_NATIVE_INT64, &v) >= 0) {
            snprintf(buf, cap, "%lld", (long long)v);
            rc = SAE_OK;
        }
    }
    H5Tclose(ty);
    H5Aclose(a);
    return rc;
}

hid_t data_h5_f16_type(void) {
    /* binary16: sign bit 15, exponent bits 10..14 (bias 15), mantissa 0..9 */
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(t, 15, 10, 5, 0, 10);
    H5Tset_size(t, 2);
    H5Tset_ebias(t, 15);
    return t;
}
