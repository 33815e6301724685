/* tests/test_alloc_fail.c: every allocation on the main paths may fail.
 *
 * In the manner of libuv's test-loop-oom: each scenario runs once normally,
 * which counts the allocations it makes (sae_mem_count), and then once for
 * every n below that count with the n-th allocation made to fail
 * (sae_mem_fail_at). Every such run must return SAE_ERR_NOMEM with the error
 * filled, must not crash, and must leave no output or temporary file behind.
 * Leaks are caught by LeakSanitizer in the sanitizer build, which CI runs.
 *
 * Paths covered: opening and reading an activation file, loading an SAE,
 * training set-up and steps to a final file, the features pass with its file
 * written and read back, search, eval, capture from a tiny llama2.c model
 * and an SAE spliced into it (train_splice_eval),
 * and rendering figures. Allocations inside HDF5, OpenBLAS, libpng and
 * FreeType do not go through our allocator and are not counted. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/gemm.h"
#include "common/mem.h"
#include "data/actfile.h"
#include "data/capture.h"
#include "data/llama.h"
#include "data/synth.h"
#include "data/tokenizer.h"
#include "features/feat.h"
#include "sae/io.h"
#include "tests/testutil.h"
#include "train/splice_eval.h"
#include "train/train.h"
#include "viz/viz.h"

static const char *dir;
static const char *data_path, *sae_path;

typedef int (*scenario_fn)(sae_error *err);

/* Files in dir whose name contains ".tmp." (temporary outputs left behind). */
static int count_tmp_files(void) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    if (d) closedir(d);
    return n;
}

static void sweep(const char *name, scenario_fn fn, const char *output) {
    sae_error err = {0};
    sae_mem_fail_at(-1);
    unsigned long before = sae_mem_count();
    int rc = fn(&err);
    if (rc < 0) fail_msg("%s without injected failures: %s: %s", name, err.subject, err.msg);
    unsigned long n_allocs = sae_mem_count() - before;
    assert_true(n_allocs > 0);
    /* SAE_ALLOC_ONLY=N runs only the N-th case of each sweep: with
     * `gdb -ex 'break sae_mem_injected'` it shows that allocation's caller */
    const char *only = getenv("SAE_ALLOC_ONLY");
    for (unsigned long n = 0; n < n_allocs; n++) {
        if (only && strtoul(only, NULL, 10) != n) continue;
        if (output) remove(output);
        memset(&err, 0, sizeof err);
        sae_mem_fail_at((long)n);
        rc = fn(&err);
        sae_mem_fail_at(-1);
        if (rc != SAE_ERR_NOMEM || err.code != SAE_ERR_NOMEM)
            fail_msg("%s: allocation %lu of %lu failed but the call returned %d (%s: %s)", name, n,
                     n_allocs, rc, err.subject, err.msg);
        if (!err.msg[0]) fail_msg("%s: allocation %lu: no message", name, n);
        if (output) {
            FILE *f = fopen(output, "rb");
            if (f) fclose(f);
            if (f) fail_msg("%s: allocation %lu failed but %s was written", name, n, output);
        }
        if (count_tmp_files()) fail_msg("%s: allocation %lu: a temporary file was left", name, n);
    }
    printf("# %s: %lu allocations, each failed once, each reported cleanly\n", name, n_allocs);
}

/* --- scenarios ----------------------------------------------------------------- */
static int open_and_read(sae_error *err) {
    data_actfile *f;
    int rc = data_actfile_open(&f, data_path, err);
    if (rc < 0) return rc;
    float rows[16 * 8];
    rc = data_actfile_read_rows(f, 10, 16, rows, err);
    data_actfile_close(f);
    return rc;
}

static int load_sae(sae_error *err) {
    sae_model m;
    double scale;
    int rc = sae_file_load(sae_path, &m, 64, &scale, err);
    if (rc == 0) sae_model_free(&m);
    return rc;
}

