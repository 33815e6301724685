#!/usr/bin/python3
"""tests/make_sae.py: SAE files in our format (sae/io.h), written with h5py
alone, independently of the C writer, for tests whose answer is known.

Layout written: /W_enc float32 [d, M], /b_enc [M], /W_dec [M, d], /b_dec [d]
(+ /threshold: [M] for jumprelu, [1] for batchtopk / matryoshka; + /widths
int64 for matryoshka); root attributes format = "sae", format_version (1 for
topk / relu, 2 otherwise), arch, d_model, n_latents, k, aux_k, aux_coef,
input_scale, and where the architecture uses them threshold_lr, target_l0,
bandwidth, threshold_init; with --model / --layer / --site also the
provenance attributes model, layer, hook.

Kinds:
  identity --d D --out F [--scale S]
      topk, M = 2D, k = 2D, W_enc = [I, -I] ([d, M]), W_dec = [I; -I],
      biases 0: z = [relu(xs), relu(-xs)], xhat_s = relu(xs) - relu(-xs) = xs,
      so the reconstruction is x (exactly with a power-of-two scale).
  zero --d D --out F [--scale S] [--seed N]
      topk, M = 2D, k = 2, W_enc random, W_dec = 0, b_dec = 0: the
      reconstruction is exactly 0 (and l0 is that of the random encoder).
  random --d D --out F --arch A [--m M] [--k K] [--scale S] [--seed N]
         [--data A.h5]
      random unit-norm decoder rows, W_enc = W_dec^T, small random biases;
      matryoshka widths M/16, M/4, M. Thresholds (jumprelu: per latent, batch
      archs: one) sit at the 1 - K/M quantile of N(0, 1) pre-activations, so
      that about K latents fire per row on unit-variance scaled inputs; with
      --data at that quantile of the pre-activations of its first 4096 rows
      (relu: b_enc is lowered by each latent's quantile instead): an SAE of
      every architecture, with L0 about K, without training.
Common: --model NAME --layer L --site SITE (provenance).

Usage: /usr/bin/python3 tests/make_sae.py identity --d 64 --out id.h5
"""
import argparse

import h5py
import numpy as np

VERSION = {"topk": 1, "relu": 1, "jumprelu": 2, "batchtopk": 2, "matryoshka": 2}


def write(path, arch, W_enc, b_enc, W_dec, b_dec, k, scale, a, threshold=None, widths=None):
    d, m = W_enc.shape
    assert W_dec.shape == (m, d) and b_enc.shape == (m,) and b_dec.shape == (d,)
    with h5py.File(path, "w") as f:
        f.create_dataset("W_enc", data=np.asarray(W_enc, np.float32))
        f.create_dataset("b_enc", data=np.asarray(b_enc, np.float32))
        f.create_dataset("W_dec", data=np.asarray(W_dec, np.float32))
        f.create_dataset("b_dec", data=np.asarray(b_dec, np.float32))
        if threshold is not None:
            f.create_dataset("threshold", data=np.asarray(threshold, np.float32))
        if widths is not None:
            f.create_dataset("widths", data=np.asarray(widths, np.int64))
        t = f.attrs
        t["format"] = "sae"
        t["format_version"] = np.int64(VERSION[arch])
        t["arch"] = arch
        t["d_model"] = np.int64(d)
        t["n_latents"] = np.int64(m)
        t["k"] = np.int64(k)
        t["aux_k"] = np.int64(0)
        t["aux_coef"] = np.float64(0.0)
        t["input_scale"] = np.float64(scale)
        if arch in ("batchtopk", "matryoshka"):
            t["threshold_lr"] = np.float64(0.05)
        if arch == "jumprelu":
            t["target_l0"] = np.int64(max(1, min(k, m)))
            t["bandwidth"] = np.float64(0.05)
            t["threshold_init"] = np.float64(-1.0)
        if a.model is not None:
            t["model"] = a.model
        if a.layer is not None:
            t["layer"] = np.int64(a.layer)
        if a.site is not None:
            t["hook"] = a.site


