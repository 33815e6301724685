/* cli/cmd_show.c: `sae show` (print one feature's card). */
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

/* Appends a vocabulary string, turning "<0xXX>" byte pieces back into bytes so
 * Japanese characters split by byte fallback print whole. */
static void append_piece(char *buf, size_t cap, size_t *o, const char *piece) {
    unsigned b;
    if (strlen(piece) == 6 && sscanf(piece, "<0x%02X>", &b) == 1) {
        if (*o + 1 < cap) buf[(*o)++] = (char)b;
    } else {
        size_t n = strlen(piece);
        if (*o + n < cap) memcpy(buf + *o, piece, n), *o += n;
    }
    buf[*o] = 0;
}

typedef struct {
    data_actfile *f;
    int64_t *off;
    char **vocab;
} show_data;

static void print_example(const show_data *sd, int64_t row, float value, size_t context, int color) {
    if (row < 0) return;
    printf("    %8.3f  row %lld", value, (long long)row);
    if (!sd->f || !sd->f->has_tokens || !sd->vocab || (uint64_t)row >= sd->f->n) {
        printf("\n");
        return;
    }
    size_t lo = 0, hi = sd->f->n; /* document bounds */
    if (sd->off) {
        size_t a = 0, b = sd->f->n_docs;
        while (a + 1 < b) {
            size_t mid = (a + b) / 2;
            if (sd->off[mid] <= row) a = mid;
            else b = mid;
        }
        lo = (size_t)sd->off[a], hi = (size_t)sd->off[a + 1];
        printf("  doc %zu pos %lld", a, (long long)(row - sd->off[a]));
    }
    size_t r = (size_t)row, s = r >= lo + context ? r - context : lo, e = r + context + 1 < hi ? r + context + 1 : hi;
    int32_t tok[1024];
    sae_error err = {0};
    if (e - s > 1024 || data_actfile_read_tokens(sd->f, s, e - s, tok, &err) < 0) {
        printf("\n");
        return;
    }
    char text[8192];
    size_t o = 0;
    text[0] = 0;
    for (size_t i = s; i < e; i++) {
        const char *piece = sd->vocab[tok[i - s]];
        if (i == r) append_piece(text, sizeof text, &o, color ? "\033[1;30;43m" : "[");
        if (strcmp(piece, "\\n") == 0) piece = "⏎";
        append_piece(text, sizeof text, &o, piece);
        if (i == r) append_piece(text, sizeof text, &o, color ? "\033[0m" : "]");
    }
    printf("  %s%s%s\n", s > lo ? "…" : "", text, e < hi ? "…" : "");
}

static void print_tokens(const feat_dict *fd, const char *title, const int32_t *ids, const void *vals,
                         int is_f32, size_t n) {
    printf("  %-12s", title);
    for (size_t i = 0; i < n && ids[i] >= 0; i++) {
        const char *t = fd->vocab ? fd->vocab[ids[i]] : "?";
        if (is_f32) printf("  %s (%.2f)", t, (double)((const float *)vals)[i]);
        else printf("  %s ×%lld", t, (long long)((const int64_t *)vals)[i]);
    }
    printf("\n");
}

