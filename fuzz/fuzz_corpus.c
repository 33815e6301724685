/* fuzz/fuzz_corpus.c: corpora (JSON Lines or plain text) through the reader
 * capture uses (data_corpus_*). Every document it hands out must be what the
 * tokenizer takes: valid UTF-8 without NUL, of the length it says. */
#include <string.h>

#include "data/capture.h"
#include "data/tokenizer.h"
#include "fuzzutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_bytes_file(data, size, ".jsonl");
    data_corpus *c = NULL;
    sae_error err = {0};
    if (data_corpus_open(&c, path, &err) < 0) return 0;
    data_corpus_doc d;
    size_t bad;
    while (data_corpus_next(c, &d, &err) == 1) {
        if (strlen(d.text) != d.len || data_utf8_check(d.text, d.len, &bad) != 0) __builtin_trap();
        if (d.line == 0) __builtin_trap();
    }
    data_corpus_close(c);
    return 0;
}
