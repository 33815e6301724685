#!/usr/bin/env bash
# tests/predict_cli.sh SAE [MAKE_BAD_FILES]: `sae capture --predictions`, end
# to end on stories260K:
#   - the /predictions layout read with h5py (shapes, dtypes, attribute k,
#     sorted rows, ids < V, logsumexp of the top-K <= 0), and the stored
#     predictions against an independent float64 numpy forward of the model
#     written here from the llama2.c file format;
#   - bad input gives one `sae: error:` line: --predictions 0, a huge
#     --predictions, K above the vocabulary, a JSON Lines record with "lab",
#     one without "text";
#   - a record's extra keys round-trip into /doc_meta.
# Skipped (exit 77) without ../shared/models or without h5py and numpy.
set -u
S=$1
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED=${SAE_SHARED:-$HERE/../../shared}
M=$SHARED/models/stories260K
if [ ! -f "$M/stories260K.bin" ]; then
    echo "SKIP: $M not found (set SAE_SHARED to the shared folder)"
    exit 77
fi
. "$HERE/expect.sh"
need_h5py
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=2 HDF5_USE_FILE_LOCKING=FALSE
cd "$T"


cat >c.jsonl <<'EOF'
{"text": "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.", "label": "en", "id": 17, "source": {"book": "tiny", "page": 3}}
{"text": "The dog was happy. He ran to the tree and sat down under it."}
EOF
CAP=("$S" capture --model "$M/stories260K.bin" --tokenizer "$M/tok512.bin" --layer 2)
expect_ok "${CAP[@]}" --corpus c.jsonl --seq-len 24 --predictions 5 --out p.h5

"$PY" - "$M/stories260K.bin" p.h5 <<'EOF' || fail "layout or values of /predictions (see above)"
import sys, numpy as np, h5py
model, path = sys.argv[1], sys.argv[2]
f = h5py.File(path, "r")
g = f["predictions"]
tok, lp = g["token"][...], g["logprob"][...]
N, V = f["activations"].shape[0], f["vocab"].shape[0]
assert g.attrs["k"] == 5 and tok.shape == (N, 5) and lp.shape == (N, 5), (tok.shape, lp.shape)
assert tok.dtype == np.int32 and lp.dtype == np.float32
assert f.attrs["schema_version"] == 1
assert (tok >= 0).all() and (tok < V).all()
assert (np.diff(lp, axis=1) <= 0).all(), "rows not sorted"
lse = np.log(np.exp(lp.astype(np.float64)).sum(axis=1))
assert (lse <= 1e-6).all(), lse.max()
meta = [m.decode() for m in f["doc_meta"][...]]
src = f["doc_source"][...]
import json
want = [json.dumps({"id": 17, "source": {"book": "tiny", "page": 3}}, separators=(",", ":")), ""]
assert [want[s] for s in src] == meta, (meta, src)

# an independent float64 forward, from the llama2.c format (see data/llama.h)
raw = open(model, "rb").read()
dim, hid, L, nh, nkv, v, seq = np.frombuffer(raw[:28], dtype=np.int32)
w = np.frombuffer(raw[28:], dtype=np.float32).astype(np.float64)
Vm, hs, kv = abs(v), dim // nh, dim * nkv // nh
o = 0
def take(*shape):
    global o
    n = int(np.prod(shape)); a = w[o:o + n].reshape(shape); o += n; return a
emb = take(Vm, dim); rms_att = take(L, dim); wq = take(L, dim, dim); wk = take(L, kv, dim)
wv = take(L, kv, dim); wo = take(L, dim, dim); rms_ffn = take(L, dim); w1 = take(L, hid, dim)
w2 = take(L, dim, hid); w3 = take(L, hid, dim); rms_final = take(dim)
take(seq, hs)  # freq_cis
wcls = emb if v > 0 else take(Vm, dim)
def rms(x, g): return x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5) * g
def rope(a, T):
    a = a.copy(); i = np.arange(0, a.shape[1], 2)
    ang = np.arange(T)[:, None] / 10000.0 ** ((i % hs) / hs)[None, :]
    c, s = np.cos(ang), np.sin(ang); x0, x1 = a[:, i].copy(), a[:, i + 1].copy()
    a[:, i], a[:, i + 1] = x0 * c - x1 * s, x0 * s + x1 * c
    return a
