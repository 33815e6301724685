/* fuzz/fuzz_actfile.c: activation files (data_actfile_open and its readers),
 * structure-aware.
 *
 * The bytes choose the file's contents and the harness writes it with the
 * HDF5 library, so the fuzzer explores our validation (shapes, types, storage
 * against the declared extent, token and offset ranges, string datasets and
 * attributes) rather than HDF5's own parser. All-zero choices give a valid
 * file; each choice byte moves one thing off it. Layout of the input:
 *   rows, width, acts flags (dtype, layout, unwritten extent, rank, type),
 *   chunk rows, extra rows (a power of two up to 2^40)
 *   tokens flags + position/value, vocab count + flags, docs count + flags +
 *   position/value, attribute flags + value, extras flags (unembed,
 *   final_norm, truth) + shape deltas
 *   the rest: activation values (NaN included) and vocab/label text bytes
 * A file that opens is read like the commands read it, and what the loader
 * promises is checked: token ids inside /vocab, offsets increasing to N. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "data/actfile.h"
#include "data/h5.h"
#include "fuzzutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    uint8_t rows, width, acts, chunk, extra;
    uint8_t tok, tok_pos, tok_val;
    uint8_t vocab, vocab_flags;
    uint8_t docs, doc_flags, doc_pos, doc_val;
    uint8_t attrs, attr_val;
    uint8_t extras, ex_rows, ex_cols;
} choices;

static hid_t dcpl_for(int layout, int rank, const hsize_t *dims, hsize_t chunk_rows) {
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (layout == 0 || layout == 3) {
        hsize_t c[3] = {chunk_rows ? chunk_rows : 1, rank > 1 ? dims[1] : 1, rank > 2 ? dims[2] : 1};
        if (c[0] > dims[0] && dims[0] > 0) c[0] = dims[0];
        H5Pset_chunk(dcpl, rank, c);
        if (layout == 3) H5Pset_deflate(dcpl, 1);
    } else if (layout == 2) {
        H5Pset_layout(dcpl, H5D_COMPACT);
    }
    return dcpl;
}

/* A dataset; `written` 0 leaves it unwritten; `grow` extends a chunked one
 * past what was written (its new rows never stored). */
static void put(hid_t h, const char *name, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
                int layout, hsize_t chunk_rows, const void *buf, int written, hsize_t grow) {
    hsize_t maxd[3] = {H5S_UNLIMITED, rank > 1 ? dims[1] : 1, rank > 2 ? dims[2] : 1};
    int chunked = layout == 0 || layout == 3;
    hid_t sp = H5Screate_simple(rank, dims, chunked ? maxd : NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t dcpl = dcpl_for(layout, rank, dims, chunk_rows);
    hid_t ds = H5Dcreate2(h, name, ftype, sp, lcpl, dcpl, H5P_DEFAULT);
    if (ds >= 0) {
        if (written && buf) H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        if (grow && chunked) {
            hsize_t nd[3] = {dims[0] + grow, maxd[1], maxd[2]};
            H5Dset_extent(ds, nd);
        }
        H5Dclose(ds);
    }
    H5Pclose(dcpl), H5Pclose(lcpl), H5Sclose(sp);
}

/* kind 0: variable-length scalar, 1: fixed-length scalar, 2: array of three
 * variable-length strings, 3: a float */
static void attr_str(hid_t h, const char *name, const char *v, int kind) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, kind == 1 ? strlen(v) + 1 : H5T_VARIABLE);
    hsize_t three = 3;
    hid_t sp = kind == 2 ? H5Screate_simple(1, &three, NULL) : H5Screate(H5S_SCALAR);
    if (kind == 3) {
        double x = 2.5;
        hid_t a = H5Acreate2(h, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) H5Awrite(a, H5T_NATIVE_DOUBLE, &x), H5Aclose(a);
    } else {
        const char *vs[3] = {v, v, v};
        hid_t a = H5Acreate2(h, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) H5Awrite(a, t, kind == 1 ? (const void *)v : kind == 2 ? (const void *)vs : (const void *)&v),
            H5Aclose(a);
    }
    H5Sclose(sp), H5Tclose(t);
}

/* n strings cut from the text bytes (any bytes, invalid UTF-8 included), or
 * "w<i>" */
static void make_strings(char **s, size_t n, const uint8_t *text, size_t text_n, int from_bytes) {
    for (size_t i = 0; i < n; i++) {
        s[i] = malloc(24);
        if (from_bytes && text_n) {
            size_t len = text[i % text_n] % 20, j;
            for (j = 0; j < len; j++) {
                char ch = (char)text[(i * 7 + j) % text_n];
                s[i][j] = ch ? ch : 'x';
            }
            s[i][j] = 0;
        } else {
            snprintf(s[i], 24, "w%zu", i);
        }
    }
}

