/* cli/args.c: option tables -> getopt-style parsing with strict values, usage
 * text, error lines, signals. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

volatile sig_atomic_t cli_interrupted = 0;

static void on_signal(int sig) {
    (void)sig;
    cli_interrupted = 1;
}

void cli_install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
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

/* Non-negative integer: digits, scientific notation or a k/M/G suffix
 * (decimal: 2M = 2000000). Returns 0 on success. */
static int parse_count(const char *s, uint64_t *out) {
    if (!s || !*s || *s == '-' || isspace((unsigned char)*s)) return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || end == s) return -1;
    double mult = 1;
    if (*end == 'k' || *end == 'K') mult = 1e3, end++;
    else if (*end == 'm' || *end == 'M') mult = 1e6, end++;
    else if (*end == 'g' || *end == 'G') mult = 1e9, end++;
    if (*end) return -1;
    v *= mult;
    if (!(v >= 0) || v > 1.8e19 || v != floor(v)) return -1;
    *out = (uint64_t)v;
    return 0;
}

int cli_set(const cli_opt *o, const char *value, const char *src) {
    uint64_t u;
    char *end;
    switch (o->type) {
    case CLI_SIZE:
    case CLI_U64:
    case CLI_INT:
        if (parse_count(value, &u) != 0 || (o->type == CLI_INT && u > 0x7fffffff)) {
            cli_errorf(src, "--%s expects a non-negative whole number, got '%s'", o->name, value);
            return CLI_EXIT_USAGE;
        }
        if (o->type == CLI_SIZE) *(size_t *)o->target = (size_t)u;
        else if (o->type == CLI_U64) *(uint64_t *)o->target = u;
        else *(int *)o->target = (int)u;
        return 0;
    case CLI_FLOAT:
    case CLI_DOUBLE: {
        errno = 0;
        double v = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(v)) {
            cli_errorf(src, "--%s expects a number, got '%s'", o->name, value);
            return CLI_EXIT_USAGE;
        }
        if (o->type == CLI_FLOAT) *(float *)o->target = (float)v;
        else *(double *)o->target = v;
        return 0;
    }
    case CLI_STR: *(const char **)o->target = value; return 0;
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

/* One pass over argv; only_config selects the --config pass. */
static int parse_pass(int argc, char **argv, const char *cmd, const cli_opt *opts, size_t n_opts,
                      const char **pos, size_t max_pos, size_t *n_pos, int *help, int only_config) {
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
        int rc = cli_set(o, value, cmd);
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
    /* config first, so that every flag on the command line overrides it */
    int rc = parse_pass(argc, argv, cmd, opts, n_opts, pos, max_pos, n_pos, help, 1);
    /* flags are read with --help too: help shows the defaults they select (an architecture's) */
    if (rc == 0) rc = parse_pass(argc, argv, cmd, opts, n_opts, pos, max_pos, n_pos, help, 0);
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
    case CLI_CHOICE: snprintf(buf, cap, "%s", o->choices[*(int *)o->target]); break;
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
            snprintf(flag, sizeof flag, takes_value(o) ? "--%s X" : "--%s", o->name);
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
