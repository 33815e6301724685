#!/usr/bin/env python3
"""Quality comparison of `sae train --arch batchtopk|matryoshka|jumprelu` with
the PyTorch references of the same recipes (bench/torch_arch_reference.py).

    python3 bench/compare_arch.py [--quick] [--torch-only] [--sae build/sae]

It writes a synthetic training file and a held-out file with `sae synth`
(a planted dictionary, so mmcs is measurable), then for each architecture
trains with `sae train` and evaluates with `sae eval`, trains and evaluates the
PyTorch reference with the same settings (every setting is passed explicitly
to both sides, so a change of the C defaults cannot make them differ), and
writes bench/results/arch_compare.json and bench/results/arch_compare.md: per
architecture the held-out FVU, mmcs and L0 of both, and PASS/MISS against

  - held-out FVU within 5% (relative) of the reference's,
  - mmcs within 0.02 of the reference's,
  - L0 within 10% of the target (k, or target_l0) on both sides.

With --torch-only (before the C side exists) only the reference runs, and
only its L0 is judged. A failing `sae train` is recorded in the results and
the comparison goes on. It reports and never fails a build.

Debian 12's OpenBLAS 0.3.21 does not know recent Xeons and falls back to its
generic (Prescott) kernels, 4x slower; unless OPENBLAS_CORETYPE is set the
children run with OPENBLAS_CORETYPE=SKYLAKEX on CPUs with AVX-512
(--openblas-coretype none leaves it alone). That changes speed, not results.
"""
import argparse
import json
import os
import sys
import time

import run as bench  # bench/run.py: timed, torch_python, cpu_name, fmt

ROOT = bench.ROOT
ARCHS = ("batchtopk", "matryoshka", "jumprelu")
CRITERIA = dict(fvu_rel=0.05, mmcs_abs=0.02, l0_rel=0.10)

# Default sizes (full, --quick). Features default to 8 d and latents to 16 d
# (2x the planted features), the ratios of the d=512, M=8192 benchmark config.
SIZES = {
    "full": dict(d=256, tokens=2_000_000, rows=2_000_000, heldout_rows=50_000),
    "quick": dict(d=128, tokens=400_000, rows=400_000, heldout_rows=20_000),
}


def log(msg):
    print(f"compare_arch: {msg}", file=sys.stderr, flush=True)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (minutes)")
    ap.add_argument("--torch-only", action="store_true", help="run only the PyTorch references")
    ap.add_argument("--sae", default=os.path.join(ROOT, "build", "sae"), help="the sae binary")
    ap.add_argument("--archs", default=",".join(ARCHS))
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "arch_compare"),
                    help="data files and checkpoints")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "arch_compare.json"),
                    help="JSON result (the markdown table goes beside it, .md)")
    size = ap.add_argument_group("sizes")
    for key in ("d", "tokens", "rows", "heldout_rows"):
        size.add_argument("--" + key.replace("_", "-"), type=int,
                          help=f"default {SIZES['full'][key]} (--quick {SIZES['quick'][key]})")
    size.add_argument("--features", type=int, help="planted features (default 8 d)")
    size.add_argument("--latents", type=int, help="dictionary size M (default 16 d)")
    size.add_argument("--widths", help="matryoshka widths, the last = M (default M/8,M/2,M)")
    ap.add_argument("--active", type=float,
                    help="synth: mean active features per row (default 12 d / 512: the density "
                         "of the d=512 benchmark data)")
    ap.add_argument("--data-seed", type=int, default=1, help="synth seed (train and held-out)")
    ap.add_argument("--dtype", default="f16", choices=("f16", "f32"), help="synth storage type")
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=0, help="training seed (both sides)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-3, help="peak Adam lr, batchtopk and matryoshka")
    ap.add_argument("--jumprelu-lr", type=float, default=5e-3, help="peak Adam lr, jumprelu")
    ap.add_argument("--dead-tokens", type=int, default=1_000_000)
    ap.add_argument("--k", type=int, default=32, help="batchtopk, matryoshka")
    ap.add_argument("--threshold-lr", type=float, default=0.05,
                    help="batchtopk, matryoshka: rate of the inference threshold's estimate")
    ap.add_argument("--target-l0", type=int, default=32, help="jumprelu")
    ap.add_argument("--sparsity-coef", type=float, default=10.0, help="jumprelu lambda")
    ap.add_argument("--sparsity-warmup", type=float, default=0.05, help="jumprelu")
    # pre-activations are O(1) at this input scale (E||x||^2 = d): these reach L0 ~ 32
    # within 2M tokens at d=256 (Adam moves theta by about lr per step)
    ap.add_argument("--bandwidth", type=float, default=0.05, help="jumprelu eps")
    ap.add_argument("--threshold-init", type=float, default=-1.0,
                    help="jumprelu theta_0 (-1: where the initial SAE has L0 = target)")
    ap.add_argument("--openblas-coretype", default="auto",
                    help="OPENBLAS_CORETYPE for the children: auto (SKYLAKEX on AVX-512 CPUs "
                         "unless already set), none, or a core name")
    a = ap.parse_args()
    for key, val in SIZES["quick" if a.quick else "full"].items():
        if getattr(a, key) is None:
            setattr(a, key, val)
    a.features = a.features or 8 * a.d
    a.active = a.active or 12 * a.d / 512
    a.latents = a.latents or 16 * a.d
    a.widths = a.widths or f"{a.latents // 8},{a.latents // 2},{a.latents}"
    a.archs = a.archs.split(",")
    for arch in a.archs:
        if arch not in ARCHS:
            ap.error(f"unknown arch {arch!r} (choose from {', '.join(ARCHS)})")
    return a


