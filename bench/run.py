#!/usr/bin/env python3
"""The speed benchmark: sae against the machine's GEMM limit and a strong
PyTorch reference, in one run on this machine.

    python3 bench/run.py [--quick] [--out build/bench/result.json]

It reports and never fails a build. For each configuration (a: d=512, M=8192;
b: d=768, M=24576; both k=32, batch 4096) and each thread count it:
  1. measures the encoder product's peak through each GEMM library
     (build/bench/bench_encoder): OpenBLAS sgemm is "the sgemm peak";
  2. trains the topk SAE (f32, and bf16 where the CPU has it) on a synthetic
     file for a fixed token budget: tokens/s in steady state (from the
     training log, after the first report), effective GFLOP/s counting
     2*d*M flops per token (the encoder product), that as a fraction of the
     sgemm peak, peak RSS against the memory budget, and held-out FVU;
  3. runs bench/torch_topk_reference.py (sparse decoder, encoder backward
     restricted to the active latents) on the same data, batch, threads and
     tokens, and reports its tokens/s, FVU and our ratio to it;
  4. measures the features pass (`sae features`) the same way, and the relu
     architecture at configuration a (with its dense PyTorch reference).
It writes the JSON result and a markdown table (RESULT.md beside it), and
prints the table. Needs build/ (scripts/setup.sh); the PyTorch parts need
Debian's python3-torch and python3-h5py and are skipped, saying so, without.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAE = os.path.join(ROOT, "build", "sae")
BENCH_ENCODER = os.path.join(ROOT, "build", "bench", "bench_encoder")

CONFIGS = {
    "a": dict(d=512, latents=8192, features=4096),
    "b": dict(d=768, latents=24576, features=12288),
}
K, BATCH = 32, 4096
MEMORY_SLACK = 0.15  # the issue's bound: params + grads + Adam + buffer, plus 15%


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def timed(cmd):
    """Runs cmd with its output in temporary files; returns (stdout, stderr,
    seconds, peak RSS in MiB), the RSS from wait4: that child's own."""
    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe)
        _, status, ru = os.wait4(p.pid, 0)
        secs = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read(), fe.read()
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {err.strip()[-500:]}")
    return out, err, secs, ru.ru_maxrss / 1024.0


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    fl = line.split(":", 1)[1].split()
                    return [x for x in ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if x in fl]
    except OSError:
        pass
    return []