int cmd_show(int argc, char **argv) {
    const char *data = NULL;
    size_t feature = (size_t)-1, examples = 10;
    int color_mode = 0;
    static const char *const COLOR[] = {"auto", "always", "never", NULL};
    cli_opt opts[] = {
        {"feature", CLI_SIZE, &feature, "feature id", 0, NULL},
        {"data", CLI_STR, &data, "activation file for example contexts (default: the one the features came from)", 0, NULL},
        {"examples", CLI_SIZE, &examples, "top examples to print", 0, NULL},
        {"color", CLI_CHOICE, &color_mode, "highlight the activating token", 0, COLOR},
    };
    size_t n_opts = sizeof opts / sizeof opts[0], n_pos;
    const char *pos[1];
    int help, rc = cli_parse(argc, argv, "show", opts, n_opts, pos, 1, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        cli_usage(stdout, "show", "F.h5 --feature N [options]",
                  "Prints a feature's card: statistics, label, top tokens, logit lens, and its\n"
                  "top and quantile examples in context with the activating token highlighted.",
                  opts, n_opts);
        return CLI_EXIT_OK;
    }
    if (n_pos != 1 || feature == (size_t)-1) {
        cli_errorf("show", "expects a features file and --feature N (try 'sae show --help')");
        return CLI_EXIT_USAGE;
    }
    sae_paths ps = {0};
    sae_paths_add(&ps, "FILE", pos[0], SAE_PATH_IN);
    sae_paths_add(&ps, "--data", data, SAE_PATH_IN);
    if ((rc = cli_check_paths(&ps))) return rc;
    sae_error err = {0};
    feat_dict *fd;
    if (feat_read(&fd, pos[0], &err) < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    if (feature >= fd->M) {
        cli_errorf("--feature", "%zu is out of range: %s has %zu features (0..%zu)", feature, pos[0],
                   fd->M, fd->M - 1);
        feat_free(fd);
        return CLI_EXIT_USAGE;
    }
    show_data sd = {0};
    const char *dpath = data ? data : fd->data_path;
    if (dpath[0] && data_actfile_open(&sd.f, dpath, &err) < 0) {
        if (data) {
            cli_error(&err);
            feat_free(fd);
            return CLI_EXIT_ERROR;
        }
        cli_warn("%s: %s; examples shown without context (pass --data)", err.subject, err.msg);
        sd.f = NULL;
    }
    if (sd.f && sd.f->n_docs) {
        sd.off = sae_malloc((sd.f->n_docs + 1) * sizeof *sd.off);
        if (!sd.off || data_actfile_read_doc_offsets(sd.f, sd.off, &err) < 0) sae_free(sd.off), sd.off = NULL;
    }
    if (sd.f && sd.f->vocab_size && data_actfile_read_vocab(sd.f, &sd.vocab, &err) < 0) sd.vocab = NULL;
    int color = color_mode == 1 || (color_mode == 0 && isatty(STDOUT_FILENO));
    size_t j = feature, T = FEAT_TOP_TOKENS, L = FEAT_LENS, N = fd->top_n;
    printf("feature %zu  %s\n", j, fd->label[j] && fd->label[j][0] ? fd->label[j] : "(no label)");
    printf("  fires on %llu of %llu tokens (density %.4f%%), mean %.3f, max %.3f\n",
           (unsigned long long)fd->count[j], (unsigned long long)fd->n_tokens,
           fd->n_tokens ? 100.0 * (double)fd->count[j] / (double)fd->n_tokens : 0.0, fd->mean[j], fd->max[j]);
    static const char *const BARS[] = {" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
    uint64_t hmax = 0;
    int first = FEAT_HIST_BINS, last = -1;
    for (int b = 0; b < FEAT_HIST_BINS; b++)
        if (fd->hist[j * FEAT_HIST_BINS + b]) {
            hmax = fd->hist[j * FEAT_HIST_BINS + b] > hmax ? fd->hist[j * FEAT_HIST_BINS + b] : hmax;
            first = b < first ? b : first, last = b;
        }
    if (last >= 0) {
        double w = (FEAT_HIST_LOG10_MAX - FEAT_HIST_LOG10_MIN) / FEAT_HIST_BINS;
        printf("  histogram   %.3g ", pow(10, FEAT_HIST_LOG10_MIN + first * w));
        for (int b = first; b <= last; b++)
            printf("%s", BARS[(int)ceil(8.0 * (double)fd->hist[j * FEAT_HIST_BINS + b] / (double)hmax)]);
        printf(" %.3g (log scale)\n", pow(10, FEAT_HIST_LOG10_MIN + (last + 1) * w));
    }
    if (fd->vocab) {
        print_tokens(fd, "top tokens", fd->tok_count_id + j * T, fd->tok_count + j * T, 0, T);
        print_tokens(fd, "by mean act", fd->tok_mean_id + j * T, fd->tok_mean + j * T, 1, T);
    }
    if (fd->has_lens && fd->vocab) {
        print_tokens(fd, "promotes", fd->lens_up_id + j * L, fd->lens_up + j * L, 1, L);
        print_tokens(fd, "suppresses", fd->lens_down_id + j * L, fd->lens_down + j * L, 1, L);
    }
    printf("  top examples\n");
    for (size_t i = 0; i < examples && i < N; i++)
        print_example(&sd, fd->top_row[j * N + i], fd->top_val[j * N + i], fd->context, color);
    printf("  examples at activation quantiles 0.1 0.3 0.5 0.7 0.9\n");
    for (int q = 0; q < FEAT_QUANTILES; q++)
        print_example(&sd, fd->q_row[j * FEAT_QUANTILES + q], fd->q_val[j * FEAT_QUANTILES + q], fd->context, color);
    if (sd.vocab) data_h5_free_strings(sd.vocab, sd.f->vocab_size);
    sae_free(sd.off);
    data_actfile_close(sd.f);
    feat_free(fd);
    return CLI_EXIT_OK;
}

