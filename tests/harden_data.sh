#!/usr/bin/env bash
# tests/harden_data.sh SAE: crafted inputs of the data layer, end to end.
# Each case must give one clear error naming its cause (exit 1, no crash, no
# hang) or the right result:
#   - a damaged HDF5 global heap under /vocab (HDF5 1.10 itself crashes on it)
#     in an activation file (features) and in a features file (show);
#   - an activation file declaring 2^40 rows it never wrote (train, features);
#   - a file another process holds open for writing is "locked";
#   - /doc_source and /predictions damaged (the rows of /predictions are
#     checked when a command reads them);
#   - a directory as model or tokenizer; a long-context model captured with a
#     short --seq-len; JSON Lines with a BOM, \u0000 and junk after the object.
# Files are made with h5py; without it the test is skipped (exit 77).
set -u
S=$1
. "$(dirname "$0")/expect.sh"
need_h5py
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=2 HDF5_USE_FILE_LOCKING=FALSE
cd "$T"

# damage_heap IN OUT PIECE: the global heap object holding PIECE claims 2^40 bytes
damage_heap() {
    "$PY" - "$1" "$2" "$3" <<'EOF'
import struct, sys
d = bytearray(open(sys.argv[1], "rb").read())
piece, hits, g = sys.argv[3].encode(), 0, d.find(b"GCOL")
while g >= 0:
    o = g + 16  # objects: index u16, refcount u16, reserved u32, size u64, data padded to 8
    while o + 16 <= len(d):
        idx = struct.unpack_from("<H", d, o)[0]
        size = struct.unpack_from("<Q", d, o + 8)[0]
        if idx == 0 or size > len(d):
            break
        if d[o + 16:o + 16 + size] == piece:
            struct.pack_into("<Q", d, o + 8, 1 << 40)
            hits += 1
        o += 16 + (size + 7) // 8 * 8
    g = d.find(b"GCOL", g + 4)
open(sys.argv[2], "wb").write(d)
sys.exit(0 if hits else 1)
EOF
}

# --- damaged variable-length strings --------------------------------------
expect_ok "$S" synth --out a.h5 --n 4096 --d 16 --features 32 --active 3 --seed 1
expect_ok "$S" train --data a.h5 --out s.h5 --latents 32 --k 4 --batch 256 --tokens 8192
"$PY" -c "import h5py; print(h5py.File('a.h5')['vocab'][3].decode())" >piece.txt
piece=$(cat piece.txt)
damage_heap a.h5 heap.h5 "$piece" || fail "no heap object '$piece' in a.h5"
expect_error "/vocab" "$S" features --sae s.h5 --data heap.h5 --out f_heap.h5
[ -e f_heap.h5 ] && fail "features wrote an output from a damaged file"
expect_ok "$S" features --sae s.h5 --data a.h5 --out f.h5
damage_heap f.h5 f_bad.h5 "$piece" || fail "no heap object '$piece' in f.h5"
# the damaged object hides the attributes stored after it in the heap, so the
# message may be about those; what matters is one error naming the file
expect_error "f_bad.h5" "$S" show f_bad.h5 --feature 0

# --- declared rows the file does not hold ---------------------------------
"$PY" - <<'EOF'
import h5py, numpy as np
with h5py.File("sparse.h5", "w") as f:
    a = f.create_dataset("activations", (1024, 8), np.float32, maxshape=(None, 8), chunks=(1024, 8))
    a[:] = 1.0
    a.resize((1 << 40, 8))
with h5py.File("contig.h5", "w") as f:
    f.create_dataset("activations", (1 << 30, 8), np.float32)  # never written
with h5py.File("tok.h5", "w") as f:
    f["activations"] = np.ones((64, 8), np.float32)
    t = f.create_dataset("tokens", (16,), np.int32, maxshape=(None,), chunks=(16,))
    t[:] = 1
    t.resize((64,))
EOF
expect_error "declares 1099511627776 rows but stores only 1024" "$S" train --data sparse.h5 --out x.h5 --latents 16 --k 2
expect_error "declares 1099511627776 rows but stores only 1024" "$S" features --sae s.h5 --data sparse.h5 --out x.h5
expect_error "stores none" "$S" info contig.h5
expect_error "/tokens declares 64 rows but stores only 16" "$S" info tok.h5

# --- corpus documents and predictions written by h5py, damaged -------------
"$PY" - <<'EOF'
import h5py, numpy as np
def base(name, src=None, pred=None):
    with h5py.File(name, "w") as f:
        f["activations"] = np.random.default_rng(1).standard_normal((40, 8)).astype(np.float32)
        f["tokens"] = np.arange(40, dtype=np.int32) % 10
        f["vocab"] = np.array([f"t{i}" for i in range(10)], dtype=h5py.string_dtype())
        f["doc_offsets"] = np.arange(0, 41, 10, dtype=np.int64)
        f["doc_labels"] = np.array(["a", "b", "a", "b"], dtype=h5py.string_dtype())
        if src is not None: f["doc_source"] = np.array(src, dtype=np.int64)
        if pred is not None:
            ids, lp = pred
            f["predictions/token"], f["predictions/logprob"] = ids, lp
