#!/usr/bin/env bash
# tests/harden_model.sh SAE MAKE_BAD_FILES: crafted SAE, features and
# checkpoint files, degenerate training data and training logs. Each case
# must give one clear error naming its cause (exit 1, no crash, no hang) or
# the right result; make_bad_files' modes damage one attribute or element of a
# valid file at a time (see tests/make_bad_files.c).
set -u
S=$1
MB=$2
. "$(dirname "$0")/expect.sh"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=2 HDF5_USE_FILE_LOCKING=FALSE
cd "$T"

"$MB" "$T" >/dev/null || { echo "FAIL: make_bad_files"; exit 1; }
TR="--latents 64 --k 4 --batch 256 --tokens 4096"
expect_ok "$S" synth --out a.h5 --n 4096 --d 16 --features 32 --active 3 --seed 1
expect_ok "$S" synth --out a2.h5 --n 4096 --d 16 --features 32 --active 3 --seed 2
expect_ok "$S" train --data a.h5 --out s.h5 $TR --log log.jsonl

# --- SAE files: sizes from attributes are checked against what the file holds
expect_ok "$MB" unwritten-sae unwritten.h5 4096 1048576
expect_error "declares 17179869184 bytes but the file stores 0" "$S" eval --sae unwritten.h5 --data a.h5
expect_ok "$MB" attr-i64 s.h5 d32.h5 / d_model 4294967296
expect_error "d_model = 4294967296" "$S" eval --sae d32.h5 --data a.h5
expect_ok "$MB" attr-i64 s.h5 dbig.h5 / d_model 1000000
expect_error "/W_enc is [16, 64] (float) but d_model=1000000" "$S" eval --sae dbig.h5 --data a.h5
expect_ok "$MB" attr-i64 s.h5 mbig.h5 / n_latents 1073741824
expect_error "need [16, 1073741824]" "$S" features --sae mbig.h5 --data a.h5 --out never.h5
expect_ok "$MB" as-i32 s.h5 wint.h5 W_enc
expect_error "/W_enc holds integers, not floating-point numbers" "$S" eval --sae wint.h5 --data a.h5
expect_ok "$MB" attr-f64 s.h5 auxinf.h5 / aux_coef inf
expect_error "aux_coef = inf is not a finite float" "$S" eval --sae auxinf.h5 --data a.h5
expect_ok "$MB" set-f32 s.h5 nan.h5 W_dec 5 nan
expect_error "NaN or Inf (/W_dec, element 5" "$S" eval --sae nan.h5 --data a.h5
expect_error "NaN or Inf (/W_dec, element 5" "$S" viz align --a nan.h5 --b a.h5 --out align.png
# a NaN planted dictionary made viz align print a mean cosine of -2.000
expect_ok "$MB" set-f32 a.h5 truthnan.h5 truth/features 3 nan
expect_error "NaN or Inf" "$S" viz align --a s.h5 --b truthnan.h5 --out align.png
expect_error "NaN or Inf" "$S" eval --sae s.h5 --data truthnan.h5
[ -e never.h5 ] && fail "features left never.h5 behind"

# --- features files: ids range-checked against /vocab once, in the loader
expect_ok "$S" train --data good.h5 --out gs.h5 --latents 32 --k 4 --tokens 4096
expect_ok "$S" features --sae gs.h5 --data good.h5 --out gf.h5
expect_ok "$S" show gf.h5 --feature 3
expect_ok "$MB" set-i32 gf.h5 badid.h5 tokens/by_count_id 30 5000
expect_error "/tokens/by_count_id[3][0] = 5000 is not a token id (/vocab has 100 entries)" "$S" show badid.h5 --feature 3
expect_ok "$MB" set-i32 gf.h5 badid2.h5 tokens/by_mean_id 0 -7
expect_error "= -7 is not a token id (ids are >= 0, or -1 for none)" "$S" show badid2.h5 --feature 0
expect_ok "$MB" attr-i64 gf.h5 topn.h5 / top_n 4611686018427387904
expect_error "top_n = 4611686018427387904" "$S" show topn.h5 --feature 0
expect_ok "$MB" attr-i64 gf.h5 topn2.h5 / top_n 16
expect_error "/top/value must be [32, 16]" "$S" show topn2.h5 --feature 0
expect_ok "$MB" set-i64 gf.h5 row.h5 top/row 0 -5
expect_error "/top/row holds row -5" "$S" show row.h5 --feature 0

