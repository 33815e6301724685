/* viz/trainlog.c: the training log (`sae train --log`, JSON Lines) read into
 * plain arrays for the curves figure. Every line must be one JSON object with
 * numeric tokens, fvu, l0 and dead_frac; anything else is an error naming the
 * file and line. Values are kept as written (0, negative, huge): the figure
 * decides what a log axis can show. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "common/fileutil.h"
#include "common/mem.h"
#include "viz/viz.h"

void viz_train_log_free(viz_train_log *log) {
    sae_free(log->tokens), sae_free(log->fvu), sae_free(log->l0), sae_free(log->dead_frac);
    memset(log, 0, sizeof *log);
}

static int grow(viz_train_log *log, size_t *cap) {
    size_t nc = *cap ? *cap * 2 : 256;
    double **arr[4] = {&log->tokens, &log->fvu, &log->l0, &log->dead_frac};
    for (int i = 0; i < 4; i++) {
        double *p = sae_realloc_n(*arr[i], nc, sizeof **arr[i]);
        if (!p) return -1; /* the arrays already grown keep their contents */
        *arr[i] = p;
    }
    *cap = nc;
    return 0;
}

static int blank(const char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') s++;
    return *s == 0;
}

/* One line into row log->n. */
static int parse_line(viz_train_log *log, const char *line, size_t len, size_t line_no, const char *path,
                      sae_error *err) {
    static const char *const KEYS[4] = {"tokens", "fvu", "l0", "dead_frac"};
    if (memchr(line, 0, len))
        return sae_error_set(err, SAE_ERR_FORMAT, path, "line %zu holds a NUL byte: not a training log", line_no);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(line, &end, 0);
    int rc = SAE_OK;
    if (!j || !cJSON_IsObject(j))
        rc = sae_error_set(err, SAE_ERR_FORMAT, path, "line %zu is not a JSON object (is this a `sae train --log` file?)",
                           line_no);
    else if (!blank(end))
        rc = sae_error_set(err, SAE_ERR_FORMAT, path, "line %zu has text after its JSON object", line_no);
    double *dst[4] = {log->tokens, log->fvu, log->l0, log->dead_frac};
    for (int k = 0; k < 4 && rc == SAE_OK; k++) {
        cJSON *v = cJSON_GetObjectItemCaseSensitive(j, KEYS[k]);
        if (!cJSON_IsNumber(v))
            rc = sae_error_set(err, SAE_ERR_FORMAT, path, "line %zu lacks a number \"%s\" (needs tokens, fvu, l0, dead_frac)",
                               line_no, KEYS[k]);
        else
            dst[k][log->n] = v->valuedouble;
    }
    cJSON_Delete(j);
    return rc;
}

int viz_train_log_read(viz_train_log *out, const char *path, sae_error *err) {
    memset(out, 0, sizeof *out);
    int rc = sae_check_input_file(path, "--log", err);
    if (rc < 0) return rc;
    FILE *f = fopen(path, "r");
    if (!f) return sae_error_set(err, SAE_ERR_IO, path, "cannot open the training log");
    char *line = NULL;
    size_t lcap = 0, cap = 0, line_no = 0;
    ssize_t len;
    while (rc == SAE_OK && (len = getline(&line, &lcap, f)) > 0) {
        line_no++;
        if (blank(line) && (size_t)len == strlen(line)) continue;
        if (out->n == cap && grow(out, &cap) < 0) {
            rc = sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory at line %zu", line_no);
            break;
        }
        rc = parse_line(out, line, (size_t)len, line_no, path, err);
        if (rc == SAE_OK) out->n++;
    }
    /* getline also returns -1 when it cannot grow its buffer: that must not
     * read as the end of the log (the curves would silently stop there) */
    if (rc == SAE_OK && ferror(f)) rc = sae_error_set(err, SAE_ERR_IO, path, "read error after line %zu", line_no);
    else if (rc == SAE_OK && !feof(f))
        rc = sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory reading line %zu", line_no + 1);
    fclose(f);
    sae_free(line);
    if (rc == SAE_OK && out->n == 0) rc = sae_error_set(err, SAE_ERR_FORMAT, path, "no metrics in the log");
    if (rc < 0) viz_train_log_free(out);
    return rc;
}

int viz_render_curves(const viz_train_log *log, const char *title, const char *path, const viz_render_opts *o,
                      sae_error *err) {
    viz_series s_fvu = {"fvu", log->tokens, log->fvu, log->n}, s_l0 = {"l0", log->tokens, log->l0, log->n};
    viz_series s_dead = {"dead", log->tokens, log->dead_frac, log->n};
    viz_panel panels[3] = {{"FVU", &s_fvu, 1, 1, 1}, {"L0 (active latents)", &s_l0, 1, 1, 0},
                           {"dead fraction", &s_dead, 1, 1, 0}};
    viz_lines l = {.title = title, .x_title = "tokens", .panels = panels, .n_panels = 3};
    return viz_render_lines(&l, path, o, err);
}
