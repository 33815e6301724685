/* tests/test_data.c: activation files and the streamed reader.
 *  - write/read round trip in float32 and float16;
 *  - the shuffled stream visits every row exactly once per epoch, compared with
 *    a whole-file read; it is deterministic for a seed and resumes exactly
 *    from a saved position;
 *  - NaN rows are refused, or dropped when allowed;
 *  - every broken file of the catalogue is refused with its own message;
 *  - hardening: a damaged global heap under the variable-length strings gives
 *    an error (HDF5 1.10 itself crashes on it), a file declaring 2^40
 *    unwritten rows is refused at once, a locked file is called locked. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <fcntl.h>
#include <hdf5.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "data/actfile.h"
#include "data/reader.h"
#include "tests/testutil.h"

static const char *dir;

static void test_roundtrip_f32_f16(void **state) {
    (void)state;
    size_t n = 1000, d = 7;
    for (int f16 = 0; f16 < 2; f16++) {
        const char *p = tu_path(dir, f16 ? "rt16.h5" : "rt32.h5");
        assert_int_equal(tu_write_acts(p, n, d, 50, 64, f16, 128, NULL, 0), 0);
        data_actfile *f;
        sae_error err = {0};
        assert_int_equal(data_actfile_open(&f, p, &err), 0);
        assert_int_equal(f->n, n);
        assert_int_equal(f->d, d);
        assert_int_equal(f->dtype_bytes, f16 ? 2 : 4);
        assert_int_equal(f->vocab_size, 50);
        assert_int_equal(f->n_docs, 16);
        assert_true(f->has_tokens && f->has_doc_labels);
        assert_int_equal(f->chunk_rows, 128);
        assert_string_equal(f->hook, "resid_post");
        assert_int_equal(f->layer, 3);
        float *x = malloc(n * d * sizeof(float));
        assert_int_equal(data_actfile_read_rows(f, 0, n, x, &err), 0);
        for (size_t r = 0; r < n; r++)
            for (size_t c = 0; c < d; c++) {
                float want = c == 0 ? (float)r : (float)r * 0.001f * (float)(c + 1);
#ifdef __FLT16_MAX__
                /* float16 storage: exactly the nearest half, widened exactly on read */
                if (f16) want = (float)(_Float16)want;
                float tol = 0.0f;
#else
                float tol = f16 ? fabsf(want) * 4.9e-4f : 0.0f; /* 11 significant bits */
#endif
                if (fabsf(x[r * d + c] - want) > tol)
                    fail_msg("row %zu col %zu: %g != %g (f16=%d)", r, c, x[r * d + c], want, f16);
            }
        free(x);
        data_actfile_close(f);
    }
}

/* Reads `count` rows from a reader and records each row's id (column 0). */
static void read_ids(data_reader *r, size_t d, size_t count, size_t batch, long *ids) {
    float *x = malloc(batch * d * sizeof(float));
    sae_error err = {0};
    for (size_t done = 0; done < count; done += batch) {
        size_t b = count - done < batch ? count - done : batch;
        assert_int_equal(data_reader_next(r, x, b, &err), 0);
        for (size_t i = 0; i < b; i++) ids[done + i] = lroundf(x[i * d]);
    }
    free(x);
}

/* Our float->half conversion against the compiler's _Float16 (an independent
 * implementation of IEEE rounding), on values around every binade, the
 * rounding carries that HDF5 1.10 gets wrong, subnormals and overflow. */
static void test_f16_conversion(void **state) {
    (void)state;
#ifdef __FLT16_MAX__
    uint32_t seed = 12345;
    size_t bad = 0;
    for (int i = 0; i < 2000000; i++) {
        seed = seed * 1664525u + 1013904223u;
        float f;
        if (i < 1000000) {
            uint32_t bits = seed; /* any float pattern, NaN excluded below */
            memcpy(&f, &bits, 4);
        } else {
            f = ldexpf((float)(seed >> 8) / 16777216.0f, (int)(i % 40) - 26); /* dense near halves */
            if (i & 1) f = -f;
        }
        if (isnan(f)) continue;
        _Float16 h = (_Float16)f;
        uint16_t want;
        memcpy(&want, &h, 2);
        if (data_f32_to_f16(f) != want && bad++ < 5)
            print_error("%.9g: got 0x%04x want 0x%04x\n", (double)f, data_f32_to_f16(f), want);
    }
    float carry = -0.99989f; /* rounds to -1.0: a carry into the exponent */
    assert_int_equal(data_f32_to_f16(carry), 0xbc00);
    assert_int_equal(bad, 0);
    /* half -> float, used when reading float16 files: every one of the 65536
     * patterns (NaNs compared as NaN) */
    for (uint32_t b = 0; b < 65536; b++) {
        uint16_t bits = (uint16_t)b;
        _Float16 h;
        memcpy(&h, &bits, 2);
        float want = (float)h, got = data_f16_to_f32(bits);
        if (isnan(want) ? !isnan(got) : memcmp(&want, &got, 4) != 0)
            fail_msg("half 0x%04x: got %.9g want %.9g", (unsigned)b, (double)got, (double)want);
    }
#else
    skip();
#endif
}

