/* cli/cmd_info.c: `sae info FILE`, a description of an activation file or an
 * SAE checkpoint. */
#include <math.h>
#include <string.h>

#include "cli/cli.h"
#include "common/fileutil.h"
#include "data/actfile.h"
#include "data/docs.h"
#include "data/h5.h"
#include "features/feat.h"
#include "sae/foreign.h"
#include "sae/io.h"

static void info_activations(data_actfile *f) {
    printf("%s: activation file (schema v%lld)\n", f->path, (long long)f->schema_version);
    printf("  activations  %zu rows x d=%zu, %s, chunks of %zu rows\n", f->n, f->d,
           f->dtype_bytes == 2 ? "float16" : "float32", f->chunk_rows);
    printf("  tokens       %s\n", f->has_tokens ? "yes" : "no");
    /* /doc_offsets splits the rows into capture windows; /doc_source groups
     * them into corpus documents (data/docs.h) */
    data_docs d;
    sae_error err = {0};
    if (data_docs_load(&d, f, &err) == SAE_OK) {
        printf("  documents    %zu corpus document%s in %zu window%s%s%s\n", d.n_docs, d.n_docs == 1 ? "" : "s",
               d.n_windows, d.n_windows == 1 ? "" : "s",
               d.has_source ? "" : " (no /doc_source: each window is its own document)",
               f->has_doc_labels ? ", labelled" : "");
        cli_print_label_counts(&d, "  ");
        data_docs_free(&d);
    } else {
        printf("  documents    %zu windows (unreadable: %s)\n", f->n_docs, err.msg);
    }
    printf("  vocab        %zu pieces\n", f->vocab_size);
    printf("  unembed      %s; final_norm %s\n", f->has_unembed ? "yes" : "no",
           f->has_final_norm ? "yes" : "no");
    if (f->n_truth) printf("  truth        %zu planted features\n", f->n_truth);
    printf("  model        %s, layer %lld, hook %s\n", f->model[0] ? f->model : "?",
           (long long)f->layer, f->hook[0] ? f->hook : "?");
}

static void print_attr(hid_t h, const char *name, const char *label) {
    double v;
    if (data_h5_get_attr_f64(h, name, &v) == SAE_OK) printf("  %-14s %.6g\n", label, v);
}