def forward(ids):
    T = len(ids); x = emb[ids]
    for l in range(L):
        xb = rms(x, rms_att[l]); q, k, vv = xb @ wq[l].T, xb @ wk[l].T, xb @ wv[l].T
        q, k = rope(q, T), rope(k, T); att = np.zeros((T, dim))
        for h in range(nh):
            kh = (h // (nh // nkv)) * hs
            sc = q[:, h*hs:(h+1)*hs] @ k[:, kh:kh+hs].T / np.sqrt(hs)
            sc[np.triu_indices(T, 1)] = -np.inf
            p = np.exp(sc - sc.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
            att[:, h*hs:(h+1)*hs] = p @ vv[:, kh:kh+hs]
        x = x + att @ wo[l].T
        xb = rms(x, rms_ffn[l]); a = xb @ w1[l].T
        x = x + (a / (1 + np.exp(-a)) * (xb @ w3[l].T)) @ w2[l].T
    return rms(x, rms_final) @ wcls.T
off, toks = f["doc_offsets"][...], f["tokens"][...]
worst, swaps = 0.0, 0
for d in range(len(off) - 1):
    ids = np.concatenate([[1], toks[off[d]:off[d + 1]]])  # BOS, then the window's rows
    lg = forward(ids)[1:]
    ref = lg - (lg.max(1, keepdims=True) + np.log(np.exp(lg - lg.max(1, keepdims=True)).sum(1, keepdims=True)))
    for i in range(len(lg)):
        r = off[d] + i
        order = sorted(range(Vm), key=lambda t: (-ref[i, t], t))[:5]
        e = max(np.abs(lp[r] - ref[i, order]).max(), np.abs(lp[r] - ref[i, tok[r]]).max())
        worst = max(worst, e); swaps += int(list(tok[r]) != order)
# tolerance: float32 forward against float64, as test_llama measures it
# (2.2e-6 of the largest |logit| ~ 20), with room: 1e-3
print(f"numpy float64 reference: {N} rows, worst logprob error {worst:.2e}, {swaps} rows with near-tie swaps")
assert worst < 1e-3, worst
EOF

# a file without extra keys has no /doc_meta
printf '%s\n' '{"text": "A cat sat."}' >plain.jsonl
expect_ok "${CAP[@]}" --corpus plain.jsonl --out plain.h5
"$PY" -c "import h5py,sys; f=h5py.File('plain.h5','r'); sys.exit('doc_meta' in f or 'predictions' in f)" \
    || fail "plain.h5 has /doc_meta or /predictions"

# bad input: one error line each, and no output file
expect_usage "--predictions: must be in 1..1024" "${CAP[@]}" --corpus c.jsonl --predictions 0 --out bad.h5
expect_usage "--predictions: must be in 1..1024" "${CAP[@]}" --corpus c.jsonl --predictions 100000 --out bad.h5
expect_usage "--predictions" "${CAP[@]}" --corpus c.jsonl --predictions 99999999999999 --out bad.h5
expect_usage "the model's vocabulary (512)" "${CAP[@]}" --corpus c.jsonl --predictions 600 --out bad.h5
printf '%s\n' '{"text": "fine"}' '{"text": "a", "lab": "en"}' >lab.jsonl
expect_error 'line 2: key "lab" looks like a misspelling of "label"' "${CAP[@]}" --corpus lab.jsonl --out bad.h5
printf '%s\n' '{"body": "no text here", "id": 4}' >notext.jsonl
expect_error 'line 1: the record has no "text" key' "${CAP[@]}" --corpus notext.jsonl --out bad.h5
grep -qF '"body", "id"' err.txt || fail "the keys of the record are not named: $(cat err.txt)"
[ -e bad.h5 ] && fail "a refused capture left bad.h5"

if [ "$fails" -ne 0 ]; then echo "$fails failure(s)"; exit 1; fi
echo "predict_cli: all passed"
