/* sae/foreign.c: SAELens, sparsify and Gemma Scope SAEs as our inference
 * sae_model (formats in foreign.h, containers in tensorfile.h).
 *
 * Our encode is  pre = (x*s - b_dec) @ W_enc^T + b_enc,  z = arch(pre),
 * xhat*s = z @ W_dec + b_dec  (s = input_scale). Each format maps onto it:
 *   SAELens (sae_lens/saes/sae.py, SAE.process_sae_in): sae_in = norm_in(x)
 *     - b_dec * apply_b_dec_to_input; hidden_pre = sae_in @ W_enc + b_enc.
 *     standard: ReLU(hidden_pre). topk (topk_sae.py, TopK.forward): topk of
 *     hidden_pre, then ReLU of the kept values — the same codes as our "k
 *     largest of ReLU(pre)". jumprelu (jumprelu_sae.py): ReLU(hidden_pre) *
 *     (hidden_pre > threshold), exactly our kernel's rule. decode: acts @
 *     W_dec + b_dec, then norm_out. normalize_activations
 *     "expected_average_only_in" multiplies inputs by a constant scaling
 *     factor and divides outputs by it (training/activation_scaler.py,
 *     ActivationScaler.scale/unscale; saved as {"scaling_factor": f} in
 *     activation_scaler.json): that is our input_scale. TopKSAE's
 *     rescale_acts_by_decoder_norm multiplies hidden_pre by ||W_dec_j|| and
 *     divides codes by it before decoding: folded as W_enc_j, b_enc_j *= n_j,
 *     W_dec_j /= n_j (same codes, same reconstruction).
 *   sparsify (sparsify/sparse_coder.py, SparseCoder.encode_single and
 *     fused_encoder): x - b_dec (unless transcode), encoder (nn.Linear, weight
 *     [M, d] = our W_enc layout), ReLU, then top k; decode top_acts @ W_dec +
 *     b_dec.
 *   Gemma Scope: pre = x @ W_enc + b_enc, no b_dec subtracted.
 * Where a format does not subtract b_dec from the input we fold it into the
 * encoder bias: b_enc'_j = b_enc_j + b_dec . W_enc_j, so (x - b_dec) . W_enc_j
 * + b_enc'_j = x . W_enc_j + b_enc_j exactly (up to rounding). */
#include "sae/foreign.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/mem.h"
#include "sae/tensorfile.h"

const char *sae_foreign_format_name(sae_foreign_format f) {
    switch (f) {
    case SAE_FMT_SAELENS: return "SAELens";
    case SAE_FMT_SPARSIFY: return "sparsify";
    case SAE_FMT_GEMMASCOPE: return "Gemma Scope (params.npz)";
    default: return "sae (HDF5)";
    }
}

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Where the SAE's pieces are: the tensor file and (SAELens, sparsify) cfg.json. */
typedef struct {
    sae_foreign_format fmt;
    char dir[4096], weights[4200], cfg[4200];
} located;

static void folder_of(const char *path, char *dir, size_t cap) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    snprintf(dir, cap, "%s", dirname(tmp));
}

/* A folder: its files decide. */
static int locate_in_folder(const char *dir, located *l) {
    snprintf(l->dir, sizeof l->dir, "%s", dir);
    snprintf(l->cfg, sizeof l->cfg, "%s/cfg.json", dir);
    int has_cfg = is_file(l->cfg);
    snprintf(l->weights, sizeof l->weights, "%s/sae_weights.safetensors", dir);
    if (has_cfg && is_file(l->weights)) return l->fmt = SAE_FMT_SAELENS;
    snprintf(l->weights, sizeof l->weights, "%s/sae.safetensors", dir);
    if (has_cfg && is_file(l->weights)) return l->fmt = SAE_FMT_SPARSIFY;
    snprintf(l->weights, sizeof l->weights, "%s/params.npz", dir);
    if (is_file(l->weights)) {
        l->cfg[0] = 0;
        return l->fmt = SAE_FMT_GEMMASCOPE;
    }
    return l->fmt = SAE_FMT_NATIVE;
}

