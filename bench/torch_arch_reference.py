#!/usr/bin/env python3
"""PyTorch references of the BatchTopK, Matryoshka and JumpReLU recipes of
`sae train --arch batchtopk|matryoshka|jumprelu`, for comparing quality (not
speed) with the C trainer on the same data and token budget.

The recipe shared with the TopK reference (bench/torch_topk_reference.py):
inputs scaled so E||x||^2 = d (from a 16384-row sample), b_dec the geometric
median of that scaled sample, unit-norm random decoder rows, W_enc = W_dec
(stored (M, d)), b_enc = 0, Adam (0.9, 0.999, 1e-8) with linear lr warm-up
over the first 5% of steps and linear decay to 0 over the last 20%; the
gradient component parallel to each decoder row is removed before the Adam
step and the rows are renormalised after it. With

    pre = (x - b_dec) W_enc^T + b_enc,     V = sum_b ||x_b - mean(x)||^2,

the reconstruction loss is the batch FVU ||xhat - x||^2 / V.

batchtopk (Bussmann, Leask & Nanda 2024): a = relu(pre); the k*B largest
  entries of a over the whole batch are kept (ties to the lower flat index
  b*M + j), z = a there and 0 elsewhere, xhat = z W_dec + b_dec, loss =
  recon + AuxK. A latent fires on a row when selected with a > 0. The
  inference threshold theta (a scalar, not learned) follows m_t, the smallest
  selected positive activation of each batch: theta = m_1, then theta +=
  r (m_t - theta), r = --threshold-lr (0.05, as sae train). At evaluation z = a [a > theta]
  per row.
matryoshka (Bussmann et al. 2025; Nabeshima 2024): the same selection and
  theta; widths w_1 < ... < w_G = M; xhat_i = b_dec + sum_{j < w_i} z_j W_dec_j;
  loss = sum_i ||xhat_i - x||^2 / V + AuxK on the full residual x - xhat_G.
  Reported FVU is the full dictionary's.
AuxK (both): latents not fired for --dead-tokens tokens are dead; per row the
  aux_k = d/2 largest relu(pre) among them reconstruct r = x - xhat
  (detached), loss (1/32) min(n_dead/aux_k, 1) ||ehat - r||^2 / V_r.
jumprelu (Rajamanoharan et al. 2024; the target-L0 loss of
  dictionary_learning's JumpReLU trainer): per-latent thresholds theta_j
  (learned directly, initialised to --threshold-init), z = relu(pre) H(pre -
  theta), l0 = mean over rows of the active count, loss = recon + lambda_t
  (l0 / target_l0 - 1)^2, lambda_t warming up linearly over the first
  --sparsity-warmup of the steps. Straight-through pseudo-gradients with the
  rectangle kernel K(u) = 1[|u| < 1/2] of bandwidth eps (the autograd
  Functions JumpReLU and Step below); after each Adam step theta = max(theta,
  0). No AuxK.

This is the straightforward version: autograd over the B x M pre-activations,
with the pieces whose gradient is not autograd's own written out as
torch.autograd.Functions. What keeps it affordable on a CPU changes no value:

- Encoder: the dense product, its backward forming the b_dec gradient as one
  vector-matrix product instead of a second B x M x d product;
- EncoderAt: the same product read at a list of entries (the k*B BatchTopK
  selections and the AuxK entries), its backward summing over those entries
  alone; the codes of an entry list are decoded with an embedding bag;
- batch_topk: the batch selection sorts only the entries that can be in it;
- JumpReLU decodes densely while many entries are near the thresholds, as an
  entry list once few are (the two forms checked equal, gradients included).

    python3 bench/torch_arch_reference.py TRAIN.h5 HELDOUT.h5 --arch batchtopk [--k 32]
    python3 bench/torch_arch_reference.py TRAIN.h5 HELDOUT.h5 --arch matryoshka --widths 1024,4096,8192
    python3 bench/torch_arch_reference.py TRAIN.h5 HELDOUT.h5 --arch jumprelu --target-l0 32 \\
        --sparsity-coef 10 --bandwidth 0.05 --threshold-init -1
    python3 bench/torch_arch_reference.py --check-grads

Prints one JSON object: held-out fvu, mmcs, recovered (null without
/truth/features), l0 (mean active latents per row at inference), tokens,
tokens_per_s (training loop), wall_s and the configuration. `--check-grads`
checks the autograd Functions (finite differences in float64 where the
gradient is a true one, the threshold pseudo-gradients against their
definition on a hand-computed case) and the batch selection against a sort,
and exits non-zero on a failure. Needs python3-torch and python3-h5py.
"""
import sys
import time

