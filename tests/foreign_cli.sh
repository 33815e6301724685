#!/usr/bin/env bash
# tests/foreign_cli.sh SAE: published SAEs (SAELens, sparsify, Gemma Scope)
# through the command line, on files tests/make_foreign.py writes
# independently (numpy/json/struct/zipfile):
#   sae import of every SAE, then test_foreign DIR compares the imported files'
#   codes with the source's, and both with the numpy float64 references;
#   sae info and sae eval on each source; every hostile file: exactly one
#   `sae: error:` line and exit 1, from import, info and eval alike.
set -u
SAE=$(realpath "$1")
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/expect.sh"
need_h5py
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
"$PY" "$HERE/make_foreign.py" "$T/f" >/dev/null || { echo "SKIP: make_foreign.py failed"; exit 77; }
F=$T/f
mkdir -p "$F/imported"

# a file inside the folder names it too
as_file() { if [ -d "$1" ]; then echo "$1/cfg.json"; else echo "$1"; fi; }

while read -r name path; do
    expect_ok "$SAE" import "$path" --out "$F/imported/$name.h5"
    expect_ok "$SAE" info "$path"
    grep -q "d_model        16" out.txt || fail "info $name: no d_model line: $(head -c 300 out.txt)"
    expect_ok "$SAE" info "$F/imported/$name.h5"
    grep -q "imported from" out.txt || fail "info of imported $name: no provenance: $(head -c 300 out.txt)"
    expect_ok "$SAE" eval --sae "$(as_file "$path")" --data "$F/acts.h5"
    grep -q '"fvu"' out.txt || fail "eval $name: no fvu"
    cp out.txt eval_file.txt
    expect_ok "$SAE" eval --sae "$path" --data "$F/acts.h5" # the folder itself, as downloaded
    cmp -s out.txt eval_file.txt || fail "eval $name: the folder and its cfg.json differ"
done <"$F/cases.txt"
# the folder as --sae in the other commands
for s in saelens_jumprelu gemmascope; do
    expect_ok "$SAE" features --sae "$F/$s" --data "$F/acts.h5" --out "$T/feat_$s.h5"
    expect_ok "$SAE" search --sae "$F/$s" --data "$F/acts.h5" --token-regex '^w[13]$' --min-count 1
    expect_ok "$SAE" viz trace --sae "$F/$s" --data "$F/acts.h5" --doc 0 --top 4 --out "$T/trace_$s.png"
    [ -s "$T/trace_$s.png" ] || fail "viz trace with $s wrote no figure"
done
expect_ok "$SAE" viz trace --sae "$F/sparsify/layers.6" --data "$F/acts.h5" --doc 0 --window 0 --top 4 --out "$T/trace_sp.png"
# a published SAE handed on to SAELens: its folder exported, and the export evaluating as the source
expect_ok "$SAE" export "$F/gemmascope" --format saelens --out "$T/gs_sl"
expect_ok "$SAE" eval --sae "$F/gemmascope" --data "$F/acts.h5"
cp out.txt eval_gs.txt
expect_ok "$SAE" eval --sae "$T/gs_sl" --data "$F/acts.h5"
"$PY" -c "
import json, sys
a, b = json.load(open('eval_gs.txt')), json.load(open('out.txt'))
sys.exit(0 if all(abs(a[k] - b[k]) <= 1e-5 * (1 + abs(a[k])) for k in ('fvu', 'l0', 'cossim')) else 1)" ||
    fail "gemmascope exported for SAELens does not evaluate as itself"
# an imported SAELens SAE keeps its full hook name through export
expect_ok "$SAE" export "$F/imported/saelens_old_topk.h5" --format saelens --out "$T/ot"
"$PY" -c "import json, sys; sys.exit(json.load(open('$T/ot/cfg.json'))['metadata']['hook_name'] != 'blocks.3.hook_resid_post')" ||
    fail "hook name: $(head -c 400 "$T/ot/cfg.json")"
expect_error "nor a published SAE" "$SAE" eval --sae "$F/imported" --data "$F/acts.h5"
expect_error "nor a published SAE" "$SAE" info "$F"
"$SAE" info "$F/saelens_old_topk" | grep -q "hook           blocks.3.hook_resid_post" || fail "older cfg layout: hook_name not read"
"$SAE" info "$F/saelens_no_bdec" | grep -q "folded into b_enc" || fail "apply_b_dec_to_input false not reported"

# the imported files encode as their sources, and both as numpy
TF=$(dirname "$SAE")/tests/test_foreign
if [ -x "$TF" ]; then
    "$TF" "$F" >tf.txt 2>&1 || fail "test_foreign $F: $(tail -c 800 tf.txt)"
    [ "$(grep -c 'imported: codes' tf.txt)" -ge 13 ] || fail "test_foreign did not compare the imported files: $(tail -c 600 tf.txt)"
else
    fail "no $TF to compare codes"
fi

while IFS='|' read -r path phrase; do
    expect_error "$phrase" "$SAE" import "$path" --out "$T/x.h5"
    [ -e "$T/x.h5" ] && fail "import of hostile $path left an output"
    expect_error "$phrase" "$SAE" info "$path"
    expect_error "$phrase" "$SAE" eval --sae "$(as_file "$path")" --data "$F/acts.h5"
done <"$F/hostile.txt"
expect_error "not a SAELens folder" "$SAE" import "$F/acts.h5" --out "$T/x.h5"
expect_usage "expects SRC" "$SAE" import "$F/saelens_topk"

[ "$fails" = 0 ] && echo "foreign_cli: all passed"
exit $((fails > 0))
