#!/usr/bin/env bash
# tests/multisite_cli.sh SAE: `sae capture` with lists of layers and sites,
# end to end on stories260K (5 blocks):
#   - --layer 0,2,4 --site resid_post,mlp_out writes 6 files, each identical
#     (cmp) to the file a capture of that site alone writes; the same with
#     --predictions (one /predictions computed for every file), with
#     --dtype f16 and --keep-bos, and with the layers out of order;
#   - two separate captures of one site are identical too (the premise of
#     the comparison: no times or paths make files differ);
#   - with one pair --out is a name, its placeholders substituted;
#   - usage errors give one `sae: error:` line and exit 2: a pattern without
#     {layer} or {site}, an unknown placeholder, a layer or site given twice,
#     a bad list, a layer past the model's depth, an output that is the
#     corpus, two pairs that expand to one file;
#   - a run that fails after the outputs were opened (a bad corpus line
#     after some batches, an empty corpus) leaves no file and no temporary.
# Skipped (exit 77) without ../shared/models/stories260K.
set -u
S=$1
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED=${SAE_SHARED:-$HERE/../../shared}
M=$SHARED/models/stories260K
if [ ! -f "$M/stories260K.bin" ] || [ ! -f "$M/tok512.bin" ]; then
    echo "SKIP: $M/stories260K.bin or tok512.bin not found (set SAE_SHARED to the shared folder)"
    exit 77
fi
. "$HERE/expect.sh"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=2 HDF5_USE_FILE_LOCKING=FALSE
cd "$T"

cat >c.txt <<'EOF'
Once upon a time, there was a little girl named Lily. She loved to play
outside in the park with her red ball. One day she saw a big dog.

The dog was happy. He ran to the tree and sat down under it. Lily gave
him a stick, and they played until the sun went down.

Tom had a small boat. He took it to the pond and watched it float.
A duck swam by and said hello. Tom laughed and waved at the duck.

Mom made a cake for the party. Everyone sang a song and ate a piece.
It was the best day ever, and all the friends went home smiling.
EOF
CAP=("$S" capture --model "$M/stories260K.bin" --tokenizer "$M/tok512.bin" --corpus c.txt
     --seq-len 32 --batch 64)

