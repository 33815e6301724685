/* cli/cmd_capture.c: `sae capture`, activations of a llama2.c model over a
 * corpus into schema-v1 files (data/capture.h): --layer and --site take
 * comma-separated lists, every (layer, site) pair gets its own file from one
 * forward pass per batch, and --out is then a pattern with {layer} and
 * {site}, expanded here (the library takes the expanded paths). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/fileutil.h"
#include "common/gemm.h"
#include "data/actfile.h"
#include "common/mem.h"
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

/* --- lists and the --out pattern ------------------------------------------ */
#define MAX_LAYERS 256

/* "1,3,5" into layers[], each a block index from 0, none twice. Prints the
 * error line and returns CLI_EXIT_USAGE on a bad list. */
static int parse_layers(const char *s, int *layers, size_t *n) {
    *n = 0;
    const char *at = s;
    for (;;) {
        size_t len = strcspn(at, ",");
        char item[32];
        int ok = len > 0 && len < sizeof item;
        if (ok) {
            memcpy(item, at, len);
            item[len] = 0;
            ok = strspn(item, "0123456789") == len && len <= 9;
        }
        if (!ok) {
            cli_errorf("--layer", "\"%s\" is not a block index or a comma-separated list of them "
                       "(e.g. 3 or 1,3,5; blocks count from 0)", s);
            return CLI_EXIT_USAGE;
        }
        int v = atoi(item);
        for (size_t j = 0; j < *n; j++)
            if (layers[j] == v) {
                cli_errorf("--layer", "layer %d is given twice in \"%s\"", v, s);
                return CLI_EXIT_USAGE;
            }
        if (*n == MAX_LAYERS) {
            cli_errorf("--layer", "more than %d layers in one capture", MAX_LAYERS);
            return CLI_EXIT_USAGE;
        }
        layers[(*n)++] = v;
        if (!at[len]) return 0;
        at += len + 1;
    }
}

/* "resid_post,mlp_out" into sites[], none twice (at most DATA_N_SITES). */
static int parse_sites(const char *s, data_site *sites, size_t *n) {
    *n = 0;
    const char *at = s;
    for (;;) {
        size_t len = strcspn(at, ",");
        char item[32];
        data_site v;
        int ok = len > 0 && len < sizeof item;
        if (ok) {
            memcpy(item, at, len);
            item[len] = 0;
            ok = data_site_parse(item, &v) == 0;
        }
        if (!ok) {
            cli_errorf("--site", "\"%.*s\" is not a site: give one or a comma-separated list of "
                       "resid_pre, attn_out, mlp_out, resid_post", (int)(len < 40 ? len : 40), at);
            return CLI_EXIT_USAGE;
        }
        for (size_t j = 0; j < *n; j++)
            if (sites[j] == v) {
                cli_errorf("--site", "%s is given twice in \"%s\"", item, s);
                return CLI_EXIT_USAGE;
            }
        sites[(*n)++] = v;
        if (!at[len]) return 0;
        at += len + 1;
    }
}

/* An unknown {name} in the pattern (a misspelt placeholder), or NULL. Only
 * braces around lowercase letters and '_' count: other braces are text. */
static const char *unknown_placeholder(const char *pat, char *buf, size_t cap) {
    for (const char *p = strchr(pat, '{'); p; p = strchr(p + 1, '{')) {
        size_t len = strspn(p + 1, "abcdefghijklmnopqrstuvwxyz_");
        if (len == 0 || p[1 + len] != '}') continue;
        if ((len == 5 && strncmp(p + 1, "layer", 5) == 0) || (len == 4 && strncmp(p + 1, "site", 4) == 0))
            continue;
        snprintf(buf, cap, "%.*s", (int)(len + 2), p);
        return buf;
    }
    return NULL;
}

/* pat with every {layer} and {site} replaced; -1 if it does not fit in cap. */
static int expand_out(const char *pat, int layer, const char *site, char *buf, size_t cap) {
    size_t n = 0;
    char num[16];
    snprintf(num, sizeof num, "%d", layer);
    for (const char *p = pat; *p;) {
        const char *put = NULL;
        size_t skip = 1;
        if (strncmp(p, "{layer}", 7) == 0) put = num, skip = 7;
        else if (strncmp(p, "{site}", 6) == 0) put = site, skip = 6;
        size_t len = put ? strlen(put) : 1;
        if (n + len + 1 > cap) return -1;
        memcpy(buf + n, put ? put : p, len);
        n += len;
        p += skip;
    }
    buf[n] = 0;
    return 0;
}

/* The pattern a user could have meant: "acts.h5" -> "acts_L{layer}.h5". */
static void suggest(const char *out, const char *add, char *buf, size_t cap) {
    const char *slash = strrchr(out, '/'), *dot = strrchr(out, '.');
    size_t stem = dot && dot > (slash ? slash : out) ? (size_t)(dot - out) : strlen(out);
    snprintf(buf, cap, "%.*s%s%s", (int)stem, out, add, out + stem);
}