static sae_arch train_arch = SAE_ARCH_TOPK;
static train_params small_params(void) {
    train_params p = train_default_params(train_arch);
    p.sae.m = 64, p.sae.k = 4, p.batch = 64, p.tokens = 64 * 6, p.threads = 1;
    p.buffer_rows = 512, p.checkpoint_every = 64 * 3, p.log_every = 1;
    return p;
}

static const char *train_out;
static int train(sae_error *err) {
    data_actfile *f;
    int rc = data_actfile_open(&f, data_path, err);
    if (rc < 0) return rc;
    train_params p = small_params();
    remove(train_out);
    rc = train_run(&p, f, train_out, 0, NULL, err);
    data_actfile_close(f);
    return rc;
}

/* Allocations of a whole run of `steps` steps with no mid-run checkpoint. */
static unsigned long run_allocations(sae_arch arch, uint64_t steps) {
    sae_error err = {0};
    data_actfile *f;
    if (data_actfile_open(&f, data_path, &err) < 0) fail_msg("%s", err.msg);
    train_params p = train_default_params(arch);
    p.sae.m = 64, p.sae.k = 4, p.batch = 64, p.tokens = 64 * steps, p.threads = 1;
    p.buffer_rows = 512, p.checkpoint_every = 0, p.log_every = 1000;
    remove(train_out);
    unsigned long before = sae_mem_count();
    if (train_run(&p, f, train_out, 0, NULL, &err) < 0) fail_msg("%s", err.msg);
    unsigned long n = sae_mem_count() - before;
    data_actfile_close(f);
    return n;
}

static const char *feat_out;
static int features(sae_error *err) {
    sae_model m;
    double scale;
    int rc = sae_file_load(sae_path, &m, 100, &scale, err);
    if (rc < 0) return rc;
    data_actfile *f = NULL;
    feat_dict *fd = NULL;
    if ((rc = data_actfile_open(&f, data_path, err)) < 0) goto done;
    feat_opts o = feat_default_opts();
    o.batch = 100, o.top_n = 5;
    if ((rc = feat_build(&fd, &m, scale, f, &o, NULL, NULL, err)) < 0) goto done;
    rc = feat_write(fd, feat_out, err);
done:
    feat_free(fd);
    if (f) data_actfile_close(f);
    sae_model_free(&m);
    return rc;
}

static int read_features(sae_error *err) {
    feat_dict *fd = NULL;
    int rc = feat_read(&fd, feat_out, err);
    feat_free(fd);
    return rc;
}

static int search(sae_error *err) {
    sae_model m;
    double scale;
    int rc = sae_file_load(sae_path, &m, 100, &scale, err);
    if (rc < 0) return rc;
    data_actfile *f = NULL;
    if ((rc = data_actfile_open(&f, data_path, err)) == 0) {
        feat_search_opts o = {.kind = FEAT_SEARCH_TOKEN, .regex = "^w1", .batch = 100};
        feat_search_result r;
        rc = feat_search(&r, &m, scale, f, &o, err);
        if (rc == 0) feat_search_result_free(&r);
        data_actfile_close(f);
    }
    sae_model_free(&m);
    return rc;
}

static int eval(sae_error *err) {
    sae_model m;
    double scale;
    int rc = sae_file_load(sae_path, &m, 256, &scale, err);
    if (rc < 0) return rc;
    data_actfile *f = NULL;
    if ((rc = data_actfile_open(&f, data_path, err)) == 0) {
        train_eval_result r;
        rc = train_eval(&m, scale, f, 0, &r, err);
        data_actfile_close(f);
    }
    sae_model_free(&m);
    return rc;
}

static int align(sae_error *err) {
    float A[4 * 3] = {1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 0}, B[3 * 3] = {0, 1, 0, 1, 0.1f, 0, 0, 0, -1};
    feat_alignment al;
    int rc = feat_align(A, 4, B, 3, 3, 8, &al, err);
    if (rc == 0) feat_alignment_free(&al);
    return rc;
}

