#!/usr/bin/env python3
"""A strong PyTorch implementation of the TopK SAE recipe `sae train` uses, for
benchmarking speed and quality on the same data and token budget.

The recipe (identical to the C trainer's): inputs scaled so E||x||^2 = d, b_dec
from the geometric median of a 16384-row sample, encoder initialised as the
decoder's transpose, unit-norm decoder rows with the gradient component
parallel to each row removed before Adam (0.9, 0.999, 1e-8), AuxK (aux_k = d/2,
weight 1/32 * min(n_dead/aux_k, 1)) on latents that have not fired for
`--dead-tokens` tokens, linear lr warm-up (5%) and linear decay (last 20%).

"Strong" means written the way the fast Python SAE trainers are, so that a
comparison with the C code is fair rather than flattering:

- EleutherAI's sparsify keeps the encoder as an (M, d) linear layer, runs one
  dense matmul + ReLU + topk, decodes with an embedding-bag over the k active
  decoder rows, and its fused-encoder autograd Function writes the encoder
  backward by hand: the input gradient is an embedding-bag of the active
  encoder rows weighted by the code gradients, and the weight and bias
  gradients are accumulated (index_add) into the active latents only.
- OpenAI's sparse_autoencoder (the TopK paper's reference trainer) does the
  same with a hand-written encoder backward over the concatenated TopK and
  AuxK indices, a sparse-transpose-times-dense product for the encoder weight
  gradient, the b_dec ("pre_bias") gradient reduced to one vector-matrix
  product (minus the per-latent gradient sums times W_enc), and a sparse
  decoder whose backward touches only the active rows.

Here the whole step is written by hand under no_grad (no autograd graph):

- forward: pre = (x - b_dec) W_enc^T + b_enc (one addmm into a reused
  buffer: a fresh 128 MiB one costs ~15% more in page faults), topk over
  the M latents, ReLU on the k values only (ReLU commutes with topk),
  xhat = embedding_bag(idx, W_dec, vals) + b_dec;
- AuxK: topk among the dead latents' columns of the same `pre`, decoded the
  same way, against the detached residual x - xhat;
- backward: the code gradients are dot products of the active decoder rows
  with the output gradient (gathered in cache-sized chunks); the
  encoder-weight and decoder-weight gradients are sparse-transpose-times-dense
  products over the k (+ aux) active slots, computed by sorting the slots by
  latent and summing each latent's slots with one embedding_bag (the CPU
  analogue of OpenAI's sparse transpose matmul kernel; at d=512, B=4096,
  k=32 on 2 cores 12 ms against 108 ms for sparsify's index_add of a
  B x k x d outer-product tensor);
  db_enc by index_add; db_dec = sum(dxhat) - db_enc W_enc.
  Nothing of size B x M exists except `pre` itself.
- Adam is torch.optim.Adam (single-tensor; fused Adam is CUDA-only in torch
  1.13 and foreach is no faster on CPU), applied to the gradients set by hand.

`--dense` runs the straightforward version instead (codes scattered into a
dense B x M matrix, autograd for everything), reported as impl "dense".
`--check-grads` compares the hand-written gradients with autograd of the
dense formulation on a small float64 problem with AuxK active, and exits
non-zero if the max relative error exceeds 1e-4.

    python3 bench/torch_topk_reference.py TRAIN.h5 HELDOUT.h5 [--tokens 2000000] [--dense]
    python3 bench/torch_topk_reference.py --check-grads

Prints one JSON object: held-out fvu, mmcs, recovered (null when the held-out
file has no /truth/features), l0, tokens, tokens_per_s (training loop only),
and the configuration. Needs python3-torch and python3-h5py (Debian packages).
"""
import sys
import time

import torch
import torch.nn.functional as F

import torch_common as tc

AUX_COEF = 1 / 32
GATHER_ROWS = 2048  # decoder rows gathered per chunk in row_dots (4 MiB at d=512)


