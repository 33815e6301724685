#!/usr/bin/env bash
# tests/cli_test.sh SAE MAKE_BAD_FILES: the command line as a user meets it.
# Every bad input must give exit status 1 (2 for usage errors), exactly one
# line on stderr starting "sae: error: ", and no output file. Also: help,
# config files, NaN handling, a full disk, and kill -9 then --resume being
# bitwise equal to an uninterrupted run.
set -u
SAE=$1
MKBAD=$2
T=$(mktemp -d "${TMPDIR:-/tmp}/saecli.XXXXXX")
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# expect STATUS PHRASE -- command...   (stderr must be one "sae: error:" line with PHRASE)
expect() {
    local want=$1 phrase=$2
    shift 3
    "$@" >"$T/out" 2>"$T/err" </dev/null
    local got=$?
    local lines
    lines=$(wc -l <"$T/err")
    if [ "$got" != "$want" ]; then
        bad "$* -> exit $got, want $want; stderr: $(head -c 300 "$T/err")"
    elif [ "$lines" != 1 ] || ! grep -q '^sae: error: ' "$T/err"; then
        bad "$* -> stderr is not one 'sae: error:' line: $(head -c 300 "$T/err")"
    elif ! grep -qF -- "$phrase" "$T/err"; then
        bad "$* -> stderr lacks '$phrase': $(cat "$T/err")"
    else
        ok
    fi
}
no_file() { if ls "$1"* >/dev/null 2>&1; then bad "output $1 exists after a failure"; else ok; fi; }

"$MKBAD" "$T" >"$T/catalogue" || { echo "FAIL: make_bad_files"; exit 1; }

# --- usage ------------------------------------------------------------------
expect 2 "unknown command" -- "$SAE" bogus
expect 2 "unknown option '--bogus'" -- "$SAE" train --bogus
expect 2 "--data and --out are required" -- "$SAE" train --data "$T/good.h5"
expect 2 "needs a value" -- "$SAE" train --data "$T/good.h5" --out
expect 2 "expects a non-negative whole number" -- "$SAE" train --data "$T/good.h5" --out "$T/o.h5" --latents abc
expect 2 "must be one of topk|relu" -- "$SAE" train --data "$T/good.h5" --out "$T/o.h5" --arch dense
expect 2 "k=64 is larger than --latents 32" -- "$SAE" train --data "$T/good.h5" --out "$T/o.h5" --latents 32 --k 64
no_file "$T/o.h5"
"$SAE" >/dev/null 2>&1; [ $? = 2 ] && ok || bad "sae with no command should exit 2"
for c in demo synth train eval info; do
    "$SAE" "$c" --help >"$T/out" 2>&1 && grep -q "usage: sae $c" "$T/out" && ok || bad "sae $c --help"
done
"$SAE" help train | grep -q -- "--checkpoint-every" && ok || bad "sae help train"

# the README's first command runs the demo; a small one here
"$SAE" demo --out-dir "$T/demo" --n 40000 >"$T/out" 2>"$T/err" && grep -q '"mmcs"' "$T/out" &&
    [ -f "$T/demo/sae.h5" ] && ok || bad "demo: $(tail -3 "$T/err")"

