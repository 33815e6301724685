/* train/adam.c: Adam over the flat parameter blob, and gradient-norm tools. */
#include <math.h>
#include <string.h>

#include "train/train.h"

void train_adam_step(float *param, const float *grad, float *m, float *v, size_t n, float lr,
                     float beta1, float beta2, float eps, uint64_t t) {
    /* bias corrections in double: beta^t underflows float precision late in runs */
    float c1 = (float)(1.0 - pow(beta1, (double)t));
    float c2 = (float)(1.0 - pow(beta2, (double)t));
    float step = lr / c1, rc2 = 1.0f / sqrtf(c2);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = grad[i];
        m[i] = beta1 * m[i] + (1.0f - beta1) * g;
        v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
        param[i] -= step * m[i] / (sqrtf(v[i]) * rc2 + eps);
    }
}

#define NORM_BLOCK 65536
double train_grad_norm(const float *g, size_t n) {
    /* fixed blocks summed in order: the same value whatever the thread count */
    size_t nb = (n + NORM_BLOCK - 1) / NORM_BLOCK;
    double total = 0.0;
#pragma omp parallel for schedule(static) ordered
    for (size_t b = 0; b < nb; b++) {
        size_t i0 = b * NORM_BLOCK, i1 = i0 + NORM_BLOCK < n ? i0 + NORM_BLOCK : n;
        double acc = 0.0;
        for (size_t i = i0; i < i1; i++) acc += (double)g[i] * g[i];
#pragma omp ordered
        total += acc;
    }
    return sqrt(total);
}

void train_scale(float *g, size_t n, float s) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) g[i] *= s;
}
