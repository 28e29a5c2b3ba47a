"""repeat-first: keep outputting the first token of the episode."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from .base import Oracle, check_int
from .sequence import Episodes, SequenceEnv
from .single import SingleEnv

__all__ = ["RepeatFirst", "RepeatFirstOracle", "RepeatFirstSingle"]


class RepeatFirst(SequenceEnv):
    """Each step shows a uniformly random token in ``[0, n_tokens)``.

    From step ``t = 1`` on, the action should be the token shown at ``t = 0``:
    reward ``+1 / (length - 1)`` if it is, ``-1 / (length - 1)`` otherwise.
    Episodes have ``length`` observations (t = 0..length-1).

    Spaces per copy: observation ``Discrete(n_tokens)`` (batched: int64 [B]),
    action ``Discrete(n_tokens)`` (batched: [B]).
    """

    def __init__(
        self,
        num_envs: int = 1,
        seed: int | None = None,
        *,
        n_tokens: int = 4,
        length: int = 52,
    ) -> None:
        self.n_tokens = check_int("n_tokens", n_tokens, low=2)
        self.length = check_int("length", length, low=2)
        super().__init__(num_envs, seed)
        self._set_spaces(spaces.Discrete(self.n_tokens), spaces.Discrete(self.n_tokens))
        self._init_tables(self.length)

    def _draw(self, n: int) -> Episodes:
        length = self.length
        tokens = self.np_random.integers(0, self.n_tokens, size=(n, length + 1))
        target = np.repeat(tokens[:, :1], length, axis=1)
        weight = np.full((n, length), 1.0 / (length - 1), dtype=np.float32)
        weight[:, 0] = 0.0
        return Episodes(tokens, target, weight)


class RepeatFirstOracle(Oracle):
    """Remembers the first token [B] of each episode."""

    def __init__(self, num_envs: int, *, n_tokens: int = 4, length: int = 52) -> None:
        super().__init__(num_envs)
        self._first = np.zeros(self.num_envs, dtype=np.int64)

    def act(self, obs: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """obs: int [B] tokens; returns int64 [B] actions."""
        self._first[starts] = obs[starts]
        return self._first.copy()


class RepeatFirstSingle(SingleEnv):
    """Single-copy :class:`gymnasium.Env` version of :class:`RepeatFirst`."""

    batched_cls = RepeatFirst