# --- config files -------------------------------------------------------------
printf '[train]\nlatents = 32\nbogus_key = 1\n' >"$T/bad.ini"
expect 2 "bad.ini:3: unknown key 'bogus_key'" -- "$SAE" train --data "$T/good.h5" --out "$T/o.h5" --config "$T/bad.ini"
printf '[train]\nlr = fast\n' >"$T/bad2.ini"
expect 2 "--lr expects a number, got 'fast'" -- "$SAE" train --data "$T/good.h5" --out "$T/o.h5" --config "$T/bad2.ini"
for ini in "$(dirname "$0")"/../configs/*.ini; do
    "$SAE" train --config "$ini" --help >"$T/out" 2>"$T/err" && ok || bad "shipped config $ini: $(cat "$T/err")"
done
expect 2 "cannot open config file" -- "$SAE" train --data "$T/good.h5" --out "$T/o.h5" --config "$T/missing.ini"
no_file "$T/o.h5"

# --- bad activation files, through every command that reads them ----------------
"$SAE" train --data "$T/good.h5" --out "$T/good_sae.h5" --latents 32 --k 4 --batch 512 --tokens 8192 \
    >/dev/null 2>"$T/err" && ok || bad "training on good.h5: $(cat "$T/err")"
while IFS=$'\t' read -r name phrase; do
    expect 1 "$phrase" -- "$SAE" train --data "$T/$name" --out "$T/o.h5" --latents 32 --k 4
    no_file "$T/o.h5"
    expect 1 "$phrase" -- "$SAE" eval --sae "$T/good_sae.h5" --data "$T/$name"
    expect 1 "$phrase" -- "$SAE" info "$T/$name"
done <"$T/catalogue"
expect 1 "No such file" -- "$SAE" train --data "$T/none.h5" --out "$T/o.h5"
expect 2 "--out is the --data file" -- "$SAE" train --data "$T/good.h5" --out "$T/good.h5"
expect 1 "cannot create the output: No such file or directory" -- "$SAE" train --data "$T/good.h5" --out "$T/nodir/o.h5"
expect 1 "was trained on d=16: it cannot encode these rows" -- "$SAE" eval --sae "$T/good_sae.h5" --data "$T/good8.h5"
expect 1 "is an activation file, not an SAE" -- "$SAE" eval --sae "$T/good.h5" --data "$T/good.h5"
expect 1 "not an HDF5 file" -- "$SAE" eval --sae "$T/text.h5" --data "$T/good.h5"

# --- NaN rows: refused with their count, or skipped with a warning ------------------
expect 1 "3 rows of /activations hold NaN or Inf (first at row 7)" -- "$SAE" train --data "$T/nan.h5" --out "$T/o.h5" --latents 32 --k 4
no_file "$T/o.h5"
"$SAE" train --data "$T/nan.h5" --out "$T/nan_sae.h5" --latents 32 --k 4 --batch 512 --skip-nonfinite \
    >/dev/null 2>"$T/err" && grep -q "warning: .*skipping 3 rows" "$T/err" && ok || bad "--skip-nonfinite: $(cat "$T/err")"

# --- --precision bf16: refused where the CPU lacks bf16 (oneDNN told to use less) ---
expect 1 "bf16 needs a CPU with AVX512-BF16 or AMX" -- env ONEDNN_MAX_CPU_ISA=AVX512_CORE "$SAE" train --data "$T/good.h5" --out "$T/o.h5" --precision bf16
no_file "$T/o.h5"
expect 1 "bf16 needs a CPU with AVX512-BF16 or AMX" -- env ONEDNN_MAX_CPU_ISA=AVX512_CORE "$SAE" features --sae "$T/good_sae.h5" --data "$T/good.h5" --out "$T/o.h5" --precision bf16
expect 2 "must be one of f32|bf16" -- "$SAE" train --data "$T/good.h5" --out "$T/o.h5" --precision f16
"$SAE" train --data "$T/good.h5" --out "$T/p_f32.h5" --latents 64 --k 4 --batch 512 >/dev/null 2>&1 ||
    bad "train --precision f32"
if "$SAE" train --data "$T/good.h5" --out "$T/p_bf16.h5" --latents 64 --k 4 --batch 512 \
    --precision bf16 >/dev/null 2>"$T/err"; then
    # where bf16 runs: compare with f32 on the same data and seed
    f32=$("$SAE" eval --sae "$T/p_f32.h5" --data "$T/good.h5" | sed 's/.*"fvu":\([0-9.e-]*\).*/\1/')
    bf16=$("$SAE" eval --sae "$T/p_bf16.h5" --data "$T/good.h5" | sed 's/.*"fvu":\([0-9.e-]*\).*/\1/')
    # bf16 rounds only the encoder's inputs: FVU within 5% (relative) on this tiny run
    awk -v a="$f32" -v b="$bf16" 'BEGIN { exit !(b <= a * 1.05 && b >= a * 0.95) }' && ok ||
        bad "bf16 FVU $bf16 vs f32 $f32"
