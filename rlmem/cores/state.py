"""Helpers over a core's state.

A core's state is a ``dict[str, Tensor]`` whose tensors all have the batch dimension first
(``[B, ...]``). Everything outside ``rlmem.cores`` (agents, buffers, the SB3 adapter, checkpoints)
touches state only through these functions, so no code outside a core knows what the state holds.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import torch

State = dict[str, torch.Tensor]


def _row_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a ``[B]`` mask so it broadcasts against ``like`` (``[B, ...]``)."""
    return mask.reshape(mask.shape[0], *([1] * (like.dim() - 1)))


def reset_state(state: Mapping[str, torch.Tensor], initial: Mapping[str, torch.Tensor],
                starts: torch.Tensor) -> State:
    """Select ``initial`` for the rows where ``starts`` ([B] bool) is set, else keep ``state``.

    Selection (not multiplication by ``1 - done``) is what lets learned or non-zero initial
    states (the NTM's memory, the slot memory) be restored exactly.
    """
    return {k: torch.where(_row_mask(starts, v), initial[k], v) for k, v in state.items()}


def index_state(state: Mapping[str, torch.Tensor], index) -> State:
    """Rows ``index`` (int tensor, slice or bool mask) of every tensor: ``[B, ...] -> [b, ...]``."""
    return {k: v[index] for k, v in state.items()}


def detach_state(state: Mapping[str, torch.Tensor]) -> State:
    """The same state cut from the autograd graph."""
    return {k: v.detach() for k, v in state.items()}


def clone_state(state: Mapping[str, torch.Tensor]) -> State:
    return {k: v.clone() for k, v in state.items()}


def state_to(state: Mapping[str, torch.Tensor], device: torch.device | str) -> State:
    return {k: v.to(device) for k, v in state.items()}


def stack_states(states: Iterable[Mapping[str, torch.Tensor]], dim: int = 0) -> State:
    """Stack a sequence of states along a new dimension (e.g. time: ``[T, B, ...]``)."""
    states = list(states)
    if not states:
        raise ValueError("stack_states needs at least one state")
    return {k: torch.stack([s[k] for s in states], dim=dim) for k in states[0]}


def cat_states(states: Iterable[Mapping[str, torch.Tensor]], dim: int = 0) -> State:
    """Concatenate states along the batch dimension (or ``dim``)."""
    states = list(states)
    if not states:
        raise ValueError("cat_states needs at least one state")
    return {k: torch.cat([s[k] for s in states], dim=dim) for k in states[0]}


def assign_rows(target: Mapping[str, torch.Tensor], index, source: Mapping[str, torch.Tensor]) -> None:
    """In place: ``target[k][index] = source[k]`` for every key (buffers writing stored states)."""
    for k, v in target.items():
        v[index] = source[k]


def allocate_like(state: Mapping[str, torch.Tensor], *leading: int,
                  device: torch.device | str | None = None) -> State:
    """Zeros shaped ``[*leading, *v.shape]`` for every entry: storage for many stored states."""
    return {k: torch.zeros(*leading, *v.shape, dtype=v.dtype, device=device or v.device)
            for k, v in state.items()}


def flatten_state(state: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Pack a state into one float tensor ``[B, D]`` (keys in sorted order).

    Used where a foreign library stores one fixed tensor per environment (the SB3 adapter).
    Non-float entries are cast to float; :func:`unflatten_state` casts them back.
    """
    keys = sorted(state)
    if not keys:
        raise ValueError("cannot flatten an empty state")
    batch = state[keys[0]].shape[0]
    return torch.cat([state[k].reshape(batch, -1).float() for k in keys], dim=1)


def unflatten_state(flat: torch.Tensor, template: Mapping[str, torch.Tensor]) -> State:
    """Inverse of :func:`flatten_state`, given a state with the right shapes and dtypes."""
    out, offset = {}, 0
    for k in sorted(template):
        ref = template[k]
        size = ref[0].numel()
        out[k] = flat[:, offset:offset + size].reshape(flat.shape[0], *ref.shape[1:]).to(ref.dtype)
        offset += size
    if offset != flat.shape[1]:
        raise ValueError(f"flat state has {flat.shape[1]} features, the template needs {offset}")
    return out


def state_size(state: Mapping[str, torch.Tensor]) -> int:
    """Number of values per batch row: the width of :func:`flatten_state`."""
    return sum(v[0].numel() for v in state.values())