static void test_stream_covers_file(void **state) {
    (void)state;
    size_t n = 3000, d = 5;
    const char *p = tu_path(dir, "stream.h5");
    assert_int_equal(tu_write_acts(p, n, d, 10, 100, 0, 64, NULL, 0), 0);
    data_actfile *f;
    sae_error err = {0};
    assert_int_equal(data_actfile_open(&f, p, &err), 0);
    data_reader_params rp = {.buffer_rows = 512, .seed = 11};
    data_reader *r;
    assert_int_equal(data_reader_open(&r, f, &rp, NULL, &err), 0);
    long *ids = malloc(2 * n * sizeof(long));
    read_ids(r, d, 2 * n, 37, ids); /* two epochs, in batches that straddle windows */
    data_reader_close(r);
    /* each epoch is a permutation of the rows a whole-file read gives */
    float *whole = malloc(n * d * sizeof(float));
    assert_int_equal(data_actfile_read_rows(f, 0, n, whole, &err), 0);
    for (int e = 0; e < 2; e++) {
        char *seen = calloc(n, 1);
        size_t in_order = 0;
        for (size_t i = 0; i < n; i++) {
            long id = ids[e * n + i];
            assert_true(id >= 0 && (size_t)id < n);
            assert_int_equal(seen[id], 0);
            seen[id] = 1;
            assert_float_equal(whole[id * d], (float)id, 0);
            in_order += (size_t)id == i;
        }
        assert_true(in_order < n / 10); /* actually shuffled */
        free(seen);
    }
    /* the second epoch is ordered differently from the first */
    size_t same = 0;
    for (size_t i = 0; i < n; i++) same += ids[i] == ids[n + i];
    assert_true(same < n / 10);
    free(whole);
    /* chunks larger than the buffer: memory stays within the buffer, and the
     * stream still covers every row */
    rp.buffer_rows = 40; /* chunks are 64 rows */
    assert_int_equal(data_reader_open(&r, f, &rp, NULL, &err), 0);
    read_ids(r, d, n, 100, ids);
    data_reader_close(r);
    char *seen = calloc(n, 1);
    for (size_t i = 0; i < n; i++) assert_int_equal(seen[ids[i]]++, 0);
    free(seen);
    free(ids);
    data_actfile_close(f);
}

static void test_stream_deterministic_and_resumable(void **state) {
    (void)state;
    size_t n = 2500, d = 4;
    const char *p = tu_path(dir, "resume.h5");
    assert_int_equal(tu_write_acts(p, n, d, 10, 100, 0, 50, NULL, 0), 0);
    data_actfile *f;
    sae_error err = {0};
    assert_int_equal(data_actfile_open(&f, p, &err), 0);
    data_reader_params rp = {.buffer_rows = 400, .seed = 5};
    long a[4000], b[4000], c[4000];
    data_reader *r;
    assert_int_equal(data_reader_open(&r, f, &rp, NULL, &err), 0);
    read_ids(r, d, 4000, 64, a);
    data_reader_close(r);
    /* same seed: same stream; resume from a saved position: same continuation */
    assert_int_equal(data_reader_open(&r, f, &rp, NULL, &err), 0);
    read_ids(r, d, 1337, 1337, b);
    data_stream_pos pos = data_reader_pos(r);
    data_reader_close(r);
    assert_memory_equal(a, b, 1337 * sizeof(long));
    assert_int_equal(data_reader_open(&r, f, &rp, &pos, &err), 0);
    read_ids(r, d, 4000 - 1337, 100, c);
    data_reader_close(r);
    assert_memory_equal(a + 1337, c, (4000 - 1337) * sizeof(long));
    /* another seed: another order */
    rp.seed = 6;
    assert_int_equal(data_reader_open(&r, f, &rp, NULL, &err), 0);
    read_ids(r, d, 1000, 100, b);
    data_reader_close(r);
    size_t same = 0;
    for (size_t i = 0; i < 1000; i++) same += a[i] == b[i];
    assert_true(same < 100);
    data_actfile_close(f);
}

