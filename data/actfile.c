/* data/actfile.c: open and validate activation files (schema v1); read rows;
 * write new files atomically. The schema itself is described in actfile.h. */
#include "data/actfile.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "common/fileutil.h"
#include "common/mem.h"
#include "data/h5.h"

#define DEFAULT_CHUNK_ROWS 1024

const char *const data_dtype_names[] = {[DATA_DTYPE_F32] = "f32", [DATA_DTYPE_F16] = "f16", NULL};

static const char *class_name(H5T_class_t c, size_t size) {
    switch (c) {
    case H5T_INTEGER: return size == 8 ? "int64" : size == 4 ? "int32" : "integer";
    case H5T_FLOAT: return size == 8 ? "float64" : size == 4 ? "float32" : size == 2 ? "float16" : "float";
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    default: return "non-numeric";
    }
}

/* Checks that dataset `name` (when present) has the given rank, class and
 * leading dims (0 = any). Returns 1 when absent, SAE_OK when valid. */
static int check_ds(hid_t h5, const char *path, const char *name, int rank, H5T_class_t cls,
                    hsize_t d0, hsize_t d1, data_h5_info *info, sae_error *err) {
    int rc = data_h5_dataset_info(h5, name, info);
    if (rc != SAE_OK) return rc;
    if (info->rank != rank)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "/%s must have rank %d, has rank %d", name,
                             rank, info->rank);
    if (info->cls != cls)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "/%s must be %s, is %s", name,
                             cls == H5T_FLOAT ? "float" : cls == H5T_INTEGER ? "integer" : "string",
                             class_name(info->cls, info->size));
    if (d0 && info->dims[0] != d0)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "/%s has %llu rows, expected %llu", name,
                             (unsigned long long)info->dims[0], (unsigned long long)d0);
    if (rank == 2 && d1 && info->dims[1] != d1)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "/%s has width %llu, expected d=%llu", name,
                             (unsigned long long)info->dims[1], (unsigned long long)d1);
    return data_h5_check_stored_name(h5, name, path, err);
}

/* Offsets start at 0, increase strictly (no empty document) and end at N,
 * so every document's rows lie within /activations. */
/* /doc_source: the corpus document of each window, from 0, never decreasing
 * (capture writes a document's windows together), so each corpus document's
 * windows are one contiguous run. */
static int validate_doc_source(data_actfile *f, sae_error *err) {
    int64_t *src = sae_calloc_n(f->n_docs, sizeof *src);
    if (!src) return sae_error_set(err, SAE_ERR_NOMEM, f->path, "out of memory reading /doc_source");
    int rc = data_h5_read_i64((hid_t)f->h5, "doc_source", src, f->n_docs, f->path, err);
    for (size_t w = 0; rc == SAE_OK && w < f->n_docs; w++) {
        int64_t prev = w ? src[w - 1] : 0;
        if (src[w] < prev || src[w] > INT32_MAX)
            rc = sae_error_set(err, SAE_ERR_FORMAT, f->path,
                               "/doc_source[%zu] = %lld: values must start at 0 or more, never decrease, "
                               "and stay below 2^31", w, (long long)src[w]);
    }
    sae_free(src);
    return rc;
}

static int validate_offsets(data_actfile *f, sae_error *err) {
    if (f->n_docs > f->n) /* each document holds at least one row */
        return sae_error_set(err, SAE_ERR_FORMAT, f->path,
                             "/doc_offsets declares %zu documents but there are only %zu rows",
                             f->n_docs, f->n);
    int64_t *off = sae_calloc_n(f->n_docs + 1, sizeof *off);
    if (!off) return sae_error_set(err, SAE_ERR_NOMEM, f->path, "out of memory");
    int rc = data_h5_read_i64((hid_t)f->h5, "doc_offsets", off, f->n_docs + 1, f->path, err);
    if (rc == SAE_OK && off[0] != 0)
        rc = sae_error_set(err, SAE_ERR_FORMAT, f->path, "/doc_offsets must start at 0, starts at %lld",
                           (long long)off[0]);
    for (size_t i = 1; rc == SAE_OK && i <= f->n_docs; i++)
        if (off[i] <= off[i - 1])
            rc = sae_error_set(err, SAE_ERR_FORMAT, f->path,
                               "/doc_offsets must be increasing: entry %zu is %lld after %lld", i,
                               (long long)off[i], (long long)off[i - 1]);
    if (rc == SAE_OK && off[f->n_docs] != (int64_t)f->n)
        rc = sae_error_set(err, SAE_ERR_FORMAT, f->path,
                           "/doc_offsets must end at N=%zu (the row count), ends at %lld", f->n,
                           (long long)off[f->n_docs]);
    sae_free(off);
    return rc;
}

/* Rows [row0, row0 + count) of /predictions (K = f->n_pred wide), with the
 * HDF5 lock held. */
static int read_predictions_locked(data_actfile *f, size_t row0, size_t count, int32_t *ids,
                                   float *logprob, sae_error *err) {
    hid_t h5 = (hid_t)f->h5;
    const char *names[2] = {"predictions/token", "predictions/logprob"};
    herr_t rc = 0;
    char h5msg[256] = "";
    for (int i = 0; i < 2 && rc >= 0; i++) {
        hid_t ds = H5Dopen2(h5, names[i], H5P_DEFAULT);
        if (ds < 0) {
            rc = -1;
            break;
        }
        hid_t fs = H5Dget_space(ds);
        hsize_t start[2] = {row0, 0}, cnt[2] = {count, f->n_pred};
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
        hid_t ms = H5Screate_simple(2, cnt, NULL);
        rc = i == 0 ? H5Dread(ds, H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT, ids)
                    : H5Dread(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, logprob);
        H5Sclose(ms), H5Sclose(fs), H5Dclose(ds);
    }
    if (rc < 0)
        return sae_error_set(err, SAE_ERR_FORMAT, f->path,
                             "cannot read /predictions rows %zu..%zu (%s); truncated or damaged?",
                             row0, row0 + count, data_h5_last_error(h5msg, sizeof h5msg));
    return SAE_OK;
}

