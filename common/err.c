/* common/err.c: error codes, messages and the assertion handler. */
#include "common/err.h"

#include <stdarg.h>
#include <string.h>

const char *sae_err_str(int code) {
    switch (code) {
    case SAE_OK: return "ok";
#define SAE__ERR_CASE(name, val, desc) case name: return desc;
    SAE_ERR_MAP(SAE__ERR_CASE)
#undef SAE__ERR_CASE
    }
    return "unknown error";
}

int sae_error_set(sae_error *err, int code, const char *subject, const char *fmt, ...) {
    if (!err || err->code != 0) return code;
    err->code = code;
    snprintf(err->subject, sizeof err->subject, "%s", subject ? subject : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    /* one line: replace any newline the formatted parts carried */
    for (char *p = err->msg; *p; p++)
        if (*p == '\n') *p = ' ';
    return code;
}

void sae__assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "sae: internal error: %s:%d: assertion failed: %s\n", file, line, expr);
    fflush(stderr);
    abort();
}
