#!/usr/bin/env bash
# tests/flags_cli.sh SAE: a flag given twice on one command line.
#   - where only one value could be used (`--log a --log b`, `--k 32 --k 64`,
#     `--top=3 --top 4`) and for switches (`--resume --resume`): exit 2 and one
#     `sae: error:` line naming the flag, on every command that parses flags;
#   - a repeatable (CLI_STRS) flag keeps every value: `sae search --where`,
#     checked when that command has it;
#   - a config file's value and the same flag: the flag wins, no error; a
#     repeated --config is refused like any other flag.
set -u
SAE=$1
. "$(dirname "$0")/expect.sh"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"


# values
expect_usage "--log is given twice" "$SAE" train --data d.h5 --out s.h5 --log a.jsonl --log b.jsonl
expect_usage "--k is given twice" "$SAE" train --data d.h5 --out s.h5 --k 32 --k 64
expect_usage "--sae is given twice" "$SAE" eval --sae a.h5 --sae b.h5 --data d.h5
expect_usage "--top is given twice" "$SAE" features --sae s.h5 --data d.h5 --out f.h5 --top=3 --top 4
expect_usage "--out is given twice" "$SAE" viz density --features f.h5 --out a.png --out b.png
expect_usage "--scale is given twice" "$SAE" viz curves --log l.jsonl --out a.png --scale 2 --scale 3
expect_usage "--n is given twice" "$SAE" synth --out d.h5 --n 100 --n 200
expect_usage "--feature is given twice" "$SAE" show f.h5 --feature 1 --feature 2
# switches, and the twice-given flag is found even with --help
expect_usage "--resume is given twice" "$SAE" train --data d.h5 --out s.h5 --resume --resume
expect_usage "--heldout is given twice" "$SAE" synth --out d.h5 --heldout --heldout
expect_usage "--k is given twice" "$SAE" train --k 8 --help --k 16
# the message says what to do
"$SAE" train --data d.h5 --out s.h5 --k 32 --k 64 2>err.txt
grep -qF "it takes one value; give it once" err.txt || fail "the message does not say to give it once: $(cat err.txt)"

# a config's value, then the flag: the flag wins
printf 'k = 8\nlog = from_config.jsonl\n' >c.ini
expect_ok "$SAE" train --config c.ini --k 16 --help
grep -qE -- '--k X .*\[16\]' out.txt || fail "--k 16 after a config's k = 8: $(grep -- '--k X' out.txt)"
grep -qE -- '--log X .*\[from_config.jsonl\]' out.txt || fail "the config's log is lost: $(grep -- '--log X' out.txt)"
expect_ok "$SAE" train --k 16 --config c.ini --help
grep -qE -- '--k X .*\[16\]' out.txt || fail "--k 16 before --config: $(grep -- '--k X' out.txt)"
expect_usage "--config is given twice" "$SAE" train --config c.ini --config c.ini --help
# a key given twice in one config stays the config reader's error
printf 'k = 8\nk = 9\n' >twice.ini
expect_usage "duplicate key 'k'" "$SAE" train --config twice.ini --help

# a repeatable flag: every value kept, none refused as given twice
if "$SAE" search --help 2>/dev/null | grep -qE -- '--where X \(repeatable\)'; then
    "$SAE" search --sae s.h5 --data d.h5 --token-regex a --where doc=1 --where label!=en >out.txt 2>err.txt
    ! grep -qF "given twice" err.txt || fail "--where twice was refused: $(cat err.txt)"
    expect_usage "--sae is given twice" "$SAE" search --sae a.h5 --sae b.h5 --data d.h5 --where doc=1 --where doc=2
else
    echo "note: sae search has no repeatable --where yet; the repeatable flag is not checked here"
fi

if [ "$fails" -ne 0 ]; then
    echo "$fails case(s) failed"
    exit 1
fi
echo "flags_cli: all cases passed"