/* Token ids must index /vocab. Streamed in blocks: N can exceed memory. */
static int validate_tokens(data_actfile *f, sae_error *err) {
    /* without /vocab only negative ids can be refused: the range is unknown */
    size_t limit = f->vocab_size ? f->vocab_size : (size_t)INT32_MAX + 1;
    const size_t block = 1u << 20;
    size_t cap = f->n < block ? f->n : block;
    int32_t *tok = sae_malloc(cap * sizeof *tok);
    if (!tok) return sae_error_set(err, SAE_ERR_NOMEM, f->path, "out of memory");
    char h5msg[256];
    int rc = SAE_OK;
    hid_t ds = H5Dopen2((hid_t)f->h5, "tokens", H5P_DEFAULT);
    hid_t fs = H5Dget_space(ds);
    for (size_t r0 = 0; r0 < f->n && rc == SAE_OK; r0 += cap) {
        hsize_t start = r0, cnt = f->n - r0 < cap ? f->n - r0 : cap;
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &cnt, NULL);
        hid_t ms = H5Screate_simple(1, &cnt, NULL);
        if (H5Dread(ds, H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT, tok) < 0)
            rc = sae_error_set(err, SAE_ERR_FORMAT, f->path, "cannot read /tokens (%s); file damaged?",
                               data_h5_last_error(h5msg, sizeof h5msg));
        H5Sclose(ms);
        for (size_t i = 0; rc == SAE_OK && i < cnt; i++)
            if (tok[i] < 0 || (size_t)tok[i] >= limit)
                rc = f->vocab_size
                         ? sae_error_set(err, SAE_ERR_FORMAT, f->path,
                                         "/tokens[%zu] = %d is outside the vocabulary (V=%zu)",
                                         r0 + i, tok[i], f->vocab_size)
                         : sae_error_set(err, SAE_ERR_FORMAT, f->path,
                                         "/tokens[%zu] = %d is not a token id", r0 + i, tok[i]);
    }
    H5Sclose(fs);
    H5Dclose(ds);
    sae_free(tok);
    return rc;
}

/* Rows row0 .. row0 + cnt of /predictions as read: ids index /vocab,
 * log-probabilities are finite, at most 0 and never increase along a row, and
 * the K probabilities of a row sum to at most 1 + 1e-3. Checked on every read
 * rather than streamed through at open, so that commands that never read the
 * predictions (train, features, ...) do not pay for them. The 1e-4 above 0
 * admits float32 writers (torch's float32 log_softmax can round the top entry
 * of a near-certain prediction to +1e-7); a real violation (logits stored
 * instead of log-probabilities) is far outside it. */
#define PRED_LOGPROB_TOL 1e-4
static int check_prediction_rows(const data_actfile *f, size_t r0, size_t cnt, const int32_t *ids,
                                 const float *lp, sae_error *err) {
    size_t K = f->n_pred, V = f->vocab_size;
    for (size_t i = 0; i < cnt; i++) {
        const int32_t *id = ids + i * K;
        const float *l = lp + i * K;
        size_t row = r0 + i;
        double mass = 0;
        for (size_t k = 0; k < K; k++) {
            if (id[k] < 0 || (V && (size_t)id[k] >= V))
                return sae_error_set(err, SAE_ERR_FORMAT, f->path,
                                     "/predictions/token[%zu, %zu] = %d is not a token id (V=%zu)", row, k, id[k], V);
            if (!isfinite(l[k]) || l[k] > PRED_LOGPROB_TOL)
                return sae_error_set(err, SAE_ERR_FORMAT, f->path,
                                     "/predictions/logprob[%zu, %zu] = %g: a log-probability must "
                                     "be finite and at most 0", row, k, (double)l[k]);
            if (k && l[k] > l[k - 1]) /* topk output is sorted exactly */
                return sae_error_set(err, SAE_ERR_FORMAT, f->path,
                                     "/predictions/logprob row %zu is not sorted, most probable "
                                     "first (entry %zu is %g after %g)", row, k, (double)l[k], (double)l[k - 1]);
            mass += exp((double)l[k]);
        }
        if (mass > 1.0 + 1e-3)
            return sae_error_set(err, SAE_ERR_FORMAT, f->path,
                                 "/predictions row %zu: the top-%zu probabilities sum to %.4f, more than 1", row, K,
                                 mass);
    }
    return SAE_OK;
}

/* /predictions/token int32 [N, K] and /predictions/logprob float32 [N, K],
 * 1 <= K <= min(V, DATA_MAX_PREDICTIONS), attribute k = K when present. */