elif grep -q "bf16 needs a CPU" "$T/err"; then
    echo "cli_test: this CPU has no bf16 instructions; bf16 training not exercised"
else
    bad "train --precision bf16: $(cat "$T/err")"
fi

# --- a full disk (simulated with a file-size limit) leaves no output ----------------
(ulimit -f 200; "$SAE" synth --out "$T/full.h5" --n 200000 --d 64 >/dev/null 2>"$T/err"); st=$?
if [ $st = 1 ] && [ "$(wc -l <"$T/err")" = 1 ] && grep -q "^sae: error: .*full.h5" "$T/err"; then ok; else bad "full disk: exit $st: $(cat "$T/err")"; fi
no_file "$T/full.h5"
"$SAE" train --data "$T/good.h5" --out "$T/o.h5" --latents 32 --k 4 --batch 512 >/dev/null 2>&1 &&
    (ulimit -f 20; "$SAE" train --data "$T/good.h5" --out "$T/o2.h5" --latents 256 --k 4 --batch 512 >/dev/null 2>"$T/err"); st=$?
if [ $st = 1 ] && grep -q "^sae: error: .*o2.h5" "$T/err"; then ok; else bad "full disk at checkpoint: exit $st: $(cat "$T/err")"; fi
no_file "$T/o2.h5"

# --- capture from a llama2.c model (a tiny random one: no shared files needed) ---
M=(--model "$T/tiny.bin" --tokenizer "$T/tiny_tok.bin")
rm -f "$T/o.h5" # the full-disk section trained one
"$SAE" capture "${M[@]}" --corpus "$T/good.jsonl" --layer 1 --out "$T/cap.h5" 2>"$T/err" && ok || bad "capture: $(cat "$T/err")"
"$SAE" info "$T/cap.h5" | grep -qE "documents    [0-9]+ corpus documents in 5 windows, labelled" && ok || bad "capture windows/labels: $("$SAE" info "$T/cap.h5")"
"$SAE" capture "${M[@]}" --corpus "$T/good.txt" --layer 0 --site mlp_out --dtype f16 --out "$T/cap2.h5" 2>/dev/null &&
    "$SAE" info "$T/cap2.h5" | grep -q "float16" && ok || bad "capture of plain text"
"$SAE" train --data "$T/cap.h5" --out "$T/cap_sae.h5" --latents 32 --k 4 --batch 16 >/dev/null 2>&1 && ok || bad "train on captured"
"$SAE" tokenize --tokenizer "$T/tiny_tok.bin" "the cat" | grep -q "^   289   the$" && ok || bad "tokenize: $("$SAE" tokenize --tokenizer "$T/tiny_tok.bin" "the cat")"
"$SAE" generate "${M[@]}" --prompt "the" --steps 8 >/dev/null 2>&1 && ok || bad "generate"
expect 1 "header describes" -- "$SAE" capture --model "$T/tiny_trunc.bin" --tokenizer "$T/tiny_tok.bin" --corpus "$T/good.jsonl" --layer 0 --out "$T/o.h5"
expect 1 "has 290 pieces but the model's vocabulary has 300" -- "$SAE" capture --model "$T/tiny.bin" --tokenizer "$T/tiny_tok290.bin" --corpus "$T/good.jsonl" --layer 0 --out "$T/o.h5"
expect 1 "llama2.c model" -- "$SAE" capture --model "$T/text.h5" --tokenizer "$T/tiny_tok.bin" --corpus "$T/good.jsonl" --layer 0 --out "$T/o.h5"
expect 1 "not a llama2.c tokenizer" -- "$SAE" capture "${M[@]/tiny_tok.bin/text.h5}" --corpus "$T/good.jsonl" --layer 0 --out "$T/o.h5"
expect 2 "layer 2 is out of range: the model has 2 blocks (0..1)" -- "$SAE" capture "${M[@]}" --corpus "$T/good.jsonl" --layer 2 --out "$T/o.h5"
expect 2 "--seq-len" -- "$SAE" capture "${M[@]}" --corpus "$T/good.jsonl" --layer 0 --seq-len 64 --out "$T/o.h5"
expect 1 "document 2 (line 3) is not valid UTF-8" -- "$SAE" capture "${M[@]}" --corpus "$T/bad_utf8.txt" --layer 0 --out "$T/o.h5"
expect 1 "empty corpus" -- "$SAE" capture "${M[@]}" --corpus "$T/empty.txt" --layer 0 --out "$T/o.h5"
expect 1 'line 2: "text" must be a string' -- "$SAE" capture "${M[@]}" --corpus "$T/bad.jsonl" --layer 0 --out "$T/o.h5"
expect 1 "No such file" -- "$SAE" capture "${M[@]}" --corpus "$T/none.txt" --layer 0 --out "$T/o.h5"
expect 2 "required" -- "$SAE" capture "${M[@]}" --corpus "$T/good.jsonl" --out "$T/o.h5"
no_file "$T/o.h5"

