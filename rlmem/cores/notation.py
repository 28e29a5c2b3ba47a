"""``notation``: a cell written in the arrow notation, compiled to a step core.

    python -m rlmem.train core=notation core.spec=gru_textbook
    python -m rlmem.train core=notation core.spec=./my_cell.arrow core.hidden_size=64

The spec is parsed and compiled once, when the core is built (:mod:`rlmem.notation`); the forward
pass runs generated straight-line torch code: the input's share of every layer for the whole
chunk at once, then one loop over time with the resets inside.
"""

from __future__ import annotations

import torch
from torch import nn

from rlmem.notation import CompiledSpec, compile_spec

from .base import Extras, StepCore
from .registry import register_core
from .state import State


@register_core("notation")
class NotationCore(StepCore):
    """A core defined by a spec. State: one entry ``[B, size]`` per name the spec reads at
    ``_{t-1}``; output: what the last line computes (or what ``return`` names).

    Args:
        input_size: feature size F, the size of the spec's input (``x_t``).
        spec: a built-in spec (``configs/core/specs/NAME.arrow``), a path to a file, or spec text.
        hidden_size: size of every state and output the spec does not size otherwise.
        learn_init: learn the initial values (starting from the spec's constants).
    """

    def __init__(self, input_size: int, spec: str = "gru_textbook", hidden_size: int = 128,
                 learn_init: bool = False):
        if hidden_size < 1:
            raise ValueError(f"hidden_size must be positive, got {hidden_size}")
        compiled = compile_spec(spec, input_size, hidden_size)
        super().__init__(input_size, compiled.output_size)
        self.spec, self.hidden_size, self.compiled = spec, hidden_size, compiled
        self.state_keys = tuple(name for name, _, _ in compiled.states)
        self.tensor_names = tuple(name for name, _ in compiled.tensors)
        for name, shape in compiled.tensors:
            self.register_parameter(name, nn.Parameter(torch.empty(shape)))
        self.init_names = tuple(f"init_{name}" for name in self.state_keys)
        for key, (name, size, value) in zip(self.init_names, compiled.states):
            start = torch.full((size,), float(value))
            if learn_init:
                self.register_parameter(key, nn.Parameter(start))
            else:
                self.register_buffer(key, start, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Each layer ``M`` as ``nn.Linear`` starts: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in))."""
        values = {}
        for name, view in self.compiled.params.items():
            bound = view.in_size ** -0.5
            values[name] = (torch.empty(view.out_size, view.in_size).uniform_(-bound, bound),
                            torch.empty(view.out_size).uniform_(-bound, bound))
        self.compiled.scatter(values, self._storage())

    def _storage(self) -> dict[str, torch.Tensor]:
        return {name: self._parameters[name] for name in self.tensor_names}

    # ------------------------------------------------------------------ the spec's parameters
    def spec_parameters(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{name: (weight [out, in], bias [out])}`` for every layer of the spec, as written
        (``R`` of ``c_t --[R|sigmoid]-> r_t``; columns in the order of its input's parts).
        Differentiable views of the fused storage."""
        return self.compiled.gather(self._storage())

    def spec_gradients(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The gradients of :meth:`spec_parameters` after a backward pass."""
        grads = {k: (p.grad if p.grad is not None else torch.zeros_like(p)) for k, p in self._storage().items()}
        return self.compiled.gather(grads)

    def load_spec_parameters(self, values: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Set layers by name: ``{"R": (weight, bias), ...}`` (any subset)."""
        self.compiled.scatter(values, self._storage())

    # ------------------------------------------------------------------ the core interface
    def _inits(self) -> list[torch.Tensor]:
        return [self._parameters[k] if k in self._parameters else self._buffers[k] for k in self.init_names]

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        out = {}
        for key, init in zip(self.state_keys, self._inits()):
            if device is not None and init.device != torch.device(device):
                init = init.to(device)
            out[key] = init.unsqueeze(0).expand(batch_size, init.shape[0])
        return out

    def forward(self, x: torch.Tensor, state: State, starts: torch.Tensor, need_state: bool = True
                ) -> tuple[torch.Tensor, State | None, Extras]:
        self._check_input(x, starts)
        # one host sync per chunk, so steps without a start skip the reset
        flags = None if x.shape[0] == 1 else starts.any(dim=1).tolist()
        tensors = [self._parameters[k] for k in self.tensor_names]
        y, new = self.compiled.run(x, starts, flags, need_state, *(state[k] for k in self.state_keys),
                                   *self._inits(), *tensors)
        return y, (None if new is None else dict(zip(self.state_keys, new))), {}

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [T, B, F] -> [T, B, K]: the share of every step's work that depends on the input alone."""
        return self.compiled.prepare(x, *(self._parameters[k] for k in self.tensor_names))

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State, Extras]:
        """One step from a ``[B, K]`` slice of :meth:`prepare`'s output."""
        y, new = self.compiled.step(x, *(state[k] for k in self.state_keys),
                                    *(self._parameters[k] for k in self.tensor_names))
        return y, dict(zip(self.state_keys, new)), {}

    def extra_repr(self) -> str:
        return f"spec={self.spec!r}, input_size={self.input_size}, hidden_size={self.hidden_size}"


__all__ = ["CompiledSpec", "NotationCore"]
