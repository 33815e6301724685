/* train/train_internal.h: state shared by loop.c and checkpoint.c only. */
#ifndef SAE_TRAIN_INTERNAL_H
#define SAE_TRAIN_INTERNAL_H

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
} train__state;

int train__checkpoint_save(const char *path, const train_params *p, const train__state *s,
                           const data_actfile *f, int complete, sae_error *err);
/* Loads a checkpoint into s (whose model is initialised from p). Mismatched
 * settings are an error naming the setting; a different thread count is
 * reported through *threads_differ (the result will not be bitwise equal). */
int train__checkpoint_load(const char *path, const train_params *p, train__state *s,
                           const data_actfile *f, int *complete, int *threads_differ,
                           sae_error *err);

#endif
