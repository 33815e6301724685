/* common/mem.h: the one allocator. Every allocation in the program goes
 * through these functions, so that a test can make any one of them fail
 * (sae_mem_fail_at) and check that each caller turns that into a clean
 * SAE_ERR_NOMEM with nothing leaked.
 *
 * Two kinds of memory, both released with sae_free:
 *   - sae_alloc / sae_calloc: numeric buffers, 64-byte aligned. Alignment keeps
 *     SIMD loads aligned and, more importantly, makes BLAS take the same code
 *     path on every run, which bitwise reproducibility needs.
 *   - sae_malloc / sae_calloc_n / sae_realloc / sae_strdup: everything else
 *     (structs, index arrays, strings), with the C library's semantics except
 *     that every size product is overflow-checked (an overflow returns NULL).
 * All return NULL on failure; sae_free(NULL) is a no-op. The memory is the C
 * library's, so a buffer from getline() or a library may also go to sae_free.
 */
#ifndef SAE_COMMON_MEM_H
#define SAE_COMMON_MEM_H

#include <stddef.h>

void *sae_alloc(size_t bytes);  /* uninitialised, 64-byte aligned */
void *sae_calloc(size_t bytes); /* zeroed, 64-byte aligned */
void *sae_malloc(size_t bytes);
void *sae_calloc_n(size_t count, size_t size);        /* zeroed; count*size checked */
void *sae_realloc(void *p, size_t bytes);              /* p is kept on failure */
void *sae_realloc_n(void *p, size_t count, size_t size);
char *sae_strdup(const char *s);
void sae_free(void *p);

/* a*b, or 0 with *overflow set when it does not fit in size_t. */
static inline size_t sae_mul_size(size_t a, size_t b, int *overflow) {
    size_t r;
    if (__builtin_mul_overflow(a, b, &r)) {
        *overflow = 1;
        return 0;
    }
    return r;
}

/* Failure injection for tests. After sae_mem_fail_at(n), the n-th allocation
 * from now (counting from 0) returns NULL; the others succeed. n < 0 turns it
 * off. sae_mem_count() is the number of allocations attempted so far, which
 * tells a test when n has passed the last allocation of the path under test.
 * Both are thread-safe. */
void sae_mem_fail_at(long n);
unsigned long sae_mem_count(void);

#endif
