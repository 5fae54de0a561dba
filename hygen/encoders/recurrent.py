"""The GRU over time of the local trunks, on packed episodes (no step past an episode's end).

``nn.GRU`` on a padded [B*n, T, d] batch runs every sequence for T steps, and its autograd
graph records ~20 small nodes per step (each with a weight-gradient matmul). Here:

- episodes are sorted by length, so the sequences still running at step t are a prefix of
  those running at t-1: step t works on that prefix only (what ``PackedSequence`` does);
- the input projection W_ih x + b_ih is one matmul over all valid steps (outside the loop);
- the recurrence is one autograd node: the forward loop does 6 ops per step, the backward
  loop 4 (the gates' derivative coefficients are computed for all steps at once), and the
  weight gradient of W_hh is one matmul over all steps after the loop.

Same parameters (``nn.GRU``'s weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0) and the
same function as ``nn.GRU`` on every valid step (gate order r, z, n):

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr),   z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),   h' = (1 - z) n + z h = n + z (h - n)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable


class _GRURecurrence(torch.autograd.Function):
    """gi [R, 3H] (input projections, time-major: step t is rows off_t .. off_t + sizes[t],
    sizes non-increasing, the rows of step t+1 the first ones of step t's sequences),
    h0 [sizes[0], H] -> outputs h_t [R, H].

    Every elementwise op works on one step's rows, which stay in cache: passes over whole
    [R, H] tensors cost more than the ops themselves on a memory-bound CPU.
    """

    @staticmethod
    def forward(ctx, gi: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor, sizes: list[int],
                needs_grad: bool) -> Tensor:
        R, H = gi.shape[0], h0.shape[1]
        gh = gi.new_empty(R, 3 * H)  # W_hh h + b_hh
        rz = gi.new_empty(R, 2 * H)
        n = gi.new_empty(R, H)
        out = gi.new_empty(R, H)
        # d h_t / d(pre-activations) per unit of dL/dh_t, in the order gh_r, gh_z, gh_n, gi_n, h_{t-1}:
        #   a_n = gi_n + r gh_n: da_n = (1 - z)(1 - n^2);  dgh_n = r da_n;  dgi_n = da_n
        #   da_r = gh_n r (1 - r) da_n;  da_z = (h_{t-1} - n) z (1 - z);  dh_{t-1} = z (+ W_hh^T dgh)
        # (the r, z pre-activations take gi and gh alike), computed here while the step's values
        # are in cache: the backward loop only scales them by dL/dh_t.
        coef = gi.new_empty(R, 5, H) if needs_grad else None
        w_t, h, off = w_hh.t(), h0, 0
        for s in sizes:
            sl = slice(off, off + s)
            torch.addmm(b_hh, h[:s], w_t, out=gh[sl])
            r_z = torch.add(gi[sl, :2 * H], gh[sl, :2 * H], out=rz[sl]).sigmoid_()
            r, z, gh_n = r_z[:, :H], r_z[:, H:], gh[sl, 2 * H:]
            n_t = torch.addcmul(gi[sl, 2 * H:], r, gh_n, out=n[sl])
            n_t.mul_(2).sigmoid_().mul_(2).sub_(1)  # tanh(a) = 2 sigmoid(2a) - 1: ~3x faster than tanh here
            h_prev, h = h[:s], torch.lerp(n_t, h[:s], z, out=out[sl])  # n + z (h_{t-1} - n)
            if needs_grad:
                c = coef[sl]
                one_minus_z = 1 - z
                d_an = torch.mul(n_t, n_t, out=c[:, 3]).neg_().add_(1).mul_(one_minus_z)
                torch.mul(d_an, r, out=c[:, 2])
                torch.mul(c[:, 2], gh_n, out=c[:, 0]).mul_(1 - r)
                torch.sub(h_prev, n_t, out=c[:, 1]).mul_(z).mul_(one_minus_z)
                c[:, 4] = z
            off += s
        ctx.sizes = sizes
        ctx.save_for_backward(h0, w_hh, coef, out)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        h0, w_hh, coef, out = ctx.saved_tensors
        sizes, H, R = ctx.sizes, h0.shape[1], out.shape[0]
        offsets = [0]
        for s in sizes[:-1]:
            offsets.append(offsets[-1] + s)
        d_pre = torch.empty_like(coef)  # dL/d [gh_r, gh_z, gh_n, gi_n, h_{t-1} (direct part)]
        dh = grad_out.clone(memory_format=torch.contiguous_format)  # dL/dh_t: + what step t+1 carries back
        carry = None
        for t in reversed(range(len(sizes))):
            o, s = offsets[t], sizes[t]
            dh_t = dh[o:o + s]
            if carry is not None:  # from step t+1, whose sequences are the first rows of step t's
                dh_t[:carry.shape[0]].add_(carry)
            d = torch.mul(dh_t.unsqueeze(1), coef[o:o + s], out=d_pre[o:o + s])
            carry = torch.addmm(d[:, 4], d[:, :3].reshape(s, 3 * H), w_hh)  # dL/dh_{t-1}
        d_gh = d_pre[:, :3].reshape(R, 3 * H)  # a view (rows 5H apart)
        d_gi = torch.cat([d_pre[:, :2], d_pre[:, 3:4]], 1).view(R, 3 * H)
        grad_w = grad_b = None
        if ctx.needs_input_grad[2]:  # one matmul over all steps; h_{t-1}: h0, then the first rows of step t-1
            h_prev = torch.cat([h0] + [out[o:o + s] for o, s in zip(offsets[:-1], sizes[1:])])
            grad_w = d_gh.t() @ h_prev
        if ctx.needs_input_grad[3]:
            grad_b = d_gh.sum(0)
        return d_gi, carry, grad_w, grad_b, None, None


class _PermuteRows(torch.autograd.Function):
    """x[perm] for a permutation ``perm`` (``inv`` its inverse): the backward is a gather too,
    not the scatter-add autograd would use for a general index."""

    @staticmethod
    def forward(ctx, x: Tensor, perm: Tensor, inv: Tensor) -> Tensor:
        ctx.save_for_backward(inv)
        return x[perm]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        (inv,) = ctx.saved_tensors
        return grad[inv], None, None


def packed_gru(gru: nn.GRU, x: Tensor, valid: Tensor | None, shape: tuple[int, int],
               h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Run ``gru`` (one layer, batch_first) over each episode's valid steps only.

    x [N, n, d]: the valid rows of a [B, T] batch (``pack_rows`` order: episode-major),
    n sequences (agents) per row; valid [B, T] bool, each episode's valid rows a prefix
    (None: all T rows); h0 [B, n, H] or None (zeros).
    -> (h_t on the valid rows [N, n, H], hidden after each episode's last valid step [B, n, H]).
    """
    B, T = shape
    N, n, _ = x.shape
    H = gru.hidden_size
    dev = x.device
    if valid is None:
        lengths = torch.full((B,), T, dtype=torch.long, device=dev)
    else:
        lengths = valid.sum(1)
        if not bool((valid == (torch.arange(T, device=dev) < lengths[:, None])).all()):
            raise ValueError("packed_gru: the valid rows of each episode must be a prefix (no holes)")
    if N == 0:
        return x.new_zeros(0, n, H), x.new_zeros(B, n, H) if h0 is None else h0
    # Episodes by decreasing length: the sequences still running at step t are the first ones.
    order = torch.argsort(lengths, descending=True, stable=True)
    ls = lengths[order]
    steps = torch.arange(int(ls[0]), device=dev)
    running = steps[:, None] < ls[None, :]  # [T', B]: episode order[j] still runs at step t
    start = torch.cumsum(lengths, 0) - lengths  # packed row of (b, t=0)
    tm = (start[order][None, :] + steps[:, None])[running]  # time-major position -> packed row
    inv = torch.argsort(tm)
    sizes = (running.sum(1) * n).tolist()  # rows (sequences) per step

    x_tm = _PermuteRows.apply(x, tm, inv).view(N * n, -1)
    gi = F.linear(x_tm, gru.weight_ih_l0, gru.bias_ih_l0)  # the input projection: one matmul, every step
    h_first = x.new_zeros(sizes[0], H) if h0 is None else h0[order].reshape(B * n, H)[:sizes[0]]
    needs_grad = torch.is_grad_enabled() and (gi.requires_grad or h_first.requires_grad or gru.weight_hh_l0.requires_grad
                                               or gru.bias_hh_l0.requires_grad)
    out = _GRURecurrence.apply(gi, h_first, gru.weight_hh_l0, gru.bias_hh_l0, sizes, needs_grad)
    h = _PermuteRows.apply(out.view(N, n, H), inv, tm)  # back to packed (episode-major) order
    last = h[(start + lengths - 1).clamp_min(0)]  # [B, n, H]
    if bool((lengths == 0).any()):  # an episode without valid rows keeps its initial state
        init = x.new_zeros(B, n, H) if h0 is None else h0
        last = torch.where((lengths > 0)[:, None, None], last, init)
    return h, last


def gru_step(gru: nn.GRU, x: Tensor, h: Tensor | None = None) -> Tensor:
    """One step of ``gru`` (one layer) for R sequences: x [R, d], h [R, H] or None (zeros) -> h' [R, H].

    Acting runs the GRU for one step on a handful of sequences, where ``nn.GRU``'s call
    (argument checks, flattening, stacking the per-step outputs) costs more than the maths.
    These are the operations ATen's CPU GRU performs for one step, in its order and with its
    in-place forms (input projection, recurrent projection, then
    r = sigmoid(gh_r + gi_r), z = sigmoid(gh_z + gi_z), n = tanh(gi_n + gh_n * r),
    h' = (h - n) * z + n), so on a CPU the result is bit-identical to ``nn.GRU`` (checked by
    tests/test_hygen_speed_equivalence.py; on a GPU ``nn.GRU`` runs cuDNN's fused kernel instead).
    No autograd: callers use it under no_grad only.
    """
    gi = F.linear(x, gru.weight_ih_l0, gru.bias_ih_l0)
    if h is None:
        h = x.new_zeros(x.shape[0], gru.hidden_size)
    gh = F.linear(h, gru.weight_hh_l0, gru.bias_hh_l0)
    i_r, i_z, i_n = gi.chunk(3, 1)
    h_r, h_z, h_n = gh.chunk(3, 1)
    r = h_r.add_(i_r).sigmoid_()
    z = h_z.add_(i_z).sigmoid_()
    n = i_n.add(h_n.mul_(r)).tanh_()
    return (h - n).mul_(z).add_(n)
