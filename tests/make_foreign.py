#!/usr/bin/env python3
"""tests/make_foreign.py OUTDIR: published-SAE files written independently of
sae's code (numpy, json, struct, zipfile only; h5py for the activation and
reference files), for tests/test_foreign.c and tests/foreign_cli.sh.

From one seeded random SAE it writes each format as its own tools lay it out:
  SAELens folders (cfg.json + sae_weights.safetensors): standard, topk and
    jumprelu in the current cfg layout (model/hook under "metadata"), topk and
    standard in the older flat layout (hook_name, activation_fn_str,
    activation_fn_kwargs.k), a BF16 file with an F32 threshold, one with
    apply_b_dec_to_input false, one with normalize_activations
    expected_average_only_in (+ activation_scaler.json), one topk with
    rescale_acts_by_decoder_norm;
  a Gemma Scope params.npz (stored and deflated members, .npy v1 and v2);
  sparsify folders (cfg.json + sae.safetensors), F32 and F16.
Then acts.h5 (our activation schema: /activations float32 [N, d]) of held-out
rows, refs.h5 with, per SAE, the float64 encoding /NAME/codes [N, M] and
reconstruction /NAME/recon [N, d] by that format's own documented rule (on the
very values stored, e.g. bf16-rounded), cases.txt ("NAME PATH" lines), and
hostile/ files with hostile.txt ("PATH|PHRASE" lines) for the error tests.
Rows whose codes are ill-conditioned (a pre-activation within 1e-4 of a
JumpReLU threshold or of zero, a TopK k-th/k+1-th gap below 1e-4) are dropped:
float32 and float64 may then legitimately pick different latents.
Exits 77 when numpy or h5py is missing."""
import json
import os
import struct
import sys
import zipfile

try:
    import numpy as np
    import h5py
except ImportError as e:  # the tests skip
    print(f"SKIP: {e}")
    sys.exit(77)

D, M, K, N_CAND = 16, 64, 8, 600
rng = np.random.default_rng(1234)
out = sys.argv[1]
os.makedirs(out, exist_ok=True)

# --- the random SAE --------------------------------------------------------------------
W_dec = rng.standard_normal((M, D))
W_dec *= (rng.uniform(0.5, 2.0, M) / np.linalg.norm(W_dec, axis=1))[:, None]  # varied norms
W_enc = (W_dec.T * rng.uniform(0.5, 1.5, M)).astype(np.float32)  # [D, M]
W_dec = W_dec.astype(np.float32)
b_enc = (0.3 * rng.standard_normal(M)).astype(np.float32)
b_dec = (0.5 * rng.standard_normal(D)).astype(np.float32)
threshold = rng.uniform(0.2, 1.0, M).astype(np.float32)
X = (rng.standard_normal((N_CAND, D)) * 1.3 + 0.2).astype(np.float32)


# --- containers --------------------------------------------------------------------------
def to_bf16_bits(a):
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)  # round to nearest even


def bf16_value(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def stored(a, dtype):
    """The values a file of that dtype holds, as float64."""
    if dtype == "BF16":
        return bf16_value(to_bf16_bits(a)).astype(np.float64)
    if dtype == "F16":
        return a.astype(np.float16).astype(np.float64)
    return a.astype(np.float32).astype(np.float64)


def raw_bytes(a, dtype):
    if dtype == "BF16":
        return to_bf16_bits(a).astype("<u2").tobytes()
    if dtype == "F16":
        return a.astype("<f2").tobytes()
    if dtype == "F64":
        return a.astype("<f8").tobytes()
    return a.astype("<f4").tobytes()


def safetensors_bytes(tensors, metadata=None, hack=None):
    """tensors: list of (name, array, dtype). hack(header dict) may damage it."""
    header, blobs, off = {}, [], 0
    for name, a, dt in tensors:
        b = raw_bytes(a, dt)
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata is not None:
        header["__metadata__"] = metadata
    if hack:
        hack(header)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)  # the reference writer pads to 8 bytes
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def npy_bytes(a, version=1, descr=None, fortran=False):
    a = np.ascontiguousarray(a)
    descr = descr or a.dtype.str
    shape = f"({a.shape[0]},)" if a.ndim == 1 else "(" + ", ".join(str(s) for s in a.shape) + ")"
    d = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, "True" if fortran else "False", shape)
    pre = 10 if version == 1 else 12
    pad = -(pre + len(d) + 1) % 64
    d = (d + " " * pad + "\n").encode("latin1")
    head = b"\x93NUMPY" + bytes([version, 0]) + (struct.pack("<H", len(d)) if version == 1 else struct.pack("<I", len(d)))
    data = (a.T if fortran else a).tobytes(order="C")
    return head + d + data