static const char *cap_out;
static int capture(sae_error *err) {
    data_llama *m = NULL;
    data_tokenizer *t = NULL;
    const char *model = tu_path(dir, "tiny.bin"), *tok = tu_path(dir, "tiny_tok.bin");
    int rc = data_llama_load(&m, model, err);
    if (rc == 0) rc = data_tokenizer_load(&t, tok, (size_t)m->c.vocab_size, err);
    if (rc == 0) {
        data_capture_params p = {.corpus_path = tu_path(dir, "good.jsonl"), .out_path = cap_out,
                                 .layer = 1, .site = DATA_SITE_RESID_POST, .batch_rows = 16,
                                 .predictions = 5}; /* every block, the classifier and /predictions too */
        rc = data_capture_run(m, model, t, tok, &p, NULL, NULL, err);
    }
    data_tokenizer_free(t);
    data_llama_free(m);
    return rc;
}

/* The SAE spliced into the tiny model, with edits and labels. */
static int splice_eval(sae_error *err) {
    data_llama *lm = NULL;
    data_tokenizer *t = NULL;
    int rc = data_llama_load(&lm, tu_path(dir, "tiny.bin"), err);
    if (rc == 0) rc = data_tokenizer_load(&t, tu_path(dir, "tiny_tok.bin"), (size_t)lm->c.vocab_size, err);
    sae_edit edits[3] = {{SAE_EDIT_ABLATE, 3, 0}, {SAE_EDIT_STEER, 5, 1.0f}, {SAE_EDIT_CLAMP, 7, 0.5f}};
    train_splice_params p = {.corpus_path = tu_path(dir, "good.jsonl"), .seq_len = 12, .batch_rows = 24,
                             .layer = 1, .site = DATA_SITE_MLP_OUT, .edits = edits, .n_edits = 3, .by_label = 1};
    sae_model m = {0};
    int have_model = 0;
    if (rc == 0) {
        sae_config c = sae_config_default(SAE_ARCH_TOPK);
        c.k = 4;
        if ((rc = sae_config_resolve(&c, 16, err)) == 0 &&
            (rc = sae_model_init(&m, &c, train_splice_capacity(lm, &p), 0, err)) == 0) {
            have_model = 1;
            sae_model_init_params(&m, 3);
        }
    }
    train_splice_result r;
    if (rc == 0 && (rc = train_splice_eval(lm, t, &m, 1.5, &p, NULL, NULL, &r, err)) == 0)
        train_splice_result_free(&r);
    if (have_model) sae_model_free(&m);
    data_tokenizer_free(t);
    data_llama_free(lm);
    return rc;
}

static const char *png_out;
static const float v[6] = {-1, 0.5f, 0, 1, 0.25f, -0.5f};
static const viz_render_opts o = {.scale = 1.0, .command = "test_alloc_fail"};

static int heatmap(sae_error *err) {
    const char *rl[2] = {"#1 みかん", "#2 きりん"}, *cl[3] = {"a", "b", "c"};
    viz_heatmap h = {.title = "t", .values = v, .rows = 2, .cols = 3, .row_labels = rl, .col_labels = cl,
                     .vmin = -1, .vmax = 1, .cmap = VIZ_CMAP_RDBU, .cbar_title = "cos"};
    return viz_render_heatmap(&h, png_out, &o, err);
}

static int lines(sae_error *err) {
    double x[3] = {1, 10, 100}, y[3] = {1, 0.5, 0.25};
    viz_series s = {.name = "fvu", .x = x, .y = y, .n = 3};
    viz_panel pa = {.y_title = "fvu", .series = &s, .n_series = 1, .log_x = 1, .log_y = 1};
    viz_lines l = {.title = "curves", .x_title = "tokens", .panels = &pa, .n_panels = 1};
    return viz_render_lines(&l, png_out, &o, err);
}

static int shaded_text(sae_error *err) {
    const char *toks[3] = {"み", "かん", " the"};
    viz_shaded_text t = {.title = "text", .tokens = toks, .values = v, .n = 3, .vmax = 1, .width_pt = 200};
    return viz_render_text(&t, png_out, &o, err);
}

