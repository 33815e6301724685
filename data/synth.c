/* data/synth.c: planted-dictionary generator (see synth.h for the model). */
#include "data/synth.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "common/rng.h"
#include "data/actfile.h"

#define CHUNK_ROWS 2048    /* rows per RNG stream */
#define CHUNKS_PER_WRITE 32
#define MAX_ACTIVE_CAP 256

data_synth_params data_synth_default_params(void) {
    data_synth_params p = {.n = 200000, .d = 64, .features = 256, .active = 4, .seed = 0,
                           .alpha = 0.5, .noise = 0.01, .token_noise = 0.1, .doc_len = 128,
                           .float16 = 0};
    return p;
}

static const char *const SYL_ROMAJI[40] = {
    "ka", "ki", "ku", "ke", "ko", "sa", "shi", "su", "se", "so", "ta", "chi", "tsu", "te",
    "to", "na", "ni", "nu", "ne", "no", "ha", "hi", "fu", "he", "ho", "ma", "mi", "mu",
    "me", "mo", "ya", "yu", "yo", "ra", "ri", "ru", "re", "ro", "wa", "ga"};
static const char *const SYL_KANA[40] = {
    "か", "き", "く", "け", "こ", "さ", "し", "す", "せ", "そ", "た", "ち", "つ", "て",
    "と", "な", "に", "ぬ", "ね", "の", "は", "ひ", "ふ", "へ", "ほ", "ま", "み", "む",
    "め", "も", "や", "ゆ", "よ", "ら", "り", "る", "れ", "ろ", "わ", "が"};

void data_synth_word(char *buf, size_t cap, size_t i) {
    if (i % 8 == 7) { /* hiragana word ending in ん, unique among the kana words */
        size_t j = i / 8;
        if (j < 1600)
            snprintf(buf, cap, "%s%sん", SYL_KANA[j % 40], SYL_KANA[j / 40]);
        else
            snprintf(buf, cap, "%s%s%sん", SYL_KANA[j % 40], SYL_KANA[(j / 40) % 40],
                     SYL_KANA[(j / 1600) % 40]);
        return;
    }
    if (i < 64000)
        snprintf(buf, cap, "%s%s%s", SYL_ROMAJI[i % 40], SYL_ROMAJI[(i / 40) % 40],
                 SYL_ROMAJI[i / 1600]);
    else
        snprintf(buf, cap, "%s%s%s%zu", SYL_ROMAJI[i % 40], SYL_ROMAJI[(i / 40) % 40],
                 SYL_ROMAJI[(i / 1600) % 40], i / 64000);
}

/* Vose's alias method: O(1) draws from a fixed discrete distribution. */
typedef struct {
    size_t n;
    float *prob;
    uint32_t *alias;
} alias_table;

static int alias_build(alias_table *t, const double *w, size_t n) {
    t->n = n;
    t->prob = sae_malloc(n * sizeof *t->prob);
    t->alias = sae_malloc(n * sizeof *t->alias);
    double *scaled = sae_malloc(n * sizeof *scaled);
    uint32_t *small = sae_malloc(n * sizeof *small), *large = sae_malloc(n * sizeof *large);
    int ok = t->prob && t->alias && scaled && small && large;
    if (ok) {
        double sum = 0;
        for (size_t i = 0; i < n; i++) sum += w[i];
        size_t ns = 0, nl = 0;
        for (size_t i = 0; i < n; i++) {
            scaled[i] = w[i] * (double)n / sum;
            if (scaled[i] < 1.0) small[ns++] = (uint32_t)i;
            else large[nl++] = (uint32_t)i;
        }
        while (ns && nl) {
            uint32_t s = small[--ns], l = large[--nl];
            t->prob[s] = (float)scaled[s];
            t->alias[s] = l;
            scaled[l] -= 1.0 - scaled[s];
            if (scaled[l] < 1.0) small[ns++] = l;
            else large[nl++] = l;
        }
        while (nl) t->prob[large[--nl]] = 1.0f;
        while (ns) t->prob[small[--ns]] = 1.0f;
    }
    sae_free(scaled);
    sae_free(small);
    sae_free(large);
    return ok ? SAE_OK : SAE_ERR_NOMEM;
}

