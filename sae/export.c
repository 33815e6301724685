/* sae/export.c: an SAE file as SAELens's folder (layout and algebra in
 * sae/export.h). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileutil.h"
#include "common/mem.h"
#include "data/docs.h"
#include "sae/export.h"
#include "sae/tensorfile.h"
#include "sae/io.h"

/* --- the fold ------------------------------------------------------------------ */
const char *sae_export_saelens_arch(sae_arch a) {
    switch (a) {
    case SAE_ARCH_RELU: return "standard";
    case SAE_ARCH_TOPK: return "topk";
    default: return "jumprelu"; /* jumprelu, and the threshold rule of batchtopk, matryoshka */
    }
}

void sae_export_fold(const sae_model *m, double scale, float *W_enc, float *b_enc, float *W_dec, float *b_dec,
                     float *threshold, int *has_threshold) {
    size_t D = m->cfg.d, M = m->cfg.m;
    /* in double, then rounded once: W_enc' = s W, W_dec' = V / s, b_dec' = b / s */
    for (size_t j = 0; j < M; j++)
        for (size_t k = 0; k < D; k++) {
            W_enc[k * M + j] = (float)((double)m->p.W_enc[j * D + k] * scale); /* (M, D) in memory */
            W_dec[j * D + k] = (float)((double)m->p.W_dec[j * D + k] / scale);
        }
    memcpy(b_enc, m->p.b_enc, M * sizeof *b_enc);
    for (size_t k = 0; k < D; k++) b_dec[k] = (float)((double)m->p.b_dec[k] / scale);
    *has_threshold = 0;
    if (m->cfg.arch == SAE_ARCH_JUMPRELU) {
        memcpy(threshold, m->p.threshold, M * sizeof *threshold);
        *has_threshold = 1;
    } else if (m->cfg.arch == SAE_ARCH_BATCHTOPK || m->cfg.arch == SAE_ARCH_MATRYOSHKA) {
        /* our rule pre > max(theta, 0) is SAELens's pre > ReLU(threshold) for every latent */
        float t = m->p.threshold[0] > 0.0f ? m->p.threshold[0] : 0.0f;
        for (size_t j = 0; j < M; j++) threshold[j] = t;
        *has_threshold = 1;
    }
}

/* --- cfg.json ---------------------------------------------------------------------- */
static cJSON *saelens_config(const sae_model *m, double scale, const data_identity *id, int has_prov) {
    cJSON *c = cJSON_CreateObject(), *md = cJSON_CreateObject();
    if (!c || !md) {
        cJSON_Delete(c), cJSON_Delete(md);
        return NULL;
    }
    cJSON_AddItemToObject(c, "metadata", md);
    cJSON_AddStringToObject(c, "architecture", sae_export_saelens_arch(m->cfg.arch));
    cJSON_AddNumberToObject(c, "d_in", (double)m->cfg.d);
    cJSON_AddNumberToObject(c, "d_sae", (double)m->cfg.m);
    cJSON_AddStringToObject(c, "dtype", "float32");
    cJSON_AddStringToObject(c, "device", "cpu");
    cJSON_AddBoolToObject(c, "apply_b_dec_to_input", 1);
    cJSON_AddStringToObject(c, "normalize_activations", "none"); /* input_scale is folded in */
    cJSON_AddStringToObject(c, "reshape_activations", "none");
    if (m->cfg.arch == SAE_ARCH_TOPK) {
        cJSON_AddNumberToObject(c, "k", (double)m->cfg.k);
        cJSON_AddBoolToObject(c, "rescale_acts_by_decoder_norm", 0);
    }
    /* a version >= 6 makes SAELens read this config as it is, not as a
     * pre-6.0 one to be renamed */
    cJSON_AddStringToObject(md, "sae_lens_version", "6.0.0");
    cJSON_AddStringToObject(md, "sae_lens_training_version", "6.0.0");
    cJSON_AddStringToObject(md, "exported_by", "sae export");
    cJSON_AddStringToObject(md, "source_architecture", sae_arch_name(m->cfg.arch));
    cJSON_AddNumberToObject(md, "folded_input_scale", scale);
    if (has_prov && id->model[0]) cJSON_AddStringToObject(md, "model_name", id->model);
    if (has_prov && id->hook[0]) {
        /* TransformerLens's name for a residual-stream site of a block */
        char hook[160];
        if (strncmp(id->hook, "blocks.", 7) == 0 || strncmp(id->hook, "hook_", 5) == 0)
            snprintf(hook, sizeof hook, "%s", id->hook); /* already a full name (an imported SAELens SAE) */
        else if (id->layer >= 0) snprintf(hook, sizeof hook, "blocks.%lld.hook_%s", (long long)id->layer, id->hook);
        else snprintf(hook, sizeof hook, "hook_%s", id->hook);
        cJSON_AddStringToObject(md, "hook_name", hook);
        cJSON_AddStringToObject(md, "sae_site", id->hook);
        cJSON_AddNumberToObject(md, "sae_layer", (double)id->layer);
    }
    if (has_prov && id->path[0]) cJSON_AddStringToObject(md, "dataset_path", id->path);
    return c;
}

