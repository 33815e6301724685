#!/usr/bin/env bash
# tests/harden_ini.sh SAE: `--config` files through the binary, for what
# Debian's inih got wrong (a long comment's tail applied as a setting, long
# values cut, line numbers past the file, indented lines continuing a key, a
# directory read as an empty config) and the reader's other refusals. Values a
# config sets are observed through `sae train --config F --help`, which shows
# the defaults the config selected.
set -u
SAE=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# expect PHRASE FILE: `sae train --config FILE` exits 2 with one error line holding PHRASE
expect() {
    "$SAE" train --config "$2" --help >"$T/out" 2>"$T/err" </dev/null
    local got=$?
    if [ "$got" != 2 ] || [ "$(wc -l <"$T/err")" != 1 ] || ! grep -qF -- "$1" "$T/err"; then
        bad "$2 -> exit $got, want 2 and '$1'; stderr: $(head -c 300 "$T/err")"
    else ok; fi
}
# shows FILE PATTERN: the config loads and the help shows PATTERN (an option's value)
shows() {
    if "$SAE" train --config "$1" --help >"$T/out" 2>"$T/err" && grep -qE -- "$2" "$T/out"; then ok
    else bad "$1: want help matching '$2'; stderr: $(head -c 300 "$T/err")"; fi
}
pad=$(printf 'x%.0s' $(seq 250))

# a 300-byte comment whose tail reads "k = 9" stays a comment
printf '[train]\n; %s k = 9 %s\n' "$pad" "$pad" >"$T/long_comment.ini"
shows "$T/long_comment.ini" '^  --k X .*\[32\]$'
# a 1000-byte value arrives whole: 998 zeros then 48 (cut anywhere, it would read 0)
printf '[train]\nlatents = %s48\n' "$(printf '0%.0s' $(seq 998))" >"$T/long_value.ini"
shows "$T/long_value.ini" '^  --latents X .*\[48\]$'
# line numbers after long lines and with CRLF are real
printf '# %s%s\r\n[train]\r\n\r\nlatents = 32\r\nbogus = 1\r\n' "$pad" "$pad" >"$T/crlf.ini"
expect "crlf.ini:5: unknown key 'bogus'" "$T/crlf.ini"
# an indented line is its own key, not the continuation of the one before
printf '[train]\nlr = 0.01\n    k = 7\n' >"$T/indent.ini"
shows "$T/indent.ini" '^  --k X .*\[7\]$'
shows "$T/indent.ini" '^  --lr X .*\[0.01\]$'
printf '[train]\nlr = 0.01\n    0.02\n' >"$T/cont.ini"
expect "cont.ini:3: expected 'key = value'" "$T/cont.ini"
# the path itself
mkdir "$T/dir.ini"
expect "dir.ini: cannot open config file: is a directory" "$T/dir.ini"
expect "cannot open config file: No such file" "$T/missing.ini"
expect "--config: cannot open config file: the path is empty" ""
# sections, duplicates, bytes
printf 'k = 4\n\n[eval]\nk = 5\n' >"$T/section.ini"
expect "section.ini:3: section [eval] does not apply to 'sae train'" "$T/section.ini"
printf '[train]\nk = 4\n[train]\nk = 5\n' >"$T/dup.ini"
expect "dup.ini:4: duplicate key 'k' in [train] (first set at line 2)" "$T/dup.ini"
printf 'lr_warmup = 0.1\n[train]\nlr-warmup = 0.2\n' >"$T/dup2.ini"
expect "dup2.ini:3: 'lr-warmup' is already set on line 1" "$T/dup2.ini"
printf '[train]\nk = 4\nlr = 0.1\0\n' >"$T/nul.ini"
expect "nul.ini:3: contains a NUL byte" "$T/nul.ini"
printf '\xef\xbb\xbf[train]\r\nk = 6 ; a comment\r\n' >"$T/bom.ini"
shows "$T/bom.ini" '^  --k X .*\[6\]$'
printf '[train]\nlatents = 32\nbogus_key = 1\n' >"$T/unknown.ini"
expect "unknown.ini:3: unknown key 'bogus_key'" "$T/unknown.ini"
printf '[train]\nlr = "fast"\n' >"$T/value.ini"
expect "value.ini:2: --lr expects a number, got 'fast'" "$T/value.ini"
# string keys are kept until exit without a leak (the binary's LeakSanitizer runs at exit)
printf '[train]\nlog = "%s/a b ; c.log"\nwidths = 1,2\n' "$T" >"$T/strings.ini"
shows "$T/strings.ini" '\[.*/a b ; c\.log\]$'
# every shipped config still loads
for ini in "$(dirname "$0")"/../configs/*.ini; do
    if "$SAE" train --config "$ini" --help >/dev/null 2>"$T/err"; then ok
    else bad "shipped config $ini: $(cat "$T/err")"; fi
done

echo "harden_ini: $pass passed, $fail failed"
[ "$fail" = 0 ]
