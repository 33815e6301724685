/* common/gemm.c: OpenBLAS and oneDNN behind sae_gemm and sae_matmul; the
 * naive reference beside them. */
#include "common/gemm.h"

#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

void sae_gemm(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
              const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
              size_t ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (blasint)m, (blasint)n, (blasint)k, alpha, A,
                (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}

void sae_gemm_ref(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                  const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
                  size_t ldc) {
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double acc = 0; /* double: the reference must not share float rounding */
            for (size_t p = 0; p < k; p++) {
                float a = trans_a ? A[p * lda + i] : A[i * lda + p];
                float b = trans_b ? B[j * ldb + p] : B[p * ldb + j];
                acc += (double)a * b;
            }
            float prev = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
            C[i * ldc + j] = (float)(alpha * acc) + prev;
        }
}

void sae_gemv(int trans_a, size_t m, size_t n, float alpha, const float *A, size_t lda,
              const float *x, float beta, float *y) {
    cblas_sgemv(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, (blasint)m, (blasint)n, alpha,
                A, (blasint)lda, x, 1, beta, y, 1);
}

/* --- precision ------------------------------------------------------------- */
const char *const sae_precision_names[] = {[SAE_PRECISION_F32] = "f32", [SAE_PRECISION_BF16] = "bf16", NULL};

const char *sae_precision_name(sae_precision p) { return p == SAE_PRECISION_BF16 ? "bf16" : "f32"; }

int sae_precision_parse(const char *s, sae_precision *out) {
    for (int i = 0; sae_precision_names[i]; i++)
        if (strcmp(s, sae_precision_names[i]) == 0) {
            *out = (sae_precision)i;
            return 0;
        }
    return -1;
}

static const char *isa_name(dnnl_cpu_isa_t isa) {
    switch (isa) {
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_sse41: return "sse41";
    default: return "unknown";
    }
}

