/* data/tokenizer.c: llama2.c tokenizer.bin loading and encoding (see
 * tokenizer.h for the format and the algorithm). */
#include "data/tokenizer.h"
#include "common/fileutil.h"
#include "common/mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *str;
    int32_t id;
} sorted_piece;

struct data_tokenizer {
    size_t vocab_size, max_len;
    char **pieces;
    float *scores;
    sorted_piece *sorted; /* by strcmp, for lookups */
};

static int cmp_sorted(const void *a, const void *b) {
    return strcmp(((const sorted_piece *)a)->str, ((const sorted_piece *)b)->str);
}

void data_tokenizer_free(data_tokenizer *t) {
    if (!t) return;
    for (size_t i = 0; t->pieces && i < t->vocab_size; i++) sae_free(t->pieces[i]);
    sae_free(t->pieces);
    sae_free(t->scores);
    sae_free(t->sorted);
    sae_free(t);
}

int data_tokenizer_load(data_tokenizer **out, const char *path, size_t expected_vocab,
                        sae_error *err) {
    *out = NULL;
    int crc = sae_check_input_file(path, "tokenizer", err); /* a directory opens and reads EISDIR */
    if (crc < 0) return crc;
    FILE *f = fopen(path, "rb");
    if (!f) return sae_error_set(err, SAE_ERR_IO, path, "%s", strerror(errno));
    data_tokenizer *t = sae_calloc_n(1, sizeof *t);
    int32_t max_len;
    int rc = SAE_OK;
    if (!t) rc = sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory");
    else if (fread(&max_len, 4, 1, f) != 1 || max_len <= 0 || max_len > 4096)
        rc = sae_error_set(err, SAE_ERR_FORMAT, path,
                           "not a llama2.c tokenizer.bin (bad max_token_length header)");
    size_t cap = expected_vocab ? expected_vocab : 1024;
    if (rc == SAE_OK) {
        t->max_len = (size_t)max_len;
        t->pieces = sae_calloc_n(cap, sizeof *t->pieces);
        t->scores = sae_malloc(cap * sizeof *t->scores);
        if (!t->pieces || !t->scores) rc = sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory");
    }
    while (rc == SAE_OK) {
        float score;
        int32_t len;
        size_t got = fread(&score, 4, 1, f);
        if (got == 0 && feof(f)) break; /* clean end of file */
        if (got != 1 || fread(&len, 4, 1, f) != 1 || len < 0 || len > max_len) {
            rc = sae_error_set(err, SAE_ERR_FORMAT, path, "truncated or damaged at piece %zu",
                               t->vocab_size);
            break;
        }
        if (expected_vocab && t->vocab_size == expected_vocab) {
            rc = sae_error_set(err, SAE_ERR_MISMATCH, path,
                               "has more pieces than the model's vocabulary of %zu; "
                               "is it the tokenizer of another model?", expected_vocab);
            break;
        }
        if (t->vocab_size == cap) {
            cap *= 2;
            char **p = sae_realloc(t->pieces, cap * sizeof *p);
            float *s = p ? sae_realloc(t->scores, cap * sizeof *s) : NULL;
            if (p) t->pieces = p;
            if (s) t->scores = s;
            if (!p || !s) {
                rc = sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory");
                break;
            }
        }
        char *piece = sae_malloc((size_t)len + 1);
        if (!piece) {
            rc = sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory");
            break;
        }
        if (fread(piece, 1, (size_t)len, f) != (size_t)len) {
            sae_free(piece);
            rc = sae_error_set(err, SAE_ERR_FORMAT, path, "truncated at piece %zu", t->vocab_size);
            break;
        }
        piece[len] = 0;
        t->pieces[t->vocab_size] = piece;
        t->scores[t->vocab_size] = score;
        t->vocab_size++;
    }
    fclose(f);
    if (rc == SAE_OK && expected_vocab && t->vocab_size != expected_vocab)
        rc = sae_error_set(err, SAE_ERR_MISMATCH, path,
                           "has %zu pieces but the model's vocabulary has %zu; "
                           "is it the tokenizer of another model?", t->vocab_size, expected_vocab);
    if (rc == SAE_OK && t->vocab_size < 259)
        rc = sae_error_set(err, SAE_ERR_FORMAT, path,
                           "has %zu pieces; a llama2.c vocabulary has at least 3 specials + 256 bytes",
                           t->vocab_size);
    if (rc == SAE_OK) {
        t->sorted = sae_malloc(t->vocab_size * sizeof *t->sorted);
        if (!t->sorted) rc = sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory");
    }
    if (rc < 0) {
        data_tokenizer_free(t);
        return rc;
    }
    for (size_t i = 0; i < t->vocab_size; i++) t->sorted[i] = (sorted_piece){t->pieces[i], (int32_t)i};
    qsort(t->sorted, t->vocab_size, sizeof *t->sorted, cmp_sorted);
    *out = t;
    return SAE_OK;
}

