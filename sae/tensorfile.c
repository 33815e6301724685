/* sae/tensorfile.c: safetensors and npz readers (formats in tensorfile.h).
 * Everything a header claims is checked against what the file holds before
 * any size is allocated from it. */
#include "sae/tensorfile.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <zip.h>

#include "common/mem.h"
#include "data/actfile.h" /* data_f16_to_f32 */

#define MAX_HEADER_BYTES ((uint64_t)100 << 20) /* safetensors' own reader caps it at 100 MB */
#define MAX_TENSORS 4096
#define CHUNK_BYTES ((size_t)1 << 20)

struct sae_tensorfile {
    char *path;
    int is_zip;
    int fd;       /* safetensors */
    zip_t *zip;   /* npz */
    size_t n;
    sae_tf_tensor *t;
};

/* --- element conversion ---------------------------------------------------------- */
static float bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16; /* bfloat16 is the top half of a float32 */
    float f;
    memcpy(&f, &bits, 4);
    return f;
}
static size_t dtype_size(sae_tf_dtype d, size_t other) {
    switch (d) {
    case SAE_TF_F32: return 4;
    case SAE_TF_F16: case SAE_TF_BF16: return 2;
    case SAE_TF_F64: return 8;
    default: return other;
    }
}
/* Little-endian bytes to floats (every format here is little-endian; so are
 * the hosts we build for). */
static void convert(float *dst, const unsigned char *src, size_t n, sae_tf_dtype d) {
    for (size_t i = 0; i < n; i++) {
        if (d == SAE_TF_F32) memcpy(&dst[i], src + 4 * i, 4);
        else if (d == SAE_TF_F64) {
            double v;
            memcpy(&v, src + 8 * i, 8);
            dst[i] = (float)v;
        } else {
            uint16_t h = (uint16_t)(src[2 * i] | (src[2 * i + 1] << 8));
            dst[i] = d == SAE_TF_F16 ? data_f16_to_f32(h) : bf16_to_f32(h); /* binary16: data/actfile.h */
        }
    }
}
static int check_finite(const sae_tensorfile *tf, const sae_tf_tensor *t, const float *v, size_t n,
                        size_t first, sae_error *err) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return sae_error_set(err, SAE_ERR_NONFINITE, tf->path, "tensor %s holds %s at element %zu", t->name,
                                 isnan(v[i]) ? "NaN" : "Inf", first + i);
    return SAE_OK;
}

static int set_shape(sae_tf_tensor *t, const size_t *dims, int rank) {
    int ovf = 0;
    t->rank = rank;
    t->numel = 1;
    for (int i = 0; i < rank; i++) {
        t->shape[i] = dims[i];
        t->numel = sae_mul_size(t->numel, dims[i], &ovf);
    }
    return ovf ? -1 : 0;
}

/* --- safetensors ----------------------------------------------------------------- */
static const struct { const char *name; sae_tf_dtype d; size_t size; } ST_DTYPES[] = {
    {"F32", SAE_TF_F32, 4}, {"F16", SAE_TF_F16, 2}, {"BF16", SAE_TF_BF16, 2}, {"F64", SAE_TF_F64, 8},
    {"I64", SAE_TF_OTHER, 8}, {"U64", SAE_TF_OTHER, 8}, {"I32", SAE_TF_OTHER, 4}, {"U32", SAE_TF_OTHER, 4},
    {"I16", SAE_TF_OTHER, 2}, {"U16", SAE_TF_OTHER, 2}, {"I8", SAE_TF_OTHER, 1}, {"U8", SAE_TF_OTHER, 1},
    {"BOOL", SAE_TF_OTHER, 1}, {"F8_E4M3", SAE_TF_OTHER, 1}, {"F8_E5M2", SAE_TF_OTHER, 1},
};

static int cmp_offset(const void *a, const void *b) {
    const sae_tf_tensor *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* A JSON number that is an exact non-negative integer. */
static int json_size(const cJSON *v, size_t *out) {
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > 9.007199254740992e15 ||
        v->valuedouble != floor(v->valuedouble))
        return -1;
    *out = (size_t)v->valuedouble;
    return 0;
}

