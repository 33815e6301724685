#!/usr/bin/env python3
"""tests/read_export.py: checks `sae export` against an independent reader.

  read_export.py saelens DIR SAE.h5 HELDOUT.h5 [FEATURES.h5]
  read_export.py neuronpedia DIR FEATURES.h5 DATA.h5 SAE.h5 PER_BATCH

saelens: reads DIR as SAELens's SAE.load_from_disk would (cfg.json,
sae_weights.safetensors parsed here with struct/json/numpy only), encodes and
decodes the held-out rows by SAELens's rule on RAW activations in float64, and
compares with the codes and reconstruction that OUR rule gives from the
checkpoint's own HDF5 weights (inputs times input_scale, b_dec subtracted,
reconstruction divided by input_scale). Relative error < 1e-5: the fold
rounds each weight once to float32 (relative 6e-8), so anything above 1e-5
is a wrong fold, not rounding. With FEATURES.h5 also sparsity.safetensors
against log10(count / n_tokens + 1e-10).

neuronpedia: the batch files' structure (SAEDashboard's keys), and their
values against the features file and the data read with h5py; per-token
values against OUR rule on the window's rows (numpy, float64).
Prints one line per failure and exits 1 when there is any."""
import json
import os
import struct
import sys

import h5py
import numpy as np

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg)


def read_safetensors(path):
    """The tensors of a safetensors file: u64 LE header size, JSON, data."""
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    check((8 + n) % 8 == 0, f"{path}: header not padded to 8 bytes")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    out, spans = {}, []
    for name, e in header.items():
        if name == "__metadata__":
            continue
        check(e["dtype"] == "F32", f"{path}: {name} dtype {e['dtype']}")
        a, b = e["data_offsets"]
        spans.append((a, b))
        shape = tuple(e["shape"])
        arr = np.frombuffer(data[a:b], dtype="<f4")
        check(arr.size == int(np.prod(shape)), f"{path}: {name} size")
        out[name] = arr.reshape(shape).astype(np.float64)
    spans.sort()
    at = 0
    for a, b in spans:
        check(a == at, f"{path}: hole or overlap at byte {a}")
        at = b
    check(at == len(data), f"{path}: data is {len(data)} bytes, tensors cover {at}")
    return out


def load_ours(sae_path):
    with h5py.File(sae_path, "r") as f:
        p = {k: f[k][()].astype(np.float64) for k in ("W_enc", "b_enc", "W_dec", "b_dec")}
        if "threshold" in f:
            p["threshold"] = f["threshold"][()].astype(np.float64)
        attrs = dict(f.attrs)
    arch = attrs["arch"].decode() if isinstance(attrs["arch"], bytes) else str(attrs["arch"])
    return p, arch, float(attrs["input_scale"]), int(attrs.get("k", 0))


def topk_relu(pre, k):
    z = np.zeros_like(pre)
    idx = np.argsort(-pre, axis=1)[:, :k]
    rows = np.arange(pre.shape[0])[:, None]
    z[rows, idx] = np.maximum(pre[rows, idx], 0)
    return z


def our_codes(p, arch, s, k, x):
    """Our rule (sae/sae.h, sae/io.h): inputs times s, minus b_dec."""
    pre = (x * s - p["b_dec"]) @ p["W_enc"] + p["b_enc"]
    if arch == "topk":
        z = topk_relu(pre, k)
    elif arch == "relu":
        z = np.maximum(pre, 0)
    elif arch == "jumprelu":
        z = pre * ((pre > p["threshold"]) & (pre > 0))
    else:  # batchtopk, matryoshka at inference: one threshold
        z = pre * (pre > max(p["threshold"][0], 0.0))
    return z, (z @ p["W_dec"] + p["b_dec"]) / s


def saelens_codes(cfg, t, x):
    """SAELens's rule (sae_lens/saes/*.py) on raw x."""
    sae_in = x - t["b_dec"] * (1.0 if cfg["apply_b_dec_to_input"] else 0.0)
    pre = sae_in @ t["W_enc"] + t["b_enc"]
    arch = cfg["architecture"]
    if arch == "standard":
        z = np.maximum(pre, 0)
    elif arch == "topk":
        check(not cfg.get("rescale_acts_by_decoder_norm", False), "topk: rescale_acts_by_decoder_norm set")
        z = topk_relu(pre, cfg["k"])
    elif arch == "jumprelu":
        z = np.maximum(pre, 0) * (pre > np.maximum(t["threshold"], 0))
    else:
        raise SystemExit(f"unknown architecture {arch}")
    return z, z @ t["W_dec"] + t["b_dec"]


