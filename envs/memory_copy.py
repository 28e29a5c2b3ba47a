"""memory-copy: read ``L`` random bit vectors, then write them back in order."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from .base import Oracle, check_int
from .sequence import Episodes, SequenceEnv
from .single import SingleEnv

__all__ = ["MemoryCopy", "MemoryCopyOracle", "MemoryCopySingle"]


class MemoryCopy(SequenceEnv):
    """Copy task with a delimiter between the input and the output phase.

    Observation (``MultiBinary(bits + 1)``: bit vector, delimiter flag):

    * t = 0..L-1: random bit vectors, flag 0;
    * t = L: the delimiter (all bits 0, flag 1);
    * t = L+1..2L: all zeros.

    Action ``MultiBinary(bits)``. At an output step t = L+1..2L the action is
    compared with the vector shown at t-L-1, and the reward is
    ``(matching bits - wrong bits) / (L * bits)``; other steps give 0. The
    episode terminates after the action at t = 2L (2L + 1 observations). ``L``
    is ``length``, or drawn uniformly from ``[min_length, length]`` per episode
    when ``min_length`` is set.

    Batched: observations int8 [B, bits + 1], actions [B, bits].
    """

    def __init__(
        self,
        num_envs: int = 1,
        seed: int | None = None,
        *,
        length: int = 5,
        bits: int = 8,
        min_length: int | None = None,
    ) -> None:
        self.length = check_int("length", length, low=1)
        self.bits = check_int("bits", bits, low=1)
        self.min_length = None if min_length is None else check_int("min_length", min_length, low=1, high=self.length)
        super().__init__(num_envs, seed)
        self._set_spaces(spaces.MultiBinary(self.bits + 1), spaces.MultiBinary(self.bits))
        self._init_tables(2 * self.length + 1)

    def _draw(self, n: int) -> Episodes:
        rng, lmax, bits = self.np_random, self.length, self.bits
        horizon = 2 * lmax + 1
        if self.min_length is None:
            lengths = np.full(n, lmax, dtype=np.int64)
        else:
            lengths = rng.integers(self.min_length, lmax + 1, size=n)
        vectors = rng.integers(0, 2, size=(n, lmax, bits), dtype=np.int8)
        rows = np.arange(n)
        pos = np.arange(lmax)
        used = pos < lengths[:, None]  # [n, lmax] vectors that belong to the episode
        vectors *= used[:, :, None]

        obs = np.zeros((n, horizon + 1, bits + 1), dtype=np.int8)
        obs[:, :lmax, :bits] = vectors
        obs[rows, lengths, bits] = 1

        # Vector j is written back at t = L + 1 + j.
        r, j = np.nonzero(used)
        out_t = lengths[r] + 1 + j
        target = np.zeros((n, horizon, bits), dtype=np.int8)
        target[r, out_t] = vectors[r, j]
        weight = np.zeros((n, horizon), dtype=np.float32)
        weight[r, out_t] = 1.0 / (lengths[r] * bits)
        return Episodes(obs, target, weight, 2 * lengths + 1)


class MemoryCopyOracle(Oracle):
    """Stores the input vectors [B, length, bits] and replays them after the delimiter."""

    def __init__(self, num_envs: int, *, length: int = 5, bits: int = 8, min_length: int | None = None) -> None:
        super().__init__(num_envs)
        self.bits = bits
        self._stored = np.zeros((self.num_envs, length, bits), dtype=np.int8)
        self._t = np.zeros(self.num_envs, dtype=np.int64)
        self._delim_t = np.full(self.num_envs, -1, dtype=np.int64)  # -1 until the delimiter is seen

    def act(self, obs: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """obs: int [B, bits + 1]; returns int8 [B, bits] actions."""
        self._t[starts] = 0
        self._delim_t[starts] = -1
        t, rows = self._t, self._rows
        reading = self._delim_t < 0
        flag = obs[:, self.bits] == 1
        delimiter = reading & flag
        self._delim_t[delimiter] = t[delimiter]
        inputs = rows[reading & ~flag]
        self._stored[inputs, t[inputs]] = obs[inputs, : self.bits]
        writing = rows[(self._delim_t >= 0) & (t > self._delim_t)]
        action = np.zeros((self.num_envs, self.bits), dtype=np.int8)
        action[writing] = self._stored[writing, t[writing] - self._delim_t[writing] - 1]
        self._t += 1
        return action


class MemoryCopySingle(SingleEnv):
    """Single-copy :class:`gymnasium.Env` version of :class:`MemoryCopy`."""

    batched_cls = MemoryCopy
