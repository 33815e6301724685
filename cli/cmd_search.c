/* cli/cmd_search.c: `sae search` (rank features for a question). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/fileutil.h"
#include "common/gemm.h"
#include "common/mem.h"
#include "data/h5.h"
#include "features/feat.h"
#include "sae/io.h"

#define DEFAULT_PERMUTATIONS 1000 /* pooled contrasts: a p of 0.001 at best, about 0.1 s for 4096 features */
#define MATCHES_SHOWN 10

static double elapsed(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

static const char *const kind_names[] = {"token", "logit", "contrast", "predicted", "attribute"};
/* the CLI's --pool choices: auto first (max for a contrast) */
static const char *const pool_choices[] = {"auto", "none", "max", "mean", NULL};

typedef struct {
    const feat_search_opts *o;
    const feat_search_result *r;
    const feat_dict *fd;
    char **vocab;
    size_t vocab_size;
    const cli_strs *where;
    double secs;
    size_t top; /* table rows */
} report;

static const char *tok_text(const report *p, int32_t id) {
    return p->vocab && id >= 0 && (size_t)id < p->vocab_size ? p->vocab[id] : "?";
}

/* a vocabulary piece between quotes, control characters as \xNN */
static void print_piece(const char *s) {
    putchar('\'');
    for (; *s; s++)
        if ((unsigned char)*s < 0x20) printf("\\x%02x", (unsigned char)*s);
        else putchar(*s);
    putchar('\'');
}

static void print_where(const report *p) {
    if (!p->where->n) return;
    printf(" (--where");
    for (size_t i = 0; i < p->where->n; i++) printf(" %s", p->where->v[i]);
    printf(")");
}

static void print_universe(const report *p, const char *unit) {
    const feat_search_result *r = p->r;
    printf("universe: %llu positions in %llu corpus document%s", (unsigned long long)r->universe_rows,
           (unsigned long long)r->universe_docs, r->universe_docs == 1 ? "" : "s");
    print_where(p);
    printf("; compared: %llu %s, %llu positive (base rate %.4g)\n", (unsigned long long)(r->n_pos + r->n_neg), unit,
           (unsigned long long)r->n_pos, r->base_rate);
}

static void print_matches(const report *p, const char *counted) {
    const feat_search_result *r = p->r;
    printf("matched %zu vocabulary entr%s", r->n_matching_tokens, r->n_matching_tokens == 1 ? "y" : "ies");
    if (p->o->exclude_regex) printf(" (after --exclude-regex '%s')", p->o->exclude_regex);
    if (counted) {
        printf("; %s:", counted);
        size_t shown = 0;
        for (size_t i = 0; i < r->n_matching_tokens && shown < MATCHES_SHOWN; i++) {
            if (!r->matches[i].count) break;
            printf(shown ? ", " : " ");
            print_piece(tok_text(p, r->matches[i].id));
            printf(" %llu", (unsigned long long)r->matches[i].count);
            shown++;
        }
        size_t with = 0;
        for (size_t i = 0; i < r->n_matching_tokens; i++) with += r->matches[i].count > 0;
        if (!shown) printf(" none");
        else if (with > shown) printf(", and %zu more (all in --json)", with - shown);
        if (r->n_matching_tokens > with) printf("; %zu never occur there", r->n_matching_tokens - with);
    }
    printf("\n");
}

static void print_min_count(const report *p) {
    if (p->r->n_below_min_count)
        printf("left out %zu of %zu features firing fewer than %llu times in the universe (--min-count)\n",
               p->r->n_below_min_count, p->r->n_features, (unsigned long long)p->o->min_count);
}

static const char *label_of(const report *p, size_t j) { return p->fd ? p->fd->label[j] : ""; }

static void print_rates_table(const report *p, int with_corr) {
    const feat_search_result *r = p->r;
    printf("%4s %8s %7s %7s %9s %7s %7s %9s%s  %s\n", "rank", "feature", r->sort == FEAT_SORT_F1 ? "[f1]" : "f1",
           "auroc", "precision", "recall", "lift", "fires", with_corr ? "    corr" : "", p->fd ? "label" : "");
    for (size_t i = 0; i < r->n && i < p->top; i++) {
        const feat_search_row *w = &r->rows[i];
        printf("%4zu %8zu %7.4f %7.4f %9.4f %7.4f %7.2f %9llu", i + 1, w->feature, w->f1, w->auroc, w->precision,
               w->recall, w->lift, (unsigned long long)w->fires);
        if (with_corr) printf(" %7.4f", w->corr);
        printf("  %s\n", label_of(p, w->feature));
    }
}

static void print_null(const report *p) {
    const feat_search_result *r = p->r;
    const char *stat = r->sort == FEAT_SORT_MEAN_DIFF ? "mean difference" : "document AUROC";
    if (!r->permutations) {
        printf("no permutation test (--permutations 0): nothing says how high the top of this list goes by chance\n");
        return;
    }
    printf("by chance (%zu shuffles of the %llu A/B document labels, seed %llu): the best of %zu features reaches a %s "
           "of %.4g (median), %.4g (95th percentile); the observed best (%.4f) has family-wise p = %.3g\n",
           r->permutations, (unsigned long long)(r->n_pos + r->n_neg), (unsigned long long)p->o->seed, r->n, stat,
           r->null_median, r->null_p95, r->top_score, r->fwer_p);
    if (r->log10_labellings < log10(1.0 / r->p_needed))
        printf("warning: %llu+%llu documents allow only %.3g distinct labellings: no feature can reach q < 0.05 among "
               "%zu (a lone one needs p <= %.2g); more documents are needed, not more permutations\n",
               (unsigned long long)r->n_pos, (unsigned long long)r->n_neg, pow(10.0, r->log10_labellings), r->n,
               r->p_needed);
    else if (r->min_p > r->p_needed)
        printf("warning: with %zu permutations the smallest p is %.2g; a lone feature needs p <= %.2g for q < 0.05 among "
               "%zu: use --permutations %.0f or more\n",
               r->permutations, r->min_p, r->p_needed, r->n, ceil(1.0 / r->p_needed));
}

static void print_contrast(const report *p) {
    const feat_search_result *r = p->r;
    const feat_search_opts *o = p->o;
    if (r->pool == FEAT_POOL_NONE) {
        printf("contrast %s vs %s per position (--pool none: positions of one document are not independent, so no p-values)\n",
               o->label_a, o->label_b);
        print_universe(p, "positions");
        printf("variance ratio var(%s)/var(%s): %.3f over all SAE features, %.3f of the raw activations\n", o->label_a,
               o->label_b, r->var_ratio_features, r->var_ratio_resid);
        print_min_count(p);
        printf("%4s %8s %9s %9s %9s %7s %7s %9s  %s\n", "rank", "feature", "mean A", "mean B", "diff", "auroc", "lift",
               "var A/B", p->fd ? "label" : "");
        for (size_t i = 0; i < r->n && i < p->top; i++) {
            const feat_search_row *w = &r->rows[i];
            printf("%4zu %8zu %9.4f %9.4f %9.4f %7.4f %7.2f %9.3f  %s\n", i + 1, w->feature, w->mean_pos, w->mean_neg,
                   w->mean_pos - w->mean_neg, w->auroc, w->lift, w->var_ratio, label_of(p, w->feature));
        }
        return;
    }
    printf("contrast %s (%llu document%s) vs %s (%llu document%s), each feature pooled by its %s over a corpus "
           "document's positions, %.1f s\n",
           o->label_a, (unsigned long long)r->n_pos, r->n_pos == 1 ? "" : "s", o->label_b,
           (unsigned long long)r->n_neg, r->n_neg == 1 ? "" : "s",
           r->pool == FEAT_POOL_MAX ? "max" : "mean", p->secs);
    print_universe(p, "documents");
    print_min_count(p);
    print_null(p);
    printf("%4s %8s %7s %9s %9s %9s %7s %8s %8s  %-22s %s\n", "rank", "feature", "auroc", "mean A", "mean B", "diff",
           "fires", "p", "q", "top document", p->fd ? "label" : "");
    for (size_t i = 0; i < r->n && i < p->top; i++) {
        const feat_search_row *w = &r->rows[i];
        char fires[32], top[64];
        snprintf(fires, sizeof fires, "%llu/%llu", (unsigned long long)w->fires_pos, (unsigned long long)w->fires_neg);
        if (w->top_doc >= 0) snprintf(top, sizeof top, "doc %lld (window %lld)", (long long)w->top_doc, (long long)w->top_window);
        else snprintf(top, sizeof top, "-");
        printf("%4zu %8zu %7.4f %9.4f %9.4f %9.4f %7s %8.3g %8.3g  %-22s %s\n", i + 1, w->feature, w->auroc, w->mean_pos,
               w->mean_neg, w->mean_pos - w->mean_neg, fires, w->p_value, w->q_value, top, label_of(p, w->feature));
    }
    printf("(fires: documents of A / of B where the feature fires at all)\n");
}

static void print_text(const report *p) {
    const feat_search_result *r = p->r;
    const feat_search_opts *o = p->o;
    switch (o->kind) {
    case FEAT_SEARCH_LOGIT:
        printf("features whose decoder promotes tokens matching '%s'\n", o->regex);
        print_matches(p, NULL);
        printf("%4s %8s %10s  %s\n", "rank", "feature", "z-score", p->fd ? "label" : "");
        for (size_t i = 0; i < r->n && i < p->top; i++)
            printf("%4zu %8zu %10.3f  %s\n", i + 1, r->rows[i].feature, r->rows[i].logit_score, label_of(p, r->rows[i].feature));
        return;
    case FEAT_SEARCH_TOKEN:
        printf("features selective for positions whose token at offset %+d matches '%s', %.1f s\n", o->offset, o->regex,
               p->secs);
        print_universe(p, "positions");
        print_matches(p, "positive positions by token");
        print_min_count(p);
        print_rates_table(p, 0);
        return;
    case FEAT_SEARCH_PREDICTED:
        printf("features tracking the model's predictions matching '%s' (positive: the top-1 prediction matches; corr: "
               "with P(match) summed over the stored top-K, a lower bound), %.1f s\n",
               o->regex, p->secs);
        print_universe(p, "positions");
        print_matches(p, "top-1 predictions in the universe");
        print_min_count(p);
        print_rates_table(p, 1);
        return;
    case FEAT_SEARCH_ATTRIBUTE:
        printf("features by direct contribution to the logits of predicted tokens matching '%s', %.1f s\n", o->regex, p->secs);
        printf("universe: %llu positions in %llu corpus document%s", (unsigned long long)r->universe_rows,
               (unsigned long long)r->universe_docs, r->universe_docs == 1 ? "" : "s");
        print_where(p);
        printf("\n");
        print_matches(p, "top-1 predictions in the universe");
        printf("%4s %8s %12s %9s  %s\n", "rank", "feature", "attribution", "positions", p->fd ? "label" : "");
        for (size_t i = 0; i < r->n && i < p->top; i++)
            printf("%4zu %8zu %12.5g %9llu  %s\n", i + 1, r->rows[i].feature, r->rows[i].attribution,
                   (unsigned long long)r->rows[i].n_attr, label_of(p, r->rows[i].feature));
        return;
    default: print_contrast(p);
    }
}

/* --- JSON ------------------------------------------------------------------------- */
static void jstr(cJSON *o, const char *k, const char *v) {
    if (v) cJSON_AddStringToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

static cJSON *json_row(const report *p, const feat_search_row *w) {
    const feat_search_opts *o = p->o;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "feature", (double)w->feature);
    if (p->fd) cJSON_AddStringToObject(j, "label", p->fd->label[w->feature]);
    if (o->kind == FEAT_SEARCH_LOGIT) {
        cli_json_num(j, "logit_score", w->logit_score);
        return j;
    }
    if (o->kind == FEAT_SEARCH_ATTRIBUTE) {
        cli_json_num(j, "attribution", w->attribution);
        cli_json_num(j, "n_attr", (double)w->n_attr);
        return j;
    }
    cli_json_num(j, "auroc", w->auroc);
    cli_json_num(j, "precision", w->precision);
    cli_json_num(j, "recall", w->recall);
    cli_json_num(j, "lift", w->lift);
    cli_json_num(j, "f1", w->f1);
    cli_json_num(j, "fires", (double)w->fires);
    cli_json_num(j, "fires_pos", (double)w->fires_pos);
    cli_json_num(j, "fires_neg", (double)w->fires_neg);
    cli_json_num(j, "n_pos", (double)w->n_pos);
    cli_json_num(j, "n_neg", (double)w->n_neg);
    cli_json_num(j, "mean_pos", w->mean_pos);
    cli_json_num(j, "mean_neg", w->mean_neg);
    cli_json_num(j, "mean_diff", w->mean_pos - w->mean_neg);
    cli_json_num(j, "var_pos", w->var_pos);
    cli_json_num(j, "var_neg", w->var_neg);
    cli_json_num(j, "var_ratio", w->var_ratio);
    if (o->kind == FEAT_SEARCH_PREDICTED) cli_json_num(j, "corr", w->corr);
    if (o->kind == FEAT_SEARCH_CONTRAST) {
        cli_json_num(j, "p", w->p_value);
        cli_json_num(j, "q", w->q_value);
        if (w->top_doc >= 0) {
            cJSON *t = cJSON_AddObjectToObject(j, "top_document");
            cJSON_AddNumberToObject(t, "doc", (double)w->top_doc);
            cJSON_AddNumberToObject(t, "window", (double)w->top_window);
            cli_json_num(t, "value", w->top_value);
        } else {
            cJSON_AddNullToObject(j, "top_document");
        }
    }
    return j;
}

static int print_json(const report *p, size_t top) {
    const feat_search_opts *o = p->o;
    const feat_search_result *r = p->r;
    cJSON *root = cJSON_CreateObject(), *q = cJSON_AddObjectToObject(root, "query");
    cJSON_AddStringToObject(q, "kind", kind_names[o->kind]);
    jstr(q, "regex", o->regex);
    jstr(q, "exclude", o->exclude_regex);
    if (o->kind == FEAT_SEARCH_TOKEN) cJSON_AddNumberToObject(q, "offset", o->offset);
    else cJSON_AddNullToObject(q, "offset");
    if (o->kind == FEAT_SEARCH_CONTRAST) {
        cJSON *l = cJSON_AddArrayToObject(q, "labels");
        cJSON_AddItemToArray(l, cJSON_CreateString(o->label_a));
        cJSON_AddItemToArray(l, cJSON_CreateString(o->label_b));
    } else {
        cJSON_AddNullToObject(q, "labels");
    }
    cJSON *wh = cJSON_AddArrayToObject(q, "where");
    for (size_t i = 0; i < p->where->n; i++) cJSON_AddItemToArray(wh, cJSON_CreateString(p->where->v[i]));
    cJSON_AddStringToObject(q, "pool", feat_pool_names[r->pool]);
    cJSON_AddStringToObject(q, "sort", o->kind == FEAT_SEARCH_LOGIT       ? "logit_score"
                                       : o->kind == FEAT_SEARCH_ATTRIBUTE ? "attribution"
                                                                          : feat_sort_names[r->sort]);
    cJSON_AddNumberToObject(q, "min_count", (double)o->min_count);
    cJSON_AddNumberToObject(q, "permutations", (double)o->permutations);
    cJSON_AddNumberToObject(q, "seed", (double)o->seed);
    if (o->kind != FEAT_SEARCH_LOGIT) {
        cJSON *u = cJSON_AddObjectToObject(root, "universe");
        cJSON_AddNumberToObject(u, "positions", (double)r->universe_rows);
        cJSON_AddNumberToObject(u, "documents", (double)r->universe_docs);
        if (o->kind != FEAT_SEARCH_ATTRIBUTE) {
            cJSON_AddStringToObject(u, "compared", r->pool != FEAT_POOL_NONE ? "documents" : "positions");
            cJSON_AddNumberToObject(u, "positive", (double)r->n_pos);
            cJSON_AddNumberToObject(u, "negative", (double)r->n_neg);
            cli_json_num(u, "base_rate", r->base_rate);
        }
    } else {
        cJSON_AddNullToObject(root, "universe");
    }
    if (o->kind != FEAT_SEARCH_CONTRAST) {
        cJSON *m = cJSON_AddObjectToObject(root, "matched");
        cJSON_AddNumberToObject(m, "entries", (double)r->n_matching_tokens);
        cJSON *a = cJSON_AddArrayToObject(m, "tokens");
        for (size_t i = 0; i < r->n_matching_tokens; i++) {
            cJSON *t = cJSON_CreateObject();
            cJSON_AddNumberToObject(t, "id", r->matches[i].id);
            cJSON_AddStringToObject(t, "token", tok_text(p, r->matches[i].id));
            cJSON_AddNumberToObject(t, "count", (double)r->matches[i].count);
            cJSON_AddItemToArray(a, t);
        }
    } else {
        cJSON_AddNullToObject(root, "matched");
    }
    cJSON *fe = cJSON_AddObjectToObject(root, "features");
    cJSON_AddNumberToObject(fe, "total", (double)r->n_features);
    cJSON_AddNumberToObject(fe, "ranked", (double)r->n);
    cJSON_AddNumberToObject(fe, "below_min_count", (double)r->n_below_min_count);
    if (r->permutations) {
        cJSON *nu = cJSON_AddObjectToObject(root, "null");
        cJSON_AddStringToObject(nu, "statistic", r->sort == FEAT_SORT_MEAN_DIFF ? "mean_diff" : "auroc");
        cJSON_AddNumberToObject(nu, "permutations", (double)r->permutations);
        cli_json_num(nu, "best_median", r->null_median);
        cli_json_num(nu, "best_p95", r->null_p95);
        cli_json_num(nu, "observed_best", r->top_score);
        cli_json_num(nu, "fwer_p", r->fwer_p);
        cli_json_num(nu, "log10_labellings", r->log10_labellings);
        cli_json_num(nu, "min_p", r->min_p);
        cli_json_num(nu, "p_needed", r->p_needed);
    } else {
        cJSON_AddNullToObject(root, "null");
    }
    if (o->kind == FEAT_SEARCH_CONTRAST) {
        cli_json_num(root, "var_ratio_all_features", r->var_ratio_features);
        cli_json_num(root, "var_ratio_resid", r->var_ratio_resid);
    }
    cJSON *rows = cJSON_AddArrayToObject(root, "rows");
    for (size_t i = 0; i < r->n && i < top; i++) cJSON_AddItemToArray(rows, json_row(p, &r->rows[i]));
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    if (!s) return -1;
    printf("%s\n", s);
    sae_free(s);
    return 0;
}

/* --- the command --------------------------------------------------------------------- */
typedef struct {
    const char *token_re, *logit_re, *contrast, *pred_re, *attr_re, *exclude, *perms;
    cli_strs where;
    int offset, sort, pool;
    uint64_t min_count, seed;
} search_flags;

/* flags -> opts; returns 0 or the exit code after printing the error */
static int make_opts(const search_flags *s, feat_search_opts *o, feat_where *where, char *a_label, char *b_label,
                     size_t cap) {
    int modes = (s->token_re != NULL) + (s->logit_re != NULL) + (s->contrast != NULL) + (s->pred_re != NULL) +
                (s->attr_re != NULL);
    if (modes != 1) {
        cli_errorf("search", "needs exactly one of --token-regex, --logit-regex, --contrast, --predicted-regex, "
                             "--attribute-regex");
        return CLI_EXIT_USAGE;
    }
    if (s->token_re) o->kind = FEAT_SEARCH_TOKEN, o->regex = s->token_re;
    if (s->logit_re) o->kind = FEAT_SEARCH_LOGIT, o->regex = s->logit_re;
    if (s->pred_re) o->kind = FEAT_SEARCH_PREDICTED, o->regex = s->pred_re;
    if (s->attr_re) o->kind = FEAT_SEARCH_ATTRIBUTE, o->regex = s->attr_re;
    if (s->contrast) {
        const char *colon = strchr(s->contrast, ':');
        if (!colon || colon == s->contrast || !colon[1] || (size_t)(colon - s->contrast) >= cap || strlen(colon + 1) >= cap) {
            cli_errorf("--contrast", "expects A:B (two document labels), got '%s'", s->contrast);
            return CLI_EXIT_USAGE;
        }
        snprintf(a_label, cap, "%.*s", (int)(colon - s->contrast), s->contrast);
        snprintf(b_label, cap, "%s", colon + 1);
        o->kind = FEAT_SEARCH_CONTRAST, o->label_a = a_label, o->label_b = b_label;
    }
    if (s->offset && o->kind != FEAT_SEARCH_TOKEN) {
        cli_errorf("--offset", "is for --token-regex");
        return CLI_EXIT_USAGE;
    }
    if (s->exclude && o->kind == FEAT_SEARCH_CONTRAST) {
        cli_errorf("--exclude-regex", "takes vocabulary entries out of a regex search; --contrast has none");
        return CLI_EXIT_USAGE;
    }
    o->exclude_regex = s->exclude;
    o->offset = s->offset;
    o->min_count = s->min_count;
    o->seed = s->seed;
    o->sort = (feat_sort)s->sort;
    /* auto: a contrast is pooled by the max over each corpus document (see the README) */
    o->pool = s->pool == 0 ? (o->kind == FEAT_SEARCH_CONTRAST ? FEAT_POOL_MAX : FEAT_POOL_NONE)
                           : (feat_pool)(s->pool - 1);
    if (s->perms) {
        size_t n = 0;
        cli_opt po = {"permutations", CLI_SIZE, &n, NULL, 0, NULL};
        if (cli_set(&po, s->perms, "--permutations")) return CLI_EXIT_USAGE;
        o->permutations = n;
    } else {
        o->permutations = o->kind == FEAT_SEARCH_CONTRAST && o->pool != FEAT_POOL_NONE ? DEFAULT_PERMUTATIONS : 0;
    }
    for (size_t i = 0; i < s->where.n; i++) {
        sae_error err = {0};
        if (feat_where_parse(&where[i], s->where.v[i], &err) < 0) {
            cli_error(&err);
            return CLI_EXIT_USAGE;
        }
    }
    o->where = where, o->n_where = s->where.n;
    return 0;
}

int cmd_search(int argc, char **argv) {
    const char *sae_path = NULL, *data = NULL, *features = NULL;
    search_flags s = {.min_count = 5, .seed = 1};
    int json = 0, threads = cli_default_threads();
    size_t top = 20, batch = 4096;
    cli_opt opts[] = {
        {"sae", CLI_STR, &sae_path, "SAE (.h5)", 0, NULL},
        {"data", CLI_STR, &data, "activation file (schema v1)", 0, NULL},
        {"token-regex", CLI_STR, &s.token_re, "features selective for positions whose token matches RE", 0, NULL},
        {"offset", CLI_INT, &s.offset, "with --token-regex: test the token K positions later (1 = predicts it)", 0, NULL},
        {"contrast", CLI_STR, &s.contrast, "A:B, features that differ between documents labelled A and B", 0, NULL},
        {"predicted-regex", CLI_STR, &s.pred_re, "features tracking the model's predictions of tokens matching RE (/predictions)", 0, NULL},
        {"attribute-regex", CLI_STR, &s.attr_re, "features by direct contribution to the logits of predicted tokens matching RE", 0, NULL},
        {"logit-regex", CLI_STR, &s.logit_re, "features whose decoder promotes tokens matching RE", 0, NULL},
        {"exclude-regex", CLI_STR, &s.exclude, "take vocabulary entries matching RE out of the match set", 0, NULL},
        {"where", CLI_STRS, &s.where, "KEY=VALUE or KEY!=VALUE (keys label, doc): search only positions of windows that pass; same-key = are OR'd, != AND'd, keys AND'd", 0, NULL},
        {"min-count", CLI_U64, &s.min_count, "rank only features firing at least N times in the universe", 0, NULL},
        {"sort", CLI_CHOICE, &s.sort, "ranking key (auto: f1 for token searches, corr for predicted, auroc for contrasts)", 0, feat_sort_names},
        {"pool", CLI_CHOICE, &s.pool, "contrast: one value per corpus document, its max or mean (auto: max), or none (per position)", 0, pool_choices},
        {"permutations", CLI_STR, &s.perms, "pooled contrast: document label shuffles for p, q and the best-of-M null", 0, NULL},
        {"seed", CLI_U64, &s.seed, "seed of the permutations", 0, NULL},
        {"features", CLI_STR, &features, "features file, to show labels", 0, NULL},
        {"top", CLI_SIZE, &top, "rows to print", 0, NULL},
        {"json", CLI_TRUE, &json, "print one JSON object: query, universe, matches, null, rows", 0, NULL},
        {"batch", CLI_SIZE, &batch, "rows per encoder sgemm", 0, NULL},
        {"threads", CLI_INT, &threads, "threads", 0, NULL},
    };
    size_t n_opts = sizeof opts / sizeof opts[0], n_pos;
    const char *pos[1];
    int help, rc = cli_parse(argc, argv, "search", opts, n_opts, pos, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        const char *notes[sizeof opts / sizeof opts[0]] = {0};
        notes[13] = "1000 for pooled contrasts, else 0";
        cli_usage_notes(stdout, "search",
                        "--sae S.h5 --data A.h5 (--token-regex RE [--offset K] | --contrast A:B | --predicted-regex RE "
                        "| --attribute-regex RE | --logit-regex RE) [--where KEY=VALUE]...",
                        "Ranks features for a question. Token and prediction searches score each feature as a\n"
                        "classifier of the positions whose (next or predicted) token matches RE: f1, auroc,\n"
                        "precision, recall and lift = precision / base rate. Contrasts pool each feature per\n"
                        "corpus document and rank by document-level AUROC, with permutation p and q values and\n"
                        "what the best of all features reaches by chance. --where restricts every search to a\n"
                        "universe of positions.",
                        opts, n_opts, notes);
        return CLI_EXIT_OK;
    }
    if (!sae_path || !data) {
        cli_errorf("search", "needs --sae and --data");
        return CLI_EXIT_USAGE;
    }
    if (batch == 0 || threads < 1) {
        cli_errorf("search", "--batch and --threads must be positive");
        return CLI_EXIT_USAGE;
    }
    feat_search_opts o = {.batch = batch};
    feat_where where[CLI_STRS_MAX];
    char a_label[256] = "", b_label[256] = "";
    if ((rc = make_opts(&s, &o, where, a_label, b_label, sizeof a_label))) return rc;
    sae_paths ps = {0};
    sae_paths_add(&ps, "--sae", sae_path, SAE_PATH_IN_DIR);
    sae_paths_add(&ps, "--data", data, SAE_PATH_IN);
    sae_paths_add(&ps, "--features", features, SAE_PATH_IN);
    if ((rc = cli_check_paths(&ps))) return rc;
    sae_set_threads(threads);
    sae_error err = {0};
    sae_model m;
    double scale;
    data_actfile *f = NULL;
    feat_dict *fd = NULL;
    char **vocab = NULL;
    if ((rc = cli_open_sae_and_data(sae_path, data, batch, SAE_PRECISION_F32, &m, &scale, &f))) return rc;
    if (features) rc = feat_read(&fd, features, &err);
    if (rc == SAE_OK && fd && fd->M != m.cfg.m)
        rc = sae_error_set(&err, SAE_ERR_MISMATCH, features, "has %zu features but the SAE has %zu", fd->M, m.cfg.m);
    feat_search_result r = {0};
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (rc == SAE_OK) rc = feat_search(&r, &m, scale, f, &o, &err);
    double secs = elapsed(&t0);
    if (rc == SAE_OK && o.kind != FEAT_SEARCH_CONTRAST) rc = data_actfile_read_vocab(f, &vocab, &err);
    if (rc < 0) {
        cli_error(&err);
        feat_search_result_free(&r), feat_free(fd), data_actfile_close(f), sae_model_free(&m);
        return err.code == SAE_ERR_ARG ? CLI_EXIT_USAGE : CLI_EXIT_ERROR;
    }
    report p = {&o, &r, fd, vocab, vocab ? f->vocab_size : 0, &s.where, secs, top};
    if (json) {
        if (print_json(&p, top) < 0) rc = sae_error_set(&err, SAE_ERR_NOMEM, NULL, "out of memory");
    } else {
        print_text(&p);
    }
    if (vocab) data_h5_free_strings(vocab, f->vocab_size);
    feat_search_result_free(&r);
    feat_free(fd);
    data_actfile_close(f);
    sae_model_free(&m);
    if (rc < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    return CLI_EXIT_OK;
}
