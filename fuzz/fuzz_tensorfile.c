/* fuzz/fuzz_tensorfile.c: the containers published SAEs come in
 * (sae/tensorfile.h) and the folders they are published as (sae/foreign.h).
 *
 * Byte 0 chooses what the rest becomes:
 *   even   the rest is a file as it is: a safetensors file or an .npz archive
 *          (sae_tensorfile_open sniffs it), and every tensor that opens is
 *          read, so the byte-range checks are tested against the reads;
 *   odd    a SAELens (byte 0 & 2 clear) or sparsify folder: the rest up to the
 *          first NUL byte is cfg.json, the bytes after it the weights file, and
 *          the folder is loaded as an SAE (sae_foreign_load), which then
 *          encodes one row, so the mapping of each config onto our model is
 *          fuzzed with its tensors.
 * Promise checked: every failure is an error, never a crash or a hang. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/mem.h"
#include "fuzzutil.h"
#include "sae/foreign.h"
#include "sae/tensorfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_READ_FLOATS ((size_t)1 << 22) /* 16 MiB: larger tensors are opened, not read */

static void read_all(const char *path) {
    sae_tensorfile *tf;
    sae_error err = {0};
    if (sae_tensorfile_open(&tf, path, &err) < 0) return;
    for (size_t i = 0; i < sae_tensorfile_count(tf); i++) {
        const sae_tf_tensor *t = sae_tensorfile_get(tf, i);
        if (t->numel > MAX_READ_FLOATS) continue;
        float *v = sae_malloc((t->numel ? t->numel : 1) * sizeof *v);
        if (!v) continue;
        sae_tensorfile_read_f32(tf, t, v, &err);
        sae_free(v);
    }
    sae_tensorfile_close(tf);
}

static void write_file(const char *path, const uint8_t *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    if (n) fwrite(p, 1, n, f);
    fclose(f);
}

static void load_folder(const uint8_t *p, size_t n, int sparsify) {
    char dir[600], cfg[700], weights[700];
    snprintf(dir, sizeof dir, "%s", fuzz_scratch_path(".sae"));
    mkdir(dir, 0700);
    const uint8_t *nul = memchr(p, 0, n);
    size_t cfg_len = nul ? (size_t)(nul - p) : n;
    snprintf(cfg, sizeof cfg, "%s/cfg.json", dir);
    snprintf(weights, sizeof weights, "%s/%s", dir, sparsify ? "sae.safetensors" : "sae_weights.safetensors");
    write_file(cfg, p, cfg_len);
    write_file(weights, nul ? nul + 1 : p + n, nul ? n - cfg_len - 1 : 0);
    sae_model m;
    double scale;
    sae_error err = {0};
    if (sae_foreign_load(dir, &m, 1, &scale, NULL, &err) == SAE_OK) {
        float *x = sae_calloc_n(m.cfg.d ? m.cfg.d : 1, sizeof *x);
        if (x) sae_model_encode(&m, x, 1, &err);
        sae_free(x);
        sae_model_free(&m);
    }
    unlink(cfg), unlink(weights), rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (data[0] % 2 == 0) {
        const char *path = fuzz_bytes_file(data + 1, size - 1, ".tensors");
        read_all(path);
        remove(path);
    } else {
        load_folder(data + 1, size - 1, (data[0] & 2) != 0);
    }
    return 0;
}
