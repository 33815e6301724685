#!/usr/bin/env bash
# tests/docs_cli.sh SAE [MAKE_BAD_FILES]: corpus documents, windows and
# provenance, end to end, on jaen-6m captured with a short --seq-len so that
# documents span several windows:
#   - `sae docs` (counts, labels, --label, --grep, --json) and `sae info`;
#   - --doc/--window in show, viz trace and viz text, every output naming the
#     corpus document and the window; out-of-range values are one error line;
#   - provenance: an SAE trained on resid_post evaluated on mlp_out warns once
#     and exits 0; a width mismatch is an error;
#   - `sae show` from another folder finds the data by its absolute path, says
#     which file it needs when it is gone, warns for a different --data, and
#     still reads an older features file (relative path, no identity);
#   - `sae show --json` parses, with corpus doc, window, position and context.
# Needs /work/shared (skips with 77 without it) and h5py for the old-file case.
set -u
S=$(realpath "$1")
SHARED=$(cd "$(dirname "$0")/../.." && pwd)/shared
M=$SHARED/models/jaen-6m
if [ ! -f "$M/model.bin" ]; then
    echo "SKIP: $M/model.bin not found (the shared models are not here)"
    exit 77
fi
PY=/usr/bin/python3
. "$(dirname "$0")/expect.sh"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=2 HDF5_USE_FILE_LOCKING=FALSE
cd "$T"

# has FILE TEXT: FILE contains TEXT
has() { grep -qF -- "$2" "$1" || fail "$1 lacks '$2': $(head -c 800 "$1")"; }

# nine documents: four long Japanese and four long English ones, and a short one
"$PY" - "$SHARED/corpora" <<'EOF'
import json, sys
ja = open(sys.argv[1] + "/ja_train.txt", encoding="utf-8").read()
en = open(sys.argv[1] + "/en_train.txt", encoding="utf-8").read()
docs = []
for i in range(4):
    docs.append({"text": ja[i * 300:(i + 1) * 300], "label": "ja"})
    docs.append({"text": en[i * 500:(i + 1) * 500], "label": "en"})
docs.insert(3, {"text": "みかんときりんとぎんなん。ゎ", "label": "short"})
with open("docs.jsonl", "w", encoding="utf-8") as f:
    for d in docs:
        f.write(json.dumps(d, ensure_ascii=False) + "\n")
EOF
CAP="--model $M/model.bin --tokenizer $M/tokenizer.bin --corpus docs.jsonl --layer 2 --seq-len 48"
expect_ok "$S" capture $CAP --out a.h5
expect_ok "$S" capture $CAP --site mlp_out --out mlp.h5

# --- sae docs, sae info ---
expect_ok "$S" docs a.h5
has out.txt "9 corpus documents in"
has out.txt "みかんときりんとぎんなん。ゎ" # byte-fallback ゎ joined back
"$PY" - out.txt <<'EOF' || fail "sae docs: a long document should span several windows"
import sys
rows = [l.split() for l in open(sys.argv[1], encoding="utf-8") if l[:6].strip().isdigit()]
assert len(rows) == 9 and all(int(r[2]) >= 3 for r in rows if r[1] != "short"), rows
EOF
expect_ok "$S" docs a.h5 --label en
has out.txt "4 of 9 corpus documents shown"
expect_ok "$S" docs a.h5 --grep "ぎんなん"
has out.txt "1 of 9 corpus documents shown"
has out.txt "plain substring"
expect_ok "$S" docs a.h5 --json
"$PY" -c "
import json, sys
j = json.load(open('out.txt'))
assert j['corpus_documents'] == 9 and j['shown'] == 9, j
assert sum(d['windows'] for d in j['docs']) == j['windows']
assert sum(d['tokens'] for d in j['docs']) == j['tokens']
assert j['docs'][3]['label'] == 'short' and j['docs'][3]['text_start'].strip().startswith('みかん')
" || fail "sae docs --json: $(head -c 400 out.txt)"
expect_status 2 "--grep" "$S" docs a.h5 --grep ""
expect_ok "$S" info a.h5
has out.txt "9 corpus documents in"
has out.txt "ja 4, en 4, short 1"

# --- provenance ---
expect_ok "$S" train --data a.h5 --out s.h5 --latents 256 --k 8 --tokens 20000 --batch 256
expect_ok "$S" info s.h5
has out.txt "layer 2, hook resid_post"
has out.txt "data identity  "
has out.txt "trained on     $T/a.h5"
expect_ok "$S" eval --sae s.h5 --data mlp.h5
[ "$(grep -c '^sae: warning:' err.txt)" -eq 1 ] && grep -q "different site" err.txt ||
    fail "eval on another site: want one warning naming the site: $(cat err.txt)"
expect_ok "$S" eval --sae s.h5 --data a.h5
[ -s err.txt ] && fail "eval on its own data warns: $(cat err.txt)"
expect_ok "$S" synth --out d32.h5 --n 2000 --d 32
expect_status 1 "d=32" "$S" eval --sae s.h5 --data d32.h5
expect_status 1 "d=32" "$S" features --sae s.h5 --data d32.h5 --out x.h5
expect_status 1 "d=32" "$S" viz trace --sae s.h5 --data d32.h5 --doc 0 --out x.png

