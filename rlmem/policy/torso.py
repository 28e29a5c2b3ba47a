"""The memory torso shared by every agent: observation encoding -> embedding -> core."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from gymnasium import spaces
from torch import nn

from ..cores import CORES, Core, Extras, State, make_core
from .encoders import make_encoder


class MemoryTorso(nn.Module):
    """``O_t, h_{t-1} --[Enc]-> h_t``: encodes observations (and, optionally, the previous action
    and reward) and runs them through a core.

    The encoded inputs pass through a learned embedding (Linear + ReLU) of ``embed_size``, except
    when ``embed_size`` is 0 or the core stores its inputs (``Core.stores_inputs``, e.g. ``tmm``):
    then the core gets the encoded inputs as they are.

    Args:
        observation_space: the single-environment observation space.
        action_space: the single-environment action space (for the previous-action input).
        core: a registered core name or a :class:`Core` whose ``input_size`` is the embedding
            width (or, without an embedding, the encoded input size).
        core_options: options for :func:`make_core` when ``core`` is a name.
        embed_size: width of the embedding fed to the core; 0: no embedding.
        prev_action: feed the previous action (zero at episode starts).
        prev_reward: feed the previous reward (zero at episode starts).
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space,
                 core: str | Core = "gru", core_options: dict[str, Any] | None = None,
                 embed_size: int = 128, prev_action: bool = False, prev_reward: bool = False):
        super().__init__()
        self.obs_encoder = make_encoder(observation_space)
        in_size = self.obs_encoder.out_size
        self.action_encoder = make_encoder(action_space) if prev_action else None
        if self.action_encoder is not None:
            in_size += self.action_encoder.out_size
        self.prev_reward = prev_reward
        in_size += int(prev_reward)
        if embed_size < 0:
            raise ValueError(f"embed_size must be >= 0, got {embed_size}")
        core_cls = type(core) if isinstance(core, Core) else CORES.get(core)
        if embed_size == 0 or getattr(core_cls, "stores_inputs", False):
            self.embed, core_in = nn.Identity(), in_size
        else:
            self.embed, core_in = nn.Sequential(nn.Linear(in_size, embed_size), nn.ReLU()), embed_size
        if isinstance(core, Core):
            if core.input_size != core_in:
                raise ValueError(f"core.input_size ({core.input_size}) must be {core_in}, the size of the "
                                 f"{'encoded inputs' if isinstance(self.embed, nn.Identity) else 'embedding'}")
            self.core = core
        else:
            self.core = make_core(core, core_in, **(core_options or {}))
        self.output_size = self.core.output_size
        # A core written before need_state existed (forward(x, state, starts)) still works.
        self._core_takes_need_state = "need_state" in inspect.signature(self.core.forward).parameters

    @property
    def uses_prev_action(self) -> bool:
        return self.action_encoder is not None

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        return self.core.initial_state(batch_size, device)

    def forward(self, obs: Any, state: State, starts: torch.Tensor,
                prev_action: torch.Tensor | None = None, prev_reward: torch.Tensor | None = None,
                need_state: bool = True) -> tuple[torch.Tensor, State, Extras]:
        """``obs`` [T, B, ...] (nested for Dict spaces), ``starts`` [T, B] bool,
        ``prev_action`` [T, B, ...], ``prev_reward`` [T, B] -> features [T, B, H], state, extras.
        ``need_state=False``: the state is not needed (see :class:`rlmem.cores.Core`)."""
        x = self.core_inputs(obs, starts, prev_action, prev_reward)
        if self._core_takes_need_state:
            return self.core(x, state, starts, need_state=need_state)
        return self.core(x, state, starts)

    def core_inputs(self, obs: Any, starts: torch.Tensor, prev_action: torch.Tensor | None = None,
                    prev_reward: torch.Tensor | None = None) -> torch.Tensor:
        """What the core reads: the encoded observation (with the previous action and reward
        where the torso takes them), embedded: ``[T, B, core.input_size]``."""
        parts = [self.obs_encoder(obs)]
        keep = (~starts).unsqueeze(-1).float() if (self.action_encoder is not None or self.prev_reward) else None
        if self.action_encoder is not None:
            if prev_action is None:
                raise ValueError("this policy was built with prev_action=True: pass prev_action")
            parts.append(self.action_encoder(prev_action) * keep)
        if self.prev_reward:
            if prev_reward is None:
                raise ValueError("this policy was built with prev_reward=True: pass prev_reward")
            parts.append(prev_reward.unsqueeze(-1).float() * keep)
        return self.embed(parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1))