static uint32_t alias_draw(const alias_table *t, sae_rng *g) {
    uint32_t i = (uint32_t)sae_rng_below(g, t->n);
    return sae_rng_uniform(g) < t->prob[i] ? i : t->alias[i];
}

static void alias_free(alias_table *t) {
    sae_free(t->prob);
    sae_free(t->alias);
}

static size_t poisson(sae_rng *g, double lambda) {
    /* Knuth's method; lambda is small (tens) here */
    double L = exp(-lambda), p = 1.0;
    size_t k = 0;
    do {
        k++;
        p *= sae_rng_uniform_open(g);
    } while (p > L);
    return k - 1;
}

/* Rows [chunk*CHUNK_ROWS, +count) into x (count x d) and tok (count). */
static void make_chunk(const data_synth_params *p, const float *truth, const alias_table *at,
                       uint64_t chunk, size_t count, float *x, int32_t *tok) {
    sae_rng g;
    /* stream 0 made the dictionary; the held-out split draws rows from streams
     * no training file of any practical size reaches */
    uint64_t stream = chunk + 1 + (p->heldout ? (1ULL << 40) : 0);
    sae_rng_seed(&g, p->seed, stream);
    uint32_t active[MAX_ACTIVE_CAP];
    size_t d = p->d;
    for (size_t r = 0; r < count; r++) {
        float *row = x + r * d;
        for (size_t j = 0; j < d; j++) row[j] = (float)p->noise * sae_rng_normal(&g);
        size_t k = poisson(&g, p->active);
        if (k < 1) k = 1;
        if (k > MAX_ACTIVE_CAP) k = MAX_ACTIVE_CAP;
        if (k > p->features) k = p->features;
        float best = -1.0f;
        uint32_t best_i = 0;
        for (size_t a = 0; a < k; a++) {
            uint32_t f;
            int dup;
            do { /* without replacement: redraw duplicates */
                f = alias_draw(at, &g);
                dup = 0;
                for (size_t b = 0; b < a; b++) dup |= active[b] == f;
            } while (dup);
            active[a] = f;
            float m = 0.5f + sae_rng_uniform(&g);
            const float *fv = truth + (size_t)f * d;
            for (size_t j = 0; j < d; j++) row[j] += m * fv[j];
            if (m > best) {
                best = m;
                best_i = f;
            }
        }
        if (sae_rng_uniform(&g) < p->token_noise) best_i = (uint32_t)sae_rng_below(&g, p->features);
        tok[r] = (int32_t)best_i;
    }
}

static int make_truth(const data_synth_params *p, float *truth) {
    sae_rng g;
    sae_rng_seed(&g, p->seed, 0);
    for (size_t i = 0; i < p->features; i++) {
        float *f = truth + i * p->d;
        double nn = 0;
        for (size_t j = 0; j < p->d; j++) {
            f[j] = sae_rng_normal(&g);
            nn += (double)f[j] * f[j];
        }
        float s = (float)(1.0 / sqrt(nn));
        for (size_t j = 0; j < p->d; j++) f[j] *= s;
    }
    return SAE_OK;
}

