/* cli/cmd_generate.c: `sae generate` and `sae tokenize`, to see that a model
 * and its tokenizer load and behave, and what an SAE feature does when it is
 * turned up, off or held (data/generate.h, sae/splice.h). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/fileutil.h"
#include "common/mem.h"
#include "common/gemm.h"
#include "common/rng.h"
#include "data/generate.h"
#include "data/llama.h"
#include "sae/sae.h"
#include "sae/splice.h"
#include "data/tokenizer.h"

int cli_load_model(const char *model_path, const char *tok_path, data_llama **m,
                   data_tokenizer **t) {
    sae_error err = {0};
    if (data_llama_load(m, model_path, &err) < 0 ||
        data_tokenizer_load(t, tok_path, (size_t)(*m)->c.vocab_size, &err) < 0) {
        cli_error(&err);
        data_llama_free(*m);
        *m = NULL;
        return CLI_EXIT_ERROR;
    }
    return 0;
}

/* One continuation and, with --top-logits, each step's most probable tokens. */
typedef struct {
    size_t top_n, V;
    int32_t *top_id; /* (steps, top_n) */
    float *top_p;    /* (steps, top_n) */
    size_t n_steps;
} step_log;

static void log_step(size_t step, const float *logits, size_t V, int32_t next, void *user) {
    (void)next;
    step_log *l = user;
    if (!l->top_n) return;
    float mx = logits[0];
    for (size_t v = 1; v < V; v++) mx = logits[v] > mx ? logits[v] : mx;
    double sum = 0;
    for (size_t v = 0; v < V; v++) sum += exp((double)logits[v] - mx);
    int32_t *id = l->top_id + step * l->top_n;
    float *pr = l->top_p + step * l->top_n;
    for (size_t k = 0; k < l->top_n; k++) id[k] = -1, pr[k] = -1.0f;
    for (size_t v = 0; v < V; v++) { /* insertion into the sorted top N; ties: lower id first */
        float p = (float)(exp((double)logits[v] - mx) / sum);
        if (p <= pr[l->top_n - 1]) continue;
        size_t k = l->top_n - 1;
        while (k > 0 && p > pr[k - 1]) id[k] = id[k - 1], pr[k] = pr[k - 1], k--;
        id[k] = (int32_t)v, pr[k] = p;
    }
    l->n_steps = step + 1;
}

/* The continuation ids[from .. n) as text. */
static char *decode_text(const data_tokenizer *t, const int32_t *ids, size_t from, size_t n) {
    size_t cap = 64, len = 0;
    char *out = sae_malloc(cap), bb[2];
    if (!out) return NULL;
    out[0] = '\0';
    for (size_t i = from ? from : 1; i < n; i++) {
        const char *piece = data_tokenizer_decode(t, ids[i - 1], ids[i], bb);
        size_t pl = strlen(piece);
        if (len + pl + 1 > cap) {
            while (len + pl + 1 > cap) cap *= 2;
            char *g = sae_realloc(out, cap);
            if (!g) return sae_free(out), NULL;
            out = g;
        }
        memcpy(out + len, piece, pl + 1);
        len += pl;
    }
    return out;
}

static void print_top(const data_tokenizer *t, const step_log *l, size_t step) {
    for (size_t k = 0; k < l->top_n; k++) {
        int32_t id = l->top_id[step * l->top_n + k];
        if (id < 0) break;
        char disp[256];
        data_tokenizer_display(t, id, disp, sizeof disp);
        printf("%s%s %.3f", k ? "  " : "", disp, (double)l->top_p[step * l->top_n + k]);
    }
}

static cJSON *run_json(const data_tokenizer *t, const int32_t *ids, size_t n_prompt, size_t n, const step_log *l) {
    cJSON *j = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(j, "ids");
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
    char *text = decode_text(t, ids, n_prompt, n);
    cJSON_AddStringToObject(j, "continuation", text ? text : "");
    sae_free(text);
    if (l->top_n) {
        cJSON *steps = cJSON_AddArrayToObject(j, "top");
        for (size_t s = 0; s < l->n_steps; s++) {
            cJSON *row = cJSON_CreateArray();
            for (size_t k = 0; k < l->top_n && l->top_id[s * l->top_n + k] >= 0; k++) {
                cJSON *e = cJSON_CreateObject();
                char disp[256];
                data_tokenizer_display(t, l->top_id[s * l->top_n + k], disp, sizeof disp);
                cJSON_AddNumberToObject(e, "id", l->top_id[s * l->top_n + k]);
                cJSON_AddStringToObject(e, "piece", disp);
                cJSON_AddNumberToObject(e, "p", l->top_p[s * l->top_n + k]);
                cJSON_AddItemToArray(row, e);
            }
            cJSON_AddItemToArray(steps, row);
        }
    }
    return j;
}

