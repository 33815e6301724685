#!/usr/bin/python3
"""tests/ref_model.py: an independent float64 numpy reference for issue 14
(an SAE spliced into the model: `sae eval --model`, `sae generate --sae`).

It shares no code with the C side: it reads the llama2.c checkpoint and our
SAE .h5 file itself (numpy + h5py only) and computes everything in float64.

Model (llama2.c legacy file, data/llama.h): 7 x int32 header (dim, hidden,
n_layers, n_heads, n_kv_heads, vocab_size, seq_len; vocab_size < 0: the
classifier is a separate [V, dim] matrix at the end, else it is the token
embedding), then float32 weights in Linear [out][in] layout. freq_cis in the
file is skipped; RoPE is recomputed: for each even i of q (and of k while
i < kv_dim), freq = 10000^-((i % head_size) / head_size), angle = pos * freq,
(v[i], v[i+1]) rotated by it. RMSNorm x / sqrt(mean(x^2) + 1e-5) * w, GQA
causal attention with scale 1/sqrt(head_size), SwiGLU w2(silu(w1 x) * w3 x),
final RMSNorm, classifier.

Sites of block L: resid_pre (residual entering L), attn_out (after wo, before
it is added), mlp_out (after w2, before it is added), resid_post (residual
leaving L). Replacing a site's value continues the forward from the new value
(for attn_out / mlp_out the new value is what is added to the residual).
Position 0 (BOS) is never modified; positions 1..T-1 are.

SAE (sae/io.h): xs = x * input_scale, pre = (xs - b_dec) @ W_enc + b_enc
(W_enc stored [d, M]); codes z by the architecture (the comparisons of
sae/kernels.c):
  topk:        the k largest pre per row, then max(., 0) (ties: any; they
               only matter where the values are equal);
  relu:        z = pre where pre > 0;
  jumprelu:    z = pre where pre > threshold[j] and pre > 0;
  batchtopk, matryoshka: z = pre where pre > max(threshold[0], 0).
xhat = (z @ W_dec + b_dec) / input_scale.

Modes (the value put at positions 1..T-1 of the site):
  clean (nothing), sae (xhat), sae --replace-error (xhat + (x - xhat)),
  zero (0), intervened (x + sum over the interventions of delta * W_dec[F] /
  input_scale, with steer F:A delta = A, ablate F delta = -z_F, clamp F:V
  delta = V - z_F; z = the codes of the clean x, encoded once; several
  interventions on one feature add their deltas).

Scores: predicted positions p = 1..T-2 of each window, target tokens[p+1];
CE = -log_softmax(logits[p])[target], KL(p_clean || p_mode); ce_X, kl_X are
means over all predicted positions of all windows; ce_score = (ce_zero -
ce_sae) / (ce_zero - ce_clean), kl_score = (kl_zero - kl_sae) / kl_zero
(null when the denominator is 0). Reconstruction metrics over the clean site
rows at positions 1..T-1: fvu = sum||x - xhat||^2 / sum||x - mean x||^2,
l0 = mean nonzero codes per row, mse = mean of (x - xhat)^2 in model units
(what `sae eval --data` prints), mse_scaled = the same in scaled units
((xs - xhat_s)^2 = mse * input_scale^2).

Windows come from an activation file written by `sae capture`: /doc_offsets
cuts /tokens into windows, /doc_labels labels them. With --keep-bos each
window's rows start with BOS; without it BOS (id 1) is put back in front.
The self-test acts_max_rel_diff: when the file was captured at the same
layer and site, the clean forward's site values are compared with the file's
rows (BOS row included when kept): max over rows of
max|ours - file| / max|file| (expect ~1e-5: the C forward is float32);
null when the file holds another site.

Generation (greedy, argmax with ties to the lowest id): sequence = BOS +
prompt ids (a leading 1 in --prompt-ids is taken as that BOS), truncated to
seq_len; while it holds fewer than min(steps, seq_len) tokens: run the whole
sequence with the intervention at positions 1..n-1, append the argmax of the
last position's logits, but stop (without appending) at BOS.

Usage (JSON on stdout):
  /usr/bin/python3 tests/ref_model.py eval --model M.bin --sae S.h5 \\
      --acts A.h5 --layer L --site SITE [--replace-error] [--ablate F]... \\
      [--steer F:A]... [--clamp F:V]... [--by-label] [--max-windows N]
  /usr/bin/python3 tests/ref_model.py generate --model M.bin [--sae S.h5] \\
      --layer L --site SITE --prompt-ids 1,234,56 --steps N \\
      [--steer F:A]... [--ablate F]... [--clamp F:V]...
Extra keys: mse_scaled, rows (site rows scored: positions 1..T-1),
acts_max_abs_diff; without labels in the file, --by-label groups under "".
An intervention needs --sae; generate prints "intervened" only with one.
Runtime (one BLAS thread): jaen-6m, 20 windows of 64 tokens, 2.6 s (0.3 s of
it loading); stories260K, 94 windows, about 2 s.
"""
import argparse
import json
import math
import os
import sys

