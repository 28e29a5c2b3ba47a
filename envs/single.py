"""Single-copy :class:`gymnasium.Env` view of a batched task, for ``gymnasium.make``."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium
import numpy as np

from .base import BatchedEnv

__all__ = ["SingleEnv"]


class SingleEnv(gymnasium.Env):
    """One copy of a :class:`BatchedEnv` task behind the plain ``gymnasium.Env`` API.

    There is no autoreset: the step that ends an episode returns that episode's
    final observation, and the caller must call :meth:`reset` before stepping on.
    Subclasses only set ``batched_cls``; keyword arguments are the task's parameters.
    Observations are unbatched (``np.int64`` for ``Discrete`` spaces, an array of
    the single observation shape otherwise); rewards are ``float``, flags ``bool``.
    """

    batched_cls: ClassVar[type[BatchedEnv]]
    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, render_mode: str | None = None, **params: Any) -> None:
        if render_mode is not None:
            # a TypeError, as for an env without the argument: Stable-Baselines3's make_vec_env asks
            # for render_mode="rgb_array" and falls back to gymnasium.make(id) on a TypeError
            raise TypeError(f"render_mode must be None (rendering is not supported), got {render_mode!r}")
        self.render_mode = None
        self._batched = self.batched_cls(num_envs=1, **params)
        self.observation_space = self._batched.single_observation_space
        self.action_space = self._batched.single_action_space

    # The generator lives in the batched env; expose it where gymnasium expects it.
    @property
    def _np_random(self) -> np.random.Generator | None:  # type: ignore[override]
        return self._batched._np_random

    @_np_random.setter
    def _np_random(self, value: np.random.Generator | None) -> None:
        self._batched._np_random = value

    @property
    def _np_random_seed(self) -> int | None:  # type: ignore[override]
        return self._batched._np_random_seed

    @_np_random_seed.setter
    def _np_random_seed(self, value: int | None) -> None:
        self._batched._np_random_seed = value

    @property
    def optimal_return(self) -> float | None:
        """Expected return of an optimal policy per episode."""
        return self._batched.optimal_return

    @property
    def batched(self) -> BatchedEnv:
        """The underlying one-copy batched env."""
        return self._batched

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, _ = self._batched.reset(seed=seed)
        return self._unbatch(obs), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, rewards, terminated, truncated, info = self._batched.step(np.asarray(action)[None])
        # The batched env has already started the next episode; report the one that ended.
        single_obs = info["final_obs"][0] if info else self._unbatch(obs)
        return single_obs, float(rewards[0]), bool(terminated[0]), bool(truncated[0]), {}

    @staticmethod
    def _unbatch(obs: np.ndarray) -> Any:
        return obs[0] if obs.ndim == 1 else obs[0].copy()

    def render(self) -> None:
        return None
