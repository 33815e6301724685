/* train/train_internal.h: state shared by loop.c and checkpoint.c only. */
#ifndef SAE_TRAIN_INTERNAL_H
#define SAE_TRAIN_INTERNAL_H

#include "data/docs.h"
#include "train/train.h"

typedef struct train__state {
    sae_model model;        /* parameters, gradients, workspace */
    float *adam_m, *adam_v; /* (P) same layout as model.param_blob */
    uint64_t *since_fired;  /* (M) tokens since each latent last fired */
    uint32_t *fire_count;   /* (M) per-step scratch */
    int32_t *dead;          /* (M) per-step scratch: dead latent ids */
    double input_scale;
    uint64_t step, tokens, total_steps, skipped;
    data_stream_pos pos;    /* where the next batch starts */
    data_identity data_id;  /* the data's identity and provenance (data/docs.h), recorded in checkpoints */
} train__state;

/* Steps of a run: --tokens (or one pass over the file) in batches, at least 1. */
static inline uint64_t train__total_steps(const train_params *p, const data_actfile *f) {
    uint64_t total_tokens = p->tokens ? p->tokens : f->n;
    return total_tokens / p->batch ? total_tokens / p->batch : 1;
}


int train__checkpoint_save(const char *path, const train_params *p, const train__state *s,
                           const data_actfile *f, int complete, sae_error *err);

/* What a successful load reports beside the state (bits of *notes). */
enum {
    TRAIN__CKPT_THREADS_DIFFER = 1, /* the result will not be bitwise equal */
    TRAIN__CKPT_NO_FINGERPRINT = 2, /* an older checkpoint: the data's identity is unchecked */
};
/* Loads a checkpoint into s (whose model is initialised from p, and whose
 * data_id is f's identity) and validates it as a whole before anything
 * resumes: settings and data identity must match this run (the error names
 * the setting), counters must be in range and consistent with each other and
 * with p (step <= total steps, tokens = step x batch, ...), and the parameters
 * and optimiser state must be finite. */
int train__checkpoint_load(const char *path, const train_params *p, train__state *s,
                           const data_actfile *f, int *complete, unsigned *notes, sae_error *err);

#endif
