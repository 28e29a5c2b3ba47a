"""Cores backed by torch's fused recurrent kernels (``nn.RNN``, ``nn.GRU``, ``nn.LSTM``).

A chunk is cut only at the time steps where some row starts an episode; between cuts one fused
call runs the whole stretch, so training on chunks has no per-step Python loop.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Core, Extras, InitialState
from .state import State, reset_state


class FusedRNNCore(Core):
    """Base for single- or multi-layer torch RNNs with state ``{"h": [B, L, H]}`` (+ ``"c"``).

    Args:
        input_size: feature size F.
        hidden_size: H, also the output size.
        num_layers: L stacked layers.
        learn_init: learn the initial state instead of starting from zeros.
    """

    state_keys: tuple[str, ...] = ("h",)

    def __init__(self, input_size: int, hidden_size: int = 128, num_layers: int = 1,
                 learn_init: bool = False):
        super().__init__(input_size, hidden_size)
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.rnn = self.make_rnn(input_size, hidden_size, num_layers)
        self.init = InitialState({k: (num_layers, hidden_size) for k in self.state_keys}, learn=learn_init)

    def make_rnn(self, input_size: int, hidden_size: int, num_layers: int) -> nn.RNNBase:
        raise NotImplementedError

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        return self.init(batch_size, device)

    def _run(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        hx = tuple(state[k].transpose(0, 1).contiguous() for k in self.state_keys)
        y, out = self.rnn(x, hx if len(hx) > 1 else hx[0])
        out = out if isinstance(out, tuple) else (out,)
        return y, {k: v.transpose(0, 1) for k, v in zip(self.state_keys, out)}

    def forward(self, x: torch.Tensor, state: State, starts: torch.Tensor, need_state: bool = True
                ) -> tuple[torch.Tensor, State, Extras]:
        self._check_input(x, starts)
        T, B = starts.shape
        initial = self.initial_state(B, x.device)
        if T == 1:
            cuts: list[int] = []
        else:  # one host sync per chunk: where must the fused run be cut?
            cuts = (torch.nonzero(starts[1:].any(dim=1)).flatten() + 1).tolist()
        bounds = [0, *cuts, T]
        ys = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            state = reset_state(state, initial, starts[a])
            y, state = self._run(x[a:b], state)
            ys.append(y)
        return (ys[0] if len(ys) == 1 else torch.cat(ys)), state, {}
