"""Base class for tasks whose observation stream does not depend on the actions.

For such tasks a whole episode (observations, rewarded actions and reward
sizes) can be drawn in one vectorized call when a copy resets; ``step`` is then
only a few gathers at each copy's time index.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .base import BatchedEnv

__all__ = ["Episodes", "SequenceEnv"]


class Episodes(NamedTuple):
    """A batch of ``k`` pre-drawn episodes over a horizon of ``H`` steps.

    Attributes:
        obs: [k, H + 1, *obs_shape] observation at t = 0..H. The entry at t = a copy's
            episode length is the final observation returned when it ends.
        target: [k, H, *action_shape] action that is rewarded at each step.
        weight: [k, H] float32 reward size: an action earns ``+weight`` per matching
            component and ``-weight`` per wrong one (0 where the action is ignored).
        length: [k] int episode lengths (number of actions), or ``None`` when every
            episode lasts the full horizon ``H``.
    """

    obs: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    length: np.ndarray | None = None


class SequenceEnv(BatchedEnv):
    """Batched task defined by a generator of whole episodes (see :class:`Episodes`).

    Subclasses call :meth:`_init_tables` after :meth:`_set_spaces` and implement
    :meth:`_draw`.
    """

    def _init_tables(self, horizon: int) -> None:
        """Allocate the per-copy episode tables for episodes of at most ``horizon`` steps."""
        n = self.num_envs
        obs_space, act_space = self.single_observation_space, self.single_action_space
        self._horizon = horizon
        self._obs_table = np.zeros((n, horizon + 1, *obs_space.shape), dtype=obs_space.dtype)
        self._target = np.zeros((n, horizon, *act_space.shape), dtype=act_space.dtype)
        self._weight = np.zeros((n, horizon), dtype=np.float32)
        self._length = np.full(n, horizon, dtype=np.int64)
        self._t = np.zeros(n, dtype=np.int64)
        # Number of action components scored per step; 0 means a scalar action.
        self._action_dims = int(np.prod(act_space.shape)) if act_space.shape else 0

    def _draw(self, k: int) -> Episodes:
        """Draw ``k`` fresh episodes with ``self.np_random``."""
        raise NotImplementedError

    def _reset_rows(self, idx: np.ndarray) -> None:
        episodes = self._draw(len(idx))
        self._obs_table[idx] = episodes.obs
        self._target[idx] = episodes.target
        self._weight[idx] = episodes.weight
        self._length[idx] = self._horizon if episodes.length is None else episodes.length
        self._t[idx] = 0

    def _advance(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows, t = self._all_rows, self._t
        hit = actions == self._target[rows, t]
        if self._action_dims:
            score = 2 * np.count_nonzero(hit, axis=1) - self._action_dims
        else:
            score = 2 * hit - 1
        rewards = np.multiply(self._weight[rows, t], score, dtype=np.float32)
        rewards += 0.0  # ignored steps with a wrong action give -0.0; make them +0.0
        t += 1
        terminated = t >= self._length
        return rewards, terminated, np.zeros(self.num_envs, dtype=bool)

    def _observe(self, idx: np.ndarray | None = None) -> np.ndarray:
        if idx is None:
            return self._obs_table[self._all_rows, self._t]
        return self._obs_table[idx, self._t[idx]]
