"""t-maze: a cue at the start says which way to turn at the far end of a corridor."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from .base import BatchedEnv, Oracle, check_int
from .single import SingleEnv

__all__ = ["TMaze", "TMazeOracle", "TMazeSingle"]

CUE_LEFT, CUE_RIGHT, CORRIDOR, JUNCTION = 0, 1, 2, 3


class TMaze(BatchedEnv):
    """Passive T-maze: the agent is carried down the corridor whatever it does.

    Observation ``Discrete(4)``: at t = 0 the cue, 0 ("left") or 1 ("right")
    at random; 2 in the corridor (t = 1..corridor); 3 at the junction
    (t = corridor + 1). Action ``Discrete(2)`` is ignored except at the junction,
    where it earns +1 if it equals the cue and -1 otherwise; the episode
    terminates there (corridor + 2 observations). The final observation is the
    junction again.

    Batched: observations int64 [B], actions [B]. The state is only the cue and
    the time index per copy, so long corridors cost nothing extra.
    """

    def __init__(self, num_envs: int = 1, seed: int | None = None, *, corridor: int = 20) -> None:
        self.corridor = check_int("corridor", corridor, low=0)
        super().__init__(num_envs, seed)
        self._set_spaces(spaces.Discrete(4), spaces.Discrete(2))
        self._cue = np.zeros(self.num_envs, dtype=np.int64)
        self._t = np.zeros(self.num_envs, dtype=np.int64)
        # Reward indexed by 2 * at_junction + (action == cue).
        self._reward_table = np.array([0.0, 0.0, -1.0, 1.0], dtype=np.float32)

    def _reset_rows(self, idx: np.ndarray) -> None:
        self._cue[idx] = self.np_random.integers(0, 2, size=len(idx))
        self._t[idx] = 0

    def _advance(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        terminated = self._t > self.corridor
        code = terminated.view(np.int8) * 2
        code += (actions == self._cue).view(np.int8)
        rewards = self._reward_table[code]
        self._t += 1
        return rewards, terminated, np.zeros(self.num_envs, dtype=bool)

    def _observe(self, idx: np.ndarray | None = None) -> np.ndarray:
        t, cue = (self._t, self._cue) if idx is None else (self._t[idx], self._cue[idx])
        place = np.where(t > self.corridor, JUNCTION, CORRIDOR)
        return np.where(t == 0, cue, place)


class TMazeOracle(Oracle):
    """Remembers the cue [B] from the first observation."""

    def __init__(self, num_envs: int, *, corridor: int = 20) -> None:
        super().__init__(num_envs)
        self._cue = np.zeros(self.num_envs, dtype=np.int64)

    def act(self, obs: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """obs: int [B]; returns int64 [B] actions."""
        self._cue[starts] = obs[starts]
        return self._cue.copy()


class TMazeSingle(SingleEnv):
    """Single-copy :class:`gymnasium.Env` version of :class:`TMaze`."""

    batched_cls = TMaze
