"""count-recall: report how often the queried token has been dealt so far."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from .base import Oracle, check_int
from .sequence import Episodes, SequenceEnv
from .single import SingleEnv

__all__ = ["CountRecall", "CountRecallOracle", "CountRecallSingle"]


class CountRecall(SequenceEnv):
    """Each step deals a random token and asks about a random query token.

    Observation ``MultiDiscrete([n_tokens, n_tokens])`` = (token dealt at this
    step, query token), both uniform and drawn afresh each step. Action
    ``Discrete(max_count + 1)``; the target at step t is the number of times the
    query token has been dealt in steps 0..t (inclusive), clipped at
    ``max_count``. Reward ``+1 / length`` for the right count, ``-1 / length``
    otherwise. Episodes have ``length`` observations.

    Batched: observations int64 [B, 2], actions [B].
    """

    def __init__(
        self,
        num_envs: int = 1,
        seed: int | None = None,
        *,
        n_tokens: int = 4,
        length: int = 52,
        max_count: int = 4,
    ) -> None:
        self.n_tokens = check_int("n_tokens", n_tokens, low=2)
        self.length = check_int("length", length, low=1)
        self.max_count = check_int("max_count", max_count, low=1)
        super().__init__(num_envs, seed)
        self._set_spaces(
            spaces.MultiDiscrete([self.n_tokens, self.n_tokens]),
            spaces.Discrete(self.max_count + 1),
        )
        self._init_tables(self.length)

    def _draw(self, n: int) -> Episodes:
        length = self.length
        obs = self.np_random.integers(0, self.n_tokens, size=(n, length + 1, 2))
        dealt, query = obs[:, :length, 0], obs[:, :length, 1]
        # counts[i, t, v] = times token v was dealt in steps 0..t
        counts = np.cumsum(dealt[:, :, None] == np.arange(self.n_tokens), axis=1)
        target = np.take_along_axis(counts, query[:, :, None], axis=2)[:, :, 0]
        np.minimum(target, self.max_count, out=target)
        weight = np.full((n, length), 1.0 / length, dtype=np.float32)
        return Episodes(obs, target, weight)


class CountRecallOracle(Oracle):
    """Keeps a running count [B, n_tokens] of every dealt token."""

    def __init__(self, num_envs: int, *, n_tokens: int = 4, length: int = 52, max_count: int = 4) -> None:
        super().__init__(num_envs)
        self.max_count = max_count
        self._counts = np.zeros((self.num_envs, n_tokens), dtype=np.int64)

    def act(self, obs: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """obs: int [B, 2] (dealt, query); returns int64 [B] actions."""
        self._counts[starts] = 0
        self._counts[self._rows, obs[:, 0]] += 1
        return np.minimum(self._counts[self._rows, obs[:, 1]], self.max_count)


class CountRecallSingle(SingleEnv):
    """Single-copy :class:`gymnasium.Env` version of :class:`CountRecall`."""

    batched_cls = CountRecall