int sae_precision_check(sae_precision p, sae_error *err) {
    if (p == SAE_PRECISION_F32) return SAE_OK;
    /* oneDNN's ISA values are bit sets: each level contains the ones below */
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    if ((isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16) return SAE_OK;
    return sae_error_set(err, SAE_ERR_UNSUPPORTED, "--precision",
                         "bf16 needs a CPU with AVX512-BF16 or AMX instructions, and this one offers "
                         "only %s (oneDNN would emulate bf16 slower than f32); use --precision f32",
                         isa_name(isa));
}

/* --- the encoder product ----------------------------------------------------- */
/* The f32 library, chosen by measurement (README "Speed"): alone, oneDNN's
 * f32 matmul runs ~5-10% faster than OpenBLAS sgemm at the SAE's shapes, but
 * whole training steps ran at the same speed with either, and oneDNN keeps a
 * second, blocked copy of W_enc (16 MiB at d=512, M=8192; 72 MiB at d=768,
 * M=24576) that the memory budget cannot spare. */
#ifndef SAE_F32_KIND /* -DSAE_F32_KIND=SAE_MATMUL_ONEDNN_F32 to measure the other */
#define SAE_F32_KIND SAE_MATMUL_OPENBLAS_F32
#endif

struct sae_matmul {
    sae_matmul_kind kind;
    size_t max_rows, n, k;
    const float *W; /* f32: the caller's weights */
    char impl[96];
    /* bf16 (oneDNN) */
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    dnnl_primitive_t matmul, w_reorder;
    dnnl_memory_t src_mem, w_user_mem, w_mem, dst_mem;
    void *src; /* (max_rows, k) staged inputs: bf16, or f32 for oneDNN f32 */
};

static int dnnl_fail(sae_error *err, dnnl_status_t s, const char *what) {
    return sae_error_set(err, s == dnnl_out_of_memory ? SAE_ERR_NOMEM : SAE_ERR_UNSUPPORTED, "oneDNN",
                         "%s failed (status %d)", what, (int)s);
}

#define DNNL_TRY(call, what)                                                                      \
    do {                                                                                          \
        dnnl_status_t s_ = (call);                                                                \
        if (s_ != dnnl_success) return dnnl_fail(err, s_, what);                                  \
    } while (0)

static int onednn_plan(sae_matmul *mm, sae_error *err) {
    dnnl_data_type_t dt = mm->kind == SAE_MATMUL_ONEDNN_BF16 ? dnnl_bf16 : dnnl_f32;
    size_t elem = dt == dnnl_bf16 ? 2 : 4;
    dnnl_dims_t src_dims = {(dnnl_dim_t)mm->max_rows, (dnnl_dim_t)mm->k};
    dnnl_dims_t w_dims = {(dnnl_dim_t)mm->k, (dnnl_dim_t)mm->n};
    dnnl_dims_t dst_dims = {(dnnl_dim_t)mm->max_rows, (dnnl_dim_t)mm->n};
    dnnl_memory_desc_t src_md, w_any_md, w_user_md, dst_md;
    DNNL_TRY(dnnl_engine_create(&mm->engine, dnnl_cpu, 0), "engine");
    DNNL_TRY(dnnl_stream_create(&mm->stream, mm->engine, dnnl_stream_default_flags), "stream");
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&src_md, 2, src_dims, dt, dnnl_ab), "src desc");
    /* "any": the kernel picks its own blocked weight layout; W (n, k) row-major
     * is the {k, n} matrix in column-major order ("ba") */
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&w_any_md, 2, w_dims, dt, dnnl_format_tag_any),
             "weights desc");
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&w_user_md, 2, w_dims, dnnl_f32, dnnl_ba), "weights desc");
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&dst_md, 2, dst_dims, dnnl_f32, dnnl_ab), "dst desc");

    dnnl_matmul_desc_t desc;
    dnnl_primitive_desc_t pd, rpd;
    DNNL_TRY(dnnl_matmul_desc_init(&desc, &src_md, &w_any_md, NULL, &dst_md), "matmul desc");
    DNNL_TRY(dnnl_primitive_desc_create(&pd, &desc, NULL, mm->engine, NULL), "matmul");
    const char *impl = "?";
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(mm->impl, sizeof mm->impl, "onednn %s", impl);
    const dnnl_memory_desc_t *w_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_status_t s = dnnl_primitive_create(&mm->matmul, pd);
    if (s == dnnl_success)
        s = dnnl_reorder_primitive_desc_create(&rpd, &w_user_md, mm->engine, w_md, mm->engine, NULL);
    if (s == dnnl_success) {
        s = dnnl_primitive_create(&mm->w_reorder, rpd);
        dnnl_primitive_desc_destroy(rpd);
    }
    if (s == dnnl_success) s = dnnl_memory_create(&mm->w_mem, w_md, mm->engine, DNNL_MEMORY_ALLOCATE);
    dnnl_primitive_desc_destroy(pd);
    if (s != dnnl_success) return dnnl_fail(err, s, "matmul setup");
    if (strncmp(impl, "ref", 3) == 0)
        return sae_error_set(err, SAE_ERR_UNSUPPORTED, "--precision",
                             "oneDNN has only its reference kernel here (%s); use --precision f32",
                             impl);
    mm->src = sae_calloc(mm->max_rows * mm->k * elem);
    if (!mm->src) return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory (matmul inputs)");
    DNNL_TRY(dnnl_memory_create(&mm->src_mem, &src_md, mm->engine, mm->src), "src memory");
    DNNL_TRY(dnnl_memory_create(&mm->w_user_mem, &w_user_md, mm->engine, DNNL_MEMORY_NONE),
             "weights memory");
    DNNL_TRY(dnnl_memory_create(&mm->dst_mem, &dst_md, mm->engine, DNNL_MEMORY_NONE), "dst memory");
    return SAE_OK;
}

int sae_matmul_create(sae_matmul **out, sae_precision p, size_t max_rows, size_t n, size_t k,
                      sae_error *err) {
    sae_matmul_kind kind = p == SAE_PRECISION_BF16 ? SAE_MATMUL_ONEDNN_BF16 : SAE_F32_KIND;
    return sae_matmul_create_kind(out, kind, max_rows, n, k, err);
}

