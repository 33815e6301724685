/* train/metrics.c: SAEBench's "core" reconstruction metrics (explained
 * variance, cosine similarity, L2 ratio, relative reconstruction bias) as a
 * streaming accumulator of f64 sums, and its density metrics (frac_alive,
 * freq_over_1_percent, freq_over_10_percent). Pure functions: no allocation,
 * no I/O; the caller runs the SAE and passes x and xhat - x in raw units.
 *
 * The reference is sae_bench/evals/core/main.py, get_sparsity_and_variance_metrics
 * and calculate_misc_metrics (read at adamkarvonen/SAEBench 10e0728 and at the
 * newer chanind/SAEBench 1b21c23). Where we differ from that code, and why:
 *
 *  - explained_variance: SAEBench PR #61 replaced the per-token mean of
 *    1 - ||x_i - xhat_i||^2 / ||x_i - batch mean||^2 (kept there as
 *    explained_variance_legacy; the SAEBench paper's numbers use it) by the
 *    conventional 1 - sum||x - xhat||^2 / sum||x - mean||^2, the mean taken
 *    over all rows. That is what we compute. SAEBench's code for it squares
 *    E[x_d^2] where E[x_d] was meant (subtracting (mean_d E[x_d^2])^2, a
 *    quantity in units of x^4); SAELens fixed the same lines in PR #665 (issue
 *    #659). We follow the stated formula and the fix, not the slip. The slip
 *    leaves roughly the variance about zero in the denominator, so on data
 *    with a large mean SAEBench's JSON reads higher than this.
 *    The legacy form is not offered: it depends on where batches are cut.
 *  - relative_reconstruction_bias: Eq. 10 of Rajamanoharan et al. 2024
 *    (arXiv:2404.16014), E||xhat||^2 / E<x, xhat>, over all rows. SAEBench
 *    takes this ratio per batch and averages the ratios; that equals ours for
 *    one batch and depends on the batch size otherwise.
 *  - cossim: SAEBench divides by the norms unguarded (a zero row gives NaN and
 *    the whole metric is written as -1); we count cos = 0 for a row where x or
 *    xhat is zero, as torch.nn.functional.cosine_similarity does.
 *  - l2_ratio: as SAEBench, ||xhat|| / ||x|| with ||x|| < 1e-4 replaced by 1.
 *    The threshold is in raw units, which is why the caller unscales.
 *  - density: SAEBench's feature_density is (rows with act > 0) / rows and it
 *    compares with strict '>' against 0, 0.01 and 0.1; we compare the integer
 *    counts exactly (100 * count > rows) instead of an f32 quotient.
 */
#include <math.h>
#include <string.h>

#include "train/train.h"

void train_recon_acc_init(train_recon_acc *a, size_t D, double *colsum) {
    memset(a, 0, sizeof *a);
    a->D = D;
    a->colsum = colsum;
    memset(colsum, 0, D * sizeof *colsum);
}

/* One row's dot products in f64: xx = ||x||^2, ee = ||e||^2, hh = ||x + e||^2,
 * xh = <x, x + e>. */
typedef struct {
    double xx, ee, hh, xh;
} recon_row;

static recon_row recon_row_sums(double *colsum, const float *x, const float *e, size_t D) {
    recon_row r = {0, 0, 0, 0};
    for (size_t c = 0; c < D; c++) {
        double xv = x[c], ev = e[c], hv = xv + ev;
        colsum[c] += xv;
        r.xx += xv * xv;
        r.ee += ev * ev;
        r.hh += hv * hv;
        r.xh += xv * hv;
    }
    return r;
}

void train_recon_acc_add(train_recon_acc *a, const float *x, const float *err, size_t B,
                         size_t D) {
    SAE_ASSERT(D == a->D);
    for (size_t i = 0; i < B; i++) {
        recon_row r = recon_row_sums(a->colsum, x + i * D, err + i * D, D);
        double nx = sqrt(r.xx), nh = sqrt(r.hh);
        a->sum_xx += r.xx;
        a->sum_ee += r.ee;
        a->sum_hh += r.hh;
        a->sum_xh += r.xh;
        a->sum_cos += nx > 0 && nh > 0 ? r.xh / (nx * nh) : 0.0;
        a->sum_l2_ratio += nh / (nx < 1e-4 ? 1.0 : nx); /* SAEBench's guard */
    }
    a->n += B;
}

void train_recon_acc_result(const train_recon_acc *a, train_recon_metrics *out) {
    double N = (double)a->n, mean_sq = 0.0;
    for (size_t c = 0; c < a->D; c++) mean_sq += a->colsum[c] * a->colsum[c];
    /* sum ||x - mean||^2 = sum ||x||^2 - ||sum x||^2 / N; f64 keeps the
     * cancellation harmless unless the mean is ~1e6 times the spread */
    double total_var = a->n ? a->sum_xx - mean_sq / N : 0.0;
    out->n = a->n;
    out->explained_variance = total_var > 0 ? 1.0 - a->sum_ee / total_var : NAN;
    out->cossim = a->n ? a->sum_cos / N : NAN;
    out->l2_ratio = a->n ? a->sum_l2_ratio / N : NAN;
    out->relative_reconstruction_bias = a->sum_xh != 0 ? a->sum_hh / a->sum_xh : NAN;
}

void train_freq_metrics(const uint32_t *fire_count, size_t M, uint64_t n_rows,
                        double *frac_alive, double *freq_over_1_percent,
                        double *freq_over_10_percent) {
    size_t alive = 0, over1 = 0, over10 = 0;
    for (size_t j = 0; j < M && n_rows > 0; j++) {
        uint64_t c = fire_count[j]; /* density = c / n_rows; u64 keeps 100 * c exact */
        alive += c > 0;
        over1 += 100 * c > n_rows;
        over10 += 10 * c > n_rows;
    }
    double m = M && n_rows ? (double)M : 1.0;
    *frac_alive = (double)alive / m;
    *freq_over_1_percent = (double)over1 / m;
    *freq_over_10_percent = (double)over10 / m;
}
