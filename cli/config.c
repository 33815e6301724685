/* cli/config.c: INI config files (parsed by inih) applied through the same
 * option table as the flags, so a key means exactly what its flag means. */
#include <ini.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/mem.h"

typedef struct {
    const char *cmd, *path;
    const cli_opt *opts;
    size_t n_opts;
    char msg[512];
    int rc;
} cfg_ctx;

/* String values outlive the parse (options point at them until the command
 * returns, and a command may read its config twice): kept here, freed at exit. */
static char **kept;
static size_t n_kept, cap_kept;

static void free_kept(void) {
    for (size_t i = 0; i < n_kept; i++) sae_free(kept[i]);
    sae_free(kept);
    kept = NULL, n_kept = cap_kept = 0;
}

static const char *keep_string(const char *value) {
    if (n_kept == cap_kept) {
        size_t cap = cap_kept ? 2 * cap_kept : 16;
        char **k = sae_realloc(kept, cap * sizeof *k);
        if (!k) return NULL;
        if (!kept) atexit(free_kept);
        kept = k, cap_kept = cap;
    }
    char *s = sae_strdup(value);
    if (s) kept[n_kept++] = s;
    return s;
}

static int handler(void *user, const char *section, const char *name, const char *value) {
    cfg_ctx *c = user;
    if (c->rc || c->msg[0]) return 0; /* report only the first problem */
    if (section[0] && strcmp(section, c->cmd) != 0) {
        snprintf(c->msg, sizeof c->msg, "section [%s] does not apply to 'sae %s' (use [%s])",
                 section, c->cmd, c->cmd);
        return 0;
    }
    char key[128];
    snprintf(key, sizeof key, "%s", name);
    for (char *p = key; *p; p++)
        if (*p == '_') *p = '-';
    for (size_t i = 0; i < c->n_opts; i++) {
        const cli_opt *o = &c->opts[i];
        if (strcmp(o->name, key) != 0) continue;
        if (!o->in_config) {
            snprintf(c->msg, sizeof c->msg, "'%s' cannot be set in a config file", name);
            return 0;
        }
        /* inih hands out a buffer it reuses: keep strings alive */
        const char *v = o->type == CLI_STR ? keep_string(value) : value;
        if (!v) {
            snprintf(c->msg, sizeof c->msg, "out of memory");
            return 0;
        }
        if (o->type == CLI_TRUE || o->type == CLI_FALSE) {
            int on = strcmp(value, "true") == 0 || strcmp(value, "1") == 0 || strcmp(value, "yes") == 0;
            int off = strcmp(value, "false") == 0 || strcmp(value, "0") == 0 || strcmp(value, "no") == 0;
            if (!on && !off) {
                snprintf(c->msg, sizeof c->msg, "'%s' expects true or false, got '%s'", name, value);
                return 0;
            }
            *(int *)o->target = o->type == CLI_TRUE ? on : off;
            return 1;
        }
        char src[600];
        snprintf(src, sizeof src, "%s", c->path);
        c->rc = cli_set(o, v, src);
        if (c->rc) {
            c->msg[0] = 0; /* cli_set printed the error */
            return 0;
        }
        return 1;
    }
    snprintf(c->msg, sizeof c->msg, "unknown key '%s' (keys are the long flags of 'sae %s', "
             "see 'sae %s --help')", name, c->cmd, c->cmd);
    return 0;
}

int cli_config_load(const char *path, const char *cmd, const cli_opt *opts, size_t n_opts) {
    cfg_ctx c = {.cmd = cmd, .path = path, .opts = opts, .n_opts = n_opts};
    int rc = ini_parse(path, handler, &c);
    if (rc == -1) {
        cli_errorf(path, "cannot open config file");
        return CLI_EXIT_USAGE;
    }
    if (rc == -2) {
        cli_errorf(path, "out of memory reading config file");
        return CLI_EXIT_ERROR;
    }
    if (rc > 0) {
        if (c.msg[0]) {
            char subj[600];
            snprintf(subj, sizeof subj, "%s:%d", path, rc);
            cli_errorf(subj, "%s", c.msg);
        } else if (!c.rc) {
            char subj[600];
            snprintf(subj, sizeof subj, "%s:%d", path, rc);
            cli_errorf(subj, "syntax error (expected 'key = value' or '[section]')");
        }
        return CLI_EXIT_USAGE;
    }
    return 0;
}