static void locate(const char *path, located *l) {
    memset(l, 0, sizeof *l);
    struct stat st;
    if (stat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        locate_in_folder(path, l);
        return;
    }
    if (!S_ISREG(st.st_mode)) return;
    unsigned char b[8] = {0};
    int fd = open(path, O_RDONLY);
    if (fd < 0) return;
    ssize_t r = read(fd, b, 8);
    close(fd);
    if (r == 8 && memcmp(b, "\x89HDF\r\n\x1a\n", 8) == 0) return; /* ours */
    if (r >= 4 && memcmp(b, "PK\3\4", 4) == 0) { /* a zip: Gemma Scope's params.npz */
        snprintf(l->weights, sizeof l->weights, "%s", path);
        l->fmt = SAE_FMT_GEMMASCOPE;
        return;
    }
    /* a file of a SAELens or sparsify folder (cfg.json, the safetensors):
     * the folder decides, as when it is named */
    int json = r >= 1 && b[0] == '{';
    if (json || sae_tensorfile_sniff(path)) {
        char dir[4096];
        folder_of(path, dir, sizeof dir);
        locate_in_folder(dir, l);
        if (l->fmt == SAE_FMT_GEMMASCOPE) l->fmt = SAE_FMT_NATIVE; /* a stray JSON beside a params.npz */
    }
}

sae_foreign_format sae_foreign_detect(const char *path) {
    located l;
    locate(path, &l);
    return l.fmt;
}

/* --- config ------------------------------------------------------------------------ */
static int read_json(const char *path, cJSON **out, sae_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return sae_error_set(err, SAE_ERR_IO, path, "%s", strerror(errno));
    char *buf = sae_malloc((1 << 20) + 1);
    size_t n = buf ? fread(buf, 1, 1 << 20, f) : 0;
    int more = buf && fgetc(f) != EOF;
    fclose(f);
    if (!buf) return sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory");
    if (more) {
        sae_free(buf);
        return sae_error_set(err, SAE_ERR_FORMAT, path, "config larger than 1 MB");
    }
    *out = cJSON_ParseWithLength(buf, n);
    sae_free(buf);
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return sae_error_set(err, SAE_ERR_FORMAT, path, "not a JSON object");
    }
    return SAE_OK;
}

/* SAELens's current layout keeps model and hook under "metadata"; the older
 * one has every key at the top: look at the top, then in metadata. */
static const cJSON *cfg_get(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (v && !cJSON_IsNull(v)) return v;
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(cfg, "metadata");
    v = cJSON_IsObject(md) ? cJSON_GetObjectItemCaseSensitive(md, key) : NULL;
    return v && !cJSON_IsNull(v) ? v : NULL;
}
static const char *cfg_str(const cJSON *cfg, const char *key) {
    const cJSON *v = cfg ? cfg_get(cfg, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
/* -1 absent; -2 present but not a positive integer */
static long long cfg_int(const cJSON *cfg, const char *key) {
    const cJSON *v = cfg ? cfg_get(cfg, key) : NULL;
    if (!v) return -1;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 1) || v->valuedouble > 2147483647.0 ||
        v->valuedouble != floor(v->valuedouble))
        return -2;
    return (long long)v->valuedouble;
}
static int cfg_bool(const cJSON *cfg, const char *key, int dflt) {
    const cJSON *v = cfg ? cfg_get(cfg, key) : NULL;
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

/* What the config says, in our terms. */
typedef struct {
    sae_arch arch;
    size_t k;
    int subtract_b_dec, rescale_by_dec_norm;
    double input_scale;
    long long d_in, d_sae; /* -1 when the config does not say */
} mapped;

static int scaling_factor(const located *l, double *out, sae_error *err) {
    char p[4300];
    snprintf(p, sizeof p, "%s/activation_scaler.json", l->dir);
    if (!is_file(p))
        return sae_error_set(err, SAE_ERR_UNSUPPORTED, l->cfg,
                             "normalize_activations is expected_average_only_in but the folder has no "
                             "activation_scaler.json with its scaling_factor");
    cJSON *j;
    int rc = read_json(p, &j, err);
    if (rc < 0) return rc;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "scaling_factor");
    double f = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    cJSON_Delete(j);
    if (!(f > 0) || !isfinite(f))
        return sae_error_set(err, SAE_ERR_FORMAT, p, "scaling_factor must be a positive finite number");
    *out = f;
    return SAE_OK;
}