# --- sae show: examples, --doc, --window, the data by absolute path ---
expect_ok "$S" features --sae s.h5 --data a.h5 --out f.h5
J=$("$PY" -c "
import h5py
f = h5py.File('f.h5', 'r')
c = f['count'][:]
print(int(c.argmax()))")
mkdir elsewhere && cd elsewhere
expect_ok "$S" show ../f.h5 --feature "$J" --color never
[ -s err.txt ] && fail "show from another folder warns: $(cat err.txt)"
grep -qE "row [0-9]+  doc [0-9]+, window [0-9]+ of [0-9]+ \(file window [0-9]+\), pos [0-9]+  .*\[.*\]" out.txt ||
    fail "show: examples should name doc, window, pos and show context: $(head -c 800 out.txt)"
expect_ok "$S" show ../f.h5 --feature "$J" --doc 0 --color never
grep -qE "^feature $J on doc 0, window [0-9]+ of 5 \(file window [0-9]+\)" out.txt || fail "show --doc: $(head -c 400 out.txt)"
expect_ok "$S" show ../f.h5 --feature "$J" --doc 1 --window 2 --color never
has out.txt "on doc 1, window 2 of 5 (file window 7)"
expect_status 2 "9 is out of range: there are 9 corpus documents" "$S" show ../f.h5 --feature "$J" --doc 9
expect_status 2 "corpus document 1 has 5 windows" "$S" show ../f.h5 --feature "$J" --doc 1 --window 5
expect_status 2 "--window is used only with --doc" "$S" show ../f.h5 --feature "$J" --window 1
expect_ok "$S" show ../f.h5 --feature "$J" --json --doc 1
"$PY" -c "
import json
j = json.load(open('out.txt'))
assert j['feature'] == $J and j['stats']['count'] > 0 and len(j['histogram']['counts']) == 40, j['stats']
assert j['top_tokens'] and 'promotes' in j['lens']
ex = j['top_examples'][0]
assert all(k in ex for k in ('doc', 'window', 'windows', 'file_window', 'pos', 'context', 'token')), ex
assert len(j['quantile_examples']) >= 1 and j['quantile_examples'][0]['quantile'] == 0.1
d = j['document']
assert d['doc'] == 1 and d['windows'] == 5 and len(d['tokens']) > 0
assert max(t['act'] for t in d['tokens']) == d['peak']
" || fail "show --json: $(head -c 600 out.txt)"
cd ..

# the data moved away: show says which file and identity it needs
mkdir moved && cp f.h5 moved/ && mv a.h5 moved/a_copy.h5
expect_ok "$S" show moved/f.h5 --feature "$J"
has err.txt "$T/a.h5"
has err.txt "same identity"
expect_status 1 "$T/a.h5" "$S" show moved/f.h5 --feature "$J" --doc 0
expect_ok "$S" show moved/f.h5 --feature "$J" --data moved/a_copy.h5
[ -s err.txt ] && fail "show --data with a copy warns: $(cat err.txt)"
expect_ok "$S" show moved/f.h5 --feature "$J" --data mlp.h5
has err.txt "is not the file these features were built from"
mv moved/a_copy.h5 a.h5

# viz: --doc/--window, names in the output, flags a figure ignores
expect_ok "$S" viz trace --sae s.h5 --data a.h5 --doc 2 --window 1 --out tr.png
has err.txt "doc 2, window 1 of 6 (file window 11)"
expect_ok "$S" viz text --sae s.h5 --data a.h5 --doc 1 --feature "$J" --out tx.png
grep -qE "doc 1, window [0-4] of 5" err.txt || fail "viz text: $(cat err.txt)"
expect_status 2 "--len is not used by viz text" "$S" viz text --sae s.h5 --data a.h5 --doc 1 --feature "$J" --len 5 --out tx.png
expect_status 2 "--start: 200 is beyond the window" "$S" viz trace --sae s.h5 --data a.h5 --doc 1 --window 0 --start 200 --out tr.png
expect_status 2 "--doc: 9 is out of range" "$S" viz trace --sae s.h5 --data a.h5 --doc 9 --out tr.png
expect_status 2 "--window: 6 is out of range" "$S" viz text --sae s.h5 --data a.h5 --doc 2 --window 6 --feature 1 --out tx.png

# an older features file: a relative data path and no identity, read from its folder
if "$PY" -c "import h5py" 2>/dev/null; then
    cp f.h5 old.h5
    "$PY" -c "
import h5py
f = h5py.File('old.h5', 'r+')
for k in ('data_n', 'data_d', 'data_fingerprint', 'model', 'layer', 'hook', 'tokenizer'):
    del f.attrs[k]
f.attrs['data'] = 'a.h5'"
    cd elsewhere
    expect_ok "$S" show ../old.h5 --feature "$J" --color never
    [ -s err.txt ] && fail "an older features file from another folder warns: $(cat err.txt)"
    grep -qE "doc [0-9]+, window [0-9]+ of" out.txt || fail "old features file: no contexts: $(head -c 400 out.txt)"
    cd ..
fi

if [ "$fails" -ne 0 ]; then
    echo "docs_cli: $fails failure(s)"
    exit 1
fi
echo "docs_cli: all passed"