typedef struct gen_opts {
    const char *sae;
    int layer, site, json;
    size_t top_n;
    cli_strs steer, ablate, clamp;
} gen_opts;

/* The clean continuation and, with an SAE and edits, the edited one from the
 * same prompt and seed; printed one after the other. */
static int generate_pair(const char *model_path, data_llama *m, const data_tokenizer *t, const int32_t *prompt,
                         size_t n_prompt, const data_generate_params *g, const gen_opts *o) {
    size_t V = (size_t)m->c.vocab_size, max = g->steps, runs = o->sae ? 2 : 1;
    sae_error err = {0};
    sae_model sm = {0};
    double scale = 1;
    int layer = o->layer, site = o->site, rc = 0;
    sae_edit edits[3 * CLI_STRS_MAX];
    size_t n_edits = 0;
    if (o->sae && (rc = cli_open_sae_for_model(o->sae, m, model_path, max, &sm, &scale, &layer, &site)))
        return rc;
    if (o->sae && (rc = cli_parse_edits(&o->steer, &o->ablate, &o->clamp, sm.cfg.m, edits, &n_edits))) {
        sae_model_free(&sm);
        return rc;
    }
    sae_splice sp = {0};
    data_llama_run *r = NULL;
    float *logits = sae_malloc(max * V * sizeof *logits);
    int32_t *ids[2] = {sae_malloc(max * sizeof(int32_t)), sae_malloc(max * sizeof(int32_t))};
    step_log logs[2] = {{.top_n = o->top_n, .V = V}, {.top_n = o->top_n, .V = V}};
    size_t n[2] = {0, 0};
    int ok = logits && ids[0] && ids[1];
    for (int i = 0; i < 2 && ok && o->top_n; i++) {
        logs[i].top_id = sae_malloc(max * o->top_n * sizeof(int32_t));
        logs[i].top_p = sae_malloc(max * o->top_n * sizeof(float));
        ok = logs[i].top_id && logs[i].top_p;
    }
    rc = ok ? data_llama_run_init(&r, m, max, &err) : sae_error_set(&err, SAE_ERR_NOMEM, NULL, "out of memory");
    if (rc == SAE_OK && o->sae) rc = sae_splice_init(&sp, &sm, scale, layer, (data_site)site, max, &err);
    if (rc == SAE_OK) {
        sp.mode = SAE_SPLICE_EDIT, sp.edits = edits, sp.n_edits = n_edits;
        sae_splice_set_batch(&sp, NULL, 1);
        for (size_t i = 0; i < runs; i++) {
            memcpy(ids[i], prompt, n_prompt * sizeof(int32_t));
            n[i] = data_generate(r, ids[i], n_prompt, g, i ? sae_splice_hook : NULL, &sp, log_step, &logs[i], logits);
        }
        if (sp.failed) err = sp.err, rc = err.code ? err.code : SAE_ERR_NOMEM;
    }
    char desc[1024] = "";
    sae_edits_describe(edits, n_edits, desc, sizeof desc);
    if (rc < 0) {
        cli_error(&err);
    } else if (o->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddItemToObject(j, "clean", run_json(t, ids[0], n_prompt, n[0], &logs[0]));
        if (runs == 2) {
            cJSON_AddItemToObject(j, "edited", run_json(t, ids[1], n_prompt, n[1], &logs[1]));
            cJSON_AddStringToObject(j, "edits", desc);
            cJSON_AddNumberToObject(j, "layer", layer);
            cJSON_AddStringToObject(j, "site", data_site_name((data_site)site));
        }
        char *s = cJSON_PrintUnformatted(j);
        printf("%s\n", s);
        sae_free(s);
        cJSON_Delete(j);
    } else {
        char *prompt_text = decode_text(t, prompt, 0, n_prompt);
        if (runs == 2) printf("prompt: %s\n", prompt_text ? prompt_text : "");
        for (size_t i = 0; i < runs; i++) {
            char *text = decode_text(t, ids[i], n_prompt, n[i]);
            if (runs == 2 && i == 0) printf("clean:\n");
            if (runs == 2 && i == 1) printf("edited (%s at block %d %s):\n", desc, layer, data_site_name((data_site)site));
            printf("%s%s\n", runs == 2 ? "" : (prompt_text ? prompt_text : ""), text ? text : "");
            sae_free(text);
        }
        sae_free(prompt_text);
        for (size_t s = 0; o->top_n && s < logs[0].n_steps; s++) {
            if (s == 0) printf("\nnext-token probabilities per step (top %zu)\n", o->top_n);
            for (size_t i = 0; i < runs; i++) {
                if (s >= logs[i].n_steps) continue;
                if (i == 0) printf("step %3zu  clean   ", s);
                else printf("          edited  ");
                print_top(t, &logs[i], s);
                putchar('\n');
            }
        }
    }
    for (int i = 0; i < 2; i++) sae_free(ids[i]), sae_free(logs[i].top_id), sae_free(logs[i].top_p);
    sae_free(logits);
    sae_splice_free(&sp);
    data_llama_run_free(r);
    if (o->sae) sae_model_free(&sm);
    return rc < 0 ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}