static int map_saelens(const located *l, const cJSON *cfg, mapped *mp, sae_error *err) {
    const char *arch = cfg_str(cfg, "architecture");
    const char *act = cfg_str(cfg, "activation_fn_str");
    if (!act) act = cfg_str(cfg, "activation_fn");
    if (!arch) arch = "standard"; /* the older layout's default */
    long long k = cfg_int(cfg, "k");
    const cJSON *kw = cfg_get(cfg, "activation_fn_kwargs");
    if (k == -1 && cJSON_IsObject(kw)) k = cfg_int(kw, "k");
    if (strcmp(arch, "standard") == 0 && act && strcmp(act, "topk") == 0) arch = "topk"; /* older layout */
    if (strcmp(arch, "standard") == 0) {
        if (act && strcmp(act, "relu") != 0)
            return sae_error_set(err, SAE_ERR_UNSUPPORTED, l->cfg, "activation_fn '%s' is not read (relu and topk are)", act);
        mp->arch = SAE_ARCH_RELU;
    } else if (strcmp(arch, "topk") == 0) {
        mp->arch = SAE_ARCH_TOPK;
        if (k < 1) return sae_error_set(err, SAE_ERR_FORMAT, l->cfg, "topk SAE without a positive integer k");
        mp->k = (size_t)k;
        mp->rescale_by_dec_norm = cfg_bool(cfg, "rescale_acts_by_decoder_norm", 0);
    } else if (strcmp(arch, "jumprelu") == 0) {
        mp->arch = SAE_ARCH_JUMPRELU;
    } else {
        return sae_error_set(err, SAE_ERR_UNSUPPORTED, l->cfg,
                             "SAELens architecture '%s' is not read (standard, topk and jumprelu are)", arch);
    }
    mp->subtract_b_dec = cfg_bool(cfg, "apply_b_dec_to_input", 1);
    const char *norm = cfg_str(cfg, "normalize_activations");
    mp->input_scale = 1.0;
    if (norm && strcmp(norm, "expected_average_only_in") == 0) {
        int rc = scaling_factor(l, &mp->input_scale, err);
        if (rc < 0) return rc;
    } else if (norm && strcmp(norm, "none") != 0) {
        return sae_error_set(err, SAE_ERR_UNSUPPORTED, l->cfg,
                             "normalize_activations '%s' is per-row, not a constant input scale; not read", norm);
    }
    mp->d_in = cfg_int(cfg, "d_in");
    mp->d_sae = cfg_int(cfg, "d_sae");
    return SAE_OK;
}