static int info_sae(const char *path, int64_t h) {
    sae_config c;
    double scale;
    sae_error err = {0};
    if (sae_file_read_config(h, &c, &scale, path, &err) < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    printf("%s: SAE (%s)\n", path, sae_arch_name(c.arch));
    char desc[256];
    sae_config_describe(&c, desc, sizeof desc);
    printf("  d_model        %zu\n  latents        %zu\n", c.d, c.m);
    if (desc[0]) printf("  settings       %s\n", desc);
    sae_tensor t[SAE_MAX_TENSORS];
    size_t nt = sae_tensors(&c, t);
    printf("  tensors       ");
    for (size_t i = 0; i < nt; i++) {
        size_t r = t[i].file_transposed ? t[i].cols : t[i].rows, k = t[i].file_transposed ? t[i].rows : t[i].cols;
        if (k) printf(" %s [%zu, %zu]", t[i].name, r, k);
        else printf(" %s [%zu]", t[i].name, r);
        if (!t[i].learned) printf(" (state)");
    }
    printf("\n");
    printf("  input_scale    %.6g\n", scale);
    /* provenance (sae/io.h); SAE files older than it have only the data path */
    data_identity id;
    data_identity_read_attrs(h, &id);
    if (id.path[0]) printf("  trained on     %s\n", id.path);
    if (id.rows)
        printf("  data identity  %llu rows x d=%llu, fingerprint %016llx\n", (unsigned long long)id.rows,
               (unsigned long long)id.d, (unsigned long long)id.fingerprint);
    else if (id.has_fingerprint) /* written by trainers before provenance: the fingerprint alone */
        printf("  data identity  fingerprint %016llx (rows and width not recorded)\n",
               (unsigned long long)id.fingerprint);
    if (H5Aexists((hid_t)h, "model") > 0) {
        printf("  model          %s, layer %lld, hook %s\n", id.model[0] ? id.model : "?", (long long)id.layer,
               id.hook[0] ? id.hook : "?");
        printf("  tokenizer      %s\n", id.tokenizer[0] ? id.tokenizer : "?");
    } else {
        printf("  provenance     none recorded (an SAE file from before provenance)\n");
    }
    char src[4200]; /* written by `sae import` (cli/cmd_import.c) */
    if (data_h5_get_attr_str((hid_t)h, "source_format", src, sizeof src) == SAE_OK) {
        printf("  imported from  %s", src);
        if (data_h5_get_attr_str((hid_t)h, "source_path", src, sizeof src) == SAE_OK) printf(" %s", src);
        printf("\n");
    }
    print_attr((hid_t)h, "tokens", "tokens (0=all)");
    print_attr((hid_t)h, "batch", "batch");
    print_attr((hid_t)h, "lr", "lr");
    if (sae_arch_uses(c.arch) & SAE_USES_SPARSITY) print_attr((hid_t)h, "l1", "sparsity_coef");
    print_attr((hid_t)h, "seed", "seed");
    int64_t step, total, tokens, complete, threads;
    hid_t g = H5Lexists((hid_t)h, "train", H5P_DEFAULT) > 0 ? H5Gopen2((hid_t)h, "train", H5P_DEFAULT) : -1;
    if (g >= 0 && data_h5_get_attr_i64(g, "step", &step) == SAE_OK &&
        data_h5_get_attr_i64(g, "total_steps", &total) == SAE_OK &&
        data_h5_get_attr_i64(g, "tokens", &tokens) == SAE_OK &&
        data_h5_get_attr_i64(g, "complete", &complete) == SAE_OK) {
        printf("  progress       step %lld/%lld, %lld tokens, %s\n", (long long)step, (long long)total,
               (long long)tokens, complete ? "complete" : "in progress (resumable)");
    }
    if (data_h5_get_attr_i64((hid_t)h, "threads", &threads) == SAE_OK)
        printf("  threads        %lld\n", (long long)threads);
    if (g >= 0) H5Gclose(g);
    return CLI_EXIT_OK;
}

/* A published SAE (sae/foreign.h), as it loads: the format's conventions
 * already mapped onto ours. */
static int info_foreign(const char *path) {
    sae_model m;
    double scale = 1;
    sae_foreign_info fi;
    sae_error err = {0};
    if (sae_foreign_load(path, &m, 1, &scale, &fi, &err) < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    printf("%s: %s SAE (%s, read as %s)\n", path, sae_foreign_format_name(fi.format), fi.source_arch,
           sae_arch_name(m.cfg.arch));
    printf("  weights        %s (%s)\n", fi.weights, fi.weight_dtypes);
    printf("  d_model        %zu\n  latents        %zu\n", m.cfg.d, m.cfg.m);
    if (m.cfg.arch == SAE_ARCH_TOPK) printf("  k              %zu\n", m.cfg.k);
    if (m.cfg.arch == SAE_ARCH_JUMPRELU) {
        float lo = m.p.threshold[0], hi = lo;
        for (size_t j = 1; j < m.cfg.m; j++) lo = fminf(lo, m.p.threshold[j]), hi = fmaxf(hi, m.p.threshold[j]);
        printf("  threshold      per latent, %.6g .. %.6g\n", lo, hi);
    }
    printf("  input_scale    %.6g\n", scale);
    printf("  b_dec          %s\n", fi.b_dec_folded ? "not subtracted from inputs by the source: folded into b_enc"
                                                   : "subtracted from inputs");
    if (fi.rescaled_by_decoder_norm) printf("  rescale        acts by decoder norm (folded into the weights)\n");
    printf("  model          %s\n  hook           %s\n", fi.model[0] ? fi.model : "?", fi.hook[0] ? fi.hook : "?");
    sae_model_free(&m);
    return CLI_EXIT_OK;
}

static int info_features(const char *path) {
    sae_error err = {0};
    feat_dict *fd;
    if (feat_read(&fd, path, &err) < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    size_t alive = 0, labelled = 0;
    for (size_t j = 0; j < fd->M; j++) alive += fd->count[j] > 0, labelled += fd->label[j] && fd->label[j][0];
    printf("%s: feature dictionary\n", path);
    printf("  features       %zu (%zu fired, %zu labelled)\n", fd->M, alive, labelled);
    printf("  tokens         %llu\n", (unsigned long long)fd->n_tokens);
    printf("  top examples   %zu per feature\n", fd->top_n);
    printf("  logit lens     %s\n", fd->has_lens ? "yes" : "no");
    printf("  sae            %s\n  data           %s\n", fd->sae_path, fd->data_path);
    const data_identity *id = &fd->data_id;
    if (id->has_fingerprint)
        printf("  data identity  %llu rows x d=%llu, fingerprint %016llx\n", (unsigned long long)id->rows,
               (unsigned long long)id->d, (unsigned long long)id->fingerprint);
    else
        printf("  data identity  not recorded (an older features file)\n");
    feat_free(fd);
    return CLI_EXIT_OK;
}

int cmd_info(int argc, char **argv) {
    cli_opt opts[1] = {{0}};
    const char *pos[1];
    size_t n_pos;
    int help;
    int rc = cli_parse(argc, argv, "info", opts, 0, pos, 1, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        cli_usage(stdout, "info", "FILE", "Describes an activation file, an SAE checkpoint or a features file.", opts, 0);
        return CLI_EXIT_OK;
    }
    if (n_pos != 1) {
        cli_errorf("info", "expects one FILE (try 'sae info --help')");
        return CLI_EXIT_USAGE;
    }
    const char *path = pos[0];
    /* published SAEs may be folders, which the path check refuses */
    if (sae_foreign_detect(path) != SAE_FMT_NATIVE) return info_foreign(path);
    sae_paths ps = {0};
    sae_paths_add(&ps, "FILE", path, SAE_PATH_IN_DIR); /* a published SAE may be a folder */
    if ((rc = cli_check_paths(&ps))) return rc;
    sae_error err = {0};
    int64_t h;
    data_h5_lock();
    rc = sae_file_open_h5(path, &h, &err);
    if (rc < 0) {
        data_h5_unlock();
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    char fmt[32] = "";
    data_h5_get_attr_str((hid_t)h, "format", fmt, sizeof fmt);
    int is_sae = strcmp(fmt, "sae") == 0, is_feat = strcmp(fmt, "sae-features") == 0;
    if (is_sae) rc = info_sae(path, h);
    H5Fclose((hid_t)h);
    data_h5_unlock();
    if (is_sae) return rc;
    if (is_feat) return info_features(path);
    data_actfile *f;
    if (data_actfile_open(&f, path, &err) < 0) {
        cli_error(&err);
        return CLI_EXIT_ERROR;
    }
    info_activations(f);
    data_actfile_close(f);
    return CLI_EXIT_OK;
}
