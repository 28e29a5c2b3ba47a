"""``counts``: how often each input feature has been seen this episode, read out one level per count."""

from __future__ import annotations

import torch

from .base import Extras, InitialState, StepCore
from .registry import register_core
from .state import State


@register_core("counts")
class CountsCore(StepCore):
    """Order-agnostic memory: ``n_t = n_{t-1} + x_t``, every input feature summed since the episode
    began, read out with the step's input as ``y_t = [x_t | levels(n_t)]``.

    ``levels`` puts each count on triangular bumps centred at 0, 1, ..., ``levels - 1``
    (``max(0, 1 - |n - k|)``; counts beyond the last level stay on it), so an integer count is a
    one-hot vector: a linear head can tell 25 from 26 as easily as 0 from 1, which a single
    growing number (or a GRU's saturating state) does not give it. The core stores its inputs'
    sum, so it gets the encoded observation (one-hot for ``Discrete``/``MultiDiscrete``, bits for
    ``MultiBinary``), not a learned embedding: then ``n_t`` is how many times each value has been
    observed (POPGym's CountRecall asks exactly that). The state needs no earlier step's gradient
    (``bptt_free``): agents train every step from its stored counts.

    Args:
        input_size: feature size F.
        levels: count levels per feature (the output has ``F * (1 + levels)`` features).
        learn_init: learn the initial counts (zeros otherwise).

    State: ``{"n": [B, F]}``. Extras: ``count_mean``, the mean count per feature ``[B]``.
    """

    stores_inputs = True
    bptt_free = True
    state_from_inputs = True

    def __init__(self, input_size: int, levels: int = 32, learn_init: bool = False):
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
            raise ValueError(f"levels must be an integer >= 2, got {levels!r}")
        super().__init__(input_size, input_size * (1 + levels))
        self.levels = levels
        self.init = InitialState({"n": (input_size,)}, learn=learn_init)
        self.register_buffer("grid", torch.arange(levels, dtype=torch.float32), persistent=False)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        return self.init(batch_size, device)

    def read(self, n: torch.Tensor) -> torch.Tensor:
        """Counts ``[B, F]`` on their levels: ``[B, F * levels]``."""
        n = n.clamp(max=self.levels - 1).unsqueeze(-1)
        return torch.relu(1.0 - (n - self.grid.to(n.dtype)).abs()).flatten(-2)

    def next_state(self, x: torch.Tensor, state: State) -> State:
        return {"n": state["n"] + x}

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State, Extras]:
        state = self.next_state(x, state)
        n = state["n"]
        return torch.cat([x, self.read(n)], dim=-1), state, {"count_mean": n.detach().mean(-1)}
