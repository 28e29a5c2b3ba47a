"""The GRU's hand-written sequence kernel matches torch's GRU cell, values and gradients."""

from __future__ import annotations

import torch

from rlmem.cores.gru_kernel import gru_sequence


def test_gru_sequence_matches_autograd_through_gru_cells_with_resets():
    torch.manual_seed(0)
    T, B, F, H = 12, 5, 7, 9
    rnn = torch.nn.GRU(F, H).double()
    weights = [rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0]
    x = torch.randn(T, B, F, dtype=torch.double, requires_grad=True)
    h = torch.randn(B, H, dtype=torch.double, requires_grad=True)
    h0 = torch.randn(H, dtype=torch.double, requires_grad=True)
    starts = torch.rand(T, B) < 0.2
    starts[3, 1] = starts[7, :] = True  # a single row and a whole batch reset inside the chunk

    def reference():
        state, ys = h, []
        for t in range(T):
            state = torch.where(starts[t].unsqueeze(-1), h0.expand(B, H), state)
            state = torch.gru_cell(x[t], state, *weights)
            ys.append(state)
        return torch.stack(ys), state

    weight_y, weight_h = torch.randn(T, B, H, dtype=torch.double), torch.randn(B, H, dtype=torch.double)
    inputs = [x, h, h0, *weights]
    results = []
    for ys, h_last in (reference(), gru_sequence(x, h, h0.expand(B, H), starts, *weights)):
        loss = (ys * weight_y).sum() + (h_last * weight_h).sum()
        results.append((ys.detach(), h_last.detach(), torch.autograd.grad(loss, inputs)))
    (y1, h1, g1), (y2, h2, g2) = results
    torch.testing.assert_close(y1, y2)
    torch.testing.assert_close(h1, h2)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)