int sae_matmul_create_kind(sae_matmul **out, sae_matmul_kind kind, size_t max_rows, size_t n,
                           size_t k, sae_error *err) {
    *out = NULL;
    int rc = kind == SAE_MATMUL_ONEDNN_BF16 ? sae_precision_check(SAE_PRECISION_BF16, err) : SAE_OK;
    if (rc < 0) return rc;
    sae_matmul *mm = sae_calloc_n(1, sizeof *mm);
    if (!mm) return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    *mm = (sae_matmul){.kind = kind, .max_rows = max_rows, .n = n, .k = k};
    snprintf(mm->impl, sizeof mm->impl, "openblas sgemm");
    if (kind != SAE_MATMUL_OPENBLAS_F32 && (rc = onednn_plan(mm, err)) < 0) {
        sae_matmul_free(mm);
        return rc;
    }
    *out = mm;
    return SAE_OK;
}

void sae_matmul_free(sae_matmul *mm) {
    if (!mm) return;
    if (mm->matmul) dnnl_primitive_destroy(mm->matmul);
    if (mm->w_reorder) dnnl_primitive_destroy(mm->w_reorder);
    dnnl_memory_t mems[] = {mm->src_mem, mm->w_user_mem, mm->w_mem, mm->dst_mem};
    for (size_t i = 0; i < sizeof mems / sizeof *mems; i++)
        if (mems[i]) dnnl_memory_destroy(mems[i]);
    if (mm->stream) dnnl_stream_destroy(mm->stream);
    if (mm->engine) dnnl_engine_destroy(mm->engine);
    sae_free(mm->src);
    sae_free(mm);
}

const char *sae_matmul_impl(const sae_matmul *mm) { return mm->impl; }

/* oneDNN failures after planning mean a broken library, not bad input */
static void must(dnnl_status_t s, const char *what) {
    SAE_ASSERT(s == dnnl_success && what);
}

void sae_matmul_set_weights(sae_matmul *mm, const float *W) {
    mm->W = W;
    if (mm->kind == SAE_MATMUL_OPENBLAS_F32) return;
    must(dnnl_memory_set_data_handle(mm->w_user_mem, (void *)W), "weights handle");
    dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, mm->w_user_mem}, {DNNL_ARG_TO, mm->w_mem}};
    must(dnnl_primitive_execute(mm->w_reorder, mm->stream, 2, args), "weights reorder");
    must(dnnl_stream_wait(mm->stream), "weights reorder");
}

/* f32 -> bf16, round to nearest even; NaN stays a (quiet) NaN */
static inline uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

void sae_matmul_run(sae_matmul *mm, const float *A, size_t rows, float *C) {
    SAE_ASSERT(rows <= mm->max_rows && mm->W);
    if (mm->kind == SAE_MATMUL_OPENBLAS_F32) {
        sae_gemm(0, 1, rows, mm->n, mm->k, 1.0f, A, mm->k, mm->W, mm->k, 0.0f, C, mm->n);
        return;
    }
    /* the kernel is planned for max_rows: rows past `rows` are zero inputs
     * whose outputs land in C's spare rows */
    size_t nk = rows * mm->k, total = mm->max_rows * mm->k;
    if (mm->kind == SAE_MATMUL_ONEDNN_BF16) {
        uint16_t *s = mm->src;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < total; i++) s[i] = i < nk ? to_bf16(A[i]) : 0;
    } else if (rows == mm->max_rows) {
        must(dnnl_memory_set_data_handle(mm->src_mem, (void *)A), "src handle");
    } else {
        float *s = mm->src;
        must(dnnl_memory_set_data_handle(mm->src_mem, s), "src handle");
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < total; i++) s[i] = i < nk ? A[i] : 0.0f;
    }
    must(dnnl_memory_set_data_handle(mm->dst_mem, C), "dst handle");
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, mm->src_mem},
                              {DNNL_ARG_WEIGHTS, mm->w_mem},
                              {DNNL_ARG_DST, mm->dst_mem}};
    must(dnnl_primitive_execute(mm->matmul, mm->stream, 3, args), "matmul");
    must(dnnl_stream_wait(mm->stream), "matmul");
}

void sae_set_threads(int n) {
    if (n < 1) n = 1;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int sae_get_threads(void) { return omp_get_max_threads(); }

const char *sae_blas_name(void) { return openblas_get_config(); }
