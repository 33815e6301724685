/* fuzz/fuzz_llama.c: llama2.c model files (data_llama_load) from untrusted
 * bytes, and one forward pass over the ones that load and are tiny.
 *
 * Byte 0 picks the mode: even = the rest is the file as it is (the header
 * checks, and the size check against the header); odd = the next 28 bytes
 * are the header and the weights are the remaining bytes repeated to the
 * exact size the header describes (when that is at most 1 MiB), so the
 * fuzzer reaches the forward pass with hostile shapes and values (NaN, Inf,
 * huge) instead of being stopped by the size check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "data/llama.h"
#include "fuzzutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The file size the header describes, or 0 past 1 MiB or when implausible
 * (the harness's own estimate; the loader has the real check). */
static size_t described(const int32_t h[7]) {
    for (int i = 0; i < 7; i++)
        if (i != 5 && (h[i] <= 0 || h[i] > 4096)) return 0;
    int64_t D = h[0], H = h[1], L = h[2], nh = h[3], kv = h[4], V = h[5] < 0 ? -(int64_t)h[5] : h[5];
    int64_t S = h[6];
    if (V == 0 || V > 4096 || D % nh || nh % kv) return 0;
    int64_t KV = D * kv / nh, hs = D / nh;
    int64_t f = V * D + L * D + 2 * L * D * D + 2 * L * KV * D + L * D + 3 * L * H * D + D + S * hs;
    if (h[5] < 0) f += V * D;
    int64_t bytes = 28 + 4 * f;
    return bytes <= (1 << 20) ? (size_t)bytes : 0;
}

static void forward_once(const data_llama *m) {
    const data_llama_config *c = &m->c;
    size_t T = c->seq_len < 4 ? (size_t)c->seq_len : 4, V = (size_t)c->vocab_size;
    if ((size_t)c->dim * (size_t)c->hidden_dim * (size_t)c->n_layers > (1u << 16) || V > 4096) return;
    data_llama_run *r = NULL;
    sae_error err = {0};
    if (data_llama_run_init_seq(&r, m, T, T, &err) < 0) return;
    int32_t ids[4];
    for (size_t i = 0; i < T; i++) ids[i] = (int32_t)((i * 7 + 1) % V);
    size_t off[2] = {0, T};
    float *logits = sae_alloc(T * V * sizeof(float));
    if (logits) data_llama_forward(r, ids, off, 1, -1, NULL, NULL, logits);
    sae_free(logits);
    data_llama_run_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *path;
    if ((data[0] & 1) && size >= 29) {
        int32_t h[7];
        memcpy(h, data + 1, sizeof h);
        size_t want = described(h);
        if (want == 0) return 0;
        uint8_t *buf = malloc(want);
        if (!buf) abort();
        memcpy(buf, h, 28);
        const uint8_t *w = data + 29;
        size_t wn = size - 29;
        for (size_t i = 28; i < want; i++) buf[i] = wn ? w[(i - 28) % wn] : 0;
        path = fuzz_bytes_file(buf, want, ".bin");
        free(buf);
    } else {
        path = fuzz_bytes_file(data + 1, size - 1, ".bin");
    }
    data_llama *m = NULL;
    sae_error err = {0};
    if (data_llama_load(&m, path, &err) < 0) return 0;
    forward_once(m);
    data_llama_free(m);
    return 0;
}