static int check_predictions(data_actfile *f, sae_error *err) {
    hid_t h5 = (hid_t)f->h5;
    const char *p = f->path;
    data_h5_info ti, li;
    int rt = data_h5_dataset_info(h5, "predictions/token", &ti);
    int rl = data_h5_dataset_info(h5, "predictions/logprob", &li);
    if (rt == 1 && rl == 1) {
        if (H5Lexists(h5, "predictions", H5P_DEFAULT) > 0)
            return sae_error_set(err, SAE_ERR_FORMAT, p,
                                 "/predictions needs both datasets token and logprob");
        return SAE_OK;
    }
    if (rt == 1 || rl == 1)
        return sae_error_set(err, SAE_ERR_FORMAT, p, "/predictions has %s but not %s",
                             rt == 1 ? "logprob" : "token", rt == 1 ? "token" : "logprob");
    if (ti.rank != 2 || ti.cls != H5T_INTEGER || li.rank != 2 || li.cls != H5T_FLOAT)
        return sae_error_set(err, SAE_ERR_FORMAT, p,
                             "/predictions/token must be integer [N, K] and /predictions/logprob "
                             "float [N, K]");
    if (ti.dims[0] != f->n || li.dims[0] != f->n || ti.dims[1] != li.dims[1])
        return sae_error_set(err, SAE_ERR_FORMAT, p,
                             "/predictions/token is %llu x %llu and /predictions/logprob %llu x %llu; "
                             "both must be N x K with N=%zu rows",
                             (unsigned long long)ti.dims[0], (unsigned long long)ti.dims[1],
                             (unsigned long long)li.dims[0], (unsigned long long)li.dims[1], f->n);
    size_t K = (size_t)ti.dims[1], limit = f->vocab_size ? f->vocab_size : DATA_MAX_PREDICTIONS;
    if (limit > DATA_MAX_PREDICTIONS) limit = DATA_MAX_PREDICTIONS;
    if (K < 1 || K > limit)
        return sae_error_set(err, SAE_ERR_FORMAT, p,
                             "/predictions holds K=%zu predictions per row; K must be in 1..%zu", K,
                             limit);
    int rc = data_h5_check_stored_name(h5, "predictions/token", p, err);
    if (rc == SAE_OK) rc = data_h5_check_stored_name(h5, "predictions/logprob", p, err);
    if (rc < 0) return rc;
    hid_t g = H5Gopen2(h5, "predictions", H5P_DEFAULT);
    int64_t k_attr;
    int has_k = g >= 0 && data_h5_get_attr_i64(g, "k", &k_attr) == SAE_OK;
    if (g >= 0) H5Gclose(g);
    if (has_k && k_attr != (int64_t)K)
        return sae_error_set(err, SAE_ERR_FORMAT, p,
                             "/predictions attribute k=%lld disagrees with the datasets' width %zu",
                             (long long)k_attr, K);
    f->n_pred = K; /* the rows are checked as they are read (check_prediction_rows) */
    return SAE_OK;
}

static int validate(data_actfile *f, sae_error *err) {
    hid_t h5 = (hid_t)f->h5;
    const char *p = f->path;
    data_h5_info ai, info;
    int rc = data_h5_dataset_info(h5, "activations", &ai);
    if (rc == 1)
        return sae_error_set(err, SAE_ERR_FORMAT, p,
                             "missing /activations (schema v1 needs a float [N, d] dataset)");
    if (ai.rank != 2)
        return sae_error_set(err, SAE_ERR_FORMAT, p, "/activations must be 2-D [N, d], has rank %d",
                             ai.rank);
    if (ai.cls != H5T_FLOAT || (ai.size != 4 && ai.size != 2))
        return sae_error_set(err, SAE_ERR_FORMAT, p, "/activations must be float32 or float16, is %s",
                             class_name(ai.cls, ai.size));
    f->n = (size_t)ai.dims[0];
    f->d = (size_t)ai.dims[1];
    f->dtype_bytes = (int)ai.size;
    if (f->n == 0 || f->d == 0)
        return sae_error_set(err, SAE_ERR_FORMAT, p, "/activations is empty (%zu x %zu)", f->n, f->d);
    if ((rc = data_h5_check_stored_name(h5, "activations", p, err)) < 0) return rc;
    if (f->n > INT64_MAX / 2 || f->d > INT32_MAX) /* offsets are int64, widths index as int */
        return sae_error_set(err, SAE_ERR_FORMAT, p, "/activations is too large (%zu x %zu)", f->n,
                             f->d);
    int64_t dm;
    if (data_h5_get_attr_i64(h5, "d_model", &dm) == SAE_OK && dm != (int64_t)f->d)
        return sae_error_set(err, SAE_ERR_FORMAT, p,
                             "attribute d_model=%lld disagrees with /activations width %zu",
                             (long long)dm, f->d);

    if ((rc = check_ds(h5, p, "vocab", 1, H5T_STRING, 0, 0, &info, err)) < 0) return rc;
    if (rc == SAE_OK) {
        if (!info.is_vlen_str)
            return sae_error_set(err, SAE_ERR_FORMAT, p, "/vocab must hold variable-length UTF-8 strings");
        f->vocab_size = (size_t)info.dims[0];
    }
    if ((rc = check_ds(h5, p, "tokens", 1, H5T_INTEGER, f->n, 0, &info, err)) < 0) return rc;
    if (rc == SAE_OK) {
        f->has_tokens = 1;
        if ((rc = validate_tokens(f, err)) < 0) return rc;
    }
    if ((rc = check_ds(h5, p, "doc_offsets", 1, H5T_INTEGER, 0, 0, &info, err)) < 0) return rc;
    if (rc == SAE_OK) {
        if (info.dims[0] < 2)
            return sae_error_set(err, SAE_ERR_FORMAT, p, "/doc_offsets needs at least 2 entries (D+1)");
        f->n_docs = (size_t)info.dims[0] - 1;
        if ((rc = validate_offsets(f, err)) < 0) return rc;
    }
    if ((rc = check_ds(h5, p, "doc_labels", 1, H5T_STRING, 0, 0, &info, err)) < 0) return rc;
    if (rc == SAE_OK) {
        if (f->n_docs == 0 || info.dims[0] != f->n_docs)
            return sae_error_set(err, SAE_ERR_FORMAT, p,
                                 "/doc_labels has %llu entries but there are %zu documents",
                                 (unsigned long long)info.dims[0], f->n_docs);
        f->has_doc_labels = 1;
    }
    if ((rc = check_ds(h5, p, "doc_source", 1, H5T_INTEGER, 0, 0, &info, err)) < 0) return rc;
    if (rc == SAE_OK) {
        if (f->n_docs == 0 || info.dims[0] != f->n_docs)
            return sae_error_set(err, SAE_ERR_FORMAT, p,
                                 "/doc_source has %llu entries but there are %zu windows in /doc_offsets",
                                 (unsigned long long)info.dims[0], f->n_docs);
        if ((rc = validate_doc_source(f, err)) < 0) return rc;
        f->has_doc_source = 1;
    }
    if ((rc = check_ds(h5, p, "unembed", 2, H5T_FLOAT, f->vocab_size, f->d, &info, err)) < 0)
        return rc;
    f->has_unembed = rc == SAE_OK;
    if ((rc = check_ds(h5, p, "final_norm", 1, H5T_FLOAT, f->d, 0, &info, err)) < 0) return rc;
    f->has_final_norm = rc == SAE_OK;
    if ((rc = check_ds(h5, p, "truth/features", 2, H5T_FLOAT, 0, f->d, &info, err)) < 0) return rc;
    if (rc == SAE_OK) f->n_truth = (size_t)info.dims[0];

    if ((rc = check_ds(h5, p, "doc_meta", 1, H5T_STRING, 0, 0, &info, err)) < 0) return rc;
    if (rc == SAE_OK) {
        if (!info.is_vlen_str)
            return sae_error_set(err, SAE_ERR_FORMAT, p, "/doc_meta must hold variable-length UTF-8 strings");
        if (f->n_docs == 0 || info.dims[0] != f->n_docs)
            return sae_error_set(err, SAE_ERR_FORMAT, p,
                                 "/doc_meta has %llu entries but there are %zu windows in /doc_offsets",
                                 (unsigned long long)info.dims[0], f->n_docs);
        f->has_doc_meta = 1;
    }
    if ((rc = check_predictions(f, err)) < 0) return rc;

    data_h5_get_attr_str(h5, "model", f->model, sizeof f->model);
    data_h5_get_attr_str(h5, "hook", f->hook, sizeof f->hook);
    if (data_h5_get_attr_i64(h5, "layer", &f->layer) != SAE_OK) f->layer = -1;
    if (data_h5_get_attr_i64(h5, "schema_version", &f->schema_version) != SAE_OK)
        f->schema_version = DATA_SCHEMA_VERSION;
    if (f->schema_version > DATA_SCHEMA_VERSION)
        return sae_error_set(err, SAE_ERR_UNSUPPORTED, p,
                             "schema_version %lld is newer than this tool reads (%d)",
                             (long long)f->schema_version, DATA_SCHEMA_VERSION);
    return SAE_OK;
}

