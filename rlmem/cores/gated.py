"""``gated``: the simple gated recurrent network.

    g_t = sigmoid(W_gx x_t + W_gs s_{t-1} + b_g)
    s_t = (1 - g_t) * s_{t-1} + g_t * tanh(W_sx x_t + W_ss s_{t-1} + b_s)

The gate decides per unit how much of the old state survives, which lets information (and
gradients) pass many steps unchanged when g is near 0.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Extras, InitialState, StepCore
from .registry import register_core
from .state import State


@register_core("gated")
class GatedCore(StepCore):
    """Gated RNN, one step at a time. State ``{"s": [B, H]}``; extras ``gate`` [T, B] (detached):
    the mean of g over the units, 0..1, the share of the state the step replaces (0 keeps it).

    Args:
        input_size: feature size F.
        hidden_size: H, also the output size.
        gate_bias: initial bias of the gate; negative values start the core remembering.
        learn_init: learn the initial state instead of starting from zeros.
    """

    def __init__(self, input_size: int, hidden_size: int = 128, gate_bias: float = -1.0,
                 learn_init: bool = False):
        super().__init__(input_size, hidden_size)
        self.hidden_size = hidden_size
        self.input_proj = nn.Linear(input_size, 2 * hidden_size)  # [gate | candidate] from x
        self.state_proj = nn.Linear(hidden_size, 2 * hidden_size, bias=False)
        with torch.no_grad():
            self.input_proj.bias[:hidden_size].fill_(gate_bias)
        self.init = InitialState({"s": (hidden_size,)}, learn=learn_init)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        return self.init(batch_size, device)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return self.input_proj(x)  # [T, B, 2H], one matmul for the whole chunk

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State, Extras]:
        s = state["s"]
        pre_g, pre_c = (x + self.state_proj(s)).chunk(2, dim=-1)
        g = torch.sigmoid(pre_g)
        s = s + g * (torch.tanh(pre_c) - s)
        return s, {"s": s}, {"gate": g.detach().mean(dim=-1)}
