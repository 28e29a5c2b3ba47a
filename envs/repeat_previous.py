"""repeat-previous: output the token that was shown ``k`` steps ago."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from .base import Oracle, check_int
from .sequence import Episodes, SequenceEnv
from .single import SingleEnv

__all__ = ["RepeatPrevious", "RepeatPreviousOracle", "RepeatPreviousSingle"]


class RepeatPrevious(SequenceEnv):
    """Each step shows a uniformly random token in ``[0, n_tokens)``.

    From step ``t = k`` on, the action should be the token seen at ``t - k``:
    reward ``+1 / (length - k)`` if it is, ``-1 / (length - k)`` otherwise
    (0 for ``t < k``). Episodes have ``length`` observations (t = 0..length-1).

    Spaces per copy: observation ``Discrete(n_tokens)`` (batched: int64 [B]),
    action ``Discrete(n_tokens)`` (batched: [B]).
    """

    def __init__(
        self,
        num_envs: int = 1,
        seed: int | None = None,
        *,
        n_tokens: int = 4,
        k: int = 4,
        length: int = 52,
    ) -> None:
        self.n_tokens = check_int("n_tokens", n_tokens, low=2)
        self.length = check_int("length", length, low=2)
        self.k = check_int("k", k, low=1, high=self.length - 1)
        super().__init__(num_envs, seed)
        self._set_spaces(spaces.Discrete(self.n_tokens), spaces.Discrete(self.n_tokens))
        self._init_tables(self.length)

    def _draw(self, n: int) -> Episodes:
        length, k = self.length, self.k
        # One extra token serves as the final observation.
        tokens = self.np_random.integers(0, self.n_tokens, size=(n, length + 1))
        target = np.zeros((n, length), dtype=np.int64)
        target[:, k:] = tokens[:, : length - k]
        weight = np.zeros((n, length), dtype=np.float32)
        weight[:, k:] = 1.0 / (length - k)
        return Episodes(tokens, target, weight)


class RepeatPreviousOracle(Oracle):
    """Keeps the last ``k`` tokens in a ring buffer [B, k] and replays the oldest."""

    def __init__(self, num_envs: int, *, n_tokens: int = 4, k: int = 4, length: int = 52) -> None:
        super().__init__(num_envs)
        self.k = k
        self._ring = np.zeros((self.num_envs, k), dtype=np.int64)
        self._t = np.zeros(self.num_envs, dtype=np.int64)

    def act(self, obs: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """obs: int [B] tokens; returns int64 [B] actions."""
        self._t[starts] = 0
        slot = self._t % self.k
        action = self._ring[self._rows, slot]  # token from t - k (stale but unrewarded for t < k)
        self._ring[self._rows, slot] = obs
        self._t += 1
        return action


class RepeatPreviousSingle(SingleEnv):
    """Single-copy :class:`gymnasium.Env` version of :class:`RepeatPrevious`."""

    batched_cls = RepeatPrevious
