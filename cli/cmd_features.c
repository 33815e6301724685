/* cli/cmd_features.c: `sae features` (build a feature dictionary). */
/* realpath is X/Open, beyond the project-wide _POSIX_C_SOURCE */
#define _XOPEN_SOURCE 700
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/fileutil.h"
#include "common/mem.h"
#include "common/gemm.h"
#include "data/h5.h"
#include "features/feat.h"
#include "sae/io.h"

typedef struct {
    int tty;
    struct timespec t0;
    double last;
} feat_progress;

static double elapsed(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

static void on_rows(uint64_t done, uint64_t total, void *user) {
    feat_progress *p = user;
    double el = elapsed(&p->t0);
    if (!p->tty || (done < total && el - p->last < 0.25)) return;
    p->last = el;
    double rate = el > 0 ? (double)done / el : 0;
    fprintf(stderr, "\rfeatures: %llu/%llu tokens  %.0f tok/s  ETA %.0fs\033[K%s",
            (unsigned long long)done, (unsigned long long)total, rate,
            rate > 0 ? (double)(total - done) / rate : 0.0, done == total ? "\n" : "");
}

int cmd_features(int argc, char **argv) {
    const char *sae_path = NULL, *data = NULL, *out = NULL, *json = NULL;
    feat_opts o = feat_default_opts();
    int threads = cli_default_threads(), precision = SAE_PRECISION_F32;
    cli_opt opts[] = {
        {"sae", CLI_STR, &sae_path, "SAE (.h5)", 0, NULL},
        {"data", CLI_STR, &data, "activation file (schema v1)", 0, NULL},
        {"out", CLI_STR, &out, "features file to write (.h5)", 0, NULL},
        {"top", CLI_SIZE, &o.top_n, "top activating examples kept per feature", 0, NULL},
        {"context", CLI_SIZE, &o.context, "tokens shown either side of an example by `sae show`", 0, NULL},
        {"json", CLI_STR, &json, "also write one JSON object per feature to this file", 0, NULL},
        {"batch", CLI_SIZE, &o.batch, "rows per encoder sgemm", 0, NULL},
        {"threads", CLI_INT, &threads, "threads", 0, NULL},
        {"precision", CLI_CHOICE, &precision, "encoder product: f32, or bf16 on CPUs with AVX512-BF16/AMX", 0, sae_precision_names},
    };
    size_t n_opts = sizeof opts / sizeof opts[0], n_pos;
    const char *pos[1];
    int help, rc = cli_parse(argc, argv, "features", opts, n_opts, pos, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        cli_usage(stdout, "features", "--sae S.h5 --data A.h5 --out F.h5 [options]",
                  "One streamed pass over the data: per feature its firing count, density, mean\n"
                  "and max activation, a log-scale histogram, top examples, examples at\n"
                  "activation quantiles, the tokens it fires on, a label, and its logit lens.",
                  opts, n_opts);
        return CLI_EXIT_OK;
    }
    if (!sae_path || !data || !out) {
        cli_errorf("features", "--sae, --data and --out are required (try 'sae features --help')");
        return CLI_EXIT_USAGE;
    }
    if (o.top_n == 0 || o.top_n > 100000 || o.batch == 0 || threads < 1) {
        cli_errorf("features", "--top must be in 1..100000, --batch and --threads positive");
        return CLI_EXIT_USAGE;
    }
    sae_paths ps = {0};
    sae_paths_add(&ps, "--sae", sae_path, SAE_PATH_IN_DIR);
    sae_paths_add(&ps, "--data", data, SAE_PATH_IN);
    sae_paths_add(&ps, "--out", out, SAE_PATH_OUT);
    sae_paths_add(&ps, "--json", json, SAE_PATH_OUT);
    if ((rc = cli_check_paths(&ps))) return rc;
    sae_set_threads(threads);
    sae_error err = {0};
    sae_model m;
    double scale;
    data_actfile *f = NULL;
    if ((rc = cli_open_sae_and_data(sae_path, data, o.batch, precision, &m, &scale, &f))) return rc;
    if (!f->has_tokens || !f->vocab_size)
        cli_warn("%s has no %s: features get statistics and examples but no labels or top tokens "
                 "(`sae capture` writes both)", data, !f->has_tokens ? "/tokens" : "/vocab");
    feat_progress pr = {.tty = isatty(STDERR_FILENO)};
    clock_gettime(CLOCK_MONOTONIC, &pr.t0);
    feat_dict *fd = NULL;
    rc = feat_build(&fd, &m, scale, f, &o, on_rows, &pr, &err);
    double secs = elapsed(&pr.t0);
    if (rc == SAE_OK) {
        /* absolute paths, so that `sae show` finds them from any folder (the
         * data's content identity is recorded beside its path by feat_write) */
        if (!realpath(sae_path, fd->sae_path)) snprintf(fd->sae_path, sizeof fd->sae_path, "%s", sae_path);
        if (!realpath(data, fd->data_path)) snprintf(fd->data_path, sizeof fd->data_path, "%s", data);
        rc = feat_write(fd, out, &err);
    }
    if (rc == SAE_OK && json) rc = feat_write_json(fd, f, json, &err);
    if (rc == SAE_OK) {
        size_t alive = 0;
        for (size_t j = 0; j < fd->M; j++) alive += fd->count[j] > 0;
        if (fd->n_skipped) cli_warn("%s: skipped %llu rows holding NaN or Inf", data, (unsigned long long)fd->n_skipped);
        fprintf(stderr, "sae features: %llu tokens in %.1f s (%.0f tokens/s); %zu of %zu features fired; wrote %s%s%s\n",
                (unsigned long long)fd->n_tokens, secs, secs > 0 ? (double)fd->n_tokens / secs : 0.0, alive,
                fd->M, out, json ? " and " : "", json ? json : "");
    } else {
        cli_error(&err);
    }
    feat_free(fd);
    data_actfile_close(f);
    sae_model_free(&m);
    return rc < 0 ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}
