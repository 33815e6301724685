#!/usr/bin/env bash
# tests/harden_paths.sh SAE MAKE_BAD_FILES: no command writes over its input,
# and no temporary file outlives the process that made it.
#  - every output that is one of the command's inputs (also through a
#    symlink or a hard link) or another of its outputs is refused: exit 2, one
#    "sae: error:" line naming both flags, every input byte for byte as before;
#  - empty paths, folders given as files and missing folders name the cause;
#  - temporary files: removed on SIGTERM, on a failure at any size limit, and
#    (left by kill -9) by the next run of any command writing that output;
#  - number flags name the cause (--lr 1e39 is out of float range), and so
#    does viz trace --len 0.
set -u
SAE=$(cd "$(dirname "$1")" && pwd)/$(basename "$1") # absolute: one case runs it from another folder
MKBAD=$2
T=$(mktemp -d "${TMPDIR:-/tmp}/saepaths.XXXXXX")
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# one_error STATUS PHRASE: the last command's stderr ($T/err) is one error line with PHRASE
one_error() {
    local want=$1 got=$2 phrase=$3 what=$4
    if [ "$got" != "$want" ]; then
        bad "$what -> exit $got, want $want; stderr: $(head -c 300 "$T/err")"
    elif [ "$(wc -l <"$T/err")" != 1 ] || ! grep -q '^sae: error: ' "$T/err"; then
        bad "$what -> stderr is not one 'sae: error:' line: $(head -c 400 "$T/err")"
    elif ! grep -qF -- "$phrase" "$T/err"; then
        bad "$what -> stderr lacks '$phrase': $(cat "$T/err")"
    else
        return 0
    fi
    return 1
}

# expect STATUS PHRASE -- command...
expect() {
    local want=$1 phrase=$2
    shift 3
    "$@" >"$T/out" 2>"$T/err" </dev/null
    one_error "$want" $? "$phrase" "$*" && ok
}