def identity(a):
    d = a.d
    eye = np.eye(d)
    W_enc = np.concatenate([eye, -eye], axis=1)  # [d, 2d]
    W_dec = np.concatenate([eye, -eye], axis=0)  # [2d, d]
    write(a.out, "topk", W_enc, np.zeros(2 * d), W_dec, np.zeros(d), 2 * d, a.scale, a)


def zero(a):
    d, m = a.d, 2 * a.d
    g = np.random.default_rng(a.seed)
    W_enc = g.standard_normal((d, m)) / np.sqrt(d)
    write(a.out, "topk", W_enc, np.zeros(m), np.zeros((m, d)), np.zeros(d), 2, a.scale, a)


def random_sae(a):
    d = a.d
    m = a.m or 4 * d
    k = a.k or max(1, min(m, d // 4))
    g = np.random.default_rng(a.seed)
    W_dec = g.standard_normal((m, d))
    W_dec /= np.linalg.norm(W_dec, axis=1, keepdims=True)
    W_enc = W_dec.T.copy()
    b_enc = 0.01 * g.standard_normal(m)
    b_dec = 0.01 * g.standard_normal(d)
    thr, widths = None, None
    q = 1.0 - k / m
    if a.data:
        # calibrated on real rows: each latent (relu, jumprelu) or the batch
        # (batchtopk, matryoshka) fires on a fraction k/m of them
        with h5py.File(a.data, "r") as f:
            x = f["activations"][:4096].astype(np.float64)
        pre = (x * a.scale - b_dec) @ W_enc + b_enc

        def cut(v):
            # midway across a clear gap between sorted values at (or just
            # above) the quantile, so that no sample value sits near a
            # threshold, where float32 and float64 codes would differ (a
            # corpus of similar documents repeats whole rows)
            v = np.sort(v)
            tol = 1e-5 * max(np.abs(v).max(), 1e-30)  # float32 noise is ~1e-7 of it
            i0 = min(max(int(q * len(v)), 1), len(v) - 1)
            for i in list(range(i0, len(v))) + list(range(i0 - 1, 0, -1)):
                if v[i] - v[i - 1] > tol:
                    return 0.5 * (v[i - 1] + v[i])
            return v[-1] + 1.0

        per = np.array([cut(pre[:, j]) for j in range(m)])
        if a.arch == "relu":
            b_enc = b_enc - per
        elif a.arch == "jumprelu":
            thr = np.maximum(per, 0.0)
        elif a.arch in ("batchtopk", "matryoshka"):
            thr = np.array([max(float(cut(pre.ravel())), 0.0)])
    else:
        # unit-norm columns and x * scale ~ N(0, I) give pre ~ N(0, 1)
        t = float(np.quantile(g.standard_normal(200000), q))
        if a.arch == "jumprelu":
            thr = np.maximum(t + 0.1 * g.standard_normal(m), 0.0)
        elif a.arch in ("batchtopk", "matryoshka"):
            thr = np.array([max(t, 0.0)])
    if a.arch == "matryoshka":
        widths = sorted({max(1, m // 16), max(1, m // 4), m})
    write(a.out, a.arch, W_enc, b_enc, W_dec, b_dec, k, a.scale, a, thr, widths)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("kind", choices=("identity", "zero", "random"))
    ap.add_argument("--d", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--arch", choices=sorted(VERSION), default="topk")
    ap.add_argument("--m", type=int, default=0)
    ap.add_argument("--k", type=int, default=0)
    ap.add_argument("--data", help="random: calibrate thresholds on this activation file")
    ap.add_argument("--model")
    ap.add_argument("--layer", type=int)
    ap.add_argument("--site", choices=("resid_pre", "attn_out", "mlp_out", "resid_post"))
    a = ap.parse_args()
    if a.d < 1 or not a.scale > 0:
        ap.error("--d must be positive and --scale > 0")
    {"identity": identity, "zero": zero, "random": random_sae}[a.kind](a)


if __name__ == "__main__":
    main()
