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
 *   root attributes: every hyperparameter of the run (lr, batch, seed, ...).
 * A run resumed from a checkpoint with the same command and thread count
 * produces the same final weights as an uninterrupted one.
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
} train_eval_result;

/* Streams the first max_tokens rows (0 = all) of f through m in file order. */
int train_eval(sae_model *m, double input_scale, data_actfile *f, uint64_t max_tokens,
               train_eval_result *out, sae_error *err);
/* Mean best cosine of each of n_truth rows against the M decoder rows. */
int train_mmcs(const float *truth, size_t n_truth, const float *W_dec, size_t M, size_t D,
               double *mmcs, double *frac_09);

#endif
