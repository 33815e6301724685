/* fuzz/fuzzutil.h: what the harnesses share.
 *
 * The readers under test take paths, so a harness puts the fuzzer's bytes in
 * a file first: fuzz_bytes_file() writes them to one per-process file (on
 * tmpfs when /dev/shm exists) and returns its path, valid until the next call.
 * fuzz_take() splits structured inputs: it hands out the next n bytes (zeros
 * past the end), so a harness can derive sizes and values from a prefix and
 * use the rest as payload. */
#ifndef SAE_FUZZ_UTIL_H
#define SAE_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

const char *fuzz_bytes_file(const uint8_t *data, size_t size, const char *suffix);
/* A fresh path (not created) in the same directory, for outputs. */
const char *fuzz_scratch_path(const char *suffix);

typedef struct fuzz_stream {
    const uint8_t *p;
    size_t n;
} fuzz_stream;

void fuzz_take(fuzz_stream *s, void *out, size_t n);
uint64_t fuzz_u64(fuzz_stream *s);
uint32_t fuzz_u32(fuzz_stream *s);
uint8_t fuzz_u8(fuzz_stream *s);

/* A scalar fixed-length string attribute (the loaders read these in process;
 * variable-length ones go through the string child, see data/h5.c). */
void fuzz_attr_fixed_str(int64_t loc, const char *name, const char *v);

#endif
