/* tests/testutil.c: see testutil.h. Bad files are made with the raw HDF5 API
 * so they can break the schema in ways the toolkit's writer never would. */
#include "tests/testutil.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/actfile.h"
#include "data/h5.h"
#include "data/llama.h"

const char *tu_shared_dir(const char *compiled) {
    static char dir[1024];
    const char *env = getenv("SAE_SHARED");
    snprintf(dir, sizeof dir, "%s", env && *env ? env : compiled);
    return dir;
}

int tu_have_shared_models(const char *shared) {
    char p[1200];
    snprintf(p, sizeof p, "%s/models/jaen-6m/model.bin", shared);
    FILE *f = fopen(p, "rb");
    if (f) fclose(f);
    return f != NULL;
}

const char *tu_tmpdir(void) {
    static char dir[512];
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/saetest.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        abort();
    }
    return dir;
}

const char *tu_path(const char *dir, const char *name) {
    static char buf[8][1024];
    static int i;
    i = (i + 1) % 8;
    snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
    return buf[i];
}

int tu_write_acts(const char *path, size_t n, size_t d, size_t v, size_t doc_len, int f16,
                  size_t chunk_rows, const size_t *nan_rows, size_t n_nan) {
    sae_error err = {0};
    data_actwriter *w;
    data_actwriter_opts o = {.d = d, .float16 = f16, .model = "test", .hook = "resid_post",
                             .layer = 3, .chunk_rows = chunk_rows};
    if (data_actwriter_open(&w, path, &o, &err) < 0) return -1;
    float *x = malloc(n * d * sizeof(float));
    int32_t *tok = malloc(n * sizeof(int32_t));
    for (size_t r = 0; r < n; r++) {
        x[r * d] = (float)r;
        for (size_t c = 1; c < d; c++) x[r * d + c] = (float)r * 0.001f * (float)(c + 1);
        tok[r] = (int32_t)(r % v);
    }
    for (size_t i = 0; i < n_nan; i++) x[nan_rows[i] * d + (d > 1 ? 1 : 0)] = NAN;
    /* two appends exercise the extendible dataset */
    int rc = data_actwriter_append(w, x, tok, n / 2, &err);
    if (rc == 0) rc = data_actwriter_append(w, x + (n / 2) * d, tok + n / 2, n - n / 2, &err);
    size_t nd = (n + doc_len - 1) / doc_len;
    int64_t *off = malloc((nd + 1) * sizeof *off);
    const char **labels = malloc(nd * sizeof *labels);
    for (size_t i = 0; i <= nd; i++) off[i] = (int64_t)(i * doc_len < n ? i * doc_len : n);
    for (size_t i = 0; i < nd; i++) labels[i] = i % 2 ? "ja" : "en";
    if (rc == 0) rc = data_actwriter_set_docs(w, off, nd, labels, &err);
    char **vocab = malloc(v * sizeof *vocab);
    for (size_t i = 0; i < v; i++) {
        vocab[i] = malloc(32);
        snprintf(vocab[i], 32, "w%zu", i);
    }
    if (rc == 0) rc = data_actwriter_set_vocab(w, (const char *const *)vocab, v, &err);
    if (rc == 0) rc = data_actwriter_finish(w, &err);
    else data_actwriter_abort(w);
    for (size_t i = 0; i < v; i++) free(vocab[i]);
    free(vocab), free(labels), free(off), free(tok), free(x);
    return rc;
}

static hid_t new_file(const char *path) { return H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT); }

static void put_f32(hid_t f, const char *name, int rank, hsize_t d0, hsize_t d1) {
    hsize_t dims[2] = {d0, d1};
    size_t n = (size_t)(d0 * (rank > 1 ? d1 : 1));
    float *a = calloc(n ? n : 1, sizeof(float));
    for (size_t i = 0; i < n; i++) a[i] = (float)(i % 7);
    data_h5_write_f32(f, name, a, rank, dims, 0, "", NULL);
    free(a);
}

static void put_i64(hid_t f, const char *name, const int64_t *v, size_t n) {
    data_h5_write_i64(f, name, v, n, "", NULL);
}