# --- features, show, search -------------------------------------------------------
"$SAE" features --sae "$T/cap_sae.h5" --data "$T/cap.h5" --out "$T/feat.h5" --json "$T/feat.jsonl" >/dev/null 2>"$T/err" &&
    [ "$(wc -l <"$T/feat.jsonl")" = 32 ] && ok || bad "features: $(cat "$T/err")"
"$SAE" show "$T/feat.h5" --feature 3 --color never >"$T/out" 2>"$T/err" && grep -q "^feature 3" "$T/out" &&
    grep -q "top examples" "$T/out" && ok || bad "show: $(cat "$T/err" "$T/out")"
"$SAE" search --sae "$T/cap_sae.h5" --data "$T/cap.h5" --token-regex '^[aeiou]$' --offset 1 --json >"$T/out" 2>"$T/err" &&
    grep -q '"feature"' "$T/out" && ok || bad "search: $(cat "$T/err")"
"$SAE" search --sae "$T/cap_sae.h5" --data "$T/cap.h5" --contrast en:ja --features "$T/feat.h5" >"$T/out" 2>"$T/err" &&
    grep -q "^by chance (1000 shuffles" "$T/out" && grep -q "allow only 2 distinct labellings" "$T/out" &&
    ok || bad "search contrast: $(cat "$T/err" "$T/out")"
"$SAE" search --sae "$T/cap_sae.h5" --data "$T/cap.h5" --contrast en:ja --pool none >"$T/out" 2>"$T/err" &&
    grep -q "variance ratio" "$T/out" && ok || bad "search contrast per position: $(cat "$T/err")"
"$SAE" info "$T/feat.h5" | grep -q "feature dictionary" && ok || bad "info on a features file"
expect 2 "does not compile" -- "$SAE" search --sae "$T/cap_sae.h5" --data "$T/cap.h5" --token-regex '(('
expect 2 "matches no token of the vocabulary" -- "$SAE" search --sae "$T/cap_sae.h5" --data "$T/cap.h5" --token-regex '^zzzz$'
expect 2 "no document is labelled 'fr' (labels present: en, ja" -- "$SAE" search --sae "$T/cap_sae.h5" --data "$T/cap.h5" --contrast fr:en
expect 2 "expects A:B" -- "$SAE" search --sae "$T/cap_sae.h5" --data "$T/cap.h5" --contrast ja
expect 2 "exactly one of" -- "$SAE" search --sae "$T/cap_sae.h5" --data "$T/cap.h5"
"$SAE" train --data "$T/bare.h5" --out "$T/bare_sae.h5" --latents 32 --k 4 --batch 100 >/dev/null 2>&1
expect 1 "--token-regex needs /tokens" -- "$SAE" search --sae "$T/bare_sae.h5" --data "$T/bare.h5" --token-regex a
expect 1 "--logit-regex needs /unembed" -- "$SAE" search --sae "$T/bare_sae.h5" --data "$T/bare.h5" --logit-regex a
expect 1 "--contrast needs /doc_labels" -- "$SAE" search --sae "$T/bare_sae.h5" --data "$T/bare.h5" --contrast a:b
expect 1 "the data has d=8 but the SAE" -- "$SAE" features --sae "$T/cap_sae.h5" --data "$T/good8.h5" --out "$T/o.h5"
expect 2 "out of range" -- "$SAE" show "$T/feat.h5" --feature 9999
expect 1 "not a features file" -- "$SAE" show "$T/cap.h5" --feature 1
"$SAE" features --sae "$T/bare_sae.h5" --data "$T/bare.h5" --out "$T/bare_feat.h5" >/dev/null 2>"$T/err" &&
    grep -q "warning: .*no /tokens" "$T/err" && ok || bad "features without tokens: $(cat "$T/err")"