def rel(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


def saelens(out_dir, sae_path, heldout, features=None):
    cfg = json.load(open(os.path.join(out_dir, "cfg.json")))
    t = read_safetensors(os.path.join(out_dir, "sae_weights.safetensors"))
    p, arch, s, k = load_ours(sae_path)
    D, M = p["W_enc"].shape
    want_arch = {"relu": "standard", "topk": "topk"}.get(arch, "jumprelu")
    check(cfg["architecture"] == want_arch, f"architecture {cfg['architecture']} for {arch}")
    check(cfg["d_in"] == D and cfg["d_sae"] == M, "d_in / d_sae")
    for key, want in (("dtype", "float32"), ("normalize_activations", "none"), ("device", "cpu")):
        check(cfg.get(key) == want, f"cfg {key} = {cfg.get(key)}")
    check(cfg["metadata"]["sae_lens_version"] >= "6", "metadata.sae_lens_version < 6")
    shapes = {"W_enc": (D, M), "b_enc": (M,), "W_dec": (M, D), "b_dec": (D,)}
    if want_arch == "jumprelu":
        shapes["threshold"] = (M,)
    check(set(t) == set(shapes), f"tensors {sorted(t)}")
    for name, shape in shapes.items():
        check(t[name].shape == shape, f"{name} shape {t[name].shape}")
    with h5py.File(heldout, "r") as f:
        x = f["activations"][()].astype(np.float64)
    z0, r0 = our_codes(p, arch, s, k, x)
    z1, r1 = saelens_codes(cfg, t, x)
    ez, er = rel(z1, z0), rel(r1, r0)
    l0 = (z0 > 0).sum(1).mean()
    print(f"{arch}: rows {len(x)}, L0 {l0:.2f}, codes rel err {ez:.2e}, recon rel err {er:.2e}")
    check(l0 > 0, f"{arch}: nothing fires on the held-out rows (the comparison would be empty)")
    check(ez < 1e-5, f"{arch}: codes relative error {ez:.3e}")
    check(er < 1e-5, f"{arch}: reconstruction relative error {er:.3e}")
    if features:
        sp = read_safetensors(os.path.join(out_dir, "sparsity.safetensors"))
        with h5py.File(features, "r") as f:
            want = np.log10(f["count"][()] / float(f.attrs["n_tokens"]) + 1e-10)
        check(list(sp) == ["sparsity"] and sp["sparsity"].shape == (M,), "sparsity tensor")
        check(np.abs(sp["sparsity"] - want).max() < 1e-5, "sparsity values")


def window_rows(data, row):
    off = data["doc_offsets"][()]
    w = np.searchsorted(off, row, side="right") - 1
    return int(off[w]), int(off[w + 1])


def neuronpedia(out_dir, features, data_path, sae_path, per_batch):
    p, arch, s, k = load_ours(sae_path)
    fe = h5py.File(features, "r")
    data = h5py.File(data_path, "r")
    vocab = [v.decode() if isinstance(v, bytes) else v for v in data["vocab"][()]]
    tokens = data["tokens"][()]
    acts = data["activations"]
    M = fe["count"].shape[0]
    n_tok = float(fe.attrs["n_tokens"])
    top_row, top_val = fe["top/row"][()], fe["top/value"][()]
    q_row = fe["quantile/row"][()]
    hist = fe["hist"][()]
    has_lens = "lens" in fe
    files = sorted(os.listdir(out_dir))
    n_batches = (M + per_batch - 1) // per_batch
    check(files == sorted(f"batch-{i}.json" for i in range(n_batches)), f"batch files {files}")
    seen, n_acts, worst = [], 0, 0.0
    for i in range(n_batches):
        b = json.load(open(os.path.join(out_dir, f"batch-{i}.json")))
        for key in ("model_id", "layer", "sae_set", "features"):
            check(key in b, f"batch {i}: no {key}")
        for ft in b["features"]:
            j = ft["feature_index"]
            seen.append(j)
            check(abs(ft["frac_nonzero"] - fe["count"][j] / n_tok) < 1e-12, f"feature {j}: frac_nonzero")
            check(ft["freq_hist_data_bar_heights"] == [float(h) for h in hist[j]], f"feature {j}: histogram")
            check(len(ft["freq_hist_data_bar_values"]) == hist.shape[1], f"feature {j}: histogram values")
            if has_lens:
                ids = fe["lens/promote_id"][j]
                check(ft["pos_str"] == [vocab[t] for t in ids if t >= 0], f"feature {j}: pos_str")
                check(np.allclose(ft["pos_values"], fe["lens/promote"][j][ids >= 0], rtol=1e-6), f"feature {j}: pos_values")
                ids = fe["lens/suppress_id"][j]
                check(ft["neg_str"] == [vocab[t] for t in ids if t >= 0], f"feature {j}: neg_str")
            n_top = int((top_row[j] >= 0).sum())
            n_q = int(((q_row[j] >= 0) & (fe["quantile/value"][j] > 0)).sum())
            check(len(ft["activations"]) == n_top + n_q, f"feature {j}: {len(ft['activations'])} activations")
            rows = list(top_row[j][:n_top]) + [r for r, v in zip(q_row[j], fe["quantile/value"][j]) if r >= 0 and v > 0]
            for a, row in zip(ft["activations"], rows):
                lo, hi = window_rows(data, row)
                check(a["tokens"] == [vocab[t] for t in tokens[lo:hi]], f"feature {j}: tokens of row {row}")
                z, _ = our_codes(p, arch, s, k, acts[lo:hi].astype(np.float64))
                v = np.array(a["values"])
                err = np.abs(v - z[:, j]).max() / max(np.abs(z[:, j]).max(), 1e-30)
                worst = max(worst, err)
                check(err < 1e-5, f"feature {j}: per-token values of row {row}, rel err {err:.2e}")
                n_acts += 1
            vals = list(top_val[j][:n_top]) + [v for r, v in zip(q_row[j], fe["quantile/value"][j]) if r >= 0 and v > 0]
            for a, row, val in zip(ft["activations"], rows, vals):
                at = a["values"][row - window_rows(data, row)[0]]
                check(abs(at - val) <= 1e-5 * val, f"feature {j}: example value {val}, the JSON has {at} at its token")
            for a in ft["activations"][:n_top]:
                check(a["bin_min"] == -1 and a["bin_contains"] == -1, f"feature {j}: top group marks")
    check(sorted(seen) == list(range(M)), "feature indices do not cover 0..M-1 once")
    print(f"neuronpedia: {M} features in {n_batches} batches, {n_acts} activations, per-token rel err {worst:.2e}")


if __name__ == "__main__":
    if sys.argv[1] == "saelens":
        saelens(*sys.argv[2:6])
    else:
        neuronpedia(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]))
    sys.exit(1 if failures else 0)
