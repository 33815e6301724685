/* common/err.h: error reporting shared by every module.
 *
 * Two tiers (see docs of the project's style notes):
 *   - SAE_ASSERT(x): a broken contract inside the program (a bug). Always on,
 *     prints file:line and aborts.
 *   - sae_error: an environmental failure (bad file, I/O, out of memory, bad
 *     argument). Library functions fill a caller-owned sae_error and return its
 *     negative code; only cli/ prints "sae: error: FILE: what" and exits.
 *
 *     sae_error err = {0};
 *     if (data_actfile_open(&f, path, &err) < 0)
 *         fprintf(stderr, "sae: error: %s: %s\n", err.subject, err.msg);
 */
#ifndef SAE_COMMON_ERR_H
#define SAE_COMMON_ERR_H

#include <stdio.h>
#include <stdlib.h>

/* X-macro: code, name, description. */
#define SAE_ERR_MAP(X)                                   \
    X(SAE_ERR_IO, -1, "input/output error")              \
    X(SAE_ERR_FORMAT, -2, "malformed file")              \
    X(SAE_ERR_NOMEM, -3, "out of memory")                \
    X(SAE_ERR_ARG, -4, "invalid argument")               \
    X(SAE_ERR_UNSUPPORTED, -5, "unsupported")            \
    X(SAE_ERR_NONFINITE, -6, "non-finite values")        \
    X(SAE_ERR_MISMATCH, -7, "incompatible inputs")

enum sae_err {
    SAE_OK = 0,
#define SAE__ERR_ENUM(name, val, desc) name = val,
    SAE_ERR_MAP(SAE__ERR_ENUM)
#undef SAE__ERR_ENUM
};

typedef struct sae_error {
    int code;          /* enum sae_err, 0 when no error */
    char subject[512]; /* the file (or flag) the error is about; may be empty */
    char msg[512];     /* what is wrong, one line, no trailing newline */
} sae_error;

const char *sae_err_str(int code);

/* Record an error about `subject` (a path, may be NULL) and return `code`, so a
 * failing function can `return sae_error_set(err, SAE_ERR_IO, path, "...")`.
 * A NULL err is allowed (the message is dropped). Keeps the first error only:
 * a cleanup failure never hides the cause. */
int sae_error_set(sae_error *err, int code, const char *subject, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

void sae__assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));
#define SAE_ASSERT(x) ((x) ? (void)0 : sae__assert_fail(#x, __FILE__, __LINE__))

#endif
