/* cli/cmd_import.c: `sae import SRC --out S.h5`, a published SAE (SAELens,
 * sparsify or Gemma Scope; sae/foreign.h) rewritten as our own SAE file, with
 * where it came from recorded as root attributes:
 *   source_format  "SAELens", "sparsify", "Gemma Scope (params.npz)"
 *   source_path    the source (absolute), source_arch its own architecture name,
 *   source_dtypes  the stored dtypes, e.g. "BF16+F32"
 *   model, hook    from the source's config where it names them (the
 *                  provenance attributes of sae/io.h; the data identity,
 *                  unknown for a published SAE, is not written)
 * The conventions folded at load (b_dec into b_enc, decoder-norm rescaling,
 * the activation scaling factor as input_scale) are in the written file, so
 * it encodes exactly as the source does. */
/* realpath is X/Open, beyond the project-wide _POSIX_C_SOURCE */
#define _XOPEN_SOURCE 700
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/fileutil.h"
#include "data/h5.h"
#include "sae/foreign.h"
#include "sae/io.h"

/* The source is a folder or a file: the shared path check takes only files. */
static int check_source(const char *src) {
    struct stat st;
    if (stat(src, &st) != 0 || access(src, R_OK) != 0) {
        cli_errorf(src, "cannot read the source SAE");
        return CLI_EXIT_ERROR;
    }
    if (sae_foreign_detect(src) == SAE_FMT_NATIVE) {
        cli_errorf(src, "not a SAELens folder, a sparsify folder or a Gemma Scope params.npz%s",
                   S_ISREG(st.st_mode) ? " (an SAE file of ours needs no import)" : "");
        return CLI_EXIT_ERROR;
    }
    return 0;
}

static int write_provenance(hid_t h, const char *src, const sae_foreign_info *info) {
    char abs[PATH_MAX];
    if (!realpath(src, abs)) snprintf(abs, sizeof abs, "%s", src);
    int a = data_h5_set_attr_str(h, "source_format", sae_foreign_format_name(info->format));
    a |= data_h5_set_attr_str(h, "source_path", abs);
    a |= data_h5_set_attr_str(h, "source_arch", info->source_arch);
    a |= data_h5_set_attr_str(h, "source_dtypes", info->weight_dtypes);
    if (info->model[0]) a |= data_h5_set_attr_str(h, "model", info->model);
    if (info->hook[0]) a |= data_h5_set_attr_str(h, "hook", info->hook);
    return a;
}

static int write_imported(const char *src, const char *out, const sae_model *m, double scale,
                          const sae_foreign_info *info, sae_error *err) {
    char tmp[4200];
    int rc = sae_tmp_path(tmp, sizeof tmp, out, err);
    if (rc < 0) return rc;
    data_h5_init();
    data_h5_lock();
    hid_t h = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (h < 0) {
        data_h5_unlock();
        sae_tmp_discard(tmp);
        return sae_error_set(err, SAE_ERR_IO, out, "cannot create the output");
    }
    rc = sae_file_write_model(h, m, scale, out, err);
    if (rc == SAE_OK && write_provenance(h, src, info))
        rc = sae_error_set(err, SAE_ERR_IO, out, "cannot write the provenance attributes");
    if (H5Fclose(h) < 0 && rc == SAE_OK) rc = sae_error_set(err, SAE_ERR_IO, out, "cannot finish writing");
    data_h5_unlock();
    if (rc == SAE_OK) rc = sae_commit_file(tmp, out, err);
    else sae_tmp_discard(tmp);
    return rc;
}

int cmd_import(int argc, char **argv) {
    const char *out = NULL;
    cli_opt opts[] = {
        {"out", CLI_STR, &out, "output SAE file (.h5)", 0, NULL},
    };
    size_t n_opts = sizeof opts / sizeof opts[0], n_pos;
    const char *pos[1];
    int help;
    int rc = cli_parse(argc, argv, "import", opts, n_opts, pos, 1, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        cli_usage(stdout, "import", "SRC --out S.h5",
                  "Rewrites a published SAE as an sae file. SRC: a SAELens folder (cfg.json +\n"
                  "sae_weights.safetensors), a sparsify folder (cfg.json + sae.safetensors), a\n"
                  "Gemma Scope params.npz, or a file inside such a folder. Every --sae flag\n"
                  "reads these directly too; import records the source as attributes.",
                  opts, n_opts);
        return CLI_EXIT_OK;
    }
    if (n_pos != 1 || !out) {
        cli_errorf("import", "expects SRC and --out S.h5 (try 'sae import --help')");
        return CLI_EXIT_USAGE;
    }
    const char *src = pos[0];
    if ((rc = check_source(src))) return rc;
    sae_paths ps = {0};
    sae_paths_add(&ps, "--out", out, SAE_PATH_OUT);
    if ((rc = cli_check_paths(&ps))) return rc;
    sae_model m;
    double scale = 1;
    sae_foreign_info info;
    sae_error err = {0};
    if (sae_foreign_load(src, &m, 1, &scale, &info, &err) < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    rc = write_imported(src, out, &m, scale, &info, &err);
    if (rc == SAE_OK)
        fprintf(stderr, "sae import: wrote %s (%s %s -> %s, d=%zu, %zu latents, input_scale %.6g)\n", out,
                sae_foreign_format_name(info.format), info.source_arch, sae_arch_name(m.cfg.arch), m.cfg.d,
                m.cfg.m, scale);
    sae_model_free(&m);
    if (rc < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    return CLI_EXIT_OK;
}