static int st_entry(sae_tensorfile *tf, const cJSON *e, sae_tf_tensor *t, size_t buf_bytes, size_t base,
                    sae_error *err) {
    const char *p = tf->path, *nm = e->string;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsObject(e) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(of) ||
        cJSON_GetArraySize(of) != 2)
        return sae_error_set(err, SAE_ERR_FORMAT, p, "safetensors entry '%s' lacks dtype, shape or data_offsets", nm);
    size_t esize = 0;
    t->dtype = SAE_TF_OTHER;
    for (size_t i = 0; i < sizeof ST_DTYPES / sizeof ST_DTYPES[0]; i++)
        if (strcmp(dt->valuestring, ST_DTYPES[i].name) == 0) t->dtype = ST_DTYPES[i].d, esize = ST_DTYPES[i].size;
    if (!esize)
        return sae_error_set(err, SAE_ERR_FORMAT, p, "tensor %s has unknown dtype '%.15s'", nm, dt->valuestring);
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", dt->valuestring);
    int rank = cJSON_GetArraySize(sh);
    if (rank > SAE_TF_MAX_RANK)
        return sae_error_set(err, SAE_ERR_FORMAT, p, "tensor %s has rank %d (at most %d)", nm, rank, SAE_TF_MAX_RANK);
    size_t dims[SAE_TF_MAX_RANK], b, en;
    for (int i = 0; i < rank; i++)
        if (json_size(cJSON_GetArrayItem(sh, i), &dims[i]) < 0)
            return sae_error_set(err, SAE_ERR_FORMAT, p, "tensor %s has a bad shape", nm);
    if (json_size(cJSON_GetArrayItem(of, 0), &b) < 0 || json_size(cJSON_GetArrayItem(of, 1), &en) < 0)
        return sae_error_set(err, SAE_ERR_FORMAT, p, "tensor %s has bad data_offsets", nm);
    if (en < b)
        return sae_error_set(err, SAE_ERR_FORMAT, p, "tensor %s: data_offsets end %zu < begin %zu", nm, en, b);
    if (en > buf_bytes)
        return sae_error_set(err, SAE_ERR_FORMAT, p,
                             "tensor %s: data_offsets end %zu is past the end of the data (%zu bytes); truncated?",
                             nm, en, buf_bytes);
    int ovf = set_shape(t, dims, rank);
    size_t want = sae_mul_size(t->numel, esize, &ovf);
    if (ovf || want != en - b)
        return sae_error_set(err, SAE_ERR_FORMAT, p, "tensor %s: its shape needs %zu bytes of %s but data_offsets give %zu",
                             nm, ovf ? (size_t)0 : want, t->dtype_name, en - b);
    t->offset = base + b;
    t->nbytes = en - b;
    t->name = sae_strdup(nm);
    if (!t->name) return sae_error_set(err, SAE_ERR_NOMEM, p, "out of memory");
    return SAE_OK;
}

static int read_exact(int fd, void *buf, size_t n, size_t off) {
    unsigned char *b = buf;
    while (n) {
        ssize_t r = pread(fd, b, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        b += r, off += (size_t)r, n -= (size_t)r;
    }
    return 0;
}

static int st_open(sae_tensorfile *tf, size_t file_bytes, sae_error *err) {
    const char *p = tf->path;
    unsigned char len8[8];
    if (file_bytes < 8 || read_exact(tf->fd, len8, 8, 0) < 0)
        return sae_error_set(err, SAE_ERR_FORMAT, p, "too short for a safetensors file (%zu bytes)", file_bytes);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | len8[i];
    if (n > file_bytes - 8)
        return sae_error_set(err, SAE_ERR_FORMAT, p,
                             "safetensors header length %llu is past the end of the file (%zu bytes); truncated?",
                             (unsigned long long)n, file_bytes);
    if (n > MAX_HEADER_BYTES || n < 2)
        return sae_error_set(err, SAE_ERR_FORMAT, p, "safetensors header length %llu is implausible",
                             (unsigned long long)n);
    char *hdr = sae_malloc((size_t)n + 1);
    if (!hdr) return sae_error_set(err, SAE_ERR_NOMEM, p, "out of memory");
    if (read_exact(tf->fd, hdr, (size_t)n, 8) < 0) {
        sae_free(hdr);
        return sae_error_set(err, SAE_ERR_IO, p, "cannot read the safetensors header");
    }
    hdr[n] = 0;
    cJSON *j = cJSON_ParseWithLength(hdr, (size_t)n);
    sae_free(hdr);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return sae_error_set(err, SAE_ERR_FORMAT, p, "the safetensors header is not a JSON object");
    }
    size_t count = 0, base = 8 + (size_t)n, buf_bytes = file_bytes - base;
    for (const cJSON *e = j->child; e; e = e->next) count += strcmp(e->string, "__metadata__") != 0;
    int rc = SAE_OK;
    if (count > MAX_TENSORS) rc = sae_error_set(err, SAE_ERR_FORMAT, p, "%zu tensors: implausibly many", count);
    if (rc == SAE_OK && count && !(tf->t = sae_calloc_n(count, sizeof *tf->t)))
        rc = sae_error_set(err, SAE_ERR_NOMEM, p, "out of memory");
    for (const cJSON *e = j->child; e && rc == SAE_OK; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        rc = st_entry(tf, e, &tf->t[tf->n], buf_bytes, base, err);
        if (rc == SAE_OK) tf->n++;
    }
    cJSON_Delete(j);
    if (rc < 0) return rc;
    /* byte ranges must not overlap (empty tensors take no bytes) */
    if (tf->n < 2) return SAE_OK; /* (a header "{}" holds no tensor: the SAE reader names what is missing) */
    sae_tf_tensor *sorted = sae_calloc_n(tf->n, sizeof *sorted);
    if (!sorted) return sae_error_set(err, SAE_ERR_NOMEM, p, "out of memory");
    memcpy(sorted, tf->t, tf->n * sizeof *sorted);
    qsort(sorted, tf->n, sizeof *sorted, cmp_offset);
    for (size_t i = 1; i < tf->n && rc == SAE_OK; i++)
        if (sorted[i].nbytes && sorted[i - 1].offset + sorted[i - 1].nbytes > sorted[i].offset)
            rc = sae_error_set(err, SAE_ERR_FORMAT, p, "tensors %s and %s overlap in the data buffer",
                               sorted[i - 1].name, sorted[i].name);
    sae_free(sorted);
    return rc;
}

