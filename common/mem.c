/* common/mem.c: the one allocator, with a failure-injection counter. */
#include "common/mem.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_ulong n_attempts;
static atomic_long fail_at = -1; /* absolute attempt index to fail, -1 = none */

void sae_mem_fail_at(long n) {
    atomic_store(&fail_at, n < 0 ? -1 : (long)atomic_load(&n_attempts) + n);
}

unsigned long sae_mem_count(void) { return atomic_load(&n_attempts); }

/* Called when an injected failure fires: `break sae_mem_injected` in a
 * debugger shows which allocation a failing test run was about. */
void sae_mem_injected(void) __attribute__((noinline));
void sae_mem_injected(void) { __asm__ volatile(""); }

/* Counts this attempt; returns 1 when the test asked for it to fail. */
static int injected_failure(void) {
    unsigned long i = atomic_fetch_add(&n_attempts, 1);
    long f = atomic_load(&fail_at);
    if (f < 0 || (unsigned long)f != i) return 0;
    sae_mem_injected();
    return 1;
}

void *sae_alloc(size_t bytes) {
    if (injected_failure()) return NULL;
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

void *sae_malloc(size_t bytes) {
    if (injected_failure()) return NULL;
    return malloc(bytes ? bytes : 1);
}

void *sae_calloc_n(size_t count, size_t size) {
    if (injected_failure()) return NULL;
    int over = 0;
    size_t bytes = sae_mul_size(count, size, &over);
    if (over) return NULL;
    return calloc(bytes ? bytes : 1, 1);
}

void *sae_realloc(void *p, size_t bytes) {
    if (injected_failure()) return NULL;
    return realloc(p, bytes ? bytes : 1);
}

void *sae_realloc_n(void *p, size_t count, size_t size) {
    int over = 0;
    size_t bytes = sae_mul_size(count, size, &over);
    if (over) return NULL;
    return sae_realloc(p, bytes);
}

char *sae_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = sae_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void sae_free(void *p) { free(p); }