# --- checkpoints: validated as a whole before resuming
expect_ok "$MB" attr-i64 s.h5 mid0.h5 /train complete 0
expect_ok "$MB" attr-i64 mid0.h5 mid1.h5 /train step 8
expect_ok "$MB" attr-i64 mid1.h5 mid.h5 /train tokens 2048
expect_ok "$MB" attr-i64 s.h5 step62.h5 /train step 4611686018427387904
expect_error "step 4611686018427387904 is past the run's last step 16" "$S" train --data a.h5 --out step62.h5 $TR --resume
# the default --buffer is 262144 rows, read in windows of half of it
expect_ok "$MB" attr-i64 mid.h5 off.h5 /train offset 131073
expect_error "offset 131073 is past the 131072-row window" "$S" train --data a.h5 --out off.h5 $TR --resume
expect_ok "$MB" attr-i64 mid.h5 tok.h5 /train tokens 9999
expect_error "9999 tokens seen after 8 steps of 256 rows" "$S" train --data a.h5 --out tok.h5 $TR --resume
expect_ok "$MB" set-f32 mid.h5 nanm.h5 train/adam_m 7 nan
expect_error "/train/adam_m holds nan at element 7" "$S" train --data a.h5 --out nanm.h5 $TR --resume
expect_ok "$MB" set-f32 mid.h5 nanv.h5 train/adam_v 2 -1
expect_error "/train/adam_v holds -1 at element 2" "$S" train --data a.h5 --out nanv.h5 $TR --resume
cp mid.h5 other.h5
expect_error "made on different data" "$S" train --data a2.h5 --out other.h5 $TR --resume
cp mid.h5 same.h5
expect_ok "$S" train --data a.h5 --out same.h5 $TR --resume
# the identity is the content, not the path: a copy of the data resumes
cp a.h5 acopy.h5; cp mid.h5 copy.h5
expect_ok "$S" train --data acopy.h5 --out copy.h5 $TR --resume
expect_ok "$MB" del-attr mid.h5 old.h5 / data_fingerprint
expect_ok "$S" train --data a.h5 --out old.h5 $TR --resume
grep -q "predates data fingerprints" err.txt || fail "an old checkpoint resumed without the fingerprint warning"

# --- the causes behind "training diverged ... try a lower --lr"
expect_ok "$S" train --data a.h5 --out b1.h5 --latents 64 --k 4 --batch 1 --tokens 300
expect_ok "$S" eval --sae b1.h5 --data a.h5
expect_ok "$MB" fill-f32 a.h5 const.h5 activations 0.5
expect_error "identical (zero variance)" "$S" train --data const.h5 --out c.h5 $TR
expect_error "identical (zero variance)" "$S" train --data const.h5 --out c.h5 --latents 64 --k 4 --batch 1
expect_ok "$S" synth --out one.h5 --n 1 --d 16 --features 8 --active 2 --seed 1
expect_error "holds a single row" "$S" train --data one.h5 --out c.h5 --latents 64 --k 4

# --- eval: an undefined metric is an error, never "fvu": null
expect_error "only 1 row was evaluated" "$S" eval --sae s.h5 --data a.h5 --tokens 1
expect_error "zero variance" "$S" eval --sae s.h5 --data const.h5
grep -q null out.txt && fail "eval printed null"

# --- viz curves: any log renders or is refused by file:line, never hangs
expect_ok "$S" viz curves --log log.jsonl --out curves.png --scale 0.5
{ echo '{"tokens":0,"fvu":0,"l0":0,"dead_frac":0}'; echo '{"tokens":256,"fvu":0,"l0":4,"dead_frac":0}'
  echo '{"tokens":1e300,"fvu":-1,"l0":1e308,"dead_frac":-1e308}'; } >zero.jsonl
expect_ok "$S" viz curves --log zero.jsonl --out zero.png --scale 0.5
echo '{"tokens":0,"fvu":0,"l0":0,"dead_frac":0}' >zero1.jsonl
expect_ok "$S" viz curves --log zero1.jsonl --out zero1.png --scale 0.5
{ head -1 log.jsonl; echo 'not json'; } >bad.jsonl
expect_error "bad.jsonl: line 2 is not a JSON object" "$S" viz curves --log bad.jsonl --out x.png
{ head -1 log.jsonl; echo '{"tokens":1,"fvu":1,"l0":1,"dead_frac":0} junk'; } >junk.jsonl
expect_error "line 2 has text after its JSON object" "$S" viz curves --log junk.jsonl --out x.png
echo '{"tokens":1,"fvu":"a","l0":1,"dead_frac":0}' >str.jsonl
expect_error "line 1 lacks a number \"fvu\"" "$S" viz curves --log str.jsonl --out x.png
: >empty.jsonl
expect_error "no metrics in the log" "$S" viz curves --log empty.jsonl --out x.png
mkdir logdir
expect_error "logdir" "$S" viz curves --log logdir --out x.png

if [ $fails -gt 0 ]; then echo "harden_model: $fails failure(s)"; exit 1; fi
echo "harden_model: all cases passed"
