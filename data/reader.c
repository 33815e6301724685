/* data/reader.c: double-buffered shuffled reader (see reader.h for the stream
 * definition). One producer thread loads windows; the caller's thread consumes. */
#include "data/reader.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "common/rng.h"

/* RNG stream ids: epoch orders and window orders never share a stream. */
#define STREAM_EPOCH(e) (((uint64_t)(e) << 1) | 0)
#define STREAM_WINDOW(e, w) ((((uint64_t)(e) << 32 ^ (uint64_t)(w)) << 1) | 1)

typedef struct window_slot {
    float *rows;      /* (cap_rows, d) */
    uint32_t *order;  /* serving order, a permutation of [0, n) */
    size_t n;         /* valid rows after dropping non-finite ones */
    uint64_t epoch, window;
    int ready;        /* filled and not yet consumed */
    int rc;           /* load status, with err */
    sae_error err;
    uint64_t skipped;
} window_slot;

struct data_reader {
    data_actfile *f;
    data_reader_params p;
    size_t block_rows, n_blocks, blocks_per_window, windows_per_epoch, cap_rows;
    uint32_t *block_perm; /* producer-owned: order of blocks for prod_epoch */
    uint64_t perm_epoch;

    window_slot slot[2];
    int cur;              /* slot the consumer reads */
    size_t cur_off;       /* next row within the current window */
    uint64_t skipped;

    /* producer state, guarded by mu */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop, thread_started;
    uint64_t prod_epoch, prod_window;
    int prod_slot;
};

data_reader_params data_reader_default_params(void) {
    data_reader_params p = {.buffer_rows = 262144, .seed = 0, .skip_nonfinite = 0};
    return p;
}

static void make_block_perm(data_reader *r, uint64_t epoch) {
    for (size_t i = 0; i < r->n_blocks; i++) r->block_perm[i] = (uint32_t)i;
    sae_rng g;
    sae_rng_seed(&g, r->p.seed, STREAM_EPOCH(epoch));
    sae_rng_shuffle_u32(&g, r->block_perm, r->n_blocks);
    r->perm_epoch = epoch;
}

/* Loads window (epoch, window) into s. Runs on the producer thread (or the
 * caller's, before the thread starts). */
static void load_window(data_reader *r, window_slot *s, uint64_t epoch, uint64_t window) {
    if (r->perm_epoch != epoch) make_block_perm(r, epoch);
    size_t d = r->f->d, n = 0;
    s->rc = SAE_OK;
    s->skipped = 0;
    memset(&s->err, 0, sizeof s->err);
    size_t b0 = (size_t)window * r->blocks_per_window;
    size_t b1 = b0 + r->blocks_per_window < r->n_blocks ? b0 + r->blocks_per_window : r->n_blocks;
    for (size_t b = b0; b < b1 && s->rc == SAE_OK; b++) {
        size_t row0 = (size_t)r->block_perm[b] * r->block_rows;
        size_t cnt = r->f->n - row0 < r->block_rows ? r->f->n - row0 : r->block_rows;
        s->rc = data_actfile_read_rows(r->f, row0, cnt, s->rows + n * d, &s->err);
        if (s->rc < 0) break;
        /* drop non-finite rows by compaction, keeping file order */
        size_t kept = n;
        for (size_t i = 0; i < cnt; i++) {
            float *row = s->rows + (n + i) * d;
            if (data_row_nonfinite(row, d)) {
                if (!r->p.skip_nonfinite) {
                    s->rc = sae_error_set(&s->err, SAE_ERR_NONFINITE, r->f->path,
                                          "row %zu of /activations holds NaN or Inf", row0 + i);
                    break;
                }
                s->skipped++;
                continue;
            }
            if (kept != n + i) memmove(s->rows + kept * d, row, d * sizeof(float));
            kept++;
        }
        n = kept;
    }
    s->n = n;
    for (size_t i = 0; i < n; i++) s->order[i] = (uint32_t)i;
    sae_rng g;
    sae_rng_seed(&g, r->p.seed, STREAM_WINDOW(epoch, window));
    sae_rng_shuffle_u32(&g, s->order, n);
    s->epoch = epoch;
    s->window = window;
}

static void advance(uint64_t *epoch, uint64_t *window, size_t windows_per_epoch) {
    if (++*window == windows_per_epoch) {
        *window = 0;
        ++*epoch;
    }
}