def write_npz(path, members, deflate=False):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as z:
        for name, blob in members:
            z.writestr(name + ".npy", blob)


# --- each format's own encode rule, in float64 ------------------------------------------------
def topk_rows(pre, k):
    z = np.zeros_like(pre)
    idx = np.argsort(-pre, axis=1)[:, :k]
    np.put_along_axis(z, idx, np.take_along_axis(pre, idx, axis=1), axis=1)
    return z


def saelens_ref(x, p, arch, k=K, apply_b_dec=True, scale=1.0, rescale=False):
    """SAELens: process_sae_in (x*scale - b_dec*apply), hidden_pre = sae_in @ W_enc
    + b_enc; standard ReLU; topk: topk then ReLU; jumprelu: ReLU(pre) * (pre > thr);
    decode acts @ W_dec + b_dec, then / scale."""
    sae_in = x * scale - (p["b_dec"] if apply_b_dec else 0)
    pre = sae_in @ p["W_enc"] + p["b_enc"]
    norms = np.linalg.norm(p["W_dec"], axis=1)
    if arch == "topk" and rescale:
        pre = pre * norms
    if arch == "standard":
        z = np.maximum(pre, 0)
    elif arch == "topk":
        z = np.maximum(topk_rows(pre, k), 0)
    else:
        z = np.maximum(pre, 0) * (pre > p["threshold"])
    acts = z / norms if (arch == "topk" and rescale) else z
    recon = (acts @ p["W_dec"] + p["b_dec"]) / scale
    return z, recon, pre


def gemma_ref(x, p):
    """Gemma Scope's tutorial JumpReLUSAE: pre = x @ W_enc + b_enc (no b_dec
    subtracted), acts = (pre > threshold) * ReLU(pre), recon = acts @ W_dec + b_dec."""
    pre = x @ p["W_enc"] + p["b_enc"]
    z = (pre > p["threshold"]) * np.maximum(pre, 0)
    return z, z @ p["W_dec"] + p["b_dec"], pre


def sparsify_ref(x, p, k=K):
    """sparsify SparseCoder: ReLU(encoder(x - b_dec)), top k of that; decode
    top_acts @ W_dec + b_dec."""
    pre = np.maximum((x - p["b_dec"]) @ p["encoder.weight"].T + p["encoder.bias"], 0)
    z = topk_rows(pre, k)
    return z, z @ p["W_dec"] + p["b_dec"], pre


def well_conditioned(pre, kind, p=None, k=K):
    eps = 1e-4
    if kind == "jumprelu":
        return (np.abs(pre - p["threshold"]) > eps).all(1) & (np.abs(pre) > eps).all(1)
    if kind == "topk":
        s = -np.sort(-pre, axis=1)
        return (s[:, k - 1] - s[:, k] > eps) & (np.abs(s[:, k - 1]) > eps)
    return (np.abs(pre) > eps).all(1)


# --- the cases ----------------------------------------------------------------------------------
cases = []  # (name, path, x -> (codes, recon, pre), kind, p)


