/* fuzz/fuzzutil.c: see fuzzutil.h. */
#include "fuzzutil.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *scratch_dir(void) {
    struct stat st;
    if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode)) return "/dev/shm";
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

const char *fuzz_scratch_path(const char *suffix) {
    static char path[512];
    snprintf(path, sizeof path, "%s/sae-fuzz-%ld-out%s", scratch_dir(), (long)getpid(), suffix);
    return path;
}

const char *fuzz_bytes_file(const uint8_t *data, size_t size, const char *suffix) {
    static char path[512];
    snprintf(path, sizeof path, "%s/sae-fuzz-%ld%s", scratch_dir(), (long)getpid(), suffix);
    FILE *f = fopen(path, "wb");
    if (!f) abort(); /* the harness itself is broken: say so loudly */
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
    return path;
}

void fuzz_take(fuzz_stream *s, void *out, size_t n) {
    size_t k = n < s->n ? n : s->n;
    memcpy(out, s->p, k);
    memset((char *)out + k, 0, n - k);
    s->p += k, s->n -= k;
}

uint64_t fuzz_u64(fuzz_stream *s) {
    uint64_t v;
    fuzz_take(s, &v, sizeof v);
    return v;
}
uint32_t fuzz_u32(fuzz_stream *s) {
    uint32_t v;
    fuzz_take(s, &v, sizeof v);
    return v;
}
uint8_t fuzz_u8(fuzz_stream *s) {
    uint8_t v;
    fuzz_take(s, &v, sizeof v);
    return v;
}

void fuzz_attr_fixed_str(int64_t loc, const char *name, const char *v) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) + 1);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2((hid_t)loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) H5Awrite(a, t, v), H5Aclose(a);
    H5Sclose(sp), H5Tclose(t);
}