size_t data_tokenizer_vocab_size(const data_tokenizer *t) { return t->vocab_size; }
const char *data_tokenizer_piece(const data_tokenizer *t, int32_t id) { return t->pieces[id]; }
float data_tokenizer_score(const data_tokenizer *t, int32_t id) { return t->scores[id]; }

int32_t data_tokenizer_lookup(const data_tokenizer *t, const char *s) {
    sorted_piece key = {s, 0};
    const sorted_piece *hit = bsearch(&key, t->sorted, t->vocab_size, sizeof key, cmp_sorted);
    return hit ? hit->id : -1;
}

int data_utf8_check(const char *s, size_t n, size_t *bad_offset) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        size_t len;
        unsigned cp;
        if (c == 0) goto bad;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
        else goto bad;
        if (i + len > n) goto bad;
        for (size_t k = 1; k < len; k++) {
            if ((u[i + k] & 0xC0) != 0x80) goto bad;
            cp = (cp << 6) | (u[i + k] & 0x3F);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            goto bad;
        i += len;
        continue;
    bad:
        if (bad_offset) *bad_offset = i;
        return -1;
    }
    return 0;
}

/* --- BPE merges with a heap of candidate pairs ------------------------------- */
typedef struct {
    float score;
    int32_t left, right; /* node indices */
    int32_t id;          /* merged piece */
    uint32_t gen_l, gen_r;
} cand;

typedef struct {
    cand *a;
    size_t n, cap;
} cand_heap;

/* higher score first; on ties the leftmost pair, as run.c's strict '>' scan */
static int cand_before(const cand *x, const cand *y) {
    return x->score > y->score || (x->score == y->score && x->left < y->left);
}

