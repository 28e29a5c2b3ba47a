"""surprise-recall: remember the rare tokens that broke a repeating pattern."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from .base import Oracle, check_int
from .sequence import Episodes, SequenceEnv
from .single import SingleEnv

__all__ = ["SurpriseRecall", "SurpriseRecallOracle", "SurpriseRecallSingle"]


class SurpriseRecall(SequenceEnv):
    """A predictable stream with a few surprises, followed by questions about them.

    Stream (t = 0..length-1): the pattern tokens ``0..period-1`` repeat
    cyclically from a random phase, except at ``n_surprises`` distinct random
    times where a uniformly random rare token (ids ``period..period+n_rare-1``)
    replaces the pattern token. Queries (t = length..length+n_surprises-1): query
    ``i`` (1-based) shows the marker token ``period + n_rare`` and asks for the
    rare token of the i-th surprise in time order.

    Observation ``MultiDiscrete([period + n_rare + 1, n_surprises + 1])`` =
    (token, query index), query index 0 during the stream. Action
    ``Discrete(n_rare)``, ignored during the stream; at query ``i`` the reward is
    ``+1 / n_surprises`` if action == rare token - period, else
    ``-1 / n_surprises``. The episode terminates after the last query.

    Batched: observations int64 [B, 2], actions [B].
    """

    def __init__(
        self,
        num_envs: int = 1,
        seed: int | None = None,
        *,
        length: int = 200,
        n_surprises: int = 3,
        period: int = 4,
        n_rare: int = 4,
    ) -> None:
        self.length = check_int("length", length, low=1)
        self.n_surprises = check_int("n_surprises", n_surprises, low=1, high=self.length)
        self.period = check_int("period", period, low=1)
        self.n_rare = check_int("n_rare", n_rare, low=2)
        self.marker = self.period + self.n_rare
        super().__init__(num_envs, seed)
        self._set_spaces(
            spaces.MultiDiscrete([self.marker + 1, self.n_surprises + 1]),
            spaces.Discrete(self.n_rare),
        )
        self._init_tables(self.length + self.n_surprises)

    def _draw(self, n: int) -> Episodes:
        rng, length, n_s, period = self.np_random, self.length, self.n_surprises, self.period
        horizon = length + n_s
        phase = rng.integers(0, period, size=(n, 1))
        stream = (phase + np.arange(length)) % period
        # n_s distinct times per episode: the positions of the n_s smallest of `length` uniform keys.
        times = np.sort(np.argpartition(rng.random((n, length)), n_s - 1, axis=1)[:, :n_s], axis=1)
        rare = rng.integers(period, period + self.n_rare, size=(n, n_s))
        np.put_along_axis(stream, times, rare, axis=1)

        obs = np.zeros((n, horizon + 1, 2), dtype=np.int64)
        obs[:, :length, 0] = stream
        obs[:, length:, 0] = self.marker
        obs[:, length:horizon, 1] = np.arange(1, n_s + 1)  # final observation keeps query index 0
        target = np.zeros((n, horizon), dtype=np.int64)
        target[:, length:] = rare - period
        weight = np.zeros((n, horizon), dtype=np.float32)
        weight[:, length:] = 1.0 / n_s
        return Episodes(obs, target, weight)


class SurpriseRecallOracle(Oracle):
    """Stores every rare token [B, n_surprises] it sees and answers the queries from them."""

    def __init__(
        self,
        num_envs: int,
        *,
        length: int = 200,
        n_surprises: int = 3,
        period: int = 4,
        n_rare: int = 4,
    ) -> None:
        super().__init__(num_envs)
        self.period = period
        self.n_rare = n_rare
        self._rare = np.zeros((self.num_envs, n_surprises), dtype=np.int64)
        self._seen = np.zeros(self.num_envs, dtype=np.int64)

    def act(self, obs: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """obs: int [B, 2] (token, query index); returns int64 [B] actions."""
        self._seen[starts] = 0
        token, query = obs[:, 0], obs[:, 1]
        surprised = self._rows[(query == 0) & (token >= self.period) & (token < self.period + self.n_rare)]
        self._rare[surprised, self._seen[surprised]] = token[surprised] - self.period
        self._seen[surprised] += 1
        return self._rare[self._rows, np.maximum(query - 1, 0)]


class SurpriseRecallSingle(SingleEnv):
    """Single-copy :class:`gymnasium.Env` version of :class:`SurpriseRecall`."""

    batched_cls = SurpriseRecall
