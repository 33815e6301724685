/* cli/progress.c: progress bar, plain progress lines and JSON-lines metrics. */
#include "cli/progress.h"
#include "common/mem.h"

#include <cjson/cJSON.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/fileutil.h"
#include "common/gemm.h"

int cli_progress_init(cli_progress *pr, const char *log_path, int resume) {
    memset(pr, 0, sizeof *pr);
    pr->tty = isatty(STDERR_FILENO);
    pr->log_path = log_path;
    pr->resumed = resume;
    if (log_path) {
        pr->log = fopen(log_path, resume ? "a+" : "w");
        if (!pr->log) {
            cli_errorf(log_path, "cannot open log file for writing");
            return CLI_EXIT_ERROR;
        }
    }
    return 0;
}

/* On resume, drop log lines past the checkpoint's step: the run repeats them. */
static void trim_log(cli_progress *pr, uint64_t start_step) {
    if (!pr->log) return;
    rewind(pr->log);
    char tmp[4200];
    if (sae_tmp_path(tmp, sizeof tmp, pr->log_path, NULL) < 0) return;
    FILE *out = fopen(tmp, "w");
    if (!out) {
        sae_tmp_discard(tmp);
        return;
    }
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, pr->log) > 0) {
        cJSON *j = cJSON_Parse(line);
        cJSON *st = j ? cJSON_GetObjectItemCaseSensitive(j, "step") : NULL;
        int keep = cJSON_IsNumber(st) && st->valuedouble <= (double)start_step;
        cJSON_Delete(j);
        if (keep) fputs(line, out);
    }
    sae_free(line);
    int bad = ferror(out);
    bad |= fclose(out) != 0;
    fclose(pr->log);
    /* the trimmed copy replaces the log only if it was written whole */
    if (bad) sae_tmp_discard(tmp);
    else sae_commit_file(tmp, pr->log_path, NULL);
    pr->log = fopen(pr->log_path, "a");
}

static void fmt_count(char *buf, size_t cap, double v) {
    if (v >= 1e9) snprintf(buf, cap, "%.2fG", v / 1e9);
    else if (v >= 1e6) snprintf(buf, cap, "%.2fM", v / 1e6);
    else if (v >= 1e3) snprintf(buf, cap, "%.1fk", v / 1e3);
    else snprintf(buf, cap, "%.0f", v);
}

static void fmt_eta(char *buf, size_t cap, double s) {
    if (!(s >= 0) || s > 1e7) snprintf(buf, cap, "--:--");
    else if (s >= 3600) snprintf(buf, cap, "%d:%02d:%02d", (int)s / 3600, ((int)s / 60) % 60, (int)s % 60);
    else snprintf(buf, cap, "%d:%02d", (int)s / 60, (int)s % 60);
}

static void on_start(const train_params *p, const sae_model *m, double scale, uint64_t start_step,
                     uint64_t total_steps, void *user) {
    cli_progress *pr = user;
    const sae_config *c = &m->cfg;
    size_t np = sae_param_count(c);
    char desc[256];
    sae_config_describe(c, desc, sizeof desc);
    fprintf(stderr, "sae train: %s SAE d=%zu M=%zu %s", sae_arch_name(c->arch), c->d, c->m, desc);
    if (sae_arch_uses(c->arch) & SAE_USES_SPARSITY)
        fprintf(stderr, " sparsity_coef=%g (warm-up %.0f%%)", (double)p->sparsity_coef,
                100.0 * p->sparsity_warmup);
    fprintf(stderr, "\n  %llu steps x batch %zu = %llu tokens; lr %g (warm-up %.0f%%, decay %.0f%%); "
                    "seed %llu; %d threads\n",
            (unsigned long long)total_steps, p->batch, (unsigned long long)(total_steps * p->batch),
            (double)p->lr, 100.0 * p->lr_warmup, 100.0 * p->lr_decay, (unsigned long long)p->seed,
            sae_get_threads());
    fprintf(stderr, "  %.2fM parameters (%.1f MiB; x4 with grads and Adam), workspace %.1f MiB, "
                    "input scale %.4g, b_dec init %s\n",
            np / 1e6, np * 4.0 / 1048576.0, sae_model_workspace_bytes(m) / 1048576.0, scale,
            train_bdec_init_name(p->bdec_init));
    if (start_step > 0)
        fprintf(stderr, "  resuming at step %llu\n", (unsigned long long)start_step);
    pr->start_tokens = start_step * p->batch;
    if (pr->resumed) trim_log(pr, start_step);
}

