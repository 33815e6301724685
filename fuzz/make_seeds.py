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


def sae_file_seed(arch, d, m, flags=1 | 2 | 4, threshold_rows=0, widths=()):
    """fuzz_sae_file's layout (see the harness): arch, d-1, m-1, flags,
    format_version, then one "as written" byte per attribute, then per tensor
    a shape byte (1 = right shape, float32, written) and its value bytes."""
    out = bytes([arch, d - 1, m - 1, flags, 1])
    out += bytes([0] * 8)  # k, aux_k, aux_coef, input_scale, threshold_lr, target_l0, bandwidth, threshold_init
    for rows, cols in ((d, m), (m, 0), (m, d), (d, 0)):
        n = rows * (cols or 1)
        out += b"\x01" + bytes((0x80 + 3 * i) % 0xFE for i in range(n))
    out += (b"\x01" + bytes([0x90] * threshold_rows)) if threshold_rows else b"\x00"
    out += bytes([len(widths)]) + bytes(widths)
    return out


def features_file_seed(M, N, V, lens=False):
    """fuzz_features_file's layout: M-1, flags, (N-1) | V << 4, then per
    dataset a shape byte (1 = right shape, written) and its values; ids as
    bytes whose low 3 bits are 5 pick (byte >> 3) % range."""
    flags = 1 | 2 | 4 | 8 | (32 if lens else 0)
    out = bytes([M - 1, flags, (N - 1) | V << 4])
    def ints(n, rng):
        return bytes(5 | ((i % min(rng, 31)) << 3) for i in range(n))
    def floats(n):
        return bytes(100 + (7 * i) % 120 for i in range(n))
    for is_float, cols, rng in ((0, 0, 40), (1, 0, 0), (1, 0, 0), (0, 40, 1000), (1, N, 0), (0, N, 50),
                                (1, 5, 0), (0, 5, 50), (0, 10, V), (0, 10, 9), (0, 10, V), (1, 10, 0)):
        n = M * (cols or 1)
        out += b"\x01" + (floats(n) if is_float else ints(n, max(rng, 1)))
    out += b"\x01" + b"".join(bytes([2, 0x61, 0x62 + j]) for j in range(M))  # labels
    if lens:
        for is_float in (0, 0, 1, 1):
            out += b"\x01" + (floats(M * 10) if is_float else ints(M * 10, V))
    out += b"".join(bytes([1, 0x41 + j]) for j in range(V))  # vocab
    return out


def model_seeds():
    put("fuzz_sae_file", "topk", sae_file_seed(0, 4, 8))
    put("fuzz_sae_file", "relu", sae_file_seed(1, 3, 5))
    put("fuzz_sae_file", "batchtopk", sae_file_seed(2, 4, 8, flags=1 | 2 | 4 | 16, threshold_rows=1))
    put("fuzz_sae_file", "jumprelu", sae_file_seed(3, 2, 6, threshold_rows=6))
    put("fuzz_sae_file", "matryoshka", sae_file_seed(4, 4, 8, flags=1 | 2 | 4 | 16, threshold_rows=1, widths=(4, 1)))
    # d_model declared as 2^32 (raw 64 bits) over 4-wide datasets
    huge = bytearray(sae_file_seed(0, 4, 8, flags=1 | 4))
    huge[5:5] = bytes([3]) + struct.pack("<Q", 1 << 32)
    put("fuzz_sae_file", "huge_d", bytes(huge))
    put("fuzz_features_file", "plain", features_file_seed(3, 4, 5))
    put("fuzz_features_file", "lens", features_file_seed(2, 2, 7, lens=True))
    put("fuzz_features_file", "no_vocab", features_file_seed(4, 3, 0))
    line = '{"step":%d,"tokens":%d,"loss":0.5,"mse":0.1,"fvu":%s,"l0":%s,"dead_frac":%s,"lr":0.002}\n'
    put("fuzz_curves", "log", "".join(line % (i, 256 * i, 1.0 / i, 4, 0) for i in range(1, 9)).encode())
    put("fuzz_curves", "zeros", (line % (0, 0, 0, 0, 0) + line % (1, 256, 0, 4, 1)).encode())
    put("fuzz_curves", "huge", (line % (1, 1, "1e308", "-1e308", "1e-320") + line % (2, 2, 1, 2, 0)).encode())


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


def llama_bin(dim, hidden, layers, heads, kv, vocab, seq, shared=True):
    """llama2.c checkpoint (version 0, run.c's layout): 7 int32 (dim, hidden_dim,
    n_layers, n_heads, n_kv_heads, vocab_size (negative: separate classifier),
    seq_len), then float32 token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1,
    w2, w3, rms_final, freq_cis real and imag, [wcls]."""
    hs, kvd = dim // heads, dim * kv // heads
    n = (vocab * dim + layers * dim + 2 * layers * dim * dim + 2 * layers * kvd * dim +
         layers * dim + 3 * layers * hidden * dim + dim + seq * hs + (0 if shared else vocab * dim))
    x, w = 7, []
    for _ in range(n):
        x = (x * 1664525 + 1013904223) % 2**32
        w.append(((x >> 8) / 16777216.0 - 0.5) * 0.5)
    v = vocab if shared else -vocab
    return struct.pack("<7i", dim, hidden, layers, heads, kv, v, seq) + struct.pack("<%df" % n, *w)


