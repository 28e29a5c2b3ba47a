"""Consolidations kept from one acting step of the token memory machine to the next.

While acting, a slot stays in memory for many steps and the consolidation ``r_i = f(s_i, x_i)``
of a slot does not change while neither the slot nor ``f`` does, yet the readout needs every
slot's ``r`` at every step. :class:`ConsolidationMemo` keeps the ``r`` of the slots of the state a
step returned, with a copy of the parameters of ``f`` they were computed with; the next step
reuses those whose slot is unchanged and recomputes the others. It is a cache only: a slot is
reused when its stored ``(s, x)`` equals the remembered one bit for bit and ``f``'s parameters
equal the copy bit for bit (optimizer steps, loaded checkpoints and other callers' states all
fall back to computing), so outputs do not depend on it. It serves steps without autograd only:
training recomputes every slot so that gradients reach ``f``.
"""

from __future__ import annotations

import torch
from torch import nn

INTEGER_OF_SIZE = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}  # by element size


class ConsolidationMemo:
    """The consolidated slots ``r`` [B, N, H] of one state, the slots ``s`` [B, N, H] and tokens
    ``x`` [B, N, F] they belong to, and the parameters of the cell that computed them."""

    def __init__(self) -> None:
        self._slots: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._parameters: list[torch.Tensor] = []

    def recall(self, cell: nn.Module, slot_state: torch.Tensor, slot_x: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(remembered ``r`` [B, N, H], ``changed`` [B, N] bool: slots whose ``(s, x)`` differs from
        the remembered one), or None when nothing usable is remembered (other shapes, or the cell's
        parameters changed). A step that computes its slots afresh and remembers them must
        recall first: recalling is when the memo takes its copy of changed parameters."""
        if not self._same_parameters(cell):
            self._slots, self._parameters = None, [p.detach().clone() for p in cell.parameters()]
            return None
        if self._slots is None:
            return None
        s, x, r = self._slots
        if (s.shape != slot_state.shape or x.shape != slot_x.shape or s.device != slot_state.device
                or s.dtype != slot_state.dtype or x.dtype != slot_x.dtype):
            return None
        changed = (bits(s) != bits(slot_state)).any(dim=-1) | (bits(x) != bits(slot_x)).any(dim=-1)
        return r, changed

    def remember(self, slot_state: torch.Tensor, slot_x: torch.Tensor, r: torch.Tensor) -> None:
        """Keep ``r`` [B, N, H], the consolidation of ``slot_state`` [B, N, H] and ``slot_x``
        [B, N, F] by the cell as it was at the last :meth:`recall`."""
        self._slots = (slot_state.detach(), slot_x.detach(), r.detach())

    def _same_parameters(self, cell: nn.Module) -> bool:
        parameters = list(cell.parameters())
        return len(parameters) == len(self._parameters) and all(
            p.shape == q.shape and p.dtype == q.dtype and p.device == q.device and torch.equal(bits(p), bits(q))
            for p, q in zip(parameters, self._parameters))


def bits(t: torch.Tensor) -> torch.Tensor:
    """``t``'s bits as integers of the same width (a view): compared, equal exactly where ``t``'s
    values are the same bits (float ``==`` holds -0.0 and 0.0 equal, and NaN unequal to itself)."""
    return t.detach().view(INTEGER_OF_SIZE[t.element_size()]) if t.is_floating_point() else t