int data_actfile_open(data_actfile **out, const char *path, sae_error *err) {
    *out = NULL;
    data_h5_init();
    struct stat st;
    if (stat(path, &st) != 0) return sae_error_set(err, SAE_ERR_IO, path, "%s", strerror(errno));
    if (!S_ISREG(st.st_mode)) return sae_error_set(err, SAE_ERR_IO, path, "not a regular file");
    if (st.st_size == 0) return sae_error_set(err, SAE_ERR_FORMAT, path, "empty file");
    data_actfile *f = sae_calloc_n(1, sizeof *f);
    if (!f) return sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory");
    snprintf(f->path, sizeof f->path, "%s", path);
    f->h5 = f->h5_acts = -1;

    data_h5_lock();
    int rc = SAE_OK;
    hid_t h = -1;
    rc = data_h5_open_read(path, &h, err);
    f->h5 = h;
    if (rc == SAE_OK) rc = validate(f, err);
    if (rc == SAE_OK) {
        f->h5_acts = H5Dopen2((hid_t)f->h5, "activations", H5P_DEFAULT);
        hid_t dcpl = H5Dget_create_plist((hid_t)f->h5_acts);
        hsize_t chunk[2];
        f->chunk_rows = DEFAULT_CHUNK_ROWS;
        if (H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, 2, chunk) == 2)
            f->chunk_rows = (size_t)chunk[0];
        if (f->chunk_rows > f->n) f->chunk_rows = f->n; /* blocks never pass the end */
        H5Pclose(dcpl);
    }
    data_h5_unlock();
    if (rc < 0) {
        data_actfile_close(f);
        return rc;
    }
    *out = f;
    return SAE_OK;
}

void data_actfile_close(data_actfile *f) {
    if (!f) return;
    data_h5_lock();
    if (f->h5_acts >= 0) H5Dclose((hid_t)f->h5_acts);
    if (f->h5 >= 0) H5Fclose((hid_t)f->h5);
    data_h5_unlock();
    sae_free(f->half_buf);
    sae_free(f);
}

float data_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
    if (e == 0x1f) {
        u = sign | 0x7f800000u | (m << 13); /* Inf, NaN */
    } else if (e != 0) {
        u = sign | ((e + 112u) << 23) | (m << 13); /* rebias 15 -> 127 */
    } else {
        float v = (float)m * 0x1p-24f; /* zero or subnormal: m units of 2^-24 */
        memcpy(&u, &v, sizeof u);
        u |= sign;
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* float16 rows go through half_buf in pieces this size: HDF5's own
 * half->float conversion ran at ~10 ns a value, slower than training could
 * consume rows on 2 cores; this loop vectorises (vcvtph2ps with F16C). */
#define HALF_PIECE ((size_t)1 << 19)

static herr_t read_block(data_actfile *f, size_t row0, size_t count, float *out) {
    hid_t fs = H5Dget_space((hid_t)f->h5_acts);
    hsize_t start[2] = {row0, 0}, cnt[2] = {count, f->d};
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
    hid_t ms = H5Screate_simple(2, cnt, NULL);
    herr_t rc;
    if (f->dtype_bytes == 2) {
        hid_t half = data_h5_f16_type();
        rc = H5Dread((hid_t)f->h5_acts, half, ms, fs, H5P_DEFAULT, f->half_buf);
        H5Tclose(half);
        size_t n = rc < 0 ? 0 : count * f->d, i = 0;
#if defined(__F16C__)
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(f->half_buf + i))));
#endif
        for (; i < n; i++) out[i] = data_f16_to_f32(f->half_buf[i]);
    } else {
        rc = H5Dread((hid_t)f->h5_acts, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, out);
    }
    H5Sclose(ms);
    H5Sclose(fs);
    return rc;
}

