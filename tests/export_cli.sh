#!/usr/bin/env bash
# tests/export_cli.sh SAE: `sae export` end to end. A small SAE of every
# architecture (sae synth + sae train), exported for SAELens and read back by
# tests/read_export.py, an independent reader (numpy/json/struct only) that
# compares SAELens's encoding rule on raw held-out rows with ours on the
# checkpoint's HDF5 weights; the Neuronpedia JSON of a features file checked
# against the features file and the data; each export imported back (and
# read as a folder) evaluating as the original; then bad input, each one
# `sae: error:` line. Without h5py the test is skipped (exit 77).
set -u
S=$1
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/expect.sh"
need_h5py
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=1 HDF5_USE_FILE_LOCKING=FALSE
cd "$T"

expect_ok "$S" synth --out a.h5 --n 4000 --d 16 --features 48 --doc-len 32 --threads 1
expect_ok "$S" synth --out h.h5 --n 500 --d 16 --features 48 --doc-len 32 --heldout --threads 1
# a random unembedding, so the features file has a logit lens to export
"$PY" -c "
import h5py, numpy as np
f = h5py.File('a.h5', 'a')
f['unembed'] = np.random.default_rng(0).standard_normal((len(f['vocab']), 16)).astype('f4')"

for a in topk relu jumprelu batchtopk matryoshka; do
    expect_ok "$S" train --data a.h5 --out $a.h5 --arch $a --latents 32 --k 4 --batch 64 --threads 1
    expect_ok "$S" features --sae $a.h5 --data a.h5 --out f_$a.h5 --top 5 --threads 1
    expect_ok "$S" export $a.h5 --format saelens --out sl_$a --features f_$a.h5
    "$PY" "$HERE/read_export.py" saelens sl_$a $a.h5 h.h5 f_$a.h5 || fail "read_export saelens $a"
    [ -z "$(ls -d sl_$a.tmp.* 2>/dev/null)" ] || fail "$a: temporary folder left behind"
    # round trip: the exported folder imported back (and read directly) is the same SAE
    expect_ok "$S" import sl_$a --out back_$a.h5
    expect_ok "$S" eval --sae $a.h5 --data h.h5 --threads 1
    cp out.txt eval_orig.json
    for b in back_$a.h5 sl_$a; do
        expect_ok "$S" eval --sae $b --data h.h5 --threads 1
        "$PY" -c "
import json, sys
a, b = json.load(open('eval_orig.json')), json.load(open('out.txt'))
for k in ('fvu', 'mse', 'l0', 'cossim'):
    if abs(a[k] - b[k]) > 1e-5 * (1 + abs(a[k])): sys.exit(f'{k}: {a[k]} vs {b[k]}')
" || fail "$a: $b does not evaluate as the original: $(cat out.txt | head -c 300)"
    done
done
# without --features: no sparsity file; an existing empty folder is taken
mkdir empty
expect_ok "$S" export topk.h5 --format saelens --out empty
[ -f empty/sae_weights.safetensors ] && [ ! -e empty/sparsity.safetensors ] || fail "export into an empty folder"
"$PY" "$HERE/read_export.py" saelens empty topk.h5 h.h5 || fail "read_export saelens without sparsity"

for a in topk jumprelu; do
    expect_ok "$S" export f_$a.h5 --format neuronpedia --data a.h5 --out np_$a --per-batch 10
    "$PY" "$HERE/read_export.py" neuronpedia np_$a f_$a.h5 a.h5 $a.h5 10 || fail "read_export neuronpedia $a"
done

# bad input
expect_error "exists and is not empty" "$S" export topk.h5 --format saelens --out sl_topk
expect_error "exists and is not empty" "$S" export f_topk.h5 --format neuronpedia --data a.h5 --out np_topk
echo x > plain
expect_error "exists and is not a folder" "$S" export topk.h5 --format saelens --out plain
expect_usage "bogus" "$S" export topk.h5 --format bogus --out o1
expect_usage "--data" "$S" export f_topk.h5 --format neuronpedia --out o2
expect_error "not the data the features were built on" "$S" export f_topk.h5 --format neuronpedia --data h.h5 --out o6
expect_usage "--out" "$S" export topk.h5 --format saelens
expect_error "not an SAE" "$S" export a.h5 --format saelens --out o3
expect_error "latents" "$S" export topk.h5 --format saelens --out o4 --features "$(
    "$S" synth --out a64.h5 --n 500 --d 16 --threads 1 >/dev/null 2>&1
    "$S" train --data a64.h5 --out w64.h5 --latents 64 --k 4 --batch 64 --threads 1 >/dev/null 2>&1
    "$S" features --sae w64.h5 --data a64.h5 --out f64.h5 --threads 1 >/dev/null 2>&1; echo f64.h5)"
expect_error "No such file" "$S" export nothere.h5 --format saelens --out o5
[ ! -e o1 ] && [ ! -e o3 ] && [ ! -e o4 ] && [ ! -e o6 ] && [ -z "$(ls -d o6.tmp.* 2>/dev/null)" ] || fail "a failed export left its --out"

if [ "$fails" -ne 0 ]; then echo "$fails failure(s)"; exit 1; fi
echo "export_cli: all cases passed"