def saelens_case(name, arch, layout="current", dtypes=None, apply_b_dec=True, norm=None, rescale=False):
    dtypes = dtypes or {}
    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    raw = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}
    if arch == "jumprelu":
        raw["threshold"] = threshold
    tensors = [(n, a, dtypes.get(n, "F32")) for n, a in raw.items()]
    with open(os.path.join(folder, "sae_weights.safetensors"), "wb") as f:
        f.write(safetensors_bytes(tensors, {"format": "pt"}))
    p = {n: stored(a, dt) for n, a, dt in tensors}
    if layout == "current":
        cfg = {"architecture": arch, "d_in": D, "d_sae": M, "dtype": "float32", "device": "cpu",
               "apply_b_dec_to_input": apply_b_dec, "normalize_activations": norm or "none",
               "reshape_activations": "none",
               "metadata": {"model_name": "gpt2-small", "hook_name": "blocks.8.hook_resid_pre",
                            "hook_head_index": None, "prepend_bos": True, "dataset_path": "x"}}
        if arch == "topk":
            cfg["k"] = K
            if rescale:
                cfg["rescale_acts_by_decoder_norm"] = True
    else:  # the older flat layout: topk as an activation function of "standard"
        cfg = {"architecture": "standard", "d_in": D, "d_sae": M, "dtype": "float32",
               "model_name": "pythia-70m", "hook_name": "blocks.3.hook_resid_post", "hook_layer": 3,
               "activation_fn_str": "topk" if arch == "topk" else "relu",
               "activation_fn_kwargs": {"k": K} if arch == "topk" else {},
               "apply_b_dec_to_input": apply_b_dec, "normalize_activations": norm or "none",
               "finetuning_scaling_factor": False, "context_size": 128}
    scale = 1.0
    if norm == "expected_average_only_in":
        scale = 0.37
        with open(os.path.join(folder, "activation_scaler.json"), "w") as f:
            json.dump({"scaling_factor": scale}, f)
    with open(os.path.join(folder, "cfg.json"), "w") as f:
        json.dump(cfg, f)
    kind = arch
    cases.append((name, folder, lambda x: saelens_ref(x, p, arch, K, apply_b_dec, scale, rescale), kind, p))


saelens_case("saelens_standard", "standard")
saelens_case("saelens_topk", "topk")
saelens_case("saelens_jumprelu", "jumprelu")
saelens_case("saelens_old_topk", "topk", layout="old")
saelens_case("saelens_old_standard", "standard", layout="old")
saelens_case("saelens_bf16", "jumprelu", dtypes={"W_enc": "BF16", "b_enc": "BF16", "W_dec": "BF16", "b_dec": "BF16"})
saelens_case("saelens_no_bdec", "jumprelu", apply_b_dec=False)
saelens_case("saelens_norm", "topk", norm="expected_average_only_in")
saelens_case("saelens_rescale", "topk", rescale=True)

# Gemma Scope: params.npz as np.savez writes it (a zip of .npy), one stored, one deflated
for name, deflate in (("gemmascope", False), ("gemmascope_deflated", True)):
    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    thr64 = threshold.astype(np.float64)
    write_npz(os.path.join(folder, "params.npz"),
              [("W_enc", npy_bytes(W_enc)), ("W_dec", npy_bytes(W_dec, version=2)), ("b_enc", npy_bytes(b_enc)),
               ("b_dec", npy_bytes(b_dec.astype(np.float16))), ("threshold", npy_bytes(thr64, version=3))], deflate)
    pg = {"W_enc": stored(W_enc, "F32"), "W_dec": stored(W_dec, "F32"), "b_enc": stored(b_enc, "F32"),
          "b_dec": stored(b_dec, "F16"), "threshold": thr64.astype(np.float32).astype(np.float64)}
    cases.append((name, os.path.join(folder, "params.npz"), lambda x, pg=pg: gemma_ref(x, pg), "jumprelu", pg))

