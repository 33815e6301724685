#!/usr/bin/env bash
# tests/search_cli.sh SAE: `sae search` end to end on a small file written by
# h5py (labelled corpus documents of two windows each, tokens, vocabulary,
# /unembed and /predictions): every search kind in text and --json (parsed
# with python's json, NaN and Infinity refused), the universe, sorts, pooling
# and permutations; then bad input, each one `sae: error:` line.
# Without h5py the test is skipped (exit 77).
set -u
S=$1
. "$(dirname "$0")/expect.sh"
need_h5py
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=2 HDF5_USE_FILE_LOCKING=FALSE
cd "$T"


"$PY" - <<'EOF'
import h5py, numpy as np
rng = np.random.default_rng(5)
docs, win, L, d = 32, 2, 40, 16
vocab = ["t%d" % i for i in range(30)] + ["ん", "さん", "ません"]
V = len(vocab)
n = docs * win * L
tok = rng.integers(0, 30, n).astype(np.int32)
labels, acts = [], rng.normal(0, 1, (n, d)).astype(np.float32)
planted = rng.normal(0, 1, d).astype(np.float32)
planted /= np.linalg.norm(planted)
for w in range(docs * win):
    ja = (w // win) % 2 == 1
    labels.append("ja" if ja else "en")
    rows = slice(w * L, (w + 1) * L)
    if ja:
        u = rng.random(L)
        t = tok[rows]
        t[u < 0.1] = 30
        t[(u >= 0.1) & (u < 0.13)] = 31
        t[(u >= 0.13) & (u < 0.15)] = 32
        tok[rows] = t
        acts[rows] += 1.5  # a dense "Japanese" shift
for r in range(n - 1):
    if tok[r + 1] == 30 and (r + 1) % L != 0:
        acts[r] += 4 * planted
with h5py.File("d.h5", "w") as f:
    f["activations"] = acts
    f["tokens"] = tok
    f["doc_offsets"] = np.arange(0, n + 1, L, dtype=np.int64)
    f["doc_source"] = np.repeat(np.arange(docs), win).astype(np.int64)
    s = h5py.string_dtype("utf-8")
    f.create_dataset("doc_labels", data=np.array(labels, dtype=object), dtype=s)
    f.create_dataset("vocab", data=np.array(vocab, dtype=object), dtype=s)
    f["unembed"] = rng.normal(0, 1, (V, d)).astype(np.float32)
    K = 3
    ids = np.stack([rng.permutation(V)[:K] for _ in range(n)]).astype(np.int32)
    p = np.sort(rng.dirichlet(np.ones(K + 1), n)[:, :K], axis=1)[:, ::-1]
    f["predictions/token"] = ids
    f["predictions/logprob"] = np.log(p).astype(np.float32)
    f.attrs["d_model"] = d
    f.attrs["schema_version"] = 1
with h5py.File("bare.h5", "w") as f:
    f["activations"] = acts[:500]
    f.attrs["d_model"] = d
    f.attrs["schema_version"] = 1
EOF
[ -f d.h5 ] || { echo "FAIL: could not write the data"; exit 1; }
expect_ok "$S" train --data d.h5 --out s.h5 --latents 64 --k 4 --tokens 60000 --batch 1024 --threads 2
[ -f s.h5 ] || { echo "FAIL: train: $(cat err.txt)"; exit 1; }
B=(--sae s.h5 --data d.h5)

# check_json FILE PYTHON: parse FILE (NaN/Infinity refused) as j, then run the assertions
check_json() {
    "$PY" - "$1" "$2" <<'EOF' || fail "json check on $1: $2"
import json, sys
def bad(c): raise ValueError("non-JSON number " + c)
j = json.load(open(sys.argv[1]), parse_constant=bad)
exec(sys.argv[2])
EOF
}

# --- token search ---------------------------------------------------------------
expect_ok "$S" search "${B[@]}" --token-regex 'ん$' --offset 1
grep -q "matched 3 vocabulary entries" out.txt || fail "token: matched entries not listed: $(head -5 out.txt)"
grep -q "'ん' " out.txt && grep -q "lift" out.txt || fail "token: counts or lift missing: $(head -5 out.txt)"
expect_ok "$S" search "${B[@]}" --token-regex 'ん$' --offset 1 --exclude-regex 'ま|さ' --json
cp out.txt tok.json
check_json tok.json '
q = j["query"]
assert q["kind"] == "token" and q["regex"] == "ん$" and q["exclude"] == "ま|さ" and q["offset"] == 1, q
assert q["sort"] == "f1" and q["pool"] == "none" and q["min_count"] == 5, q
assert j["matched"]["entries"] == 1 and j["matched"]["tokens"][0]["token"] == "ん", j["matched"]
u = j["universe"]
assert u["positions"] == 2560 and u["documents"] == 32, u
assert abs(u["base_rate"] - u["positive"] / (u["positive"] + u["negative"])) < 1e-12
assert j["matched"]["tokens"][0]["count"] == u["positive"]
r = j["rows"][0]
for k in ("auroc", "precision", "recall", "lift", "f1", "fires", "mean_pos", "var_ratio"): assert k in r, k
assert abs(r["lift"] - r["precision"] / u["base_rate"]) < 1e-9 * r["lift"]
assert all(j["rows"][i]["f1"] >= j["rows"][i + 1]["f1"] for i in range(len(j["rows"]) - 1))
assert j["null"] is None
'
expect_ok "$S" search "${B[@]}" --token-regex 'ん$' --offset 1 --where label=ja --where doc!=1 --sort lift --min-count 10 --json
check_json out.txt '
u = j["universe"]
assert u["positions"] == 1280 - 80 and u["documents"] == 15, u
assert j["query"]["where"] == ["label=ja", "doc!=1"] and j["query"]["sort"] == "lift"
assert all(r["fires"] >= 10 for r in j["rows"])
assert all(j["rows"][i]["lift"] >= j["rows"][i + 1]["lift"] for i in range(len(j["rows"]) - 1))
'

# --- contrasts --------------------------------------------------------------------
expect_ok "$S" search "${B[@]}" --contrast ja:en
grep -q "by chance (1000 shuffles" out.txt || fail "contrast: no null summary: $(head -5 out.txt)"
grep -q "doc [0-9]* (window [0-9]*)" out.txt || fail "contrast: no top document: $(head -8 out.txt)"
expect_ok "$S" search "${B[@]}" --contrast ja:en --pool mean --permutations 300 --seed 4 --sort q --json
check_json out.txt '
q = j["query"]
assert q["pool"] == "mean" and q["permutations"] == 300 and q["seed"] == 4 and q["sort"] == "q", q
assert q["labels"] == ["ja", "en"]
u = j["universe"]
assert u["compared"] == "documents" and u["positive"] == 16 and u["negative"] == 16, u
n = j["null"]
assert n["permutations"] == 300 and n["best_median"] <= n["best_p95"] <= 1, n
assert abs(n["min_p"] - 1 / 301) < 1e-12
qs = [r["q"] for r in j["rows"]]
assert qs == sorted(qs), qs
for r in j["rows"]:
    assert 1 / 301 - 1e-12 <= r["p"] <= 1 and r["q"] >= r["p"] - 1e-12
    assert r["top_document"] is None or r["top_document"]["window"] // 2 == r["top_document"]["doc"]
'
expect_ok "$S" search "${B[@]}" --contrast ja:en --pool none --json
check_json out.txt '
assert j["universe"]["compared"] == "positions" and j["null"] is None
assert j["rows"][0]["p"] is None and j["rows"][0]["q"] is None
'
# 2 + 2 documents cannot resolve q < 0.05 among the features: said so
expect_ok "$S" search "${B[@]}" --contrast ja:en --where doc=0 --where doc=1 --where doc=2 --where doc=3
grep -q "only 6 distinct labellings" out.txt || fail "underpowered contrast not flagged: $(head -6 out.txt)"

# --- predictions, logit ---------------------------------------------------------------
expect_ok "$S" search "${B[@]}" --predicted-regex 'ん$' --json
check_json out.txt '
assert j["query"]["kind"] == "predicted" and j["query"]["sort"] == "corr"
assert j["matched"]["entries"] == 3
c = [r["corr"] for r in j["rows"] if r["corr"] is not None]
assert c == sorted(c, reverse=True)
'
expect_ok "$S" search "${B[@]}" --logit-regex 'ん$' --exclude-regex '^さ' --json
check_json out.txt '
assert j["matched"]["entries"] == 2 and j["universe"] is None
assert "logit_score" in j["rows"][0]
'

# --- bad input ----------------------------------------------------------------------------
expect_usage "unknown key 'lang'" "$S" search "${B[@]}" --token-regex a --where lang=ja
expect_usage "no window is labelled 'fr' (labels present: 'en', 'ja')" "$S" search "${B[@]}" --token-regex a --where label=fr
expect_usage "expects KEY=VALUE" "$S" search "${B[@]}" --token-regex a --where label
expect_usage "matches no corpus document" "$S" search "${B[@]}" --token-regex a --where doc=99
expect_usage "--sort" "$S" search "${B[@]}" --token-regex a --sort bogus
expect_usage "q needs --permutations" "$S" search "${B[@]}" --token-regex a --sort q
expect_usage "pools the documents of a --contrast" "$S" search "${B[@]}" --token-regex a --pool max
expect_usage "has none to shuffle" "$S" search "${B[@]}" --token-regex a --permutations 100
expect_usage "not exchangeable" "$S" search "${B[@]}" --contrast ja:en --pool none --permutations 100
expect_usage "--logit-regex reads no positions" "$S" search "${B[@]}" --logit-regex a --where label=ja
expect_usage "takes out all 3 vocabulary entries" "$S" search "${B[@]}" --token-regex 'ん$' --exclude-regex .
expect_error "--contrast needs /doc_labels" "$S" search --sae s.h5 --data bare.h5 --contrast a:b
expect_error "--predicted-regex needs /predictions" "$S" search --sae s.h5 --data bare.h5 --predicted-regex a
expect_usage "no document is labelled 'fr'" "$S" search "${B[@]}" --contrast fr:en
expect_usage "--permutations" "$S" search "${B[@]}" --contrast ja:en --permutations lots

if [ "$fails" -ne 0 ]; then echo "$fails failure(s)"; exit 1; fi
echo "search_cli: all cases passed"
