/* data/llama.c: llama2.c checkpoint loading and the batched prefill. */
#include "data/llama.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileutil.h"
#include "common/gemm.h"
#include "common/mem.h"

const char *const data_site_names[DATA_N_SITES + 1] = {"resid_pre", "attn_out", "mlp_out", "resid_post", NULL};

const char *data_site_name(data_site s) { return data_site_names[s]; }

int data_site_parse(const char *s, data_site *out) {
    for (int i = 0; i < DATA_N_SITES; i++)
        if (strcmp(s, data_site_names[i]) == 0) {
            *out = (data_site)i;
            return 0;
        }
    return -1;
}

/* Header ranges: a few times past the largest llama2.c-format models, small
 * enough that every size below fits in 64 bits with room to spare. */
#define MAX_DIM (1 << 16)
#define MAX_HIDDEN (1 << 18)
#define MAX_LAYERS 1024
#define MAX_VOCAB (1 << 22)
#define MAX_SEQ (1 << 20)

/* The header as a config: all arithmetic in int64, nothing computed from a
 * value before its range is checked (dim * n_kv_heads overflowed int, and
 * abs(INT_MIN) is undefined). Returns NULL or what is wrong. */
static const char *header_config(const int32_t h[7], data_llama_config *c) {
    int64_t dim = h[0], hid = h[1], L = h[2], nh = h[3], nkv = h[4], v = h[5], seq = h[6];
    int64_t V = v < 0 ? -v : v; /* negative: the classifier is stored separately */
    if (dim < 1 || dim > MAX_DIM) return "dim out of range";
    if (hid < 1 || hid > MAX_HIDDEN) return "hidden_dim out of range";
    if (L < 1 || L > MAX_LAYERS) return "n_layers out of range";
    if (nh < 1 || nh > dim || dim % nh != 0) return "n_heads must divide dim";
    if (nkv < 1 || nkv > nh || nh % nkv != 0) return "n_kv_heads must divide n_heads";
    if ((dim / nh) % 2 != 0) return "head size must be even (RoPE pairs)";
    if (V < 1 || V > MAX_VOCAB) return "vocab_size out of range";
    if (seq < 1 || seq > MAX_SEQ) return "seq_len out of range";
    *c = (data_llama_config){(int)dim, (int)hid, (int)L, (int)nh, (int)nkv, (int)V, (int)seq,
                             v > 0, (int)(dim / nh), (int)(dim * nkv / nh)};
    return NULL;
}

/* Bytes the weights after the header take, overflow-checked (0 on overflow). */
static size_t weights_bytes(const data_llama_config *c) {
    size_t D = (size_t)c->dim, L = (size_t)c->n_layers, V = (size_t)c->vocab_size;
    size_t H = (size_t)c->hidden_dim, KV = (size_t)c->kv_dim, S = (size_t)c->seq_len;
    size_t hs = (size_t)c->head_size;
    /* terms: embedding, rms_att, wq, wk+wv, wo, rms_ffn, w1+w2+w3, rms_final,
     * freq_cis real + imag (S * hs/2 each), and a separate classifier */
    size_t terms[][3] = {{V, D, 1}, {L, D, 1}, {L, D, D}, {2 * L, KV, D}, {L, D, D},
                         {L, D, 1}, {3 * L, H, D}, {D, 1, 1}, {S, hs, 1},
                         {c->shared_classifier ? 0 : V, D, 1}};
    size_t total = 0;
    for (size_t i = 0; i < sizeof terms / sizeof terms[0]; i++) {
        size_t t;
        if (__builtin_mul_overflow(terms[i][0], terms[i][1], &t) ||
            __builtin_mul_overflow(t, terms[i][2], &t) || __builtin_add_overflow(total, t, &total))
            return 0;
    }
    return __builtin_mul_overflow(total, sizeof(float), &total) ? 0 : total;
}