for name, dt in (("sparsify", "F32"), ("sparsify_f16", "F16")):
    folder = os.path.join(out, name, "layers.6")
    os.makedirs(folder, exist_ok=True)
    raw = [("encoder.weight", np.ascontiguousarray(W_enc.T), dt), ("encoder.bias", b_enc, dt),
           ("W_dec", W_dec, dt), ("b_dec", b_dec, dt)]
    with open(os.path.join(folder, "sae.safetensors"), "wb") as f:
        f.write(safetensors_bytes(raw, {"format": "pt"}))
    with open(os.path.join(folder, "cfg.json"), "w") as f:
        json.dump({"activation": "topk", "expansion_factor": 4, "normalize_decoder": True, "num_latents": M,
                   "k": K, "multi_topk": False, "skip_connection": False, "transcode": False, "d_in": D}, f)
    ps = {n: stored(a, d_) for n, a, d_ in raw}
    cases.append((name, folder, lambda x, ps=ps: sparsify_ref(x, ps), "topk", ps))

# --- held-out rows: well-conditioned for every SAE -------------------------------------------------
X64 = X.astype(np.float64)
keep = np.ones(N_CAND, bool)
for name, path, ref, kind, p in cases:
    _, _, pre = ref(X64)
    keep &= well_conditioned(pre, kind, p)
Xk = X[keep][:400]
assert len(Xk) >= 200, f"only {len(Xk)} well-conditioned rows"
with h5py.File(os.path.join(out, "acts.h5"), "w") as h:
    h.create_dataset("activations", data=Xk, chunks=(min(256, len(Xk)), D))
    h.create_dataset("tokens", data=(np.arange(len(Xk)) % 7).astype(np.int32))
    h.create_dataset("doc_offsets", data=np.array([0, len(Xk)], dtype=np.int64))
    h.create_dataset("vocab", data=[f"w{i}" for i in range(7)], dtype=h5py.string_dtype())
    h.attrs.update(d_model=D, model="gpt2-small", layer=8, hook="resid_pre", schema_version=1)
with h5py.File(os.path.join(out, "refs.h5"), "w") as h, open(os.path.join(out, "cases.txt"), "w") as c:
    h.create_dataset("x", data=Xk)
    for name, path, ref, kind, p in cases:
        z, recon, _ = ref(Xk.astype(np.float64))
        g = h.create_group(name)
        g.create_dataset("codes", data=z)
        g.create_dataset("recon", data=recon)
        c.write(f"{name} {path}\n")

# --- hostile files ----------------------------------------------------------------------------------
hd = os.path.join(out, "hostile")
os.makedirs(hd, exist_ok=True)
good = [("W_enc", W_enc, "F32"), ("b_enc", b_enc, "F32"), ("W_dec", W_dec, "F32"), ("b_dec", b_dec, "F32")]
cfg_std = {"architecture": "standard", "d_in": D, "d_sae": M, "apply_b_dec_to_input": True,
           "normalize_activations": "none", "metadata": {"model_name": "m", "hook_name": "h"}}
hostile = []


def hostile_saelens(name, blob, phrase, cfg=None):
    folder = os.path.join(hd, name)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "sae_weights.safetensors"), "wb") as f:
        f.write(blob)
    with open(os.path.join(folder, "cfg.json"), "w") as f:
        json.dump(cfg or cfg_std, f)
    hostile.append((folder, phrase))


def set_offsets(name, b, e):
    def hack(hdr):
        hdr[name]["data_offsets"] = [b, e]
    return hack


full = safetensors_bytes(good)
hostile_saelens("truncated", full[:-100], "past the end of the data")
hostile_saelens("header_past_end", struct.pack("<Q", 1 << 40) + full[8:], "past the end of the file")
hostile_saelens("tiny", b"\x05\x00", "too short")
nb_enc = W_enc.size * 4
hostile_saelens("overlap", safetensors_bytes(good, hack=set_offsets("b_enc", nb_enc - 8, nb_enc - 8 + M * 4)), "overlap")
hostile_saelens("end_before_begin", safetensors_bytes(good, hack=set_offsets("b_enc", nb_enc + 8, nb_enc)), "< begin")


