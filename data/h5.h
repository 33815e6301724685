/* data/h5.h: thin helpers over the HDF5 C API used by every file format here.
 *
 * What this adds over raw HDF5: errors land in a sae_error with a readable
 * message (HDF5's own stack printing is switched off), and one process-wide
 * lock serialises HDF5 calls, because Debian's serial libhdf5 is not built
 * thread-safe and the background reader shares the library with the main
 * thread (which writes checkpoints).
 *
 * Conventions: `loc` is an open file or group; names are paths relative to it.
 * Functions return SAE_OK, a negative enum sae_err, or (the *_exists/_info
 * queries) 1 for "not present".
 *
 *     data_h5_init();
 *     data_h5_lock();
 *     hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
 *     data_h5_unlock();
 */
#ifndef SAE_DATA_H5_H
#define SAE_DATA_H5_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

void data_h5_init(void); /* idempotent: silences HDF5's automatic stack printing */
void data_h5_lock(void);
void data_h5_unlock(void);

/* The innermost HDF5 error message of the current thread's stack, or "". */
const char *data_h5_last_error(char *buf, size_t cap);

typedef struct data_h5_info {
    int rank;
    hsize_t dims[4];
    H5T_class_t cls; /* H5T_FLOAT, H5T_INTEGER, H5T_STRING, ... */
    size_t size;     /* bytes per element on disk */
    int is_vlen_str;
} data_h5_info;

/* 1 if `name` does not exist (or is not a dataset), SAE_OK with info filled. */
int data_h5_dataset_info(hid_t loc, const char *name, data_h5_info *info);

/* Whole-dataset reads with conversion to the native type; `count` must equal
 * the dataset's element count. */
int data_h5_read_f32(hid_t loc, const char *name, float *out, size_t count, const char *path,
                     sae_error *err);
int data_h5_read_i64(hid_t loc, const char *name, int64_t *out, size_t count, const char *path,
                     sae_error *err);
int data_h5_read_i32(hid_t loc, const char *name, int32_t *out, size_t count, const char *path,
                     sae_error *err);
/* Reads a 1-D variable-length string dataset into a NULL-terminated array of
 * malloc'd strings (free with data_h5_free_strings). HDF5 1.10 crashes on a
 * damaged global heap, so the read runs in a child process (see h5.c): a
 * damaged file gives an error, never a crash. String attributes likewise. */
int data_h5_read_strings(hid_t loc, const char *name, char ***out, size_t *n, const char *path,
                         sae_error *err);
void data_h5_free_strings(char **s, size_t n);
/* 1 (the default): variable-length strings are read in a child process. A
 * fork costs ~50 ms in a sanitizer build, so structure-aware fuzz harnesses,
 * whose files come from the HDF5 library itself (their global heaps are
 * intact), may turn it off for most inputs. */
void data_h5_set_string_isolation(int on);

/* Whether dataset ds stores every element its extent declares, before
 * anything is allocated or scanned from that extent: sizes overflow-checked;
 * contiguous data must be allocated and end within the file; chunked data
 * must have every chunk written (a 5 KB file declaring 2^40 unwritten rows
 * would otherwise read fill values for hours), fit in the file unfiltered, or
 * not expand more than compression can; external and virtual layouts are
 * refused. SAE_OK or SAE_ERR_FORMAT "declares N rows but stores only M". */
int data_h5_check_stored(hid_t ds, const char *name, const char *path, sae_error *err);
int data_h5_check_stored_name(hid_t loc, const char *name, const char *path, sae_error *err);

/* Opens path read-only: "not an HDF5 file", "file is locked" (another process
 * has it open for writing: HDF5's lock failure found on its error stack), or
 * "cannot open ... truncated or damaged?". Call with the lock held. */
int data_h5_open_read(const char *path, hid_t *out, sae_error *err);
/* The error for an H5Fopen that just failed (inspects HDF5's error stack). */
int data_h5_open_error(const char *path, sae_error *err);

/* Writes a dataset of rank 1 or 2 (dims[1] ignored for rank 1). chunk_rows > 0
 * chunks by rows. */
int data_h5_write_f32(hid_t loc, const char *name, const float *data, int rank,
                      const hsize_t *dims, hsize_t chunk_rows, const char *path, sae_error *err);
/* Writes src (rows, cols) as a (cols, rows) dataset, transposing in blocks. */
int data_h5_write_f32_transposed(hid_t loc, const char *name, const float *src, size_t rows,
                                 size_t cols, const char *path, sae_error *err);
int data_h5_write_i64(hid_t loc, const char *name, const int64_t *data, hsize_t n,
                      const char *path, sae_error *err);
int data_h5_write_i32(hid_t loc, const char *name, const int32_t *data, hsize_t n,
                      const char *path, sae_error *err);
int data_h5_write_strings(hid_t loc, const char *name, const char *const *s, hsize_t n,
                          const char *path, sae_error *err);

/* Attributes on `loc` (a file, group or dataset). get_* return 1 if missing. */
int data_h5_set_attr_str(hid_t loc, const char *name, const char *value);
int data_h5_set_attr_i64(hid_t loc, const char *name, int64_t value);
int data_h5_set_attr_f64(hid_t loc, const char *name, double value);
int data_h5_get_attr_str(hid_t loc, const char *name, char *buf, size_t cap);
int data_h5_get_attr_i64(hid_t loc, const char *name, int64_t *value);
int data_h5_get_attr_f64(hid_t loc, const char *name, double *value);

/* The IEEE half-precision type as h5py writes it (copied from F32LE with the
 * fields of binary16), for files that store activations as float16. */
hid_t data_h5_f16_type(void);

#endif
