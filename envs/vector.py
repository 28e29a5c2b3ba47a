"""One function that builds a same-step-autoreset vector env for rlmem's agents.

Built-in tasks are natively batched; any other Gymnasium id (``name="gym"``) is stepped by
Gymnasium's own vector envs, with ``autoreset_mode=SAME_STEP`` so that the observation after an
episode's end is already the first of the next one and ``info["final_obs"]`` holds the last.
"""

from __future__ import annotations

from typing import Any

import gymnasium
from gymnasium.vector import AutoresetMode, VectorEnv

from . import BUILTIN_ENVS, make_batched


def make_gym_vector_env(env_id: str, num_envs: int, seed: int | None = None, vectorization: str = "sync",
                        kwargs: dict[str, Any] | None = None) -> VectorEnv:
    """``num_envs`` copies of any registered Gymnasium id (``"module:EnvId"`` imports the module).

    Args:
        env_id: e.g. ``"CartPole-v1"`` or ``"popgym:popgym-RepeatPreviousEasy-v0"``.
        vectorization: ``"sync"`` (one process) or ``"async"`` (one subprocess per copy).
        kwargs: passed to ``gymnasium.make`` for every copy.
    """
    if vectorization not in ("sync", "async"):
        raise ValueError(f"vectorization must be 'sync' or 'async', got {vectorization!r}")
    try:
        env = gymnasium.make_vec(env_id, num_envs=num_envs, vectorization_mode=vectorization,
                                 vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}, **(kwargs or {}))
    except gymnasium.error.Error as err:
        raise ValueError(f"cannot make Gymnasium env {env_id!r}: {err}") from err
    env.reset(seed=seed)
    return env


def make_vector_env(name: str, num_envs: int, seed: int | None = None, **params: Any) -> VectorEnv:
    """A built-in task by short name (``"t-maze"`` ...) or, with ``name="gym"``, any Gymnasium id
    given as ``id=...`` (plus ``vectorization`` and ``kwargs``, see :func:`make_gym_vector_env`)."""
    if name == "gym":
        params = dict(params)
        if "id" not in params:
            raise ValueError("env=gym needs an id, e.g. env.id=CartPole-v1")
        return make_gym_vector_env(params.pop("id"), num_envs, seed, **params)
    if name not in BUILTIN_ENVS:
        raise ValueError(f"unknown env {name!r}; valid names: gym, {', '.join(BUILTIN_ENVS)}")
    return make_batched(name, num_envs, seed=seed, **params)
