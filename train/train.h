/* train/train.h: training an SAE on an activation file: optimiser, schedules,
 * the loop, checkpoints, evaluation.
 *
 *     train_params p = train_default_params(SAE_ARCH_TOPK);
 *     p.sae.m = 8192; p.tokens = 2000000;
 *     data_actfile *f; data_actfile_open(&f, "acts.h5", &err);
 *     train_run(&p, f, "sae.h5", 0, NULL, &err);   // writes checkpoints + final SAE
 *
 * Checkpoint files are SAE files (sae/io.h) plus the state needed to continue
 * bit for bit:
 *   /train/adam_m, /train/adam_v  float32 [P]  Adam moments, flat, in the
 *        parameter blob's order: W_enc as (M, d) rows, b_enc, W_dec, b_dec
 *   /train/tokens_since_fired     int64 [M]    dead-latent counters
 *   /train attributes: step, tokens, total_steps, epoch, window, offset,
 *        skipped_rows, complete (0 while training, 1 at the end)
 *   root attributes: every hyperparameter of the run (lr, batch, seed, ...),
 *        and the provenance of sae/io.h: the data's identity (data: its
 *        absolute path, data_n, data_d, data_fingerprint, an FNV-1a hash of the
 *        data's row count, width and 16 rows spread evenly through it:
 *        data_actfile_identity in data/docs.h) and model, layer, hook and
 *        tokenizer from the data's root attributes.
 * A run resumed from a checkpoint with the same command and thread count
 * produces the same final weights as an uninterrupted one. Before resuming,
 * the checkpoint is validated as a whole: settings and data_rows must match
 * the run, data_fingerprint must match --data (a checkpoint older than the
 * fingerprint is accepted with a warning, since only its row count can be
 * checked), the counters must be a point the run could reach (step <= total
 * steps, tokens = step x batch, complete exactly at the last step, epoch
 * consistent with the tokens, dead-latent counters <= tokens), and parameters
 * and Adam moments must be finite (adam_v >= 0).
 */
#ifndef SAE_TRAIN_H
#define SAE_TRAIN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "data/actfile.h"
#include "data/reader.h"
#include "sae/sae.h"

typedef enum train_bdec_init {
    TRAIN_BDEC_MEDIAN = 0, /* geometric median of a sample (Weiszfeld) */
    TRAIN_BDEC_MEAN = 1,
    TRAIN_BDEC_ZERO = 2,
} train_bdec_init;

typedef struct train_params {
    sae_config sae;          /* d is taken from the data; m = 0 means 8 * d */
    uint64_t tokens;         /* training tokens; 0 = one pass over the file */
    size_t batch;            /* rows per step */
    float lr;                /* peak learning rate */
    float lr_warmup;         /* fraction of steps with linear warm-up from 0 */
    float lr_decay;          /* fraction of steps at the end decaying linearly to 0 */
    float sparsity_coef;     /* relu: L1, jumprelu: L0 coefficient after warm-up */
    float sparsity_warmup;   /* fraction of steps over which it ramps up from 0 */
    float beta1, beta2, eps; /* Adam */
    float grad_clip;         /* global gradient-norm clip; 0 = off */
    uint64_t seed;
    uint64_t dead_tokens;    /* a latent not fired in this many tokens is dead */
    size_t buffer_rows;      /* shuffle buffer (rows, both halves) */
    int skip_nonfinite;      /* drop NaN/Inf rows with a warning instead of refusing */
    train_bdec_init bdec_init;
    size_t init_rows;        /* rows sampled to set the input scale and b_dec */
    uint64_t checkpoint_every; /* tokens between checkpoints; 0 = only at the end */
    size_t log_every;        /* steps between metric reports */
    int threads;             /* recorded in the checkpoint; set by the caller */
    sae_precision precision; /* of the encoder product only; the rest is always f32 */
} train_params;

/* The architecture's defaults (sae_config_default, sae_arch_train_hints) and
 * the trainer's own. */