def torch_python():
    """A python that imports torch and h5py (Debian's), or None."""
    for py in (sys.executable, "/usr/bin/python3"):
        try:
            subprocess.run([py, "-c", "import torch, h5py"], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return py
        except (OSError, subprocess.CalledProcessError):
            continue
    return None


def make_data(work, name, cfg, rows, heldout_rows):
    train = os.path.join(work, f"{name}_train.h5")
    held = os.path.join(work, f"{name}_heldout.h5")
    common = ["--d", str(cfg["d"]), "--features", str(cfg["features"]), "--active", "12",
              "--dtype", "f16"]
    for path, n, extra in ((train, rows, []), (held, heldout_rows, ["--heldout"])):
        stamp = path + f".rows{n}"
        if os.path.exists(path) and os.path.exists(stamp):
            continue
        log(f"writing {path} ({n} rows, d={cfg['d']})")
        timed([SAE, "synth", "--out", path, "--n", str(n), *common, *extra])
        open(stamp, "w").close()
    return train, held


def encoder_peaks(cfg, threads):
    out, _, _, _ = timed([BENCH_ENCODER, str(cfg["d"]), str(cfg["latents"]), str(BATCH),
                          str(threads)])
    return {r["kind"]: r for r in map(json.loads, out.splitlines())}


def steady_rate(log_path):
    """tokens/s between the first and the last report of a training log."""
    rows = [json.loads(line) for line in open(log_path)]
    if len(rows) < 2:
        r = rows[-1]
        return r["tokens"] / r["elapsed_s"]
    a, b = rows[0], rows[-1]
    return (b["tokens"] - a["tokens"]) / (b["elapsed_s"] - a["elapsed_s"])


def memory_budget_mib(d, m, buffer_rows):
    params = 2 * d * m + m + d
    base = (4 * params * 4 + buffer_rows * d * 4) / 2**20  # params, grads, Adam m and v; buffer
    return base * (1 + MEMORY_SLACK), base


def train_sae(work, tag, train, held, arch, cfg, tokens, threads, precision, buffer_rows):
    out = os.path.join(work, f"{tag}.h5")
    log_path = os.path.join(work, f"{tag}.jsonl")
    if os.path.exists(log_path):
        os.remove(log_path)
    config = os.path.join(ROOT, "configs", f"{arch}.ini")
    cmd = [SAE, "train", "--config", config, "--data", train, "--out", out,
           "--latents", str(cfg["latents"]), "--batch", str(BATCH), "--tokens", str(tokens),
           "--threads", str(threads), "--precision", precision, "--buffer", str(buffer_rows),
           "--log", log_path, "--log-every", "5", "--checkpoint-every", "0"]
    if arch == "topk":
        cmd += ["--k", str(K)]
    _, _, secs, rss = timed(cmd)
    ev, _, _, _ = timed([SAE, "eval", "--sae", out, "--data", held, "--threads", str(threads)])
    ev = json.loads(ev)
    return dict(tokens_per_s=steady_rate(log_path), wall_s=secs, peak_rss_mib=rss,
                fvu=ev["fvu"], mmcs=ev.get("mmcs"), l0=ev["l0"], sae=out)


def features_pass(work, tag, sae_path, data, threads, precision):
    out = os.path.join(work, f"{tag}_feat.h5")
    _, err, secs, rss = timed([SAE, "features", "--sae", sae_path, "--data", data, "--out", out,
                               "--threads", str(threads), "--precision", precision])
    # "sae features: N tokens in S s (R tokens/s)"
    for line in err.splitlines():
        if line.startswith("sae features:") and "tokens/s" in line:
            rate = float(line.split("(")[1].split(" tokens/s")[0])
            return dict(tokens_per_s=rate, wall_s=secs, peak_rss_mib=rss)
    raise RuntimeError("sae features printed no rate: " + err[-300:])


def torch_reference(py, script, train, held, cfg, tokens, threads, extra=()):
    cmd = [py, os.path.join(ROOT, "bench", script), train, held, "--tokens", str(tokens),
           "--latents", str(cfg["latents"]), "--batch", str(BATCH), "--threads", str(threads),
           *extra]
    out, _, secs, rss = timed(cmd)
    r = json.loads(out.strip().splitlines()[-1])
    r.update(wall_s=secs, peak_rss_mib=rss)
    return r


def torch_row(config, threads, what, ref, flops_per_token, peak):
    """A table row for a PyTorch reference run."""
    gflops = ref["tokens_per_s"] * flops_per_token / 1e9
    return dict(config=config, threads=threads, what=what, tokens_per_s=ref["tokens_per_s"],
                gflops=gflops, of_peak=gflops / peak, fvu=ref["fvu"],
                peak_rss_mib=ref["peak_rss_mib"])


def bf16_supported():
    """Whether bench_encoder could plan the bf16 product on this CPU."""
    out, _, _, _ = timed([BENCH_ENCODER, "64", "64", "64", "1"])
    return any(r["kind"] == "onednn_bf16" and r["supported"]
               for r in map(json.loads, out.splitlines()))


def fmt(x, spec):
    return "n/a" if x is None else format(x, spec)


def table(res):
    lines = [
        f"Machine: {res['machine']['cpu']}, {res['machine']['cores']} cores "
        f"({', '.join(res['machine']['flags']) or 'no avx512'}); {res['date']}; "
        f"mode {res['mode']}.",
        "",
        "| config | threads | what | tokens/s | eff. GFLOP/s | of sgemm peak | vs torch | "
        "held-out FVU | peak RSS MiB (budget) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in res["rows"]:
        budget = row.get("rss_budget_mib")
        rss = fmt(row.get("peak_rss_mib"), ".0f")
        if budget:
            rss += f" ({budget:.0f})"
        lines.append(
            f"| {row['config']} | {row['threads']} | {row['what']} | "
            f"{fmt(row.get('tokens_per_s'), ',.0f')} | {fmt(row.get('gflops'), '.0f')} | "
            f"{fmt(row.get('of_peak'), '.0%')} | "
            f"{fmt(row.get('vs_torch'), '.2f') + 'x' if row.get('vs_torch') else ''} | "
            f"{fmt(row.get('fvu'), '.4f')} | {rss} |")
    lines.append("")
    lines.append("Encoder product peaks (GFLOP/s, batch 4096): " + "; ".join(
        f"{p['config']} {p['threads']}t: " + ", ".join(
            f"{k} {v['gflops']:.0f}" for k, v in p["kinds"].items() if v.get("supported"))
        for p in res["peaks"]))
    for t in res.get("scaling", []):
        lines.append(f"Scaling {t['what']} at {t['config']}: 2 threads / 1 thread = "
                     f"{t['ratio']:.2f}x")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="small token budgets and files (minutes, for checking the harness)")
    ap.add_argument("--configs", default="a,b")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "bench", "work"))
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "bench", "result.json"))
    ap.add_argument("--no-torch", action="store_true")
    a = ap.parse_args()
    for exe in (SAE, BENCH_ENCODER):
        if not os.access(exe, os.X_OK):
            sys.exit(f"bench: {exe} is missing; run scripts/setup.sh first")
    os.makedirs(a.work, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    py = None if a.no_torch else torch_python()
    if not py and not a.no_torch:
        log("python3-torch/python3-h5py not found: skipping the PyTorch references")
    bf16 = bf16_supported()
    if not bf16:
        log("this CPU has no bf16 instructions: skipping --precision bf16")
    threads = [int(t) for t in a.threads.split(",")]
    # token budgets: config b costs 4.5x config a per token
    budget = {"a": 245760 if a.quick else 819200, "b": 49152 if a.quick else 163840}
    # the memory check wants a file at least 4x the shuffle buffer
    buffer_rows = {"a": 65536 if a.quick else 262144, "b": 16384 if a.quick else 131072}
    res = dict(date=time.strftime("%Y-%m-%d"), mode="quick" if a.quick else "full",
               machine=dict(cpu=cpu_name(), cores=os.cpu_count(), flags=cpu_flags()),
               rows=[], peaks=[], scaling=[])
    for name in a.configs.split(","):
        cfg = CONFIGS[name]
        tokens, buf = budget[name], buffer_rows[name]
        file_rows = max(tokens, 4 * buf + 4096)
        train, held = make_data(a.work, name, cfg, file_rows, 20000 if a.quick else 100000)
        flops_per_token = 2 * cfg["d"] * cfg["latents"]
        budget_mib, _ = memory_budget_mib(cfg["d"], cfg["latents"], buf)
        rates = {}
        for t in threads:
            peaks = encoder_peaks(cfg, t)
            res["peaks"].append(dict(config=name, threads=t, kinds=peaks))
            peak = peaks["openblas_f32"]["gflops"]
            ref = None
            if py:
                log(f"config {name}, {t} threads: PyTorch reference")
                ref = torch_reference(py, "torch_topk_reference.py", train, held, cfg, tokens, t,
                                      ["--k", str(K)])
                res["rows"].append(torch_row(name, t, "torch topk (sparse)", ref, flops_per_token, peak))
            for prec in ["f32"] + (["bf16"] if bf16 else []):
                log(f"config {name}, {t} threads: sae train topk {prec}")
                tag = f"{name}_topk_{prec}_t{t}"
                r = train_sae(a.work, tag, train, held, "topk", cfg, tokens, t, prec, buf)
                rates[(prec, t)] = r["tokens_per_s"]
                gf = r["tokens_per_s"] * flops_per_token / 1e9
                res["rows"].append(dict(
                    config=name, threads=t, what=f"sae topk {prec}", tokens_per_s=r["tokens_per_s"],
                    gflops=gf, of_peak=gf / peak, fvu=r["fvu"], mmcs=r["mmcs"],
                    vs_torch=r["tokens_per_s"] / ref["tokens_per_s"] if ref else None,
                    peak_rss_mib=r["peak_rss_mib"], rss_budget_mib=budget_mib,
                    wall_s=r["wall_s"], file_rows=file_rows, buffer_rows=buf))
                log(f"features pass {prec}")
                fp = features_pass(a.work, tag, r["sae"], held, t, prec)
                gf = fp["tokens_per_s"] * flops_per_token / 1e9
                res["rows"].append(dict(config=name, threads=t, what=f"sae features {prec}",
                                        tokens_per_s=fp["tokens_per_s"], gflops=gf,
                                        of_peak=gf / peak, peak_rss_mib=fp["peak_rss_mib"]))
        for prec in ("f32", "bf16"):
            if (prec, 1) in rates and (prec, 2) in rates:
                res["scaling"].append(dict(config=name, what=f"sae topk {prec}",
                                           ratio=rates[(prec, 2)] / rates[(prec, 1)]))
        if name == "a":
            t = max(threads)
            peak = [p for p in res["peaks"] if p["config"] == name and p["threads"] == t][0]
            peak = peak["kinds"]["openblas_f32"]["gflops"]
            relu_tokens = tokens // 8
            ref = None
            if py:
                log(f"config {name}, {t} threads: PyTorch relu reference")
                ref = torch_reference(py, "torch_relu_reference.py", train, held, cfg, relu_tokens, t)
                res["rows"].append(torch_row(name, t, "torch relu (dense)", ref, flops_per_token, peak))
            for prec in ["f32"] + (["bf16"] if bf16 else []):
                log(f"config {name}, {t} threads: sae train relu {prec}")
                r = train_sae(a.work, f"{name}_relu_{prec}_t{t}", train, held, "relu", cfg,
                              relu_tokens, t, prec, buf)
                gf = r["tokens_per_s"] * flops_per_token / 1e9
                res["rows"].append(dict(
                    config=name, threads=t, what=f"sae relu {prec}", tokens_per_s=r["tokens_per_s"],
                    gflops=gf, of_peak=gf / peak, fvu=r["fvu"],
                    vs_torch=r["tokens_per_s"] / ref["tokens_per_s"] if ref else None,
                    peak_rss_mib=r["peak_rss_mib"]))
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(res, f, indent=1)
    os.replace(tmp, a.out)
    md = table(res)
    md_path = os.path.splitext(a.out)[0] + ".md"
    with open(md_path + ".tmp", "w") as f:
        f.write(md)
    os.replace(md_path + ".tmp", md_path)
    print(md)
    log(f"wrote {a.out} and {md_path}")


if __name__ == "__main__":
    main()
