/* cli/config.c: INI config files (common/ini.h) applied through the same
 * option table as the flags, so a key means exactly what its flag means. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/fileutil.h"
#include "common/ini.h"
#include "common/mem.h"

typedef struct {
    const char *cmd;
    const cli_opt *opts;
    size_t n_opts;
    size_t *set_on; /* per option: the line that set it in this file, 0 = none */
    int rc;         /* a CLI exit code when cli_set already printed the error */
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
        char **k = sae_realloc_n(kept, cap, sizeof *k);
        if (!k) return NULL;
        if (!kept) atexit(free_kept);
        kept = k, cap_kept = cap;
    }
    char *s = sae_strdup(value);
    if (s) kept[n_kept++] = s;
    return s;
}

/* A config key is its flag's name with '_' for '-'; either spelling works. */
static int key_is(const char *flag, const char *key) {
    for (; *flag && *key; flag++, key++)
        if (*flag != *key && !(*flag == '-' && *key == '_')) return 0;
    return !*flag && !*key;
}

static int set_bool(const cli_opt *o, const sae_ini_entry *e, sae_error *err) {
    const char *v = e->value;
    int on = !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes");
    int off = !strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no");
    if (!on && !off)
        return sae_ini_error(err, SAE_ERR_ARG, e, "'%.100s' expects true or false, got '%.100s'", e->key, v);
    *(int *)o->target = o->type == CLI_TRUE ? on : off;
    return 0;
}

static int apply(cfg_ctx *c, size_t i, const sae_ini_entry *e, sae_error *err) {
    const cli_opt *o = &c->opts[i];
    if (!o->in_config)
        return sae_ini_error(err, SAE_ERR_ARG, e, "'%.100s' cannot be set in a config file", e->key);
    if (c->set_on[i])
        return sae_ini_error(err, SAE_ERR_ARG, e, "'%.100s' is already set on line %zu (--%s)", e->key,
                             c->set_on[i], o->name);
    c->set_on[i] = e->line;
    if (o->type == CLI_TRUE || o->type == CLI_FALSE) return set_bool(o, e, err);
    const char *v = o->type == CLI_STR || o->type == CLI_STRS ? keep_string(e->value) : e->value;
    if (!v) return sae_ini_error(err, SAE_ERR_NOMEM, e, "out of memory");
    char src[sizeof err->subject];
    snprintf(src, sizeof src, "%s:%zu", e->name, e->line);
    c->rc = cli_set(o, v, src);
    return c->rc ? SAE_ERR_ARG : 0; /* cli_set printed the error */
}

static int on_entry(void *user, const sae_ini_entry *e, sae_error *err) {
    cfg_ctx *c = user;
    if (e->section[0] && strcmp(e->section, c->cmd) != 0) {
        sae_ini_entry at = *e; /* the error is the [section] line, not its first key */
        at.line = e->section_line;
        return sae_ini_error(err, SAE_ERR_ARG, &at, "section [%.100s] does not apply to 'sae %s' (use [%s])",
                             e->section, c->cmd, c->cmd);
    }
    for (size_t i = 0; i < c->n_opts; i++)
        if (key_is(c->opts[i].name, e->key)) return apply(c, i, e, err);
    return sae_ini_error(err, SAE_ERR_ARG, e,
                         "unknown key '%.100s' (keys are the long flags of 'sae %s', see 'sae %s --help')",
                         e->key, c->cmd, c->cmd);
}

int cli_config_load(const char *path, const char *cmd, const cli_opt *opts, size_t n_opts) {
    sae_error err = {0};
    if (sae_check_input_file(path, "--config", &err) != 0) {
        /* the path itself: empty, missing, a directory, unreadable */
        cli_errorf(err.subject, "cannot open config file: %s", err.msg);
        return CLI_EXIT_USAGE;
    }
    cfg_ctx c = {.cmd = cmd, .opts = opts, .n_opts = n_opts};
    c.set_on = sae_calloc_n(n_opts ? n_opts : 1, sizeof *c.set_on);
    if (!c.set_on) {
        cli_errorf(path, "out of memory reading config file");
        return CLI_EXIT_ERROR;
    }
    int rc = sae_ini_parse_file(path, on_entry, &c, &err);
    sae_free(c.set_on);
    if (rc == 0) return 0;
    if (c.rc) return c.rc; /* cli_set printed it */
    cli_error(&err);
    return rc == SAE_ERR_NOMEM || rc == SAE_ERR_IO ? CLI_EXIT_ERROR : CLI_EXIT_USAGE;
}