int data_llama_load(data_llama **out, const char *path, sae_error *err) {
    *out = NULL;
    int rc = sae_check_input_file(path, "model", err); /* a directory: say so */
    if (rc < 0) return rc;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return sae_error_set(err, SAE_ERR_IO, path, "%s", strerror(errno));
    struct stat st;
    int32_t h[7];
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return sae_error_set(err, SAE_ERR_IO, path, "not a regular file (a model is mapped)");
    }
    if (read(fd, h, sizeof h) != (ssize_t)sizeof h) {
        close(fd);
        return sae_error_set(err, SAE_ERR_FORMAT, path, "too short for a llama2.c model header");
    }
    data_llama_config c;
    const char *why = header_config(h, &c);
    if (why) {
        close(fd);
        return sae_error_set(err, SAE_ERR_FORMAT, path,
                             "not a llama2.c model: header (dim %d, hidden %d, layers %d, heads %d/%d, "
                             "vocab %d, seq_len %d) is inconsistent: %s",
                             h[0], h[1], h[2], h[3], h[4], h[5], h[6], why);
    }
    size_t D = (size_t)c.dim, L = (size_t)c.n_layers, V = (size_t)c.vocab_size, H = (size_t)c.hidden_dim;
    size_t KV = (size_t)c.kv_dim, S = (size_t)c.seq_len, hs = (size_t)c.head_size;
    size_t wbytes = weights_bytes(&c), want = sizeof h + wbytes;
    if (wbytes == 0 || st.st_size < 0 || (uint64_t)st.st_size != (uint64_t)want) {
        close(fd);
        return sae_error_set(err, SAE_ERR_FORMAT, path,
                             "header describes %zu bytes but the file has %lld: truncated, or not a "
                             "llama2.c (version 0) model",
                             want, (long long)st.st_size);
    }
    void *map = mmap(NULL, want, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return sae_error_set(err, SAE_ERR_IO, path, "cannot map: %s", strerror(errno));
    data_llama *m = sae_calloc_n(1, sizeof *m);
    if (!m) {
        munmap(map, want);
        return sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory");
    }
    snprintf(m->path, sizeof m->path, "%s", path);
    m->c = c;
    m->map = map;
    m->map_bytes = want;
    const float *p = (const float *)((const char *)map + sizeof h);
#define TAKE(field, n) (m->field = p, p += (n))
    TAKE(token_embedding, V * D);
    TAKE(rms_att, L * D);
    TAKE(wq, L * D * D);
    TAKE(wk, L * KV * D);
    TAKE(wv, L * KV * D);
    TAKE(wo, L * D * D);
    TAKE(rms_ffn, L * D);
    TAKE(w1, L * H * D);
    TAKE(w2, L * D * H);
    TAKE(w3, L * H * D);
    TAKE(rms_final, D);
#undef TAKE
    p += S * hs; /* freq_cis_real, freq_cis_imag */
    m->wcls = c.shared_classifier ? m->token_embedding : p;
    *out = m;
    return SAE_OK;
}

const char *data_llama_short_name(const char *path) {
    const char *name = path + strlen(path);
    int slashes = 0;
    while (name > path && !(name[-1] == '/' && ++slashes == 2)) name--;
    return name;
}

void data_llama_free(data_llama *m) {
    if (!m) return;
    munmap(m->map, m->map_bytes);
    sae_free(m);
}

struct data_llama_run {
    const data_llama *m;
    size_t cap;
    float *x;     /* (cap, dim) residual stream */
    float *xb;    /* (cap, dim) normed input */
    float *q;     /* (cap, dim) */
    float *k, *v; /* (cap, kv_dim) */
    float *att;   /* (cap, dim) attention output before wo */
    float *proj;  /* (cap, dim) attn_out / mlp_out */
    float *h1, *h3; /* (cap, hidden) */
    float *scores;  /* (threads, side, side) attention probabilities, one head per thread */
    size_t scores_side; /* the longest sequence a forward may hold (the window) */
    int n_threads;
    int *pos;       /* (cap) position of each row within its sequence */
};

void data_llama_run_free(data_llama_run *r) {
    if (!r) return;
    sae_free(r->x), sae_free(r->xb), sae_free(r->q), sae_free(r->k), sae_free(r->v);
    sae_free(r->att), sae_free(r->proj), sae_free(r->h1), sae_free(r->h3), sae_free(r->scores);
    sae_free(r->pos);
    sae_free(r);
}

int data_llama_run_init(data_llama_run **out, const data_llama *m, size_t max_rows, sae_error *err) {
    size_t seq = (size_t)m->c.seq_len;
    return data_llama_run_init_seq(out, m, max_rows, max_rows < seq ? max_rows : seq, err);
}

/* n floats, or NULL when n * 4 bytes does not fit */
static float *alloc_floats(size_t a, size_t b, size_t c) {
    int ovf = 0;
    size_t bytes = sae_mul_size(sae_mul_size(sae_mul_size(a, b, &ovf), c, &ovf), sizeof(float), &ovf);
    return ovf ? NULL : sae_alloc(bytes);
}