static void on_metrics(const train_metrics *mt, void *user) {
    cli_progress *pr = user;
    int last = mt->step == mt->total_steps;
    if (pr->log && mt->log_due) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "step", (double)mt->step);
        cJSON_AddNumberToObject(j, "tokens", (double)mt->tokens);
        cJSON_AddNumberToObject(j, "loss", mt->loss);
        cJSON_AddNumberToObject(j, "mse", mt->mse);
        cJSON_AddNumberToObject(j, "fvu", mt->fvu);
        cJSON_AddNumberToObject(j, "l0", mt->l0);
        cJSON_AddNumberToObject(j, "dead_frac", mt->dead_frac);
        cJSON_AddNumberToObject(j, "aux_loss", mt->aux_loss);
        cJSON_AddNumberToObject(j, "sparsity_loss", mt->sparsity);
        cJSON_AddNumberToObject(j, "lr", mt->lr);
        cJSON_AddNumberToObject(j, "tokens_per_s", mt->tokens_per_s);
        cJSON_AddNumberToObject(j, "elapsed_s", mt->elapsed_s);
        char *s = cJSON_PrintUnformatted(j);
        if (s) {
            fprintf(pr->log, "%s\n", s);
            fflush(pr->log);
            sae_free(s);
        }
        cJSON_Delete(j);
    }
    double done = (double)(mt->tokens - pr->start_tokens);
    double rate = mt->elapsed_s > 0 ? done / mt->elapsed_s : 0;
    double eta = rate > 0 ? (double)(mt->total_tokens - mt->tokens) / rate : -1;
    char tok[32], tot[32], rt[32], et[32];
    fmt_count(tok, sizeof tok, (double)mt->tokens);
    fmt_count(tot, sizeof tot, (double)mt->total_tokens);
    fmt_count(rt, sizeof rt, rate);
    fmt_eta(et, sizeof et, eta);
    if (pr->tty && (last || mt->elapsed_s - pr->last_print_s >= 0.25)) {
        pr->last_print_s = mt->elapsed_s;
        int width = 24, filled = (int)(width * (double)mt->tokens / (double)mt->total_tokens);
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r[%s] %s/%s tok  %s tok/s  ETA %s  FVU %.4f  L0 %.1f  dead %.1f%%\033[K%s",
                bar, tok, tot, rt, et, mt->fvu, mt->l0, 100 * mt->dead_frac, last ? "\n" : "");
    } else if (!pr->tty && mt->log_due &&
               (last || mt->elapsed_s - pr->last_print_s >= 10.0 || pr->last_print_s == 0)) {
        fprintf(stderr, "step %llu/%llu  %s/%s tokens  %s tok/s  ETA %s  fvu %.4f  l0 %.1f  dead %.1f%%\n",
                (unsigned long long)mt->step, (unsigned long long)mt->total_steps, tok, tot, rt, et,
                mt->fvu, mt->l0, 100 * mt->dead_frac);
        pr->last_print_s = mt->elapsed_s > 0 ? mt->elapsed_s : 1e-9;
    }
    fflush(stderr);
}

static void on_warning(const char *msg, void *user) {
    cli_progress *pr = user;
    if (pr->tty) fputc('\n', stderr);
    cli_warn("%s", msg);
}

train_observer cli_progress_observer(cli_progress *pr) {
    train_observer o = {.on_start = on_start, .on_metrics = on_metrics, .on_warning = on_warning,
                        .user = pr, .stop = &cli_interrupted};
    return o;
}

void cli_progress_close(cli_progress *pr) {
    if (pr->log) fclose(pr->log);
    pr->log = NULL;
}
