/* cli/cmd_generate.c: `sae generate` and `sae tokenize`, to see that a model
 * and its tokenizer load and behave. Generation re-runs the prefill on the
 * growing sequence: simple, and fast enough for the small models this is for. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/fileutil.h"
#include "common/mem.h"
#include "common/gemm.h"
#include "common/rng.h"
#include "data/llama.h"
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

static int32_t sample(const float *logits, size_t V, float temperature, sae_rng *g) {
    size_t best = 0;
    for (size_t i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (temperature <= 0.0f) return (int32_t)best;
    double sum = 0, u;
    for (size_t i = 0; i < V; i++) sum += exp((logits[i] - logits[best]) / temperature);
    u = sae_rng_uniform_open(g) * sum;
    for (size_t i = 0; i < V; i++) {
        u -= exp((logits[i] - logits[best]) / temperature);
        if (u <= 0) return (int32_t)i;
    }
    return (int32_t)best;
}

int cmd_generate(int argc, char **argv) {
    const char *model = NULL, *tok = NULL, *prompt = "";
    size_t steps = 256;
    float temperature = 0.0f;
    uint64_t seed = 0;
    int threads = cli_default_threads();
    cli_opt opts[] = {
        {"model", CLI_STR, &model, "llama2.c model (.bin)", 0, NULL},
        {"tokenizer", CLI_STR, &tok, "llama2.c tokenizer.bin", 0, NULL},
        {"prompt", CLI_STR, &prompt, "text to continue", 0, NULL},
        {"steps", CLI_SIZE, &steps, "tokens in all, prompt included (at most the model's seq_len)", 0, NULL},
        {"temperature", CLI_FLOAT, &temperature, "0 = greedy", 0, NULL},
        {"seed", CLI_U64, &seed, "sampling seed", 0, NULL},
        {"threads", CLI_INT, &threads, "threads", 0, NULL},
    };
    size_t n_opts = sizeof opts / sizeof opts[0], n_pos;
    const char *pos[1];
    int help, rc = cli_parse(argc, argv, "generate", opts, n_opts, pos, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        cli_usage(stdout, "generate", "--model M.bin --tokenizer T.bin --prompt TEXT [options]",
                  "Continues a prompt, greedily or sampled, to check a model loaded correctly.",
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
    sae_paths ps = {0};
    sae_paths_add(&ps, "--model", model, SAE_PATH_IN);
    sae_paths_add(&ps, "--tokenizer", tok, SAE_PATH_IN);
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
    size_t n = 0, V = (size_t)m->c.vocab_size, max = (size_t)m->c.seq_len;
    if (steps > max) steps = max;
    data_llama_run *r = NULL;
    float *logits = NULL;
    rc = data_tokenizer_encode(t, prompt, plen, 1, &ids, &n, &err);
    if (rc == SAE_OK) rc = data_llama_run_init(&r, m, max, &err);
    int32_t *seq = sae_malloc((max + 1) * sizeof *seq);
    if (rc == SAE_OK && (!(logits = sae_malloc(max * V * sizeof *logits)) || !seq))
        rc = sae_error_set(&err, SAE_ERR_NOMEM, NULL, "out of memory");
    if (rc < 0) {
        cli_error(&err);
    } else {
        if (n > max) n = max;
        memcpy(seq, ids, n * sizeof *seq);
        char bb[2];
        for (size_t i = 1; i < n; i++) fputs(data_tokenizer_decode(t, seq[i - 1], seq[i], bb), stdout);
        sae_rng g;
        sae_rng_seed(&g, seed, 0);
        while (n < steps) {
            size_t off[2] = {0, n};
            data_llama_forward(r, seq, off, 1, -1, NULL, NULL, logits);
            int32_t next = sample(logits + (n - 1) * V, V, temperature, &g);
            if (next == DATA_TOKEN_BOS) break; /* llama2.c stops at BOS too */
            fputs(data_tokenizer_decode(t, seq[n - 1], next, bb), stdout);
            fflush(stdout);
            seq[n++] = next;
        }
        fputc('\n', stdout);
    }
    sae_free(ids), sae_free(seq), sae_free(logits);
    data_llama_run_free(r);
    data_llama_free(m);
    data_tokenizer_free(t);
    return rc < 0 ? CLI_EXIT_ERROR : CLI_EXIT_OK;
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
