"""``mlp``: no memory at all, the baseline every memory core must beat."""

from __future__ import annotations

import torch
from torch import nn

from .base import Core, Extras
from .registry import register_core
from .state import State


@register_core("mlp")
class MLPCore(Core):
    """``y_t = MLP(x_t)``; the state is empty and ``starts`` change nothing.

    Args:
        input_size: feature size F.
        hidden_size: width of every layer and of the output.
        num_layers: number of Linear+tanh layers.
    """

    def __init__(self, input_size: int, hidden_size: int = 128, num_layers: int = 1):
        super().__init__(input_size, hidden_size)
        if num_layers < 1:
            raise ValueError(f"mlp num_layers must be >= 1, got {num_layers}")
        layers: list[nn.Module] = []
        size = input_size
        for _ in range(num_layers):
            layers += [nn.Linear(size, hidden_size), nn.Tanh()]
            size = hidden_size
        self.net = nn.Sequential(*layers)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        return {}

    def forward(self, x: torch.Tensor, state: State, starts: torch.Tensor, need_state: bool = True
                ) -> tuple[torch.Tensor, State, Extras]:
        self._check_input(x, starts)
        return self.net(x), state, {}
