#!/usr/bin/env python3
"""A PyTorch implementation of the ReLU SAE recipe `sae train --arch relu` uses
(Anthropic, "Circuits Updates - April 2024"), for benchmarking speed and
quality on the same data and token budget.

The recipe (identical to the C trainer's):

    z    = relu((x - b_dec) W_enc^T + b_enc)
    xhat = z W_dec + b_dec
    L    = (1/B) sum_b ||xhat_b - x_b||^2 + l1_t (1/B) sum_{b,j} z_bj ||W_dec_j||

with no decoder-norm constraint; decoder rows initialised as random directions
of norm 0.1, encoder as the decoder's transpose, b_enc = 0, b_dec the
geometric median of a 16384-row sample; inputs scaled so E||x||^2 = d; l1_t
warming up linearly over the first 5% of steps; Adam (0.9, 0.999, 1e-8) with
linear lr warm-up (5%) and linear decay to 0 over the last 20%; the global
gradient norm clipped at 1 (`--grad-clip 0` turns that off).

Unlike TopK, the ReLU SAE is inherently dense (every latent can be active, the
L1 term touches all of them), so this is plain autograd over dense B x M
matrices, which is how the Python tools (SAELens, dictionary_learning and the
like) train it too: four B x M x d matrix products per step plus the forward
decode. The penalty is computed as (sum_b z_b) . ||W_dec|| rather than
materialising z * ||W_dec||, which is the same value and gradient for one
fewer B x M pass.

    python3 bench/torch_relu_reference.py TRAIN.h5 HELDOUT.h5 [--tokens 2000000]

Prints one JSON object: held-out fvu, mmcs, recovered (null when the held-out
file has no /truth/features), l0 (mean number of z > 0), tokens, tokens_per_s
(training loop only), and the configuration. Needs python3-torch and
python3-h5py (Debian packages).
"""
import time

import torch

import torch_common as tc


def init_params(M, d, b_dec, norm=0.1):
    W_dec = torch.randn(M, d)
    W_dec *= norm / W_dec.norm(dim=1, keepdim=True)
    W_enc = W_dec.clone()  # stored (M, d): "encoder = decoder transpose" is a copy
    b_enc = torch.zeros(M)
    return [p.requires_grad_() for p in (W_enc, b_enc, W_dec, b_dec.clone())]


def encode(x, W_enc, b_enc, b_dec):
    return torch.relu(torch.addmm(b_enc, x - b_dec, W_enc.t()))


def main():
    ap = tc.base_parser("ReLU SAE reference trainer (PyTorch)", lr=1e-3)
    ap.add_argument("--l1", type=float, default=2.0)
    ap.add_argument("--l1-warmup", type=float, default=0.05)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    a = tc.parse(ap)
    rng = tc.setup(a)
    X, scale, sample = tc.load_train(a.train, rng)
    d = X.shape[1]
    M = a.latents
    params = init_params(M, d, tc.geometric_median(sample))
    W_enc, b_enc, W_dec, b_dec = params
    opt = torch.optim.Adam(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8)

    steps = a.tokens // a.batch
    # steady state, as bench/run.py measures sae: from the end of step WARM
    # (sae's first log report with --log-every 5) to the end
    warm = min(5, steps - 1)
    t0 = t_warm = time.time()
    for step, x in enumerate(tc.batches(X, scale, a.batch, steps, rng)):
        B = x.shape[0]
        z = encode(x, W_enc, b_enc, b_dec)
        xhat = z @ W_dec + b_dec
        mse = (xhat - x).pow(2).sum() / B
        l1 = tc.l1_at(step, steps, a.l1, a.l1_warmup)
        sparsity = l1 * (z.sum(0) @ W_dec.norm(dim=1)) / B
        loss = mse + sparsity
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if a.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, a.grad_clip)
        tc.set_lr(opt, tc.lr_at(step, steps, a.lr))
        opt.step()
        if step + 1 == warm:
            t_warm = time.time()
    elapsed = time.time() - t0
    del X

    W_enc, b_enc, W_dec, b_dec = (p.detach() for p in params)

    def reconstruct(x):
        z = encode(x, W_enc, b_enc, b_dec)
        return z @ W_dec + b_dec, (z > 0).sum()

    metrics = tc.evaluate(a.heldout, scale, reconstruct, W_dec)
    tc.report(metrics, tokens=steps * a.batch, tokens_per_s=(steps - warm) * a.batch / (t0 + elapsed - t_warm),
              tokens_per_s_whole_loop=steps * a.batch / elapsed,
              arch="relu", impl="dense", threads=a.threads, batch=a.batch, latents=M, k=None,
              d=d, lr=a.lr, l1=a.l1, seed=a.seed)


if __name__ == "__main__":
    main()
