/* cli/cmd_capture.c: `sae capture`, activations of a llama2.c model over a
 * corpus into a schema-v1 file (data/capture.h). */
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/fileutil.h"
#include "common/gemm.h"
#include "data/actfile.h"
#include "data/capture.h"


typedef struct {
    int tty;
    struct timespec t0;
    double last;
} capture_progress;

static double since(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

static void on_progress(const data_capture_progress *p, void *user) {
    capture_progress *cp = user;
    double el = since(&cp->t0);
    int done = p->finished;
    if (!done && el - cp->last < (cp->tty ? 0.25 : 10.0)) return;
    cp->last = el;
    double frac = p->bytes_total ? (double)p->bytes_done / (double)p->bytes_total : 0;
    double eta = frac > 0 ? el / frac - el : -1;
    double rate = el > 0 ? (double)p->tokens / el : 0;
    if (cp->tty) {
        char bar[32];
        int w = 24, f = (int)(frac * w);
        for (int i = 0; i < w; i++) bar[i] = i < f ? '#' : '.';
        bar[w] = 0;
        fprintf(stderr, "\r[%s] %llu docs  %llu tokens  %.0f tok/s  ETA %ds\033[K%s", bar,
                (unsigned long long)p->docs, (unsigned long long)p->tokens, rate,
                eta >= 0 ? (int)eta : 0, done ? "\n" : "");
    } else {
        fprintf(stderr, "capture: %llu docs, %llu tokens, %.0f tok/s, %.0f%%\n",
                (unsigned long long)p->docs, (unsigned long long)p->tokens, rate, 100 * frac);
    }
}

int cmd_capture(int argc, char **argv) {
    const char *model = NULL, *tok = NULL, *out = NULL;
    data_capture_params p = {.layer = -1, .site = DATA_SITE_RESID_POST, .batch_rows = 4096};
    int site = DATA_SITE_RESID_POST, dtype = 0, threads = cli_default_threads(), layer = -1;
    int predictions = -1; /* -1: not given */
    cli_opt opts[] = {
        {"model", CLI_STR, &model, "llama2.c model (.bin)", 0, NULL},
        {"tokenizer", CLI_STR, &tok, "its tokenizer.bin", 0, NULL},
        {"corpus", CLI_STR, &p.corpus_path, "JSON Lines {\"text\",\"label\"} or text with blank-line-separated documents", 0, NULL},
        {"layer", CLI_INT, &layer, "block, counted from 0", 0, NULL},
        {"site", CLI_CHOICE, &site, "where in the block", 0, data_site_names},
        {"seq-len", CLI_SIZE, &p.seq_len, "tokens per window with BOS (0 = the model's)", 0, NULL},
        {"dtype", CLI_CHOICE, &dtype, "storage type of /activations", 0, data_dtype_names},
        {"keep-bos", CLI_TRUE, &p.keep_bos, "also write the BOS position of each window", 0, NULL},
        {"batch", CLI_SIZE, &p.batch_rows, "tokens per forward pass", 0, NULL},
        {"predictions", CLI_INT, &predictions,
         "also store each row's K most probable next tokens and log-probabilities (runs every block)", 0, NULL},
        {"threads", CLI_INT, &threads, "threads", 0, NULL},
        {"out", CLI_STR, &out, "activation file to write (.h5)", 0, NULL},
    };
    size_t n_opts = sizeof opts / sizeof opts[0], n_pos;
    const char *pos[1];
    int help, rc = cli_parse(argc, argv, "capture", opts, n_opts, pos, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        cli_usage(stdout, "capture", "--model M.bin --tokenizer T.bin --corpus C --layer L --out A.h5",
                  "Runs a llama2.c-format model over a corpus and writes the activations of one\n"
                  "site of one block as a schema-v1 file, with tokens, vocabulary, document\n"
                  "labels, unembedding and final norm; with --predictions K also the model's K\n"
                  "most probable next tokens at each row.",
                  opts, n_opts);
        return CLI_EXIT_OK;
    }
    if (!model || !tok || !p.corpus_path || !out || layer < 0) {
        cli_errorf("capture", "--model, --tokenizer, --corpus, --layer and --out are required");
        return CLI_EXIT_USAGE;
    }
    if (threads < 1 || p.batch_rows == 0) {
        cli_errorf("capture", "--threads and --batch must be positive");
        return CLI_EXIT_USAGE;
    }
    if (predictions != -1 && (predictions < 1 || predictions > DATA_MAX_PREDICTIONS)) {
        cli_errorf("--predictions", "must be in 1..%d (the model's top-K next tokens per row; leave "
                   "it out to store none), got %d", DATA_MAX_PREDICTIONS, predictions);
        return CLI_EXIT_USAGE;
    }
    p.predictions = predictions > 0 ? (size_t)predictions : 0;
    sae_paths ps = {0};
    sae_paths_add(&ps, "--model", model, SAE_PATH_IN);
    sae_paths_add(&ps, "--tokenizer", tok, SAE_PATH_IN);
    sae_paths_add(&ps, "--corpus", p.corpus_path, SAE_PATH_IN);
    sae_paths_add(&ps, "--out", out, SAE_PATH_OUT);
    if ((rc = cli_check_paths(&ps))) return rc;
    p.layer = layer;
    p.site = (data_site)site;
    p.float16 = dtype == 1;
    p.out_path = out;
    sae_set_threads(threads);
    sae_error err = {0};
    data_llama *m = NULL;
    data_tokenizer *t = NULL;
    if ((rc = cli_load_model(model, tok, &m, &t))) return rc;
    capture_progress cp = {.tty = isatty(STDERR_FILENO)};
    clock_gettime(CLOCK_MONOTONIC, &cp.t0);
    rc = data_capture_run(m, model, t, tok, &p, on_progress, &cp, &err);
    data_tokenizer_free(t);
    data_llama_free(m);
    if (rc < 0) {
        if (cp.tty) fputc('\n', stderr);
        cli_error(&err);
        return err.code == SAE_ERR_ARG ? CLI_EXIT_USAGE : CLI_EXIT_ERROR;
    }
    fprintf(stderr, "sae capture: wrote %s (%s of block %d%s, %.1f s)\n", out, data_site_names[site],
            layer, p.predictions ? ", with predictions" : "", since(&cp.t0));
    return CLI_EXIT_OK;
}