static void *producer_main(void *arg) {
    data_reader *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        window_slot *s = &r->slot[r->prod_slot];
        while (!r->stop && s->ready) pthread_cond_wait(&r->cv, &r->mu);
        if (r->stop) break;
        uint64_t e = r->prod_epoch, w = r->prod_window;
        pthread_mutex_unlock(&r->mu);
        load_window(r, s, e, w); /* the slot is ours alone while not ready */
        pthread_mutex_lock(&r->mu);
        s->ready = 1;
        pthread_cond_broadcast(&r->cv);
        advance(&r->prod_epoch, &r->prod_window, r->windows_per_epoch);
        r->prod_slot ^= 1;
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int data_reader_open(data_reader **out, data_actfile *f, const data_reader_params *p,
                     const data_stream_pos *start, sae_error *err) {
    *out = NULL;
    data_reader *r = sae_calloc_n(1, sizeof *r);
    if (!r) return sae_error_set(err, SAE_ERR_NOMEM, f->path, "out of memory");
    r->f = f;
    r->p = *p;
    /* blocks are whole chunks (cheapest to read) unless a chunk is larger than
     * half the buffer: the buffer size is a promise about memory */
    size_t half = p->buffer_rows / 2 ? p->buffer_rows / 2 : 1;
    r->block_rows = f->chunk_rows ? f->chunk_rows : 1024;
    if (r->block_rows > half) r->block_rows = half;
    r->n_blocks = (f->n + r->block_rows - 1) / r->block_rows;
    r->blocks_per_window = half / r->block_rows;
    if (r->blocks_per_window > r->n_blocks) r->blocks_per_window = r->n_blocks;
    r->windows_per_epoch = (r->n_blocks + r->blocks_per_window - 1) / r->blocks_per_window;
    r->cap_rows = r->blocks_per_window * r->block_rows;
    r->block_perm = sae_malloc(r->n_blocks * sizeof *r->block_perm);
    r->perm_epoch = UINT64_MAX;
    int ok = r->block_perm != NULL;
    for (int i = 0; i < 2 && ok; i++) {
        r->slot[i].rows = sae_alloc(r->cap_rows * f->d * sizeof(float));
        r->slot[i].order = sae_malloc(r->cap_rows * sizeof(uint32_t));
        ok = r->slot[i].rows && r->slot[i].order;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    if (!ok) {
        size_t rows = 2 * r->cap_rows; /* read before the close frees r */
        data_reader_close(r);
        return sae_error_set(err, SAE_ERR_NOMEM, f->path,
                             "out of memory for a %zu-row shuffle buffer", rows);
    }
    data_stream_pos pos = start ? *start : (data_stream_pos){0, 0, 0};
    if (pos.window >= r->windows_per_epoch) {
        data_reader_close(r);
        return sae_error_set(err, SAE_ERR_MISMATCH, f->path,
                             "stream position (window %llu) does not fit this file and buffer size",
                             (unsigned long long)pos.window);
    }
    /* The first window is loaded here, so a resume lands on its exact row. */
    load_window(r, &r->slot[0], pos.epoch, pos.window);
    r->slot[0].ready = 1;
    r->cur = 0;
    r->cur_off = pos.offset;
    if (r->slot[0].rc < 0) {
        int rc = r->slot[0].rc;
        sae_error_set(err, r->slot[0].err.code, r->slot[0].err.subject, "%s", r->slot[0].err.msg);
        data_reader_close(r);
        return rc;
    }
    r->skipped = r->slot[0].skipped;
    r->prod_epoch = pos.epoch;
    r->prod_window = pos.window;
    advance(&r->prod_epoch, &r->prod_window, r->windows_per_epoch);
    r->prod_slot = 1;
    if (pthread_create(&r->thread, NULL, producer_main, r) != 0) {
        data_reader_close(r);
        return sae_error_set(err, SAE_ERR_NOMEM, f->path, "cannot start the reader thread");
    }
    r->thread_started = 1;
    *out = r;
    return SAE_OK;
}

/* Moves the consumer to the other slot, waiting for the producer. */
static int next_window(data_reader *r, sae_error *err) {
    pthread_mutex_lock(&r->mu);
    r->slot[r->cur].ready = 0;
    pthread_cond_broadcast(&r->cv);
    r->cur ^= 1;
    r->cur_off = 0;
    while (!r->slot[r->cur].ready) pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
    window_slot *s = &r->slot[r->cur];
    if (s->rc < 0) {
        sae_error_set(err, s->err.code, s->err.subject, "%s", s->err.msg);
        return s->rc;
    }
    r->skipped += s->skipped;
    return SAE_OK;
}

int data_reader_next(data_reader *r, float *x, size_t B, sae_error *err) {
    size_t d = r->f->d;
    size_t empty_windows = 0;
    for (size_t i = 0; i < B;) {
        window_slot *s = &r->slot[r->cur];
        if (r->cur_off >= s->n) {
            /* a whole epoch of empty windows means no usable row exists */
            if (s->n == 0 && ++empty_windows > r->windows_per_epoch)
                return sae_error_set(err, SAE_ERR_NONFINITE, r->f->path,
                                     "every row of /activations holds NaN or Inf");
            int rc = next_window(r, err);
            if (rc < 0) return rc;
            continue;
        }
        size_t take = s->n - r->cur_off < B - i ? s->n - r->cur_off : B - i;
        for (size_t t = 0; t < take; t++)
            memcpy(x + (i + t) * d, s->rows + (size_t)s->order[r->cur_off + t] * d,
                   d * sizeof(float));
        r->cur_off += take;
        i += take;
    }
    return SAE_OK;
}

data_stream_pos data_reader_pos(const data_reader *r) {
    const window_slot *s = &r->slot[r->cur];
    data_stream_pos p = {s->epoch, s->window, r->cur_off};
    return p;
}

uint64_t data_reader_skipped(const data_reader *r) { return r->skipped; }

void data_reader_close(data_reader *r) {
    if (!r) return;
    if (r->thread_started) {
        pthread_mutex_lock(&r->mu);
        r->stop = 1;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
    }
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    for (int i = 0; i < 2; i++) {
        sae_free(r->slot[i].rows);
        sae_free(r->slot[i].order);
    }
    sae_free(r->block_perm);
    sae_free(r);
}