def bad_shape(hdr):
    hdr["b_enc"]["shape"] = [M + 1]


hostile_saelens("bad_shape", safetensors_bytes(good, hack=bad_shape), "its shape needs")


def bad_dtype(hdr):
    hdr["b_dec"]["dtype"] = "Q7"


hostile_saelens("unknown_dtype", safetensors_bytes(good, hack=bad_dtype), "unknown dtype")
nan_enc = W_enc.copy()
nan_enc[3, 5] = np.nan
hostile_saelens("nan_weight", safetensors_bytes([("W_enc", nan_enc, "F32")] + good[1:]), "holds NaN")
hostile_saelens("d_mismatch", safetensors_bytes(good[:3] + [("b_dec", np.zeros(D + 1, np.float32), "F32")]),
                "the tensors disagree")
hostile_saelens("missing_threshold", full, "missing tensor threshold", dict(cfg_std, architecture="jumprelu"))
hostile_saelens("gated", full, "is not read", dict(cfg_std, architecture="gated"))
hostile_saelens("norm_no_factor", full, "activation_scaler.json", dict(cfg_std, normalize_activations="expected_average_only_in"))
hostile_saelens("bad_json", full, "not a JSON object", None)
with open(os.path.join(hd, "bad_json", "cfg.json"), "w") as f:
    f.write("{not json")

gm = [("W_enc", npy_bytes(W_enc)), ("W_dec", npy_bytes(W_dec)), ("b_enc", npy_bytes(b_enc)), ("b_dec", npy_bytes(b_dec))]
write_npz(os.path.join(hd, "npz_missing_threshold.npz"), gm)
hostile.append((os.path.join(hd, "npz_missing_threshold.npz"), "missing tensor threshold"))
write_npz(os.path.join(hd, "npz_fortran.npz"), [("W_enc", npy_bytes(W_enc, fortran=True))] + gm[1:] +
          [("threshold", npy_bytes(threshold))])
hostile.append((os.path.join(hd, "npz_fortran.npz"), "Fortran order"))
write_npz(os.path.join(hd, "npz_big_endian.npz"), gm[:3] + [("b_dec", npy_bytes(b_dec.astype(">f4")))] +
          [("threshold", npy_bytes(threshold))])
hostile.append((os.path.join(hd, "npz_big_endian.npz"), "has dtype"))
short = npy_bytes(W_dec)[:-40]
write_npz(os.path.join(hd, "npz_short.npz"), [gm[0], ("W_dec", short)] + gm[2:] + [("threshold", npy_bytes(threshold))])
hostile.append((os.path.join(hd, "npz_short.npz"), "data bytes"))
with open(os.path.join(hd, "npz_truncated.npz"), "wb") as f:
    f.write(open(os.path.join(out, "gemmascope", "params.npz"), "rb").read()[:3000])
hostile.append((os.path.join(hd, "npz_truncated.npz"), "zip"))
# sparsify: a skip connection is refused, not silently dropped
folder = os.path.join(hd, "sparsify_skip")
os.makedirs(folder, exist_ok=True)
with open(os.path.join(folder, "sae.safetensors"), "wb") as f:
    f.write(safetensors_bytes([("encoder.weight", np.ascontiguousarray(W_enc.T), "F32"), ("encoder.bias", b_enc, "F32"),
                               ("W_dec", W_dec, "F32"), ("b_dec", b_dec, "F32")]))
with open(os.path.join(folder, "cfg.json"), "w") as f:
    json.dump({"k": K, "num_latents": M, "d_in": D, "skip_connection": True}, f)
hostile.append((folder, "skip_connection"))
with open(os.path.join(out, "hostile.txt"), "w") as f:
    for path, phrase in hostile:
        f.write(f"{path}|{phrase}\n")
print(f"wrote {len(cases)} SAEs, {len(Xk)} held-out rows, {len(hostile)} hostile files into {out}")