# one BLAS thread: the matrices are small, and threaded BLAS on a shared
# 2-core machine ran ten times slower (set the variable to override)
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import h5py
import numpy as np

SITES = ("resid_pre", "attn_out", "mlp_out", "resid_post")
BOS = 1


# --- model ----------------------------------------------------------------------
class Llama:
    def __init__(self, path):
        raw = np.fromfile(path, dtype=np.uint8)
        hdr = raw[:28].view(np.int32)
        dim, hid, nl, nh, nkv, vocab, seq = (int(v) for v in hdr)
        self.shared = vocab > 0
        V = abs(vocab)
        self.dim, self.hidden, self.n_layers = dim, hid, nl
        self.n_heads, self.n_kv_heads, self.vocab, self.seq_len = nh, nkv, V, seq
        self.hs = dim // nh
        self.kv_dim = self.hs * nkv
        w = raw[28:].view(np.float32)
        pos = [0]

        def take(*shape):
            n = int(np.prod(shape))
            a = w[pos[0]:pos[0] + n]
            if a.size != n:
                raise SystemExit(f"{path}: file too short for its header")
            pos[0] += n
            return a.reshape(shape).astype(np.float64)

        D, H, L, KV = dim, hid, nl, self.kv_dim
        self.emb = take(V, D)
        self.rms_att = take(L, D)
        self.wq = take(L, D, D)
        self.wk = take(L, KV, D)
        self.wv = take(L, KV, D)
        self.wo = take(L, D, D)
        self.rms_ffn = take(L, D)
        self.w1 = take(L, H, D)
        self.w2 = take(L, D, H)
        self.w3 = take(L, H, D)
        self.rms_final = take(D)
        pos[0] += seq * self.hs  # freq_cis_real, freq_cis_imag: (seq, hs/2) each
        self.wcls = self.emb if self.shared else take(V, D)
        if pos[0] != w.size:
            raise SystemExit(f"{path}: {w.size - pos[0]} floats left after the weights")

    @staticmethod
    def rmsnorm(x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-5) * w

    def rope(self, v, T, width):
        """v (T, width) rotated in place on adjacent pairs."""
        i = np.arange(0, width, 2)
        freq = 1.0 / np.power(10000.0, (i % self.hs) / self.hs)
        ang = np.arange(T, dtype=np.float64)[:, None] * freq[None, :]
        c, s = np.cos(ang), np.sin(ang)
        a, b = v[:, 0::2].copy(), v[:, 1::2].copy()
        v[:, 0::2] = a * c - b * s
        v[:, 1::2] = a * s + b * c
        return v

    def attn(self, h, l):
        T = h.shape[0]
        x = self.rmsnorm(h, self.rms_att[l])
        q = self.rope(x @ self.wq[l].T, T, self.dim)
        k = self.rope(x @ self.wk[l].T, T, self.kv_dim)
        v = x @ self.wv[l].T
        nh, nkv, hs = self.n_heads, self.n_kv_heads, self.hs
        q = q.reshape(T, nh, hs).transpose(1, 0, 2)            # (nh, T, hs)
        rep = nh // nkv
        k = np.repeat(k.reshape(T, nkv, hs).transpose(1, 0, 2), rep, axis=0)
        v = np.repeat(v.reshape(T, nkv, hs).transpose(1, 0, 2), rep, axis=0)
        sc = q @ k.transpose(0, 2, 1) / math.sqrt(hs)           # (nh, T, T)
        sc = np.where(np.tril(np.ones((T, T), dtype=bool))[None], sc, -np.inf)
        sc -= sc.max(axis=-1, keepdims=True)
        p = np.exp(sc)
        p /= p.sum(axis=-1, keepdims=True)
        o = (p @ v).transpose(1, 0, 2).reshape(T, self.dim)
        return o @ self.wo[l].T

    def ffn(self, h, l):
        x = self.rmsnorm(h, self.rms_ffn[l])
        a = x @ self.w1[l].T
        return (a / (1.0 + np.exp(-a)) * (x @ self.w3[l].T)) @ self.w2[l].T

    def block(self, h, l):
        h = h + self.attn(h, l)
        return h + self.ffn(h, l)

    def prefix(self, tokens, layer, site):
        """Runs up to the site: (ctx, x) with x the site's clean value."""
        h = self.emb[np.asarray(tokens)]
        for l in range(layer):
            h = self.block(h, l)
        if site == "resid_pre":
            return None, h
        a = self.attn(h, layer)
        if site == "attn_out":
            return h, a
        h = h + a
        m = self.ffn(h, layer)
        if site == "mlp_out":
            return h, m
        return None, h + m

    def suffix(self, ctx, x, layer, site):
        """Continues from the site's (possibly replaced) value x: logits (T, V)."""
        if site == "resid_pre":
            h, first = x, layer
        elif site == "attn_out":
            h = ctx + x
            h = h + self.ffn(h, layer)
            first = layer + 1
        elif site == "mlp_out":
            h, first = ctx + x, layer + 1
        else:
            h, first = x, layer + 1
        for l in range(first, self.n_layers):
            h = self.block(h, l)
        return self.rmsnorm(h, self.rms_final) @ self.wcls.T

    def logits(self, tokens):
        return self.suffix(*self.prefix(tokens, self.n_layers - 1, "resid_post"),
                           self.n_layers - 1, "resid_post")


