/* fuzz/fuzz_tokenizer.c: a llama2.c tokenizer.bin from untrusted bytes.
 * The first 2 bytes pick the expected vocabulary size (0 = take the file's)
 * and a text to encode follows a 0xFF separator, so both the loader and the
 * encoder over a hostile vocabulary are exercised. */
#include <string.h>

#include "common/mem.h"
#include "data/tokenizer.h"
#include "fuzzutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t expected = (size_t)(data[0] | data[1] << 8) % 600;
    data += 2, size -= 2;
    const uint8_t *sep = memchr(data, 0xFF, size);
    size_t file_len = sep ? (size_t)(sep - data) : size;
    const char *path = fuzz_bytes_file(data, file_len, ".tok");
    data_tokenizer *t = NULL;
    sae_error err = {0};
    if (data_tokenizer_load(&t, path, expected, &err) < 0) return 0;
    size_t bad;
    if (sep && data_utf8_check((const char *)sep + 1, size - file_len - 1, &bad) == 0) {
        const char *text = (const char *)sep + 1;
        size_t len = size - file_len - 1;
        int32_t *ids = NULL;
        size_t n = 0;
        if (data_tokenizer_encode(t, text, len, 1, &ids, &n, &err) == 0) {
            char buf[256], byte_buf[2];
            for (size_t i = 0; i < n; i++) {
                data_tokenizer_display(t, ids[i], buf, sizeof buf);
                data_tokenizer_decode(t, i ? ids[i - 1] : 1, ids[i], byte_buf);
            }
        }
        sae_free(ids);
    }
    data_tokenizer_free(t);
    return 0;
}
