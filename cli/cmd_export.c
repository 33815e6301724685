/* cli/cmd_export.c: `sae export`: an SAE as a SAELens folder (sae/export.h),
 * or a features file as Neuronpedia's upload JSON (features/neuronpedia.h). */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/mem.h"
#include "features/feat.h"
#include "features/neuronpedia.h"
#include "sae/export.h"
#include "sae/io.h"

static const char *const FORMATS[] = {"saelens", "neuronpedia", NULL};
enum { FMT_SAELENS, FMT_NEURONPEDIA };

/* log10 of each latent's firing frequency, as SAELens stores it (a floor of
 * 1e-10 keeps never-firing latents finite). */
static int saelens_sparsity(const char *features, float **out, size_t *n) {
    sae_error err = {0};
    feat_dict *fd = NULL;
    if (feat_read(&fd, features, &err) < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    if (fd->n_tokens == 0) {
        cli_errorf(features, "counted no rows: no firing frequencies to export");
        feat_free(fd);
        return CLI_EXIT_ERROR;
    }
    *out = sae_alloc(fd->M * sizeof **out);
    if (!*out) {
        cli_errorf(features, "out of memory");
        feat_free(fd);
        return CLI_EXIT_ERROR;
    }
    for (size_t j = 0; j < fd->M; j++) (*out)[j] = (float)log10((double)fd->count[j] / (double)fd->n_tokens + 1e-10);
    *n = fd->M;
    feat_free(fd);
    return 0;
}

static int export_saelens(const char *sae_path, const char *features, const char *out) {
    float *freq = NULL;
    size_t n = 0;
    int rc = features ? saelens_sparsity(features, &freq, &n) : 0;
    if (rc) return rc;
    sae_error err = {0};
    rc = sae_export_saelens(sae_path, out, freq, n, &err);
    sae_free(freq);
    if (rc < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    printf("%s: %s/cfg.json, sae_weights.safetensors%s (SAELens, input_scale folded in)\n", sae_path, out,
           features ? ", sparsity.safetensors" : "");
    return CLI_EXIT_OK;
}

/* out must not exist or be an empty folder (rename(2) replaces an empty one). */
static int check_out_folder(const char *out) {
    struct stat st;
    if (stat(out, &st) != 0) return 0;
    if (!S_ISDIR(st.st_mode)) {
        cli_errorf(out, "exists and is not a folder");
        return CLI_EXIT_ERROR;
    }
    DIR *d = opendir(out);
    struct dirent *e;
    int empty = d != NULL;
    while (empty && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
    if (d) closedir(d);
    if (!empty) {
        cli_errorf(out, "exists and is not empty: give a new folder");
        return CLI_EXIT_ERROR;
    }
    return 0;
}

/* The batches go into "<out>.tmp.<pid>", renamed to out once all are written. */
static int write_np_folder(const feat_dict *fd, sae_model *m, double scale, data_actfile *f, const feat_np_opts *o,
                           const char *out) {
    char tmp[4096], p[4200];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid()) >= sizeof tmp - 64) {
        cli_errorf(out, "path too long");
        return CLI_EXIT_USAGE;
    }
    if (mkdir(tmp, 0777) != 0) {
        cli_errorf(tmp, "cannot create the folder: %s", strerror(errno));
        return CLI_EXIT_ERROR;
    }
    sae_error err = {0};
    int rc = feat_export_neuronpedia(fd, m, scale, f, o, tmp, &err);
    if (rc == SAE_OK && rename(tmp, out) != 0)
        rc = sae_error_set(&err, SAE_ERR_IO, out, "cannot rename %s to it: %s", tmp, strerror(errno));
    if (rc == SAE_OK) return 0;
    cli_error(&err);
    for (size_t i = 0; i * o->per_batch < fd->M; i++) {
        snprintf(p, sizeof p, "%s/batch-%zu.json", tmp, i);
        unlink(p);
    }
    rmdir(tmp);
    return CLI_EXIT_ERROR;
}

static int export_neuronpedia(const char *features, const char *data, const char *sae_opt, const char *out,
                              feat_np_opts *o) {
    int rc = check_out_folder(out);
    if (rc) return rc;
    sae_error err = {0};
    feat_dict *fd = NULL;
    if (feat_read(&fd, features, &err) < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    const char *sae_path = sae_opt ? sae_opt : fd->sae_path;
    if (!sae_path[0]) {
        cli_errorf(features, "records no SAE: give --sae");
        feat_free(fd);
        return CLI_EXIT_USAGE;
    }
    sae_model m;
    double scale;
    data_actfile *f = NULL;
    rc = cli_open_sae_and_data(sae_path, data, 1024, SAE_PRECISION_F32, &m, &scale, &f);
    if (rc) {
        feat_free(fd);
        return rc;
    }
    if (!o->model_id) o->model_id = f->model;
    if (o->layer < 0) o->layer = f->layer;
    if (!o->dataset) o->dataset = f->path;
    if (!o->sae_set) o->sae_set = "";
    rc = write_np_folder(fd, &m, scale, f, o, out);
    size_t batches = (fd->M + o->per_batch - 1) / o->per_batch;
    if (rc == 0) printf("%s: %zu features in %zu batch files in %s/\n", features, fd->M, batches, out);
    data_actfile_close(f);
    sae_model_free(&m);
    feat_free(fd);
    return rc;
}

int cmd_export(int argc, char **argv) {
    const char *out = NULL, *features = NULL, *data = NULL, *sae_path = NULL;
    int format = FMT_SAELENS;
    feat_np_opts np = {.per_batch = 128, .layer = -1};
    cli_opt opts[] = {
        {"format", CLI_CHOICE, &format, "what to write", 0, FORMATS},
        {"out", CLI_STR, &out, "output folder (new, or empty)", 0, NULL},
        {"features", CLI_STR, &features, "saelens: features file whose counts give sparsity.safetensors", 0, NULL},
        {"data", CLI_STR, &data, "neuronpedia: the activation file the features were built on", 0, NULL},
        {"sae", CLI_STR, &sae_path, "neuronpedia: the SAE (default: the one the features file records)", 0, NULL},
        {"per-batch", CLI_SIZE, &np.per_batch, "neuronpedia: features per batch-N.json file", 0, NULL},
        {"model-id", CLI_STR, &np.model_id, "neuronpedia: model_id (default: the data's model)", 0, NULL},
        {"sae-set", CLI_STR, &np.sae_set, "neuronpedia: sae_set", 0, NULL},
    };
    size_t n_opts = sizeof opts / sizeof opts[0], n_pos;
    const char *pos[1];
    int help;
    int rc = cli_parse(argc, argv, "export", opts, n_opts, pos, 1, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        cli_usage(stdout, "export", "S.h5 --format saelens --out DIR [--features F.h5]\n"
                                    "       sae export F.h5 --format neuronpedia --data A.h5 --out DIR",
                  "saelens: cfg.json and sae_weights.safetensors (and sparsity.safetensors, log10\n"
                  "firing frequency, with --features) as SAE.load_from_disk reads them, input_scale\n"
                  "folded into the weights so SAELens runs on raw activations. relu exports as\n"
                  "standard, topk as topk, jumprelu as jumprelu, batchtopk and matryoshka as\n"
                  "jumprelu with their inference threshold on every latent.\n"
                  "neuronpedia: SAEDashboard's Neuronpedia JSON, batch-N.json per --per-batch\n"
                  "features: top and quantile examples over their windows, histogram, logit lens.",
                  opts, n_opts);
        return CLI_EXIT_OK;
    }
    if (n_pos != 1 || !out) {
        cli_errorf("export", "give one input file and --out DIR (try 'sae export --help')");
        return CLI_EXIT_USAGE;
    }
    if (format == FMT_NEURONPEDIA && !data) {
        cli_errorf("--data", "neuronpedia needs the activation file the features were built on");
        return CLI_EXIT_USAGE;
    }
    if (format == FMT_SAELENS && (data || sae_path)) {
        cli_errorf(data ? "--data" : "--sae", "is for --format neuronpedia");
        return CLI_EXIT_USAGE;
    }
    if (format == FMT_NEURONPEDIA && features) {
        cli_errorf("--features", "is for --format saelens (the input is the features file)");
        return CLI_EXIT_USAGE;
    }
    if (np.per_batch == 0) {
        cli_errorf("--per-batch", "must be positive");
        return CLI_EXIT_USAGE;
    }
    sae_paths ps = {0};
    sae_paths_add(&ps, "FILE", pos[0], SAE_PATH_IN_DIR); /* an SAE file, or a published SAE's folder */
    sae_paths_add(&ps, "--features", features, SAE_PATH_IN);
    sae_paths_add(&ps, "--data", data, SAE_PATH_IN);
    sae_paths_add(&ps, "--sae", sae_path, SAE_PATH_IN_DIR);
    if ((rc = cli_check_paths(&ps))) return rc;
    if (format == FMT_SAELENS) return export_saelens(pos[0], features, out);
    return export_neuronpedia(pos[0], data, sae_path, out, &np);
}
