"""Shared pieces of the PyTorch reference trainers in bench/ (TopK and ReLU).

Everything here is the part of the recipe that is not the SAE step itself, so
that both references prepare data, schedule and evaluate exactly alike and
exactly as `sae train` / `sae eval` do:

- the whole training file is held in memory as fp32; a 16384-row sample fixes
  the input scale (E||x||^2 = d after scaling) and, scaled, feeds the
  geometric median that initialises b_dec;
- batches follow a seeded permutation of the rows, reshuffled when it runs out;
- lr_at: linear warm-up over the first 5% of steps, linear decay to 0 over the
  last 20%; l1_at: linear l1 warm-up (ReLU recipe);
- evaluation on a held-out file: FVU in original units, mean L0 and, when the
  file holds /truth/features, mmcs (mean over true features of the best
  cosine with a decoder row) and the fraction recovered (best cosine > 0.9).
"""
import argparse
import json
import math

import h5py
import numpy as np
import torch

SAMPLE_ROWS = 16384
EVAL_CHUNK = 4096


def base_parser(description, lr):
    """Arguments common to both references (arch-specific ones are added by the caller)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("train", nargs="?", help="training activations (HDF5 with /activations)")
    ap.add_argument("heldout", nargs="?",
                    help="held-out activations (HDF5; /truth/features optional)")
    ap.add_argument("--tokens", type=int, default=2_000_000)
    ap.add_argument("--latents", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    return ap


def parse(ap, files_optional=False):
    """Parse arguments; TRAIN and HELDOUT are required unless files_optional."""
    a = ap.parse_args()
    if not files_optional and (a.train is None or a.heldout is None):
        ap.error("TRAIN and HELDOUT files are required")
    return a


def setup(a):
    """Threads and seeds, in the order the original script used them."""
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    return np.random.default_rng(a.seed)


def read_activations(path):
    """/activations of an HDF5 file as an fp32 tensor (no second copy when already fp32)."""
    with h5py.File(path, "r") as f:
        return torch.from_numpy(np.asarray(f["activations"][:], dtype=np.float32))


def load_train(path, rng):
    """Training rows, the input scale, and the scaled sample for the geometric median."""
    X = read_activations(path)
    n, d = X.shape
    sample = X[torch.from_numpy(rng.choice(n, size=min(n, SAMPLE_ROWS), replace=False))]
    scale = math.sqrt(d / sample.pow(2).sum(1).mean().item())
    return X, scale, sample * scale


def geometric_median(x, iters=100):
    """Weiszfeld iterations from the mean, stopping at a 1e-6 relative step."""
    y = x.mean(0)
    for _ in range(iters):
        w = 1.0 / torch.clamp((x - y).norm(dim=1), min=1e-8)
        y_new = (w[:, None] * x).sum(0) / w.sum()
        done = (y_new - y).norm() <= 1e-6 * y_new.norm()
        y = y_new
        if done:
            break
    return y


def lr_at(step, total, lr, warm=0.05, decay=0.2):
    s = step + 1.0
    f = 1.0
    if s < warm * total:
        f = s / (warm * total)
    start = (1 - decay) * total
    if s > start:
        f = min(f, (total - s + 1) / (total - start + 1))
    return lr * f


def l1_at(step, total, l1, warm=0.05):
    s = step + 1.0
    if s < warm * total:
        return l1 * s / (warm * total)
    return l1


def batches(X, scale, batch, steps, rng):
    """Yield `steps` scaled batches of rows in a seeded random order (new order per epoch)."""
    n = len(X)
    order = torch.from_numpy(rng.permutation(n))
    for step in range(steps):
        lo = (step * batch) % n
        rows = order[lo:lo + batch]
        if len(rows) < batch:  # wrap into a new epoch
            order = torch.from_numpy(rng.permutation(n))
            rows = order[:batch]
        yield X[rows] * scale


def set_lr(opt, lr):
    for group in opt.param_groups:
        group["lr"] = lr


@torch.inference_mode()
def evaluate(path, scale, reconstruct, W_dec):
    """Held-out metrics. reconstruct(x_scaled) -> (xhat_scaled, number of active codes)."""
    with h5py.File(path, "r") as h:
        Xh = torch.from_numpy(np.asarray(h["activations"][:], dtype=np.float32))
        truth = (torch.from_numpy(np.asarray(h["truth/features"][:], dtype=np.float32))
                 if "truth/features" in h else None)
    sse, active = 0.0, 0
    for lo in range(0, len(Xh), EVAL_CHUNK):
        x = Xh[lo:lo + EVAL_CHUNK] * scale
        xhat, n_active = reconstruct(x)
        sse += ((xhat - x) / scale).double().pow(2).sum().item()
        active += int(n_active)
    Xd = Xh.double()
    var = (Xd - Xd.mean(0)).pow(2).sum().item()
    out = {"fvu": sse / var, "mmcs": None, "recovered": None, "l0": active / len(Xh)}
    if truth is not None:
        truth = truth / truth.norm(dim=1, keepdim=True)
        dirs = W_dec / W_dec.norm(dim=1, keepdim=True).clamp(min=1e-12)
        best = (truth @ dirs.t()).max(1).values
        out["mmcs"] = best.mean().item()
        out["recovered"] = (best > 0.9).float().mean().item()
    return out


def report(metrics, **fields):
    """Print the one JSON object a benchmark run produces."""
    print(json.dumps({**metrics, **fields}))