static int heap_push(cand_heap *h, cand c) {
    if (h->n == h->cap) {
        size_t nc = h->cap ? 2 * h->cap : 256;
        cand *na = sae_realloc(h->a, nc * sizeof *na);
        if (!na) return -1;
        h->a = na;
        h->cap = nc;
    }
    size_t i = h->n++;
    while (i > 0 && cand_before(&c, &h->a[(i - 1) / 2])) {
        h->a[i] = h->a[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->a[i] = c;
    return 0;
}

static cand heap_pop(cand_heap *h) {
    cand top = h->a[0], last = h->a[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, b = i;
        const cand *best = &last;
        if (l < h->n && cand_before(&h->a[l], best)) b = l, best = &h->a[l];
        if (r < h->n && cand_before(&h->a[r], best)) b = r;
        if (b == i) break;
        h->a[i] = h->a[b];
        i = b;
    }
    if (h->n) h->a[i] = last;
    return top;
}

typedef struct {
    int32_t *id, *prev, *next;
    uint32_t *gen;
    char *buf; /* concatenation scratch, 2 * max_len + 1 */
} merge_state;

static int push_pair(const data_tokenizer *t, merge_state *s, cand_heap *h, int32_t l) {
    int32_t r = s->next[l];
    if (l < 0 || r < 0) return 0;
    const char *a = t->pieces[s->id[l]], *b = t->pieces[s->id[r]];
    size_t la = strlen(a), lb = strlen(b);
    if (la + lb > 2 * t->max_len) return 0;
    memcpy(s->buf, a, la);
    memcpy(s->buf + la, b, lb + 1);
    int32_t id = data_tokenizer_lookup(t, s->buf);
    if (id < 0 || !(t->scores[id] > -1e10f)) return 0; /* run.c starts its scan at -1e10 */
    cand c = {t->scores[id], l, r, id, s->gen[l], s->gen[r]};
    return heap_push(h, c);
}

int data_tokenizer_encode(const data_tokenizer *t, const char *text, size_t len, int bos,
                          int32_t **ids_out, size_t *n_out, sae_error *err) {
    *ids_out = NULL;
    *n_out = 0;
    size_t cap = len + 3; /* BOS + dummy prefix + at most one piece per byte */
    merge_state s = {0};
    s.id = sae_malloc(cap * sizeof *s.id);
    s.prev = sae_malloc(cap * sizeof *s.prev);
    s.next = sae_malloc(cap * sizeof *s.next);
    s.gen = sae_calloc_n(cap, sizeof *s.gen);
    s.buf = sae_malloc(2 * t->max_len + 8);
    cand_heap h = {0};
    int rc = s.id && s.prev && s.next && s.gen && s.buf ? SAE_OK : SAE_ERR_NOMEM;
    size_t n = 0;
    if (rc == SAE_OK) {
        if (bos) s.id[n++] = DATA_TOKEN_BOS;
        if (len > 0) {
            int32_t dummy = data_tokenizer_lookup(t, " ");
            if (dummy >= 0) s.id[n++] = dummy;
        }
        char cp[5];
        for (size_t i = 0; i < len;) {
            /* one code point: a lead byte and up to 3 continuation bytes */
            size_t k = 1;
            while (i + k < len && k < 4 && (((unsigned char)text[i + k]) & 0xC0) == 0x80) k++;
            memcpy(cp, text + i, k);
            cp[k] = 0;
            int32_t id = data_tokenizer_lookup(t, cp);
            if (id >= 0) s.id[n++] = id;
            else
                for (size_t b = 0; b < k; b++) s.id[n++] = (int32_t)(unsigned char)cp[b] + 3;
            i += k;
        }
        for (size_t i = 0; i < n; i++) {
            s.prev[i] = (int32_t)i - 1;
            s.next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
        }
        for (size_t i = 0; i + 1 < n && rc == SAE_OK; i++)
            if (push_pair(t, &s, &h, (int32_t)i) < 0) rc = SAE_ERR_NOMEM;
    }
    while (rc == SAE_OK && h.n > 0) {
        cand c = heap_pop(&h);
        /* stale if either side has changed or they are no longer neighbours */
        if (s.gen[c.left] != c.gen_l || s.gen[c.right] != c.gen_r || s.next[c.left] != c.right)
            continue;
        s.id[c.left] = c.id;
        s.gen[c.left]++;
        s.gen[c.right] = UINT32_MAX; /* dead */
        int32_t rn = s.next[c.right];
        s.next[c.left] = rn;
        if (rn >= 0) s.prev[rn] = c.left;
        if ((s.prev[c.left] >= 0 && push_pair(t, &s, &h, s.prev[c.left]) < 0) ||
            push_pair(t, &s, &h, c.left) < 0)
            rc = SAE_ERR_NOMEM;
    }
    int32_t *ids = NULL;
    size_t m = 0;
    if (rc == SAE_OK) {
        ids = sae_malloc((n ? n : 1) * sizeof *ids);
        if (!ids) rc = SAE_ERR_NOMEM;
        for (int32_t i = n ? 0 : -1; ids && i >= 0; i = s.next[i]) ids[m++] = s.id[i];
    }
    sae_free(s.id), sae_free(s.prev), sae_free(s.next), sae_free(s.gen), sae_free(s.buf), sae_free(h.a);
    if (rc < 0) return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory encoding text");
    *ids_out = ids;
    *n_out = m;
    return SAE_OK;
}

static int byte_piece(const char *p, unsigned *byte) {
    return strlen(p) == 6 && sscanf(p, "<0x%02X>", byte) == 1;
}

void data_tokenizer_display(const data_tokenizer *t, int32_t id, char *buf, size_t cap) {
    const char *p = t->pieces[id];
    unsigned b;
    if (id == DATA_TOKEN_BOS) snprintf(buf, cap, "<s>");
    else if (id == DATA_TOKEN_EOS) snprintf(buf, cap, "</s>");
    else if (byte_piece(p, &b)) {
        if (b == '\n') snprintf(buf, cap, "\\n");
        else if (b == '\t') snprintf(buf, cap, "\\t");
        else if (b >= 0x20 && b < 0x7F) snprintf(buf, cap, "%c", (char)b);
        else snprintf(buf, cap, "<0x%02X>", b);
    } else if (data_utf8_check(p, strlen(p), NULL) != 0) {
        size_t o = 0; /* not UTF-8: show every byte */
        for (const unsigned char *q = (const unsigned char *)p; *q && o + 7 < cap; q++)
            o += (size_t)snprintf(buf + o, cap - o, "<0x%02X>", *q);
    } else {
        snprintf(buf, cap, "%s", p);
    }
}

const char *data_tokenizer_decode(const data_tokenizer *t, int32_t prev, int32_t id,
                                  char byte_buf[2]) {
    const char *p = t->pieces[id];
    if (prev == DATA_TOKEN_BOS && p[0] == ' ') p++;
    unsigned b;
    if (byte_piece(p, &b)) {
        byte_buf[0] = (char)b;
        byte_buf[1] = 0;
        return byte_buf;
    }
    return p;
}