import torch
import torch.nn.functional as F

import torch_common as tc

ARCHS = ("batchtopk", "matryoshka", "jumprelu")
AUX_COEF = 1 / 32


# --- autograd Functions ----------------------------------------------------------

class Encoder(torch.autograd.Function):
    """pre = (x - b_dec) W_enc^T + b_enc.

    The backward is the true gradient, with the b_dec part written as
    -(sum_b dpre_b) W_enc rather than autograd's -(sum_b of dpre W_enc): the
    same number for one vector-matrix product instead of a B x M x d one.
    x is data (no gradient).
    """

    @staticmethod
    def forward(ctx, x, W_enc, b_enc, b_dec):
        xc = x - b_dec
        ctx.save_for_backward(xc, W_enc)
        return torch.addmm(b_enc, xc, W_enc.t())

    @staticmethod
    def backward(ctx, g):
        xc, W_enc = ctx.saved_tensors
        g_b_enc = g.sum(0)
        return None, g.t() @ xc, g_b_enc, -(g_b_enc @ W_enc)


class EncoderAt(torch.autograd.Function):
    """pre = (x - b_dec) W_enc^T + b_enc at the entries (rows[i], cols[i]) only.

    `pre` is the whole B x M product, computed without a graph (the selection
    needs all of it); the output is pre[rows, cols]. The backward is the true
    gradient of those entries, formed from them alone: the rows of g_W_enc sum
    g_i (x - b_dec)[rows[i]] over each latent's entries (one embedding bag over
    the entries sorted by latent), g_b_enc sums g_i per latent and g_b_dec =
    -g_b_enc W_enc. The same numbers as the dense product's backward with a
    gradient that is zero off the entries, without its B x M x d product.
    """

    @staticmethod
    def forward(ctx, x, W_enc, b_enc, b_dec, pre, rows, cols):
        ctx.save_for_backward(x - b_dec, W_enc, rows, cols)
        return pre[rows, cols]

    @staticmethod
    def backward(ctx, g):
        xc, W_enc, rows, cols = ctx.saved_tensors
        order = cols.argsort()
        g_W_enc = F.embedding_bag(rows[order], xc, bag_offsets(cols[order], W_enc.shape[0]),
                                  mode="sum", per_sample_weights=g[order])
        g_b_enc = torch.zeros_like(W_enc[:, 0]).index_add_(0, cols, g)
        return None, g_W_enc, g_b_enc, -(g_b_enc @ W_enc), None, None, None


def keep(t, mask):
    """t where mask, else 0."""
    return t * mask.to(t.dtype)


def window(pre, theta, eps):
    """K((pre - theta) / eps) = 1[|pre - theta| < eps/2], as a bool mask."""
    return (pre - theta).abs_() < eps / 2


def per_theta(grad, theta):
    """Sums a gradient over the dimensions theta was broadcast along."""
    return grad.sum_to_size(theta.shape)


class JumpReLU(torch.autograd.Function):
    """z = relu(pre) H(pre - theta), with the straight-through pseudo-gradients

        dz/dpre   = H(pre - theta) (0 where pre <= 0),
        dz/dtheta = -(theta / eps) K((pre - theta) / eps).

    theta may broadcast against pre (one threshold per latent, shape (M,)).
    [pre > theta and pre > 0] is [pre > max(theta, 0)].
    """

    @staticmethod
    def forward(ctx, pre, theta, eps):
        active = pre > theta.clamp(min=0)
        ctx.save_for_backward(pre, theta, active)
        ctx.eps = eps
        return keep(pre, active)

    @staticmethod
    def backward(ctx, g):
        pre, theta, active = ctx.saved_tensors
        eps = ctx.eps
        g_pre = keep(g, active) if ctx.needs_input_grad[0] else None
        g_theta = None
        if ctx.needs_input_grad[1]:  # theta is constant along the summed dimensions
            g_theta = per_theta(keep(g, window(pre, theta, eps)), theta) * (-theta / eps)
        return g_pre, g_theta, None