/* --- npz ---------------------------------------------------------------------------- */
/* The value text after 'key': in a .npy header dict, or NULL. */
static const char *npy_value(const char *h, const char *key) {
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *s = strstr(h, pat);
    if (!s) return NULL;
    s += strlen(pat);
    while (*s == ' ') s++;
    if (*s != ':') return NULL;
    s++;
    while (*s == ' ') s++;
    return s;
}

/* Parses a .npy header (magic, version, dict) from the first bytes of a
 * member of `total` bytes. */
static int npy_header(sae_tensorfile *tf, sae_tf_tensor *t, const unsigned char *b, size_t got, size_t total,
                      sae_error *err) {
    const char *p = tf->path, *nm = t->name;
    if (got < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return sae_error_set(err, SAE_ERR_FORMAT, p, "member %s.npy is not a .npy array", nm);
    int major = b[6];
    size_t hlen, pre;
    if (major == 1) hlen = (size_t)b[8] | (size_t)b[9] << 8, pre = 10;
    else if (major == 2 || major == 3) {
        if (got < 12) return sae_error_set(err, SAE_ERR_FORMAT, p, "member %s.npy: truncated header", nm);
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24, pre = 12;
    } else
        return sae_error_set(err, SAE_ERR_FORMAT, p, "member %s.npy: .npy version %d (1, 2 or 3 are read)", nm, major);
    if (hlen > got - pre)
        return sae_error_set(err, SAE_ERR_FORMAT, p, "member %s.npy: header length %zu is past the end", nm, hlen);
    char h[65536 + 1];
    if (hlen > sizeof h - 1) return sae_error_set(err, SAE_ERR_FORMAT, p, "member %s.npy: header too long", nm);
    memcpy(h, b + pre, hlen);
    h[hlen] = 0;
    t->header_bytes = pre + hlen;
    const char *d = npy_value(h, "descr"), *fo = npy_value(h, "fortran_order"), *sh = npy_value(h, "shape");
    if (!d || !fo || !sh)
        return sae_error_set(err, SAE_ERR_FORMAT, p, "member %s.npy: header lacks descr, fortran_order or shape", nm);
    if (strncmp(fo, "False", 5) != 0)
        return sae_error_set(err, SAE_ERR_UNSUPPORTED, p,
                             "member %s.npy is in Fortran order (column-major); only C order is read", nm);
    if (strncmp(d, "'<f4'", 5) == 0) t->dtype = SAE_TF_F32;
    else if (strncmp(d, "'<f2'", 5) == 0) t->dtype = SAE_TF_F16;
    else if (strncmp(d, "'<f8'", 5) == 0) t->dtype = SAE_TF_F64;
    else {
        size_t l = strcspn(d, ",}");
        return sae_error_set(err, SAE_ERR_UNSUPPORTED, p, "member %s.npy has dtype %.*s ('<f4', '<f2', '<f8' are read)",
                             nm, (int)(l > 20 ? 20 : l), d);
    }
    snprintf(t->dtype_name, sizeof t->dtype_name, "%.3s", d + 1); /* without the quotes */
    if (*sh != '(') return sae_error_set(err, SAE_ERR_FORMAT, p, "member %s.npy: bad shape", nm);
    size_t dims[SAE_TF_MAX_RANK];
    int rank = 0;
    const char *s = sh + 1;
    for (;;) {
        while (*s == ' ' || *s == ',') s++;
        if (*s == ')') break;
        if (*s < '0' || *s > '9' || rank == SAE_TF_MAX_RANK)
            return sae_error_set(err, SAE_ERR_FORMAT, p, "member %s.npy: bad shape", nm);
        errno = 0;
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || v > SIZE_MAX) return sae_error_set(err, SAE_ERR_FORMAT, p, "member %s.npy: bad shape", nm);
        dims[rank++] = (size_t)v;
        s = end;
    }
    int ovf = set_shape(t, dims, rank);
    size_t want = sae_mul_size(t->numel, dtype_size(t->dtype, 0), &ovf);
    if (ovf || total < t->header_bytes || total - t->header_bytes != want)
        return sae_error_set(err, SAE_ERR_FORMAT, p, "member %s.npy: its shape needs %zu data bytes but it holds %zu", nm,
                             ovf ? (size_t)0 : want, total > t->header_bytes ? total - t->header_bytes : (size_t)0);
    t->nbytes = want;
    return SAE_OK;
}

