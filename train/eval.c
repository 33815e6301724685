/* train/eval.c: reconstruction quality of an SAE on an activation file, and
 * dictionary recovery against a planted truth. */
#include <math.h>
#include <string.h>

#include "common/mem.h"
#include "common/gemm.h"
#include "train/train.h"

int train_mmcs(const float *truth, size_t n_truth, const float *W_dec, size_t M, size_t D,
               double *mmcs, double *frac_09) {
    const size_t T = 256; /* truth rows per block keeps the cosine block at T x M */
    float *tn = sae_alloc(T * D * sizeof(float)), *wn = sae_alloc(M * D * sizeof(float));
    float *cos = sae_alloc(T * M * sizeof(float));
    if (!tn || !wn || !cos) {
        sae_free(tn);
        sae_free(wn);
        sae_free(cos);
        return SAE_ERR_NOMEM;
    }
    for (size_t j = 0; j < M; j++) {
        double nn = 0;
        for (size_t c = 0; c < D; c++) nn += (double)W_dec[j * D + c] * W_dec[j * D + c];
        float s = nn > 0 ? (float)(1.0 / sqrt(nn)) : 0.0f;
        for (size_t c = 0; c < D; c++) wn[j * D + c] = W_dec[j * D + c] * s;
    }
    double sum = 0.0;
    size_t above = 0;
    for (size_t t0 = 0; t0 < n_truth; t0 += T) {
        size_t nt = n_truth - t0 < T ? n_truth - t0 : T;
        for (size_t i = 0; i < nt; i++) {
            const float *f = truth + (t0 + i) * D;
            double nn = 0;
            for (size_t c = 0; c < D; c++) nn += (double)f[c] * f[c];
            float s = nn > 0 ? (float)(1.0 / sqrt(nn)) : 0.0f;
            for (size_t c = 0; c < D; c++) tn[i * D + c] = f[c] * s;
        }
        sae_gemm(0, 1, nt, M, D, 1.0f, tn, D, wn, D, 0.0f, cos, M);
        for (size_t i = 0; i < nt; i++) {
            float best = -1.0f;
            for (size_t j = 0; j < M; j++)
                if (cos[i * M + j] > best) best = cos[i * M + j];
            sum += best;
            above += best > 0.9f;
        }
    }
    *mmcs = n_truth ? sum / (double)n_truth : 0.0;
    *frac_09 = n_truth ? (double)above / (double)n_truth : 0.0;
    sae_free(tn);
    sae_free(wn);
    sae_free(cos);
    return SAE_OK;
}

/* Every metric reported must be a number: an undefined one is an error that
 * says why, never a JSON null. */
static int check_metrics(const train_eval_result *r, const char *path, sae_error *err) {
    if (!isfinite(r->explained_variance)) {
        if (r->tokens == 1)
            return sae_error_set(err, SAE_ERR_ARG, path, "only 1 row was evaluated: its variance is 0, so FVU "
                                 "is undefined (evaluate at least 2 rows)");
        return sae_error_set(err, SAE_ERR_FORMAT, path,
                             "the %llu evaluated rows are all identical (zero variance): FVU is undefined",
                             (unsigned long long)r->tokens);
    }
    if (!isfinite(r->relative_reconstruction_bias))
        return sae_error_set(err, SAE_ERR_FORMAT, path,
                             "the SAE's reconstructions are zero or orthogonal to every row (E<x, xhat> = 0): "
                             "the relative reconstruction bias is undefined");
    const struct { const char *name; double v; } all[] = {
        {"fvu", r->fvu}, {"mse", r->mse}, {"l0", r->l0}, {"cossim", r->cossim}, {"l2_ratio", r->l2_ratio}};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!isfinite(all[i].v))
            return sae_error_set(err, SAE_ERR_NONFINITE, path,
                                 "%s is not finite: the SAE's reconstructions overflow on this data", all[i].name);
    return SAE_OK;
}

