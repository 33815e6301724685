/* tests/make_bad_files.c: writes the catalogue of broken activation files into
 * a folder, one "<name>.h5<TAB>phrase" line each on stdout, for the CLI tests.
 *
 * With a mode first, it instead damages one file in a precise way, so shell
 * tests can craft SAE, features and checkpoint files without h5py:
 *   make_bad_files attr-i64 SRC OUT OBJ NAME VALUE   attribute NAME of OBJ ("/", "/train") := int64
 *   make_bad_files attr-f64 SRC OUT OBJ NAME VALUE   ... := float64 ("nan", "inf" accepted)
 *   make_bad_files del-attr SRC OUT OBJ NAME         attribute NAME of OBJ removed
 *   make_bad_files set-f32 SRC OUT DSET INDEX VALUE  element INDEX (flat) of a float dataset
 *   make_bad_files set-i32 SRC OUT DSET INDEX VALUE  ... of an int32 dataset
 *   make_bad_files set-i64 SRC OUT DSET INDEX VALUE  ... of an int64 dataset
 *   make_bad_files fill-f32 SRC OUT DSET VALUE        every element of a float dataset
 *   make_bad_files as-i32 SRC OUT DSET                a float dataset rewritten as int32, same shape
 *   make_bad_files unwritten-sae OUT D M             an SAE whose datasets declare
 *                                                    [D, M] etc. but were never written
 * SRC is copied to OUT first; OUT is then edited in place. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testutil.h"

static int copy_file(const char *src, const char *dst) {
    FILE *a = fopen(src, "rb"), *b = fopen(dst, "wb");
    char buf[65536];
    size_t n;
    int rc = a && b ? 0 : -1;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, a)) > 0)
        if (fwrite(buf, 1, n, b) != n) rc = -1;
    if (a) fclose(a);
    if (b && fclose(b) != 0) rc = -1;
    if (rc) fprintf(stderr, "make_bad_files: cannot copy %s to %s\n", src, dst);
    return rc;
}

static int set_attr(hid_t f, const char *obj, const char *name, hid_t type, const void *v) {
    hid_t o = H5Oopen(f, obj, H5P_DEFAULT);
    if (o < 0) return -1;
    if (H5Aexists(o, name) > 0) H5Adelete(o, name);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(o, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a >= 0 ? H5Awrite(a, type, v) : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp), H5Oclose(o);
    return rc < 0 ? -1 : 0;
}

/* Reads the whole dataset as `type`, lets edit() change it, writes it back. */
static int edit_dataset(hid_t f, const char *name, hid_t type, size_t esize, long index, double value) {
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0) return -1;
    hid_t sp = H5Dget_space(ds);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    char *buf = n > 0 ? malloc((size_t)n * esize) : NULL;
    int rc = buf && H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0 ? 0 : -1;
    for (hssize_t i = 0; rc == 0 && i < n; i++) {
        if (index >= 0 && i != index) continue;
        char *p = buf + (size_t)i * esize;
        if (type == H5T_NATIVE_FLOAT) *(float *)p = (float)value;
        else if (type == H5T_NATIVE_INT32) *(int *)p = (int)value;
        else *(long long *)p = (long long)value;
    }
    if (rc == 0 && index >= n) rc = -1;
    if (rc == 0 && H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) rc = -1;
    free(buf);
    H5Dclose(ds);
    return rc;
}