/* The --out pattern must tell the pairs apart: {layer} when there are
 * several layers, {site} when there are several sites. */
static int check_pattern(const char *out, size_t n_layers, size_t n_sites) {
    char bad[64], eg[4200];
    if (unknown_placeholder(out, bad, sizeof bad)) {
        cli_errorf("--out", "unknown placeholder %s in \"%s\" (the pattern knows {layer} and {site})",
                   bad, out);
        return CLI_EXIT_USAGE;
    }
    int need_l = n_layers > 1 && !strstr(out, "{layer}"), need_s = n_sites > 1 && !strstr(out, "{site}");
    if (need_l && need_s) {
        suggest(out, "_L{layer}_{site}", eg, sizeof eg);
        cli_errorf("--out", "%zu layers x %zu sites need {layer} and {site} in the pattern, so that "
                   "each gets its own file (e.g. --out %s)", n_layers, n_sites, eg);
    } else if (need_l) {
        suggest(out, "_L{layer}", eg, sizeof eg);
        cli_errorf("--out", "%zu layers need {layer} in the pattern, so that each gets its own file "
                   "(e.g. --out %s)", n_layers, eg);
    } else if (need_s) {
        suggest(out, "_{site}", eg, sizeof eg);
        cli_errorf("--out", "%zu sites need {site} in the pattern, so that each gets its own file "
                   "(e.g. --out %s)", n_sites, eg);
    }
    return need_l || need_s ? CLI_EXIT_USAGE : 0;
}

/* Every output against the inputs and against every other output. A
 * sae_paths list holds SAE_PATHS_MAX paths, so the outputs go in groups and
 * each pair of groups is checked together. */
#define OUT_GROUP ((SAE_PATHS_MAX - 3) / 2)
static int check_all_paths(const char *model, const char *tok, const char *corpus,
                           const data_capture_site *s, char (*flags)[64], size_t n) {
    for (size_t g = 0; g < n; g += OUT_GROUP)
        for (size_t h = g; h < n; h += OUT_GROUP) {
            sae_paths ps = {0};
            sae_paths_add(&ps, "--model", model, SAE_PATH_IN);
            sae_paths_add(&ps, "--tokenizer", tok, SAE_PATH_IN);
            sae_paths_add(&ps, "--corpus", corpus, SAE_PATH_IN);
            for (size_t i = g; i < n && i < g + OUT_GROUP; i++)
                sae_paths_add(&ps, flags[i], s[i].out_path, SAE_PATH_OUT);
            for (size_t i = h; h != g && i < n && i < h + OUT_GROUP; i++)
                sae_paths_add(&ps, flags[i], s[i].out_path, SAE_PATH_OUT);
            int rc = cli_check_paths(&ps);
            if (rc) return rc;
        }
    return 0;
}

