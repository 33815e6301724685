/* tests/testutil.h: small helpers shared by the tests: temporary folders and
 * generators of valid and deliberately broken activation files. */
#ifndef SAE_TESTUTIL_H
#define SAE_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* mkdtemp under $TMPDIR (or /tmp); returns a static path. */
const char *tu_tmpdir(void);
/* The shared folder (models, corpora): $SAE_SHARED, else compiled (the test's
 * SAE_SHARED_DIR); and whether its models are there (jaen-6m as the witness). */
const char *tu_shared_dir(const char *compiled);
int tu_have_shared_models(const char *shared);
/* path joined into a static rotating buffer */
const char *tu_path(const char *dir, const char *name);

/* A valid file of n rows x d: row r holds r in column 0 and r*0.001*(c+1)
 * elsewhere, tokens r % v, documents of doc_len rows, vocab "w<i>". Rows listed
 * in nan_rows get a NaN in column 1. chunk_rows 0 = default. */
int tu_write_acts(const char *path, size_t n, size_t d, size_t v, size_t doc_len, int f16,
                  size_t chunk_rows, const size_t *nan_rows, size_t n_nan);

/* Broken files, one per kind, named <dir>/<kind>.h5; returns the count and
 * fills names (static strings) and the phrase the error must contain. */
size_t tu_write_bad_files(const char *dir, const char ***names, const char ***phrases);

/* <dir>/tiny.bin (dim 16, 2 layers, GQA 4/2 heads, vocab 300, seq 32) with
 * tiny_tok.bin; tiny_trunc.bin (cut short), tiny_tok290.bin (wrong vocab);
 * corpora good.jsonl, good.txt, bad_utf8.txt, empty.txt, bad.jsonl. */
int tu_write_tiny_llama(const char *dir);

/* The reference llama2.c forward for tests: deliberately simple, one token at
 * a time with a KV cache, in the style of run.c but with double accumulation
 * (matvecs, norms, attention). After tu_ref_run on T <= seq_len tokens (one
 * sequence, positions 0..T-1): sites (L, 4, T, dim) holds every site of every
 * layer (data_site order) and logits (T, V) the classifier's output. */
struct data_llama;
typedef struct tu_ref {
    const struct data_llama *m;
    double *kc, *vc; /* (L, seq, kv_dim) */
    float *sites;    /* (L, 4, T, dim) every site at every position */
    float *logits;   /* (T, V) */
    size_t T;
} tu_ref;
int tu_ref_init(tu_ref *r, const struct data_llama *m, size_t T); /* 0, or -1 (T > seq_len, no memory) */
void tu_ref_run(tu_ref *r, const int32_t *tok, size_t T);
void tu_ref_free(tu_ref *r);

#endif
