"""``ntm``: the Neural Turing Machine (Graves, Wayne and Danihelka, 2014).

A controller network reads the input and the previous read vectors; from its output, read and
write heads compute weightings over the ``N`` rows of an ``N x M`` memory (content focus,
interpolation with the previous weighting, circular shift, sharpening; see
:mod:`rlmem.cores.ntm_addressing`), read from the memory and write to it by erasing and adding.

One step::

    h_t        = controller([x_t, r_{t-1}], h_{t-1})
    w_t        = address(M_{t-1}, head parameters from h_t, w_{t-1})     all heads at once
    r_t        = w^read_t M_{t-1}
    M_t        = M_{t-1} * prod(1 - w^write_t e_t^T) + sum w^write_t a_t^T
    y_t        = [h_t, r_t]

All heads address the memory as it was before this step's write, so read and write heads are
evaluated together in one batched call.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import ntm_addressing as addressing
from .base import Extras, InitialState, StepCore
from .registry import register_core
from .state import State

CONTROLLERS = ("lstm", "gru", "mlp")


@register_core("ntm")
class NTMCore(StepCore):
    """Neural Turing Machine with an LSTM, GRU or feed-forward controller.

    State (all batch first)::

        memory   [B, N, M]      the memory matrix
        reads    [B, R * M]     the previous read vectors
        read_w   [B, R, N]      the read heads' previous weightings
        write_w  [B, W, N]      the write heads' previous weightings
        h, c     [B, H]         controller state (``h`` for gru, ``h`` and ``c`` for lstm, none for mlp)

    The initial memory, read vectors, weightings and controller state are learned. Output
    ``y_t = [h_t, r_t]`` of size ``H + R * M``.

    Extras per step (detached): the weightings ``read_weights`` [T, B, R, N] and ``write_weights``
    [T, B, W, N] (for pictures), and per-step scalars [T, B], each the mean over the heads of one
    kind:

    - ``read_entropy``, ``write_entropy``: entropy of a head's weighting in nats, from 0 (all weight
      on one row) to log N (spread evenly over the N rows);
    - ``read_peak``, ``write_peak``: a weighting's largest weight, from 1/N (spread evenly) to 1
      (one row);
    - ``read_shift``, ``write_shift``: the expected offset of a head's shift distribution, in rows
      (-S .. S): about +1 for a head that moves one row forward each step, 0 for one that stays.

    Args:
        input_size: feature size F.
        hidden_size: controller width H.
        memory_size: number of memory rows N.
        memory_width: width of a row M.
        read_heads: R.
        write_heads: W.
        controller: ``"lstm"``, ``"gru"`` or ``"mlp"`` (one tanh layer, no recurrent state).
        shift_range: S; heads shift by ``-S .. S`` rows (``2S + 1 <= N``).
        init_memory: the constant every memory entry starts from (learned from there on).
        init_focus: initial weight of every head on row 0 (the rest spread evenly); a focused
            start lets location-based heads break the symmetry of a constant memory.
    """

    def __init__(self, input_size: int, hidden_size: int = 128, memory_size: int = 32, memory_width: int = 16,
                 read_heads: int = 1, write_heads: int = 1, controller: str = "lstm", shift_range: int = 1,
                 init_memory: float = 1e-6, init_focus: float = 0.99):
        n, m, r, w, s = memory_size, memory_width, read_heads, write_heads, shift_range
        if controller not in CONTROLLERS:
            raise ValueError(f"controller must be one of {', '.join(CONTROLLERS)}, got {controller!r}")
        if min(hidden_size, n, m, r, w) < 1 or s < 0:
            raise ValueError("hidden_size, memory_size, memory_width, read_heads and write_heads must be >= 1 "
                             f"and shift_range >= 0, got {hidden_size}, {n}, {m}, {r}, {w}, {s}")
        if 2 * s + 1 > n:
            raise ValueError(f"shift_range {s} needs at least {2 * s + 1} memory rows, memory_size is {n}")
        if not 0.0 < init_focus < 1.0:
            raise ValueError(f"init_focus must lie in (0, 1), got {init_focus}")
        super().__init__(input_size, hidden_size + r * m)
        self.hidden_size, self.memory_size, self.memory_width = hidden_size, n, m
        self.read_heads, self.write_heads, self.shift_range = r, w, s
        self.controller = controller

        gates = {"lstm": 4, "gru": 3, "mlp": 1}[controller] * hidden_size
        self.input_proj = nn.Linear(input_size, gates)  # x part of the controller input, per chunk
        if controller == "lstm":  # [reads, h] -> gates in one matmul
            self.recur_proj = nn.Linear(r * m + hidden_size, gates, bias=False)
            with torch.no_grad():
                self.input_proj.bias[hidden_size:2 * hidden_size].fill_(1.0)  # forget gate open
        elif controller == "gru":  # reads join the input side; h has its own projection (reset gate)
            self.read_proj = nn.Linear(r * m, gates, bias=False)
            self.hidden_proj = nn.Linear(hidden_size, gates)
        else:
            self.read_proj = nn.Linear(r * m, gates, bias=False)

        # Per head: key (M), beta, gate, shift (2S+1), gamma; per write head also erase (M), add (M).
        self.address_size = m + 3 + 2 * s + 1
        self.head_proj = nn.Linear(hidden_size, (r + w) * self.address_size + w * 2 * m)

        shapes = {"memory": (n, m), "reads": (r * m,), "read_w": (r, n), "write_w": (w, n)}
        focus = torch.full((n,), math.log((1.0 - init_focus) / max(n - 1, 1)))
        focus[0] = math.log(init_focus)  # softmax of these logits puts init_focus on row 0
        values = {"memory": torch.full((n, m), float(init_memory)),
                  "read_w": focus.expand(r, n).clone(), "write_w": focus.expand(w, n).clone()}
        if controller != "mlp":
            shapes["h"] = (hidden_size,)
        if controller == "lstm":
            shapes["c"] = (hidden_size,)
        self.init = InitialState(shapes, learn=True, values=values)  # weightings held as logits

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        state = {}
        for k, v in self.init.params.items():
            if device is not None and v.device != torch.device(device):
                v = v.to(device)
            if k in ("read_w", "write_w"):
                v = torch.softmax(v, dim=-1)
            state[k] = v.unsqueeze(0).expand(batch_size, *v.shape)
        return state

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return self.input_proj(x)  # [T, B, gates], one matmul for the whole chunk

    def _controller(self, x: torch.Tensor, reads: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Controller step from the projected input ``x`` [B, gates] and ``reads`` [B, R*M]:
        (output ``h`` [B, H], the controller's new state entries)."""
        if self.controller == "lstm":
            h, c = state["h"], state["c"]
            i, f, g, o = (x + self.recur_proj(torch.cat([reads, h], dim=-1))).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            return h, {"h": h, "c": c}
        if self.controller == "gru":
            h = state["h"]
            xr, xz, xn = (x + self.read_proj(reads)).chunk(3, dim=-1)
            hr, hz, hn = self.hidden_proj(h).chunk(3, dim=-1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            h = n + z * (h - n)
            return h, {"h": h}
        return torch.tanh(x + self.read_proj(reads)), {}

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State, Extras]:
        R, W, M, S = self.read_heads, self.write_heads, self.memory_width, self.shift_range
        B = x.shape[0]
        memory, reads = state["memory"], state["reads"]
        h, ctrl = self._controller(x, reads, state)

        params = self.head_proj(h)
        split = (R + W) * self.address_size
        addr = params[:, :split].view(B, R + W, self.address_size)
        key, beta, gate, shift, gamma = addr.split([M, 1, 1, 2 * S + 1, 1], dim=-1)
        w_prev = torch.cat([state["read_w"], state["write_w"]], dim=1)  # [B, R+W, N]
        shift = torch.softmax(shift, dim=-1)
        weights = addressing.address(memory, key, F.softplus(beta.squeeze(-1)), torch.sigmoid(gate.squeeze(-1)),
                                     shift, 1.0 + F.softplus(gamma.squeeze(-1)), w_prev)
        read_w, write_w = weights[:, :R], weights[:, R:]

        new_reads = addressing.read(memory, read_w).reshape(B, R * M)
        erase, add = params[:, split:].view(B, W, 2 * M).split([M, M], dim=-1)
        memory = addressing.write(memory, write_w, torch.sigmoid(erase), torch.tanh(add))

        new_state = {"memory": memory, "reads": new_reads, "read_w": read_w, "write_w": write_w, **ctrl}
        return torch.cat([h, new_reads], dim=-1), new_state, self.diagnostics(weights, shift)

    def diagnostics(self, weights: torch.Tensor, shift: torch.Tensor) -> Extras:
        """The extras of a step (see the class docstring) from the heads' weightings ``weights``
        [B, R + W, N] and shift distributions ``shift`` [B, R + W, 2S + 1], read heads first."""
        R = self.read_heads
        with torch.no_grad():
            weights, shift = weights.detach(), shift.detach()
            offsets = addressing.shift_offsets(self.shift_range, shift.device).to(shift.dtype)
            # per head: [entropy, peak, expected shift] -> the means over the read and the write heads
            per_head = torch.stack([torch.special.entr(weights).sum(-1), weights.amax(-1), shift @ offsets], dim=-1)
            read, write = per_head[:, :R].mean(dim=1), per_head[:, R:].mean(dim=1)   # [B, 3] each
        return {"read_weights": weights[:, :R], "write_weights": weights[:, R:],
                "read_entropy": read[:, 0], "write_entropy": write[:, 0],
                "read_peak": read[:, 1], "write_peak": write[:, 1],
                "read_shift": read[:, 2], "write_shift": write[:, 2]}
