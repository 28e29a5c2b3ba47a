"""Recurrent Q-network: the memory torso with one Q head per action dimension.

Discrete actions get one head of ``n`` values. MultiDiscrete and MultiBinary actions are branched
(one head per dimension, as in action branching, Tavakoli et al. 2018): dimension ``d`` has
``nvec[d]`` values (2 for a bit), its greedy choice is its own argmax, and each dimension is
trained on its own TD error. Other action spaces are refused with the space named.

With ``dueling`` (Wang et al. 2016; for branches, Tavakoli et al.'s BDQ) one state value is shared by
every branch and each branch adds its centred advantages, ``Q_d(s, a) = V(s) + A_d(s, a) -
mean_a' A_d(s, a')``: when a reward sums over the dimensions (memory-copy's bits), every branch
then learns only its own dimension's effect instead of the whole return again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from ..cores import Core, Extras, State
from .encoders import UnsupportedSpaceError
from .network import RecurrentNetwork, hidden_layer


@dataclass
class QOutput:
    q: torch.Tensor      # [T, B, sum(branches)]: the Q values of every branch, concatenated
    state: State         # core state after the last step
    extras: Extras       # core diagnostics [T, B, ...] and optional aux_loss


class QHead(nn.Module):
    """Linear map from core features to the Q values of each action dimension ("branch")."""

    def __init__(self, in_size: int, space: spaces.Space, dueling: bool = False):
        super().__init__()
        if isinstance(space, spaces.Discrete):
            self.branches, self.start, self.vector = [int(space.n)], np.array([int(space.start)]), False
        elif isinstance(space, spaces.MultiDiscrete) and np.ndim(space.nvec) == 1:
            self.branches, self.start, self.vector = [int(n) for n in space.nvec], np.asarray(space.start), True
        elif isinstance(space, spaces.MultiBinary) and len(space.shape) == 1:
            self.branches, self.start, self.vector = [2] * int(space.shape[0]), np.zeros(space.shape[0]), True
        else:
            raise UnsupportedSpaceError(
                f"DQN cannot act in action space {space}: it needs Discrete, 1-D MultiDiscrete or 1-D "
                f"MultiBinary actions (Q-learning has no argmax over a continuous Box; use agent=ppo)")
        self.space = space
        self.linear = nn.Linear(in_size, sum(self.branches))
        self.value = nn.Linear(in_size, 1) if dueling else None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Q values ``[..., sum(branches)]`` of features ``[..., F]``."""
        q = self.linear(features)
        if self.value is None:
            return q
        centred = [a - a.mean(dim=-1, keepdim=True) for a in self.split(q)]
        return self.value(features) + torch.cat(centred, dim=-1)

    def split(self, q: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return q.split(self.branches, dim=-1)

    def greedy(self, q: torch.Tensor) -> torch.Tensor:
        """Argmax per branch ``[T, B, D]`` (long, 0-based) of Q values ``[T, B, sum(branches)]``."""
        return torch.stack([part.argmax(dim=-1) for part in self.split(q)], dim=-1)

    def max(self, q: torch.Tensor) -> torch.Tensor:
        """Largest value per branch ``[T, B, D]``."""
        return torch.stack([part.amax(dim=-1) for part in self.split(q)], dim=-1)

    def value_of(self, q: torch.Tensor, choice: torch.Tensor) -> torch.Tensor:
        """Q of the 0-based choices ``[T, B, D]`` per branch: ``[T, B, D]``."""
        return torch.stack([part.gather(-1, choice[..., d:d + 1]).squeeze(-1)
                            for d, part in enumerate(self.split(q))], dim=-1)

    def random(self, shape: tuple[int, ...], generator: torch.Generator | None, device) -> torch.Tensor:
        """Uniform 0-based choices ``[*shape, D]``."""
        u = torch.rand(*shape, len(self.branches), generator=generator).to(device)
        n = torch.tensor(self.branches, device=device)
        return (u * n).long().clamp_(max=n - 1)

    def to_action(self, choice: torch.Tensor) -> torch.Tensor:
        """0-based choices ``[..., D]`` -> actions as stored (``[...]`` for Discrete, ``[..., D]``)."""
        start = torch.as_tensor(self.start, dtype=torch.long, device=choice.device)
        action = choice + start
        if isinstance(self.space, spaces.MultiBinary):
            return action.to(torch.int8)
        return action if self.vector else action[..., 0]

    def to_choice(self, action: torch.Tensor) -> torch.Tensor:
        """Stored actions -> 0-based choices ``[..., D]``."""
        start = torch.as_tensor(self.start, dtype=torch.long, device=action.device)
        action = action.long() if self.vector else action.long().unsqueeze(-1)
        return action - start


class RecurrentQNetwork(RecurrentNetwork):
    """``obs -> torso(core) -> Q``, time-major, with the core state passed explicitly
    (arguments as :class:`~rlmem.policy.actor_critic.RecurrentActorCritic`)."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space,
                 core: str | Core = "gru", core_options: dict[str, Any] | None = None,
                 embed_size: int = 128, prev_action: bool = False, prev_reward: bool = False,
                 head_size: int = 0, dueling: bool = False):
        QHead(1, action_space)  # refuse an unsupported action space before building the core
        super().__init__(observation_space, action_space, core, core_options, embed_size, prev_action,
                         prev_reward, head_size)
        self.init_args["dueling"] = bool(dueling)
        size = self.torso.output_size
        self.q_hidden = hidden_layer(size, head_size)
        self.q_head = QHead(head_size or size, action_space, dueling=bool(dueling))

    def forward(self, obs: Any, state: State, starts: torch.Tensor,
                prev_action: torch.Tensor | None = None, prev_reward: torch.Tensor | None = None,
                need_state: bool = True) -> QOutput:
        feats, state, extras = self.torso(obs, state, starts, prev_action, prev_reward, need_state)
        return QOutput(self.q_head(self.q_hidden(feats)), state, extras)

    def act(self, out: QOutput, deterministic: bool = True) -> torch.Tensor:
        """The greedy action (a Q-network has no stochastic policy; exploration is the agent's)."""
        return self.q_head.to_action(self.q_head.greedy(out.q))

    def to_env(self, action: torch.Tensor) -> np.ndarray:
        return action.detach().cpu().numpy()
