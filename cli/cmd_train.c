/* cli/cmd_train.c: `sae train`. Flags override --config keys, which override
 * the defaults of train_default_params. */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "common/fileutil.h"
#include "common/gemm.h"
#include "train/train.h"


/* Fails early (before hours of training) if the output cannot be created. */
static int check_writable(const char *out) {
    char tmp[4200];
    sae_error err = {0};
    if (sae_tmp_path(tmp, sizeof tmp, out, &err) < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    FILE *f = fopen(tmp, "w");
    if (!f) {
        cli_errorf(out, "cannot create the output: %s", strerror(errno));
        return CLI_EXIT_ERROR;
    }
    fclose(f);
    sae_tmp_discard(tmp);
    return 0;
}

static int check_data(data_actfile *f, int skip_nonfinite) {
    size_t bad = 0, first = 0;
    sae_error err = {0};
    if (data_actfile_count_nonfinite(f, &bad, &first, &err) < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    if (bad == f->n) {
        cli_errorf(f->path, "every row of /activations holds NaN or Inf");
        return CLI_EXIT_ERROR;
    }
    if (bad && !skip_nonfinite) {
        cli_errorf(f->path, "%zu rows of /activations hold NaN or Inf (first at row %zu); "
                   "pass --skip-nonfinite to train without them", bad, first);
        return CLI_EXIT_ERROR;
    }
    if (bad) cli_warn("%s: skipping %zu rows holding NaN or Inf (first at row %zu)", f->path, bad, first);
    return 0;
}

/* Flags read only by some architectures: their help says so for the others. */
static const struct {
    const char *flag;
    unsigned uses;
} ARCH_FLAGS[] = {
    {"k", SAE_USES_K},
    {"aux-k", SAE_USES_AUX},
    {"aux-coef", SAE_USES_AUX},
    {"no-auxk", SAE_USES_AUX},
    {"threshold-lr", SAE_USES_THRESHOLD_LR},
    {"target-l0", SAE_USES_JUMP},
    {"bandwidth", SAE_USES_JUMP},
    {"threshold-init", SAE_USES_JUMP},
    {"widths", SAE_USES_WIDTHS},
    {"sparsity-coef", SAE_USES_SPARSITY},
    {"sparsity-warmup", SAE_USES_SPARSITY},
    {"l1", SAE_USES_SPARSITY},
    {"l1-warmup", SAE_USES_SPARSITY},
};

static void mark_unused(const cli_opt *opts, size_t n, sae_arch arch, const char **notes,
                        const char *note) {
    unsigned uses = sae_arch_uses(arch);
    for (size_t i = 0; i < n; i++) {
        notes[i] = NULL;
        for (size_t f = 0; f < sizeof ARCH_FLAGS / sizeof ARCH_FLAGS[0]; f++)
            if (strcmp(opts[i].name, ARCH_FLAGS[f].flag) == 0 && !(uses & ARCH_FLAGS[f].uses))
                notes[i] = note;
    }
}

/* "1024,4096,16384" -> widths; 0 or CLI_EXIT_USAGE. */
static int parse_widths(const char *s, sae_config *c) {
    c->n_widths = 0;
    for (const char *p = s; *p;) {
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || v == 0 || c->n_widths == SAE_MAX_WIDTHS || (*end && *end != ',')) {
            cli_errorf("--widths", "'%s': expected up to %d positive sizes, comma-separated", s, SAE_MAX_WIDTHS);
            return CLI_EXIT_USAGE;
        }
        c->widths[c->n_widths++] = (size_t)v;
        p = *end ? end + 1 : end;
    }
    return 0;
}

static void train_help(const cli_opt *opts, size_t n_opts, sae_arch arch) {
    char about[2048], note[64];
    const char *notes[64];
    size_t n = (size_t)snprintf(about, sizeof about,
                                "Trains a sparse autoencoder on streamed, shuffled activations. Ctrl-C writes a\n"
                                "checkpoint; the same command with --resume continues it bit for bit.\n"
                                "Architectures (defaults below are for --arch %s):\n",
                                sae_arch_name(arch));
    for (int a = 0; a < SAE_ARCH_COUNT && n < sizeof about; a++)
        n += (size_t)snprintf(about + n, sizeof about - n, "  %-11s %s\n", sae_arch_names[a],
                              sae_arch_summary((sae_arch)a));
    if (n > 0 && n < sizeof about) about[n - 1] = 0;
    snprintf(note, sizeof note, "not used by %s", sae_arch_name(arch));
    SAE_ASSERT(n_opts <= 64);
    mark_unused(opts, n_opts, arch, notes, note);
    cli_usage_notes(stdout, "train", "--data A.h5 --out S.h5 [--arch A] [options]", about, opts, n_opts,
                    notes);
}

int cmd_train(int argc, char **argv) {
    int arch = 0;
    train_params p = train_default_params(SAE_ARCH_TOPK);
    const char *data = NULL, *out = NULL, *config = NULL, *log = NULL, *widths = NULL;
    int resume = 0, threads = cli_default_threads(), no_auxk = 0, bdec = (int)p.bdec_init;
    int precision = SAE_PRECISION_F32;
    cli_opt opts[] = {
        {"data", CLI_STR, &data, "activation file to train on (schema v1)", 1, NULL},
        {"out", CLI_STR, &out, "SAE checkpoint to write (.h5)", 1, NULL},
        {"config", CLI_STR, &config, "INI file of defaults (keys = these flags)", 0, NULL},
        {"arch", CLI_CHOICE, &arch, "architecture", 1, sae_arch_names},
        {"latents", CLI_SIZE, &p.sae.m, "dictionary size M (0 = 8 x d)", 1, NULL},
        {"k", CLI_SIZE, &p.sae.k, "topk: active latents per token; batch archs: their mean", 1, NULL},
        {"aux-k", CLI_SIZE, &p.sae.aux_k, "AuxK latents (auto = d/2)", 1, NULL},
        {"aux-coef", CLI_FLOAT, &p.sae.aux_coef, "AuxK loss weight", 1, NULL},
        {"no-auxk", CLI_TRUE, &no_auxk, "turn the AuxK loss off", 1, NULL},
        {"threshold-lr", CLI_FLOAT, &p.sae.threshold_lr, "rate of the inference threshold's running estimate", 1, NULL},
        {"widths", CLI_STR, &widths, "matryoshka: nested sizes a,b,...,M (default M/16,M/4,M)", 1, NULL},
        {"target-l0", CLI_SIZE, &p.sae.target_l0, "jumprelu: mean L0 the sparsity loss steers to", 1, NULL},
        {"bandwidth", CLI_FLOAT, &p.sae.bandwidth, "jumprelu: straight-through kernel width", 1, NULL},
        {"threshold-init", CLI_FLOAT, &p.sae.threshold_init, "jumprelu: initial thresholds (-1: the value giving --target-l0 on the init sample)", 1, NULL},
        {"sparsity-coef", CLI_FLOAT, &p.sparsity_coef, "relu: L1 coefficient; jumprelu: L0 coefficient", 1, NULL},
        {"sparsity-warmup", CLI_FLOAT, &p.sparsity_warmup, "fraction of steps ramping the sparsity coefficient up", 1, NULL},
        {"l1", CLI_FLOAT, &p.sparsity_coef, "relu: the same as --sparsity-coef", 1, NULL},
        {"l1-warmup", CLI_FLOAT, &p.sparsity_warmup, "relu: the same as --sparsity-warmup", 1, NULL},
        {"tokens", CLI_U64, &p.tokens, "training tokens (0 = one pass over the data)", 1, NULL},
        {"batch", CLI_SIZE, &p.batch, "tokens per step", 1, NULL},
        {"lr", CLI_FLOAT, &p.lr, "peak learning rate (Adam)", 1, NULL},
        {"lr-warmup", CLI_FLOAT, &p.lr_warmup, "fraction of steps warming the lr up", 1, NULL},
        {"lr-decay", CLI_FLOAT, &p.lr_decay, "fraction of steps at the end decaying lr to 0", 1, NULL},
        {"grad-clip", CLI_FLOAT, &p.grad_clip, "clip the gradient norm (0 = off)", 1, NULL},
        {"b-dec-init", CLI_CHOICE, &bdec, "initial decoder bias", 1, train_bdec_init_names},
        {"dead-tokens", CLI_U64, &p.dead_tokens, "a latent is dead after this many tokens unfired", 1, NULL},
        {"buffer", CLI_SIZE, &p.buffer_rows, "shuffle buffer in rows (memory: rows x d x 4 B)", 1, NULL},
        {"skip-nonfinite", CLI_TRUE, &p.skip_nonfinite, "drop NaN/Inf rows instead of refusing", 1, NULL},
        {"threads", CLI_INT, &threads, "threads (BLAS and kernels)", 1, NULL},
        {"precision", CLI_CHOICE, &precision, "encoder product: f32, or bf16 on CPUs with AVX512-BF16/AMX", 1, sae_precision_names},
        {"seed", CLI_U64, &p.seed, "random seed (init and shuffling)", 1, NULL},
        {"log", CLI_STR, &log, "write metrics as JSON lines to this file", 1, NULL},
        {"log-every", CLI_SIZE, &p.log_every, "steps between metric reports", 1, NULL},
        {"checkpoint-every", CLI_U64, &p.checkpoint_every, "tokens between checkpoints (0 = end only)", 1, NULL},
        {"resume", CLI_TRUE, &resume, "continue from the checkpoint at --out", 0, NULL},
    };
    size_t n_opts = sizeof opts / sizeof opts[0], n_pos;
    const char *pos[1];
    int help;
    int rc = cli_parse(argc, argv, "train", opts, n_opts, pos, 0, &n_pos, &help);
    if (rc == 0 && (sae_arch)arch != p.sae.arch) {
        /* the defaults (lr, l1, clip...) depend on the architecture, which the
         * config or a flag chose: start again from that architecture's defaults */
        p = train_default_params((sae_arch)arch);
        bdec = (int)p.bdec_init;
        rc = cli_parse(argc, argv, "train", opts, n_opts, pos, 0, &n_pos, &help);
    }
    if (rc) return rc;
    if (help) {
        train_help(opts, n_opts, (sae_arch)arch);
        return CLI_EXIT_OK;
    }
    if (widths && (rc = parse_widths(widths, &p.sae))) return rc;
    if (!data || !out) {
        cli_errorf("train", "--data and --out are required (try 'sae train --help')");
        return CLI_EXIT_USAGE;
    }
    if (threads < 1) {
        cli_errorf("train", "--threads must be at least 1");
        return CLI_EXIT_USAGE;
    }
    if (no_auxk) p.sae.aux_k = 0;
    p.bdec_init = (train_bdec_init)bdec;
    p.threads = threads;
    p.precision = (sae_precision)precision;
    sae_set_threads(threads);
    sae_error perr = {0};
    if (sae_precision_check(p.precision, &perr) < 0) {
        cli_error(&perr);
        return CLI_EXIT_ERROR;
    }

    /* --resume reads the checkpoint at --out, if there is one yet, and rewrites it */
    sae_paths ps = {0};
    sae_paths_add(&ps, "--data", data, SAE_PATH_IN);
    sae_paths_add(&ps, "--config", config, SAE_PATH_IN);
    sae_paths_add(&ps, "--out", out, resume && sae_file_exists(out) ? SAE_PATH_INOUT : SAE_PATH_OUT);
    sae_paths_add(&ps, "--log", log, SAE_PATH_OUT);
    if ((rc = cli_check_paths(&ps))) return rc;
    struct stat so;
    sae_error err = {0};
    data_actfile *f = NULL;
    if (data_actfile_open(&f, data, &err) < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    train_params resolved = p;
    if (train_resolve(&resolved, f->d, &err) < 0) {
        cli_error(&err);
        data_actfile_close(f);
        return CLI_EXIT_USAGE;
    }
    if ((rc = check_writable(out)) || (rc = check_data(f, p.skip_nonfinite))) {
        data_actfile_close(f);
        return rc;
    }
    /* only now, so that bad input still gets exactly one error line */
    if (!resume && stat(out, &so) == 0)
        cli_warn("%s exists and will be replaced when training ends (--resume continues it instead)", out);
    cli_progress pr;
    if ((rc = cli_progress_init(&pr, log, resume))) {
        data_actfile_close(f);
        return rc;
    }
    cli_install_signals();
    train_observer obs = cli_progress_observer(&pr);
    rc = train_run(&p, f, out, resume, &obs, &err);
    cli_progress_close(&pr);
    data_actfile_close(f);
    if (rc < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    if (rc == 1) {
        fprintf(stderr, "\nsae train: interrupted; checkpoint saved to %s. Run the same command with "
                        "--resume to continue.\n", out);
        return 130;
    }
    fprintf(stderr, "sae train: wrote %s\n", out);
    return CLI_EXIT_OK;
}
