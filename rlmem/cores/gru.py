"""``gru``: gated recurrent unit."""

from __future__ import annotations

import torch
from torch import nn

from .base import Extras
from .fused import FusedRNNCore
from .gru_kernel import gru_sequence
from .registry import register_core
from .state import State


@register_core("gru")
class GRUCore(FusedRNNCore):
    """GRU. State ``{"h": [B, L, H]}``.

    One layer on the CPU runs :func:`~rlmem.cores.gru_kernel.gru_sequence` (resets inside the
    chunk, hand-written backward); otherwise torch's fused ``nn.GRU`` runs between resets.
    """

    def make_rnn(self, input_size: int, hidden_size: int, num_layers: int) -> nn.RNNBase:
        return nn.GRU(input_size, hidden_size, num_layers)

    def forward(self, x: torch.Tensor, state: State, starts: torch.Tensor, need_state: bool = True
                ) -> tuple[torch.Tensor, State, Extras]:
        if self.num_layers > 1 or x.device.type != "cpu":
            return super().forward(x, state, starts, need_state)
        self._check_input(x, starts)
        rnn = self.rnn
        h0 = self.initial_state(x.shape[1], x.device)["h"][:, 0]
        if x.shape[0] == 1 and not torch.is_grad_enabled():  # acting: one fused cell call
            h = torch.where(starts[0].unsqueeze(-1), h0, state["h"][:, 0])
            h = torch.gru_cell(x[0], h, rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)
            return h.unsqueeze(0), {"h": h.unsqueeze(1)}, {}
        ys, h = gru_sequence(x, state["h"][:, 0], h0, starts, rnn.weight_ih_l0, rnn.weight_hh_l0,
                             rnn.bias_ih_l0, rnn.bias_hh_l0)
        return ys, {"h": h.unsqueeze(1)}, {}
