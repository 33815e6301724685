#!/usr/bin/env bash
# tests/h5py_interop.sh SAE: schema v1 is readable and writable by h5py with no
# custom code, both ways, float16 included. Skips (exit 77) where h5py is absent.
set -eu
SAE=$1
PY=$(command -v python3)
for p in /usr/bin/python3 "$PY"; do
    if "$p" -c "import h5py, numpy" 2>/dev/null; then PY=$p; break; fi
    PY=
done
if [ -z "$PY" ]; then
    echo "SKIP: h5py/numpy not importable (apt-get install python3-h5py to run this test)"
    exit 77
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/saeh5py.XXXXXX")
trap 'rm -rf "$T"' EXIT
"$SAE" synth --out "$T/f16.h5" --n 5000 --d 16 --features 32 --active 3 --dtype f16 2>/dev/null
"$SAE" synth --out "$T/f32.h5" --n 5000 --d 16 --features 32 --active 3 2>/dev/null
"$SAE" train --data "$T/f32.h5" --out "$T/sae.h5" --latents 64 --k 4 --batch 256 2>/dev/null
"$PY" - "$T" <<'PYEOF'
import sys, h5py, numpy as np
t = sys.argv[1]
a16 = h5py.File(f"{t}/f16.h5")["activations"]
a32 = h5py.File(f"{t}/f32.h5")["activations"]
assert a16.dtype == np.float16 and a32.dtype == np.float32, (a16.dtype, a32.dtype)
assert np.allclose(a16[:].astype(np.float32), a32[:], rtol=1e-3, atol=1e-3)
f = h5py.File(f"{t}/f32.h5")
assert f["tokens"].dtype == np.int32 and f["doc_offsets"].dtype == np.int64
assert f["doc_offsets"][-1] == 5000 and f["truth/features"].shape == (32, 16)
assert f["vocab"].asstr()[7].endswith("ん"), f["vocab"].asstr()[7]
assert f.attrs["d_model"] == 16 and f.attrs["schema_version"] == 1
s = h5py.File(f"{t}/sae.h5")
assert s["W_enc"].shape == (16, 64) and s["W_dec"].shape == (64, 16) and s.attrs["arch"] == "topk"
rng = np.random.default_rng(0)
with h5py.File(f"{t}/py.h5", "w") as h:
    h.create_dataset("activations", data=rng.standard_normal((3000, 16)).astype(np.float16), chunks=(1024, 16))
    h.create_dataset("tokens", data=(np.arange(3000) % 10).astype(np.int32))
    h.create_dataset("doc_offsets", data=np.array([0, 1000, 3000], dtype=np.int64))
    h.create_dataset("vocab", data=[f"w{i}" for i in range(9)] + ["みかん"], dtype=h5py.string_dtype())
    h.create_dataset("doc_labels", data=["ja", "en"], dtype=h5py.string_dtype())
    h.attrs.update(d_model=16, model="py", layer=6, hook="resid_post", schema_version=1)
PYEOF
"$SAE" info "$T/py.h5" | grep -q "3000 rows x d=16, float16"
"$SAE" train --data "$T/py.h5" --out "$T/py_sae.h5" --latents 64 --k 4 --batch 256 2>/dev/null
"$SAE" eval --sae "$T/py_sae.h5" --data "$T/py.h5" | grep -q '"fvu"'

# SAE files of the v2 architectures written by h5py, by hand: sae eval's L0 and
# FVU must equal numpy's float64 evaluation of each inference rule
"$PY" - "$T" <<'PYEOF'
import sys, h5py, numpy as np
t = sys.argv[1]
rng = np.random.default_rng(1)
d, M, s = 16, 64, 0.5
x = h5py.File(f"{t}/py.h5")["activations"][:].astype(np.float64)
W_enc = rng.standard_normal((d, M)) * 0.3
W_dec = rng.standard_normal((M, d)) * 0.3
b_enc = rng.standard_normal(M) * 0.1
b_dec = rng.standard_normal(d) * 0.1
thr = {"jumprelu": np.abs(rng.standard_normal(M)) * 0.4, "batchtopk": np.array([0.35])}
for arch, th in thr.items():
    with h5py.File(f"{t}/py_{arch}.h5", "w") as h:
        for name, v in dict(W_enc=W_enc, b_enc=b_enc, W_dec=W_dec, b_dec=b_dec, threshold=th).items():
            h.create_dataset(name, data=v.astype(np.float32))
        h.attrs.update(format="sae", format_version=2, arch=arch, d_model=d, n_latents=M,
                       input_scale=s)
        if arch == "jumprelu":
            h.attrs.update(target_l0=8, bandwidth=0.05, threshold_init=-1.0)
        else:
            h.attrs.update(k=8, aux_k=8, aux_coef=1 / 32, threshold_lr=0.05)
    f = lambda a: a.astype(np.float32).astype(np.float64)  # the file holds float32
    pre = (x * s - f(b_dec)) @ f(W_enc) + f(b_enc)
    z = np.where((pre > f(th)) & (pre > 0), pre, 0.0)
    xhat = (z @ f(W_dec) + f(b_dec)) / s
    fvu = ((x - xhat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    np.savetxt(f"{t}/want_{arch}.txt", [(z > 0).sum(1).mean(), fvu])
with h5py.File(f"{t}/py_bad.h5", "w") as h:  # a threshold of the wrong shape
    for name, v in dict(W_enc=W_enc, b_enc=b_enc, W_dec=W_dec, b_dec=b_dec, threshold=np.ones(3)).items():
        h.create_dataset(name, data=v.astype(np.float32))
    h.attrs.update(format="sae", format_version=2, arch="jumprelu", d_model=d, n_latents=M,
                   input_scale=s, target_l0=8, bandwidth=0.05, threshold_init=-1.0)
PYEOF
for arch in jumprelu batchtopk; do
    "$SAE" eval --sae "$T/py_$arch.h5" --data "$T/py.h5" >"$T/ev.json"
    "$PY" - "$T" "$arch" <<'PYEOF'
import sys, json, numpy as np
t, arch = sys.argv[1], sys.argv[2]
got = json.load(open(f"{t}/ev.json"))
l0, fvu = np.loadtxt(f"{t}/want_{arch}.txt")
# float32 products against float64: only entries within ~1e-6 of a threshold
# can flip, so L0 agrees to 1e-3 per row on average; FVU to 1e-4 relative
assert abs(got["l0"] - l0) < 1e-3, (arch, got["l0"], l0)
assert abs(got["fvu"] - fvu) < 1e-4 * fvu, (arch, got["fvu"], fvu)
PYEOF
done
"$SAE" eval --sae "$T/py_bad.h5" --data "$T/py.h5" 2>"$T/err" && exit 1
grep -q "sae: error: .*py_bad.h5: /threshold has the wrong shape" "$T/err"
[ "$(wc -l <"$T/err")" = 1 ]
echo "h5py interop: 4 passed, 0 failed"