# --- SAE -----------------------------------------------------------------------
def attr_str(v):
    return v.decode() if isinstance(v, bytes) else str(v)


class SAE:
    def __init__(self, path):
        with h5py.File(path, "r") as f:
            a = f.attrs
            if attr_str(a.get("format", "")) != "sae":
                raise SystemExit(f"{path}: not an SAE file (format attribute)")
            self.arch = attr_str(a["arch"])
            self.d, self.m = int(a["d_model"]), int(a["n_latents"])
            self.k = int(a.get("k", 0))
            self.scale = float(a["input_scale"])
            self.W_enc = f["W_enc"][()].astype(np.float64)   # (d, M)
            self.b_enc = f["b_enc"][()].astype(np.float64)
            self.W_dec = f["W_dec"][()].astype(np.float64)   # (M, d)
            self.b_dec = f["b_dec"][()].astype(np.float64)
            self.threshold = (f["threshold"][()].astype(np.float64) if "threshold" in f else None)
            self.layer = int(a["layer"]) if "layer" in a else None
            self.hook = attr_str(a["hook"]) if "hook" in a else None
        d, m = self.d, self.m
        assert self.W_enc.shape == (d, m) and self.W_dec.shape == (m, d), path
        assert self.b_enc.shape == (m,) and self.b_dec.shape == (d,), path
        if self.arch == "jumprelu":
            assert self.threshold is not None and self.threshold.shape == (m,), path
        elif self.arch in ("batchtopk", "matryoshka"):
            assert self.threshold is not None and self.threshold.shape == (1,), path
        elif self.arch not in ("topk", "relu"):
            raise SystemExit(f"{path}: unknown arch {self.arch}")

    def encode(self, x):
        """Codes (rows, M) of raw activations x (rows, d)."""
        pre = (x * self.scale - self.b_dec) @ self.W_enc + self.b_enc
        if self.arch == "topk":
            k = min(self.k, self.m)
            z = np.zeros_like(pre)
            if k >= self.m:
                keep = np.ones_like(pre, dtype=bool)
            else:
                idx = np.argpartition(pre, self.m - k, axis=1)[:, self.m - k:]
                keep = np.zeros_like(pre, dtype=bool)
                np.put_along_axis(keep, idx, True, axis=1)
            z[keep] = np.maximum(pre[keep], 0.0)
            return z
        if self.arch == "relu":
            return np.where(pre > 0.0, pre, 0.0)
        if self.arch == "jumprelu":
            return np.where((pre > self.threshold[None, :]) & (pre > 0.0), pre, 0.0)
        lvl = max(self.threshold[0], 0.0)  # batchtopk, matryoshka
        return np.where(pre > lvl, pre, 0.0)

    def decode(self, z):
        """Reconstruction in model units."""
        return (z @ self.W_dec + self.b_dec) / self.scale


# --- scoring -------------------------------------------------------------------
def log_softmax(lg):
    mx = lg.max(axis=-1, keepdims=True)
    return lg - mx - np.log(np.exp(lg - mx).sum(axis=-1, keepdims=True))


