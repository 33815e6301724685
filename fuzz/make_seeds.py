#!/usr/bin/env python3
"""Writes the small hand-made seed inputs in fuzz/corpus/ (run from anywhere).

Seeds are built here from the published layouts, not copied from ../shared
(whose files stay out of the repository). Harness owners add a function below
and call it from main(); rerunning rewrites the same bytes."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(harness, name, data):
    d = os.path.join(HERE, "corpus", harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def tokenizer_bin(pieces):
    """llama2.c tokenizer.bin: int32 max_token_length, then per piece a float32
    score, an int32 byte length and the bytes."""
    out = struct.pack("<i", max(len(p.encode()) for p in pieces))
    for i, p in enumerate(pieces):
        b = p.encode()
        out += struct.pack("<fi", -float(i), len(b)) + b
    return out


def tokenizer_seeds():
    # <unk>, <s>, </s>, 256 byte pieces, then a few merges (English and Japanese)
    pieces = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % i for i in range(256)]
    pieces += [" ", "e", "t", "th", " the", "み", "か", "ん", "みかん", "きりん"]
    tok = tokenizer_bin(pieces)
    # harness layout: 2 bytes expected vocab (0 = any), the file, 0xFF, a text
    put("fuzz_tokenizer", "small", b"\0\0" + tok)
    put("fuzz_tokenizer", "small_encode", b"\0\0" + tok + b"\xff" + " the みかん".encode())
    n = len(pieces)
    put("fuzz_tokenizer", "small_expected", struct.pack("<H", n) + tok + b"\xffthe")


def main():
    tokenizer_seeds()


if __name__ == "__main__":
    main()