def set_openblas_env(choice):
    if choice == "none":
        return os.environ.get("OPENBLAS_CORETYPE")
    if choice == "auto":
        if "OPENBLAS_CORETYPE" in os.environ:
            return os.environ["OPENBLAS_CORETYPE"]
        if "avx512f" not in bench.cpu_flags():
            return None
        choice = "SKYLAKEX"
    os.environ["OPENBLAS_CORETYPE"] = choice
    return choice


def make_data(a):
    """Train and held-out files, reused when written with the same settings."""
    os.makedirs(a.work, exist_ok=True)
    tag = f"d{a.d}_f{a.features}_a{a.active:g}_s{a.data_seed}_{a.dtype}"
    files = {}
    for split, n, extra in (("train", a.rows, []), ("heldout", a.heldout_rows, ["--heldout"])):
        path = os.path.join(a.work, f"{tag}_{split}_{n}.h5")
        files[split] = path
        if os.path.exists(path):
            continue
        log(f"writing {path}")
        bench.timed([a.sae, "synth", "--out", path, "--n", str(n), "--d", str(a.d),
                     "--features", str(a.features), "--active", f"{a.active:g}",
                     "--seed", str(a.data_seed), "--dtype", a.dtype, "--threads", str(a.threads),
                     *extra])
    return files["train"], files["heldout"]


def arch_flags(a, arch):
    """The architecture's settings, as flags both trainers take."""
    batch = ["--k", str(a.k), "--threshold-lr", f"{a.threshold_lr:g}"]
    if arch == "batchtopk":
        return batch
    if arch == "matryoshka":
        return batch + ["--widths", a.widths]
    return ["--target-l0", str(a.target_l0), "--sparsity-coef", f"{a.sparsity_coef:g}",
            "--sparsity-warmup", f"{a.sparsity_warmup:g}", "--bandwidth", f"{a.bandwidth:g}",
            "--threshold-init", f"{a.threshold_init:g}"]


def common_flags(a, arch):
    lr = a.jumprelu_lr if arch == "jumprelu" else a.lr
    return ["--latents", str(a.latents), "--tokens", str(a.tokens), "--batch", str(a.batch),
            "--seed", str(a.seed), "--threads", str(a.threads), "--lr", f"{lr:g}",
            "--dead-tokens", str(a.dead_tokens)]