static void test_nonfinite_rows(void **state) {
    (void)state;
    size_t n = 1000, d = 3, bad[3] = {5, 500, 999};
    const char *p = tu_path(dir, "nan.h5");
    assert_int_equal(tu_write_acts(p, n, d, 10, 100, 0, 100, bad, 3), 0);
    data_actfile *f;
    sae_error err = {0};
    assert_int_equal(data_actfile_open(&f, p, &err), 0);
    size_t count = 0, first = 0;
    assert_int_equal(data_actfile_count_nonfinite(f, &count, &first, &err), 0);
    assert_int_equal(count, 3);
    assert_int_equal(first, 5);
    /* skipping: an epoch holds exactly the finite rows */
    data_reader_params rp = {.buffer_rows = 400, .seed = 1, .skip_nonfinite = 1};
    data_reader *r;
    assert_int_equal(data_reader_open(&r, f, &rp, NULL, &err), 0);
    long ids[997];
    read_ids(r, d, 997, 997, ids);
    char seen[1000] = {0};
    for (size_t i = 0; i < 997; i++) {
        assert_true(ids[i] != 5 && ids[i] != 500 && ids[i] != 999);
        assert_int_equal(seen[ids[i]]++, 0);
    }
    data_reader_close(r);
    /* refusing: the reader reports the row */
    rp.skip_nonfinite = 0;
    int rc = data_reader_open(&r, f, &rp, NULL, &err);
    float x[3 * 1000];
    if (rc == 0) {
        rc = data_reader_next(r, x, 1000, &err);
        data_reader_close(r);
    }
    assert_int_equal(rc, SAE_ERR_NONFINITE);
    assert_non_null(strstr(err.msg, "NaN or Inf"));
    data_actfile_close(f);
}

static void test_bad_files_refused(void **state) {
    (void)state;
    const char **names, **phrases;
    size_t n = tu_write_bad_files(dir, &names, &phrases);
    assert_true(n >= 12);
    for (size_t i = 0; i < n; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s.h5", names[i]);
        data_actfile *f = NULL;
        sae_error err = {0};
        int rc = data_actfile_open(&f, tu_path(dir, name), &err);
        if (rc == 0) fail_msg("%s was accepted", name);
        assert_null(f);
        if (!strstr(err.msg, phrases[i]))
            fail_msg("%s: message '%s' lacks '%s'", name, err.msg, phrases[i]);
        assert_non_null(strstr(err.subject, name));
    }
}

/* Gives the global heap object holding the string `piece` (in the file's
 * "GCOL" collections: 16-byte header, then objects of index u16, refcount
 * u16, reserved u32, size u64, data padded to 8) a size of 2^40: reading it
 * copies that many bytes into a buffer sized by the element's own length. */
static void damage_global_heap(const char *path, const char *piece) {
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    static unsigned char b[1 << 20];
    size_t n = fread(b, 1, sizeof b, fp), len = strlen(piece);
    int damaged = 0;
    for (size_t g = 0; g + 4 <= n; g++) {
        if (memcmp(b + g, "GCOL", 4) != 0) continue;
        for (size_t o = g + 16; o + 16 <= n;) {
            uint16_t idx;
            uint64_t size;
            memcpy(&idx, b + o, 2);
            memcpy(&size, b + o + 8, 8);
            if (idx == 0 || size > n) break; /* index 0: the free space */
            if (size == len && memcmp(b + o + 16, piece, len) == 0) {
                uint64_t bad = (uint64_t)1 << 40;
                memcpy(b + o + 8, &bad, 8);
                damaged++;
            }
            o += 16 + (size + 7) / 8 * 8;
        }
    }
    assert_true(damaged > 0);
    fseek(fp, 0, SEEK_SET);
    assert_int_equal(fwrite(b, 1, n, fp), n);
    fclose(fp);
}

