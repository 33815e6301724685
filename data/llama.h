/* data/llama.h: Llama-architecture models in the llama2.c checkpoint format,
 * run as a batched prefill to read their activations.
 *
 * File: 7 x int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 * vocab_size, seq_len; vocab_size < 0 means the classifier is a separate
 * matrix at the end), then float32 weights in PyTorch Linear [out][in] layout:
 * token_embedding [V,dim], rms_att [L,dim], wq [L,dim,dim], wk [L,kv,dim],
 * wv [L,kv,dim], wo [L,dim,dim], rms_ffn [L,dim], w1 [L,hid,dim],
 * w2 [L,dim,hid], w3 [L,hid,dim], rms_final [dim], freq_cis_real and _imag
 * [seq_len, head_size/2] (unused: RoPE is recomputed, as run.c does), and
 * wcls [V,dim] when not shared. The file size must match the header exactly;
 * the header is range-checked (in 64-bit arithmetic) before any size is
 * computed from it.
 *
 * Architecture (as llama2.c's run.c): pre-norm RMSNorm (eps 1e-5), RoPE on
 * adjacent pairs with theta 10000, grouped-query causal attention, SwiGLU
 * w2(silu(w1 x) * w3 x), final RMSNorm, classifier.
 *
 * The forward runs several sequences at once: the projections are one sgemm
 * over all their tokens, attention stays within each sequence, and a hook
 * sees every site of every layer. Weights are mmapped read-only.
 *
 *     data_llama *m; data_llama_load(&m, "model.bin", &err);
 *     data_llama_run *r; data_llama_run_init(&r, m, 4096, &err);
 *     size_t off[2] = {0, n};
 *     data_llama_forward(r, ids, off, 1, -1, hook, user, logits);
 */
#ifndef SAE_DATA_LLAMA_H
#define SAE_DATA_LLAMA_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct data_llama_config {
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    int shared_classifier;
    int head_size, kv_dim;
} data_llama_config;

typedef struct data_llama {
    char path[4096];
    data_llama_config c;
    const float *token_embedding; /* (V, dim) */
    const float *rms_att;         /* (L, dim) */
    const float *wq;              /* (L, dim, dim) */
    const float *wk, *wv;         /* (L, kv_dim, dim) */
    const float *wo;              /* (L, dim, dim) */
    const float *rms_ffn;         /* (L, dim) */
    const float *w1, *w3;         /* (L, hidden, dim) */
    const float *w2;              /* (L, dim, hidden) */
    const float *rms_final;       /* (dim) */
    const float *wcls;            /* (V, dim) */
    void *map;
    size_t map_bytes;
} data_llama;

typedef enum data_site {
    DATA_SITE_RESID_PRE = 0,  /* residual stream entering block L */
    DATA_SITE_ATTN_OUT = 1,   /* attention output of block L (after wo) */
    DATA_SITE_MLP_OUT = 2,    /* feed-forward output of block L (after w2) */
    DATA_SITE_RESID_POST = 3, /* residual stream leaving block L */
} data_site;
#define DATA_N_SITES 4
/* Site names in enum order, NULL-terminated (the CLI's --site choices). */
extern const char *const data_site_names[DATA_N_SITES + 1];
const char *data_site_name(data_site s);
int data_site_parse(const char *s, data_site *out);

int data_llama_load(data_llama **out, const char *path, sae_error *err);
/* The name a model is recorded under in activation and SAE files: its file
 * name with its folder ("jaen-6m/model.bin"), since the file name alone is
 * often just "model.bin". Points into path. */
const char *data_llama_short_name(const char *path);
void data_llama_free(data_llama *m);

/* Scratch for up to max_rows tokens per forward, sequences of up to max_seq
 * tokens (capped by the model's seq_len and max_rows): attention keeps a
 * max_seq^2 score matrix per thread, so a capture with short windows on a
 * long-context model sizes it by its windows. data_llama_run_init uses
 * min(seq_len, max_rows). */
typedef struct data_llama_run data_llama_run;
int data_llama_run_init(data_llama_run **out, const data_llama *m, size_t max_rows,
                        sae_error *err);
int data_llama_run_init_seq(data_llama_run **out, const data_llama *m, size_t max_rows,
                            size_t max_seq, sae_error *err);
void data_llama_run_free(data_llama_run *r);
size_t data_llama_run_vocab(const data_llama_run *r); /* the model's V */

/* Called with the activations x (rows, dim) at each site of each layer. The
 * hook may change x in place: the forward goes on from what it leaves (that
 * is how an SAE is spliced in, or a feature steered). At attn_out and mlp_out
 * x is what is about to be added to the residual stream. */
typedef void (*data_llama_hook)(int layer, data_site site, float *x, size_t rows, void *user);

/* Runs n_seq sequences, sequence s being tokens[off[s] .. off[s+1]) at
 * positions 0, 1, ... Stops after block last_layer unless logits (rows, V) is
 * wanted (last_layer < 0 also runs every block). */
void data_llama_forward(data_llama_run *r, const int32_t *tokens, const size_t *off, size_t n_seq,
                        int last_layer, data_llama_hook hook, void *user, float *logits);

/* The forward in pieces, for runs that share a prefix (sae eval --model runs
 * the blocks before the SAE's site once and the rest once per splice):
 * data_llama_begin puts the tokens' embeddings in the residual stream,
 * data_llama_blocks runs blocks first..last on it (hook as above),
 * data_llama_residual is the stream (rows, dim) between blocks, which the
 * caller may save and restore, and data_llama_end computes the logits of it.
 * data_llama_forward = begin, blocks, end. */
void data_llama_begin(data_llama_run *r, const int32_t *tokens, const size_t *off, size_t n_seq);
void data_llama_blocks(data_llama_run *r, const size_t *off, size_t n_seq, int first, int last,
                       data_llama_hook hook, void *user);
float *data_llama_residual(data_llama_run *r);
void data_llama_end(data_llama_run *r, size_t rows, float *logits);

/* The classifier's logits (rows, V) of final-block residuals x (rows, dim):
 * final RMSNorm, then wcls, as the forward ends. normed is (rows, dim)
 * scratch. A hook at the last block's resid_post can call it on a part of
 * the rows (what capture --predictions does, so logits never need the
 * whole batch's rows x V). */
void data_llama_logits(const data_llama *m, const float *x, size_t rows, float *normed,
                       float *logits);

#endif