train_params train_default_params(sae_arch arch);
/* Fills the data-dependent defaults (sae_config_resolve) and checks every
 * setting; the error names the flag at fault. */
int train_resolve(train_params *p, size_t d, sae_error *err);
/* Names in enum order, NULL-terminated (the CLI's --b-dec-init choices). */
extern const char *const train_bdec_init_names[];
const char *train_bdec_init_name(train_bdec_init b);
int train_bdec_init_parse(const char *s, train_bdec_init *out);

/* --- optimiser and schedules (pure functions, tested alone) ------------------ */
/* One Adam step (Kingma & Ba, with bias correction) at 1-based step t over n
 * flat parameters. */
void train_adam_step(float *param, const float *grad, float *m, float *v, size_t n, float lr,
                     float beta1, float beta2, float eps, uint64_t t);
/* Global L2 norm of n values (double accumulation, fixed order). */
double train_grad_norm(const float *g, size_t n);
void train_scale(float *g, size_t n, float s);
/* Learning rate at 0-based step of total: warm-up, plateau, linear decay. */
float train_lr_at(const train_params *p, uint64_t step, uint64_t total);
/* The sparsity coefficient at step (linear warm-up). */
float train_sparsity_at(const train_params *p, uint64_t step, uint64_t total);

/* --- running ----------------------------------------------------------------- */
typedef struct train_metrics {
    int log_due; /* a log_every boundary or the last step (else: a progress tick) */
    uint64_t step, total_steps, tokens, total_tokens;
    double loss, mse, fvu, l0, dead_frac, aux_loss, sparsity, lr, sparsity_coef, tokens_per_s,
        elapsed_s;
} train_metrics;

typedef struct train_observer {
    /* resolved configuration, once before the first step */
    void (*on_start)(const train_params *p, const sae_model *m, double input_scale,
                     uint64_t start_step, uint64_t total_steps, void *user);
    void (*on_metrics)(const train_metrics *m, void *user); /* after every step */
    void (*on_checkpoint)(const char *path, uint64_t tokens, void *user);
    void (*on_warning)(const char *msg, void *user);
    void *user;
    volatile sig_atomic_t *stop; /* set (e.g. by SIGINT) to checkpoint and stop early */
} train_observer;

/* Trains on f, writing checkpoints and the final SAE to out_path. With
 * resume, continues from the checkpoint at out_path when one exists (its
 * configuration must match p). Returns SAE_OK, 1 when stopped early through
 * obs->stop (after writing a checkpoint), or a negative error. */
int train_run(const train_params *p, data_actfile *f, const char *out_path, int resume,
              const train_observer *obs, sae_error *err);

/* --- evaluation ----------------------------------------------------------------- */
typedef struct train_eval_result {
    uint64_t tokens;        /* rows evaluated (non-finite rows skipped) */
    uint64_t skipped;       /* rows skipped as non-finite */
    double fvu, mse, l0, dead_frac;
    int has_truth;
    size_t n_truth;
    double mmcs;            /* mean over true features of the best cosine with a decoder row */
    double recovered_09;    /* fraction of true features with best cos > 0.9 */
    /* SAEBench core metrics (train_recon_acc, train_freq_metrics), raw units;
     * set, with has_core_metrics = 1, by train_eval once it computes them */
    int has_core_metrics;
    double explained_variance, cossim, l2_ratio, relative_reconstruction_bias;
    double frac_alive, freq_over_1_percent, freq_over_10_percent;
    double mcc;             /* with truth: matched mean |cos| (train_mcc) */
} train_eval_result;

/* Streams the first max_tokens rows (0 = all) of f through m in file order. */
int train_eval(sae_model *m, double input_scale, data_actfile *f, uint64_t max_tokens,
               train_eval_result *out, sae_error *err);
/* Mean best cosine of each of n_truth rows against the M decoder rows. */
int train_mmcs(const float *truth, size_t n_truth, const float *W_dec, size_t M, size_t D,
               double *mmcs, double *frac_09);