int data_llama_run_init_seq(data_llama_run **out, const data_llama *m, size_t max_rows,
                            size_t max_seq, sae_error *err) {
    *out = NULL;
    if (max_seq > max_rows) max_seq = max_rows; /* a sequence is at most one forward's rows */
    if (max_seq > (size_t)m->c.seq_len) max_seq = (size_t)m->c.seq_len;
    data_llama_run *r = sae_calloc_n(1, sizeof *r);
    if (!r) return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    size_t D = (size_t)m->c.dim, KV = (size_t)m->c.kv_dim, H = (size_t)m->c.hidden_dim;
    r->m = m;
    r->cap = max_rows;
    r->scores_side = max_seq;
    r->n_threads = sae_get_threads(); /* set threads before this call */
    r->x = alloc_floats(max_rows, D, 1), r->xb = alloc_floats(max_rows, D, 1);
    r->q = alloc_floats(max_rows, D, 1), r->k = alloc_floats(max_rows, KV, 1);
    r->v = alloc_floats(max_rows, KV, 1), r->att = alloc_floats(max_rows, D, 1);
    r->proj = alloc_floats(max_rows, D, 1), r->h1 = alloc_floats(max_rows, H, 1);
    r->h3 = alloc_floats(max_rows, H, 1);
    r->scores = alloc_floats((size_t)r->n_threads, max_seq, max_seq);
    r->pos = sae_calloc_n(max_rows, sizeof *r->pos);
    if (!r->x || !r->xb || !r->q || !r->k || !r->v || !r->att || !r->proj || !r->h1 || !r->h3 ||
        !r->scores || !r->pos) {
        data_llama_run_free(r);
        return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory for the model's activations");
    }
    *out = r;
    return SAE_OK;
}

/* out (N, D) = x * rsqrt(mean(x^2) + 1e-5) * w, as run.c's rmsnorm */
static void rmsnorm_rows(float *out, const float *x, const float *w, size_t N, size_t D) {
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < N; r++) {
        const float *xr = x + r * D;
        float ss = 0.0f;
        for (size_t j = 0; j < D; j++) ss += xr[j] * xr[j];
        ss = 1.0f / sqrtf(ss / (float)D + 1e-5f);
        for (size_t j = 0; j < D; j++) out[r * D + j] = w[j] * (ss * xr[j]);
    }
}

/* RoPE on adjacent pairs, exactly run.c's formula: q on all dim, k on kv_dim */
static void rope_rows(float *q, float *k, const int *pos, size_t N, const data_llama_config *c) {
    size_t D = (size_t)c->dim, KV = (size_t)c->kv_dim, hs = (size_t)c->head_size;
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < N; r++) {
        for (size_t i = 0; i < D; i += 2) {
            size_t head_dim = i % hs;
            float freq = 1.0f / powf(10000.0f, (float)head_dim / (float)hs);
            float val = (float)pos[r] * freq, fcr = cosf(val), fci = sinf(val);
            for (int v = 0; v < (i < KV ? 2 : 1); v++) {
                float *vec = v == 0 ? q + r * D : k + r * KV;
                float v0 = vec[i], v1 = vec[i + 1];
                vec[i] = v0 * fcr - v1 * fci;
                vec[i + 1] = v0 * fci + v1 * fcr;
            }
        }
    }
}

/* Causal grouped-query attention within each sequence; att (N, D).
 * Each (sequence, head) pair is one task for one thread: scores = Q K^T /
 * sqrt(hs) as an sgemm, a causal softmax per row, att = P V as a second
 * sgemm. Inside the parallel region the OpenMP build of OpenBLAS runs each
 * call on the calling thread alone, which is what we want for these small
 * products. The upper triangle is computed and discarded: cheaper than a
 * scalar loop over the lower one. */
static void attention(data_llama_run *r, const size_t *off, size_t n_seq) {
    const data_llama_config *c = &r->m->c;
    size_t D = (size_t)c->dim, KV = (size_t)c->kv_dim, hs = (size_t)c->head_size;
    size_t n_heads = (size_t)c->n_heads, group = (size_t)(c->n_heads / c->n_kv_heads);
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t task = 0; task < n_seq * n_heads; task++) {
        size_t s = task / n_heads, h = task % n_heads;
        size_t o = off[s], T = off[s + 1] - off[s], kvh = (h / group) * hs;
        int tid = omp_get_thread_num();
        SAE_ASSERT(T <= r->scores_side && tid < r->n_threads);
        float *P = r->scores + (size_t)tid * r->scores_side * r->scores_side;
        sae_gemm(0, 1, T, T, hs, scale, r->q + o * D + h * hs, D, r->k + o * KV + kvh, KV, 0.0f, P, T);
        for (size_t i = 0; i < T; i++) {
            float *row = P + i * T, mx = row[0], sum = 0.0f;
            for (size_t j = 1; j <= i; j++) mx = row[j] > mx ? row[j] : mx;
            for (size_t j = 0; j <= i; j++) sum += (row[j] = expf(row[j] - mx));
            float inv = 1.0f / sum;
            for (size_t j = 0; j <= i; j++) row[j] *= inv;
            for (size_t j = i + 1; j < T; j++) row[j] = 0.0f; /* causal mask */
        }
        sae_gemm(0, 0, T, hs, T, 1.0f, P, T, r->v + o * KV + kvh, KV, 0.0f, r->att + o * D + h * hs, D);
    }
}