int train_eval(sae_model *m, double input_scale, data_actfile *f, uint64_t max_tokens,
               train_eval_result *out, sae_error *err) {
    memset(out, 0, sizeof *out);
    if (m->cfg.d != f->d)
        return sae_error_set(err, SAE_ERR_MISMATCH, f->path,
                             "the data has d=%zu but the SAE was trained on d=%zu", f->d, m->cfg.d);
    size_t D = f->d, M = m->cfg.m, cap = m->capacity;
    uint64_t n = max_tokens && max_tokens < f->n ? max_tokens : f->n;
    float *raw = sae_alloc(cap * D * sizeof(float)), *x = sae_alloc(cap * D * sizeof(float));
    float *err_raw = sae_alloc(cap * D * sizeof(float)); /* (cap, D) xhat - x, raw units */
    uint32_t *fired = sae_calloc(M * sizeof(uint32_t));
    double *colsum = sae_calloc(D * sizeof *colsum);
    if (!raw || !x || !err_raw || !fired || !colsum) {
        sae_free(raw), sae_free(x), sae_free(err_raw), sae_free(fired), sae_free(colsum);
        return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    }
    train_recon_acc acc;
    train_recon_acc_init(&acc, D, colsum);
    int rc = SAE_OK;
    double l0 = 0.0;
    float sc = (float)input_scale;
    for (uint64_t r0 = 0; r0 < n && rc == SAE_OK; r0 += cap) {
        size_t cnt = n - r0 < cap ? (size_t)(n - r0) : cap;
        if ((rc = data_actfile_read_rows(f, r0, cnt, raw, err)) < 0) break;
        size_t B = 0; /* keep finite rows only, compacted in raw and (scaled) in x */
        for (size_t i = 0; i < cnt; i++) {
            const float *row = raw + i * D;
            if (data_row_nonfinite(row, D)) {
                out->skipped++;
                continue;
            }
            memmove(raw + B * D, row, D * sizeof(float)); /* B <= i */
            for (size_t c = 0; c < D; c++) x[B * D + c] = raw[B * D + c] * sc;
            B++;
        }
        if (B == 0) continue;
        sae_loss loss;
        if ((rc = sae_model_forward(m, x, B, NULL, &loss, err)) < 0) break;
        l0 += loss.l0 * (double)B;
        sae_model_count_active(m, fired);
        /* errors were measured in scaled units */
        const float *res = sae_model_residual(m);
        for (size_t e = 0; e < B * D; e++) err_raw[e] = res[e] / sc;
        train_recon_acc_add(&acc, raw, err_raw, B, D);
        out->tokens += B;
    }
    if (rc == SAE_OK && out->tokens == 0)
        rc = sae_error_set(err, SAE_ERR_NONFINITE, f->path, "no finite rows to evaluate");
    if (rc == SAE_OK) {
        train_recon_metrics rm;
        train_recon_acc_result(&acc, &rm);
        double N = (double)out->tokens;
        out->fvu = 1.0 - rm.explained_variance;
        out->mse = acc.sum_ee / (N * (double)D);
        out->l0 = l0 / N;
        size_t dead = 0;
        for (size_t j = 0; j < M; j++) dead += fired[j] == 0;
        out->dead_frac = (double)dead / (double)M;
        out->explained_variance = rm.explained_variance;
        out->cossim = rm.cossim;
        out->l2_ratio = rm.l2_ratio;
        out->relative_reconstruction_bias = rm.relative_reconstruction_bias;
        train_freq_metrics(fired, M, out->tokens, &out->frac_alive, &out->freq_over_1_percent,
                           &out->freq_over_10_percent);
        out->has_core_metrics = 1;
    }
    if (rc == SAE_OK) rc = check_metrics(out, f->path, err);
    if (rc == SAE_OK && f->n_truth > 0) {
        float *truth = sae_alloc(f->n_truth * D * sizeof(float));
        if (!truth) rc = sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
        if (rc == SAE_OK) rc = data_actfile_read_truth(f, truth, err);
        for (size_t i = 0; rc == SAE_OK && i < f->n_truth * D; i++)
            if (!isfinite(truth[i]))
                rc = sae_error_set(err, SAE_ERR_NONFINITE, f->path,
                                   "/truth/features holds NaN or Inf (row %zu): mmcs and mcc are undefined", i / D);
        if (rc == SAE_OK) {
            out->has_truth = 1;
            out->n_truth = f->n_truth;
            if (train_mmcs(truth, f->n_truth, m->p.W_dec, M, D, &out->mmcs, &out->recovered_09) < 0)
                rc = sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
            if (rc == SAE_OK) rc = train_mcc(truth, f->n_truth, m->p.W_dec, M, D, &out->mcc, err);
            if (rc == SAE_OK && !(isfinite(out->mmcs) && isfinite(out->mcc)))
                rc = sae_error_set(err, SAE_ERR_NONFINITE, f->path, "mmcs or mcc is not finite");
        }
        sae_free(truth);
    }
    sae_free(raw), sae_free(x), sae_free(err_raw), sae_free(fired), sae_free(colsum);
    return rc;
}