def data_seeds():
    tiny = llama_bin(8, 16, 1, 2, 1, 32, 8)
    put("fuzz_llama", "tiny", b"\0" + tiny)
    put("fuzz_llama", "tiny_wcls", b"\0" + llama_bin(8, 12, 2, 4, 2, 20, 4, shared=False))
    put("fuzz_llama", "padded", b"\1" + tiny[:28] + tiny[28:92])
    put("fuzz_llama", "padded_nan", b"\1" + tiny[:28] + b"\x00\x00\xc0\x7f\x00\x00\x80\x7f")
    put("fuzz_llama", "short", b"\0" + tiny[:200])
    put("fuzz_corpus", "jsonl", b'{"text": "the cat", "label": "en"}\n\n{"text": "\xe3\x81\xbf"}\n')
    put("fuzz_corpus", "plain", b"first line\nsecond\n\n\nnext doc\r\n")
    put("fuzz_corpus", "bom", b"\xef\xbb\xbf{\"text\": \"a\"}\n")
    put("fuzz_corpus", "escapes", b'{"text": "a\\u0000b"}\n{"text": "c\\\\u0000 \\ud83d\\ude00"}\n')
    put("fuzz_corpus", "junk", b'{"text": "a"} x\n{"text": "b", "label": 3}\n')
    # fuzz_actfile: 19 choice bytes (all zero = a valid file), then values/text
    values = bytes(range(0, 250, 3)) + b"\xff\xfe"
    put("fuzz_actfile", "valid", bytes(19) + values)
    put("fuzz_actfile", "isolated", bytes(8) + b"\x0f" + bytes(10) + values)  # strings read in a child
    put("fuzz_actfile", "f16_chunks", bytes([7, 3, 1, 2]) + bytes(15) + values)
    put("fuzz_actfile", "unwritten_2e40", bytes([0, 0, 16, 0, 40]) + bytes(14))
    put("fuzz_actfile", "bad_token", bytes([9, 1, 0, 0, 0, 16, 3, 5]) + bytes(11))
    put("fuzz_actfile", "bad_offsets", bytes([20, 1, 0, 0, 0, 0, 0, 0, 0, 0, 4, 2, 2, 9]) + bytes(5))
    put("fuzz_actfile", "extras", bytes([5, 3, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 7, 1, 1]) + b"ab\xc3(")


def safetensors_bytes(tensors):
    """safetensors: 8-byte LE header length, JSON header, then F32 data"""
    import json
    header, blob = {}, b""
    for name, shape in tensors:
        n = 1
        for k in shape:
            n *= k
        data = struct.pack("<%df" % n, *[0.01 * (i % 7 - 3) for i in range(n)])
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def npz_bytes(arrays):
    """.npz: a zip of .npy (version 1 headers, little-endian float32, C order)"""
    import io
    import zipfile
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, shape in arrays:
            n = 1
            for k in shape:
                n *= k
            hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % "".join("%d," % k for k in shape)
            hdr = hdr.encode() + b" " * (-(len(hdr) + 11) % 64) + b"\n"
            npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr
            z.writestr(name + ".npy", npy + struct.pack("<%df" % n, *[0.02 * (i % 5 - 2) for i in range(n)]))
    return out.getvalue()


def tensorfile_seeds():
    """fuzz_tensorfile: byte 0 even = a tensor file as it is; odd = cfg.json NUL weights"""
    import json
    d, m = 4, 8
    sl = [("W_enc", (d, m)), ("b_enc", (m,)), ("W_dec", (m, d)), ("b_dec", (d,))]
    put("fuzz_tensorfile", "safetensors", b"\x00" + safetensors_bytes(sl))
    put("fuzz_tensorfile", "npz", b"\x00" + npz_bytes(sl + [("threshold", (m,))]))
    cfg = {"architecture": "topk", "d_in": d, "d_sae": m, "k": 2, "apply_b_dec_to_input": True,
           "normalize_activations": "none", "metadata": {"hook_name": "blocks.0.hook_resid_post"}}
    put("fuzz_tensorfile", "saelens_topk", b"\x01" + json.dumps(cfg).encode() + b"\x00" + safetensors_bytes(sl))
    jr = dict(cfg, architecture="jumprelu")
    put("fuzz_tensorfile", "saelens_jumprelu",
        b"\x01" + json.dumps(jr).encode() + b"\x00" + safetensors_bytes(sl + [("threshold", (m,))]))
    sp = [("encoder.weight", (m, d)), ("encoder.bias", (m,)), ("W_dec", (m, d)), ("b_dec", (d,))]
    put("fuzz_tensorfile", "sparsify", b"\x03" + json.dumps({"k": 2, "num_latents": m}).encode() + b"\x00"
        + safetensors_bytes(sp))


def main():
    data_seeds()
    config_seeds()
    model_seeds()
    tokenizer_seeds()
    tensorfile_seeds()


if __name__ == "__main__":
    main()