static void test_damaged_vlen_strings(void **state) {
    (void)state;
    const char *p = tu_path(dir, "heap.h5");
    assert_int_equal(tu_write_acts(p, 64, 4, 50, 16, 0, 0, NULL, 0), 0);
    damage_global_heap(p, "w7");
    data_actfile *f = NULL;
    sae_error err = {0};
    if (data_actfile_open(&f, p, &err) != 0) fail_msg("open: %s", err.msg);
    char **v = NULL;
    int rc = data_actfile_read_vocab(f, &v, &err);
    assert_int_equal(rc, SAE_ERR_FORMAT);
    assert_null(v);
    assert_non_null(strstr(err.subject, "heap.h5"));
    if (!strstr(err.msg, "/vocab")) fail_msg("message '%s' does not name /vocab", err.msg);
    /* the child's crash is seen as one at once, not after the read's time-out
     * (a test framework's SIGSEGV handler once kept the child running) */
    if (strstr(err.msg, "did not finish")) fail_msg("the damaged read timed out: '%s'", err.msg);
    data_actfile_close(f);
    /* a string attribute through the same heap: unreadable, not fatal */
    assert_int_equal(tu_write_acts(p, 64, 4, 50, 16, 0, 0, NULL, 0), 0);
    damage_global_heap(p, "resid_post");
    if (data_actfile_open(&f, p, &err) != 0) fail_msg("open: %s", err.msg);
    assert_string_equal(f->hook, "");
    assert_string_equal(f->model, "test");
    data_actfile_close(f);
}

/* /activations chunked (1024, d) with unlimited rows, extended to `rows`, one
 * chunk written; or contiguous and never written. */
static void write_sparse_acts(const char *path, hsize_t rows, int chunked) {
    hid_t h = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[2] = {chunked ? 1024 : rows, 8}, maxd[2] = {H5S_UNLIMITED, 8}, chunk[2] = {1024, 8};
    hid_t sp = H5Screate_simple(2, dims, chunked ? maxd : NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunked) H5Pset_chunk(dcpl, 2, chunk);
    hid_t ds = H5Dcreate2(h, "activations", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(ds >= 0);
    if (chunked) {
        static float z[1024 * 8];
        assert_true(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, z) >= 0);
        hsize_t big[2] = {rows, 8};
        assert_true(H5Dset_extent(ds, big) >= 0);
    }
    H5Dclose(ds), H5Pclose(dcpl), H5Sclose(sp), H5Fclose(h);
}

static void test_unwritten_rows_refused(void **state) {
    (void)state;
    struct {
        const char *name;
        int chunked;
        const char *phrase;
    } cases[] = {{"sparse_chunked.h5", 1, "declares 1099511627776 rows but stores only 1024"},
                 {"sparse_contig.h5", 0, "stores none"}};
    for (size_t i = 0; i < 2; i++) {
        const char *p = tu_path(dir, cases[i].name);
        write_sparse_acts(p, (hsize_t)1 << 40, cases[i].chunked);
        data_actfile *f = NULL;
        sae_error err = {0};
        time_t t0 = time(NULL);
        assert_int_equal(data_actfile_open(&f, p, &err), SAE_ERR_FORMAT);
        assert_true(time(NULL) - t0 < 5);
        if (!strstr(err.msg, cases[i].phrase))
            fail_msg("%s: message '%s' lacks '%s'", cases[i].name, err.msg, cases[i].phrase);
    }
}

static void test_locked_file_named(void **state) {
    (void)state;
    const char *p = tu_path(dir, "locked.h5");
    assert_int_equal(tu_write_acts(p, 64, 4, 10, 16, 0, 0, NULL, 0), 0);
    /* HDF5 takes flock(LOCK_SH) to read; a writer holds LOCK_EX */
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
    data_actfile *f = NULL;
    sae_error err = {0};
    int rc = data_actfile_open(&f, p, &err);
    close(fd);
    assert_int_equal(rc, SAE_ERR_IO);
    if (!strstr(err.msg, "locked")) fail_msg("message '%s' does not say locked", err.msg);
    assert_null(strstr(err.msg, "truncated"));
    assert_int_equal(data_actfile_open(&f, p, &err), 0); /* unlocked: fine */
    data_actfile_close(f);
}

int main(void) {
    dir = tu_tmpdir();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_conversion),
        cmocka_unit_test(test_roundtrip_f32_f16),
        cmocka_unit_test(test_stream_covers_file),
        cmocka_unit_test(test_stream_deterministic_and_resumable),
        cmocka_unit_test(test_nonfinite_rows),
        cmocka_unit_test(test_bad_files_refused),
        cmocka_unit_test(test_damaged_vlen_strings),
        cmocka_unit_test(test_unwritten_rows_refused),
        cmocka_unit_test(test_locked_file_named),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) return 1;
    return rc;
}