base("src_down.h5", [0, 1, 0, 2])
base("src_neg.h5", [-1, 0, 0, 1])
base("src_len.h5", [0, 1, 2])
ids = np.array([[r % 3, (r + 1) % 3, (r + 2) % 3] for r in range(40)], np.int32)
lp = np.tile(np.array([-1.0, -2.0, -3.0], np.float32), (40, 1))
bad = lp.copy(); bad[25] = [2.0, 1.0, 0.5]  # logits, not log-probabilities
base("pred_logits.h5", [0, 0, 1, 1], (ids, bad))
base("pred_ok.h5", [0, 0, 1, 1], (ids, lp))
EOF
expect_error "/doc_source[2] = 0: values must start at 0 or more, never decrease" "$S" info src_down.h5
expect_error "/doc_source[0] = -1" "$S" docs src_neg.h5
expect_error "/doc_source has 3 entries but there are 4 windows" "$S" info src_len.h5
expect_ok "$S" docs pred_ok.h5
grep -q "2 corpus documents in 4 windows" out.txt || fail "docs on h5py-written /doc_source: $(cat out.txt)"
# the rows are checked when read: info opens the file, a search that reads them refuses
expect_ok "$S" info pred_logits.h5
"$S" train --data pred_ok.h5 --out ps.h5 --latents 16 --k 2 --batch 8 >/dev/null 2>&1 || fail "train on pred_ok.h5"
expect_error "/predictions/logprob[25, 0] = 2: a log-probability must be finite and at most 0" \
    "$S" search --sae ps.h5 --data pred_logits.h5 --predicted-regex '^t1$'
expect_ok "$S" search --sae ps.h5 --data pred_ok.h5 --predicted-regex '^t0$' --min-count 1

# --- a file held open for writing by another process ----------------------
HDF5_USE_FILE_LOCKING=TRUE "$PY" -c "
import h5py, time, sys
f = [h5py.File(p, 'a') for p in ('a.h5', 's.h5', 'f.h5')]; open('held', 'w').close(); time.sleep(20)" &
holder=$!
for _ in $(seq 100); do [ -e held ] && break; sleep 0.1; done
HDF5_USE_FILE_LOCKING=TRUE expect_error "file is locked" "$S" train --data a.h5 --out x.h5 --latents 16 --k 2
grep -q truncated err.txt && fail "a locked file is called truncated"
# SAE files, checkpoints and features files are opened by their own loaders
HDF5_USE_FILE_LOCKING=TRUE expect_error "file is locked" "$S" info s.h5
HDF5_USE_FILE_LOCKING=TRUE expect_error "file is locked" "$S" show f.h5 --feature 0
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null

# --- models, tokenizers, corpora ------------------------------------------
"$PY" - <<'EOF'
import struct, random
random.seed(3)
def model(path, seq):
    dim, hid, L, nh, kv, V = 16, 32, 2, 4, 2, 300
    hs, kvd = dim // nh, dim * kv // nh
    n = V*dim + L*dim + 2*L*dim*dim + 2*L*kvd*dim + L*dim + 3*L*hid*dim + dim + seq*hs
    with open(path, "wb") as f:
        f.write(struct.pack("<7i", dim, hid, L, nh, kv, V, seq))
        f.write(struct.pack("<%df" % n, *[random.uniform(-0.25, 0.25) for _ in range(n)]))
model("m.bin", 32)
model("long.bin", 1 << 17)  # scores sized by seq_len^2 would need 64 GiB a thread
pieces = ["<unk>", "\n<s>\n", "\n</s>\n"] + ["<0x%02X>" % b for b in range(256)]
pieces += [chr(ord("a") + i) for i in range(26)] + [" ", " t", "th", "he", " the", "in", "an", "er", "on", " a", "re", "at", "en", "nd", "ed"]
with open("tok.bin", "wb") as f:
    f.write(struct.pack("<i", 8))
    for i, p in enumerate(pieces):
        b = p.encode()
        f.write(struct.pack("<fi", -0.1 * i, len(b)) + b)
with open("bom.jsonl", "wb") as f:
    f.write(b'\xef\xbb\xbf{"text": "the cat sat", "label": "en"}\n{"text": "on the mat", "label": "fr"}\n')
with open("nul.jsonl", "wb") as f:
    f.write(b'{"text": "fine"}\n{"text": "cut\\u0000here"}\n')
with open("junk.jsonl", "wb") as f:
    f.write(b'{"text": "fine"}\n\n{"text": "more"} trailing\n')
EOF
mkdir adir
M=(--model m.bin --tokenizer tok.bin --layer 1)
expect_error "is a directory" "$S" capture --model adir --tokenizer tok.bin --corpus bom.jsonl --layer 0 --out x.h5
expect_error "is a directory" "$S" capture --model m.bin --tokenizer adir --corpus bom.jsonl --layer 0 --out x.h5
expect_ok "$S" capture "${M[@]}" --corpus bom.jsonl --out bom.h5
"$PY" -c "
import h5py, sys
f = h5py.File('bom.h5')
labels = sorted(set(x.decode() for x in f['doc_labels'][:]))
sys.exit(0 if labels == ['en', 'fr'] else 1)" || fail "a BOM made the JSON Lines corpus read as plain text"
expect_error "line 2: the text contains \\u0000" "$S" capture "${M[@]}" --corpus nul.jsonl --out x.h5
expect_error "line 3: junk after the JSON object" "$S" capture "${M[@]}" --corpus junk.jsonl --out x.h5
expect_ok "$S" capture --model long.bin --tokenizer tok.bin --layer 0 --seq-len 16 --corpus bom.jsonl --out long.h5

if [ $fails -ne 0 ]; then echo "$fails failure(s)"; exit 1; fi
echo "harden_data: all cases pass"