def run_sae(a, arch, train, held):
    out = os.path.join(a.work, f"{arch}.h5")
    cmd = [a.sae, "train", "--data", train, "--out", out, "--arch", arch, *common_flags(a, arch),
           *arch_flags(a, arch), "--checkpoint-every", "0"]
    try:
        _, _, train_s, rss = bench.timed(cmd)
        ev, _, eval_s, _ = bench.timed([a.sae, "eval", "--sae", out, "--data", held,
                                        "--threads", str(a.threads)])
    except RuntimeError as e:
        return dict(error=str(e), cmd=cmd)
    r = json.loads(ev)
    r.update(train_wall_s=train_s, eval_wall_s=eval_s, peak_rss_mib=rss, cmd=cmd)
    return r


def run_torch(a, py, arch, train, held):
    cmd = [py, os.path.join(ROOT, "bench", "torch_arch_reference.py"), train, held,
           "--arch", arch, *common_flags(a, arch), *arch_flags(a, arch)]
    try:
        out, _, secs, rss = bench.timed(cmd)
    except RuntimeError as e:
        return dict(error=str(e), cmd=cmd)
    r = json.loads(out.strip().splitlines()[-1])
    r.update(wall_s=secs, peak_rss_mib=rss, cmd=cmd)
    return r


def target_of(a, arch):
    return a.target_l0 if arch == "jumprelu" else a.k


def judge(a, arch, sae, ref):
    """The criteria that hold, the ones that fail, and the verdict."""
    target = target_of(a, arch)
    have_sae = sae is not None and "error" not in sae
    have_ref = "error" not in ref
    checks = {}
    if have_sae and have_ref:
        checks["fvu"] = abs(sae["fvu"] - ref["fvu"]) <= CRITERIA["fvu_rel"] * ref["fvu"]
        if sae.get("mmcs") is not None and ref.get("mmcs") is not None:
            checks["mmcs"] = abs(sae["mmcs"] - ref["mmcs"]) <= CRITERIA["mmcs_abs"]
    for side, r, present in (("sae", sae, have_sae), ("torch", ref, have_ref)):
        if present:
            checks[f"l0 {side}"] = abs(r["l0"] - target) <= CRITERIA["l0_rel"] * target
    missed = [name for name, passed in checks.items() if not passed]
    if sae is not None and not have_sae:
        verdict = "MISS (sae failed)"
    elif not have_ref:
        verdict = "MISS (torch failed)"
    elif missed:
        verdict = "MISS (" + ", ".join(missed) + ")"
    else:
        verdict = "PASS" + (" (torch only)" if sae is None else "")
    return dict(checks=checks, verdict=verdict, target=target)


def settings_text(a, arch):
    lr = a.jumprelu_lr if arch == "jumprelu" else a.lr
    s = f"d={a.d} M={a.latents} {a.tokens / 1e6:g}M tok lr={lr:g}"
    if arch == "batchtopk":
        return s + f" k={a.k} θ-rate={a.threshold_lr:g}"
    if arch == "matryoshka":
        return s + f" k={a.k} θ-rate={a.threshold_lr:g} widths={a.widths}"
    return (s + f" target_l0={a.target_l0} λ={a.sparsity_coef:g} ε={a.bandwidth:g} "
                f"θ0={a.threshold_init:g}")