/* The dataset replaced by an int32 one of the same shape and (rounded) values. */
static int as_i32(hid_t f, const char *name) {
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0) return -1;
    hid_t sp = H5Dget_space(ds);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    int *buf = n > 0 ? malloc((size_t)n * sizeof *buf) : NULL;
    int rc = buf && H5Dread(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0 ? 0 : -1;
    H5Dclose(ds);
    if (rc == 0) rc = H5Ldelete(f, name, H5P_DEFAULT) < 0 ? -1 : 0;
    if (rc == 0) {
        ds = H5Dcreate2(f, name, H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        rc = ds >= 0 && H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0 ? 0 : -1;
        if (ds >= 0) H5Dclose(ds);
    }
    H5Sclose(sp);
    free(buf);
    return rc;
}

/* Datasets created with their shapes and never written: no storage at all. */
static int unwritten_sae(const char *out, unsigned long long d, unsigned long long m) {
    hid_t f = H5Fcreate(out, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return -1;
    struct { const char *name; int rank; hsize_t dims[2]; } t[4] = {
        {"W_enc", 2, {d, m}}, {"b_enc", 1, {m, 0}}, {"W_dec", 2, {m, d}}, {"b_dec", 1, {d, 0}}};
    int rc = 0;
    for (int i = 0; i < 4 && rc == 0; i++) {
        hid_t sp = H5Screate_simple(t[i].rank, t[i].dims, NULL);
        hid_t ds = H5Dcreate2(f, t[i].name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        rc = ds < 0 ? -1 : 0;
        if (ds >= 0) H5Dclose(ds);
        H5Sclose(sp);
    }
    hid_t s = H5Tcopy(H5T_C_S1);
    H5Tset_size(s, 16);
    char fmt[16] = "sae", arch[16] = "topk";
    long long dd = (long long)d, mm = (long long)m, k = 4, ver = 1;
    double scale = 1, aux = 0;
    rc |= set_attr(f, "/", "format", s, fmt) | set_attr(f, "/", "arch", s, arch);
    rc |= set_attr(f, "/", "format_version", H5T_NATIVE_LLONG, &ver);
    rc |= set_attr(f, "/", "d_model", H5T_NATIVE_LLONG, &dd) | set_attr(f, "/", "n_latents", H5T_NATIVE_LLONG, &mm);
    rc |= set_attr(f, "/", "k", H5T_NATIVE_LLONG, &k);
    rc |= set_attr(f, "/", "aux_coef", H5T_NATIVE_DOUBLE, &aux);
    rc |= set_attr(f, "/", "input_scale", H5T_NATIVE_DOUBLE, &scale);
    H5Tclose(s);
    return H5Fclose(f) < 0 ? -1 : rc;
}

static int damage(int argc, char **argv) {
    const char *mode = argv[1];
    if (strcmp(mode, "unwritten-sae") == 0)
        return argc == 5 ? unwritten_sae(argv[2], strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0)) : -1;
    if (argc < 5 || copy_file(argv[2], argv[3])) return -1;
    hid_t f = H5Fopen(argv[3], H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) return -1;
    int rc = -1;
    if (strcmp(mode, "del-attr") == 0 && argc == 6) {
        hid_t o = H5Oopen(f, argv[4], H5P_DEFAULT);
        rc = o >= 0 && H5Adelete(o, argv[5]) >= 0 ? 0 : -1;
        if (o >= 0) H5Oclose(o);
    } else if (strcmp(mode, "attr-i64") == 0 && argc == 7) {
        long long v = strtoll(argv[6], NULL, 0);
        rc = set_attr(f, argv[4], argv[5], H5T_NATIVE_LLONG, &v);
    } else if (strcmp(mode, "attr-f64") == 0 && argc == 7) {
        double v = strtod(argv[6], NULL);
        rc = set_attr(f, argv[4], argv[5], H5T_NATIVE_DOUBLE, &v);
    } else if (strcmp(mode, "set-f32") == 0 && argc == 7) {
        rc = edit_dataset(f, argv[4], H5T_NATIVE_FLOAT, 4, atol(argv[5]), strtod(argv[6], NULL));
    } else if (strcmp(mode, "set-i32") == 0 && argc == 7) {
        rc = edit_dataset(f, argv[4], H5T_NATIVE_INT32, 4, atol(argv[5]), strtod(argv[6], NULL));
    } else if (strcmp(mode, "set-i64") == 0 && argc == 7) {
        rc = edit_dataset(f, argv[4], H5T_NATIVE_LLONG, 8, atol(argv[5]), strtod(argv[6], NULL));
    } else if (strcmp(mode, "as-i32") == 0 && argc == 5) {
        rc = as_i32(f, argv[4]);
    } else if (strcmp(mode, "fill-f32") == 0 && argc == 6) {
        rc = edit_dataset(f, argv[4], H5T_NATIVE_FLOAT, 4, -1, strtod(argv[5], NULL));
    }
    if (H5Fclose(f) < 0) rc = -1;
    return rc;
}

int main(int argc, char **argv) {
    if (argc >= 3) {
        if (damage(argc, argv) == 0) return 0;
        fprintf(stderr, "make_bad_files %s: failed (see the usage at the top of tests/make_bad_files.c)\n",
                argv[1]);
        return 1;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: make_bad_files DIR | MODE ARGS... (see tests/make_bad_files.c)\n");
        return 2;
    }
    const char **names, **phrases;
    size_t n = tu_write_bad_files(argv[1], &names, &phrases);
    for (size_t i = 0; i < n; i++) printf("%s.h5\t%s\n", names[i], phrases[i]);
    /* valid companions: d=16 and d=8 files, and one with three NaN rows */
    size_t nan_rows[3] = {7, 2000, 4000};
    if (tu_write_acts(tu_path(argv[1], "good.h5"), 8192, 16, 100, 256, 0, 512, NULL, 0) ||
        tu_write_acts(tu_path(argv[1], "good8.h5"), 4096, 8, 100, 256, 0, 512, NULL, 0) ||
        tu_write_acts(tu_path(argv[1], "nan.h5"), 8192, 16, 100, 256, 0, 512, nan_rows, 3))
        return 1;
    if (tu_write_tiny_llama(argv[1])) return 1;
    return 0;
}
