#!/usr/bin/env bash
# scripts/example_search.sh [DIR]: the README's search example, end to end, on
# jaen-6m block 3 (needs ../shared). About 6 minutes on 2 cores; files go to
# DIR (default example/, ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=../shared
[ -d "$SHARED/models/jaen-6m" ] || { echo "example_search: $SHARED/models/jaen-6m is missing" >&2; exit 77; }
OUT=${1:-example}
mkdir -p "$OUT"
SAE=build/sae
M=$SHARED/models/jaen-6m
python3 tools/make_probe_corpus.py "$SHARED/corpora" "$OUT/probe.jsonl"
$SAE capture --model $M/model.bin --tokenizer $M/tokenizer.bin --corpus "$OUT/probe.jsonl" --layer 3 \
    --predictions 10 --out "$OUT/probe.h5"
$SAE train --data "$OUT/probe.h5" --out "$OUT/probe_sae.h5" --latents 4096 --k 32 --tokens 6M
$SAE features --sae "$OUT/probe_sae.h5" --data "$OUT/probe.h5" --out "$OUT/probe_feat.h5"
S=($SAE search --sae "$OUT/probe_sae.h5" --data "$OUT/probe.h5" --features "$OUT/probe_feat.h5" --top 8)
set -x
$SAE info "$OUT/probe.h5"
"${S[@]}" --token-regex '^ん$' --offset 1 --sort auroc
"${S[@]}" --token-regex '^ん$' --offset 1 --where label=ja
"${S[@]}" --predicted-regex '^ん$' --where label=ja
"${S[@]}" --attribute-regex '^ん$' --where label=ja
"${S[@]}" --contrast desperate:calm --permutations 40000