static void put_strings(hid_t h, const char *name, size_t n, const choices *c, int fixed,
                        const uint8_t *text, size_t text_n) {
    char **s = malloc((n ? n : 1) * sizeof *s);
    make_strings(s, n, text, text_n, c->vocab_flags & 4);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hsize_t dims[1] = {n};
    if (fixed) {
        H5Tset_size(t, 24);
        char *flat = calloc(n ? n : 1, 24);
        for (size_t i = 0; i < n; i++) memcpy(flat + 24 * i, s[i], strlen(s[i]));
        put(h, name, t, t, 1, dims, 1, 0, flat, 1, 0);
        free(flat);
    } else {
        H5Tset_size(t, H5T_VARIABLE);
        put(h, name, t, t, 1, dims, 1, 0, s, 1, 0);
    }
    H5Tclose(t);
    for (size_t i = 0; i < n; i++) free(s[i]);
    free(s);
}

static void write_acts(hid_t h, const choices *c, size_t n, size_t d, const uint8_t *vals,
                       size_t vals_n) {
    int layout = (c->acts >> 1) & 3, rank = c->acts & 32 ? 3 : 2;
    hsize_t dims[3] = {n, d, 2};
    size_t count = n * d * (rank == 3 ? 2 : 1);
    float *x = malloc(count * sizeof *x);
    for (size_t i = 0; i < count; i++) {
        uint8_t b = vals_n ? vals[i % vals_n] : 0;
        x[i] = b == 0xff ? NAN : b == 0xfe ? INFINITY : (float)b / 16.0f - 4.0f;
    }
    hid_t ft = c->acts & 8 ? H5Tcopy(H5T_STD_I32LE) : c->acts & 1 ? data_h5_f16_type() : H5Tcopy(H5T_IEEE_F32LE);
    if (layout == 2 && count * 4 > 60000) layout = 1; /* compact data must fit 64 KiB */
    hsize_t grow = c->acts & 16 ? (hsize_t)1 << (c->extra % 41) : 0;
    put(h, "activations", ft, H5T_NATIVE_FLOAT, rank, dims, layout, 1 + c->chunk % n, x,
        !(c->acts & 64), grow);
    H5Tclose(ft);
    free(x);
}

static void write_tokens(hid_t h, const choices *c, size_t n, size_t V) {
    if (c->tok & 1) return;
    size_t len = c->tok & 8 ? n + 1 : n;
    int32_t *t = malloc(len * sizeof *t);
    for (size_t i = 0; i < len; i++) t[i] = (int32_t)(i % (V ? V : 7));
    if (c->tok & 16) t[c->tok_pos % len] = (int32_t)V + c->tok_val;
    if (c->tok & 32) t[c->tok_pos % len] = -1 - c->tok_val;
    hsize_t dims[1] = {len};
    hid_t ft = c->tok & 4 ? H5T_IEEE_F32LE : c->tok & 2 ? H5T_STD_I64LE : H5T_STD_I32LE;
    put(h, "tokens", ft, H5T_NATIVE_INT32, 1, dims, c->tok & 64 ? 1 : 0, 64, t, !(c->tok & 128), 0);
    free(t);
}

static void write_docs(hid_t h, const choices *c, size_t n, const uint8_t *text, size_t text_n) {
    if (c->doc_flags & 1) return;
    size_t D = 1 + c->docs % n;
    int64_t *off = malloc((D + 1) * sizeof *off);
    for (size_t i = 0; i <= D; i++) off[i] = (int64_t)(i * n / D);
    if (c->doc_flags & 2) off[c->doc_pos % (D + 1)] += (int64_t)(int8_t)c->doc_val;
    if (c->doc_flags & 32) off[D] = INT64_MAX - c->doc_val;
    hsize_t dims[1] = {D + 1};
    put(h, "doc_offsets", c->doc_flags & 4 ? H5T_IEEE_F64LE : H5T_STD_I64LE, H5T_NATIVE_INT64, 1,
        dims, 1, 0, off, 1, 0);
    free(off);
    if (!(c->doc_flags & 8))
        put_strings(h, "doc_labels", c->doc_flags & 16 ? D + 1 : D, c, 0, text, text_n);
}