static int zip_read_full(zip_file_t *zf, unsigned char *buf, size_t n, size_t *got) {
    *got = 0;
    while (*got < n) {
        zip_int64_t r = zip_fread(zf, buf + *got, n - *got);
        if (r < 0) return -1;
        if (r == 0) break;
        *got += (size_t)r;
    }
    return 0;
}

static int npz_open(sae_tensorfile *tf, sae_error *err) {
    const char *p = tf->path;
    int zerr = 0;
    tf->zip = zip_open(p, ZIP_RDONLY, &zerr);
    if (!tf->zip) return sae_error_set(err, SAE_ERR_FORMAT, p, "not a readable zip (.npz) archive (libzip error %d)", zerr);
    zip_int64_t n = zip_get_num_entries(tf->zip, 0);
    if (n < 0 || n > MAX_TENSORS) return sae_error_set(err, SAE_ERR_FORMAT, p, "implausible zip entry count");
    if (n && !(tf->t = sae_calloc_n((size_t)n, sizeof *tf->t))) return sae_error_set(err, SAE_ERR_NOMEM, p, "out of memory");
    unsigned char *head = sae_malloc(65536 + 12);
    if (!head) return sae_error_set(err, SAE_ERR_NOMEM, p, "out of memory");
    int rc = SAE_OK;
    for (zip_int64_t i = 0; i < n && rc == SAE_OK; i++) {
        zip_stat_t st;
        if (zip_stat_index(tf->zip, (zip_uint64_t)i, 0, &st) < 0 || !(st.valid & ZIP_STAT_NAME) ||
            !(st.valid & ZIP_STAT_SIZE)) {
            rc = sae_error_set(err, SAE_ERR_FORMAT, p, "cannot read zip entry %lld", (long long)i);
            break;
        }
        size_t l = strlen(st.name);
        if (l < 5 || strcmp(st.name + l - 4, ".npy") != 0) continue; /* not an array */
        sae_tf_tensor *t = &tf->t[tf->n];
        if (!(t->name = sae_strdup(st.name))) {
            rc = sae_error_set(err, SAE_ERR_NOMEM, p, "out of memory");
            break;
        }
        t->name[l - 4] = 0;
        t->offset = (size_t)i;
        zip_file_t *zf = zip_fopen_index(tf->zip, (zip_uint64_t)i, 0);
        size_t got = 0;
        if (!zf || zip_read_full(zf, head, 65536 + 12, &got) < 0)
            rc = sae_error_set(err, SAE_ERR_FORMAT, p, "cannot read member %s (damaged archive?)", st.name);
        if (zf) zip_fclose(zf);
        if (rc == SAE_OK) rc = npy_header(tf, t, head, got, (size_t)st.size, err);
        tf->n++;
    }
    sae_free(head);
    return rc;
}