no_file "$T/o.h5"

# --- figures ---------------------------------------------------------------------
if fc-list :lang=ja | grep -q .; then
    "$SAE" viz align --a "$T/cap_sae.h5" --b "$T/cap_sae.h5" --n 16 --features-a "$T/feat.h5" --out "$T/align.png" 2>"$T/err" &&
        grep -q "mean best-match cosine 1.000" "$T/err" && ok || bad "viz align: $(cat "$T/err")"
    "$SAE" viz trace --sae "$T/cap_sae.h5" --data "$T/cap.h5" --doc 1 --top 4 --out "$T/trace.png" 2>"$T/err" && ok || bad "viz trace: $(cat "$T/err")"
    "$SAE" viz text --sae "$T/cap_sae.h5" --data "$T/cap.h5" --doc 1 --feature 3 --out "$T/text.png" 2>"$T/err" && ok || bad "viz text: $(cat "$T/err")"
    "$SAE" viz density --features "$T/feat.h5" --out "$T/density.png" 2>"$T/err" && ok || bad "viz density: $(cat "$T/err")"
    "$SAE" train --data "$T/good.h5" --out "$T/curve_sae.h5" --latents 32 --k 4 --batch 256 --log "$T/curve.jsonl" --log-every 1 >/dev/null 2>&1
    "$SAE" viz curves --log "$T/curve.jsonl" --out "$T/curves.png" 2>"$T/err" && ok || bad "viz curves: $(cat "$T/err")"
    for f in align trace text density curves; do
        [ "$(head -c 8 "$T/$f.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] && ok || bad "$f.png is not a PNG"
    done
    expect 2 "--doc: 999 is out of range" -- "$SAE" viz trace --sae "$T/cap_sae.h5" --data "$T/cap.h5" --doc 999 --out "$T/o.png"
    expect 2 "feature ids must be in 0..31" -- "$SAE" viz trace --sae "$T/cap_sae.h5" --data "$T/cap.h5" --doc 1 --features 3,99 --out "$T/o.png"
    expect 2 "--feature: 99 is out of range" -- "$SAE" viz text --sae "$T/cap_sae.h5" --data "$T/cap.h5" --doc 1 --feature 99 --out "$T/o.png"
    "$SAE" train --data "$T/good8.h5" --out "$T/sae8.h5" --latents 16 --k 2 --batch 256 >/dev/null 2>&1
    expect 1 "has d=8 but" -- "$SAE" viz align --a "$T/cap_sae.h5" --b "$T/sae8.h5" --out "$T/o.png"
    expect 1 "cannot create the output" -- "$SAE" viz density --features "$T/feat.h5" --out "$T/nodir/o.png"
    expect 1 "not a font FreeType can read" -- "$SAE" viz density --features "$T/feat.h5" --font "$T/text.h5" --out "$T/o.png"
    expect 2 "unknown figure" -- "$SAE" viz pie --out "$T/o.png"
    no_file "$T/o.png"
else
    echo "SKIP: figure tests need a font with Japanese glyphs (apt-get install fonts-noto-cjk)"
fi