int cmd_capture(int argc, char **argv) {
    const char *model = NULL, *tok = NULL, *out = NULL, *layer_s = NULL, *site_s = "resid_post";
    data_capture_params p = {.layer = -1, .site = DATA_SITE_RESID_POST, .batch_rows = 4096};
    int dtype = 0, threads = cli_default_threads();
    int predictions = -1; /* -1: not given */
    cli_opt opts[] = {
        {"model", CLI_STR, &model, "llama2.c model (.bin)", 0, NULL},
        {"tokenizer", CLI_STR, &tok, "its tokenizer.bin", 0, NULL},
        {"corpus", CLI_STR, &p.corpus_path, "JSON Lines {\"text\",\"label\"} or text with blank-line-separated documents", 0, NULL},
        {"layer", CLI_STR, &layer_s, "block, counted from 0, or a list: 1,3,5", 0, NULL},
        {"site", CLI_STR, &site_s, "where in the block, or a list: resid_pre, attn_out, mlp_out, resid_post", 0, NULL},
        {"seq-len", CLI_SIZE, &p.seq_len, "tokens per window with BOS (0 = the model's)", 0, NULL},
        {"dtype", CLI_CHOICE, &dtype, "storage type of /activations", 0, data_dtype_names},
        {"keep-bos", CLI_TRUE, &p.keep_bos, "also write the BOS position of each window", 0, NULL},
        {"batch", CLI_SIZE, &p.batch_rows, "tokens per forward pass", 0, NULL},
        {"predictions", CLI_INT, &predictions,
         "also store each row's K most probable next tokens and log-probabilities (runs every block)", 0, NULL},
        {"threads", CLI_INT, &threads, "threads", 0, NULL},
        {"out", CLI_STR, &out, "activation file to write (.h5); with several layers or sites a pattern with {layer} and {site}", 0, NULL},
    };
    size_t n_opts = sizeof opts / sizeof opts[0], n_pos;
    const char *pos[1];
    int help, rc = cli_parse(argc, argv, "capture", opts, n_opts, pos, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        cli_usage(stdout, "capture", "--model M.bin --tokenizer T.bin --corpus C --layer L[,L...] "
                  "[--site S[,S...]] --out A.h5",
                  "Runs a llama2.c-format model over a corpus and writes the activations of a\n"
                  "site of a block as a schema-v1 file, with tokens, vocabulary, document\n"
                  "labels, unembedding and final norm; with --predictions K also the model's K\n"
                  "most probable next tokens at each row.\n\n"
                  "Several sites at once: --layer 1,3,5 and --site resid_post,mlp_out write one\n"
                  "file per (layer, site) pair from a single forward pass per batch (the\n"
                  "forward is the expensive part), each file identical to the one a capture of\n"
                  "that site alone writes. --out is then a pattern: {layer} becomes the block\n"
                  "and {site} the site's name, and it must hold {layer} when there are several\n"
                  "layers and {site} when there are several sites, e.g.\n"
                  "  --layer 1,3,5 --site resid_post,mlp_out --out acts/L{layer}_{site}.h5\n"
                  "writes acts/L1_resid_post.h5, acts/L1_mlp_out.h5, ... acts/L5_mlp_out.h5.\n"
                  "Memory grows by one (--batch x d_model) float buffer per pair. All files\n"
                  "appear at the end, or none if any fails.",
                  opts, n_opts);
        return CLI_EXIT_OK;
    }
    if (!model || !tok || !p.corpus_path || !out || !layer_s) {
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
    int layers[MAX_LAYERS];
    data_site sites[DATA_N_SITES];
    size_t n_layers, n_site;
    if ((rc = parse_layers(layer_s, layers, &n_layers)) || (rc = parse_sites(site_s, sites, &n_site)) ||
        (rc = check_pattern(out, n_layers, n_site)))
        return rc;
    size_t n = n_layers * n_site;
    data_capture_site *cs = sae_calloc_n(n, sizeof *cs);
    char (*paths)[4096] = sae_calloc_n(n, sizeof *paths);
    char (*flags)[64] = sae_calloc_n(n, sizeof *flags);
    if (!cs || !paths || !flags) {
        sae_free(cs), sae_free(paths), sae_free(flags);
        cli_errorf(NULL, "out of memory");
        return CLI_EXIT_ERROR;
    }
    for (size_t i = 0; i < n && !rc; i++) { /* layer-major: L1 resid_post, L1 mlp_out, L3 ... */
        int l = layers[i / n_site];
        data_site st = sites[i % n_site];
        cs[i] = (data_capture_site){l, st, paths[i]};
        if (n == 1) snprintf(flags[i], sizeof flags[i], "--out");
        else snprintf(flags[i], sizeof flags[i], "--out (layer %d %s)", l, data_site_name(st));
        if (expand_out(out, l, data_site_name(st), paths[i], sizeof paths[i]) < 0) {
            cli_errorf("--out", "the path for layer %d %s is longer than %zu bytes", l,
                       data_site_name(st), sizeof paths[i] - 1);
            rc = CLI_EXIT_USAGE;
        }
    }
    if (!rc) rc = check_all_paths(model, tok, p.corpus_path, cs, flags, n);
    if (rc) {
        sae_free(cs), sae_free(paths), sae_free(flags);
        return rc;
    }
    p.sites = cs;
    p.n_sites = n;
    p.float16 = dtype == 1;
    sae_set_threads(threads);
    sae_error err = {0};
    data_llama *m = NULL;
    data_tokenizer *t = NULL;
    if ((rc = cli_load_model(model, tok, &m, &t)) == 0) {
        capture_progress cp = {.tty = isatty(STDERR_FILENO)};
        clock_gettime(CLOCK_MONOTONIC, &cp.t0);
        rc = data_capture_run(m, model, t, tok, &p, on_progress, &cp, &err);
        if (rc < 0) {
            if (cp.tty) fputc('\n', stderr);
            cli_error(&err);
            rc = err.code == SAE_ERR_ARG ? CLI_EXIT_USAGE : CLI_EXIT_ERROR;
        } else {
            for (size_t i = 0; i < n; i++)
                fprintf(stderr, "sae capture: wrote %s (%s of block %d%s, %.1f s)\n", cs[i].out_path,
                        data_site_name(cs[i].site), cs[i].layer,
                        p.predictions ? ", with predictions" : "", since(&cp.t0));
            rc = CLI_EXIT_OK;
        }
    }
    data_tokenizer_free(t);
    data_llama_free(m);
    sae_free(cs), sae_free(paths), sae_free(flags);
    return rc;
}
