/* common/mem.h: aligned allocation used for every numeric buffer.
 *
 * 64-byte alignment keeps SIMD loads aligned and, more importantly, makes BLAS
 * take the same code path on every run, which bitwise reproducibility needs.
 * sae_alloc returns NULL on failure (callers turn that into SAE_ERR_NOMEM);
 * sae_free(NULL) is a no-op.
 */
#ifndef SAE_COMMON_MEM_H
#define SAE_COMMON_MEM_H

#include <stddef.h>

void *sae_alloc(size_t bytes);  /* uninitialised, 64-byte aligned */
void *sae_calloc(size_t bytes); /* zeroed, 64-byte aligned */
void sae_free(void *p);

#endif