# same_as_alone OPTS... -- each "m_L_S.h5" (from the multi-site run) must
# equal a capture of layer L, site S alone with the same OPTS
same_as_alone() {
    local f l s
    for f in m_*.h5; do
        l=${f#m_}; l=${l%%_*}; s=${f#m_*_}; s=${s%.h5}
        expect_ok "${CAP[@]}" "$@" --layer "$l" --site "$s" --out "alone_${l}_$s.h5"
        cmp -s "$f" "alone_${l}_$s.h5" || fail "$f differs from a capture of layer $l $s alone ($*)"
    done
}
count() { ls -1 "$@" 2>/dev/null | wc -l; }

# separate captures of one site are reproducible, whatever the file's name
expect_ok "${CAP[@]}" --layer 2 --out r1.h5
sleep 1.1 # HDF5 object times have 1 s resolution: they would differ now
expect_ok "${CAP[@]}" --layer 2 --out r2.h5
cmp -s r1.h5 r2.h5 || fail "two captures of layer 2 differ (object times? paths?)"

# 3 layers x 2 sites from one pass
expect_ok "${CAP[@]}" --layer 0,2,4 --site resid_post,mlp_out --out 'm_{layer}_{site}.h5'
[ "$(count m_*.h5)" = 6 ] || fail "want 6 files from 3 layers x 2 sites, got: $(ls m_*.h5)"
for l in 0 2 4; do for s in resid_post mlp_out; do
    [ -f "m_${l}_$s.h5" ] || fail "m_${l}_$s.h5 not written"
done; done
grep -c '^sae capture: wrote' err.txt | grep -qx 6 || fail "want one 'wrote' line per file: $(cat err.txt)"
same_as_alone
rm -f m_*.h5 alone_*.h5

# --predictions: every file gets the same /predictions
expect_ok "${CAP[@]}" --layer 1 --site resid_pre,attn_out --predictions 3 --out 'm_1_{site}.h5'
[ "$(count m_*.h5)" = 2 ] || fail "want 2 files with --predictions, got: $(ls m_*.h5)"
same_as_alone --predictions 3
rm -f m_*.h5 alone_*.h5

# float16 storage, BOS kept, layers in any order
expect_ok "${CAP[@]}" --layer 3,1 --dtype f16 --keep-bos --out 'm_{layer}_resid_post.h5'
[ "$(count m_*.h5)" = 2 ] || fail "want 2 float16 files, got: $(ls m_*.h5)"
same_as_alone --dtype f16 --keep-bos
rm -f m_*.h5 alone_*.h5

# one pair: --out as given, placeholders substituted
expect_ok "${CAP[@]}" --layer 2 --site mlp_out --out 'one_{layer}_{site}.h5'
[ -f one_2_mlp_out.h5 ] || fail "one pair: one_{layer}_{site}.h5 not expanded to one_2_mlp_out.h5"
expect_ok "${CAP[@]}" --layer 2 --site mlp_out --out plain.h5
cmp -s one_2_mlp_out.h5 plain.h5 || fail "one pair: the pattern and the plain name differ"

# usage errors, each before anything is written
expect_usage "--out: 3 layers need {layer} in the pattern" "${CAP[@]}" --layer 0,2,4 --out x.h5
grep -qF "x_L{layer}.h5" err.txt || fail "no suggested pattern: $(cat err.txt)"
expect_usage "--out: 2 sites need {site} in the pattern" "${CAP[@]}" --layer 1 \
    --site resid_post,mlp_out --out x.h5
expect_usage "--out: 2 sites need {site} in the pattern" "${CAP[@]}" --layer 1,2 \
    --site resid_post,mlp_out --out 'x{layer}.h5'
expect_usage "need {layer} and {site}" "${CAP[@]}" --layer 1,2 --site resid_post,mlp_out --out x.h5
expect_usage "unknown placeholder {layers}" "${CAP[@]}" --layer 1,2 --out 'x{layers}.h5'
expect_usage "--layer: layer 1 is given twice" "${CAP[@]}" --layer 1,2,1 --out 'x{layer}.h5'
expect_usage "--site: mlp_out is given twice" "${CAP[@]}" --layer 1 --site mlp_out,mlp_out \
    --out 'x{site}.h5'
expect_usage "--layer: \"1,,3\" is not a block index" "${CAP[@]}" --layer 1,,3 --out 'x{layer}.h5'
expect_usage "--layer: \"-1\" is not a block index" "${CAP[@]}" --layer -1 --out x.h5
expect_usage "--site: \"resid\" is not a site" "${CAP[@]}" --layer 1 --site resid_post,resid \
    --out 'x{site}.h5'
expect_usage "--layer: layer 7 is out of range: the model has 5 blocks (0..4)" "${CAP[@]}" \
    --layer 0,7 --out 'x{layer}.h5'
cp c.txt c_1.txt
expect_usage "--out (layer 1 resid_post) is the --corpus file" "$S" capture \
    --model "$M/stories260K.bin" --tokenizer "$M/tok512.bin" --corpus c_1.txt --layer 0,1 \
    --out 'c_{layer}.txt'
cmp -s c.txt c_1.txt || fail "the corpus was overwritten"
mkdir d0 d1
expect_usage "are the same file" "${CAP[@]}" --layer 0,1 --out 'd{layer}/../same.h5'
[ "$(count x*.h5 same.h5 ./*.tmp.*)" = 0 ] || fail "a refused capture left files: $(ls)"

# failures after the outputs were opened: nothing left behind
{ for i in $(seq 1 12); do echo "{\"text\": \"Lily saw a big red ball number $i in the park.\"}"; done
  echo '{"txt": "misspelt"}'; } >late.jsonl
expect_error 'line 13: key "txt" looks like a misspelling of "text"' "$S" capture \
    --model "$M/stories260K.bin" --tokenizer "$M/tok512.bin" --corpus late.jsonl --seq-len 16 \
    --batch 16 --layer 0,3 --site resid_post,attn_out --out 'late_{layer}_{site}.h5'
[ "$(count late_* ./*.tmp.*)" = 0 ] || fail "a failed capture left files: $(ls)"
printf '\n\n   \n' >empty.txt
expect_error "no text to capture" "$S" capture --model "$M/stories260K.bin" \
    --tokenizer "$M/tok512.bin" --corpus empty.txt --layer 1,2 --out 'e_{layer}.h5'
[ "$(count e_* ./*.tmp.*)" = 0 ] || fail "an empty corpus left files: $(ls)"

if [ "$fails" -ne 0 ]; then echo "$fails failure(s)"; exit 1; fi
echo "multisite_cli: all passed"
exit $((fails > 0))
