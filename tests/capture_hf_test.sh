#!/usr/bin/env bash
# tests/capture_hf_test.sh SAE: tools/capture_hf.py on a tiny randomly
# initialised Llama from transformers writes a schema-v1 file that `sae info`
# and `sae train` accept. Skips (exit 77) where torch/transformers/h5py are
# not importable (Debian 12 packages no transformers).
set -eu
SAE=$1
HERE=$(cd "$(dirname "$0")" && pwd)
PY=
for p in /usr/bin/python3 "$(command -v python3)"; do
    if "$p" -c "import torch, transformers, tokenizers, h5py, numpy" 2>/dev/null; then PY=$p; break; fi
done
if [ -z "$PY" ]; then
    echo "SKIP: torch, transformers, tokenizers, h5py and numpy are not all importable here"
    exit 77
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/saehf.XXXXXX")
trap 'rm -rf "$T"' EXIT
"$PY" - "$T" <<'PYEOF'
import sys
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
t = sys.argv[1]
words = ["<unk>", "<s>", "</s>"] + "the a cat dog sat on mat みかん きりん and ran".split()
tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
tk.pre_tokenizer = pre_tokenizers.Whitespace()
fast = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
fast.save_pretrained(f"{t}/m")
cfg = LlamaConfig(vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, bos_token_id=1, eos_token_id=2)
LlamaForCausalLM(cfg).save_pretrained(f"{t}/m")
with open(f"{t}/c.jsonl", "w") as f:
    f.write('{"text": "the cat sat on the mat", "label": "en"}\n{"text": "みかん and きりん", "label": "ja"}\n')
PYEOF
"$PY" "$HERE/../tools/capture_hf.py" --model "$T/m" --corpus "$T/c.jsonl" --layer 1 --out "$T/a.h5"
"$SAE" info "$T/a.h5" | grep -q "d=32"
"$SAE" train --data "$T/a.h5" --out "$T/s.h5" --latents 16 --k 2 --batch 4 >/dev/null 2>&1
echo "capture_hf: 1 passed, 0 failed"