int data_actfile_read_rows(data_actfile *f, size_t row0, size_t count, float *out, sae_error *err) {
    SAE_ASSERT(row0 + count <= f->n);
    if (count == 0) return SAE_OK;
    char h5msg[256];
    herr_t rc = 0;
    data_h5_lock();
    if (f->dtype_bytes == 2 && !f->half_buf) {
        f->half_buf = sae_malloc((HALF_PIECE > f->d ? HALF_PIECE : f->d) * sizeof *f->half_buf);
        if (!f->half_buf) {
            data_h5_unlock();
            return sae_error_set(err, SAE_ERR_NOMEM, f->path, "out of memory reading rows");
        }
    }
    size_t step = f->dtype_bytes == 2 ? (HALF_PIECE > f->d ? HALF_PIECE / f->d : 1) : count;
    for (size_t r = 0; rc >= 0 && r < count; r += step) {
        size_t cnt = count - r < step ? count - r : step;
        rc = read_block(f, row0 + r, cnt, out + r * f->d);
    }
    if (rc < 0) data_h5_last_error(h5msg, sizeof h5msg);
    data_h5_unlock();
    if (rc < 0)
        return sae_error_set(err, SAE_ERR_FORMAT, f->path,
                             "cannot read /activations rows %zu..%zu (%s); truncated or damaged?",
                             row0, row0 + count, h5msg);
    return SAE_OK;
}

int data_actfile_read_tokens(data_actfile *f, size_t row0, size_t count, int32_t *out,
                             sae_error *err) {
    SAE_ASSERT(f->has_tokens && row0 + count <= f->n);
    if (count == 0) return SAE_OK;
    char h5msg[256];
    data_h5_lock();
    hid_t ds = H5Dopen2((hid_t)f->h5, "tokens", H5P_DEFAULT);
    hid_t fs = H5Dget_space(ds);
    hsize_t start = row0, cnt = count;
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &cnt, NULL);
    hid_t ms = H5Screate_simple(1, &cnt, NULL);
    herr_t rc = H5Dread(ds, H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT, out);
    if (rc < 0) data_h5_last_error(h5msg, sizeof h5msg);
    H5Sclose(ms), H5Sclose(fs), H5Dclose(ds);
    data_h5_unlock();
    if (rc < 0)
        return sae_error_set(err, SAE_ERR_FORMAT, f->path, "cannot read /tokens rows %zu..%zu (%s)",
                             row0, row0 + count, h5msg);
    return SAE_OK;
}

int data_actfile_read_vocab(data_actfile *f, char ***out, sae_error *err) {
    size_t n;
    data_h5_lock();
    int rc = data_h5_read_strings((hid_t)f->h5, "vocab", out, &n, f->path, err);
    data_h5_unlock();
    return rc;
}

int data_actfile_read_doc_labels(data_actfile *f, char ***out, sae_error *err) {
    size_t n;
    data_h5_lock();
    int rc = data_h5_read_strings((hid_t)f->h5, "doc_labels", out, &n, f->path, err);
    data_h5_unlock();
    return rc;
}

int data_actfile_read_f32(data_actfile *f, const char *name, float *out, size_t count,
                          sae_error *err) {
    data_h5_lock();
    int rc = data_h5_read_f32((hid_t)f->h5, name, out, count, f->path, err);
    data_h5_unlock();
    return rc;
}

int data_actfile_read_truth(data_actfile *f, float *out, sae_error *err) {
    data_h5_lock();
    int rc = data_h5_read_f32((hid_t)f->h5, "truth/features", out, f->n_truth * f->d, f->path, err);
    data_h5_unlock();
    return rc;
}

int data_actfile_read_predictions(data_actfile *f, size_t row0, size_t count, int32_t *ids,
                                  float *logprob, sae_error *err) {
    if (!f->n_pred)
        return sae_error_set(err, SAE_ERR_UNSUPPORTED, f->path,
                             "this file has no /predictions (capture it with --predictions K)");
    SAE_ASSERT(row0 + count <= f->n);
    if (count == 0) return SAE_OK;
    data_h5_lock();
    int rc = read_predictions_locked(f, row0, count, ids, logprob, err);
    data_h5_unlock();
    return rc < 0 ? rc : check_prediction_rows(f, row0, count, ids, logprob, err);
}

int data_actfile_read_doc_meta(data_actfile *f, char ***out, sae_error *err) {
    *out = NULL;
    if (!f->has_doc_meta)
        return sae_error_set(err, SAE_ERR_UNSUPPORTED, f->path, "this file has no /doc_meta");
    size_t n;
    data_h5_lock();
    int rc = data_h5_read_strings((hid_t)f->h5, "doc_meta", out, &n, f->path, err);
    data_h5_unlock();
    if (rc == SAE_OK && n != f->n_docs) { /* changed under us: never index past the end */
        data_h5_free_strings(*out, n);
        *out = NULL;
        rc = sae_error_set(err, SAE_ERR_FORMAT, f->path, "/doc_meta has %zu entries, expected %zu",
                           n, f->n_docs);
    }
    return rc;
}

