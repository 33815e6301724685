#!/usr/bin/env python3
"""A straightforward PyTorch implementation of the TopK SAE recipe `sae train`
uses, for comparing quality on the same data and token budget.

Same recipe: inputs scaled so E||x||^2 = d, b_dec from the geometric median of
a sample, encoder initialised as the decoder's transpose, unit-norm decoder
rows with the parallel gradient component removed, AuxK on latents dead for
`dead_tokens`, Adam with linear warm-up (5%) and linear decay (last 20%).
Straightforward means dense: the codes are scattered into a B x M matrix and
autograd does the rest (the fast sparse version is a benchmark's business).

    python3 bench/torch_topk_reference.py TRAIN.h5 HELDOUT.h5 [--tokens 2000000]

Prints one JSON object: held-out fvu, mmcs, recovered, l0, tokens_per_s.
Needs python3-torch and python3-h5py (Debian packages).
"""
import argparse
import json
import math
import time

import h5py
import numpy as np
import torch


def geometric_median(x, iters=100):
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("train")
    ap.add_argument("heldout")
    ap.add_argument("--tokens", type=int, default=2_000_000)
    ap.add_argument("--latents", type=int, default=8192)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--dead-tokens", type=int, default=1_000_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)

    acts = h5py.File(a.train)["activations"]
    n, d = acts.shape
    X = torch.from_numpy(acts[:].astype(np.float32))
    sample = X[torch.from_numpy(rng.choice(n, size=min(n, 16384), replace=False))]
    scale = math.sqrt(d / sample.pow(2).sum(1).mean().item())
    M, k, aux_k = a.latents, a.k, d // 2

    W_dec = torch.randn(M, d)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    W_dec = W_dec.requires_grad_()
    W_enc = W_dec.detach().t().clone().requires_grad_()
    b_enc = torch.zeros(M, requires_grad=True)
    b_dec = geometric_median(sample * scale).requires_grad_()
    params = [W_enc, b_enc, W_dec, b_dec]
    opt = torch.optim.Adam(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    since_fired = torch.zeros(M, dtype=torch.long)

    steps = a.tokens // a.batch
    order = torch.from_numpy(rng.permutation(n))
    t0 = time.time()
    for step in range(steps):
        lo = (step * a.batch) % n
        idx_rows = order[lo:lo + a.batch]
        if len(idx_rows) < a.batch:  # wrap into a new epoch
            order = torch.from_numpy(rng.permutation(n))
            idx_rows = order[:a.batch]
        x = X[idx_rows] * scale
        pre = torch.relu((x - b_dec) @ W_enc + b_enc)
        vals, idx = pre.topk(k, dim=1)
        z = torch.zeros_like(pre).scatter(1, idx, vals)
        xhat = z @ W_dec + b_dec
        e = xhat - x
        loss = e.pow(2).sum() / (x - x.mean(0)).pow(2).sum()
        dead = since_fired >= a.dead_tokens
        n_dead = int(dead.sum())
        if n_dead > 0:
            ka = min(aux_k, n_dead)
            masked = torch.where(dead[None, :], pre, torch.full_like(pre, -1.0))
            av, ai = masked.topk(ka, dim=1)
            av = torch.relu(av)
            ehat = torch.zeros_like(pre).scatter(1, ai, av) @ W_dec
            r = (x - xhat).detach()
            aux = (ehat - r).pow(2).sum() / (r - r.mean(0)).pow(2).sum()
            loss = loss + (1 / 32) * min(n_dead / aux_k, 1.0) * aux
        opt.zero_grad()
        loss.backward()
        with torch.no_grad():
            g = W_dec.grad
            g -= (g * W_dec).sum(1, keepdim=True) * W_dec
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, a.lr)
        opt.step()
        with torch.no_grad():
            W_dec /= W_dec.norm(dim=1, keepdim=True)
            fired = torch.zeros(M, dtype=torch.bool)
            fired[idx[vals > 0]] = True
            since_fired = torch.where(fired, torch.zeros_like(since_fired), since_fired + a.batch)
    elapsed = time.time() - t0

    h = h5py.File(a.heldout)
    Xh = torch.from_numpy(h["activations"][:].astype(np.float32))
    with torch.no_grad():
        sse, l0 = 0.0, 0.0
        for lo in range(0, len(Xh), 4096):
            x = Xh[lo:lo + 4096] * scale
            pre = torch.relu((x - b_dec) @ W_enc + b_enc)
            vals, idx = pre.topk(k, dim=1)
            xhat = torch.zeros_like(pre).scatter(1, idx, vals) @ W_dec + b_dec
            sse += ((xhat - x) / scale).double().pow(2).sum().item()
            l0 += (vals > 0).sum().item()
        var = (Xh.double() - Xh.double().mean(0)).pow(2).sum().item()
        truth = torch.from_numpy(h["truth/features"][:])
        truth = truth / truth.norm(dim=1, keepdim=True)
        best = (truth @ (W_dec / W_dec.norm(dim=1, keepdim=True)).t()).max(1).values
    print(json.dumps({"fvu": sse / var, "mmcs": best.mean().item(),
                      "recovered": (best > 0.9).float().mean().item(), "l0": l0 / len(Xh),
                      "tokens": steps * a.batch, "tokens_per_s": steps * a.batch / elapsed}))


if __name__ == "__main__":
    main()