static int write_text(const char *path, const char *s, sae_error *err) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return sae_error_set(err, SAE_ERR_IO, path, "cannot create: %s", strerror(errno));
    size_t n = strlen(s);
    int bad = fwrite(s, 1, n, fp) != n || fputc('\n', fp) == EOF, e = errno;
    if (fclose(fp) != 0 && !bad) bad = 1, e = errno;
    return bad ? sae_error_set(err, SAE_ERR_IO, path, "write failed: %s", strerror(e)) : SAE_OK;
}

/* --- the folder ---------------------------------------------------------------- */
/* Removes the files this export wrote into dir, then dir. */
static void remove_tmp_dir(const char *dir) {
    static const char *const names[] = {"cfg.json", "sae_weights.safetensors", "sparsity.safetensors"};
    char p[4200];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* out_dir may not exist, or be an empty folder (rename(2) replaces those). */
static int check_out_dir(const char *out, sae_error *err) {
    struct stat st;
    if (!out[0]) return sae_error_set(err, SAE_ERR_ARG, "--out", "empty path");
    if (stat(out, &st) != 0) return SAE_OK;
    if (!S_ISDIR(st.st_mode)) return sae_error_set(err, SAE_ERR_ARG, out, "exists and is not a folder");
    DIR *d = opendir(out);
    if (!d) return sae_error_set(err, SAE_ERR_IO, out, "cannot read the folder: %s", strerror(errno));
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
    closedir(d);
    return empty ? SAE_OK : sae_error_set(err, SAE_ERR_ARG, out, "exists and is not empty: give a new folder");
}

static int write_weights(const sae_model *m, double scale, const char *path, sae_error *err) {
    size_t D = m->cfg.d, M = m->cfg.m;
    float *We = sae_alloc(D * M * sizeof *We), *Wd = sae_alloc(D * M * sizeof *Wd);
    float *be = sae_alloc(M * sizeof *be), *bd = sae_alloc(D * sizeof *bd), *th = sae_alloc(M * sizeof *th);
    int rc, has_th;
    if (!We || !Wd || !be || !bd || !th) {
        rc = sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory for the exported weights");
    } else {
        sae_export_fold(m, scale, We, be, Wd, bd, th, &has_th);
        sae_st_tensor t[5] = {{"W_enc", 2, {D, M}, We}, {"b_enc", 1, {M, 0}, be}, {"W_dec", 2, {M, D}, Wd},
                              {"b_dec", 1, {D, 0}, bd}, {"threshold", 1, {M, 0}, th}};
        int bad = 0;
        for (size_t i = 0; i < D * M && !bad; i++) bad = !isfinite(We[i]) || !isfinite(Wd[i]);
        rc = bad ? sae_error_set(err, SAE_ERR_NONFINITE, path, "folding input_scale %g overflows float32", scale)
                 : sae_safetensors_write(path, t, has_th ? 5 : 4, err);
    }
    sae_free(We), sae_free(Wd), sae_free(be), sae_free(bd), sae_free(th);
    return rc;
}

static int write_folder(const sae_model *m, double scale, const data_identity *id, int has_prov, const char *dir,
                        const float *log10_freq, sae_error *err) {
    char p[4200];
    snprintf(p, sizeof p, "%s/sae_weights.safetensors", dir);
    int rc = write_weights(m, scale, p, err);
    if (rc == SAE_OK && log10_freq) {
        snprintf(p, sizeof p, "%s/sparsity.safetensors", dir);
        sae_st_tensor t = {"sparsity", 1, {m->cfg.m, 0}, log10_freq};
        rc = sae_safetensors_write(p, &t, 1, err);
    }
    if (rc == SAE_OK) {
        cJSON *c = saelens_config(m, scale, id, has_prov);
        char *s = c ? cJSON_Print(c) : NULL;
        cJSON_Delete(c);
        snprintf(p, sizeof p, "%s/cfg.json", dir);
        rc = s ? write_text(p, s, err) : sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory for cfg.json");
        sae_free(s);
    }
    return rc;
}

int sae_export_saelens(const char *sae_path, const char *out_dir, const float *log10_freq, size_t n_freq,
                       sae_error *err) {
    int rc = check_out_dir(out_dir, err);
    if (rc < 0) return rc;
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out_dir, (long)getpid()) >= sizeof tmp - 32)
        return sae_error_set(err, SAE_ERR_ARG, out_dir, "path too long");
    sae_model m;
    double scale;
    if ((rc = sae_file_load(sae_path, &m, 1, &scale, err)) < 0) return rc;
    data_identity id;
    int has_prov = 0;
    if (sae_file_read_provenance(sae_path, &id, &has_prov, err) < 0) has_prov = 0; /* optional */
    if (log10_freq && n_freq != m.cfg.m) {
        rc = sae_error_set(err, SAE_ERR_MISMATCH, sae_path, "the features file has %zu latents, the SAE %zu",
                           n_freq, m.cfg.m);
    } else if (mkdir(tmp, 0777) != 0) {
        rc = sae_error_set(err, SAE_ERR_IO, tmp, "cannot create the folder: %s", strerror(errno));
    } else {
        rc = write_folder(&m, scale, &id, has_prov, tmp, log10_freq, err);
        if (rc == SAE_OK && rename(tmp, out_dir) != 0)
            rc = sae_error_set(err, SAE_ERR_IO, out_dir, "cannot rename %s to it: %s", tmp, strerror(errno));
        if (rc < 0) remove_tmp_dir(tmp);
    }
    sae_model_free(&m);
    return rc;
}
