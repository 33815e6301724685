/* cli/args.c: option tables -> getopt-style parsing with strict values, usage
 * text, error lines, signals.
 *
 * Each flag is given at most once on a command line: a second `--k` (or a
 * second `--resume`, booleans too, so one rule covers every flag) is a usage
 * error naming it, since only one value could be used. The exception is a
 * CLI_STRS flag, which is repeatable: its values are kept in order. A config
 * file may set a key once (cli/config.c); flags then override it, and for a
 * CLI_STRS flag the command line's values replace the config's, whole. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/fileutil.h"
#include "common/mem.h"

volatile sig_atomic_t cli_interrupted = 0;

/* A signal that ends the process: remove the temporary files of outputs being
 * written (async-signal-safe), then die of the signal as if unhandled, so the
 * parent sees the real cause. */
static void on_fatal_signal(int sig) {
    sae_tmp_remove_all();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigaction(sig, &sa, NULL);
    raise(sig); /* delivered once this handler returns: the signal is blocked in it */
}

/* The first SIGINT/SIGTERM asks a long command to checkpoint and stop; a
 * second one (it is not stopping fast enough) ends it at once. */
static void on_signal(int sig) {
    if (cli_interrupted) on_fatal_signal(sig);
    cli_interrupted = 1;
}

static void set_handler(int sig, void (*fn)(int)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

void cli_install_cleanup(void) {
    atexit(sae_tmp_remove_all);
    static const int SIGS[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof SIGS / sizeof SIGS[0]; i++) {
        struct sigaction old;
        /* a signal ignored from the start (nohup, a background job's SIGINT) stays ignored */
        if (sigaction(SIGS[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
        set_handler(SIGS[i], on_fatal_signal);
    }
}

void cli_install_signals(void) {
    set_handler(SIGINT, on_signal);
    set_handler(SIGTERM, on_signal);
}

static void note_removed(const char *tmp, void *user) {
    (void)user;
    fprintf(stderr, "sae: note: removed %s, left by a run that was killed\n", tmp);
}

int cli_check_paths(const sae_paths *ps) {
    sae_error err = {0};
    if (sae_paths_check(ps, &err) < 0) {
        cli_error(&err);
        return err.code == SAE_ERR_ARG ? CLI_EXIT_USAGE : CLI_EXIT_ERROR;
    }
    for (size_t i = 0; i < ps->n; i++)
        if (ps->p[i].kind != SAE_PATH_IN && ps->p[i].kind != SAE_PATH_IN_DIR) sae_remove_stale_tmp(ps->p[i].path, note_removed, NULL);
    return 0;
}

int cli_default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void cli_error(const sae_error *err) {
    if (err->subject[0])
        fprintf(stderr, "sae: error: %s: %s\n", err->subject, err->msg);
    else
        fprintf(stderr, "sae: error: %s\n", err->msg[0] ? err->msg : sae_err_str(err->code));
}

void cli_errorf(const char *subject, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (subject && subject[0]) fprintf(stderr, "sae: error: %s: %s\n", subject, msg);
    else fprintf(stderr, "sae: error: %s\n", msg);
}

void cli_warn(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "sae: warning: %s\n", msg);
}

/* Why a number was refused; each gets its own message. */
typedef enum {
    NUM_OK,
    NUM_JUNK,      /* not a number at all, or text after it */
    NUM_NEGATIVE,
    NUM_FRACTION,  /* a count that is not whole */
    NUM_NONFINITE, /* nan, inf */
    NUM_TOO_LARGE, /* past the type's range (also strtod's overflow) */
    NUM_TOO_SMALL, /* nonzero but rounds to 0 in the type */
} num_status;

/* Non-negative integer up to max: digits, scientific notation or a k/M/G
 * suffix (decimal: 2M = 2000000). Plain digits are parsed exactly (a double
 * would round 2^53 + 1). */
static num_status parse_count(const char *s, uint64_t max, uint64_t *out) {
    if (!s || !*s || isspace((unsigned char)*s)) return NUM_JUNK;
    size_t nd = strspn(s, "0123456789");
    if (nd && !s[nd]) {
        errno = 0;
        unsigned long long v = strtoull(s, NULL, 10);
        if (errno == ERANGE || v > max) return NUM_TOO_LARGE;
        *out = v;
        return NUM_OK;
    }
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    int range = errno == ERANGE;
    if (end == s) return NUM_JUNK;
    double mult = 1;
    if (*end == 'k' || *end == 'K') mult = 1e3, end++;
    else if (*end == 'm' || *end == 'M') mult = 1e6, end++;
    else if (*end == 'g' || *end == 'G') mult = 1e9, end++;
    if (*end) return NUM_JUNK;
    if (isnan(v) || (isinf(v) && !range)) return NUM_NONFINITE;
    if (v < 0) return NUM_NEGATIVE;
    if (range && v > 1) return NUM_TOO_LARGE;
    v *= mult;
    if (range || v != floor(v)) return NUM_FRACTION; /* an underflow is not whole either */
    if (v >= 18446744073709551616.0 || v > (double)max) return NUM_TOO_LARGE;
    *out = (uint64_t)v;
    return NUM_OK;
}

/* A finite number that the target type (float or double) holds. */
static num_status parse_real(const char *s, int is_float, double *out, const char **junk) {
    *junk = NULL;
    if (!s || !*s || isspace((unsigned char)*s)) return NUM_JUNK;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    int range = errno == ERANGE;
    if (end == s) return NUM_JUNK;
    if (*end) {
        *junk = end;
        return NUM_JUNK;
    }
    if (isnan(v) || (isinf(v) && !range)) return NUM_NONFINITE;
    if (range) return fabs(v) > 1 ? NUM_TOO_LARGE : NUM_TOO_SMALL;
    if (is_float && fabs(v) > FLT_MAX) return NUM_TOO_LARGE;
    if (is_float && v != 0 && (float)v == 0) return NUM_TOO_SMALL;
    *out = v;
    return NUM_OK;
}

static int count_error(const cli_opt *o, const char *value, const char *src, num_status st, uint64_t max) {
    switch (st) {
    case NUM_NEGATIVE:
        cli_errorf(src, "--%s expects a non-negative whole number, got '%s': it is negative", o->name, value);
        break;
    case NUM_FRACTION:
        cli_errorf(src, "--%s expects a non-negative whole number, got '%s': it is not whole", o->name, value);
        break;
    case NUM_NONFINITE:
        cli_errorf(src, "--%s expects a non-negative whole number, got '%s': it is not finite", o->name, value);
        break;
    case NUM_TOO_LARGE:
        cli_errorf(src, "--%s is out of range: '%s' is larger than %" PRIu64 ", the most it takes", o->name, value, max);
        break;
    default: cli_errorf(src, "--%s expects a non-negative whole number, got '%s'", o->name, value);
    }
    return CLI_EXIT_USAGE;
}

static int real_error(const cli_opt *o, const char *value, const char *src, num_status st, const char *junk) {
    const char *type = o->type == CLI_FLOAT ? "float" : "double";
    double lim = o->type == CLI_FLOAT ? FLT_MAX : DBL_MAX;
    switch (st) {
    case NUM_NONFINITE: cli_errorf(src, "--%s expects a finite number, got '%s'", o->name, value); break;
    case NUM_TOO_LARGE:
        cli_errorf(src, "--%s is out of range: '%s' is beyond the largest %s (%.4g)", o->name, value, type, lim);
        break;
    case NUM_TOO_SMALL:
        cli_errorf(src, "--%s is out of range: '%s' is too close to zero for a %s (it would be 0)", o->name, value, type);
        break;
    default:
        if (junk) cli_errorf(src, "--%s expects a number, got '%s' (unexpected '%s' after the number)", o->name, value, junk);
        else cli_errorf(src, "--%s expects a number, got '%s'", o->name, value);
    }
    return CLI_EXIT_USAGE;
}

int cli_set(const cli_opt *o, const char *value, const char *src) {
    uint64_t u;
    switch (o->type) {
    case CLI_SIZE:
    case CLI_U64:
    case CLI_INT: {
        uint64_t max = o->type == CLI_INT ? (uint64_t)INT_MAX : o->type == CLI_SIZE ? (uint64_t)SIZE_MAX : UINT64_MAX;
        num_status st = parse_count(value, max, &u);
        if (st != NUM_OK) return count_error(o, value, src, st, max);
        if (o->type == CLI_SIZE) *(size_t *)o->target = (size_t)u;
        else if (o->type == CLI_U64) *(uint64_t *)o->target = u;
        else *(int *)o->target = (int)u;
        return 0;
    }
    case CLI_FLOAT:
    case CLI_DOUBLE: {
        double v;
        const char *junk;
        num_status st = parse_real(value, o->type == CLI_FLOAT, &v, &junk);
        if (st != NUM_OK) return real_error(o, value, src, st, junk);
        if (o->type == CLI_FLOAT) *(float *)o->target = (float)v;
        else *(double *)o->target = v;
        return 0;
    }
    case CLI_STR: *(const char **)o->target = value; return 0;
    case CLI_STRS: {
        cli_strs *l = o->target;
        if (l->n >= CLI_STRS_MAX) {
            cli_errorf(src, "--%s is given more than %d times, the most it takes", o->name, CLI_STRS_MAX);
            return CLI_EXIT_USAGE;
        }
        l->v[l->n++] = value;
        return 0;
    }
    case CLI_TRUE: *(int *)o->target = 1; return 0;
    case CLI_FALSE: *(int *)o->target = 0; return 0;
    case CLI_CHOICE:
        for (int i = 0; o->choices[i]; i++)
            if (strcmp(o->choices[i], value) == 0) {
                *(int *)o->target = i;
                return 0;
            }
        {
            char list[256] = "";
            for (int i = 0; o->choices[i]; i++) {
                strncat(list, i ? "|" : "", sizeof list - strlen(list) - 1);
                strncat(list, o->choices[i], sizeof list - strlen(list) - 1);
            }
            cli_errorf(src, "--%s must be one of %s, got '%s'", o->name, list, value);
        }
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_USAGE;
}

static const cli_opt *find_opt(const cli_opt *opts, size_t n, const char *name, size_t len) {
    for (size_t i = 0; i < n; i++)
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0) return &opts[i];
    return NULL;
}

static int takes_value(const cli_opt *o) { return o->type != CLI_TRUE && o->type != CLI_FALSE; }

/* The second time option o appears in one pass: an error unless it is
 * repeatable. The first time a CLI_STRS flag appears its list restarts, so
 * the command line replaces what a config file gave. */
static int note_given(const cli_opt *o, unsigned char *given, const char *cmd) {
    if (*given && o->type != CLI_STRS) {
        cli_errorf(cmd, "--%s is given twice (%sgive it once)", o->name,
                   takes_value(o) ? "it takes one value; " : "");
        return CLI_EXIT_USAGE;
    }
    if (!*given && o->type == CLI_STRS) ((cli_strs *)o->target)->n = 0;
    *given = 1;
    return 0;
}

/* One pass over argv; only_config selects the --config pass. given (n_opts)
 * marks the options seen so far in this pass. */
static int parse_pass(int argc, char **argv, const char *cmd, const cli_opt *opts, size_t n_opts,
                      const char **pos, size_t max_pos, size_t *n_pos, int *help, int only_config,
                      unsigned char *given) {
    int options_done = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options_done || a[0] != '-' || a[1] == 0) {
            if (only_config) continue;
            if (*n_pos >= max_pos) {
                cli_errorf(cmd, "unexpected argument '%s' (try 'sae %s --help')", a, cmd);
                return CLI_EXIT_USAGE;
            }
            pos[(*n_pos)++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *help = 1;
            continue;
        }
        if (a[1] != '-') {
            if (only_config) continue;
            cli_errorf(cmd, "unknown option '%s' (options are long, e.g. --out; try 'sae %s --help')",
                       a, cmd);
            return CLI_EXIT_USAGE;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const cli_opt *o = find_opt(opts, n_opts, name, len);
        if (!o) {
            if (only_config) continue;
            cli_errorf(cmd, "unknown option '--%.*s' (try 'sae %s --help')", (int)len, name, cmd);
            return CLI_EXIT_USAGE;
        }
        const char *value = NULL;
        if (takes_value(o)) {
            if (eq) value = eq + 1;
            else if (i + 1 < argc) value = argv[++i];
            else {
                if (only_config) continue;
                cli_errorf(cmd, "option --%s needs a value", o->name);
                return CLI_EXIT_USAGE;
            }
        } else if (eq) {
            if (only_config) continue;
            cli_errorf(cmd, "option --%s takes no value", o->name);
            return CLI_EXIT_USAGE;
        }
        int is_config = strcmp(o->name, "config") == 0;
        if (is_config != only_config) continue;
        int rc = note_given(o, &given[o - opts], cmd);
        if (rc) return rc;
        rc = cli_set(o, value, cmd);
        if (rc) return rc;
        if (is_config) {
            rc = cli_config_load(value, cmd, opts, n_opts);
            if (rc) return rc;
        }
    }
    return 0;
}

int cli_parse(int argc, char **argv, const char *cmd, const cli_opt *opts, size_t n_opts,
              const char **pos, size_t max_pos, size_t *n_pos, int *help) {
    *n_pos = 0;
    *help = 0;
    unsigned char *given = sae_calloc_n(n_opts ? n_opts : 1, 1);
    if (!given) {
        cli_errorf(cmd, "out of memory parsing the command line");
        return CLI_EXIT_ERROR;
    }
    /* repeatable lists start empty, so that parsing the same argv again (train
     * does, for an architecture's defaults) gives the same lists */
    for (size_t i = 0; i < n_opts; i++)
        if (opts[i].type == CLI_STRS) ((cli_strs *)opts[i].target)->n = 0;
    /* config first, so that every flag on the command line overrides it */
    int rc = parse_pass(argc, argv, cmd, opts, n_opts, pos, max_pos, n_pos, help, 1, given);
    /* flags are read with --help too: help shows the defaults they select (an architecture's) */
    if (rc == 0) {
        memset(given, 0, n_opts ? n_opts : 1);
        rc = parse_pass(argc, argv, cmd, opts, n_opts, pos, max_pos, n_pos, help, 0, given);
    }
    sae_free(given);
    return rc;
}

static void format_value(char *buf, size_t cap, const cli_opt *o) {
    switch (o->type) {
    case CLI_SIZE: /* SAE_AUTO: decided from the data */
        if (*(size_t *)o->target == (size_t)-1) snprintf(buf, cap, "auto");
        else snprintf(buf, cap, "%zu", *(size_t *)o->target);
        break;
    case CLI_U64: snprintf(buf, cap, "%llu", (unsigned long long)*(uint64_t *)o->target); break;
    case CLI_INT: snprintf(buf, cap, "%d", *(int *)o->target); break;
    case CLI_FLOAT: snprintf(buf, cap, "%g", (double)*(float *)o->target); break;
    case CLI_DOUBLE: snprintf(buf, cap, "%g", *(double *)o->target); break;
    case CLI_STR: {
        const char *s = *(const char **)o->target;
        snprintf(buf, cap, "%s", s ? s : "");
        break;
    }
    case CLI_CHOICE: { /* a negative index: not given, decided later (the help says how) */
        int i = *(int *)o->target;
        snprintf(buf, cap, "%s", i >= 0 ? o->choices[i] : "auto");
        break;
    }
    case CLI_STRS: { /* the values it holds, comma-separated (none by default) */
        const cli_strs *l = o->target;
        buf[0] = 0;
        for (size_t i = 0; i < l->n; i++) {
            strncat(buf, i ? "," : "", cap - strlen(buf) - 1);
            strncat(buf, l->v[i], cap - strlen(buf) - 1);
        }
        break;
    }
    default: buf[0] = 0;
    }
}

void cli_usage(FILE *out, const char *cmd, const char *synopsis, const char *about,
               const cli_opt *opts, size_t n_opts) {
    cli_usage_notes(out, cmd, synopsis, about, opts, n_opts, NULL);
}

void cli_usage_notes(FILE *out, const char *cmd, const char *synopsis, const char *about,
                     const cli_opt *opts, size_t n_opts, const char *const *notes) {
    fprintf(out, "usage: sae %s %s\n\n%s\n\noptions:\n", cmd, synopsis, about);
    for (size_t i = 0; i < n_opts; i++) {
        const cli_opt *o = &opts[i];
        char flag[64], def[128];
        if (o->type == CLI_CHOICE) {
            char list[128] = "";
            for (int c = 0; o->choices[c]; c++) {
                strncat(list, c ? "|" : "", sizeof list - strlen(list) - 1);
                strncat(list, o->choices[c], sizeof list - strlen(list) - 1);
            }
            snprintf(flag, sizeof flag, "--%s %s", o->name, list);
        } else {
            snprintf(flag, sizeof flag, o->type == CLI_STRS ? "--%s X (repeatable)"
                                        : takes_value(o) ? "--%s X" : "--%s", o->name);
        }
        format_value(def, sizeof def, o);
        fprintf(out, "  %-26s %s", flag, o->help);
        if (notes && notes[i]) fprintf(out, " [%s]", notes[i]);
        else if (takes_value(o) && def[0] && o->type != CLI_CHOICE) fprintf(out, " [%s]", def);
        else if (o->type == CLI_CHOICE) fprintf(out, " [%s]", def);
        fputc('\n', out);
    }
    fprintf(out, "  %-26s %s\n", "--help", "show this help");
}

void cli_json_num(cJSON *obj, const char *key, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(obj, key, v);
    else cJSON_AddNullToObject(obj, key);
}
