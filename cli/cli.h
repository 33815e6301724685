/* cli/cli.h: the `sae` command line: option tables shared by flags and config
 * files, error printing, and the subcommands. Only cli/ prints errors and
 * decides exit codes: 0 success, 1 runtime error, 2 usage error. */
#ifndef SAE_CLI_H
#define SAE_CLI_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/err.h"
#include "common/fileutil.h"

enum { CLI_EXIT_OK = 0, CLI_EXIT_ERROR = 1, CLI_EXIT_USAGE = 2 };

typedef enum cli_opt_type {
    CLI_SIZE,   /* size_t; accepts 2000000, 2e6, 2M, 512k */
    CLI_U64,    /* uint64_t, same syntax */
    CLI_INT,    /* int */
    CLI_FLOAT,  /* float */
    CLI_DOUBLE, /* double */
    CLI_STR,    /* const char * (points into argv or the config) */
    CLI_TRUE,   /* int set to 1, no value */
    CLI_FALSE,  /* int set to 0, no value */
    CLI_CHOICE, /* int index into `choices` (NULL-terminated) */
    CLI_STRS,   /* cli_strs: a repeatable flag, every value kept in order */
} cli_opt_type;

/* A CLI_STRS option starts empty at each cli_parse (no default values); a
 * config file may give its key once, and the command line's values, when
 * there are any, replace the config's. Every other flag may be given once
 * per command line: a second one is a usage error naming it. */
#define CLI_STRS_MAX 32
typedef struct cli_strs {
    const char *v[CLI_STRS_MAX];
    size_t n;
} cli_strs;

typedef struct cli_opt {
    const char *name;   /* long flag without dashes; config key is the same with '_' */
    cli_opt_type type;
    void *target;
    const char *help;
    int in_config;      /* may also be set from --config files */
    const char *const *choices;
} cli_opt;


/* Parses argv (argv[0] is the subcommand) against opts. Positional arguments
 * are collected into pos (up to max_pos). "--help" sets *help. Returns 0, or
 * prints one error line and returns CLI_EXIT_USAGE. If `config_path` is not
 * NULL, a --config FILE flag is honoured first: its keys are applied before any
 * flag so that flags win. */
int cli_parse(int argc, char **argv, const char *cmd, const cli_opt *opts, size_t n_opts,
              const char **pos, size_t max_pos, size_t *n_pos, int *help);
void cli_usage(FILE *out, const char *cmd, const char *synopsis, const char *about,
               const cli_opt *opts, size_t n_opts);
/* The same, with notes[i] (when not NULL) shown instead of option i's
 * default, e.g. "not used by topk". */
void cli_usage_notes(FILE *out, const char *cmd, const char *synopsis, const char *about,
                     const cli_opt *opts, size_t n_opts, const char *const *notes);
/* Sets one option from text; src names where it came from for messages. */
int cli_set(const cli_opt *o, const char *value, const char *src);

/* key: v in a cJSON object, null when v is not finite (JSON has no infinity,
 * and no sentinel number stands for "undefined"). */
struct cJSON;
void cli_json_num(struct cJSON *obj, const char *key, double v);

/* "sae: error: SUBJECT: MSG" (subject omitted when empty). */
void cli_error(const sae_error *err);
void cli_errorf(const char *subject, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Loads an INI file into opts (keys in any section named after cmd, or at the
 * top). Unknown keys are an error naming file and line. */
int cli_config_load(const char *path, const char *cmd, const cli_opt *opts, size_t n_opts);

/* Loads a llama2.c model and its tokenizer (whose size must match), printing
 * the error line on failure; returns 0 or CLI_EXIT_ERROR. */
struct data_llama;
struct data_tokenizer;
int cli_load_model(const char *model_path, const char *tok_path, struct data_llama **m,
                   struct data_tokenizer **t);

/* Every command: temporary files are removed at exit and when SIGINT,
 * SIGTERM or SIGHUP ends the process (main calls this first). */
void cli_install_cleanup(void);
/* SIGINT/SIGTERM set this instead; long commands checkpoint and stop. A
 * second one ends the process as cli_install_cleanup's handler does. */
extern volatile sig_atomic_t cli_interrupted;
void cli_install_signals(void);

/* Checks every path a command declared (fileutil.h: inputs readable, outputs
 * creatable, no output on an input or on another output), printing the one
 * error line; then removes stale temporary files of the outputs, with a note.
 * Returns 0, CLI_EXIT_USAGE or CLI_EXIT_ERROR. */
int cli_check_paths(const sae_paths *ps);
int cli_default_threads(void);

/* cli/provenance.c: before an SAE runs over --data. A width mismatch is an
 * error (printed; returns CLI_EXIT_ERROR); a different model, layer or site
 * than the SAE was trained on is one `sae: warning:` line (returns 0); an SAE
 * file without provenance (older than it) is accepted silently. */
struct data_actfile;
int cli_check_provenance(const char *sae_path, size_t sae_d, const struct data_actfile *f);
/* Loads the SAE (capacity rows; precision a sae_precision, checked against the
 * CPU unless f32) and opens the data, then cli_check_provenance. Prints any
 * error and returns its exit code with nothing left open; 0 on success. */
struct sae_model;
int cli_open_sae_and_data(const char *sae_path, const char *data, size_t capacity, int precision,
                          struct sae_model *m, double *scale, struct data_actfile **f);

/* An SAE to run inside a model (eval --model, generate --sae): loads it for
 * capacity rows and decides its site. *layer and *site come in as given (-1:
 * not given) and go out resolved: from the SAE's provenance when not given
 * (an SAE without provenance needs --layer; the site then defaults to
 * resid_post). Refuses an SAE whose width is not the model's and a layer past
 * the model's depth; warns when the SAE was trained on another model, layer
 * or site. Prints the error line; returns 0 or an exit code. */
struct sae_model;
int cli_open_sae_for_model(const char *sae_path, const struct data_llama *lm, const char *model_path,
                           size_t capacity, struct sae_model *m, double *scale, int *layer, int *site);
/* The edits of --steer F:A, --ablate F and --clamp F:V (any may be NULL) for
 * an SAE of n_latents features, into out (room for 3 * CLI_STRS_MAX). */
struct sae_edit;
int cli_parse_edits(const cli_strs *steer, const cli_strs *ablate, const cli_strs *clamp, size_t n_latents,
                    struct sae_edit *out, size_t *n_out);

/* cli/cmd_docs.c: corpus documents and their windows (data/docs.h), shared by
 * `sae docs`, `sae show`, `sae viz` and `sae info`. */
struct data_docs;
struct sae_model;
/* "doc 54, window 2 of 3 (file window 1023)" for file window w. */
void cli_window_name(char *buf, size_t cap, const struct data_docs *d, size_t w);
/* "  labels       ja 30, en 30 (corpus documents)" (nothing without labels). */
void cli_print_label_counts(const struct data_docs *d, const char *indent);

int cmd_synth(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_capture(int argc, char **argv);
int cmd_features(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_docs(int argc, char **argv);
int cmd_viz(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_import(int argc, char **argv);

#endif
