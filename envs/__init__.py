"""Memory-requiring tasks, natively batched in NumPy.

Each task is a :class:`BatchedEnv` (a ``gymnasium.vector.VectorEnv`` with
same-step autoreset) and is registered with gymnasium as ``rlmem/<Name>-v0``,
both as a single env (``gymnasium.make``) and as a vector env
(``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")``)::

    from rlmem.envs import make_batched
    envs = make_batched("t-maze", num_envs=256, seed=0, corridor=50)
    obs, info = envs.reset()
"""

from __future__ import annotations

import inspect
from typing import Any

import gymnasium

from .base import BatchedEnv, Oracle
from .count_recall import CountRecall, CountRecallOracle, CountRecallSingle
from .memory_copy import MemoryCopy, MemoryCopyOracle, MemoryCopySingle
from .repeat_first import RepeatFirst, RepeatFirstOracle, RepeatFirstSingle
from .repeat_previous import RepeatPrevious, RepeatPreviousOracle, RepeatPreviousSingle
from .single import SingleEnv
from .stateless_cartpole import StatelessCartPole, StatelessCartPoleOracle, StatelessCartPoleSingle
from .surprise_recall import SurpriseRecall, SurpriseRecallOracle, SurpriseRecallSingle
from .t_maze import TMaze, TMazeOracle, TMazeSingle

__all__ = [
    "BUILTIN_ENVS",
    "ORACLES",
    "BatchedEnv",
    "CountRecall",
    "MemoryCopy",
    "Oracle",
    "RepeatFirst",
    "RepeatPrevious",
    "SingleEnv",
    "StatelessCartPole",
    "SurpriseRecall",
    "TMaze",
    "env_id",
    "env_params",
    "make_batched",
    "make_gym_vector_env",
    "make_vector_env",
]

#: Short name -> batched task class.
BUILTIN_ENVS: dict[str, type[BatchedEnv]] = {
    "memory-copy": MemoryCopy,
    "repeat-previous": RepeatPrevious,
    "repeat-first": RepeatFirst,
    "count-recall": CountRecall,
    "t-maze": TMaze,
    "stateless-cartpole": StatelessCartPole,
    "surprise-recall": SurpriseRecall,
}

#: Short name -> scripted optimal policy, built as ``ORACLES[name](num_envs, **params)``.
ORACLES: dict[str, type[Oracle]] = {
    "memory-copy": MemoryCopyOracle,
    "repeat-previous": RepeatPreviousOracle,
    "repeat-first": RepeatFirstOracle,
    "count-recall": CountRecallOracle,
    "t-maze": TMazeOracle,
    "stateless-cartpole": StatelessCartPoleOracle,
    "surprise-recall": SurpriseRecallOracle,
}

_SINGLE_ENVS: dict[str, type[SingleEnv]] = {
    "memory-copy": MemoryCopySingle,
    "repeat-previous": RepeatPreviousSingle,
    "repeat-first": RepeatFirstSingle,
    "count-recall": CountRecallSingle,
    "t-maze": TMazeSingle,
    "stateless-cartpole": StatelessCartPoleSingle,
    "surprise-recall": SurpriseRecallSingle,
}


def _check_name(name: str) -> type[BatchedEnv]:
    try:
        return BUILTIN_ENVS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown env {name!r}; valid names: {', '.join(BUILTIN_ENVS)}") from None


def env_id(name: str) -> str:
    """Gymnasium id of a built-in env, e.g. ``env_id("t-maze") == "rlmem/TMaze-v0"``."""
    return f"rlmem/{_check_name(name).__name__}-v0"


def env_params(name: str) -> dict[str, Any]:
    """Task parameters of a built-in env with their defaults (``num_envs`` and ``seed`` excluded)."""
    signature = inspect.signature(_check_name(name).__init__)
    return {
        p.name: p.default for p in signature.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def make_batched(name: str, num_envs: int, seed: int | None = None, **params: Any) -> BatchedEnv:
    """Build ``num_envs`` batched copies of the built-in env ``name`` (see ``BUILTIN_ENVS``).

    Raises:
        ValueError: unknown ``name``, or a parameter outside its allowed range.
        TypeError: a keyword that is not a parameter of that env.
    """
    cls = _check_name(name)
    valid = env_params(name)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise TypeError(
            f"unknown parameter(s) {', '.join(unknown)} for env {name!r}; "
            f"valid parameters: {', '.join(valid) or '(none)'}"
        )
    return cls(num_envs=num_envs, seed=seed, **params)


def _register() -> None:
    for name, cls in BUILTIN_ENVS.items():
        gym_id = env_id(name)
        if gym_id in gymnasium.registry:
            continue  # re-import, e.g. after importlib.reload
        single = _SINGLE_ENVS[name]
        gymnasium.register(
            id=gym_id,
            entry_point=f"{single.__module__}:{single.__qualname__}",
            vector_entry_point=f"{cls.__module__}:{cls.__qualname__}",
        )


_register()

from .vector import make_gym_vector_env, make_vector_env  # noqa: E402  (needs make_batched above)