static int map_sparsify(const located *l, const cJSON *cfg, mapped *mp, sae_error *err) {
    long long k = cfg_int(cfg, "k");
    if (k < 1) return sae_error_set(err, SAE_ERR_FORMAT, l->cfg, "sparsify config without a positive integer k");
    const char *act = cfg_str(cfg, "activation");
    if (act && strcmp(act, "topk") != 0)
        return sae_error_set(err, SAE_ERR_UNSUPPORTED, l->cfg, "sparsify activation '%s' is not read (topk is)", act);
    if (cfg_bool(cfg, "transcode", 0))
        return sae_error_set(err, SAE_ERR_UNSUPPORTED, l->cfg, "a sparsify transcoder (transcode: true) is not an SAE");
    if (cfg_bool(cfg, "skip_connection", 0))
        return sae_error_set(err, SAE_ERR_UNSUPPORTED, l->cfg, "sparsify skip_connection (W_skip) is not read");
    mp->arch = SAE_ARCH_TOPK;
    mp->k = (size_t)k;
    mp->subtract_b_dec = 1;
    mp->input_scale = 1.0;
    mp->d_in = cfg_int(cfg, "d_in");
    mp->d_sae = cfg_int(cfg, "num_latents");
    return SAE_OK;
}

/* --- tensors ------------------------------------------------------------------------ */
typedef struct {
    const char *w_enc, *b_enc, *w_dec, *b_dec;
    int w_enc_dm; /* W_enc stored [d, M] (SAELens, Gemma Scope) rather than [M, d] */
} names;

static const sae_tf_tensor *need(sae_tensorfile *tf, const char *name, const char *path, sae_error *err) {
    const sae_tf_tensor *t = sae_tensorfile_find(tf, name);
    if (!t) sae_error_set(err, SAE_ERR_FORMAT, path, "missing tensor %s", name);
    return t;
}