def init_params(M, d, b_dec, dtype=torch.float32):
    """Unit-norm random decoder rows (M, d); encoder stored (M, d) = decoder transpose."""
    W_dec = torch.randn(M, d, dtype=dtype)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    W_enc = W_dec.clone()
    b_enc = torch.zeros(M, dtype=dtype)
    return [W_enc, b_enc, W_dec, b_dec.to(dtype).clone()]


# --- the strong (sparse, hand-written) step -----------------------------------

def row_dots(W, idx, D):
    """out[b, s] = W[idx[b, s]] . D[b], without any B x M intermediate.

    Gathers the rows in chunks that stay in cache, then multiplies and sums in
    place (on CPU 2-3x faster than a batched matrix-vector bmm).
    """
    B, S = idx.shape
    step = max(1, GATHER_ROWS // S)
    out = torch.empty(B, S, dtype=D.dtype)
    buf = torch.empty(step * S, W.shape[1], dtype=W.dtype)
    for lo in range(0, B, step):
        hi = min(B, lo + step)
        rows = buf[:(hi - lo) * S]
        torch.index_select(W, 0, idx[lo:hi].reshape(-1), out=rows)
        rows = rows.view(hi - lo, S, -1).mul_(D[lo:hi, None, :])
        torch.sum(rows, -1, out=out[lo:hi])
    return out


def sparse_t_dense(perm, offsets, rows, weights, D):
    """G (M, d) with G[j] = sum over slots s of latent j of weights[s] * D[rows[s]].

    `perm` orders the flattened slots by latent, `offsets` are the latents'
    first positions in that order (latents without slots get zero rows).
    """
    return F.embedding_bag(rows, D, offsets, mode="sum", per_sample_weights=weights[perm])


@torch.no_grad()
def sparse_step(x, params, k, dead_idx, aux_k, aux_coef=AUX_COEF, pre=None):
    """Loss and hand-written gradients of the TopK + AuxK objective.

    Returns (loss, grads in params' order, idx, vals). `dead_idx` lists the dead
    latents; `pre` is an optional reusable (B, M) buffer.
    """
    W_enc, b_enc, W_dec, b_dec = params
    B, d = x.shape
    M = W_enc.shape[0]
    xc = x - b_dec
    pre = torch.addmm(b_enc, xc, W_enc.t(), out=pre)
    vals, idx = pre.topk(k, dim=1, sorted=False)
    vals.relu_()
    xhat = F.embedding_bag(idx, W_dec, mode="sum", per_sample_weights=vals)
    xhat += b_dec
    err = xhat.sub_(x)  # xhat - x
    var = (x - x.mean(0)).pow(2).sum()
    loss = err.pow(2).sum() / var
    dxhat = err * (2 / var)
    dval = row_dots(W_dec, idx, dxhat).mul_(vals > 0)

    slot_idx, slot_val, slot_grad, targets = [idx], [vals], [dval], [dxhat]
    n_dead = len(dead_idx)
    if aux_k > 0 and n_dead > 0:
        ka = min(aux_k, n_dead)
        coef = aux_coef * min(n_dead / aux_k, 1.0)
        av, ai = pre.index_select(1, dead_idx).topk(ka, dim=1, sorted=False)
        ai = dead_idx[ai]
        av.relu_()
        ehat = F.embedding_bag(ai, W_dec, mode="sum", per_sample_weights=av)
        # the target is the residual r = x - xhat = -err, a constant
        aux_err = ehat.add_(err)  # ehat - r
        rvar = (err - err.mean(0)).pow(2).sum()
        if rvar > 0:  # a perfect fit leaves nothing for AuxK to explain
            loss = loss + coef * aux_err.pow(2).sum() / rvar
            dehat = aux_err.mul_(2 * coef / rvar)
            dav = row_dots(W_dec, ai, dehat).mul_(av > 0)
            slot_idx.append(ai)
            slot_val.append(av)
            slot_grad.append(dav)
            targets.append(dehat)

    # Gradients. Every slot (b, s) of the k (+ aux) active latents contributes
    # dpre[b,s] * xc[b] to dW_enc and val[b,s] * dxhat_or_dehat[b] to dW_dec.
    S = sum(t.shape[1] for t in slot_idx)
    flat_idx = torch.cat(slot_idx, 1).reshape(-1)
    flat_dpre = torch.cat(slot_grad, 1).reshape(-1)
    flat_val = torch.cat(slot_val, 1).reshape(-1)
    lat, perm = flat_idx.sort()
    counts = torch.bincount(lat, minlength=M)
    offsets = counts.cumsum(0) - counts
    rows = torch.div(perm, S, rounding_mode="floor")
    g_W_enc = sparse_t_dense(perm, offsets, rows, flat_dpre, xc)
    if len(targets) > 1:  # aux slots (s >= k) read the AuxK output gradient
        dec_rows = rows + B * (perm % S >= k).long()
        g_W_dec = sparse_t_dense(perm, offsets, dec_rows, flat_val, torch.cat(targets))
    else:
        g_W_dec = sparse_t_dense(perm, offsets, rows, flat_val, dxhat)
    g_b_enc = torch.zeros(M, dtype=x.dtype).index_add_(0, flat_idx, flat_dpre)
    # xc = x - b_dec, so b_dec collects -sum_b dxc_b = -(g_b_enc @ W_enc)
    g_b_dec = dxhat.sum(0) - g_b_enc @ W_enc
    return loss, [g_W_enc, g_b_enc, g_W_dec, g_b_dec], idx, vals


# --- the straightforward (dense, autograd) formulation ------------------------

def dense_loss(x, params, k, dead, aux_k, aux_coef=AUX_COEF):
    """The recipe written directly: dense B x M codes, autograd-ready."""
    W_enc, b_enc, W_dec, b_dec = params
    pre = torch.relu((x - b_dec) @ W_enc.t() + b_enc)
    vals, idx = pre.topk(k, dim=1)
    z = torch.zeros_like(pre).scatter(1, idx, vals)
    xhat = z @ W_dec + b_dec
    loss = (xhat - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    n_dead = int(dead.sum())
    if aux_k > 0 and n_dead > 0:
        ka = min(aux_k, n_dead)
        masked = torch.where(dead[None, :], pre, torch.full_like(pre, -1.0))
        av, ai = masked.topk(ka, dim=1)
        ehat = torch.zeros_like(pre).scatter(1, ai, torch.relu(av)) @ W_dec
        r = (x - xhat).detach()
        rvar = (r - r.mean(0)).pow(2).sum()
        if rvar > 0:
            loss = loss + aux_coef * min(n_dead / aux_k, 1.0) * (ehat - r).pow(2).sum() / rvar
    return loss, idx.detach(), vals.detach()


# --- gradient check ------------------------------------------------------------

def check_grads(tol=1e-4):
    """Hand-written sparse gradients vs autograd of the dense formulation (float64)."""
    B, d, M, k = 64, 32, 256, 8
    aux_k = d // 2
    g = torch.Generator().manual_seed(1234)
    dt = torch.float64
    worst = 0.0
    names = ["W_enc", "b_enc", "W_dec", "b_dec"]
    for n_dead in (0, 10, 100):  # no AuxK; fewer dead than aux_k; more
        x = torch.randn(B, d, generator=g, dtype=dt) + 0.5
        W_dec = torch.randn(M, d, generator=g, dtype=dt)
        W_dec /= W_dec.norm(dim=1, keepdim=True)
        params = [W_dec + 0.3 * torch.randn(M, d, generator=g, dtype=dt),  # W_enc != W_dec^T
                  0.2 * torch.randn(M, generator=g, dtype=dt), W_dec,
                  0.3 * torch.randn(d, generator=g, dtype=dt)]
        dead = torch.zeros(M, dtype=torch.bool)
        dead[torch.randperm(M, generator=g)[:n_dead]] = True
        loss_s, grads, _, _ = sparse_step(x, params, k, dead.nonzero().squeeze(1), aux_k)
        ref = [p.clone().requires_grad_() for p in params]
        loss_d, _, _ = dense_loss(x, ref, k, dead, aux_k)
        loss_d.backward()
        errs = [((gs - p.grad).abs().max() / p.grad.abs().max()).item()
                for gs, p in zip(grads, ref)]
        lerr = abs(loss_s.item() - loss_d.item()) / abs(loss_d.item())
        print(f"n_dead={n_dead:3d}  loss rel err {lerr:.2e}  " +
              "  ".join(f"{nm} {e:.2e}" for nm, e in zip(names, errs)))
        worst = max(worst, lerr, *errs)
    print(f"max relative error {worst:.3e} (tolerance {tol:g})")
    return worst <= tol


# --- training --------------------------------------------------------------------

def main():
    ap = tc.base_parser("TopK SAE reference trainer (PyTorch)", lr=2e-3)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--dead-tokens", type=int, default=1_000_000)
    ap.add_argument("--dense", action="store_true",
                    help="straightforward dense-autograd step instead of the sparse one")
    ap.add_argument("--check-grads", action="store_true",
                    help="check the hand-written gradients against autograd and exit")
    a = tc.parse(ap, files_optional="--check-grads" in sys.argv)
    if a.check_grads:
        torch.set_num_threads(a.threads)
        sys.exit(0 if check_grads() else 1)

    rng = tc.setup(a)
    X, scale, sample = tc.load_train(a.train, rng)
    d = X.shape[1]
    M, k, aux_k = a.latents, a.k, d // 2
    params = init_params(M, d, tc.geometric_median(sample))
    W_enc, b_enc, W_dec, b_dec = params
    if a.dense:
        for p in params:
            p.requires_grad_()
    opt = torch.optim.Adam(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    since_fired = torch.zeros(M, dtype=torch.long)
    pre_buf = None if a.dense else torch.empty(a.batch, M)  # reused every step

    steps = a.tokens // a.batch
    # steady state, as bench/run.py measures sae: from the end of step WARM
    # (sae's first log report with --log-every 5) to the end
    warm = min(5, steps - 1)
    t0 = t_warm = time.time()
    for step, x in enumerate(tc.batches(X, scale, a.batch, steps, rng)):
        dead = since_fired >= a.dead_tokens
        if a.dense:
            loss, idx, vals = dense_loss(x, params, k, dead, aux_k)
            opt.zero_grad()
            loss.backward()
        else:
            dead_idx = dead.nonzero().squeeze(1)
            loss, grads, idx, vals = sparse_step(x, params, k, dead_idx, aux_k, pre=pre_buf)
            for p, g in zip(params, grads):
                p.grad = g
        with torch.no_grad():
            g = W_dec.grad
            g -= (g * W_dec).sum(1, keepdim=True) * W_dec
            tc.set_lr(opt, tc.lr_at(step, steps, a.lr))
            opt.step()
            W_dec /= W_dec.norm(dim=1, keepdim=True)
            fired = torch.zeros(M, dtype=torch.bool)
            fired[idx[vals > 0]] = True
            since_fired = torch.where(fired, torch.zeros_like(since_fired), since_fired + a.batch)
        if step + 1 == warm:
            t_warm = time.time()
    elapsed = time.time() - t0
    del X

    W_enc, b_enc, W_dec, b_dec = (p.detach() for p in params)

    def reconstruct(x):
        pre = torch.addmm(b_enc, x - b_dec, W_enc.t())
        vals, idx = pre.topk(k, dim=1, sorted=False)
        vals.relu_()
        xhat = F.embedding_bag(idx, W_dec, mode="sum", per_sample_weights=vals) + b_dec
        return xhat, (vals > 0).sum()

    metrics = tc.evaluate(a.heldout, scale, reconstruct, W_dec)
    tc.report(metrics, tokens=steps * a.batch, tokens_per_s=(steps - warm) * a.batch / (t0 + elapsed - t_warm),
              tokens_per_s_whole_loop=steps * a.batch / elapsed,
              arch="topk", impl="dense" if a.dense else "sparse", threads=a.threads,
              batch=a.batch, latents=M, k=k, d=d, lr=a.lr, seed=a.seed)


if __name__ == "__main__":
    main()