size_t tu_write_bad_files(const char *dir, const char ***names_out, const char ***phrases_out) {
    static const char *names[32], *phrases[32];
    size_t n = 0;
    hid_t f;
    data_h5_init();
#define BAD(nm, phrase) (names[n] = nm, phrases[n] = phrase, n++, tu_path(dir, nm ".h5"))
    /* not HDF5 at all */
    FILE *t = fopen(BAD("text", "not an HDF5 file"), "w");
    fputs("this is not an HDF5 file\n", t);
    fclose(t);
    t = fopen(BAD("empty", "empty file"), "w");
    fclose(t);
    f = new_file(BAD("no_acts", "missing /activations"));
    put_f32(f, "other", 2, 10, 4);
    H5Fclose(f);
    f = new_file(BAD("acts_1d", "must be 2-D"));
    put_f32(f, "activations", 1, 10, 0);
    H5Fclose(f);
    f = new_file(BAD("acts_int", "must be float32 or float16"));
    {
        int32_t a[40] = {0};
        hsize_t dims[2] = {10, 4};
        hid_t sp = H5Screate_simple(2, dims, NULL);
        hid_t ds = H5Dcreate2(f, "activations", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, a);
        H5Dclose(ds), H5Sclose(sp);
    }
    H5Fclose(f);
    f = new_file(BAD("acts_empty", "is empty"));
    put_f32(f, "activations", 2, 0, 4);
    H5Fclose(f);
    f = new_file(BAD("offsets_decreasing", "must be increasing"));
    put_f32(f, "activations", 2, 10, 4);
    {
        int64_t off[4] = {0, 6, 3, 10};
        put_i64(f, "doc_offsets", off, 4);
    }
    H5Fclose(f);
    f = new_file(BAD("offsets_short", "must end at N"));
    put_f32(f, "activations", 2, 10, 4);
    {
        int64_t off[3] = {0, 4, 8};
        put_i64(f, "doc_offsets", off, 3);
    }
    H5Fclose(f);
    f = new_file(BAD("tokens_length", "/tokens has 9 rows, expected 10"));
    put_f32(f, "activations", 2, 10, 4);
    {
        int32_t tok[9] = {0};
        data_h5_write_i32(f, "tokens", tok, 9, "", NULL);
    }
    H5Fclose(f);
    f = new_file(BAD("tokens_range", "outside the vocabulary"));
    put_f32(f, "activations", 2, 10, 4);
    {
        int32_t tok[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
        const char *voc[3] = {"a", "b", "c"};
        data_h5_write_i32(f, "tokens", tok, 10, "", NULL);
        data_h5_write_strings(f, "vocab", voc, 3, "", NULL);
    }
    H5Fclose(f);
    f = new_file(BAD("dmodel_attr", "disagrees with /activations width"));
    put_f32(f, "activations", 2, 10, 4);
    data_h5_set_attr_i64(f, "d_model", 8);
    H5Fclose(f);
    f = new_file(BAD("unembed_shape", "/unembed"));
    put_f32(f, "activations", 2, 10, 4);
    put_f32(f, "unembed", 2, 3, 5);
    H5Fclose(f);
    /* a valid file cut in half: the header survives, the data does not */
    {
        const char *full = tu_path(dir, "full_for_truncation.h5");
        tu_write_acts(full, 4096, 64, 10, 128, 0, 256, NULL, 0);
        FILE *in = fopen(full, "rb");
        fseek(in, 0, SEEK_END);
        long sz = ftell(in);
        fseek(in, 0, SEEK_SET);
        char *buf = malloc((size_t)sz);
        size_t got = fread(buf, 1, (size_t)sz, in);
        fclose(in);
        FILE *out = fopen(BAD("truncated", "truncated or damaged"), "wb");
        fwrite(buf, 1, got / 2, out);
        fclose(out);
        free(buf);
        remove(full);
    }
#undef BAD
    *names_out = names;
    *phrases_out = phrases;
    return n;
}

/* --- a tiny random llama2.c model and tokenizer, for tests that must not
 * depend on ../shared ----------------------------------------------------------- */
static int write_tokenizer(const char *path, size_t n_pieces) {
    static const char *extra[] = {" ", " t", "th", "he", " the", "in", "an", "er", "on", " a",
                                  "re", "at", "en", "nd", "ed"};
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int32_t max_len = 8;
    fwrite(&max_len, 4, 1, f);
    for (size_t i = 0; i < n_pieces; i++) {
        char piece[16];
        float score = 0.0f;
        if (i == 0) snprintf(piece, sizeof piece, "<unk>");
        else if (i == 1) snprintf(piece, sizeof piece, "\n<s>\n");
        else if (i == 2) snprintf(piece, sizeof piece, "\n</s>\n");
        else if (i < 259) snprintf(piece, sizeof piece, "<0x%02X>", (unsigned)(i - 3));
        else if (i < 259 + 26) snprintf(piece, sizeof piece, "%c", (char)('a' + (i - 259))), score = -1.0f;
        else snprintf(piece, sizeof piece, "%s", extra[(i - 285) % 15]), score = -(float)(i - 285) * 0.1f;
        int32_t len = (int32_t)strlen(piece);
        fwrite(&score, 4, 1, f);
        fwrite(&len, 4, 1, f);
        fwrite(piece, 1, (size_t)len, f);
    }
    return fclose(f);
}

int tu_write_tiny_llama(const char *dir) {
    int32_t h[7] = {16, 32, 2, 4, 2, 300, 32}; /* dim, hidden, layers, heads, kv heads, vocab, seq */
    size_t D = 16, H = 32, L = 2, V = 300, S = 32, KV = 8, hs = 4;
    size_t floats = V * D + L * D + L * D * D + 2 * L * KV * D + L * D * D + L * D + 3 * L * H * D + D + S * hs;
    float *w = malloc(floats * sizeof *w);
    uint32_t x = 7;
    for (size_t i = 0; i < floats; i++) {
        x = x * 1664525u + 1013904223u;
        w[i] = ((float)(x >> 8) / 16777216.0f - 0.5f) * 0.5f;
    }
    const char *model = tu_path(dir, "tiny.bin");
    FILE *f = fopen(model, "wb");
    if (!f) return -1;
    fwrite(h, 4, 7, f);
    fwrite(w, 4, floats, f);
    fclose(f);
    /* the same, cut short */
    f = fopen(tu_path(dir, "tiny_trunc.bin"), "wb");
    fwrite(h, 4, 7, f);
    fwrite(w, 4, floats - 25, f);
    fclose(f);
    free(w);
    if (write_tokenizer(tu_path(dir, "tiny_tok.bin"), 300) || write_tokenizer(tu_path(dir, "tiny_tok290.bin"), 290))
        return -1;
    /* corpora */
    f = fopen(tu_path(dir, "good.jsonl"), "w");
    fputs("{\"text\": \"the cat sat on the mat\", \"label\": \"en\"}\n\n"
          "{\"text\": \"みかん and きりん\", \"label\": \"ja\"}\n"
          "{\"text\": \"another document without a label, long enough to need two windows of "
          "thirty-two tokens each: the end\", \"id\": 7}\n", f); /* an extra key: /doc_meta */
    fclose(f);
    f = fopen(tu_path(dir, "good.txt"), "w");
    fputs("first document\nstill the first\n\n\nsecond document\n", f);
    fclose(f);
    f = fopen(tu_path(dir, "bad_utf8.txt"), "w");
    fputs("fine text\n\nbroken \xff\xfe text\n", f);
    fclose(f);
    f = fopen(tu_path(dir, "empty.txt"), "w");
    fputs("\n\n   \n", f);
    fclose(f);
    /* a valid activation file with /activations only: no tokens, no vocab */
    hid_t bare = H5Fcreate(tu_path(dir, "bare.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    put_f32(bare, "activations", 2, 600, 16);
    H5Fclose(bare);
    f = fopen(tu_path(dir, "bad.jsonl"), "w");
    fputs("{\"text\": \"ok\"}\n{\"text\": 5}\n", f);
    fclose(f);
    return 0;
}

/* --- the reference forward: one token at a time, KV cache, double
 * accumulation (see testutil.h) ----------------------------------------------- */
int tu_ref_init(tu_ref *r, const data_llama *m, size_t T) {
    size_t D = (size_t)m->c.dim, L = (size_t)m->c.n_layers, V = (size_t)m->c.vocab_size;
    size_t S = (size_t)m->c.seq_len, KV = (size_t)m->c.kv_dim;
    *r = (tu_ref){m, calloc(L * S * KV, sizeof(double)), calloc(L * S * KV, sizeof(double)),
                  calloc(L * 4 * T * D, 4), calloc(T * V, 4), T};
    if (T > S || !r->kc || !r->vc || !r->sites || !r->logits) {
        tu_ref_free(r);
        return -1;
    }
    return 0;
}

void tu_ref_free(tu_ref *r) {
    free(r->kc), free(r->vc), free(r->sites), free(r->logits);
    memset(r, 0, sizeof *r);
}

static void ref_matvec(float *out, const float *x, const float *w, size_t n, size_t d) {
    for (size_t i = 0; i < d; i++) {
        double a = 0;
        for (size_t j = 0; j < n; j++) a += (double)w[i * n + j] * x[j];
        out[i] = (float)a;
    }
}

static void ref_rmsnorm(float *o, const float *x, const float *w, size_t n) {
    double ss = 0;
    for (size_t j = 0; j < n; j++) ss += (double)x[j] * x[j];
    double s = 1.0 / sqrt(ss / (double)n + 1e-5);
    for (size_t j = 0; j < n; j++) o[j] = (float)(w[j] * s * x[j]);
}

void tu_ref_run(tu_ref *r, const int32_t *tok, size_t T) {
    const data_llama *m = r->m;
    const data_llama_config *c = &m->c;
    size_t D = (size_t)c->dim, KV = (size_t)c->kv_dim, H = (size_t)c->hidden_dim, L = (size_t)c->n_layers;
    size_t hs = (size_t)c->head_size, V = (size_t)c->vocab_size, S = (size_t)c->seq_len;
    float *x = malloc(D * 4), *xb = malloc(D * 4), *q = malloc(D * 4), *k = malloc(KV * 4),
          *v = malloc(KV * 4), *att = malloc(D * 4), *o = malloc(D * 4), *h1 = malloc(H * 4),
          *h3 = malloc(H * 4);
    double *sc = malloc(S * sizeof(double));
    for (size_t t = 0; t < T; t++) {
        memcpy(x, m->token_embedding + (size_t)tok[t] * D, D * 4);
        for (size_t l = 0; l < L; l++) {
#define SITE(s) (r->sites + ((l * 4 + (s)) * r->T + t) * D)
            memcpy(SITE(0), x, D * 4);
            ref_rmsnorm(xb, x, m->rms_att + l * D, D);
            ref_matvec(q, xb, m->wq + l * D * D, D, D);
            ref_matvec(k, xb, m->wk + l * KV * D, D, KV);
            ref_matvec(v, xb, m->wv + l * KV * D, D, KV);
            for (size_t i = 0; i < D; i += 2) { /* RoPE, adjacent pairs */
                double freq = 1.0 / pow(10000.0, (double)(i % hs) / (double)hs);
                double ang = (double)t * freq, cr = cos(ang), ci = sin(ang);
                float q0 = q[i], q1 = q[i + 1];
                q[i] = (float)(q0 * cr - q1 * ci), q[i + 1] = (float)(q0 * ci + q1 * cr);
                if (i < KV) {
                    float k0 = k[i], k1 = k[i + 1];
                    k[i] = (float)(k0 * cr - k1 * ci), k[i + 1] = (float)(k0 * ci + k1 * cr);
                }
            }
            for (size_t i = 0; i < KV; i++) {
                r->kc[(l * S + t) * KV + i] = k[i];
                r->vc[(l * S + t) * KV + i] = v[i];
            }
            size_t group = (size_t)(c->n_heads / c->n_kv_heads);
            for (size_t h = 0; h < (size_t)c->n_heads; h++) {
                size_t kvh = (h / group) * hs;
                double mx = -1e300, sum = 0;
                for (size_t j = 0; j <= t; j++) {
                    double a = 0;
                    for (size_t i = 0; i < hs; i++) a += q[h * hs + i] * r->kc[(l * S + j) * KV + kvh + i];
                    sc[j] = a / sqrt((double)hs);
                    if (sc[j] > mx) mx = sc[j];
                }
                for (size_t j = 0; j <= t; j++) sum += (sc[j] = exp(sc[j] - mx));
                for (size_t i = 0; i < hs; i++) {
                    double a = 0;
                    for (size_t j = 0; j <= t; j++) a += sc[j] / sum * r->vc[(l * S + j) * KV + kvh + i];
                    att[h * hs + i] = (float)a;
                }
            }
            ref_matvec(o, att, m->wo + l * D * D, D, D);
            memcpy(SITE(1), o, D * 4);
            for (size_t i = 0; i < D; i++) x[i] += o[i];
            ref_rmsnorm(xb, x, m->rms_ffn + l * D, D);
            ref_matvec(h1, xb, m->w1 + l * H * D, D, H);
            ref_matvec(h3, xb, m->w3 + l * H * D, D, H);
            for (size_t i = 0; i < H; i++) h1[i] = (float)(h1[i] / (1.0 + exp(-(double)h1[i])) * h3[i]);
            ref_matvec(o, h1, m->w2 + l * D * H, H, D);
            memcpy(SITE(2), o, D * 4);
            for (size_t i = 0; i < D; i++) x[i] += o[i];
            memcpy(SITE(3), x, D * 4);
#undef SITE
        }
        ref_rmsnorm(xb, x, m->rms_final, D);
        ref_matvec(r->logits + t * V, xb, m->wcls, D, V);
    }
    free(x), free(xb), free(q), free(k), free(v), free(att), free(o), free(h1), free(h3), free(sc);
}