static int shape_is(const sae_tf_tensor *t, size_t a, size_t b) {
    return b ? t->rank == 2 && t->shape[0] == a && t->shape[1] == b : t->rank == 1 && t->shape[0] == a;
}
static void shape_str(const sae_tf_tensor *t, char *buf, size_t cap) {
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < t->rank && o < cap; i++) o += (size_t)snprintf(buf + o, cap - o, i ? ", %zu" : "%zu", t->shape[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

/* d and M from W_dec [M, d]; every other tensor must agree. */
static int check_shapes(const char *path, const sae_tf_tensor *const t[5], const names *n, size_t *d, size_t *M,
                        sae_error *err) {
    if (t[2]->rank != 2 || t[2]->shape[0] == 0 || t[2]->shape[1] == 0 || t[2]->shape[0] > INT32_MAX ||
        t[2]->shape[1] > INT32_MAX)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "%s must be a non-empty matrix [latents, d]", n->w_dec);
    *M = t[2]->shape[0], *d = t[2]->shape[1];
    const char *nm[5] = {n->w_enc, n->b_enc, n->w_dec, n->b_dec, "threshold"};
    size_t want[5][2] = {{n->w_enc_dm ? *d : *M, n->w_enc_dm ? *M : *d}, {*M, 0}, {*M, *d}, {*d, 0}, {*M, 0}};
    for (int i = 0; i < 5; i++) {
        if (!t[i] || shape_is(t[i], want[i][0], want[i][1])) continue;
        char got[96];
        shape_str(t[i], got, sizeof got);
        return sae_error_set(err, SAE_ERR_FORMAT, path,
                             "%s is %s but %s [%zu, %zu] gives d = %zu, latents = %zu: the tensors disagree", nm[i], got,
                             n->w_dec, *M, *d, *d, *M);
    }
    return SAE_OK;
}

static int read_into(sae_tensorfile *tf, const sae_tf_tensor *t, float *dst, int transpose_dm, size_t d, size_t M,
                     const char *path, sae_error *err) {
    if (!transpose_dm) return sae_tensorfile_read_f32(tf, t, dst, err);
    float *tmp = sae_alloc(d * M * sizeof(float));
    if (!tmp) return sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory");
    int rc = sae_tensorfile_read_f32(tf, t, tmp, err);
    if (rc == SAE_OK) /* [d, M] -> our (M, D) */
        for (size_t i = 0; i < d; i++)
            for (size_t j = 0; j < M; j++) dst[j * d + i] = tmp[i * M + j];
    sae_free(tmp);
    return rc;
}

/* b_enc += b_dec . W_enc_j: see the header comment. */
static void fold_b_dec(sae_model *m) {
    size_t D = m->cfg.d;
    for (size_t j = 0; j < m->cfg.m; j++) {
        double s = 0;
        for (size_t i = 0; i < D; i++) s += (double)m->p.b_dec[i] * m->p.W_enc[j * D + i];
        m->p.b_enc[j] = (float)(m->p.b_enc[j] + s);
    }
}

static int fold_decoder_norm(sae_model *m, const char *path, sae_error *err) {
    size_t D = m->cfg.d;
    for (size_t j = 0; j < m->cfg.m; j++) {
        double s = 0;
        for (size_t i = 0; i < D; i++) s += (double)m->p.W_dec[j * D + i] * m->p.W_dec[j * D + i];
        double n = sqrt(s);
        if (!(n > 0))
            return sae_error_set(err, SAE_ERR_FORMAT, path,
                                 "latent %zu has a zero decoder row; rescale_acts_by_decoder_norm divides by it", j);
        for (size_t i = 0; i < D; i++) {
            m->p.W_enc[j * D + i] = (float)(m->p.W_enc[j * D + i] * n);
            m->p.W_dec[j * D + i] = (float)(m->p.W_dec[j * D + i] / n);
        }
        m->p.b_enc[j] = (float)(m->p.b_enc[j] * n);
    }
    return SAE_OK;
}

static void note_dtypes(sae_foreign_info *info, const sae_tf_tensor *const t[5]) {
    info->weight_dtypes[0] = 0;
    for (int i = 0; i < 5; i++) {
        if (!t[i] || strstr(info->weight_dtypes, t[i]->dtype_name)) continue;
        size_t o = strlen(info->weight_dtypes);
        snprintf(info->weight_dtypes + o, sizeof info->weight_dtypes - o, "%s%s", o ? "+" : "", t[i]->dtype_name);
    }
}

static int build(const located *l, sae_tensorfile *tf, const mapped *mp, sae_model *m, size_t capacity,
                 sae_foreign_info *info, sae_error *err) {
    const char *p = l->weights;
    names n = l->fmt == SAE_FMT_SPARSIFY ? (names){"encoder.weight", "encoder.bias", "W_dec", "b_dec", 0}
                                         : (names){"W_enc", "b_enc", "W_dec", "b_dec", 1};
    if (l->fmt == SAE_FMT_SPARSIFY && sae_tensorfile_find(tf, "W_skip"))
        return sae_error_set(err, SAE_ERR_UNSUPPORTED, p, "holds W_skip (a skip connection), which is not read");
    const sae_tf_tensor *t[5] = {0};
    const char *nm[4] = {n.w_enc, n.b_enc, n.w_dec, n.b_dec};
    for (int i = 0; i < 4; i++)
        if (!(t[i] = need(tf, nm[i], p, err))) return err->code;
    if (mp->arch == SAE_ARCH_JUMPRELU && !(t[4] = need(tf, "threshold", p, err))) return err->code;
    size_t d = 0, M = 0;
    int rc = check_shapes(p, t, &n, &d, &M, err);
    if (rc < 0) return rc;
    if ((mp->d_in > 0 && (size_t)mp->d_in != d) || (mp->d_sae > 0 && (size_t)mp->d_sae != M) || mp->d_in == -2)
        return sae_error_set(err, SAE_ERR_FORMAT, l->cfg, "the config's d_in/latents (%lld, %lld) disagree with the tensors (%zu, %zu)",
                             mp->d_in, mp->d_sae, d, M);
    if (mp->k > M) return sae_error_set(err, SAE_ERR_FORMAT, l->cfg, "k = %zu is more than the %zu latents", mp->k, M);
    sae_config c = sae_config_default(mp->arch);
    c.d = d, c.m = M, c.k = mp->k, c.aux_k = 0;
    if (c.target_l0 > M) c.target_l0 = M; /* a training setting; validate wants it <= M */
    sae_error tmp = {0};
    if (sae_config_validate(&c, &tmp) < 0)
        return sae_error_set(err, SAE_ERR_FORMAT, p, "unusable SAE config: %s %s", tmp.subject, tmp.msg);
    rc = sae_model_init(m, &c, capacity, 0, err);
    if (rc < 0) return rc;
    float *dst[5] = {m->p.W_enc, m->p.b_enc, m->p.W_dec, m->p.b_dec, m->p.threshold};
    for (int i = 0; i < 5 && rc == SAE_OK; i++)
        if (t[i]) rc = read_into(tf, t[i], dst[i], i == 0 && n.w_enc_dm, d, M, p, err);
    if (rc == SAE_OK && !mp->subtract_b_dec) fold_b_dec(m);
    if (rc == SAE_OK && mp->rescale_by_dec_norm) rc = fold_decoder_norm(m, p, err);
    if (rc < 0) {
        sae_model_free(m);
        return rc;
    }
    if (info) {
        snprintf(info->weights, sizeof info->weights, "%s", p);
        info->b_dec_folded = !mp->subtract_b_dec;
        info->rescaled_by_decoder_norm = mp->rescale_by_dec_norm;
        note_dtypes(info, t);
    }
    return SAE_OK;
}

int sae_foreign_load(const char *path, sae_model *m, size_t capacity, double *input_scale, sae_foreign_info *info,
                     sae_error *err) {
    memset(m, 0, sizeof *m);
    located l;
    locate(path, &l);
    if (l.fmt == SAE_FMT_NATIVE)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "not a SAELens, sparsify or Gemma Scope SAE");
    sae_foreign_info dummy;
    if (!info) info = &dummy;
    memset(info, 0, sizeof *info);
    info->format = l.fmt;
    cJSON *cfg = NULL;
    int rc = l.cfg[0] ? read_json(l.cfg, &cfg, err) : SAE_OK;
    mapped mp = {.subtract_b_dec = 1, .input_scale = 1.0, .d_in = -1, .d_sae = -1};
    if (rc == SAE_OK) {
        if (l.fmt == SAE_FMT_SAELENS) rc = map_saelens(&l, cfg, &mp, err);
        else if (l.fmt == SAE_FMT_SPARSIFY) rc = map_sparsify(&l, cfg, &mp, err);
        else mp.arch = SAE_ARCH_JUMPRELU, mp.subtract_b_dec = 0; /* Gemma Scope */
    }
    if (rc == SAE_OK) {
        const char *a = l.fmt == SAE_FMT_SAELENS ? cfg_str(cfg, "architecture") : NULL;
        snprintf(info->source_arch, sizeof info->source_arch, "%s",
                 a ? a : l.fmt == SAE_FMT_SPARSIFY ? "topk" : l.fmt == SAE_FMT_GEMMASCOPE ? "jumprelu" : "standard");
        const char *mn = cfg_str(cfg, "model_name"), *hk = cfg_str(cfg, "hook_name");
        snprintf(info->model, sizeof info->model, "%s", mn ? mn : "");
        if (!hk && l.fmt == SAE_FMT_SPARSIFY) { /* sparsify names each hookpoint's folder after it */
            char tmp[4096];
            snprintf(tmp, sizeof tmp, "%s", l.dir);
            snprintf(info->hook, sizeof info->hook, "%s", basename(tmp));
        } else {
            snprintf(info->hook, sizeof info->hook, "%s", hk ? hk : "");
        }
    }
    cJSON_Delete(cfg);
    sae_tensorfile *tf = NULL;
    if (rc == SAE_OK) rc = sae_tensorfile_open(&tf, l.weights, err);
    if (rc == SAE_OK) rc = build(&l, tf, &mp, m, capacity, info, err);
    sae_tensorfile_close(tf);
    if (rc == SAE_OK) *input_scale = mp.input_scale;
    return rc;
}
