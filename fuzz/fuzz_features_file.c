/* fuzz/fuzz_features_file.c: features files (feat_read), structure-aware,
 * then the feature cards (feat_write_json, which indexes /vocab with every id).
 *
 * As in fuzz_sae_file.c the bytes choose the contents and the harness writes
 * the file with the HDF5 library. Layout of the input:
 *   byte 0      real M (1..6) of the datasets written
 *   byte 1      flags: top_n as written or from the stream, vocab present,
 *               lens present, a dataset left unwritten, ...
 *   byte 2      real top_n (1..6, low nibble) and vocabulary size (0..7, high)
 *   per dataset one byte: absent / right shape / perturbed shape / rank 1
 *   the rest    integer and float contents (ids near the vocabulary's end,
 *               -1, negatives, huge), attribute values and string bytes */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "data/h5.h"
#include "features/feat.h"
#include "fuzzutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An integer near what the loader checks against: ids around V, -1, small
 * negatives, or 64 raw bits. */
static long long pick_int(fuzz_stream *s, size_t V) {
    uint8_t b = fuzz_u8(s);
    switch (b % 8) {
    case 0: return -1;
    case 1: return (long long)V - 1;
    case 2: return (long long)V;
    case 3: return -(long long)(b >> 3) - 2;
    case 4: return (long long)fuzz_u64(s);
    default: return (long long)(b >> 3) % (V ? (long long)V : 1);
    }
}

/* shape byte: 0 absent, 1-4 right, 5 rows+1, 6 cols+1, 7 rank 1; bit 3
 * (with `allow_unwritten`): created but never written */
static void put(hid_t h, fuzz_stream *s, const char *name, int is_float, size_t rows, size_t cols, size_t V,
                int allow_unwritten) {
    uint8_t f = fuzz_u8(s);
    int shape = f % 8, unwritten = allow_unwritten && (f & 8);
    if (shape == 0) return;
    hsize_t dims[2] = {rows, cols};
    int rank = cols ? 2 : 1;
    if (shape == 5) dims[0]++;
    if (shape == 6 && cols) dims[1]++;
    if (shape == 7) rank = 1, dims[0] = rows * (cols ? cols : 1);
    size_t n = (size_t)dims[0] * (rank == 2 ? (size_t)dims[1] : 1);
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t ds = H5Dcreate2(h, name, is_float ? H5T_IEEE_F32LE : H5T_STD_I64LE, sp, lcpl, H5P_DEFAULT,
                          H5P_DEFAULT);
    if (ds >= 0 && !unwritten) {
        long long *iv = is_float ? NULL : sae_malloc(n * sizeof *iv);
        float *fv = is_float ? sae_malloc(n * sizeof *fv) : NULL;
        for (size_t i = 0; i < n && (iv || fv); i++) {
            if (iv) iv[i] = pick_int(s, V);
            else fv[i] = ((float)fuzz_u8(s) - 100.0f) / 16.0f;
        }
        if (iv) H5Dwrite(ds, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, iv);
        if (fv) H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, fv);
        sae_free(iv), sae_free(fv);
    }
    if (ds >= 0) H5Dclose(ds);
    H5Pclose(lcpl), H5Sclose(sp);
}

/* n vlen UTF-8 strings of up to 7 bytes from the stream (any bytes but NUL) */
static void put_strings(hid_t h, fuzz_stream *s, const char *name, size_t n) {
    char buf[8][8];
    const char *p[8];
    for (size_t i = 0; i < n && i < 8; i++) {
        size_t len = fuzz_u8(s) % 8;
        for (size_t k = 0; k < len; k++) buf[i][k] = (char)(fuzz_u8(s) | 1);
        buf[i][len] = 0;
        p[i] = buf[i];
    }
    hsize_t dn = n < 8 ? n : 8;
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t sp = H5Screate_simple(1, &dn, NULL);
    hid_t ds = H5Dcreate2(h, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (ds >= 0) H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, p), H5Dclose(ds);
    H5Sclose(sp), H5Tclose(t);
}

static int write_file(const char *path, fuzz_stream *s) {
    size_t M = 1 + fuzz_u8(s) % 6;
    uint8_t flags = fuzz_u8(s), b2 = fuzz_u8(s);
    size_t N = 1 + (b2 & 15) % 6, V = (b2 >> 4) % 8;
    int unw = (flags & 64) != 0;
    hid_t h = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (h < 0) return -1;
    fuzz_attr_fixed_str(h, "format", flags & 1 ? "sae-features" : "sae");
    data_h5_set_attr_i64(h, "format_version", 1);
    data_h5_set_attr_i64(h, "top_n", flags & 2 ? (long long)N : pick_int(s, N));
    data_h5_set_attr_i64(h, "n_tokens", flags & 4 ? 1000 : pick_int(s, 40));
    data_h5_set_attr_i64(h, "context", flags & 8 ? 8 : pick_int(s, 4));
    fuzz_attr_fixed_str(h, "sae", "s.h5");
    fuzz_attr_fixed_str(h, "data", "");
    put(h, s, "count", 0, M, 0, 40, unw);
    put(h, s, "mean_act", 1, M, 0, V, unw);
    put(h, s, "max_act", 1, M, 0, V, unw);
    put(h, s, "hist", 0, M, FEAT_HIST_BINS, 1000, unw);
    put(h, s, "top/value", 1, M, N, V, unw);
    put(h, s, "top/row", 0, M, N, 50, unw);
    put(h, s, "quantile/value", 1, M, FEAT_QUANTILES, V, unw);
    put(h, s, "quantile/row", 0, M, FEAT_QUANTILES, 50, unw);
    put(h, s, "tokens/by_count_id", 0, M, FEAT_TOP_TOKENS, V, unw);
    put(h, s, "tokens/by_count", 0, M, FEAT_TOP_TOKENS, 9, unw);
    put(h, s, "tokens/by_mean_id", 0, M, FEAT_TOP_TOKENS, V, unw);
    put(h, s, "tokens/by_mean", 1, M, FEAT_TOP_TOKENS, V, unw);
    if (!(flags & 16)) put_strings(h, s, "label", fuzz_u8(s) % 4 ? M : M + 1);
    if (flags & 32) {
        put(h, s, "lens/promote_id", 0, M, FEAT_LENS, V, unw);
        put(h, s, "lens/suppress_id", 0, M, FEAT_LENS, V, unw);
        put(h, s, "lens/promote", 1, M, FEAT_LENS, V, unw);
        put(h, s, "lens/suppress", 1, M, FEAT_LENS, V, unw);
    }
    if (V && !(flags & 128)) put_strings(h, s, "vocab", V);
    return H5Fclose(h) < 0 ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    data_h5_init();
    fuzz_stream s = {data, size};
    char path[512];
    snprintf(path, sizeof path, "%s", fuzz_scratch_path(".feat.h5"));
    data_h5_lock();
    int w = write_file(path, &s);
    data_h5_unlock();
    if (w < 0) return 0;
    feat_dict *fd = NULL;
    sae_error err = {0};
    int rc = feat_read(&fd, path, &err);
    if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "read: %s %s\n", rc ? err.subject : "ok", rc ? err.msg : "");
    if (rc == SAE_OK) {
        /* every card: ids index /vocab, labels are printed */
        const char *out = fuzz_scratch_path(".cards.jsonl");
        feat_write_json(fd, NULL, out, &err); /* no data file: the cards alone */
        remove(out);
        feat_free(fd);
    }
    remove(path);
    return 0;
}
