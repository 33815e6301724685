/* fuzz/fuzz_sae_file.c: SAE files (sae_file_load), structure-aware.
 *
 * The bytes do not become the file: they choose its contents, and the harness
 * writes it with the HDF5 library, so the fuzzer explores our checks (declared
 * sizes against real shapes and storage, attribute ranges, NaN weights) rather
 * than HDF5's own parser. Layout of the input:
 *   byte 0      arch (one past the last = an unknown name)
 *   bytes 1-2   real d (1..8) and M (1..16) of the datasets written
 *   byte 3      flags: which declared sizes are the real ones or raw 64-bit
 *               values from the stream, whether input_scale is sane, ...
 *   per tensor  (W_enc, b_enc, W_dec, b_dec, threshold, widths): one byte
 *               choosing absent / right shape / perturbed shape, the type,
 *               written or left unwritten, contiguous or deflated chunks
 *   the rest    attribute values and tensor contents (floats, NaN included)
 * A file that loads is also encoded once, so its tensors are used. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "data/h5.h"
#include "fuzzutil.h"
#include "sae/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A size attribute: the real value, a neighbour, or 64 raw bits. */
static long long pick_size(fuzz_stream *s, size_t real) {
    uint8_t how = fuzz_u8(s) % 4;
    if (how == 0) return (long long)real;
    if (how == 1) return (long long)real + 1;
    if (how == 2) return (long long)(fuzz_u8(s) % 40);
    return (long long)fuzz_u64(s);
}

/* One dataset. shape: 0 absent, 1 right, 2 rows+1, 3 transposed, 4 rank 1.
 * The element values come from the stream (floats as raw bits). */
static void put_tensor(hid_t h, fuzz_stream *s, const char *name, size_t rows, size_t cols) {
    uint8_t f = fuzz_u8(s);
    int shape = f % 5, type = (f >> 3) % 3, unwritten = (f >> 5) & 1, chunked = (f >> 6) & 1;
    if (shape == 0) return;
    hsize_t dims[2] = {rows, cols};
    int rank = cols ? 2 : 1;
    if (shape == 2) dims[0] += 1;
    if (shape == 3 && cols) dims[0] = cols, dims[1] = rows;
    if (shape == 4) rank = 1, dims[0] = rows * (cols ? cols : 1);
    hid_t ft = type == 0 ? H5T_IEEE_F32LE : type == 1 ? H5T_IEEE_F64LE : H5T_STD_I32LE;
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunked) {
        hsize_t ch[2] = {1, dims[1] ? dims[1] : 1};
        H5Pset_chunk(dcpl, rank, ch);
        H5Pset_deflate(dcpl, 1);
    }
    hid_t ds = H5Dcreate2(h, name, ft, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    size_t n = (size_t)dims[0] * (rank == 2 ? (size_t)dims[1] : 1);
    if (ds >= 0 && !unwritten) {
        float *v = sae_malloc(n * sizeof *v);
        if (v) {
            for (size_t i = 0; i < n; i++) {
                uint8_t b = fuzz_u8(s);
                /* mostly small values; 0xFF: a float's raw bits (NaN, Inf, huge) */
                v[i] = ((float)b - 128.0f) / 64.0f;
                if (b == 0xFF) {
                    uint32_t bits = fuzz_u32(s);
                    memcpy(&v[i], &bits, sizeof bits);
                }
            }
            H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
            sae_free(v);
        }
    }
    if (ds >= 0) H5Dclose(ds);
    H5Pclose(dcpl), H5Sclose(sp);
}