static int npz_read(sae_tensorfile *tf, const sae_tf_tensor *t, float *out, sae_error *err) {
    zip_file_t *zf = zip_fopen_index(tf->zip, (zip_uint64_t)t->offset, 0);
    if (!zf) return sae_error_set(err, SAE_ERR_FORMAT, tf->path, "cannot open member %s.npy", t->name);
    size_t es = dtype_size(t->dtype, 0), per = CHUNK_BYTES / es, done = 0, got;
    unsigned char *buf = sae_malloc(CHUNK_BYTES > t->header_bytes ? CHUNK_BYTES : t->header_bytes);
    int rc = buf ? SAE_OK : sae_error_set(err, SAE_ERR_NOMEM, tf->path, "out of memory");
    if (rc == SAE_OK && (zip_read_full(zf, buf, t->header_bytes, &got) < 0 || got != t->header_bytes))
        rc = sae_error_set(err, SAE_ERR_FORMAT, tf->path, "member %s.npy: truncated", t->name);
    while (rc == SAE_OK && done < t->numel) {
        size_t n = t->numel - done < per ? t->numel - done : per;
        if (zip_read_full(zf, buf, n * es, &got) < 0 || got != n * es) {
            rc = sae_error_set(err, SAE_ERR_FORMAT, tf->path, "member %s.npy: truncated or damaged data", t->name);
            break;
        }
        convert(out + done, buf, n, t->dtype);
        rc = check_finite(tf, t, out + done, n, done, err);
        done += n;
    }
    sae_free(buf);
    zip_fclose(zf);
    return rc;
}

static int st_read(sae_tensorfile *tf, const sae_tf_tensor *t, float *out, sae_error *err) {
    size_t es = dtype_size(t->dtype, 0), per = CHUNK_BYTES / es, done = 0;
    unsigned char *buf = sae_malloc(CHUNK_BYTES);
    if (!buf) return sae_error_set(err, SAE_ERR_NOMEM, tf->path, "out of memory");
    int rc = SAE_OK;
    while (rc == SAE_OK && done < t->numel) {
        size_t n = t->numel - done < per ? t->numel - done : per;
        if (read_exact(tf->fd, buf, n * es, t->offset + done * es) < 0) {
            rc = sae_error_set(err, SAE_ERR_IO, tf->path, "cannot read tensor %s (truncated?)", t->name);
            break;
        }
        convert(out + done, buf, n, t->dtype);
        rc = check_finite(tf, t, out + done, n, done, err);
        done += n;
    }
    sae_free(buf);
    return rc;
}

/* --- API ----------------------------------------------------------------------------- */
int sae_tensorfile_sniff(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    unsigned char b[9] = {0};
    ssize_t r = read(fd, b, 9);
    close(fd);
    if (r >= 4 && memcmp(b, "PK\3\4", 4) == 0) return 1;
    return r == 9 && b[8] == '{' && (b[4] | b[5] | b[6] | b[7]) == 0; /* header length < 4 GB, JSON object */
}

int sae_tensorfile_open(sae_tensorfile **out, const char *path, sae_error *err) {
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return sae_error_set(err, SAE_ERR_IO, path, "%s", strerror(errno));
    if (!S_ISREG(st.st_mode)) return sae_error_set(err, SAE_ERR_IO, path, "not a regular file");
    sae_tensorfile *tf = sae_calloc_n(1, sizeof *tf);
    if (!tf || !(tf->path = sae_strdup(path))) {
        sae_free(tf);
        return sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory");
    }
    tf->fd = open(path, O_RDONLY);
    if (tf->fd < 0) {
        int rc = sae_error_set(err, SAE_ERR_IO, path, "%s", strerror(errno));
        sae_tensorfile_close(tf);
        return rc;
    }
    unsigned char magic[4] = {0};
    tf->is_zip = read_exact(tf->fd, magic, 4, 0) == 0 && memcmp(magic, "PK\3\4", 4) == 0;
    int rc;
    if (tf->is_zip) {
        close(tf->fd);
        tf->fd = -1;
        rc = npz_open(tf, err);
    } else {
        rc = st_open(tf, (size_t)st.st_size, err);
    }
    if (rc < 0) {
        sae_tensorfile_close(tf);
        return rc;
    }
    *out = tf;
    return SAE_OK;
}

void sae_tensorfile_close(sae_tensorfile *tf) {
    if (!tf) return;
    for (size_t i = 0; i < tf->n; i++) sae_free(tf->t[i].name);
    sae_free(tf->t);
    if (tf->fd >= 0) close(tf->fd);
    if (tf->zip) zip_discard(tf->zip);
    sae_free(tf->path);
    sae_free(tf);
}

