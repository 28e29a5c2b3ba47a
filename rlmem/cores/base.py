"""The core interface every memory model speaks.

A core maps a time-major feature sequence to outputs while carrying a state::

    y, state, extras = core(x, state, starts, need_state=True)

- ``x``: ``[T, B, F]`` features (``F == core.input_size``).
- ``state``: ``dict[str, Tensor]``, each ``[B, ...]`` (see :mod:`rlmem.cores.state`).
- ``starts``: ``[T, B]`` bool, True where an episode begins at step ``t``: that row is reset to
  the initial state *before* ``x[t]`` is consumed.
- ``y``: ``[T, B, core.output_size]``; ``extras``: per-step diagnostics ``[T, B, ...]`` and an
  optional scalar ``"aux_loss"`` that agents add with a configurable weight.
- ``need_state=False``: the caller will not use the returned state (training on stored chunks);
  a core may then skip work that only the next step needs and return ``None`` for it.

Acting calls the same ``forward`` with ``T = 1``; training calls it over stored chunks.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from .state import State, reset_state

Extras = dict[str, torch.Tensor]


class Core(nn.Module):
    """Base class of all memory cores.

    Attributes:
        input_size: feature size ``F`` of ``x``.
        output_size: feature size of ``y``.
        bptt_free: True when a step's gradient needs no earlier step, given the stored state
            (the slot memory keeps its slots detached). Agents then train on chunks of length 1,
            all steps in parallel, with the state stored at every step.
        stores_inputs: True when the core keeps its inputs, detached, in its state for later
            steps (the slot memory keeps tokens). The policy then feeds it the encoded
            observation without a learned embedding: a stored embedding would go stale as the
            embedding trains, and the embedding would get no gradient from the later steps that
            read it, so nothing would keep apart the inputs that matter only much later.
        state_from_inputs: True when the next state is a function of the state and the step's
            input alone, with no parameter in between (counts, a tape of inputs). A replay buffer
            then keeps the state before a sequence's first row only and rebuilds the others by
            running the core over the stored inputs: the same states, bit for bit, where the
            inputs need no parameters to encode (one-hot, bits, flat boxes), in a fraction of the
            memory.
    """

    bptt_free: bool = False
    stores_inputs: bool = False
    state_from_inputs: bool = False

    def __init__(self, input_size: int, output_size: int):
        super().__init__()
        if input_size < 1 or output_size < 1:
            raise ValueError(f"core sizes must be positive, got input_size={input_size}, "
                             f"output_size={output_size}")
        self.input_size = int(input_size)
        self.output_size = int(output_size)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """State for ``batch_size`` fresh episodes: ``dict[str, Tensor[B, ...]]``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, state: State, starts: torch.Tensor, need_state: bool = True
                ) -> tuple[torch.Tensor, State, Extras]:
        """``x`` [T, B, F], ``state`` {k: [B, ...]}, ``starts`` [T, B] bool ->
        (``y`` [T, B, output_size], final state (may be None if not ``need_state``),
        extras {k: [T, B, ...]})."""
        raise NotImplementedError

    def next_state(self, x: torch.Tensor, state: State) -> State:
        """The state after one step with input ``x`` [B, F] from ``state`` {k: [B, ...]} (already
        reset where an episode starts); what a replay buffer rebuilds rows with for cores whose
        state follows from their inputs. Such a core overrides it with the state update alone."""
        no_start = torch.zeros(1, x.shape[0], dtype=torch.bool, device=x.device)
        return self.forward(x.unsqueeze(0), state, no_start)[1]

    def _check_input(self, x: torch.Tensor, starts: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__} expects x of shape [T, B, {self.input_size}], "
                             f"got {tuple(x.shape)}")
        if starts.shape != x.shape[:2]:
            raise ValueError(f"starts must be [T, B] = {tuple(x.shape[:2])}, got {tuple(starts.shape)}")


class InitialState(nn.Module):
    """Initial state entries of fixed per-row shape, either zeros or learned parameters.

    ``InitialState({"h": (64,)}, learn=True)(batch_size=8)`` gives ``{"h": Tensor[8, 64]}``; when
    learned, gradients of every episode's first steps reach the parameters.
    """

    def __init__(self, shapes: Mapping[str, tuple[int, ...]], learn: bool = False,
                 values: Mapping[str, torch.Tensor] | None = None):
        super().__init__()
        self.learn = learn
        values = dict(values or {})
        self.params = nn.ParameterDict()
        self.shapes = {k: tuple(s) for k, s in shapes.items()}
        for k, shape in self.shapes.items():
            value = values.get(k, torch.zeros(shape))
            if tuple(value.shape) != shape:
                raise ValueError(f"initial value for {k!r} has shape {tuple(value.shape)}, expected {shape}")
            if learn:
                self.params[k] = nn.Parameter(value.clone().float())
            else:
                self.register_buffer(f"fixed_{k}", value.clone().float(), persistent=False)

    def forward(self, batch_size: int, device: torch.device | str | None = None) -> State:
        out = {}
        for k, shape in self.shapes.items():
            v = self.params[k] if self.learn else getattr(self, f"fixed_{k}")
            if device is not None and v.device != torch.device(device):
                v = v.to(device)
            out[k] = v.unsqueeze(0).expand(batch_size, *shape)
        return out


class StepCore(Core):
    """A core written one step at a time; this base supplies the time loop and the reset.

    Subclasses write :meth:`step` (and :meth:`initial_state`); optionally :meth:`prepare`, which
    runs once over the whole chunk before the loop (input projections batched over time).
    """

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Per-chunk precomputation over ``x`` [T, B, F]; its ``[t]`` slice is fed to :meth:`step`."""
        return x

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State, Extras]:
        """One step: ``x`` [B, ...] (a slice of :meth:`prepare`'s output) ->
        (``y`` [B, output_size], new state, extras {k: [B, ...]} or with a scalar ``aux_loss``)."""
        raise NotImplementedError

    def last_step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State | None, Extras]:
        """The last step of a forward whose final state is not needed (``need_state=False``), as
        :meth:`step`; a core may override it to skip work that only a next step would use and
        return None for the state."""
        return self.step(x, state)

    def forward(self, x: torch.Tensor, state: State, starts: torch.Tensor, need_state: bool = True
                ) -> tuple[torch.Tensor, State, Extras]:
        self._check_input(x, starts)
        T, B = starts.shape
        initial = self.initial_state(B, x.device)
        inputs = self.prepare(x)
        ys, steps_extras = [], []
        for t in range(T):
            state = reset_state(state, initial, starts[t])
            step = self.last_step if t == T - 1 and not need_state else self.step
            y, state, ex = step(inputs[t], state)
            ys.append(y)
            steps_extras.append(ex)
        return torch.stack(ys), state, stack_extras(steps_extras)


def stack_extras(steps: list[Extras]) -> Extras:
    """Per-step extras -> ``[T, ...]`` tensors; per-step scalar ``aux_loss`` values are averaged."""
    if not steps or not steps[0]:
        return {}
    out: Extras = {}
    for k in steps[0]:
        vals = [s[k] for s in steps]
        out[k] = torch.stack(vals).mean() if k == "aux_loss" else torch.stack(vals)
    return out
