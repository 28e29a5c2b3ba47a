"""Recurrent actor-critic: a memory torso with a policy head and a value head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from ..cores import Core, Extras, State
from .distributions import ActionHead
from .network import RecurrentNetwork, hidden_layer


@dataclass
class PolicyOutput:
    dist: Any            # action distribution over [T, B]
    value: torch.Tensor  # [T, B]
    state: State         # core state after the last step
    extras: Extras       # core diagnostics [T, B, ...] and optional aux_loss


class RecurrentActorCritic(RecurrentNetwork):
    """``obs -> torso(core) -> (pi, V)``, time-major, with the core state passed explicitly.

    See :class:`~rlmem.policy.torso.MemoryTorso` for the arguments shared with the torso;
    ``head_size`` adds a tanh layer before each head.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space,
                 core: str | Core = "gru", core_options: dict[str, Any] | None = None,
                 embed_size: int = 128, prev_action: bool = False, prev_reward: bool = False,
                 head_size: int = 0):
        super().__init__(observation_space, action_space, core, core_options, embed_size, prev_action,
                         prev_reward, head_size)
        size = self.torso.output_size
        # Optional hidden layer per head: readouts that combine "what is stored" with "when" (the
        # copy task) need a nonlinearity after the core.
        self.actor_hidden = hidden_layer(size, head_size)
        self.critic_hidden = hidden_layer(size, head_size)
        size = head_size or size
        self.actor = ActionHead(size, action_space)
        self.critic = nn.Linear(size, 1)
        nn.init.orthogonal_(self.critic.weight, 1.0)
        nn.init.zeros_(self.critic.bias)

    def forward(self, obs: Any, state: State, starts: torch.Tensor,
                prev_action: torch.Tensor | None = None, prev_reward: torch.Tensor | None = None,
                need_state: bool = True) -> PolicyOutput:
        feats, state, extras = self.torso(obs, state, starts, prev_action, prev_reward, need_state)
        value = self.critic(self.critic_hidden(feats)).squeeze(-1)
        return PolicyOutput(self.actor(self.actor_hidden(feats)), value, state, extras)

    def act(self, out: PolicyOutput, deterministic: bool) -> torch.Tensor:
        return out.dist.mode() if deterministic else out.dist.sample()

    def to_env(self, action: torch.Tensor) -> np.ndarray:
        return self.actor.to_env(action)