void data_llama_begin(data_llama_run *r, const int32_t *tokens, const size_t *off, size_t n_seq) {
    size_t N = off[n_seq], D = (size_t)r->m->c.dim;
    SAE_ASSERT(N <= r->cap);
    for (size_t s = 0; s < n_seq; s++)
        for (size_t i = off[s]; i < off[s + 1]; i++) r->pos[i] = (int)(i - off[s]);
    for (size_t i = 0; i < N; i++)
        memcpy(r->x + i * D, r->m->token_embedding + (size_t)tokens[i] * D, D * sizeof(float));
}

/* One block on the residual stream r->x of N rows, hooks at its four sites. */
static void block(data_llama_run *r, const size_t *off, size_t n_seq, int l, data_llama_hook hook,
                  void *user) {
    const data_llama *m = r->m;
    const data_llama_config *c = &m->c;
    size_t N = off[n_seq], D = (size_t)c->dim, KV = (size_t)c->kv_dim, H = (size_t)c->hidden_dim;
    size_t L = (size_t)l;
    if (hook) hook(l, DATA_SITE_RESID_PRE, r->x, N, user);
    rmsnorm_rows(r->xb, r->x, m->rms_att + L * D, N, D);
    /* projections: (N, D) @ W^T with W stored [out][in] */
    sae_gemm(0, 1, N, D, D, 1.0f, r->xb, D, m->wq + L * D * D, D, 0.0f, r->q, D);
    sae_gemm(0, 1, N, KV, D, 1.0f, r->xb, D, m->wk + L * KV * D, D, 0.0f, r->k, KV);
    sae_gemm(0, 1, N, KV, D, 1.0f, r->xb, D, m->wv + L * KV * D, D, 0.0f, r->v, KV);
    rope_rows(r->q, r->k, r->pos, N, c);
    attention(r, off, n_seq);
    sae_gemm(0, 1, N, D, D, 1.0f, r->att, D, m->wo + L * D * D, D, 0.0f, r->proj, D);
    if (hook) hook(l, DATA_SITE_ATTN_OUT, r->proj, N, user);
    for (size_t i = 0; i < N * D; i++) r->x[i] += r->proj[i];
    rmsnorm_rows(r->xb, r->x, m->rms_ffn + L * D, N, D);
    sae_gemm(0, 1, N, H, D, 1.0f, r->xb, D, m->w1 + L * H * D, D, 0.0f, r->h1, H);
    sae_gemm(0, 1, N, H, D, 1.0f, r->xb, D, m->w3 + L * H * D, D, 0.0f, r->h3, H);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < N * H; i++) {
        float a = r->h1[i];
        r->h1[i] = a / (1.0f + expf(-a)) * r->h3[i]; /* silu(w1 x) * w3 x */
    }
    sae_gemm(0, 1, N, D, H, 1.0f, r->h1, H, m->w2 + L * D * H, H, 0.0f, r->proj, D);
    if (hook) hook(l, DATA_SITE_MLP_OUT, r->proj, N, user);
    for (size_t i = 0; i < N * D; i++) r->x[i] += r->proj[i];
    if (hook) hook(l, DATA_SITE_RESID_POST, r->x, N, user);
}

void data_llama_blocks(data_llama_run *r, const size_t *off, size_t n_seq, int first, int last,
                       data_llama_hook hook, void *user) {
    SAE_ASSERT(off[n_seq] <= r->cap && first >= 0 && last < r->m->c.n_layers);
    for (int l = first; l <= last; l++) block(r, off, n_seq, l, hook, user);
}

float *data_llama_residual(data_llama_run *r) { return r->x; }
size_t data_llama_run_vocab(const data_llama_run *r) { return (size_t)r->m->c.vocab_size; }

void data_llama_end(data_llama_run *r, size_t rows, float *logits) {
    SAE_ASSERT(rows <= r->cap);
    data_llama_logits(r->m, r->x, rows, r->xb, logits);
}

void data_llama_forward(data_llama_run *r, const int32_t *tokens, const size_t *off, size_t n_seq,
                        int last_layer, data_llama_hook hook, void *user, float *logits) {
    const data_llama_config *c = &r->m->c;
    int layers = logits || last_layer < 0 || last_layer >= c->n_layers ? c->n_layers : last_layer + 1;
    data_llama_begin(r, tokens, off, n_seq);
    data_llama_blocks(r, off, n_seq, 0, layers - 1, hook, user);
    if (logits) data_llama_end(r, off[n_seq], logits);
}

void data_llama_logits(const data_llama *m, const float *x, size_t rows, float *normed,
                       float *logits) {
    size_t D = (size_t)m->c.dim, V = (size_t)m->c.vocab_size;
    rmsnorm_rows(normed, x, m->rms_final, rows, D);
    sae_gemm(0, 1, rows, V, D, 1.0f, normed, D, m->wcls, D, 0.0f, logits, V);
}
