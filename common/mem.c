/* common/mem.c: aligned allocation. */
#include "common/mem.h"

#include <stdlib.h>
#include <string.h>

void *sae_alloc(size_t bytes) {
    if (bytes == 0) bytes = 64;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes) return NULL; /* overflow */
    return aligned_alloc(64, rounded);
}

void *sae_calloc(size_t bytes) {
    void *p = sae_alloc(bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void sae_free(void *p) { free(p); }