class Acc:
    """Sums over windows for one group (all, or one label)."""

    def __init__(self, d, modes):
        self.modes = modes
        self.ce = {m: 0.0 for m in modes}
        self.kl = {m: 0.0 for m in modes}
        self.n_pred = 0
        self.windows = 0
        self.rows = 0
        self.sum_ee = 0.0
        self.sum_xx = 0.0
        self.colsum = np.zeros(d)
        self.nnz = 0

    def add(self, ce, kl, x, xhat, z):
        self.windows += 1
        self.n_pred += len(next(iter(ce.values())))
        for m in self.modes:
            self.ce[m] += float(ce[m].sum())
            self.kl[m] += float(kl[m].sum())
        self.rows += x.shape[0]
        self.sum_ee += float(((x - xhat) ** 2).sum())
        self.sum_xx += float((x * x).sum())
        self.colsum += x.sum(axis=0)
        self.nnz += int(np.count_nonzero(z))

    def result(self, scale):
        def div(a, b):
            return a / b if b != 0 and math.isfinite(a / b) else None

        n = self.n_pred
        r = {}
        for m in self.modes:
            r["ce_" + m] = self.ce[m] / n if n else None
            r["kl_" + m] = self.kl[m] / n if n else None
        ok = n > 0
        r["ce_score"] = div(r["ce_zero"] - r["ce_sae"], r["ce_zero"] - r["ce_clean"]) if ok else None
        r["kl_score"] = div(r["kl_zero"] - r["kl_sae"], r["kl_zero"]) if ok else None
        var = self.sum_xx - float((self.colsum ** 2).sum()) / self.rows if self.rows else 0.0
        r["fvu"] = div(self.sum_ee, var)
        d = len(self.colsum)
        r["mse"] = self.sum_ee / (self.rows * d) if self.rows else None
        r["mse_scaled"] = r["mse"] * scale * scale if self.rows else None
        r["l0"] = self.nnz / self.rows if self.rows else None
        r["tokens"] = n
        r["windows"] = self.windows
        r["rows"] = self.rows
        del r["kl_clean"]
        return r


def parse_interventions(a, M):
    iv = []  # (kind, feature, value)
    for s in a.steer or []:
        f, v = s.split(":", 1)
        iv.append(("steer", int(f), float(v)))
    for s in a.ablate or []:
        iv.append(("ablate", int(s), 0.0))
    for s in a.clamp or []:
        f, v = s.split(":", 1)
        iv.append(("clamp", int(f), float(v)))
    for _, f, _ in iv:
        if not 0 <= f < M:
            raise SystemExit(f"feature {f} out of range 0..{M - 1}")
    return iv


def intervene(x, z, sae, iv):
    """x (rows, d) + sum of delta_F * W_dec[F] / scale (error preserving)."""
    out = x.copy()
    for kind, f, v in iv:
        if kind == "steer":
            delta = np.full(x.shape[0], v)
        elif kind == "ablate":
            delta = -z[:, f]
        else:
            delta = v - z[:, f]
        out += delta[:, None] * sae.W_dec[f][None, :] / sae.scale
    return out