# --- kill -9 at any moment, then --resume: bitwise equal to an uninterrupted run,
# for every architecture -------------------------------------------------------------
"$SAE" synth --out "$T/k.h5" --n 60000 --d 64 --features 128 --active 4 --seed 2 2>/dev/null
for arch in topk relu batchtopk jumprelu matryoshka; do
    args=(--data "$T/k.h5" --arch "$arch" --latents 512 --k 8 --target-l0 8 --batch 256 --tokens 150000
          --checkpoint-every 4096 --threads 2 --seed 4 --buffer 8192)
    rm -f "$T/full_run.h5" "$T/killed.h5" "$T/killed.jsonl"
    "$SAE" train "${args[@]}" --out "$T/full_run.h5" >/dev/null 2>&1 || bad "$arch: uninterrupted run failed"
    "$SAE" train "${args[@]}" --out "$T/killed.h5" --log "$T/killed.jsonl" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 1 1000); do [ -f "$T/killed.h5" ] && break; sleep 0.01; done
    sleep 0.2
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    if "$SAE" info "$T/killed.h5" 2>/dev/null | grep -q "in progress"; then ok; else bad "$arch: kill -9 did not leave an in-progress checkpoint (killed too late?)"; fi
    "$SAE" train "${args[@]}" --out "$T/killed.h5" --log "$T/killed.jsonl" --resume >/dev/null 2>"$T/err" || bad "$arch: resume failed: $(cat "$T/err")"
    same=1
    for ds in /W_enc /W_dec /b_enc /b_dec /train/adam_m /train/adam_v /threshold; do
        h5ls "$T/full_run.h5$ds" >/dev/null 2>&1 || continue
        h5diff "$T/full_run.h5" "$T/killed.h5" "$ds" >/dev/null || { same=0; echo "  $arch: $ds differs"; }
    done
    [ $same = 1 ] && ok || bad "$arch: kill -9 + --resume differs from the uninterrupted run"
    steps=$(grep -c '"step"' "$T/killed.jsonl")
    uniq_steps=$(sed 's/.*"step":\([0-9]*\).*/\1/' "$T/killed.jsonl" | sort -u | wc -l)
    [ "$steps" = "$uniq_steps" ] && ok || bad "$arch: log after resume repeats steps ($steps lines, $uniq_steps distinct)"
    # every downstream command takes every architecture, with no special case
    S="$T/full_run.h5"
    "$SAE" info "$S" | grep -q "SAE ($arch)" && ok || bad "$arch: info"
    "$SAE" features --sae "$S" --data "$T/k.h5" --out "$T/feat_$arch.h5" >/dev/null 2>"$T/err" && ok || bad "$arch: features: $(cat "$T/err")"
    "$SAE" show "$T/feat_$arch.h5" --feature 0 >/dev/null 2>"$T/err" && ok || bad "$arch: show: $(cat "$T/err")"
    "$SAE" search --sae "$S" --data "$T/k.h5" --token-regex '^ka' >/dev/null 2>"$T/err" && ok || bad "$arch: search: $(cat "$T/err")"
    "$SAE" eval --sae "$S" --data "$T/k.h5" >"$T/out" 2>"$T/err" && grep -q '"explained_variance"' "$T/out" &&
        grep -q '"mcc"' "$T/out" && ok || bad "$arch: eval: $(cat "$T/err")"
    if fc-list :lang=ja | grep -q .; then
        "$SAE" viz trace --sae "$S" --data "$T/k.h5" --doc 1 --top 4 --out "$T/trace_$arch.png" 2>"$T/err" && ok || bad "$arch: viz trace: $(cat "$T/err")"
        "$SAE" viz text --sae "$S" --data "$T/k.h5" --doc 1 --feature 3 --out "$T/text_$arch.png" 2>"$T/err" && ok || bad "$arch: viz text: $(cat "$T/err")"
    fi
done
ls "$T"/*.tmp.* >/dev/null 2>&1 && bad "temporary files left behind: $(ls "$T"/*.tmp.*)" || ok

echo "cli: $pass passed, $fail failed"
[ $fail = 0 ]
