#!/usr/bin/env python3
"""Capture activations from a Hugging Face transformers model into a schema-v1
activation file (the format `sae train` reads; see the README).

For models that live in transformers (Llama, Qwen, Gemma, GPT-2, ...) rather
than in llama2.c files. `sae capture` is the path for llama2.c models.

    python3 tools/capture_hf.py --model gpt2 --corpus docs.jsonl --layer 6 --out acts.h5

What it writes (as `sae capture` does):
  /activations [N, d]  the residual stream after block L (hidden_states[L + 1]),
                       or before it with --site resid_pre (hidden_states[L]);
                       the BOS position of each window is dropped unless --keep-bos
  /tokens, /doc_offsets (one document per window), /doc_labels, /doc_source,
  /vocab (tokenizer.decode of every id), /unembed and /final_norm when the
  model has them; attributes d_model, model, layer, hook, schema_version = 1.
Note: in many transformers models the last entry of hidden_states already has
the final norm applied, so resid_post of the last block is not the raw stream.

Corpus: JSON Lines ({"text": ..., "label": ...}) or plain text with documents
separated by blank lines. Needs torch, transformers, h5py and numpy.
"""
import argparse
import json
import os
import sys

import h5py
import numpy as np


def read_corpus(path):
    with open(path, encoding="utf-8") as f:
        data = f.read()
    if data.lstrip().startswith("{"):
        for n, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"capture_hf: error: {path}: line {n}: {e}")
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                sys.exit(f'capture_hf: error: {path}: line {n}: not an object with a "text" string')
            yield obj["text"], obj.get("label")
    else:
        for doc in data.split("\n\n"):
            if doc.strip():
                yield doc.strip("\n"), None


def find_final_norm(model):
    for path in ("model.norm", "transformer.ln_f", "model.final_layernorm", "gpt_neox.final_layer_norm"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None and getattr(obj, "weight", None) is not None:
            return obj.weight.detach().float().cpu().numpy()
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="name or path for from_pretrained")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--layer", type=int, required=True, help="block, counted from 0")
    ap.add_argument("--site", choices=["resid_post", "resid_pre"], default="resid_post")
    ap.add_argument("--seq-len", type=int, default=256, help="tokens per window, BOS included")
    ap.add_argument("--dtype", choices=["f32", "f16"], default="f32")
    ap.add_argument("--keep-bos", action="store_true")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32)
    model.eval()
    n_layers = model.config.num_hidden_layers
    if not 0 <= a.layer < n_layers:
        sys.exit(f"capture_hf: error: --layer: {a.layer} is out of range (0..{n_layers - 1})")
    d = model.config.hidden_size
    bos = tok.bos_token_id
    skip = 0 if a.keep_bos or bos is None else 1
    index = a.layer + 1 if a.site == "resid_post" else a.layer
    dt = np.float16 if a.dtype == "f16" else np.float32

    tmp = a.out + ".tmp"
    try:
        n = write(a, tmp, tok, model, d, bos, skip, index, dt)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)  # never leave a half-written file behind
        raise
    os.replace(tmp, a.out)
    print(f"capture_hf: wrote {a.out} ({n} rows, d={d})", file=sys.stderr)


def write(a, tmp, tok, model, d, bos, skip, index, dt):
    import torch

    offsets, labels, sources = [0], [], []
    with h5py.File(tmp, "w") as f:
        acts = f.create_dataset("activations", shape=(0, d), maxshape=(None, d), dtype=dt,
                                chunks=(max(16, (1 << 20) // (d * np.dtype(dt).itemsize)), d))
        toks = f.create_dataset("tokens", shape=(0,), maxshape=(None,), dtype=np.int32, chunks=(65536,))
        n = 0
        for doc, (text, label) in enumerate(read_corpus(a.corpus)):
            ids = tok(text, add_special_tokens=False)["input_ids"]
            width = a.seq_len - (1 if bos is not None else 0)
            for w0 in range(0, len(ids), width):
                window = ([bos] if bos is not None else []) + ids[w0:w0 + width]
                with torch.no_grad():
                    out = model(torch.tensor([window]), output_hidden_states=True)
                h = out.hidden_states[index][0, skip:].float().cpu().numpy().astype(dt)
                rows = len(window) - skip
                acts.resize(n + rows, axis=0)
                acts[n:n + rows] = h
                toks.resize(n + rows, axis=0)
                toks[n:n + rows] = np.asarray(window[skip:], dtype=np.int32)
                n += rows
                offsets.append(n)
                labels.append(label or "")
                sources.append(doc)
        if n == 0:
            sys.exit(f"capture_hf: error: {a.corpus}: no text to capture (empty corpus)")
        V = model.get_output_embeddings().weight.shape[0]  # may exceed len(tok): padding rows
        vocab = [tok.decode([i]).replace("\n", "\\n") if i < len(tok) else f"<unused {i}>"
                 for i in range(V)]
        f.create_dataset("doc_offsets", data=np.asarray(offsets, dtype=np.int64))
        f.create_dataset("doc_labels", data=labels, dtype=h5py.string_dtype())
        f.create_dataset("doc_source", data=np.asarray(sources, dtype=np.int64))
        f.create_dataset("vocab", data=vocab, dtype=h5py.string_dtype())
        f.create_dataset("unembed", data=model.get_output_embeddings().weight.detach().float().cpu().numpy())
        norm = find_final_norm(model)
        if norm is not None:
            f.create_dataset("final_norm", data=norm)
        f.attrs.update(d_model=d, model=a.model, layer=a.layer, hook=a.site, schema_version=1,
                       seq_len=a.seq_len, keep_bos=int(bool(a.keep_bos)))
    return n


if __name__ == "__main__":
    main()