int data_actfile_read_doc_source(data_actfile *f, int64_t *out, sae_error *err) {
    data_h5_lock();
    int rc = data_h5_read_i64((hid_t)f->h5, "doc_source", out, f->n_docs, f->path, err);
    data_h5_unlock();
    return rc;
}

int data_actfile_read_doc_offsets(data_actfile *f, int64_t *out, sae_error *err) {
    data_h5_lock();
    int rc = data_h5_read_i64((hid_t)f->h5, "doc_offsets", out, f->n_docs + 1, f->path, err);
    data_h5_unlock();
    return rc;
}

uint16_t data_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;
    if (a >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0u));
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to Inf */
    if (a < 0x38800000u) { /* below 2^-14: a half subnormal, in units of 2^-24 */
        float af;
        memcpy(&af, &a, sizeof af);
        return (uint16_t)(sign | (uint32_t)lrintf(af * 16777216.0f)); /* exact scaling, RNE */
    }
    uint32_t h = a - 0x38000000u;               /* rebias exponent 127 -> 15 */
    h = (h + 0xfffu + ((h >> 13) & 1u)) >> 13;  /* round 23 -> 10 mantissa bits, ties to even;
                                                   a carry correctly bumps the exponent */
    return (uint16_t)(sign | h);
}

int data_row_nonfinite(const float *row, size_t d) {
    for (size_t j = 0; j < d; j++)
        if (!isfinite(row[j])) return 1;
    return 0;
}

int data_actfile_count_nonfinite(data_actfile *f, size_t *bad_rows, size_t *first_bad,
                                 sae_error *err) {
    size_t block = f->chunk_rows;
    while (block * f->d < (1u << 20) && block < f->n) block *= 2; /* ~4 MB reads */
    size_t most = ((size_t)64 << 20) / (f->d * sizeof(float)); /* a huge chunk: part at a time */
    if (block > most) block = most ? most : 1;
    float *buf = sae_alloc(block * f->d * sizeof(float));
    if (!buf) return sae_error_set(err, SAE_ERR_NOMEM, f->path, "out of memory");
    size_t bad = 0, first = (size_t)-1;
    int rc = SAE_OK;
    for (size_t r = 0; r < f->n && rc == SAE_OK; r += block) {
        size_t cnt = f->n - r < block ? f->n - r : block;
        rc = data_actfile_read_rows(f, r, cnt, buf, err);
        for (size_t i = 0; rc == SAE_OK && i < cnt; i++)
            if (data_row_nonfinite(buf + i * f->d, f->d)) {
                if (bad == 0) first = r + i;
                bad++;
            }
    }
    sae_free(buf);
    *bad_rows = bad;
    if (first_bad) *first_bad = first;
    return rc;
}

/* --- writer ------------------------------------------------------------- */
struct data_actwriter {
    char path[4096], tmp[4200];
    hid_t h5, acts, tokens;
    hid_t f16;         /* the half type, or -1 for float32 files */
    size_t d, n;
    int with_tokens; /* -1 until the first append decides */
    int failed;
    hid_t pred_tok, pred_lp; /* /predictions datasets, -1 until the first append */
    size_t pred_k, pred_n;   /* their width K and rows written */
};

static int writer_fail(data_actwriter *w, sae_error *err, const char *what) {
    char h5msg[256];
    w->failed = 1;
    data_h5_last_error(h5msg, sizeof h5msg);
    int full = errno == ENOSPC || errno == EFBIG;
    return sae_error_set(err, SAE_ERR_IO, w->path, "cannot write %s%s%s%s%s", what,
                         h5msg[0] ? " (" : "", h5msg, h5msg[0] ? ")" : "",
                         full ? ": disk full or file too large" : "");
}

int data_actwriter_open(data_actwriter **out, const char *path, const data_actwriter_opts *o,
                        sae_error *err) {
    *out = NULL;
    data_h5_init();
    data_actwriter *w = sae_calloc_n(1, sizeof *w);
    if (!w) return sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory");
    snprintf(w->path, sizeof w->path, "%s", path);
    if (sae_tmp_path(w->tmp, sizeof w->tmp, path, err) < 0) {
        sae_free(w);
        return SAE_ERR_ARG;
    }
    w->d = o->d;
    w->with_tokens = -1;
    w->tokens = -1;
    w->pred_tok = w->pred_lp = -1;
    w->f16 = -1;
    data_h5_lock();
    char h5msg[256];
    w->h5 = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (w->h5 < 0) {
        data_h5_unlock();
        int e = errno;
        sae_error_set(err, SAE_ERR_IO, path, "cannot create output (%s%s%s)",
                      data_h5_last_error(h5msg, sizeof h5msg), e ? ": " : "", e ? strerror(e) : "");
        sae_free(w);
        return SAE_ERR_IO;
    }
    if (o->float16) w->f16 = data_h5_f16_type();
    size_t bytes = o->float16 ? 2 : 4;
    hsize_t chunk_rows = o->chunk_rows ? o->chunk_rows : (hsize_t)((1u << 20) / (o->d * bytes));
    if (chunk_rows < 1) chunk_rows = 1;
    hsize_t dims[2] = {0, o->d}, maxd[2] = {H5S_UNLIMITED, o->d}, chunk[2] = {chunk_rows, o->d};
    hid_t sp = H5Screate_simple(2, dims, maxd);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 2, chunk);
    /* no object times (HDF5 stores them by default): two writes of the same
     * rows give the same bytes, so captures can be compared with cmp */
    H5Pset_obj_track_times(dcpl, 0);
    w->acts = H5Dcreate2(w->h5, "activations", o->float16 ? w->f16 : H5T_IEEE_F32LE, sp,
                         H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(sp);
    data_h5_set_attr_i64(w->h5, "d_model", (int64_t)o->d);
    data_h5_set_attr_str(w->h5, "model", o->model ? o->model : "");
    data_h5_set_attr_str(w->h5, "hook", o->hook ? o->hook : "");
    data_h5_set_attr_i64(w->h5, "layer", o->layer);
    data_h5_set_attr_i64(w->h5, "schema_version", DATA_SCHEMA_VERSION);
    data_h5_unlock();
    if (w->acts < 0) {
        data_actwriter_abort(w);
        return sae_error_set(err, SAE_ERR_IO, path, "cannot create /activations");
    }
    *out = w;
    return SAE_OK;
}