def table(res):
    f = bench.fmt
    lines = [
        f"Machine: {res['machine']['cpu']}, {res['machine']['cores']} cores; {res['date']}; "
        f"mode {res['mode']}{', torch only' if res['torch_only'] else ''}; data: `sae synth "
        f"--d {res['config']['d']} --features {res['config']['features']} --active "
        f"{res['config']['active']:g}`, {res['config']['rows']} training rows, "
        f"{res['config']['heldout_rows']} held-out rows.",
        "",
        "| arch | settings | sae fvu | torch fvu | rel. diff | sae mmcs | torch mmcs | diff | "
        "sae l0 | torch l0 | target | L0 off-target % (sae / torch) | result |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in res["rows"]:
        sae = row["sae"] if row["sae"] and "error" not in row["sae"] else {}
        ref = row["torch"] if "error" not in row["torch"] else {}
        t = row["target"]
        rel = diff = None
        if sae and ref:
            rel = (sae["fvu"] - ref["fvu"]) / ref["fvu"]
            if sae.get("mmcs") is not None and ref.get("mmcs") is not None:
                diff = sae["mmcs"] - ref["mmcs"]
        off = " / ".join(f(100 * (r["l0"] - t) / t, "+.1f") if r else "n/a" for r in (sae, ref))
        lines.append(
            f"| {row['arch']} | {row['settings']} | {f(sae.get('fvu'), '.4f')} | "
            f"{f(ref.get('fvu'), '.4f')} | {f(rel if rel is None else 100 * rel, '+.1f')}"
            f"{'%' if rel is not None else ''} | {f(sae.get('mmcs'), '.4f')} | "
            f"{f(ref.get('mmcs'), '.4f')} | {f(diff, '+.4f')} | {f(sae.get('l0'), '.2f')} | "
            f"{f(ref.get('l0'), '.2f')} | {t:g} | {off} | {row['verdict']} |")
    lines += ["", "Criteria: held-out FVU within 5% (relative) of torch's, mmcs within 0.02, "
                  "L0 within 10% of the target on both sides.", ""]
    for row in res["rows"]:
        parts = []
        if row["sae"] is not None:
            s = row["sae"]
            parts.append("sae failed" if "error" in s else
                         f"sae train {s['train_wall_s']:.0f} s + eval {s['eval_wall_s']:.0f} s")
        r = row["torch"]
        parts.append("torch failed" if "error" in r else
                     f"torch {r['wall_s']:.0f} s ({r['tokens_per_s']:,.0f} tokens/s in training)")
        lines.append(f"- {row['arch']}: " + ", ".join(parts))
    return "\n".join(lines) + "\n"


def write_atomic(path, text):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as fh:
        fh.write(text)
    os.replace(path + ".tmp", path)


def main():
    a = parse_args()
    if not os.access(a.sae, os.X_OK):
        sys.exit(f"compare_arch: {a.sae} is missing; build it (scripts/setup.sh) or pass --sae")
    py = bench.torch_python()
    if not py:
        sys.exit("compare_arch: python3-torch and python3-h5py are needed (Debian packages)")
    coretype = set_openblas_env(a.openblas_coretype)
    t_start = time.time()
    train, held = make_data(a)
    res = dict(date=time.strftime("%Y-%m-%d"), mode="quick" if a.quick else "full",
               torch_only=a.torch_only,
               machine=dict(cpu=bench.cpu_name(), cores=os.cpu_count(),
                            openblas_coretype=coretype),
               config={k: v for k, v in vars(a).items() if k not in ("out", "work")},
               criteria=CRITERIA, rows=[])
    for arch in a.archs:
        sae = None
        if not a.torch_only:
            log(f"{arch}: sae train + eval")
            sae = run_sae(a, arch, train, held)
            if "error" in sae:
                log(f"{arch}: sae failed: {sae['error'][-300:]}")
        log(f"{arch}: torch reference")
        ref = run_torch(a, py, arch, train, held)
        if "error" in ref:
            log(f"{arch}: torch failed: {ref['error'][-300:]}")
        row = dict(arch=arch, settings=settings_text(a, arch), sae=sae, torch=ref)
        row.update(judge(a, arch, sae, ref))
        res["rows"].append(row)
        log(f"{arch}: {row['verdict']}")
    res["wall_s"] = time.time() - t_start
    write_atomic(a.out, json.dumps(res, indent=1) + "\n")
    md = table(res)
    md_path = os.path.splitext(a.out)[0] + ".md"
    write_atomic(md_path, md)
    print(md)
    log(f"wrote {a.out} and {md_path} ({res['wall_s'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
