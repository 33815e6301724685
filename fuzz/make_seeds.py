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


def config_seeds():
    # the shipped configs (ours), then the cases inih got wrong and the grammar's edges
    cfg = os.path.join(HERE, "..", "configs")
    for name in sorted(os.listdir(cfg)):
        if name.endswith(".ini"):
            with open(os.path.join(cfg, name), "rb") as f:
                put("fuzz_config", name, f.read())
    pad = b"x" * 250
    put("fuzz_config", "long_comment", b"; " + pad + b" k = 9 " + pad + b"\n[train]\nk = 32\n")
    put("fuzz_config", "long_value", b"[train]\nout = /" + b"v" * 1000 + b"\nk = 1\n")
    put("fuzz_config", "bom_crlf", b"\xef\xbb\xbf[train]\r\n  latents = 32 ; M\r\n\r\nk=4\r\n")
    put("fuzz_config", "quotes", b'a = "x ; y # \\" \\\\ "  # c\nb = a;b#c\nc =\nd = "" ;\n[ s ] ; n\ne = 1 = 2\n')
    put("fuzz_config", "duplicate", b"[s]\na = 1\n[t]\na = 2\n[s]\n a = 3\n")
    put("fuzz_config", "continuation", b"lr = 0.1\n   more\n")
    put("fuzz_config", "stop", b"[x]\nk = 1\nstop = now\nafter = 2\n")
    put("fuzz_config", "bad_bytes", b"a = 1\nb = 2\rc\nd = \x01\ne = x\x00y\n")


def main():
    config_seeds()
    tokenizer_seeds()


if __name__ == "__main__":
    main()