static void write_extras(hid_t h, const choices *c, size_t d, size_t V) {
    size_t rows = V + (c->ex_rows & 3) - 1, cols = d + (c->ex_cols & 3) - 1;
    if (rows == 0 || cols == 0) return;
    float *z = calloc(rows * cols + 4 * cols + d + 2, sizeof *z); /* the largest of the three */
    hsize_t dims[2] = {rows, cols};
    if (c->extras & 1) put(h, "unembed", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims, 1, 0, z, 1, 0);
    hsize_t nd[1] = {c->ex_cols & 4 ? d + 1 : d};
    if (c->extras & 2) put(h, "final_norm", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, nd, 1, 0, z, 1, 0);
    hsize_t td[2] = {1 + (c->ex_rows >> 2) % 4, cols};
    if (c->extras & 4) put(h, "truth/features", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, td, 0, 2, z, 1, 0);
    free(z);
}

static void write_attrs(hid_t h, const choices *c, size_t d) {
    if (c->attrs & 1) data_h5_set_attr_i64(h, "d_model", (long long)d + c->attr_val);
    else if (c->attrs & 2) attr_str(h, "d_model", "eight", 0);
    else data_h5_set_attr_i64(h, "d_model", (long long)d);
    attr_str(h, "model", "fuzz-model", (c->attrs >> 2) & 3);
    attr_str(h, "hook", "resid_post", (c->attrs >> 4) & 1);
    if (c->attrs & 32) data_h5_set_attr_i64(h, "schema_version", (long long)(int8_t)c->attr_val);
    if (c->attrs & 64) attr_str(h, "layer", "three", 3);
    else data_h5_set_attr_i64(h, "layer", 3);
}

/* What data_actfile_open promises its callers; a broken promise is a bug. */
static void use_file(data_actfile *f) {
    sae_error err = {0};
    size_t k = f->n < 4 ? f->n : 4;
    float *rows = sae_alloc(k * f->d * sizeof(float));
    if (!rows) abort();
    data_actfile_read_rows(f, 0, k, rows, &err);
    data_actfile_read_rows(f, f->n - k, k, rows, &err);
    sae_free(rows);
    if (f->has_tokens) {
        int32_t tok[4];
        if (data_actfile_read_tokens(f, f->n - k, k, tok, &err) == 0)
            for (size_t i = 0; i < k; i++)
                if (tok[i] < 0 || (f->vocab_size && (size_t)tok[i] >= f->vocab_size)) abort();
    }
    if (f->n_docs) {
        int64_t *off = sae_calloc_n(f->n_docs + 1, sizeof *off);
        if (off && data_actfile_read_doc_offsets(f, off, &err) == 0) {
            if (off[0] != 0 || off[f->n_docs] != (int64_t)f->n) abort();
            for (size_t i = 1; i <= f->n_docs; i++)
                if (off[i] <= off[i - 1]) abort();
        }
        sae_free(off);
    }
    char **s = NULL;
    if (f->vocab_size && data_actfile_read_vocab(f, &s, &err) == 0) data_h5_free_strings(s, f->vocab_size);
    if (f->has_doc_labels && data_actfile_read_doc_labels(f, &s, &err) == 0)
        data_h5_free_strings(s, f->n_docs);
    if (f->n_truth) {
        float *t = sae_alloc(f->n_truth * f->d * sizeof(float));
        if (t) data_actfile_read_truth(f, t, &err);
        sae_free(t);
    }
    size_t bad, first;
    data_actfile_count_nonfinite(f, &bad, &first, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    data_h5_init();
    fuzz_stream st = {data, size};
    choices c;
    fuzz_take(&st, &c, sizeof c);
    /* the harness's files have intact heaps: read strings in process, except
     * inputs with vocab byte 15 (1 in 256), which go through the child process */
    data_h5_set_string_isolation(c.vocab == 15);
    size_t n = 1 + c.rows % 64, d = 1 + c.width % 16;
    size_t V = c.vocab_flags & 1 ? 0 : 16 + c.vocab % 40;
    const char *path = fuzz_scratch_path(".h5");
    hid_t h = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (h < 0) abort();
    write_acts(h, &c, n, d, st.p, st.n);
    write_tokens(h, &c, n, V);
    if (V) put_strings(h, "vocab", c.vocab_flags & 8 ? V + 1 : V, &c, c.vocab_flags & 2, st.p, st.n);
    write_docs(h, &c, n, st.p, st.n);
    write_extras(h, &c, d, V);
    write_attrs(h, &c, d);
    H5Fclose(h);
    data_actfile *f = NULL;
    sae_error err = {0};
    if (data_actfile_open(&f, path, &err) == 0) {
        use_file(f);
        data_actfile_close(f);
    }
    remove(path);
    return 0;
}
