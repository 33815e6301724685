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
echo "h5py interop: 1 passed, 0 failed"
