"""A single-layer GRU over ``[T, B, F]`` with episode resets inside the sequence and a hand-written
backward pass, for the CPU.

Why: torch's CPU GRU records every step's small ops for autograd, so its backward over a short
chunk costs several times its forward. Here the input projections of all steps are one matmul,
each step is one matmul plus a few element-wise ops written straight into preallocated storage,
the per-step factors the backward needs are computed for all steps at once, and the weight
gradients of all steps are two matmuls at the end. Resets (``starts``) are applied inside the
loop, so a chunk need not be cut where episodes begin.

The math is torch's ``nn.GRU`` (same weight layout ``[r | z | n]``)::

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h
"""

from __future__ import annotations

import torch


class GRUSequence(torch.autograd.Function):
    """``(x [T,B,F], h [B,H], h0 [B,H], starts [T,B], W_ih, W_hh, b_ih, b_hh) -> (ys [T,B,H], h_T [B,H])``.

    ``h0`` is the state a row takes where ``starts[t]`` is set (before consuming ``x[t]``).
    """

    @staticmethod
    def forward(ctx, x, h, h0, starts, w_ih, w_hh, b_ih, b_hh):
        T, B = starts.shape
        H = h.shape[-1]
        gi = torch.addmm(b_ih, x.reshape(T * B, -1), w_ih.t()).view(T, B, 3 * H)
        ys = x.new_empty(T, B, H)
        gh = x.new_empty(T, B, 3 * H)  # recurrent projections (the backward needs their n part)
        rz = x.new_empty(T, B, 2 * H)
        n = x.new_empty(T, B, H)
        keep = ~starts.unsqueeze(-1)
        resets = starts.any(dim=1).tolist()  # CPU only: a free check, saves a select per step
        w_hh_t = w_hh.t()
        h_in = h
        for t in range(T):
            if resets[t]:
                h = torch.where(keep[t], h, h0)
            torch.addmm(b_hh, h, w_hh_t, out=gh[t])
            torch.sigmoid(gi[t, :, :2 * H] + gh[t, :, :2 * H], out=rz[t])
            torch.tanh(torch.addcmul(gi[t, :, 2 * H:], rz[t, :, :H], gh[t, :, 2 * H:]), out=n[t])
            h = torch.lerp(n[t], h, rz[t, :, H:], out=ys[t])  # (1 - z) n + z h
        ctx.save_for_backward(x, h_in, h0, ys, gh, rz, n, keep, w_ih, w_hh)
        ctx.resets = resets
        return ys, h.clone()

    @staticmethod
    def backward(ctx, d_ys, d_hT):
        x, h_in, h0, ys, gh, rz, n, keep, w_ih, w_hh = ctx.saved_tensors
        T, B, H = ys.shape
        # The state each step consumed, and the per-step factors of the chain rule, for all t at once.
        h_prev = torch.cat((h_in.unsqueeze(0), ys[:-1]))
        if any(ctx.resets):
            h_prev = torch.where(keep, h_prev, h0)
        r, z = rz[..., :H], rz[..., H:]
        # d(pre-activations [r | z | n]) / dh for every step: the loop then needs one multiply.
        dn_dh = (1 - z) * (1 - n * n)
        d_gh_dh = torch.cat((dn_dh * gh[..., 2 * H:] * r * (1 - r), (h_prev - n) * z * (1 - z), dn_dh * r), -1)
        d_gh = x.new_empty(T, B, 3 * H)
        dh_all = x.new_empty(T, B, H)
        d_h0 = torch.zeros_like(h_in)
        dh = d_hT.clone() if d_hT is not None else torch.zeros_like(h_in)
        for t in range(T - 1, -1, -1):
            if d_ys is not None:
                dh += d_ys[t]
            dh_all[t] = dh
            torch.mul(d_gh_dh[t].view(B, 3, H), dh.unsqueeze(1), out=d_gh[t].view(B, 3, H))
            dh = torch.addmm(dh * z[t], d_gh[t], w_hh)
            if ctx.resets[t]:  # rows that were reset took h0, not the carried state
                d_h0 += torch.where(keep[t], 0.0, dh)
                dh = torch.where(keep[t], dh, 0.0)
        d_gi = d_gh.clone()  # input and recurrent pre-activations share r and z; n differs by r
        d_gi[..., 2 * H:] = dh_all * dn_dh
        gi2, gh2 = d_gi.view(T * B, -1), d_gh.view(T * B, -1)
        d_x = (gi2 @ w_ih).view_as(x) if ctx.needs_input_grad[0] else None
        d_w_ih = gi2.t() @ x.reshape(T * B, -1)
        d_w_hh = gh2.t() @ h_prev.reshape(T * B, H)
        return d_x, dh, d_h0, None, d_w_ih, d_w_hh, gi2.sum(0), gh2.sum(0)


def gru_sequence(x: torch.Tensor, h: torch.Tensor, h0: torch.Tensor, starts: torch.Tensor,
                 w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a GRU over ``x`` [T, B, F] from ``h`` [B, H], resetting rows to ``h0`` at ``starts``.

    Returns the outputs ``[T, B, H]`` and the final state ``[B, H]``.
    """
    return GRUSequence.apply(x, h, h0.expand_as(h), starts, w_ih, w_hh, b_ih, b_hh)
