/* cli/main.c: `sae`, one binary with git-style subcommands. The table below
 * is the list of commands; each parses its own options (cli/args.c). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "common/mem.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command COMMANDS[] = {
    {"demo", cmd_demo, "synthesize data, train an SAE on it, evaluate it (no input needed)"},
    {"capture", cmd_capture, "run a llama2.c model over a corpus, write its activations"},
    {"generate", cmd_generate, "continue a prompt with a llama2.c model (check it loads)"},
    {"tokenize", cmd_tokenize, "print the ids and pieces llama2.c's tokenizer gives a text"},
    {"synth", cmd_synth, "write a synthetic activation file with a planted dictionary"},
    {"train", cmd_train, "train a sparse autoencoder on an activation file"},
    {"eval", cmd_eval, "measure an SAE on an activation file (JSON: fvu, mse, l0, ...)"},
    {"features", cmd_features, "build a feature dictionary: stats, top examples, labels, logit lens"},
    {"show", cmd_show, "print one feature's card from a features file"},
    {"docs", cmd_docs, "list the corpus documents of an activation file (--doc N means these)"},
    {"search", cmd_search, "rank features: --token-regex, --logit-regex or --contrast A:B"},
    {"viz", cmd_viz, "PNG figures: align, trace, text, curves, density"},
    {"import", cmd_import, "rewrite a published SAE (SAELens, sparsify, Gemma Scope) as an sae file"},
    {"export", cmd_export, "write an SAE for SAELens, or a features file for Neuronpedia"},
    {"info", cmd_info, "describe an activation file, an SAE checkpoint or a features file"},
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static void usage(FILE *out) {
    fprintf(out, "usage: sae COMMAND [options]     (sae COMMAND --help for its options)\n\n"
                 "Sparse autoencoders over language-model activations.\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-8s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(out, "  %-8s %s\n", "help", "this list, or 'sae help COMMAND'");
}

static const command *find(const char *name) {
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(COMMANDS[i].name, name) == 0) return &COMMANDS[i];
    return NULL;
}

int main(int argc, char **argv) {
    /* a write past RLIMIT_FSIZE must fail with EFBIG and be reported, not kill us */
    signal(SIGXFSZ, SIG_IGN);
    /* no exit path, a signal included, leaves a temporary output file */
    cli_install_cleanup();
    /* cJSON allocates through the one allocator too (failure injection, accounting) */
    cJSON_InitHooks(&(cJSON_Hooks){.malloc_fn = sae_malloc, .free_fn = sae_free});
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        if (argc > 2 && strcmp(name, "help") == 0) {
            const command *c = find(argv[2]);
            if (!c) {
                cli_errorf("help", "unknown command '%s'", argv[2]);
                return CLI_EXIT_USAGE;
            }
            char *hargv[] = {(char *)c->name, "--help", NULL};
            return c->run(2, hargv);
        }
        usage(stdout);
        return CLI_EXIT_OK;
    }
    const command *c = find(name);
    if (!c) {
        cli_errorf(NULL, "unknown command '%s' (see 'sae help')", name);
        return CLI_EXIT_USAGE;
    }
    return c->run(argc - 1, argv + 1);
}
