#!/usr/bin/env bash
# tests/model_cli.sh SAE: `sae eval --model` and `sae generate --sae` end to
# end on the two real models of ../shared (stories260K, jaen-6m), against
# tests/ref_model.py, an independent float64 numpy forward of the model with
# the SAE spliced in (it reads the llama2.c file and our .h5 itself):
#   1. a small topk SAE trained here on each model: ce_clean, ce_sae, ce_zero,
#      kl_sae, kl_zero, ce_score, kl_score, fvu, mse, l0, tokens, windows, and
#      the same per label with --by-label (JSON Lines with "en"/"ja"/none);
#   2. each edit (--ablate, --steer, --clamp, alone and together): ce_edit,
#      kl_edit, ce_edit_delta against the reference's intervened run;
#   3. other sites (mlp_out, attn_out) with make_sae.py random SAEs of other
#      architectures (jumprelu, batchtopk, relu) calibrated on the site's rows;
#   4. --replace-error (ce_sae = ce_clean), an identity SAE (ce_score 1,
#      fvu 0) and a zero SAE (ce_sae = ce_zero);
#   5. greedy generate, clean and edited ids, against the reference's;
#   6. bad input: one `sae: error:` line each, with the right exit code.
# The windows the reference scores are read from a `sae capture --keep-bos`
# file of the same corpus and --seq-len (what eval --model cuts, spec 14).
# Skipped (exit 77) without ../shared/models or without h5py and numpy.
set -u
S=$1
case $S in /*) ;; *) S=$PWD/$S ;; esac  # the test runs in a temporary folder
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED=${SAE_SHARED:-$HERE/../../shared}
SM=$SHARED/models/stories260K
JM=$SHARED/models/jaen-6m
CORP=$SHARED/corpora
for f in "$SM/stories260K.bin" "$SM/tok512.bin" "$JM/model.bin" "$JM/tokenizer.bin" \
         "$CORP/en_train.txt" "$CORP/ja_train.txt"; do
    if [ ! -f "$f" ]; then
        echo "SKIP: $f not found (the shared folder ../shared is missing; set SAE_SHARED to it)"
        exit 77
    fi
done
. "$HERE/expect.sh"
need_h5py
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=2 HDF5_USE_FILE_LOCKING=FALSE
# idle OpenMP threads sleep instead of spinning: on a busy 2-core machine
# (ctest -j2) spinning made each of generate's many small parallel regions
# wait for a descheduled peer (a 40-step generate --sae took 5..25 s instead
# of 0.2 s, the whole test 66 s instead of 31 s)
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
cd "$T"
START=$SECONDS
# the reference on one BLAS thread (its matrices are small; see its docstring)
REF=(env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 "$PY" "$HERE/ref_model.py")
MKSAE=("$PY" "$HERE/make_sae.py")

# --- chk.py: comparisons (all differences are logged to diffs.jsonl) ---------
cat >chk.py <<'EOF'
import json, math, sys
import numpy as np

# Tolerances. The C forward is float32, the reference float64: site values
# agree to ~1e-6 relative (acts_max_rel_diff, measured 1e-6..2e-6), logits to
# a few 1e-6; CE and KL are means of such values accumulated in double, so
# they agree to ~1e-7 relative (measured). 1e-4 relative keeps two to three
# orders of margin, yet a single position spliced wrongly (or BOS spliced,
# or one window more or less) moves ce by > 1e-3 on these ~350..600 scored
# tokens. The scores are ratios of differences of such means, so they get
# an absolute 1e-4. KL values compared relatively are kept >= 1e-3 (the
# edits are chosen strong): a KL's absolute float32 noise is ~1e-8 (an edit
# that changes nothing reads -1e-8), which would be too large a share of a
# 1e-5 KL.
REL, ABS = 1e-4, 1e-4
RELKEYS = ("ce_clean", "ce_sae", "ce_zero", "kl_sae", "kl_zero", "fvu", "mse")
SCORES = ("ce_score", "kl_score")
bad = []


def log(run, q, c, r, rel):
    d = abs(c - r)
    with open("diffs.jsonl", "a") as f:
        f.write(json.dumps({"run": run, "q": q, "abs": d,
                            "rel": d / abs(r) if r != 0 else (0.0 if d == 0 else math.inf),
                            "kind": "rel" if rel else "abs"}) + "\n")


def near(run, q, c, r, tol, rel=True):
    if c is None or r is None:
        if c is not r:
            bad.append(f"{run}: {q}: C {c} but the reference {r}")
        return
    log(run, q, c, r, rel)
    lim = tol * abs(r) if rel else tol
    if not (abs(c - r) <= lim):
        bad.append(f"{run}: {q}: C {c!r} reference {r!r} (diff {abs(c - r):.3g} > {lim:.3g})")


def group(run, c, r, edit):
    for q in RELKEYS:
        near(run, q, c.get(q), r.get(q), REL)
    for q in SCORES:
        near(run, q, c.get(q), r.get(q), ABS, rel=False)
    # l0: the codes of float32 and float64 pre-activations agree except at a
    # near-tie of a cut (topk's k-th value, a threshold); make_sae.py places
    # its thresholds in gaps of the very rows scored here, and a trained SAE's
    # near-ties are rare: at most 1 code in 100 rows may flip
    near(run, "l0", c.get("l0"), r.get("l0"), 0.01 / max(r.get("l0") or 1, 1) + 1e-12)
    for q in ("tokens", "windows"):
        if c.get(q) != r.get(q):
            bad.append(f"{run}: {q}: C {c.get(q)} but the reference {r.get(q)}")
    if edit and ("ce_intervened" not in r or "kl_intervened" not in r):
        bad.append(f"{run}: the reference ran no edit")
    elif edit:
        near(run, "ce_edit", c.get("ce_edit"), r.get("ce_intervened"), REL)
        near(run, "kl_edit", c.get("kl_edit"), r.get("kl_intervened"), REL)
        # ce_edit_delta = ce_edit - ce_clean: the error of each term adds
        lim = REL * (abs(r["ce_intervened"]) + abs(r["ce_clean"]))
        near(run, "ce_edit_delta", c.get("ce_edit_delta"),
             r["ce_intervened"] - r["ce_clean"], lim, rel=False)
        if not r["kl_intervened"] > 1e-3:
            bad.append(f"{run}: the edit is too weak to be compared (kl {r['kl_intervened']})")
    elif "ce_edit" in c:
        bad.append(f"{run}: ce_edit without an edit")


def cmp(run, cpath, rpath, layer, site, edit, by_label, replace_error="false"):
    c, r = json.load(open(cpath)), json.load(open(rpath))
    edit, by_label = edit == "1", by_label == "1"
    group(run, c, r, edit)
    if c.get("layer") != int(layer) or c.get("site") != site:
        bad.append(f"{run}: layer/site {c.get('layer')}/{c.get('site')}, want {layer}/{site}")
    if c.get("replace_error") is not (replace_error == "true"):
        bad.append(f"{run}: replace_error {c.get('replace_error')}, want {replace_error}")
    if edit and not (isinstance(c.get("edits"), str) and c["edits"]):
        bad.append(f"{run}: no \"edits\" string")
    if r.get("acts_max_rel_diff") is not None:
        # the self-test of the reference: the capture's float32 site values
        # against its float64 forward (measured ~1e-6; 1e-4 with margin)
        near(run, "acts_max_rel_diff", r["acts_max_rel_diff"], 0.0, 1e-4, rel=False)
    if by_label:
        cl = {("" if k == "(none)" else k): v for k, v in c.get("by_label", {}).items()}
        rl = r["by_label"]
        if sorted(cl) != sorted(rl):
            bad.append(f"{run}: labels {sorted(cl)} but the reference has {sorted(rl)}")
        for k in sorted(set(cl) & set(rl)):
            group(f"{run}[{k or '(none)'}]", cl[k], rl[k], edit)
        if sum(v["windows"] for v in cl.values()) != c["windows"]:
            bad.append(f"{run}: the labels' windows do not add up to {c['windows']}")
    elif "by_label" in c:
        bad.append(f"{run}: by_label without --by-label")


def pick(sae_path, acts_path):
    """Three features that fire often on the eval rows, and edit amounts."""
    import os
    sys.path.insert(0, os.environ["MC_TESTS"])
    import h5py, ref_model
    s = ref_model.SAE(sae_path)
    x = h5py.File(acts_path, "r")["activations"][()].astype(np.float64)
    z = s.encode(x)
    order = np.argsort(-(z > 0).mean(axis=0), kind="stable")
    f1, f2, f3 = (int(v) for v in order[:3])
    zmax = float(z[:, f2].max())
    # ablate f1; clamp f2 to twice its largest code; steer f3 by 3x (eval)
    # and 12x (generate) its largest code: all strong enough to move KL
    a3 = float(z[:, f3].max())
    print(f1, f2, f3, f"{2 * zmax:.3f}", f"{3 * a3:.3f}", f"{12 * a3:.3f}")


def gen(run, cpath, rpath, plen, prompt_ids, want_change):
    c, r = json.load(open(cpath)), json.load(open(rpath))
    plen = int(plen)
    ids = [int(t) for t in prompt_ids.split(",")]
    if c["clean"]["ids"][:plen] != ids:
        bad.append(f"{run}: clean ids start {c['clean']['ids'][:plen]}, not the prompt {ids}")
    if c["clean"]["ids"] != r["clean"]:
        bad.append(f"{run}: clean ids {c['clean']['ids']} but the reference {r['clean']}")
    if "intervened" in r:
        e = c.get("edited", {}).get("ids")
        if e != r["intervened"]:
            bad.append(f"{run}: edited ids {e} but the reference {r['intervened']}")
        if e is not None and e[:plen] != ids:
            bad.append(f"{run}: edited ids do not start with the prompt")
        if want_change == "1" and e == c["clean"]["ids"]:
            bad.append(f"{run}: the steer did not change the continuation")
        if not c.get("edits"):
            bad.append(f"{run}: no \"edits\" in the output")
    for part in ("clean", "edited"):
        if part in c and not isinstance(c[part].get("continuation"), str):
            bad.append(f"{run}: {part}: no continuation string")
    top = c["clean"].get("top")
    if top is not None:
        # --top-logits: one list per generated token, most probable first;
        # greedy picks the first entry
        gen_ids = c["clean"]["ids"][plen:]
        if len(top) != len(gen_ids):
            bad.append(f"{run}: {len(top)} top lists for {len(gen_ids)} generated tokens")
        for t, g in zip(top, gen_ids):
            ps = [e["p"] for e in t]
            if t[0]["id"] != g or ps != sorted(ps, reverse=True) or not 0 < sum(ps) <= 1 + 1e-6:
                bad.append(f"{run}: top list {t} does not fit the greedy pick {g}")
                break


def summary():
    worst = {}
    n = 0
    for line in open("diffs.jsonl"):
        d = json.loads(line)
        n += 1
        k = (d["q"], d["kind"])
        if k not in worst or d[d["kind"]] > worst[k][0]:
            worst[k] = (d[d["kind"]], d["run"])
    print(f"model_cli: {n} figures compared with the float64 reference; the largest differences:")
    for (q, kind), (v, run) in sorted(worst.items()):
        print(f"  {q:18s} max {kind} diff {v:.2e}  ({run})")


cmd = sys.argv[1]
if cmd == "cmp":
    cmp(*sys.argv[2:])
elif cmd == "pick":
    pick(sys.argv[2], sys.argv[3])
elif cmd == "gen":
    gen(*sys.argv[2:])
elif cmd == "summary":
    summary()
for b in bad:
    print("  " + b)
sys.exit(1 if bad else 0)
EOF
chk() { "$PY" chk.py "$@" || fail "chk $1 $2 (see above)"; }
export MC_TESTS=$HERE

# --- corpora ------------------------------------------------------------------
# stories260K: a training text (one Gutenberg document, cut into windows) and
# a small labelled JSON Lines eval corpus with an unlabelled record, a record
# of one token (a window BOS + 1: no predicted position, one site row) and a
# long one (several windows, the last a short one)
head -c 24000 "$CORP/en_train.txt" >s_train.txt
cat >s_eval.jsonl <<'EOF'
{"text": "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog. One day, she saw a big red ball under a tree. She ran to get it, but the ball rolled away down the hill. Lily was sad, but her mom gave her a hug and they went home to eat cake.", "label": "a"}
{"text": "Tom had a toy car. He liked to push it on the floor. His sister Sue wanted to play too. Tom said no at first, but then he shared. They played together all day and were very happy.", "label": "b"}
{"text": "The sun was hot. A bird sat on a branch and sang a song. A cat looked up at the bird. The bird flew away to the sky. The cat went back to sleep in the warm sun.", "label": "a"}
{"text": "Ben and Mia went to the beach. They made a big sand castle with a flag on top. A wave came and knocked it down. They laughed and built another one, even bigger than before."}
{"text": "The", "label": "b"}
EOF
# jaen-6m: paragraphs of the shared corpora, JSON Lines labelled "en" / "ja"
"$PY" - "$CORP" <<'EOF' || fail "building the jaen corpora"
import json, sys
c = sys.argv[1]
en = [l for l in open(c + "/en_train.txt", encoding="utf-8").read().split("\n") if 150 < len(l) < 260]
ja = [l for l in open(c + "/ja_train.txt", encoding="utf-8").read().split("\n") if 60 < len(l) < 110]
def rec(t, lab=None):
    return json.dumps({"text": t, "label": lab} if lab else {"text": t}, ensure_ascii=False) + "\n"
with open("j_train.jsonl", "w", encoding="utf-8") as f:
    for i in range(12):
        f.write(rec(en[i], "en") + rec(ja[i], "ja"))
with open("j_eval.jsonl", "w", encoding="utf-8") as f:
    for i in range(1000, 1004):
        f.write(rec(en[i], "en") + rec(ja[i], "ja"))
    f.write(rec(en[1010]))
EOF

SCAP=("$S" capture --model "$SM/stories260K.bin" --tokenizer "$SM/tok512.bin" --seq-len 64)
JCAP=("$S" capture --model "$JM/model.bin" --tokenizer "$JM/tokenizer.bin" --seq-len 64)
SEV=("$S" eval --model "$SM/stories260K.bin" --tokenizer "$SM/tok512.bin" --corpus s_eval.jsonl --seq-len 64)
JEV=("$S" eval --model "$JM/model.bin" --tokenizer "$JM/tokenizer.bin" --corpus j_eval.jsonl --seq-len 64)
SREF=("${REF[@]}" eval --model "$SM/stories260K.bin" --acts s_kb.h5)
JREF=("${REF[@]}" eval --model "$JM/model.bin" --acts j_kb.h5)

# run NAME CMD...: CMD's stdout to NAME.json
run() { local n=$1; shift; timeout 120 "$@" >"$n.json" 2>"$n.err" || fail "$n: $* -> rc=$?: $(head -c 600 "$n.err")"; }

# --- 1-4 on stories260K -------------------------------------------------------
run cap "${SCAP[@]}" --corpus s_train.txt --layer 2 --out s_train.h5
run cap "${SCAP[@]}" --corpus s_eval.jsonl --layer 2 --keep-bos --out s_kb.h5
run cap "${SCAP[@]}" --corpus s_eval.jsonl --layer 2 --out s_L2.h5
run cap "${SCAP[@]}" --corpus s_eval.jsonl --layer 1 --site mlp_out --out s_L1m.h5
run train "$S" train --data s_train.h5 --out s_sae.h5 --latents 256 --k 16 --tokens 60000 --batch 2048
read -r F1 F2 F3 V2 A3 G3 < <("$PY" chk.py pick s_sae.h5 s_L2.h5)
echo "stories260K: features $F1 $F2 $F3, clamp $F2:$V2, steer $F3:$A3 (generate $F3:$G3)"

# the SAE's provenance (layer 2 resid_post) is the default site
run s_main "${SEV[@]}" --sae s_sae.h5 --by-label
run s_main_ref "${SREF[@]}" --sae s_sae.h5 --layer 2 --site resid_post --by-label
chk cmp s_main s_main.json s_main_ref.json 2 resid_post 0 1
# the same rows as `sae eval --data` on the capture without BOS: the same
# float32 site values through the same encoder, so to float32 rounding of
# the sums (1e-5 relative)
run s_data "$S" eval --sae s_sae.h5 --data s_L2.h5
"$PY" - <<'EOF' || fail "eval --model vs eval --data reconstruction figures"
import json
m, d = json.load(open("s_main.json")), json.load(open("s_data.json"))
for q in ("fvu", "mse", "l0"):
    assert abs(m[q] - d[q]) <= 1e-5 * abs(d[q]), (q, m[q], d[q])
EOF
# batch size: windows are whole within a batch; changing it regroups the
# forward's matrix products only (float32 rounding: 1e-5 relative)
run s_batch "${SEV[@]}" --sae s_sae.h5 --batch 70
"$PY" - <<'EOF' || fail "eval --model --batch 70 differs from the default batch"
import json
a, b = json.load(open("s_main.json")), json.load(open("s_batch.json"))
assert a["tokens"] == b["tokens"] and a["windows"] == b["windows"]
for q in ("ce_clean", "ce_sae", "ce_zero", "kl_sae", "kl_zero", "fvu", "l0"):
    assert abs(a[q] - b[q]) <= 1e-5 * abs(a[q]), (q, a[q], b[q])
EOF
# each edit alone, then all three together
run s_abl "${SEV[@]}" --sae s_sae.h5 --ablate "$F1"
run s_abl_ref "${SREF[@]}" --sae s_sae.h5 --layer 2 --site resid_post --ablate "$F1"
chk cmp s_ablate s_abl.json s_abl_ref.json 2 resid_post 1 0
run s_ste "${SEV[@]}" --sae s_sae.h5 --steer "$F3:$A3"
run s_ste_ref "${SREF[@]}" --sae s_sae.h5 --layer 2 --site resid_post --steer "$F3:$A3"
chk cmp s_steer s_ste.json s_ste_ref.json 2 resid_post 1 0
run s_cla "${SEV[@]}" --sae s_sae.h5 --clamp "$F2:$V2"
run s_cla_ref "${SREF[@]}" --sae s_sae.h5 --layer 2 --site resid_post --clamp "$F2:$V2"
chk cmp s_clamp s_cla.json s_cla_ref.json 2 resid_post 1 0
run s_all "${SEV[@]}" --sae s_sae.h5 --clamp "$F2:$V2" --ablate "$F1" --steer "$F3:-$A3" --by-label
run s_all_ref "${SREF[@]}" --sae s_sae.h5 --layer 2 --site resid_post --clamp "$F2:$V2" \
    --ablate "$F1" --steer "$F3:-$A3" --by-label
chk cmp s_all_edits s_all.json s_all_ref.json 2 resid_post 1 1

# another site and architecture: a jumprelu SAE at mlp_out of block 1,
# thresholds calibrated on the very rows scored (its provenance is the site)
"${MKSAE[@]}" random --d 64 --m 192 --k 12 --arch jumprelu --scale 2 --seed 3 --data s_L1m.h5 \
    --model stories260K --layer 1 --site mlp_out --out s_jump.h5 || fail "make_sae.py jumprelu"
read -r J1 J2 J3 JV2 JA3 JG3 < <("$PY" chk.py pick s_jump.h5 s_L1m.h5)
run s_jmp "${SEV[@]}" --sae s_jump.h5 --ablate "$J1" --steer "$J3:$JA3"
run s_jmp_ref "${SREF[@]}" --sae s_jump.h5 --layer 1 --site mlp_out --ablate "$J1" --steer "$J3:$JA3"
chk cmp s_jumprelu_mlp_out s_jmp.json s_jmp_ref.json 1 mlp_out 1 0

# --replace-error: xhat + (x - xhat) is x up to float32 rounding (~1e-7
# relative of x), which moves CE by ~1e-7 relative and KL by ~1e-10
run s_rep "${SEV[@]}" --sae s_sae.h5 --replace-error
"$PY" - <<'EOF' || fail "--replace-error: ce_sae != ce_clean or kl_sae > 0"
import json
c = json.load(open("s_rep.json"))
assert c["replace_error"] is True
assert abs(c["ce_sae"] - c["ce_clean"]) <= 1e-6 * c["ce_clean"], (c["ce_sae"], c["ce_clean"])
assert abs(c["kl_sae"]) < 1e-6, c["kl_sae"]
# the reconstruction figures still describe the SAE itself
m = json.load(open("s_main.json"))
assert abs(c["fvu"] - m["fvu"]) <= 1e-6 * m["fvu"], (c["fvu"], m["fvu"])
EOF
# identity SAE (scale 1/4, a power of two: xhat = x exactly) at attn_out of
# block 0, no provenance so --layer/--site given: ce_sae = ce_clean exactly
# up to the summation, so ce_score 1 within 1e-5 and fvu < 1e-6
"${MKSAE[@]}" identity --d 64 --scale 0.25 --out s_id.h5 || fail "make_sae.py identity"
run s_id "${SEV[@]}" --sae s_id.h5 --layer 0 --site attn_out
"$PY" - <<'EOF' || fail "identity SAE: ce_score != 1 or fvu != 0"
import json
c = json.load(open("s_id.json"))
assert c["layer"] == 0 and c["site"] == "attn_out", (c["layer"], c["site"])
assert abs(c["ce_score"] - 1) <= 1e-5, c["ce_score"]
assert abs(c["kl_sae"]) < 1e-6 and abs(c["kl_score"] - 1) <= 1e-5, (c["kl_sae"], c["kl_score"])
assert c["fvu"] < 1e-6 and c["mse"] < 1e-9, (c["fvu"], c["mse"])
assert 63.5 <= c["l0"] <= 64, c["l0"]  # z = [relu(xs), relu(-xs)]: d codes a row
EOF
# zero SAE at block 4 with no --site (default resid_post): xhat = 0 exactly,
# the same forward as the zero ablation, so ce_score 0 within 1e-6
"${MKSAE[@]}" zero --d 64 --scale 3 --out s_zero.h5 || fail "make_sae.py zero"
run s_zero "${SEV[@]}" --sae s_zero.h5 --layer 4
"$PY" - <<'EOF' || fail "zero SAE: ce_sae != ce_zero"
import json
c = json.load(open("s_zero.json"))
assert c["layer"] == 4 and c["site"] == "resid_post", (c["layer"], c["site"])
assert abs(c["ce_score"]) <= 1e-6, c["ce_score"]
assert abs(c["ce_sae"] - c["ce_zero"]) <= 1e-6 * c["ce_zero"], (c["ce_sae"], c["ce_zero"])
assert abs(c["kl_score"]) <= 1e-6 and abs(c["kl_sae"] - c["kl_zero"]) <= 1e-6 * c["kl_zero"]
# xhat = 0: the error is all of x, fvu = sum x^2 / sum (x - mean)^2 >= 1
assert c["fvu"] >= 1 - 1e-6 and c["mse"] > 0, (c["fvu"], c["mse"])
EOF

# --- 1-4 on jaen-6m -----------------------------------------------------------
run cap "${JCAP[@]}" --corpus j_train.jsonl --layer 3 --out j_train.h5
run cap "${JCAP[@]}" --corpus j_eval.jsonl --layer 3 --keep-bos --out j_kb.h5
run cap "${JCAP[@]}" --corpus j_eval.jsonl --layer 3 --out j_L3.h5
run cap "${JCAP[@]}" --corpus j_eval.jsonl --layer 1 --site attn_out --out j_L1a.h5
run train "$S" train --data j_train.h5 --out j_sae.h5 --latents 512 --k 16 --tokens 30000 --batch 2048
read -r K1 K2 K3 KV2 KA3 KG3 < <("$PY" chk.py pick j_sae.h5 j_L3.h5)
echo "jaen-6m: features $K1 $K2 $K3, clamp $K2:$KV2, steer $K3:$KA3 (generate $K3:$KG3)"
# all three edits at once, per label ("en", "ja", and the unlabelled record)
run j_main "${JEV[@]}" --sae j_sae.h5 --by-label --ablate "$K1" --clamp "$K2:$KV2" --steer "$K3:$KA3"
run j_main_ref "${JREF[@]}" --sae j_sae.h5 --layer 3 --site resid_post --by-label \
    --ablate "$K1" --clamp "$K2:$KV2" --steer "$K3:$KA3"
chk cmp j_main j_main.json j_main_ref.json 3 resid_post 1 1
# batchtopk (one threshold) at attn_out of block 1, --layer/--site given
# over the SAE's provenance (none)
"${MKSAE[@]}" random --d 256 --m 512 --k 20 --arch batchtopk --seed 5 --data j_L1a.h5 \
    --out j_btk.h5 || fail "make_sae.py batchtopk"
read -r B1 B2 B3 BV2 BA3 BG3 < <("$PY" chk.py pick j_btk.h5 j_L1a.h5)
run j_btk "${JEV[@]}" --sae j_btk.h5 --layer 1 --site attn_out --clamp "$B2:$BV2"
run j_btk_ref "${JREF[@]}" --sae j_btk.h5 --layer 1 --site attn_out --clamp "$B2:$BV2"
chk cmp j_batchtopk_attn_out j_btk.json j_btk_ref.json 1 attn_out 1 0
# relu at the same site with --replace-error
"${MKSAE[@]}" random --d 256 --m 512 --k 20 --arch relu --seed 6 --data j_L1a.h5 \
    --model jaen-6m --layer 1 --site attn_out --out j_relu.h5 || fail "make_sae.py relu"
run j_rep "${JEV[@]}" --sae j_relu.h5 --replace-error
"$PY" - <<'EOF' || fail "jaen-6m --replace-error: ce_sae != ce_clean or kl_sae > 0"
import json
c = json.load(open("j_rep.json"))
assert c["replace_error"] is True and c["layer"] == 1 and c["site"] == "attn_out"
assert abs(c["ce_sae"] - c["ce_clean"]) <= 1e-6 * c["ce_clean"], (c["ce_sae"], c["ce_clean"])
assert abs(c["kl_sae"]) < 1e-6, c["kl_sae"]
assert 0 < c["l0"] < 512 and c["fvu"] > 0, (c["l0"], c["fvu"])
EOF

# --- 5. generate ----------------------------------------------------------------
# gen_case NAME MODEL TOK SAE LAYER SITE PROMPT STEPS WANT_CHANGE [EDITS...]:
# the prompt's ids from `sae tokenize` (BOS first), the C continuation and
# the reference's from those ids
gen_case() {
    local n=$1 model=$2 tok=$3 sae=$4 layer=$5 site=$6 prompt=$7 steps=$8 change=$9
    shift 9
    "$S" tokenize --tokenizer "$tok" "$prompt" >"$n.tok" 2>"$n.err" || fail "$n: sae tokenize"
    local plen ids
    plen=$(head -n 1 "$n.tok" | awk '{print $1}')
    ids=$(tail -n +2 "$n.tok" | awk '{print $1}' | paste -sd, -)
    run "$n" "$S" generate --model "$model" --tokenizer "$tok" --prompt "$prompt" --steps "$steps" \
        --sae "$sae" "$@" --json --top-logits 3
    run "${n}_ref" "${REF[@]}" generate --model "$model" --sae "$sae" --layer "$layer" --site "$site" \
        --prompt-ids "$ids" --steps "$steps" "$@"
    chk gen "$n" "$n.json" "${n}_ref.json" "$plen" "$ids" "$change"
}
P1="Once upon a time, there was a"
gen_case s_gen_steer "$SM/stories260K.bin" "$SM/tok512.bin" s_sae.h5 2 resid_post "$P1" 40 1 --steer "$F3:$G3"
gen_case s_gen_ablate "$SM/stories260K.bin" "$SM/tok512.bin" s_sae.h5 2 resid_post "$P1" 40 0 --ablate "$F1"
gen_case s_gen_clamp "$SM/stories260K.bin" "$SM/tok512.bin" s_sae.h5 2 resid_post "$P1" 40 0 --clamp "$F2:$V2"
gen_case s_gen_jump "$SM/stories260K.bin" "$SM/tok512.bin" s_jump.h5 1 mlp_out "$P1" 30 0 --ablate "$J1" --steer "$J3:$JA3"
P2="吾輩は猫である。名前は"
gen_case j_gen_steer "$JM/model.bin" "$JM/tokenizer.bin" j_sae.h5 3 resid_post "$P2" 24 1 --steer "$K3:$KG3"
gen_case j_gen_ablate "$JM/model.bin" "$JM/tokenizer.bin" j_sae.h5 3 resid_post "$P2" 24 0 --ablate "$K1" --clamp "$K2:$KV2"

# --- 6. bad input ---------------------------------------------------------------
SG=("$S" generate --model "$SM/stories260K.bin" --tokenizer "$SM/tok512.bin" --prompt "Once upon" --steps 8)
expect_error "the SAE has d=64" "${JEV[@]}" --sae s_sae.h5
expect_error "the SAE has d=64" "$S" generate --model "$JM/model.bin" --tokenizer "$JM/tokenizer.bin" \
    --prompt "hi" --steps 4 --sae s_sae.h5 --steer 1:1
expect_usage "layer 5 is out of range" "${SEV[@]}" --sae s_sae.h5 --layer 5
expect_usage "layer 5 is out of range" "${SG[@]}" --sae s_sae.h5 --layer 5 --steer 1:1
for g in SEV SG; do
    eval "C=(\"\${$g[@]}\")"
    expect_usage "feature 256 is out of range" "${C[@]}" --sae s_sae.h5 --steer 256:1
    expect_usage "feature 256 is out of range" "${C[@]}" --sae s_sae.h5 --ablate 256
    expect_usage "feature 256 is out of range" "${C[@]}" --sae s_sae.h5 --clamp 256:1
    expect_usage "--ablate" "${C[@]}" --sae s_sae.h5 --ablate -1
    for bad in 5 x:1 5:abc 5:inf 5:nan :3 5:; do
        expect_usage "'$bad'" "${C[@]}" --sae s_sae.h5 --steer "$bad"
    done
    expect_usage "--clamp" "${C[@]}" --sae s_sae.h5 --clamp 5:-1
    expect_usage "edited twice" "${C[@]}" --sae s_sae.h5 --ablate 5 --steer 5:1
    expect_usage "edited twice" "${C[@]}" --sae s_sae.h5 --clamp 5:1 --clamp 5:2
    expect_usage "does not record which layer" "${C[@]}" --sae s_id.h5 --steer 1:1
done
expect_usage "give the edits" "${SG[@]}" --sae s_sae.h5
# a choice left to be decided later (--site: from the SAE's provenance) prints as auto in --help
for cmd in eval generate; do
    "$S" $cmd --help >help.txt 2>&1 || fail "sae $cmd --help failed"
    grep -q -- '--site .*\[auto\]' help.txt || fail "sae $cmd --help: --site default not shown as auto: $(grep -- --site help.txt)"
done
expect_usage "need --sae" "${SG[@]}" --steer 5:1
expect_usage "need --sae" "${SG[@]}" --layer 2
expect_usage "not both" "$S" eval --sae s_sae.h5 --data s_L2.h5 --model "$SM/stories260K.bin" \
    --tokenizer "$SM/tok512.bin" --corpus s_eval.jsonl
expect_usage "--sae" "${SEV[@]}" --steer 5:1
expect_usage "go with --model" "$S" eval --sae s_sae.h5 --data s_L2.h5 --steer 5:1
expect_usage "--corpus" "$S" eval --sae s_sae.h5 --model "$SM/stories260K.bin" --tokenizer "$SM/tok512.bin"
expect_usage "--tokenizer" "$S" eval --sae s_sae.h5 --model "$SM/stories260K.bin" --corpus s_eval.jsonl
: >empty.txt
expect_error "no token to score" "${SEV[@]/s_eval.jsonl/empty.txt}" --sae s_sae.h5
printf '%s\n' '{"text": "The"}' '{"text": ""}' >tiny.jsonl
expect_error "no token to score" "${SEV[@]/s_eval.jsonl/tiny.jsonl}" --sae s_sae.h5

chk summary
echo "model_cli: $((SECONDS - START)) s"
if [ "$fails" -ne 0 ]; then echo "$fails failure(s)"; exit 1; fi
echo "model_cli: all passed"