static int extend_and_write(hid_t ds, int rank, size_t n_old, size_t count, size_t width,
                            hid_t memtype, const void *data) {
    hsize_t newdims[2] = {n_old + count, width};
    if (H5Dset_extent(ds, newdims) < 0) return -1;
    hid_t fs = H5Dget_space(ds);
    hsize_t start[2] = {n_old, 0}, cnt[2] = {count, width};
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
    hid_t ms = H5Screate_simple(rank, cnt, NULL);
    herr_t rc = H5Dwrite(ds, memtype, ms, fs, H5P_DEFAULT, data);
    H5Sclose(ms);
    H5Sclose(fs);
    return rc < 0 ? -1 : 0;
}

int data_actwriter_append(data_actwriter *w, const float *rows, const int32_t *tokens,
                          size_t count, sae_error *err) {
    if (w->failed) return SAE_ERR_IO;
    if (w->with_tokens < 0) w->with_tokens = tokens != NULL;
    SAE_ASSERT(w->with_tokens == (tokens != NULL));
    if (count == 0) return SAE_OK;
    int rc = SAE_OK;
    data_h5_lock();
    errno = 0; /* so ENOSPC/EFBIG in the message come from this append */
    if (w->with_tokens && w->tokens < 0) {
        hsize_t dims[1] = {0}, maxd[1] = {H5S_UNLIMITED}, chunk[1] = {65536};
        hid_t sp = H5Screate_simple(1, dims, maxd);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_chunk(dcpl, 1, chunk);
        H5Pset_obj_track_times(dcpl, 0);
        w->tokens = H5Dcreate2(w->h5, "tokens", H5T_STD_I32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        H5Pclose(dcpl);
        H5Sclose(sp);
        if (w->tokens < 0) rc = writer_fail(w, err, "/tokens");
    }
    if (rc == SAE_OK && w->f16 >= 0) {
        uint16_t *half = sae_malloc(count * w->d * sizeof *half);
        if (!half) {
            rc = sae_error_set(err, SAE_ERR_NOMEM, w->path, "out of memory");
            w->failed = 1;
        } else {
            for (size_t i = 0; i < count * w->d; i++) half[i] = data_f32_to_f16(rows[i]);
            if (extend_and_write(w->acts, 2, w->n, count, w->d, w->f16, half) < 0)
                rc = writer_fail(w, err, "/activations");
            sae_free(half);
        }
    } else if (rc == SAE_OK &&
               extend_and_write(w->acts, 2, w->n, count, w->d, H5T_NATIVE_FLOAT, rows) < 0) {
        rc = writer_fail(w, err, "/activations");
    }
    if (rc == SAE_OK && w->with_tokens &&
        extend_and_write(w->tokens, 1, w->n, count, 1, H5T_NATIVE_INT32, tokens) < 0)
        rc = writer_fail(w, err, "/tokens");
    data_h5_unlock();
    if (rc == SAE_OK) w->n += count;
    return rc;
}

/* The /predictions group and its two extendible [0, K] datasets. */
static int create_predictions(data_actwriter *w, size_t k, sae_error *err) {
    hsize_t dims[2] = {0, k}, maxd[2] = {H5S_UNLIMITED, k};
    hsize_t chunk[2] = {(1u << 16) / k + 1, k}; /* ~256 KiB chunks */
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    H5Pset_obj_track_times(gcpl, 0);
    hid_t g = H5Gcreate2(w->h5, "predictions", H5P_DEFAULT, gcpl, H5P_DEFAULT);
    H5Pclose(gcpl);
    if (g < 0) return writer_fail(w, err, "/predictions");
    data_h5_set_attr_i64(g, "k", (int64_t)k);
    hid_t sp = H5Screate_simple(2, dims, maxd);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 2, chunk);
    H5Pset_obj_track_times(dcpl, 0);
    w->pred_tok = H5Dcreate2(g, "token", H5T_STD_I32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    w->pred_lp = H5Dcreate2(g, "logprob", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl), H5Sclose(sp), H5Gclose(g);
    if (w->pred_tok < 0 || w->pred_lp < 0) return writer_fail(w, err, "/predictions");
    w->pred_k = k;
    return SAE_OK;
}

int data_actwriter_append_predictions(data_actwriter *w, const int32_t *ids, const float *logprob,
                                      size_t count, size_t k, sae_error *err) {
    if (w->failed) return SAE_ERR_IO;
    SAE_ASSERT(k >= 1 && k <= DATA_MAX_PREDICTIONS && (w->pred_k == 0 || w->pred_k == k));
    if (count == 0) return SAE_OK;
    int rc = SAE_OK;
    data_h5_lock();
    errno = 0;
    if (w->pred_k == 0) rc = create_predictions(w, k, err);
    if (rc == SAE_OK && (extend_and_write(w->pred_tok, 2, w->pred_n, count, k, H5T_NATIVE_INT32, ids) < 0 ||
                         extend_and_write(w->pred_lp, 2, w->pred_n, count, k, H5T_NATIVE_FLOAT,
                                          logprob) < 0))
        rc = writer_fail(w, err, "/predictions");
    data_h5_unlock();
    if (rc == SAE_OK) w->pred_n += count;
    return rc;
}

int data_actwriter_put_strings(data_actwriter *w, const char *name, const char *const *s, size_t n,
                               sae_error *err) {
    if (w->failed) return SAE_ERR_IO;
    data_h5_lock();
    int rc = data_h5_write_strings(w->h5, name, s, n, w->path, err);
    data_h5_unlock();
    if (rc < 0) w->failed = 1;
    return rc;
}

int data_actwriter_set_docs(data_actwriter *w, const int64_t *offsets, size_t n_docs,
                            const char *const *labels, sae_error *err) {
    if (w->failed) return SAE_ERR_IO;
    data_h5_lock();
    int rc = data_h5_write_i64(w->h5, "doc_offsets", offsets, n_docs + 1, w->path, err);
    if (rc == SAE_OK && labels)
        rc = data_h5_write_strings(w->h5, "doc_labels", labels, n_docs, w->path, err);
    data_h5_unlock();
    if (rc < 0) w->failed = 1;
    return rc;
}

int data_actwriter_set_vocab(data_actwriter *w, const char *const *vocab, size_t v,
                             sae_error *err) {
    if (w->failed) return SAE_ERR_IO;
    data_h5_lock();
    int rc = data_h5_write_strings(w->h5, "vocab", vocab, v, w->path, err);
    data_h5_unlock();
    if (rc < 0) w->failed = 1;
    return rc;
}

int data_actwriter_set_truth(data_actwriter *w, const float *features, size_t f, sae_error *err) {
    if (w->failed) return SAE_ERR_IO;
    hsize_t dims[2] = {f, w->d};
    data_h5_lock();
    int rc = data_h5_write_f32(w->h5, "truth/features", features, 2, dims, 0, w->path, err);
    data_h5_unlock();
    if (rc < 0) w->failed = 1;
    return rc;
}

int data_actwriter_put_f32(data_actwriter *w, const char *name, const float *data, size_t rows,
                           size_t cols, sae_error *err) {
    if (w->failed) return SAE_ERR_IO;
    hsize_t dims[2] = {rows, cols};
    data_h5_lock();
    int rc = data_h5_write_f32(w->h5, name, data, cols ? 2 : 1, dims, 0, w->path, err);
    data_h5_unlock();
    if (rc < 0) w->failed = 1;
    return rc;
}

int data_actwriter_put_i64(data_actwriter *w, const char *name, const int64_t *data, size_t n,
                           sae_error *err) {
    if (w->failed) return SAE_ERR_IO;
    data_h5_lock();
    int rc = data_h5_write_i64(w->h5, name, data, n, w->path, err);
    data_h5_unlock();
    if (rc < 0) w->failed = 1;
    return rc;
}

int data_actwriter_set_attr_str(data_actwriter *w, const char *name, const char *value) {
    data_h5_lock();
    int rc = data_h5_set_attr_str(w->h5, name, value);
    data_h5_unlock();
    return rc;
}

int data_actwriter_set_attr_i64(data_actwriter *w, const char *name, int64_t value) {
    data_h5_lock();
    int rc = data_h5_set_attr_i64(w->h5, name, value);
    data_h5_unlock();
    return rc;
}

int data_actwriter_finish(data_actwriter *w, sae_error *err) {
    if (w->failed) {
        sae_error_set(err, SAE_ERR_IO, w->path, "output not written after an earlier error");
        data_actwriter_abort(w);
        return SAE_ERR_IO;
    }
    if (w->pred_k && w->pred_n != w->n) { /* a caller bug, but never a file that fails to open */
        sae_error_set(err, SAE_ERR_IO, w->path, "/predictions has %zu rows but /activations %zu",
                      w->pred_n, w->n);
        data_actwriter_abort(w);
        return SAE_ERR_IO;
    }
    data_h5_lock();
    herr_t rc = 0;
    if (w->pred_tok >= 0 && H5Dclose(w->pred_tok) < 0) rc = -1;
    if (w->pred_lp >= 0 && H5Dclose(w->pred_lp) < 0) rc = -1;
    w->pred_tok = w->pred_lp = -1;
    if (w->f16 >= 0) H5Tclose(w->f16);
    if (w->tokens >= 0 && H5Dclose(w->tokens) < 0) rc = -1;
    if (H5Dclose(w->acts) < 0) rc = -1;
    w->tokens = w->acts = -1;
    errno = 0;
    if (H5Fclose(w->h5) < 0) rc = -1; /* flushes: a full disk usually shows up here */
    w->h5 = -1;
    if (rc < 0) {
        int e = errno;
        writer_fail(w, err, "file");
        (void)e;
    }
    data_h5_unlock();
    int out = rc < 0 ? SAE_ERR_IO : sae_commit_file(w->tmp, w->path, err);
    if (out < 0) remove(w->tmp);
    sae_free(w);
    return out;
}

void data_actwriter_abort(data_actwriter *w) {
    if (!w) return;
    data_h5_lock();
    if (w->pred_tok >= 0) H5Dclose(w->pred_tok);
    if (w->pred_lp >= 0) H5Dclose(w->pred_lp);
    if (w->f16 >= 0) H5Tclose(w->f16);
    if (w->tokens >= 0) H5Dclose(w->tokens);
    if (w->acts >= 0) H5Dclose(w->acts);
    if (w->h5 >= 0) H5Fclose(w->h5);
    data_h5_unlock();
    remove(w->tmp);
    sae_free(w);
}