def cmd_eval(a):
    model = Llama(a.model)
    check_layer(model, a.layer)
    sae = SAE(a.sae)
    if sae.d != model.dim:
        raise SystemExit(f"SAE d={sae.d} but the model has dim {model.dim}")
    if (sae.layer is not None and sae.layer != a.layer) or (sae.hook is not None and sae.hook != a.site):
        print(f"ref_model: note: the SAE was trained at layer {sae.layer} {sae.hook}, "
              f"spliced at layer {a.layer} {a.site}", file=sys.stderr)
    iv = parse_interventions(a, sae.m)
    with h5py.File(a.acts, "r") as f:
        tokens = f["tokens"][()].astype(np.int64)
        off = f["doc_offsets"][()].astype(np.int64)
        labels = ([attr_str(s) for s in f["doc_labels"][()]] if "doc_labels" in f else None)
        attrs = f.attrs
        keep_bos = int(attrs["keep_bos"]) if "keep_bos" in attrs else None
        if keep_bos is None:  # older files: a kept BOS starts every window
            keep_bos = int(all(tokens[off[i]] == BOS for i in range(len(off) - 1)))
        same_site = ("layer" in attrs and int(attrs["layer"]) == a.layer and
                     "hook" in attrs and attr_str(attrs["hook"]) == a.site)
        acts = f["activations"] if same_site else None
        n_win = len(off) - 1
        if a.max_windows:
            n_win = min(n_win, a.max_windows)
        modes = ["clean", "sae", "zero"] + (["intervened"] if iv else [])
        total = Acc(sae.d, modes)
        groups = {}
        max_rel = 0.0 if same_site else None
        max_abs = 0.0 if same_site else None
        for w in range(n_win):
            rows = tokens[off[w]:off[w + 1]]
            seq = rows if keep_bos else np.concatenate([[BOS], rows])
            T = len(seq)
            ctx, x = model.prefix(seq, a.layer, a.site)
            if same_site:
                fr = acts[off[w]:off[w + 1]].astype(np.float64)
                ours = x if keep_bos else x[1:]
                diff = np.abs(ours - fr).max(axis=1)
                ref = np.maximum(np.abs(fr).max(axis=1), 1e-30)
                max_rel = max(max_rel, float((diff / ref).max()))
                max_abs = max(max_abs, float(diff.max()))
            xr = x[1:]
            z = sae.encode(xr)
            xhat = sae.decode(z)
            new = {}
            rep = x.copy()
            rep[1:] = xhat + (xr - xhat) if a.replace_error else xhat
            new["sae"] = rep
            rep = x.copy()
            rep[1:] = 0.0
            new["zero"] = rep
            if iv:
                rep = x.copy()
                rep[1:] = intervene(xr, z, sae, iv)
                new["intervened"] = rep
            lp = {"clean": log_softmax(model.suffix(ctx, x, a.layer, a.site))}
            for m, v in new.items():
                lp[m] = log_softmax(model.suffix(ctx, v, a.layer, a.site))
            p = np.arange(1, T - 1)
            tgt = seq[p + 1]
            pc = np.exp(lp["clean"][p])
            ce, kl = {}, {}
            for m in modes:
                ce[m] = -lp[m][p, tgt]
                kl[m] = (pc * (lp["clean"][p] - lp[m][p])).sum(axis=1)
            total.add(ce, kl, xr, xhat, z)
            if a.by_label:
                lab = labels[w] if labels is not None else ""
                groups.setdefault(lab, Acc(sae.d, modes)).add(ce, kl, xr, xhat, z)
    out = total.result(sae.scale)
    out["acts_max_rel_diff"] = max_rel
    out["acts_max_abs_diff"] = max_abs
    if a.by_label:
        out["by_label"] = {k: g.result(sae.scale) for k, g in sorted(groups.items())}
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


def generate(model, ids, steps, splice):
    seq = list(ids)[:model.seq_len]
    steps = min(steps, model.seq_len)
    while len(seq) < steps:
        if splice is None:
            lg = model.logits(seq)
        else:
            layer, site, fn = splice
            ctx, x = model.prefix(seq, layer, site)
            rep = x.copy()
            if len(seq) > 1:
                rep[1:] = fn(x[1:])
            lg = model.suffix(ctx, rep, layer, site)
        nxt = int(np.argmax(lg[-1]))  # first maximum: ties go to the lowest id
        if nxt == BOS:
            break
        seq.append(nxt)
    return seq


def check_layer(model, layer):
    if not 0 <= layer < model.n_layers:
        raise SystemExit(f"--layer {layer}: the model has blocks 0..{model.n_layers - 1}")


def cmd_generate(a):
    model = Llama(a.model)
    check_layer(model, a.layer)
    ids = [int(t) for t in a.prompt_ids.split(",") if t.strip() != ""]
    if not ids or ids[0] != BOS:
        ids = [BOS] + ids
    out = {"clean": generate(model, ids, a.steps, None)}
    if a.sae:
        sae = SAE(a.sae)
        iv = parse_interventions(a, sae.m)
        if iv:
            def fn(xr):
                return intervene(xr, sae.encode(xr), sae, iv)
            out["intervened"] = generate(model, ids, a.steps, (a.layer, a.site, fn))
    elif a.steer or a.ablate or a.clamp:
        raise SystemExit("interventions need --sae")
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("eval", "generate"):
        p = sub.add_parser(name)
        p.add_argument("--model", required=True)
        p.add_argument("--sae", required=(name == "eval"))
        p.add_argument("--layer", type=int, required=True)
        p.add_argument("--site", choices=SITES, default="resid_post")
        p.add_argument("--steer", action="append")
        p.add_argument("--ablate", action="append")
        p.add_argument("--clamp", action="append")
        if name == "eval":
            p.add_argument("--acts", required=True)
            p.add_argument("--replace-error", action="store_true")
            p.add_argument("--by-label", action="store_true")
            p.add_argument("--max-windows", type=int, default=0)
        else:
            p.add_argument("--prompt-ids", required=True)
            p.add_argument("--steps", type=int, required=True)
    a = ap.parse_args()
    np.seterr(over="ignore")  # exp of very negative SwiGLU inputs overflows to inf: silu -> 0
    if a.cmd == "eval":
        cmd_eval(a)
    else:
        cmd_generate(a)


if __name__ == "__main__":
    main()