/* --- reconstruction metrics ------------------------------------------------------
 * SAEBench's "core" reconstruction and density metrics as pure functions over
 * streamed batches (train/metrics.c says where each definition comes from):
 *
 *     double colsum[D];                        // caller-owned, no allocation
 *     train_recon_acc acc;
 *     train_recon_acc_init(&acc, D, colsum);
 *     for each batch: train_recon_acc_add(&acc, x, err, B, D);  // err = xhat - x
 *     train_recon_metrics r;
 *     train_recon_acc_result(&acc, &r);
 *
 * Every field is a sum, so the result does not depend on how rows are batched.
 */
typedef struct train_recon_acc {
    size_t D;
    uint64_t n;          /* rows added */
    double *colsum;      /* (D) sum of x over rows; caller-owned storage */
    double sum_xx;       /* sum ||x||^2 */
    double sum_ee;       /* sum ||xhat - x||^2 */
    double sum_hh;       /* sum ||xhat||^2 */
    double sum_xh;       /* sum <x, xhat> */
    double sum_cos;      /* sum cos(x, xhat), 0 for a zero row */
    double sum_l2_ratio; /* sum ||xhat|| / ||x|| (||x|| < 1e-4 divides by 1) */
} train_recon_acc;

typedef struct train_recon_metrics {
    uint64_t n;                          /* rows */
    double explained_variance;           /* 1 - sum||x - xhat||^2 / sum||x - mean||^2 */
    double cossim;                       /* mean over rows of cos(x, xhat) */
    double l2_ratio;                     /* mean over rows of ||xhat|| / ||x|| */
    double relative_reconstruction_bias; /* E||xhat||^2 / E<x, xhat> */
} train_recon_metrics;

/* Zeroes a and colsum (D doubles, owned by the caller, kept until the result). */
void train_recon_acc_init(train_recon_acc *a, size_t D, double *colsum);
/* Adds B rows: x (B, D) inputs and err (B, D) = xhat - x, both in raw units. */
void train_recon_acc_add(train_recon_acc *a, const float *x, const float *err, size_t B,
                         size_t D);
/* NaN for a metric whose denominator is 0 (no rows, no variance, E<x, xhat> = 0). */
void train_recon_acc_result(const train_recon_acc *a, train_recon_metrics *out);
/* Density metrics from fire_count (M): rows in which each latent fired, of
 * n_rows. frac_alive: fraction of latents with density > 0; freq_over_1_percent
 * (_10_): fraction with density > 0.01 (0.1). All 0 when n_rows or M is 0. */
void train_freq_metrics(const uint32_t *fire_count, size_t M, uint64_t n_rows,
                        double *frac_alive, double *freq_over_1_percent,
                        double *freq_over_10_percent);

/* --- dictionary recovery: one-to-one matching (train/assign.c) ------------------ */
/* Linear sum assignment on a dense n x m matrix, n <= m: col4row (n) gets the
 * distinct columns minimising (maximize = 0) or maximising (1) the sum of
 * a[i, col4row[i]]. a is (n, m) row-major f32; sums are f64. Exact (shortest
 * augmenting paths, the algorithm of scipy.optimize.linear_sum_assignment).
 * SAE_ERR_ARG when n > m, SAE_ERR_NONFINITE for a NaN/Inf entry, SAE_ERR_NOMEM. */
int train_lsa(int32_t *col4row, const float *a, size_t n, size_t m, int maximize,
              sae_error *err);
/* SynthSAEBench's MCC: the mean |cos| over the pairs of the one-to-one matching
 * of truth rows (n_truth, D) to decoder rows W_dec (M, D) that maximises the
 * summed |cos|; min(n_truth, M) pairs. Needs 4 * n_truth * M bytes for the
 * cosine matrix (128 MiB at 4096 x 8192). 0 when either side is empty. */
int train_mcc(const float *truth, size_t n_truth, const float *W_dec, size_t M, size_t D,
              double *mcc, sae_error *err);

#endif