static int write_meta(data_actwriter *w, const data_synth_params *p, const float *truth,
                      sae_error *err) {
    size_t n_docs = (p->n + p->doc_len - 1) / p->doc_len;
    int64_t *off = sae_malloc((n_docs + 1) * sizeof *off);
    const char **labels = sae_malloc(n_docs * sizeof *labels);
    char **vocab = sae_calloc_n(p->features, sizeof *vocab);
    int rc = off && labels && vocab ? SAE_OK : SAE_ERR_NOMEM;
    for (size_t i = 0; rc == SAE_OK && i < p->features; i++) {
        char word[64];
        data_synth_word(word, sizeof word, i);
        if (!(vocab[i] = sae_strdup(word))) rc = SAE_ERR_NOMEM;
    }
    if (rc == SAE_OK) {
        for (size_t i = 0; i <= n_docs; i++) {
            size_t o = i * p->doc_len;
            off[i] = (int64_t)(o < p->n ? o : p->n);
        }
        for (size_t i = 0; i < n_docs; i++) labels[i] = "synth";
        rc = data_actwriter_set_docs(w, off, n_docs, labels, err);
    } else {
        sae_error_set(err, rc, NULL, "out of memory");
    }
    if (rc == SAE_OK) rc = data_actwriter_set_vocab(w, (const char *const *)vocab, p->features, err);
    if (rc == SAE_OK) rc = data_actwriter_set_truth(w, truth, p->features, err);
    for (size_t i = 0; vocab && i < p->features; i++) sae_free(vocab[i]);
    sae_free(vocab);
    sae_free(labels);
    sae_free(off);
    return rc;
}

int data_synth_write(const char *path, const data_synth_params *p, sae_error *err) {
    if (p->n == 0 || p->d == 0 || p->features == 0 || p->active <= 0 || p->doc_len == 0)
        return sae_error_set(err, SAE_ERR_ARG, path, "n, d, features, active must be positive");
    if (p->active > p->features)
        return sae_error_set(err, SAE_ERR_ARG, path, "--active %.3g exceeds --features %zu",
                             p->active, p->features);
    if (p->active > MAX_ACTIVE_CAP / 2)
        return sae_error_set(err, SAE_ERR_ARG, path, "--active must be at most %d",
                             MAX_ACTIVE_CAP / 2);
    float *truth = sae_alloc(p->features * p->d * sizeof(float));
    double *w = sae_malloc(p->features * sizeof *w);
    size_t batch_rows = (size_t)CHUNK_ROWS * CHUNKS_PER_WRITE;
    float *x = sae_alloc(batch_rows * p->d * sizeof(float));
    int32_t *tok = sae_malloc(batch_rows * sizeof *tok);
    alias_table at = {0};
    data_actwriter *wr = NULL;
    int rc = truth && w && x && tok ? SAE_OK : sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory");
    if (rc == SAE_OK) {
        make_truth(p, truth);
        for (size_t i = 0; i < p->features; i++) w[i] = pow((double)(i + 1), -p->alpha);
        rc = alias_build(&at, w, p->features);
        if (rc < 0) sae_error_set(err, rc, path, "out of memory");
    }
    if (rc == SAE_OK) {
        data_actwriter_opts o = {.d = p->d, .float16 = p->float16, .model = "synthetic",
                                 .hook = "synthetic", .layer = -1};
        rc = data_actwriter_open(&wr, path, &o, err);
    }
    for (size_t row0 = 0; rc == SAE_OK && row0 < p->n; row0 += batch_rows) {
        size_t rows = p->n - row0 < batch_rows ? p->n - row0 : batch_rows;
        long n_chunks = (long)((rows + CHUNK_ROWS - 1) / CHUNK_ROWS);
#pragma omp parallel for schedule(dynamic, 1)
        for (long c = 0; c < n_chunks; c++) {
            size_t r0 = (size_t)c * CHUNK_ROWS;
            size_t cnt = rows - r0 < CHUNK_ROWS ? rows - r0 : CHUNK_ROWS;
            make_chunk(p, truth, &at, (row0 + r0) / CHUNK_ROWS, cnt, x + r0 * p->d, tok + r0);
        }
        rc = data_actwriter_append(wr, x, tok, rows, err);
    }
    if (rc == SAE_OK) rc = write_meta(wr, p, truth, err);
    if (wr) {
        if (rc == SAE_OK) rc = data_actwriter_finish(wr, err);
        else data_actwriter_abort(wr);
    }
    alias_free(&at);
    sae_free(truth);
    sae_free(x);
    sae_free(w);
    sae_free(tok);
    return rc;
}