static void put_widths(hid_t h, fuzz_stream *s, size_t m) {
    uint8_t n = fuzz_u8(s) % 10; /* 0: none; up to 9 (one past SAE_MAX_WIDTHS) */
    if (!n) return;
    long long w[9];
    for (uint8_t i = 0; i < n; i++) {
        uint8_t b = fuzz_u8(s);
        w[i] = b == 0xFF ? (long long)fuzz_u64(s) : b % 2 ? (long long)m : (long long)(b % 20) - 2;
    }
    hsize_t dn = n;
    hid_t sp = H5Screate_simple(1, &dn, NULL);
    hid_t ds = H5Dcreate2(h, "widths", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (ds >= 0) H5Dwrite(ds, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, w), H5Dclose(ds);
    H5Sclose(sp);
}

static double pick_float(fuzz_stream *s, double sane) {
    uint8_t how = fuzz_u8(s) % 4;
    if (how == 0) return sane;
    if (how == 1) return ((double)fuzz_u8(s) - 64.0) / 32.0;
    double v;
    fuzz_take(s, &v, sizeof v); /* any bits: NaN, Inf, 1e300, denormals */
    return v;
}

static int write_file(const char *path, fuzz_stream *s) {
    uint8_t arch = fuzz_u8(s) % (SAE_ARCH_COUNT + 1);
    size_t d = 1 + fuzz_u8(s) % 8, m = 1 + fuzz_u8(s) % 16;
    uint8_t flags = fuzz_u8(s);
    hid_t h = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (h < 0) return -1;
    fuzz_attr_fixed_str(h, "format", flags & 1 ? "sae" : "sae-features");
    fuzz_attr_fixed_str(h, "arch", arch < SAE_ARCH_COUNT ? sae_arch_names[arch] : "mystery");
    data_h5_set_attr_i64(h, "format_version", (long long)(fuzz_u8(s) % 4));
    data_h5_set_attr_i64(h, "d_model", flags & 2 ? (long long)d : pick_size(s, d));
    data_h5_set_attr_i64(h, "n_latents", flags & 4 ? (long long)m : pick_size(s, m));
    data_h5_set_attr_i64(h, "k", pick_size(s, m < 4 ? m : 4));
    data_h5_set_attr_i64(h, "aux_k", pick_size(s, m / 2));
    data_h5_set_attr_f64(h, "aux_coef", pick_float(s, 1.0 / 32));
    if (!(flags & 8)) data_h5_set_attr_f64(h, "input_scale", pick_float(s, 1.5));
    data_h5_set_attr_f64(h, "threshold_lr", pick_float(s, 0.01));
    data_h5_set_attr_i64(h, "target_l0", pick_size(s, m < 4 ? m : 4));
    data_h5_set_attr_f64(h, "bandwidth", pick_float(s, 0.05));
    data_h5_set_attr_f64(h, "threshold_init", pick_float(s, 0.1));
    put_tensor(h, s, "W_enc", d, m);
    put_tensor(h, s, "b_enc", m, 0);
    put_tensor(h, s, "W_dec", m, d);
    put_tensor(h, s, "b_dec", d, 0);
    put_tensor(h, s, "threshold", flags & 16 ? 1 : m, 0);
    put_widths(h, s, m);
    return H5Fclose(h) < 0 ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    data_h5_init();
    fuzz_stream s = {data, size};
    const char *path = fuzz_scratch_path(".sae.h5");
    data_h5_lock();
    int w = write_file(path, &s);
    data_h5_unlock();
    if (w < 0) return 0;
    sae_model m;
    double scale;
    sae_error err = {0};
    size_t cap = 1 + (size % 8);
    int rc = sae_file_load(path, &m, cap, &scale, &err);
    if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "load: %s %s\n", rc ? err.subject : "ok", rc ? err.msg : "");
    if (rc == SAE_OK) {
        /* a loaded SAE is usable: finite parameters, a forward on a few rows */
        float x[8 * 8];
        for (size_t i = 0; i < cap * m.cfg.d && i < 64; i++) x[i] = (float)i * 0.25f - 1.0f;
        if (m.cfg.d <= 8) {
            sae_error e2 = {0};
            if (sae_model_encode(&m, x, cap, &e2) == SAE_OK) {
                sae_codes c;
                sae_model_codes(&m, &c, &e2);
            }
        }
        sae_model_free(&m);
    }
    return 0;
}