int cmd_generate(int argc, char **argv) {
    const char *model = NULL, *tok = NULL, *prompt = "";
    size_t steps = 256;
    float temperature = 0.0f;
    uint64_t seed = 0;
    /* one by default: a step's forward is at most seq_len rows, too small for
     * threads to pay, and on a busy machine spinning OpenMP workers made a
     * 40-step steered run 30-100x slower than one thread (0.17 s) */
    int threads = 1;
    gen_opts go = {.layer = -1, .site = -1};
    cli_opt opts[] = {
        {"model", CLI_STR, &model, "llama2.c model (.bin)", 0, NULL},
        {"tokenizer", CLI_STR, &tok, "llama2.c tokenizer.bin", 0, NULL},
        {"prompt", CLI_STR, &prompt, "text to continue", 0, NULL},
        {"steps", CLI_SIZE, &steps, "tokens in all, prompt included (at most the model's seq_len)", 0, NULL},
        {"temperature", CLI_FLOAT, &temperature, "0 = greedy", 0, NULL},
        {"seed", CLI_U64, &seed, "sampling seed", 0, NULL},
        {"threads", CLI_INT, &threads, "threads", 0, NULL},
        {"sae", CLI_STR, &go.sae, "SAE whose features --steer/--ablate/--clamp edit", 0, NULL},
        {"layer", CLI_INT, &go.layer, "the SAE's block (default: its provenance)", 0, NULL},
        {"site", CLI_CHOICE, &go.site, "the SAE's site (default: its provenance, else resid_post)", 0, data_site_names},
        {"steer", CLI_STRS, &go.steer, "F:A: add A x feature F's decoder direction at every position (repeatable)", 0, NULL},
        {"ablate", CLI_STRS, &go.ablate, "F: remove feature F's contribution wherever it fires", 0, NULL},
        {"clamp", CLI_STRS, &go.clamp, "F:V: set feature F's code to V at every position", 0, NULL},
        {"top-logits", CLI_SIZE, &go.top_n, "also print the N most probable next tokens at each step", 0, NULL},
        {"json", CLI_TRUE, &go.json, "print one JSON object (ids, continuation, top) instead", 0, NULL},
    };
    size_t n_opts = sizeof opts / sizeof opts[0], n_pos;
    const char *pos[1];
    int help, rc = cli_parse(argc, argv, "generate", opts, n_opts, pos, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        cli_usage(stdout, "generate", "--model M.bin --tokenizer T.bin --prompt TEXT [--sae S.h5 --steer F:A ...]",
                  "Continues a prompt, greedily or sampled. With --sae and edits, also the\n"
                  "continuation with features edited at the SAE's site, from the same prompt\n"
                  "and seed, printed after the clean one. Edits keep the SAE's error: steer\n"
                  "adds A x W_dec[F] (A in the feature's own units, as sae show reports its\n"
                  "activations), ablate subtracts z_F W_dec[F], clamp adds (V - z_F) W_dec[F],\n"
                  "at every position but BOS, in every step's forward.",
                  opts, n_opts);
        return CLI_EXIT_OK;
    }
    if (!model || !tok) {
        cli_errorf("generate", "--model and --tokenizer are required");
        return CLI_EXIT_USAGE;
    }
    if (!(temperature >= 0.0f) || threads < 1) {
        cli_errorf("generate", "--temperature must be >= 0 and --threads >= 1");
        return CLI_EXIT_USAGE;
    }
    int n_edits = (int)(go.steer.n + go.ablate.n + go.clamp.n);
    if (go.sae && n_edits == 0) {
        cli_errorf("--sae", "give the edits to make: --steer F:A, --ablate F or --clamp F:V");
        return CLI_EXIT_USAGE;
    }
    if (!go.sae && (n_edits || go.layer != -1 || go.site != -1)) {
        cli_errorf("generate", "--steer, --ablate, --clamp, --layer and --site need --sae");
        return CLI_EXIT_USAGE;
    }
    if (go.top_n > 100) {
        cli_errorf("--top-logits", "at most 100, got %zu", go.top_n);
        return CLI_EXIT_USAGE;
    }
    sae_paths ps = {0};
    sae_paths_add(&ps, "--model", model, SAE_PATH_IN);
    sae_paths_add(&ps, "--tokenizer", tok, SAE_PATH_IN);
    if (go.sae) sae_paths_add(&ps, "--sae", go.sae, SAE_PATH_IN_DIR);
    if ((rc = cli_check_paths(&ps))) return rc;
    sae_set_threads(threads);
    data_llama *m = NULL;
    data_tokenizer *t = NULL;
    if ((rc = cli_load_model(model, tok, &m, &t))) return rc;
    size_t plen = strlen(prompt), bad;
    if (data_utf8_check(prompt, plen, &bad) != 0) {
        cli_errorf("--prompt", "not valid UTF-8 at byte %zu", bad);
        data_llama_free(m), data_tokenizer_free(t);
        return CLI_EXIT_USAGE;
    }
    sae_error err = {0};
    int32_t *ids = NULL;
    size_t n = 0, max = (size_t)m->c.seq_len;
    rc = data_tokenizer_encode(t, prompt, plen, 1, &ids, &n, &err);
    if (rc < 0) {
        cli_error(&err);
        rc = CLI_EXIT_ERROR;
    } else {
        if (steps > max) steps = max;
        if (n > steps) n = steps;
        data_generate_params g = {.steps = steps, .temperature = temperature, .seed = seed};
        rc = generate_pair(model, m, t, ids, n, &g, &go);
    }
    sae_free(ids);
    data_llama_free(m);
    data_tokenizer_free(t);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    const char *tok = NULL;
    int no_bos = 0;
    cli_opt opts[] = {
        {"tokenizer", CLI_STR, &tok, "llama2.c tokenizer.bin", 0, NULL},
        {"no-bos", CLI_TRUE, &no_bos, "do not start with BOS", 0, NULL},
    };
    size_t n_opts = sizeof opts / sizeof opts[0], n_pos;
    const char *pos[1];
    int help, rc = cli_parse(argc, argv, "tokenize", opts, n_opts, pos, 1, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        cli_usage(stdout, "tokenize", "--tokenizer T.bin TEXT",
                  "Prints the token ids and pieces of TEXT as llama2.c's encode makes them.", opts, n_opts);
        return CLI_EXIT_OK;
    }
    if (!tok || n_pos != 1) {
        cli_errorf("tokenize", "needs --tokenizer and one TEXT argument");
        return CLI_EXIT_USAGE;
    }
    size_t len = strlen(pos[0]), bad;
    if (data_utf8_check(pos[0], len, &bad) != 0) {
        cli_errorf("tokenize", "TEXT is not valid UTF-8 at byte %zu", bad);
        return CLI_EXIT_USAGE;
    }
    sae_paths ps = {0};
    sae_paths_add(&ps, "--tokenizer", tok, SAE_PATH_IN);
    if ((rc = cli_check_paths(&ps))) return rc;
    sae_error err = {0};
    data_tokenizer *t;
    if (data_tokenizer_load(&t, tok, 0, &err) < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    int32_t *ids;
    size_t n;
    if (data_tokenizer_encode(t, pos[0], len, !no_bos, &ids, &n, &err) < 0) {
        cli_error(&err);
        data_tokenizer_free(t);
        return CLI_EXIT_ERROR;
    }
    printf("%zu tokens\n", n);
    for (size_t i = 0; i < n; i++) {
        char disp[256];
        data_tokenizer_display(t, ids[i], disp, sizeof disp);
        printf("%6d  %s\n", ids[i], disp);
    }
    sae_free(ids);
    data_tokenizer_free(t);
    return CLI_EXIT_OK;
}
