/* sae/tensorfile.h: the tensor containers published SAEs come in, behind one
 * small API: reading safetensors files and numpy .npz archives (a zip of .npy
 * files), and writing float32 safetensors. A container is recognised by
 * content (a zip's "PK\3\4" magic, else a safetensors header), never by the
 * file's name.
 *
 * safetensors: an 8-byte little-endian header length n, n bytes of JSON
 *   {"NAME": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end)}, ...,
 *    "__metadata__": {...} (optional)}, then the byte buffer the offsets
 *   index. Checked at open: n within the file (and at most 100 MB), every
 *   entry's dtype known, end >= begin, end within the buffer, no two tensors
 *   overlapping, and shape product x dtype size = end - begin.
 * npz: each member NAME.npy is one tensor NAME; its .npy header (versions
 *   1, 2 and 3) must say fortran_order False and a little-endian float
 *   dtype ('<f4', '<f2', '<f8'), and the member must hold exactly the bytes
 *   its shape declares.
 * Floating-point dtypes read: F32, F16, BF16, F64 (safetensors), f4/f2/f8
 * (npy), each converted to float32; a NaN or Inf element is an error naming
 * the tensor and the element.
 *
 *     sae_tensorfile *tf;
 *     if (sae_tensorfile_open(&tf, path, &err) < 0) fail(&err);
 *     const sae_tf_tensor *t = sae_tensorfile_find(tf, "W_enc");
 *     sae_tensorfile_read_f32(tf, t, buf, &err);   (buf holds t->numel floats)
 *     sae_tensorfile_close(tf);
 */
#ifndef SAE_TENSORFILE_H
#define SAE_TENSORFILE_H

#include <stddef.h>

#include "common/err.h"

#define SAE_TF_MAX_RANK 8

typedef enum sae_tf_dtype {
    SAE_TF_F32,
    SAE_TF_F16,
    SAE_TF_BF16,
    SAE_TF_F64,
    SAE_TF_OTHER, /* a non-float dtype the format knows (I64, U8, ...): listed, not read */
} sae_tf_dtype;

typedef struct sae_tf_tensor {
    char *name;
    sae_tf_dtype dtype;
    char dtype_name[16]; /* as the file spells it: "BF16", "<f4" */
    int rank;
    size_t shape[SAE_TF_MAX_RANK];
    size_t numel;
    size_t offset; /* safetensors: absolute file offset; npz: the member's index */
    size_t nbytes;
    size_t header_bytes; /* npz: the .npy header before the data */
} sae_tf_tensor;

typedef struct sae_tensorfile sae_tensorfile;

int sae_tensorfile_open(sae_tensorfile **out, const char *path, sae_error *err);
void sae_tensorfile_close(sae_tensorfile *tf);
/* "safetensors" or "npz" */
const char *sae_tensorfile_kind(const sae_tensorfile *tf);
size_t sae_tensorfile_count(const sae_tensorfile *tf);
const sae_tf_tensor *sae_tensorfile_get(const sae_tensorfile *tf, size_t i);
const sae_tf_tensor *sae_tensorfile_find(const sae_tensorfile *tf, const char *name);
/* Reads tensor t as t->numel float32 values into out (row-major). */
int sae_tensorfile_read_f32(sae_tensorfile *tf, const sae_tf_tensor *t, float *out, sae_error *err);
/* 1 when the file starts like a zip archive or a safetensors file. */
int sae_tensorfile_sniff(const char *path);

/* --- writing ------------------------------------------------------------------ */
/* One float32 tensor of a safetensors file (ndim 1 or 2). */
typedef struct sae_st_tensor {
    const char *name;
    size_t ndim, shape[2];
    const float *data;
} sae_st_tensor;

/* Writes a safetensors file at path (directly: the caller picks a temporary
 * name): an 8-byte little-endian header length, the JSON header (tensors in
 * the given order with dtype F32, shape, data_offsets; "__metadata__" with
 * format "pt"), padded with spaces to a multiple of 8, then the data in
 * little-endian order. */
int sae_safetensors_write(const char *path, const sae_st_tensor *t, size_t n, sae_error *err);

#endif