# refuse PHRASE FILE... -- command...: exit 2, one error line, FILEs unchanged, no temporary left
refuse() {
    local phrase=$1 files=()
    shift
    while [ "$1" != "--" ]; do files+=("$1"); shift; done
    shift
    local before after
    before=$(cksum "${files[@]}")
    "$@" >"$T/out" 2>"$T/err" </dev/null
    local st=$?
    after=$(cksum "${files[@]}")
    one_error 2 $st "$phrase" "$*" || return
    if [ "$before" != "$after" ]; then bad "$* changed an input"; return; fi
    if ls "$T"/*.tmp.* >/dev/null 2>&1; then bad "$* left $(ls "$T"/*.tmp.*)"; return; fi
    ok
}

# a pid that no process has now: a kill -9'd writer's temporary file carries one
dead_pid() {
    sleep 0 &
    local p=$!
    wait $p
    echo $p
}

# --- fixtures: a small activation file, an SAE, a features file, a tiny model ---
mkdir "$T/mk"
"$MKBAD" "$T/mk" >/dev/null || { echo "FAIL: make_bad_files"; exit 1; }
"$SAE" synth --out "$T/d.h5" --n 4096 --d 16 --features 32 --active 3 2>/dev/null || { echo "FAIL: synth"; exit 1; }
"$SAE" train --data "$T/d.h5" --out "$T/s.h5" --latents 32 --k 4 --batch 256 --tokens 4096 \
    --log "$T/log.jsonl" --log-every 1 >/dev/null 2>&1 || { echo "FAIL: train"; exit 1; }
"$SAE" features --sae "$T/s.h5" --data "$T/d.h5" --out "$T/f.h5" 2>/dev/null || { echo "FAIL: features"; exit 1; }
cp "$T/mk/tiny.bin" "$T/mk/tiny_tok.bin" "$T/mk/good.jsonl" "$T/"
ln -s d.h5 "$T/link.h5"
ln "$T/d.h5" "$T/hard.h5"
MODEL=(--model "$T/tiny.bin" --tokenizer "$T/tiny_tok.bin")

# --- an output that is an input ----------------------------------------------------
FEAT=(features --sae "$T/s.h5" --data "$T/d.h5")
refuse "--out is the --data file" "$T/d.h5" -- "$SAE" "${FEAT[@]}" --out "$T/d.h5"
refuse "--out is the --sae file" "$T/s.h5" -- "$SAE" "${FEAT[@]}" --out "$T/s.h5"
refuse "--out is the --data file ($T/d.h5)" "$T/d.h5" -- "$SAE" "${FEAT[@]}" --out "$T/link.h5"
refuse "--out is the --data file ($T/link.h5)" "$T/d.h5" -- "$SAE" features --sae "$T/s.h5" --data "$T/link.h5" --out "$T/d.h5"
refuse "--out is the --data file" "$T/d.h5" -- "$SAE" "${FEAT[@]}" --out "$T/hard.h5"
refuse "--out is the --data file" "$T/d.h5" -- "$SAE" "${FEAT[@]}" --out "$T/mk/../d.h5"
refuse "--json is the --data file" "$T/d.h5" -- "$SAE" "${FEAT[@]}" --out "$T/f2.h5" --json "$T/d.h5"
ln -s s.h5 "$T/link_s.h5"
refuse "--json is the --sae file" "$T/s.h5" -- "$SAE" "${FEAT[@]}" --out "$T/f2.h5" --json "$T/link_s.h5"
refuse "--out is the --corpus file" "$T/good.jsonl" -- "$SAE" capture "${MODEL[@]}" --corpus "$T/good.jsonl" --layer 0 --out "$T/good.jsonl"
refuse "--out is the --model file" "$T/tiny.bin" -- "$SAE" capture "${MODEL[@]}" --corpus "$T/good.jsonl" --layer 0 --out "$T/tiny.bin"
refuse "--out is the --tokenizer file" "$T/tiny_tok.bin" -- "$SAE" capture "${MODEL[@]}" --corpus "$T/good.jsonl" --layer 0 --out "$T/tiny_tok.bin"
refuse "--out is the --a file" "$T/s.h5" -- "$SAE" viz align --a "$T/s.h5" --b "$T/d.h5" --out "$T/s.h5"
refuse "--out is the --b file" "$T/s.h5" -- "$SAE" viz align --a "$T/d.h5" --b "$T/s.h5" --out "$T/link_s.h5"
refuse "--out is the --sae file" "$T/s.h5" -- "$SAE" viz trace --sae "$T/s.h5" --data "$T/d.h5" --doc 0 --out "$T/s.h5"
refuse "--out is the --data file" "$T/d.h5" -- "$SAE" viz text --sae "$T/s.h5" --data "$T/d.h5" --doc 0 --feature 1 --out "$T/d.h5"
refuse "--out is the --features file" "$T/f.h5" -- "$SAE" viz density --features "$T/f.h5" --out "$T/f.h5"
refuse "--out is the --log file" "$T/log.jsonl" -- "$SAE" viz curves --log "$T/log.jsonl" --out "$T/log.jsonl"
refuse "--log is the --data file" "$T/d.h5" -- "$SAE" train --data "$T/d.h5" --out "$T/s2.h5" --log "$T/d.h5"
refuse "--out is the --data file" "$T/d.h5" -- "$SAE" train --data "$T/d.h5" --out "$T/link.h5"
refuse "--out is the --data file" "$T/d.h5" -- "$SAE" train --data "$T/d.h5" --out "$T/d.h5" --resume
printf '[train]\nlatents = 32\n' >"$T/c.ini"
refuse "--log is the --config file" "$T/c.ini" -- "$SAE" train --config "$T/c.ini" --data "$T/d.h5" --out "$T/s2.h5" --log "$T/c.ini"
# a path from the config file goes through the same check
printf '[train]\nlog = %s\n' "$T/d.h5" >"$T/c2.ini"
refuse "--log is the --data file" "$T/d.h5" -- "$SAE" train --config "$T/c2.ini" --data "$T/d.h5" --out "$T/s2.h5"

# --- two outputs that are one file (existing or not yet) ------------------------------
refuse "--out and --json are the same file" "$T/d.h5" -- "$SAE" "${FEAT[@]}" --out "$T/f2.h5" --json "$T/f2.h5"
refuse "--out and --json are the same file (./" "$T/d.h5" -- bash -c 'cd "$1" && "$2" features --sae s.h5 --data d.h5 --out f2.h5 --json ./f2.h5' _ "$T" "$SAE"
refuse "--out and --json are the same file" "$T/f.h5" -- "$SAE" "${FEAT[@]}" --out "$T/f.h5" --json "$T/f.h5"
refuse "--out and --log are the same file" "$T/d.h5" -- "$SAE" train --data "$T/d.h5" --out "$T/s2.h5" --log "$T/s2.h5"
[ -e "$T/f2.h5" ] || [ -e "$T/s2.h5" ] && bad "a refused command wrote its output" || ok
# inputs may repeat: the same SAE on both sides of an alignment is not refused
"$SAE" viz align --a "$T/s.h5" --b "$T/s.h5" --out "$T/nodir/a.png" >/dev/null 2>"$T/err"
grep -q "same file" "$T/err" && bad "viz align refused the same input twice" || ok

# --- paths that are not files name the cause ------------------------------------------
expect 2 "sae: error: --sae: the path is empty" -- "$SAE" features --sae "" --data "$T/d.h5" --out "$T/o.h5"
expect 2 "sae: error: --out: the path is empty" -- "$SAE" train --data "$T/d.h5" --out ""
expect 2 "sae: error: --tokenizer: the path is empty" -- "$SAE" capture --model "$T/tiny.bin" --tokenizer "" --corpus "$T/good.jsonl" --layer 0 --out "$T/o.h5"
expect 2 "sae: error: FILE: the path is empty" -- "$SAE" info ""
expect 2 "sae: error: --sae: the path is empty" -- "$SAE" eval --sae "" --data "$T/d.h5"
expect 1 "$T/mk: is a directory, not a file (--model)" -- "$SAE" capture --model "$T/mk" --tokenizer "$T/tiny_tok.bin" --corpus "$T/good.jsonl" --layer 0 --out "$T/o.h5"
expect 1 "$T/mk: is a directory, not a file (--tokenizer)" -- "$SAE" generate --model "$T/tiny.bin" --tokenizer "$T/mk"
expect 1 "$T/mk: is a directory, not a file (--corpus)" -- "$SAE" capture "${MODEL[@]}" --corpus "$T/mk" --layer 0 --out "$T/o.h5"
expect 1 "$T/mk: is a directory, not a file (--log)" -- "$SAE" viz curves --log "$T/mk" --out "$T/o.png"
expect 1 "$T/mk: is a folder: neither one of this toolkit's HDF5 files nor a published SAE" -- "$SAE" features --sae "$T/mk" --data "$T/d.h5" --out "$T/o.h5"
expect 1 "$T/mk: is a directory, not a file (--out)" -- "$SAE" features --sae "$T/s.h5" --data "$T/d.h5" --out "$T/mk"
expect 1 "$T/none.h5: No such file or directory (--data)" -- "$SAE" eval --sae "$T/s.h5" --data "$T/none.h5"
expect 1 "cannot create the output: No such file or directory (folder $T/nodir)" -- "$SAE" synth --out "$T/nodir/o.h5"
# a special file at the output path (renaming over it would replace it; never
# /dev/null itself: a regression run as root would replace the system's)
mkfifo "$T/fifo"
expect 1 "is not a regular file" -- "$SAE" synth --out "$T/fifo"
[ -p "$T/fifo" ] && ok || bad "synth --out on a FIFO replaced it"
ls "$T"/o.* >/dev/null 2>&1 && bad "a refused command wrote an output" || ok

# --- numbers and counts name the cause ---------------------------------------------------
TR=(train --data "$T/d.h5" --out "$T/o.h5")
expect 2 "--lr is out of range: '1e39' is beyond the largest float" -- "$SAE" "${TR[@]}" --lr 1e39
expect 2 "--lr is out of range: '1e-60' is too close to zero for a float" -- "$SAE" "${TR[@]}" --lr 1e-60
expect 2 "--aux-coef is out of range: '1e400'" -- "$SAE" "${TR[@]}" --aux-coef 1e400
expect 2 "--lr expects a finite number, got 'nan'" -- "$SAE" "${TR[@]}" --lr nan
expect 2 "--lr expects a finite number, got 'inf'" -- "$SAE" "${TR[@]}" --lr inf
expect 2 "--lr expects a number, got '3e-4x' (unexpected 'x' after the number)" -- "$SAE" "${TR[@]}" --lr 3e-4x
expect 2 "--latents is out of range: '1e30' is larger than" -- "$SAE" "${TR[@]}" --latents 1e30
expect 2 "--latents is out of range: '99999999999999999999' is larger than" -- "$SAE" "${TR[@]}" --latents 99999999999999999999
expect 2 "--threads is out of range: '3000000000' is larger than 2147483647" -- "$SAE" "${TR[@]}" --threads 3000000000
expect 2 "--latents expects a non-negative whole number, got '-3': it is negative" -- "$SAE" "${TR[@]}" --latents -3
expect 2 "--latents expects a non-negative whole number, got '2.5': it is not whole" -- "$SAE" "${TR[@]}" --latents 2.5
printf '[train]\nlr = 1e39\n' >"$T/c3.ini"
expect 2 "c3.ini:2: --lr is out of range" -- "$SAE" "${TR[@]}" --config "$T/c3.ini"
expect 2 "viz trace: --len must be at least 1" -- "$SAE" viz trace --sae "$T/s.h5" --data "$T/d.h5" --doc 0 --len 0 --out "$T/o.png"
expect 2 "viz trace: --top must be at least 1" -- "$SAE" viz trace --sae "$T/s.h5" --data "$T/d.h5" --doc 0 --top 0 --out "$T/o.png"

# --- stale temporary files: the next run of any command writing that output removes them ---
dp=$(dead_pid)
for out in f3.h5 f3.jsonl c3.h5 syn.h5 sae3.h5 fig.png; do : >"$T/$out.tmp.$dp"; done
: >"$T/f3.h5.tmp.$$" # a live process's (this shell's): never touched
"$SAE" features --sae "$T/s.h5" --data "$T/d.h5" --out "$T/f3.h5" --json "$T/f3.jsonl" >/dev/null 2>"$T/err"
"$SAE" capture "${MODEL[@]}" --corpus "$T/good.jsonl" --layer 0 --out "$T/c3.h5" >/dev/null 2>>"$T/err"
"$SAE" synth --out "$T/syn.h5" --n 512 --d 8 >/dev/null 2>>"$T/err"
"$SAE" train --data "$T/d.h5" --out "$T/sae3.h5" --latents 32 --k 4 --batch 256 --tokens 1024 >/dev/null 2>>"$T/err"
"$SAE" viz density --features "$T/f.h5" --out "$T/fig.png" >/dev/null 2>>"$T/err" # with or without a font
for out in f3.h5 f3.jsonl c3.h5 syn.h5 sae3.h5 fig.png; do
    [ -e "$T/$out.tmp.$dp" ] && bad "stale $out.tmp.$dp not removed" || ok
    grep -qF "sae: note: removed $T/$out.tmp.$dp, left by a run that was killed" "$T/err" && ok ||
        bad "no note for $out.tmp.$dp: $(cat "$T/err")"
done
[ -e "$T/f3.h5.tmp.$$" ] && ok || bad "a live process's temporary file was removed"
rm -f "$T/f3.h5.tmp.$$"

# --- a real kill -9 and a SIGTERM in the middle of writing ----------------------------
# a wide SAE and many top examples make features' write take a while
"$SAE" train --data "$T/d.h5" --out "$T/wide.h5" --latents 4096 --k 4 --batch 256 --tokens 512 >/dev/null 2>&1
BIG=(features --sae "$T/wide.h5" --data "$T/d.h5" --top 1000 --json "$T/big.jsonl")
# catch PID GLOB: wait until the temporary file appears (0) or the process ends (1)
catch() {
    local i
    for ((i = 0; i < 2000000; i++)); do
        compgen -G "$2" >/dev/null && return 0
        kill -0 "$1" 2>/dev/null || return 1
    done
    return 1
}
"$SAE" "${BIG[@]}" --out "$T/big.h5" >/dev/null 2>&1 &
pid=$!
if catch $pid "$T/big.*.tmp.*"; then
    kill -TERM $pid
    wait $pid
    st=$?
    [ $st = 143 ] && ok || bad "SIGTERM of features: exit $st, want 143"
    ls "$T"/big.*.tmp.* >/dev/null 2>&1 && bad "SIGTERM of features left $(ls "$T"/big.*.tmp.*)" || ok
else
    wait $pid
    echo "harden_paths: features finished before its temporary file was seen; SIGTERM not exercised"
fi
rm -f "$T"/big.*
"$SAE" "${BIG[@]}" --out "$T/big.h5" >/dev/null 2>&1 &
pid=$!
if catch $pid "$T/big.*.tmp.*"; then
    kill -9 $pid
    wait $pid 2>/dev/null
    left=$(ls "$T"/big.*.tmp.* 2>/dev/null)
    [ -n "$left" ] && ok || bad "kill -9 left no temporary file (it is the case this part tests)"
    "$SAE" "${BIG[@]}" --out "$T/big.h5" >/dev/null 2>"$T/err" && ok || bad "features after kill -9: $(cat "$T/err")"
    for f in $left; do
        [ -e "$f" ] && bad "$f survived the next run" || ok
        grep -qF "removed $f" "$T/err" && ok || bad "no note for $f: $(cat "$T/err")"
    done
else
    wait $pid
    echo "harden_paths: features finished before its temporary file was seen; kill -9 not exercised"
fi
rm -f "$T"/big.* "$T/wide.h5"

# train keeps its own SIGTERM: a checkpoint, exit 130, --resume continues it
"$SAE" train --data "$T/d.h5" --out "$T/int.h5" --latents 64 --k 4 --batch 64 --tokens 20M --checkpoint-every 4096 >/dev/null 2>"$T/err" &
pid=$!
for _ in $(seq 1 500); do [ -f "$T/int.h5" ] && break; sleep 0.01; done
kill -TERM $pid
wait $pid
st=$?
[ $st = 130 ] && grep -q "interrupted; checkpoint saved" "$T/err" && ok || bad "SIGTERM of train: exit $st: $(tail -2 "$T/err")"
"$SAE" info "$T/int.h5" 2>/dev/null | grep -q "in progress" && ok || bad "SIGTERM of train left no resumable checkpoint"
ls "$T"/int.h5.tmp.* >/dev/null 2>&1 && bad "SIGTERM of train left $(ls "$T"/int.h5.tmp.*)" || ok

# a full disk at any point: no output and no temporary file (a 0-byte checkpoint stayed)
for lim in 0 1 8 40; do
    (ulimit -f $lim; "$SAE" train --data "$T/d.h5" --out "$T/full.h5" --latents 256 --k 4 --batch 512 2>&1 >/dev/null) |
        cat >"$T/err"
    ls "$T"/full.h5* >/dev/null 2>&1 && bad "ulimit -f $lim: train left $(ls "$T"/full.h5*)" || ok
    grep -q "^sae: error: .*full.h5" "$T/err" && ok || bad "ulimit -f $lim: no error line: $(tail -2 "$T/err")"
    (ulimit -f $lim; "$SAE" features --sae "$T/s.h5" --data "$T/d.h5" --out "$T/full.h5" --json "$T/full.jsonl" 2>&1 >/dev/null) |
        cat >"$T/err"
    ls "$T"/full.* >/dev/null 2>&1 && bad "ulimit -f $lim: features left $(ls "$T"/full.*)" || ok
done

# a string key in a config file (it leaked under LeakSanitizer)
printf '[train]\nlog = %s\n' "$T/cfg.jsonl" >"$T/c4.ini"
"$SAE" train --config "$T/c4.ini" --data "$T/d.h5" --out "$T/cfg.h5" --latents 32 --k 4 --batch 256 --tokens 1024 \
    >/dev/null 2>"$T/err" && [ -s "$T/cfg.jsonl" ] && ok || bad "train --config with a string key: $(tail -3 "$T/err")"

ls "$T"/*.tmp.* >/dev/null 2>&1 && bad "temporary files left behind: $(ls "$T"/*.tmp.*)" || ok
cksum "$T/d.h5" "$T/hard.h5" | awk '{print $1}' | uniq | wc -l | grep -q '^1$' && ok || bad "d.h5 and its hard link differ"
echo "harden_paths: $pass passed, $fail failed"
[ $fail = 0 ]
