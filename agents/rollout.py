"""Time-major rollout storage for on-policy agents, with the core state stored per chunk.

Every field is ``[T, B, ...]`` (T = ``n_steps``, B = number of environments). The core state is
stored at the start of every chunk of ``chunk_len`` steps (``[T // chunk_len, B, ...]``), so an
update re-runs the core over whole chunks from their stored starting state. With
``chunk_len == 1`` the state is stored at every step and the update needs no loop over time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import torch
from gymnasium import spaces

from rlmem.cores import State, allocate_like, assign_rows, index_state
from rlmem.policy.tree import tree_map

from .space_storage import space_zeros


@dataclass
class Minibatch:
    """A minibatch of whole chunks: sequences ``[L, N, ...]`` and their starting states ``[N, ...]``."""

    obs: Any
    actions: torch.Tensor
    starts: torch.Tensor
    prev_actions: torch.Tensor | None
    prev_rewards: torch.Tensor | None
    log_probs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    states: State


class RolloutBuffer:
    """Storage for one rollout of ``n_steps`` steps from ``n_envs`` environments."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, n_steps: int,
                 n_envs: int, chunk_len: int, state_template: State, device: torch.device,
                 store_prev: bool = False):
        if n_steps % chunk_len:
            raise ValueError(f"n_steps ({n_steps}) must be a multiple of the chunk length ({chunk_len})")
        T, B = n_steps, n_envs
        self.n_steps, self.n_envs, self.chunk_len, self.device = T, B, chunk_len, device
        self.obs = space_zeros(observation_space, (T, B), device)
        self.actions = space_zeros(action_space, (T, B), device)
        # previous action and reward, for policies that take them as inputs
        self.prev_actions = space_zeros(action_space, (T, B), device) if store_prev else None
        self.prev_rewards = torch.zeros(T, B, device=device) if store_prev else None
        self.starts = torch.zeros(T, B, dtype=torch.bool, device=device)
        self.log_probs = torch.zeros(T, B, device=device)
        self.values = torch.zeros(T, B, device=device)
        self.rewards = torch.zeros(T, B, device=device)
        self.dones = torch.zeros(T, B, dtype=torch.bool, device=device)
        self.advantages = torch.zeros(T, B, device=device)
        self.returns = torch.zeros(T, B, device=device)
        self.states = allocate_like(state_template, T // chunk_len, device=device)

    def store_state(self, t: int, state: State) -> None:
        """Keep the core state in force before step ``t`` if ``t`` starts a chunk."""
        if t % self.chunk_len == 0:
            assign_rows(self.states, t // self.chunk_len, state)

    def store_obs(self, t: int, obs: Any) -> None:
        tree_map(lambda buf, v: buf[t].copy_(v), self.obs, obs)

    def compute_advantages(self, last_value: torch.Tensor, gamma: float, gae_lambda: float) -> None:
        """GAE: ``TD_t = r_t + gamma (1 - d_t) V_{t+1} - V_t``;
        ``A_t = TD_t + gamma lambda (1 - d_t) A_{t+1}``; returns ``= A_t + V_t``.

        ``d_t`` marks steps that ended an episode. Truncated steps have already had
        ``gamma * V(final observation)`` added to their reward, so they bootstrap and then cut.
        """
        not_done = (~self.dones).float()
        next_value, next_adv = last_value, torch.zeros_like(last_value)
        for t in reversed(range(self.n_steps)):
            delta = self.rewards[t] + gamma * not_done[t] * next_value - self.values[t]
            next_adv = delta + gamma * gae_lambda * not_done[t] * next_adv
            self.advantages[t] = next_adv
            next_value = self.values[t]
        self.returns = self.advantages + self.values

    def _chunked(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, B, ...] -> [L, (T // L) * B, ...]``: chunk c of env b is column ``c * B + b``."""
        L, T, B = self.chunk_len, self.n_steps, self.n_envs
        return x.reshape(T // L, L, B, *x.shape[2:]).transpose(0, 1).reshape(L, (T // L) * B, *x.shape[2:])

    def minibatches(self, chunks_per_batch: int, generator: torch.Generator | None = None,
                    shuffle: bool = True, group: int = 1) -> Iterator[Minibatch]:
        """Shuffled minibatches of whole chunks (the last one may be smaller).

        ``group``: chunks are shuffled in groups of ``group`` consecutive chunks of one environment
        and a minibatch holds whole groups, in time order within each. With chunks of one step (a
        core trained without BPTT) this makes minibatches of whole sequences, as a recurrent core's
        chunks are, with the state stored at every step.
        """
        n_time = self.n_steps // self.chunk_len
        if group < 1 or n_time % group or chunks_per_batch % group:
            raise ValueError(f"a group of {group} chunks must divide the {n_time} chunks per environment "
                             f"and the {chunks_per_batch} chunks per minibatch")
        n_chunks = n_time * self.n_envs
        chunked = lambda tree: tree_map(self._chunked, tree)  # noqa: E731
        obs, actions = chunked(self.obs), chunked(self.actions)
        store_prev = self.prev_rewards is not None
        prev_actions = chunked(self.prev_actions) if store_prev else None
        prev_rewards = self._chunked(self.prev_rewards) if store_prev else None
        starts, log_probs = self._chunked(self.starts), self._chunked(self.log_probs)
        values, advantages = self._chunked(self.values), self._chunked(self.advantages)
        returns = self._chunked(self.returns)
        states = {k: v.reshape(n_chunks, *v.shape[2:]) for k, v in self.states.items()}
        n_groups = n_chunks // group
        groups = (torch.randperm(n_groups, generator=generator).to(self.device) if shuffle
                  else torch.arange(n_groups, device=self.device))
        # group k covers env k % B, chunks (k // B) * group + j: columns ((k // B) * group + j) * B + k % B
        first = (groups // self.n_envs) * group * self.n_envs + groups % self.n_envs
        order = (first.unsqueeze(1) + torch.arange(group, device=self.device) * self.n_envs).flatten()
        for idx in order.split(chunks_per_batch):
            cols = lambda tree: tree_map(lambda v: v[:, idx], tree)  # noqa: E731
            yield Minibatch(cols(obs), cols(actions), starts[:, idx],
                            cols(prev_actions) if store_prev else None,
                            prev_rewards[:, idx] if store_prev else None, log_probs[:, idx], values[:, idx],
                            advantages[:, idx], returns[:, idx], index_state(states, idx))
