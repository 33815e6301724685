/* cli/cmd_demo.c: `sae demo`, the whole pipeline on an embedded default with
 * no input: synthesize a planted dictionary, train a TopK SAE on it, evaluate
 * it against the truth, and say where everything went. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "data/synth.h"
#include "common/fileutil.h"
#include "common/gemm.h"
#include "sae/io.h"
#include "train/train.h"

static int mkdir_p(const char *dir) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(buf, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

int cmd_demo(int argc, char **argv) {
    const char *dir = "out/demo";
    int threads = cli_default_threads();
    data_synth_params sp = data_synth_default_params();
    sp.n = 1000000;
    sp.d = 128;
    sp.features = 1024;
    sp.active = 8;
    sp.seed = 1;
    cli_opt opts[] = {
        {"out-dir", CLI_STR, &dir, "folder for the outputs", 0, NULL},
        {"n", CLI_SIZE, &sp.n, "synthetic rows (= training tokens)", 0, NULL},
        {"threads", CLI_INT, &threads, "threads", 0, NULL},
    };
    size_t n_opts = sizeof opts / sizeof opts[0], n_pos;
    const char *pos[1];
    int help;
    int rc = cli_parse(argc, argv, "demo", opts, n_opts, pos, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        cli_usage(stdout, "demo", "[options]",
                  "Runs the pipeline on an embedded default: synthesizes a dataset with a planted\n"
                  "dictionary (d=128, 1024 features), trains a TopK SAE (M=2048, k=16) on it and\n"
                  "evaluates it on held-out rows: FVU and how well it recovered the planted features.",
                  opts, n_opts);
        return CLI_EXIT_OK;
    }
    if (threads < 1 || sp.n < 4096) {
        cli_errorf("demo", "--threads must be >= 1 and --n >= 4096");
        return CLI_EXIT_USAGE;
    }
    sae_set_threads(threads);
    if (mkdir_p(dir) != 0) {
        cli_errorf(dir, "cannot create folder: %s", strerror(errno));
        return CLI_EXIT_ERROR;
    }
    char data[4200], heldout[4200], sae_path[4200], log[4200];
    snprintf(data, sizeof data, "%s/synth.h5", dir);
    snprintf(heldout, sizeof heldout, "%s/synth_heldout.h5", dir);
    snprintf(sae_path, sizeof sae_path, "%s/sae.h5", dir);
    snprintf(log, sizeof log, "%s/metrics.jsonl", dir);
    /* fixed names, but links already in the folder could still join them */
    sae_paths ps = {0};
    sae_paths_add(&ps, "--out-dir (synth.h5)", data, SAE_PATH_OUT);
    sae_paths_add(&ps, "--out-dir (synth_heldout.h5)", heldout, SAE_PATH_OUT);
    sae_paths_add(&ps, "--out-dir (sae.h5)", sae_path, SAE_PATH_OUT);
    sae_paths_add(&ps, "--out-dir (metrics.jsonl)", log, SAE_PATH_OUT);
    if ((rc = cli_check_paths(&ps))) return rc;
    sae_error err = {0};
    fprintf(stderr, "sae demo: 1/3 synthesizing %zu rows (d=%zu, %zu planted features)\n", sp.n, sp.d,
            sp.features);
    data_synth_params hp = sp; /* same dictionary, fresh rows: an honest evaluation */
    hp.heldout = 1;
    hp.n = sp.n / 10;
    if (data_synth_write(data, &sp, &err) < 0 || data_synth_write(heldout, &hp, &err) < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    fprintf(stderr, "sae demo: 2/3 training\n");
    data_actfile *f = NULL;
    if (data_actfile_open(&f, data, &err) < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    train_params tp = train_default_params(SAE_ARCH_TOPK);
    tp.sae.m = 2048;
    tp.sae.k = 16;
    tp.batch = 1024; /* ~1000 steps: enough for this dictionary to converge */
    tp.threads = threads;
    tp.seed = 1;
    cli_progress pr;
    if ((rc = cli_progress_init(&pr, log, 0))) {
        data_actfile_close(f);
        return rc;
    }
    cli_install_signals();
    train_observer obs = cli_progress_observer(&pr);
    rc = train_run(&tp, f, sae_path, 0, &obs, &err);
    cli_progress_close(&pr);
    if (rc != SAE_OK) {
        data_actfile_close(f);
        if (rc < 0) cli_error(&err);
        return rc < 0 ? CLI_EXIT_ERROR : 130;
    }
    data_actfile_close(f);
    fprintf(stderr, "sae demo: 3/3 evaluating on %zu held-out rows\n", hp.n);
    sae_model m;
    double scale;
    train_eval_result r;
    rc = data_actfile_open(&f, heldout, &err);
    if (rc == SAE_OK) rc = sae_file_load(sae_path, &m, 4096, &scale, &err);
    if (rc == SAE_OK) {
        rc = train_eval(&m, scale, f, 0, &r, &err);
        sae_model_free(&m);
    }
    data_actfile_close(f);
    if (rc < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    printf("{\"fvu\":%.5f,\"mse\":%.6g,\"l0\":%.2f,\"dead_frac\":%.4f,\"mmcs\":%.4f,\"recovered\":%.4f,"
           "\"tokens\":%llu}\n",
           r.fvu, r.mse, r.l0, r.dead_frac, r.mmcs, r.recovered_09, (unsigned long long)r.tokens);
    printf("outputs:\n  data     %s (held-out split: %s)\n  sae      %s\n  metrics  %s\n", data,
           heldout, sae_path, log);
    printf("next: sae info %s; sae eval --sae %s --data %s\n", sae_path, sae_path, heldout);
    return CLI_EXIT_OK;
}