/* --- cmocka ------------------------------------------------------------------ */
static void test_read_paths(void **state) {
    (void)state;
    sweep("activation file open and read", open_and_read, NULL);
    sweep("SAE file load", load_sae, NULL);
}
static void test_train(void **state) {
    (void)state;
    /* no output check: a failure after the mid-run checkpoint leaves that
     * (complete, resumable) checkpoint at the output path by design */
    for (int a = 0; a < SAE_ARCH_COUNT; a++) {
        char name[128];
        snprintf(name, sizeof name, "train %s: set-up, steps, checkpoint and final file", sae_arch_names[a]);
        train_arch = (sae_arch)a;
        sweep(name, train, NULL);
    }
    train_arch = SAE_ARCH_TOPK;
}
/* The training step allocates nothing: 40 steps cost what 4 steps cost. */
static void test_step_allocates_nothing(void **state) {
    (void)state;
    for (int a = 0; a < SAE_ARCH_COUNT; a++) {
        unsigned long short_run = run_allocations((sae_arch)a, 4), long_run = run_allocations((sae_arch)a, 40);
        if (short_run != long_run)
            fail_msg("%s: 4 steps make %lu allocations, 40 steps %lu", sae_arch_names[a], short_run, long_run);
    }
}

static void test_features(void **state) {
    (void)state;
    sweep("features pass and file", features, feat_out);
    sae_error err = {0};
    if (features(&err) < 0) fail_msg("%s: %s", err.subject, err.msg); /* the file to read */
    sweep("features file read", read_features, NULL);
    sweep("search", search, NULL);
    sweep("eval", eval, NULL);
    sweep("dictionary alignment", align, NULL);
}
static void test_capture(void **state) {
    (void)state;
    sweep("capture", capture, cap_out);
    sweep("eval with the SAE spliced into the model", splice_eval, NULL);
}
static void test_figures(void **state) {
    (void)state;
    viz_canvas *c;
    sae_error err = {0};
    if (viz_canvas_new(&c, 10, 10, 1, NULL, &err) < 0) skip(); /* no font installed */
    viz_canvas_free(c);
    sweep("heatmap figure", heatmap, png_out);
    sweep("line figure", lines, png_out);
    sweep("shaded-text figure", shaded_text, png_out);
}

int main(void) {
    sae_set_threads(1); /* one thread: the n-th allocation is the same one every run */
    dir = tu_tmpdir();
    data_path = sae_strdup(tu_path(dir, "acts.h5"));
    if (tu_write_acts(data_path, 1000, 8, 50, 100, 0, 0, NULL, 0) != 0) return 1;
    sae_path = sae_strdup(tu_path(dir, "sae.h5"));
    train_out = sae_strdup(tu_path(dir, "trained.h5"));
    feat_out = sae_strdup(tu_path(dir, "feat.h5"));
    cap_out = sae_strdup(tu_path(dir, "cap.h5"));
    png_out = sae_strdup(tu_path(dir, "fig.png"));
    {
        /* the SAE the read paths load: trained once, without failures */
        sae_error err = {0};
        data_actfile *f;
        train_params p = small_params();
        if (data_actfile_open(&f, data_path, &err) < 0 || train_run(&p, f, sae_path, 0, NULL, &err) < 0) {
            fprintf(stderr, "set-up: %s: %s\n", err.subject, err.msg);
            return 1;
        }
        data_actfile_close(f);
        if (tu_write_tiny_llama(dir) != 0) return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_paths), cmocka_unit_test(test_train),
        cmocka_unit_test(test_step_allocates_nothing), cmocka_unit_test(test_features),
        cmocka_unit_test(test_capture), cmocka_unit_test(test_figures),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sae_free((void *)data_path), sae_free((void *)sae_path), sae_free((void *)train_out);
    sae_free((void *)feat_out), sae_free((void *)cap_out), sae_free((void *)png_out);
    return rc;
}