const char *sae_tensorfile_kind(const sae_tensorfile *tf) { return tf->is_zip ? "npz" : "safetensors"; }
size_t sae_tensorfile_count(const sae_tensorfile *tf) { return tf->n; }
const sae_tf_tensor *sae_tensorfile_get(const sae_tensorfile *tf, size_t i) { return i < tf->n ? &tf->t[i] : NULL; }
const sae_tf_tensor *sae_tensorfile_find(const sae_tensorfile *tf, const char *name) {
    for (size_t i = 0; i < tf->n; i++)
        if (strcmp(tf->t[i].name, name) == 0) return &tf->t[i];
    return NULL;
}

int sae_tensorfile_read_f32(sae_tensorfile *tf, const sae_tf_tensor *t, float *out, sae_error *err) {
    if (t->dtype == SAE_TF_OTHER)
        return sae_error_set(err, SAE_ERR_UNSUPPORTED, tf->path, "tensor %s is %s, not floating-point", t->name,
                             t->dtype_name);
    return tf->is_zip ? npz_read(tf, t, out, err) : st_read(tf, t, out, err);
}

/* --- safetensors ------------------------------------------------------------------ */
static void put_le64(unsigned char *b, uint64_t v) {
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
}

/* Floats as little-endian bytes whatever the host's order. */
static int write_f32_le(FILE *fp, const float *x, size_t n) {
    unsigned char buf[4096];
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        for (int k = 0; k < 4; k++) buf[at++] = (unsigned char)(u >> (8 * k));
        if (at == sizeof buf) {
            if (fwrite(buf, 1, at, fp) != at) return -1;
            at = 0;
        }
    }
    return at && fwrite(buf, 1, at, fp) != at ? -1 : 0;
}

/* The header JSON; NULL when out of memory or a size is too large for it. */
static char *safetensors_header(const sae_st_tensor *t, size_t n) {
    cJSON *h = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(h, "__metadata__");
    int ok = h && meta && cJSON_AddStringToObject(meta, "format", "pt");
    uint64_t at = 0;
    for (size_t i = 0; ok && i < n; i++) {
        uint64_t numel = 1;
        for (size_t k = 0; k < t[i].ndim; k++) numel *= t[i].shape[k];
        /* JSON numbers are doubles: offsets must stay exact (and well below 2^53) */
        if (numel > (UINT64_C(1) << 50) / 4 || at > (UINT64_C(1) << 50)) ok = 0;
        cJSON *e = ok ? cJSON_AddObjectToObject(h, t[i].name) : NULL, *shape = NULL, *off = NULL;
        ok = e && cJSON_AddStringToObject(e, "dtype", "F32") && (shape = cJSON_AddArrayToObject(e, "shape")) &&
             (off = cJSON_AddArrayToObject(e, "data_offsets"));
        for (size_t k = 0; ok && k < t[i].ndim; k++)
            ok = cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t[i].shape[k]));
        ok = ok && cJSON_AddItemToArray(off, cJSON_CreateNumber((double)at)) &&
             cJSON_AddItemToArray(off, cJSON_CreateNumber((double)(at + 4 * numel)));
        at += 4 * numel;
    }
    char *s = ok ? cJSON_PrintUnformatted(h) : NULL;
    cJSON_Delete(h);
    return s;
}

int sae_safetensors_write(const char *path, const sae_st_tensor *t, size_t n, sae_error *err) {
    char *json = safetensors_header(t, n);
    if (!json) return sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory for the safetensors header");
    size_t len = strlen(json), padded = (len + 7) / 8 * 8; /* the data starts 8-aligned */
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        sae_free(json);
        return sae_error_set(err, SAE_ERR_IO, path, "cannot create: %s", strerror(errno));
    }
    unsigned char hl[8];
    put_le64(hl, padded);
    int bad = fwrite(hl, 1, 8, fp) != 8 || fwrite(json, 1, len, fp) != len;
    for (size_t i = len; !bad && i < padded; i++) bad = fputc(' ', fp) == EOF;
    sae_free(json);
    for (size_t i = 0; !bad && i < n; i++) {
        size_t numel = 1;
        for (size_t k = 0; k < t[i].ndim; k++) numel *= t[i].shape[k];
        bad = write_f32_le(fp, t[i].data, numel) != 0;
    }
    int e = errno;
    if (fclose(fp) != 0 && !bad) bad = 1, e = errno;
    return bad ? sae_error_set(err, SAE_ERR_IO, path, "write failed: %s", strerror(e)) : SAE_OK;
}