class Step(torch.autograd.Function):
    """H(pre - theta), with dH/dpre = 0 and dH/dtheta = -(1/eps) K((pre - theta) / eps)."""

    @staticmethod
    def forward(ctx, pre, theta, eps):
        ctx.save_for_backward(pre, theta)
        ctx.eps = eps
        return (pre > theta).to(pre.dtype)

    @staticmethod
    def backward(ctx, g):
        pre, theta = ctx.saved_tensors
        g_theta = per_theta(keep(g, window(pre, theta, ctx.eps)), theta) * (-1 / ctx.eps)
        return None, g_theta, None


# --- pieces of the losses --------------------------------------------------------

def init_params(M, d, b_dec, dtype=torch.float32):
    """Unit-norm random decoder rows (M, d); encoder stored (M, d) = decoder transpose."""
    W_dec = torch.randn(M, d, dtype=dtype)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    return [W_dec.clone(), torch.zeros(M, dtype=dtype), W_dec, b_dec.to(dtype).clone()]


@torch.no_grad()
def batch_topk(a, n):
    """Ascending flat indices b*M + j of the n largest entries of a (B, M), ties
    to the lower flat index, leaving out entries <= 0 (z is 0 there either way).

    Every row's ceil(n/B) largest entries are >= their minimum m0, so at least n
    entries are >= m0 and the selection lies among them: sorting those few
    candidates replaces a top-n over all B*M entries (10x faster at B*M = 32M).
    """
    B, M = a.shape
    flat = a.reshape(-1)
    m0 = a.topk(min(M, -(-n // B)), dim=1, sorted=False).values.min()
    cand = ((flat >= m0) & (flat > 0)).nonzero().squeeze(1)
    if len(cand) <= n:
        return cand
    v = flat[cand]
    t = v.kthvalue(len(v) - n + 1).values  # the n-th largest value
    keep = v > t
    ties = (v == t).nonzero().squeeze(1)  # in flat order
    keep[ties[:n - int(keep.sum())]] = True
    return cand[keep]


def bag_offsets(rows, B):
    """embedding_bag offsets for entries sorted by row (rows without entries get empty bags)."""
    counts = torch.bincount(rows, minlength=B)
    return counts.cumsum(0) - counts


def batch_fvu(xhat, x, var):
    return (xhat - x).pow(2).sum() / var


def total_variance(x):
    return (x - x.mean(0)).pow(2).sum()


def topk_family_loss(x, params, n_sel, widths, dead_idx, aux_k, aux_coef=AUX_COEF,
                     residual=None):
    """BatchTopK (widths = [M]) or Matryoshka loss, with AuxK on the dead latents.

    Returns (loss, the full dictionary's residual x - xhat_G (detached), flat
    indices of the selection, their values): every selected entry is positive,
    so a = pre there. AuxK's target is that residual, a constant; `residual`
    replaces it (the gradient check holds it fixed while perturbing params).
    """
    W_enc, b_enc, W_dec, b_dec = params
    B, M = x.shape[0], W_enc.shape[0]
    with torch.no_grad():
        pre = torch.addmm(b_enc, x - b_dec, W_enc.t())
        sel = batch_topk(pre, n_sel)
        rows = torch.div(sel, M, rounding_mode="floor")
        cols = sel % M
        n_dead = len(dead_idx)
        use_aux = aux_k > 0 and n_dead > 0
        if use_aux:  # per row, the aux_k largest pre-activations of the dead latents
            ka = min(aux_k, n_dead)
            aux_cols = dead_idx[pre.index_select(1, dead_idx).topk(ka, dim=1, sorted=False)[1]]
            aux_rows = torch.arange(B).repeat_interleave(ka)
            rows, cols = torch.cat([rows, aux_rows]), torch.cat([cols, aux_cols.reshape(-1)])
    # every selected entry is positive (a = relu(pre) = pre there)
    vals = EncoderAt.apply(x, W_enc, b_enc, b_dec, pre, rows, cols)
    n = len(sel)
    rows, cols, vals, aux_vals = rows[:n], cols[:n], vals[:n], vals[n:]
    var = total_variance(x)
    loss, xhat, lo = 0.0, b_dec, 0
    for w in widths:  # xhat_i = xhat_{i-1} + the codes of latents [w_{i-1}, w_i)
        g = (cols >= lo) & (cols < w)
        xhat = xhat + F.embedding_bag(cols[g], W_dec, bag_offsets(rows[g], B), mode="sum",
                                      per_sample_weights=vals[g])
        loss = loss + batch_fvu(xhat, x, var)
        lo = w
    r = (x - xhat).detach()
    if use_aux:
        if residual is not None:
            r = residual
        rvar = total_variance(r)
        if rvar > 0:  # a perfect fit leaves nothing for AuxK to explain
            ehat = F.embedding_bag(aux_cols, W_dec, mode="sum",
                                   per_sample_weights=torch.relu(aux_vals).view(B, ka))
            loss = loss + aux_coef * min(n_dead / aux_k, 1.0) * batch_fvu(ehat, r, rvar)
    return loss, r, sel, vals.detach()


def jumprelu_loss(x, params, theta, eps, target_l0, lam, dense=None):
    """JumpReLU reconstruction + lam (l0 / target_l0 - 1)^2; returns (loss, fvu, l0, fired).

    Only the entries with pre - theta > -eps/2 have a value or a
    (pseudo-)gradient (z = H = 0 below, and the window |pre - theta| < eps/2
    lies above), so once they are few the codes are decoded as a list of
    entries (embedding bag) rather than a dense B x M product: the same loss
    and gradients. `dense` forces either form (default: dense while more than
    1/16 of the entries are in).
    """
    W_enc, b_enc, W_dec, b_dec = params
    B, M = x.shape[0], W_enc.shape[0]
    pre = Encoder.apply(x, W_enc, b_enc, b_dec)
    with torch.no_grad():
        near = (pre - theta) > -eps / 2
        if dense is None:
            dense = int(near.sum()) > B * M // 16
    if dense:
        z = JumpReLU.apply(pre, theta, eps)
        xhat = z @ W_dec + b_dec
        l0 = Step.apply(pre, theta, eps).sum(1).mean()
        fired = (z.detach() > 0).any(0)
    else:
        rows, cols = near.nonzero(as_tuple=True)
        p = EncoderAt.apply(x, W_enc, b_enc, b_dec, pre.detach(), rows, cols)
        th = theta[cols]
        z = JumpReLU.apply(p, th, eps)
        xhat = F.embedding_bag(cols, W_dec, bag_offsets(rows, B), mode="sum",
                               per_sample_weights=z) + b_dec
        l0 = Step.apply(p, th, eps).sum() / B
        fired = torch.zeros(M, dtype=torch.bool)
        fired[cols[z.detach() > 0]] = True
    fvu = batch_fvu(xhat, x, total_variance(x))
    return fvu + lam * (l0 / target_l0 - 1) ** 2, fvu.detach(), l0.detach(), fired


# --- checks ------------------------------------------------------------------------

def check_grads():
    """Finite differences (float64) where the gradient is true; the pseudo-gradients
    against their definition on a hand-computed case; the selection against a sort."""
    dt = torch.float64
    gen = torch.Generator().manual_seed(1234)
    ok = True

    def report(name, passed):
        nonlocal ok
        ok &= bool(passed)
        print(f"{'ok  ' if passed else 'FAIL'} {name}")

    def rand(*shape, s=1.0):
        return (s * torch.randn(*shape, generator=gen, dtype=dt)).requires_grad_()

    B, d, M = 12, 6, 24
    x = torch.randn(B, d, generator=gen, dtype=dt) + 0.5
    W_dec0 = torch.randn(M, d, generator=gen, dtype=dt)
    W_dec0 /= W_dec0.norm(dim=1, keepdim=True)
    params = [(W_dec0 + 0.3 * torch.randn(M, d, generator=gen, dtype=dt)).requires_grad_(),
              rand(M, s=0.2), W_dec0.clone().requires_grad_(), rand(d, s=0.3)]
    gc = dict(eps=1e-6, atol=1e-6, rtol=1e-5, raise_exception=False)

    enc_params = [params[0], params[1], params[3]]  # W_enc, b_enc, b_dec
    report("Encoder backward = finite differences",
           torch.autograd.gradcheck(lambda *p: Encoder.apply(x, *p), enc_params, **gc))
    rows = torch.randint(0, B, (40,), generator=gen)
    cols = torch.randint(0, M, (40,), generator=gen)

    def at(*p):
        pre = torch.addmm(p[1], x - p[2], p[0].t()).detach()
        return EncoderAt.apply(x, *p, pre, rows, cols)
    report("EncoderAt backward = finite differences", torch.autograd.gradcheck(at, enc_params, **gc))
    theta = 0.1 + 0.3 * torch.rand(M, generator=gen, dtype=dt)
    pre = rand(B, M)
    report("JumpReLU d/dpre = finite differences (away from the jumps)",
           torch.autograd.gradcheck(lambda p: JumpReLU.apply(p, theta, 0.05), [pre], **gc))

    # whole losses, selection and thresholds held fixed by small perturbations
    dead = torch.tensor([1, 4, 7, 9, 15, 20])
    for name, widths in (("batchtopk", [M]), ("matryoshka", [4, 12, M])):
        for dead_idx in (dead[:0], dead):
            r = topk_family_loss(x, params, 3 * B, widths, dead_idx, aux_k=3)[1]
            f = lambda *p: topk_family_loss(x, list(p), 3 * B, widths, dead_idx, aux_k=3,
                                            residual=r)[0]
            report(f"{name} loss gradient (n_dead={len(dead_idx)}) = finite differences",
                   torch.autograd.gradcheck(f, params, **gc))
    for dense in (True, False):
        f = lambda *p: jumprelu_loss(x, list(p), theta, 0.05, 4.0, 0.7, dense=dense)[0]
        report(f"jumprelu loss ({'dense' if dense else 'entries'}) gradient w.r.t. W_enc, b_enc, "
               "W_dec, b_dec = finite differences", torch.autograd.gradcheck(f, params, **gc))
    # the entry-list form against the dense one, theta's pseudo-gradient included; theta
    # spread so that entries fall in the window on both sides and below it
    th = (0.4 * torch.rand(M, generator=gen, dtype=dt)).requires_grad_()
    out = []
    for dense in (True, False):
        ps = [q.detach().clone().requires_grad_() for q in params] + [th.detach().clone()]
        ps[4].requires_grad_()
        loss = jumprelu_loss(x, ps[:4], ps[4], 0.3, 4.0, 0.7, dense=dense)[0]
        loss.backward()
        out.append([loss.detach()] + [q.grad for q in ps])
    report("jumprelu entry-list form = dense form (loss and every gradient, theta's too)",
           all(torch.allclose(u, v, rtol=1e-10, atol=1e-12) for u, v in zip(*out))
           and out[0][5].abs().sum() > 0)

    # hand-computed pseudo-gradients: eps = 0.1, theta = (0.5, 0.2, 0.03)
    eps = 0.1
    th = torch.tensor([0.5, 0.2, 0.03], dtype=dt, requires_grad=True)
    p = torch.tensor([[0.52, 0.10, -0.01],   # u = (pre - theta)/eps: 0.2, -1.0, -0.4
                      [0.47, 0.24, 0.20],    # -0.3, 0.4, 1.7
                      [0.60, 0.26, 0.07]],   # 1.0, 0.6, 0.4
                     dtype=dt, requires_grad=True)
    g = torch.tensor([[1.0, 2.0, 5.0], [3.0, 4.0, 6.0], [7.0, 8.0, 9.0]], dtype=dt)
    z = JumpReLU.apply(p, th, eps)
    z.backward(g)
    want_z = [[0.52, 0.0, 0.0], [0.0, 0.24, 0.20], [0.60, 0.26, 0.07]]
    # dz/dtheta_j = -(theta_j/eps) * sum of g over the window |u| < 1/2:
    #   latent 0: rows 0, 1 -> -5 * (1 + 3); latent 1: row 1 -> -2 * 4;
    #   latent 2: rows 0, 2 -> -0.3 * (5 + 9) (row 0 has pre <= 0: in the window all the same)
    want_th = [-20.0, -8.0, -4.2]
    # dz/dpre = g where pre > theta and pre > 0
    want_p = [[1.0, 0.0, 0.0], [0.0, 4.0, 6.0], [7.0, 8.0, 9.0]]
    report("JumpReLU forward and pseudo-gradients, hand-computed case",
           torch.allclose(z.detach(), torch.tensor(want_z, dtype=dt))
           and torch.allclose(th.grad, torch.tensor(want_th, dtype=dt))
           and torch.allclose(p.grad, torch.tensor(want_p, dtype=dt)))
    th.grad = p.grad = None
    h = Step.apply(p, th, eps)
    h.backward(g)
    # dH/dtheta_j = -(1/eps) * sum of g over the window: -10 * (4, 4, 14)
    report("Step forward and pseudo-gradient, hand-computed case",
           torch.equal(h.detach(), (p > th).to(dt))
           and torch.allclose(th.grad, torch.tensor([-40.0, -40.0, -140.0], dtype=dt))
           and (p.grad is None or not p.grad.any()))

    # the batch selection against a stable sort on (-value, flat index), ties included
    sel_ok = True
    for trial in range(20):
        Bt, Mt = 1 + trial % 7, 1 + (trial * 5) % 13
        a = torch.relu(torch.randint(-3, 6, (Bt, Mt), generator=gen).to(torch.float32))
        for n in (1, Bt, 2 * Bt, Bt * Mt):
            flat = a.reshape(-1)
            order = sorted(range(len(flat)), key=lambda i: (-flat[i].item(), i))[:n]
            want = sorted(i for i in order if flat[i] > 0)
            sel_ok &= batch_topk(a, n).tolist() == want
    report("batch_topk = a stable sort (ties to the lower flat index)", sel_ok)
    return ok


# --- training ------------------------------------------------------------------------

def parse_widths(s, M):
    if s is None:
        return [M // 8, M // 2, M]
    w = [int(v) for v in s.split(",")]
    if any(b <= a for a, b in zip(w, w[1:])) or w[0] <= 0 or w[-1] != M:
        sys.exit("--widths must increase and end at --latents")
    return w


def main():
    ap = tc.base_parser("BatchTopK / Matryoshka / JumpReLU SAE reference trainer (PyTorch)",
                        lr=2e-3)
    ap.add_argument("--arch", choices=ARCHS, default="batchtopk")
    ap.add_argument("--k", type=int, default=32, help="batchtopk, matryoshka: mean active per row")
    ap.add_argument("--widths", help="matryoshka: nested widths, the last = --latents "
                                     "(default M/8,M/2,M)")
    ap.add_argument("--dead-tokens", type=int, default=1_000_000)
    ap.add_argument("--threshold-lr", type=float, default=0.05,
                    help="batchtopk, matryoshka: rate of the inference threshold's running "
                         "estimate")
    ap.add_argument("--target-l0", type=float, default=32.0, help="jumprelu")
    ap.add_argument("--sparsity-coef", type=float, default=10.0, help="jumprelu: lambda")
    ap.add_argument("--sparsity-warmup", type=float, default=0.05,
                    help="jumprelu: fraction of steps ramping lambda up")
    ap.add_argument("--bandwidth", type=float, default=0.05, help="jumprelu: eps")
    ap.add_argument("--threshold-init", type=float, default=-1.0,
                    help="jumprelu: theta_0; -1: the value where the initial SAE has mean L0 = "
                         "--target-l0 on the first --batch rows of the init sample (as sae train)")
    ap.add_argument("--check-grads", action="store_true",
                    help="check the autograd Functions and the selection, and exit")
    a = tc.parse(ap, files_optional="--check-grads" in sys.argv)
    if a.check_grads:
        torch.set_num_threads(a.threads)
        sys.exit(0 if check_grads() else 1)

    t_start = time.time()
    rng = tc.setup(a)
    X, scale, sample = tc.load_train(a.train, rng)
    d = X.shape[1]
    M = a.latents
    widths = parse_widths(a.widths, M) if a.arch == "matryoshka" else [M]
    aux_k = d // 2
    params = [p.requires_grad_() for p in init_params(M, d, tc.geometric_median(sample))]
    W_enc, b_enc, W_dec, b_dec = params
    theta = None  # batchtopk: a scalar set after the first step; jumprelu: learned
    if a.arch == "jumprelu":
        t0 = a.threshold_init
        if t0 < 0:  # calibrated: the (target * rows)-th largest initial pre-activation
            with torch.no_grad():
                xs = sample[: a.batch]
                pre = torch.relu(torch.addmm(b_enc, xs - b_dec, W_enc.t())).reshape(-1)
                t0 = torch.topk(pre, int(a.target_l0 * xs.shape[0])).values[-1].item()
        theta = torch.full((M,), t0, requires_grad=True)
        params.append(theta)
    opt = torch.optim.Adam(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    since_fired = torch.zeros(M, dtype=torch.long)

    steps = a.tokens // a.batch
    warm = min(5, steps - 1)  # steady state from the end of step `warm`, as run.py measures
    train_l0 = train_fvu = 0.0
    t0 = t_warm = time.time()
    for step, x in enumerate(tc.batches(X, scale, a.batch, steps, rng)):
        if a.arch == "jumprelu":
            lam = tc.l1_at(step, steps, a.sparsity_coef, a.sparsity_warmup)
            loss, fvu, l0, fired = jumprelu_loss(x, params[:4], theta, a.bandwidth, a.target_l0,
                                                 lam)
        else:
            dead_idx = (since_fired >= a.dead_tokens).nonzero().squeeze(1)
            loss, r, sel, vals = topk_family_loss(x, params, a.k * a.batch, widths, dead_idx,
                                                  aux_k)
            fvu = r.pow(2).sum() / total_variance(x)
            fired = torch.zeros(M, dtype=torch.bool)
            fired[sel % M] = True
            l0 = len(sel) / a.batch
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            g = W_dec.grad
            g -= (g * W_dec).sum(1, keepdim=True) * W_dec
            tc.set_lr(opt, tc.lr_at(step, steps, a.lr))
            opt.step()
            W_dec /= W_dec.norm(dim=1, keepdim=True)
            if a.arch == "jumprelu":
                theta.clamp_(min=0)
            elif len(vals):
                m_t = vals.min().item()
                theta = m_t if theta is None else theta + a.threshold_lr * (m_t - theta)
            since_fired = torch.where(fired, torch.zeros_like(since_fired), since_fired + a.batch)
        train_l0, train_fvu = float(l0), float(fvu)
        if step + 1 == warm:
            t_warm = time.time()
    elapsed = time.time() - t0
    del X

    W_enc, b_enc, W_dec, b_dec = (p.detach() for p in params[:4])
    th = theta.detach() if a.arch == "jumprelu" else (0.0 if theta is None else theta)

    def reconstruct(x):
        pre = torch.addmm(b_enc, x - b_dec, W_enc.t())
        z = pre * ((pre > th) & (pre > 0))
        return z @ W_dec + b_dec, (z > 0).sum()

    metrics = tc.evaluate(a.heldout, scale, reconstruct, W_dec)
    if a.arch == "jumprelu":
        extra = dict(target_l0=a.target_l0, sparsity_coef=a.sparsity_coef,
                     sparsity_warmup=a.sparsity_warmup, bandwidth=a.bandwidth,
                     threshold_init=a.threshold_init, theta_mean=th.mean().item(),
                     theta_max=th.max().item())
    else:
        extra = dict(k=a.k, dead_tokens=a.dead_tokens, threshold_lr=a.threshold_lr,
                     widths=widths if a.arch == "matryoshka" else None, theta=th)
    tc.report(metrics, tokens=steps * a.batch,
              tokens_per_s=(steps - warm) * a.batch / (t0 + elapsed - t_warm),
              tokens_per_s_whole_loop=steps * a.batch / elapsed, train_s=elapsed,
              wall_s=time.time() - t_start, final_train_l0=train_l0, final_train_fvu=train_fvu,
              dead_frac=(since_fired >= a.dead_tokens).float().mean().item(),
              arch=a.arch, impl="autograd", threads=a.threads, batch=a.batch, latents=M, d=d,
              lr=a.lr, seed=a.seed, **extra)


if __name__ == "__main__":
    main()
