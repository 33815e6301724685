#!/usr/bin/env bash
# tests/capture_real.sh SAE: the real path on the shared models: capture
# Japanese and English documents with both models, train an SAE on the result,
# evaluate it, and read the file back with h5py where it is importable.
# Skips (exit 77) when ../shared is absent.
set -eu
SAE=$1
SHARED=${SAE_SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
if [ ! -f "$SHARED/models/jaen-6m/model.bin" ] || [ ! -f "$SHARED/corpora/ja_train.txt" ]; then
    echo "SKIP: $SHARED/models or $SHARED/corpora not found (set SAE_SHARED)"
    exit 77
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/saereal.XXXXXX")
trap 'rm -rf "$T"' EXIT
# a labelled JSON Lines corpus: the first paragraphs of each language, four documents each
emit() { # FILE LABEL: JSON-escape paragraphs 1-40, 41-80, ... into documents
    awk -v label="$2" 'NF {
        gsub(/\\/, "\\\\"); gsub(/"/, "\\\"")
        doc = doc (doc == "" ? "" : "\\n") $0; n++
        if (n % 40 == 0) { printf "{\"text\": \"%s\", \"label\": \"%s\"}\n", doc, label; doc = ""; docs++ }
        if (docs == 4) exit }' "$1"
}
{ emit "$SHARED/corpora/ja_train.txt" ja; emit "$SHARED/corpora/en_train.txt" en; } >"$T/c.jsonl"
[ "$(wc -l <"$T/c.jsonl")" = 8 ]
J=(--model "$SHARED/models/jaen-6m/model.bin" --tokenizer "$SHARED/models/jaen-6m/tokenizer.bin")
S=(--model "$SHARED/models/stories260K/stories260K.bin" --tokenizer "$SHARED/models/stories260K/tok512.bin")
"$SAE" capture "${J[@]}" --corpus "$T/c.jsonl" --layer 3 --out "$T/jaen.h5" 2>/dev/null
"$SAE" capture "${S[@]}" --corpus "$T/c.jsonl" --layer 2 --site resid_pre --dtype f16 --out "$T/stories.h5" 2>/dev/null
"$SAE" info "$T/jaen.h5" | grep -q "d=256"
"$SAE" info "$T/stories.h5" | grep -q "d=64, float16"
"$SAE" train --data "$T/jaen.h5" --out "$T/sae.h5" --latents 1024 --k 16 --batch 512 >/dev/null 2>&1
fvu=$("$SAE" eval --sae "$T/sae.h5" --data "$T/jaen.h5" | sed 's/.*"fvu":\([0-9.e-]*\).*/\1/')
awk -v f="$fvu" 'BEGIN { exit !(f < 0.5) }' || { echo "FAIL: SAE on captured activations: fvu $fvu"; exit 1; }
for p in /usr/bin/python3 "$(command -v python3)"; do
    if "$p" -c "import h5py" 2>/dev/null; then
        "$p" - "$T/jaen.h5" <<'PYEOF'
import sys, h5py
f = h5py.File(sys.argv[1])
labels = list(f["doc_labels"].asstr()[:])
assert set(labels) == {"ja", "en"}, set(labels)
vocab = f["vocab"].asstr()[:]
assert vocab[1] == "<s>" and vocab[13] == "\\n" and "ん" in set(vocab), vocab[:20]
assert f["unembed"].shape == (4096, 256) and f["final_norm"].shape == (256,)
assert f["activations"].shape[0] == f["tokens"].shape[0] == f["doc_offsets"][-1]
assert f.attrs["model"] == "jaen-6m/model.bin" and f.attrs["hook"] == "resid_post" and f.attrs["layer"] == 3
assert 1 not in set(f["tokens"][:]), "BOS rows must not be written"
PYEOF
        break
    fi
done
echo "capture_real: 1 passed, 0 failed (SAE fvu $fvu)"
