/* data/reader.h: shuffled, streamed training batches from an activation file.
 *
 * Memory stays bounded whatever the file size: at most `buffer_rows` rows are
 * held, as two halves. A background thread fills one half (the next "window")
 * while training consumes the other, so disk reads overlap compute.
 *
 * The stream is a pure function of (file, seed, buffer size), which is what
 * lets a run resume bit for bit:
 *   - the file is cut into blocks of whole HDF5 chunks;
 *   - epoch e visits the blocks in an order shuffled by (seed, e);
 *   - a window is the next buffer_rows/2 rows' worth of blocks in that order;
 *     its rows are loaded, rows with NaN/Inf dropped (when allowed), and
 *     served in an order shuffled by (seed, e, window).
 * Its position is the triple (epoch, window, offset), small enough to store
 * in a checkpoint and cheap to seek to.
 *
 *     data_reader *r;
 *     data_reader_params p = data_reader_default_params();
 *     data_reader_open(&r, file, &p, NULL, &err);
 *     while (training) data_reader_next(r, batch, B, &err);   // batch: B x d
 *     data_stream_pos pos = data_reader_pos(r);             // -> checkpoint
 *     data_reader_close(r);
 */
#ifndef SAE_DATA_READER_H
#define SAE_DATA_READER_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "data/actfile.h"

typedef struct data_reader_params {
    size_t buffer_rows;  /* rows held in memory in all (two halves) */
    uint64_t seed;
    int skip_nonfinite;  /* drop NaN/Inf rows instead of failing */
} data_reader_params;

typedef struct data_stream_pos {
    uint64_t epoch, window, offset;
} data_stream_pos;

typedef struct data_reader data_reader;

data_reader_params data_reader_default_params(void);

/* `f` is borrowed and must outlive the reader. `start` NULL = the beginning. */
int data_reader_open(data_reader **out, data_actfile *f, const data_reader_params *p,
                     const data_stream_pos *start, sae_error *err);
/* Fills x (B x d) with the next B rows of the stream, wrapping into the next
 * epoch as needed. */
int data_reader_next(data_reader *r, float *x, size_t B, sae_error *err);
data_stream_pos data_reader_pos(const data_reader *r);
/* Rows dropped as non-finite so far (only with skip_nonfinite). */
uint64_t data_reader_skipped(const data_reader *r);
void data_reader_close(data_reader *r);

#endif
