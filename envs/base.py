"""Shared machinery for the natively batched memory tasks.

Every task is a :class:`gymnasium.vector.VectorEnv` whose ``step`` advances all
``B = num_envs`` copies with a handful of vectorized NumPy calls. Copies that
end are reset inside the same ``step`` call (gymnasium's ``SAME_STEP``
autoreset): the returned observation row is already the first observation of
the next episode and ``info["final_obs"]`` keeps the last one of the old one.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

__all__ = ["BatchedEnv", "Oracle", "check_int"]


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """Return ``value`` as an ``int`` or raise ``ValueError`` naming ``name`` and its allowed range."""
    allowed = f"an integer in [{low}, {high}]" if high is not None else f"an integer >= {low}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return int(value)


def rows_to_objects(rows: np.ndarray) -> np.ndarray:
    """Pack the ``k`` leading rows of ``rows`` [k, ...] into an object array [k] of per-row values."""
    out = np.empty(len(rows), dtype=object)
    try:
        out[:] = list(rows)
    except ValueError:
        # Older NumPy versions try to broadcast a list of equal-length rows as one 2-D block.
        for i, row in enumerate(rows):
            out[i] = row
    return out


class BatchedEnv(gymnasium.vector.VectorEnv):
    """A batch of ``num_envs`` independent copies of one task, stepped together.

    Subclasses call :meth:`_set_spaces` in their constructor and implement three hooks:

    * ``_reset_rows(idx)`` starts a fresh episode in the copies ``idx`` [k];
    * ``_advance(actions)`` consumes one action per copy and returns
      ``(rewards float32 [B], terminated bool [B], truncated bool [B])``;
    * ``_observe(idx)`` returns the current observation of copies ``idx``
      (all copies when ``idx`` is ``None``) as a new array [k, *obs_shape].

    ``reset`` and ``step`` return observations batched as in ``observation_space``
    (shape [B, *single_obs_shape]); every call returns new arrays, so callers may
    keep them. Actions may use any integer dtype; for ``Discrete`` action spaces
    an out-of-range action simply never counts as correct.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "autoreset_mode": AutoresetMode.SAME_STEP,
        "render_modes": [],
    }
    #: Expected return of an optimal policy per episode (every built-in task is scaled to 1.0).
    optimal_return: ClassVar[float | None] = 1.0

    def __init__(self, num_envs: int = 1, seed: int | None = None) -> None:
        self.num_envs = check_int("num_envs", num_envs, low=1)
        if seed is not None:
            check_int("seed", seed, low=0)
        self.autoreset_mode = AutoresetMode.SAME_STEP
        self._np_random, self._np_random_seed = seeding.np_random(seed)
        self._init_seed = seed
        self._all_rows = np.arange(self.num_envs)
        self._needs_reset = True

    def _set_spaces(self, observation: gymnasium.Space, action: gymnasium.Space) -> None:
        """Install the per-copy spaces and their batched versions."""
        self.single_observation_space = observation
        self.single_action_space = action
        self.observation_space = batch_space(observation, self.num_envs)
        self.action_space = batch_space(action, self.num_envs)
        self._action_shape = self.action_space.shape
        if self._init_seed is not None:
            self._seed_spaces(self._init_seed)

    def _seed_spaces(self, seed: int) -> None:
        self.single_observation_space.seed(seed)
        self.single_action_space.seed(seed)
        self.observation_space.seed(seed)
        self.action_space.seed(seed)

    # -- hooks -------------------------------------------------------------------------
    def _reset_rows(self, idx: np.ndarray) -> None:
        raise NotImplementedError

    def _advance(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _observe(self, idx: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    # -- exact resume --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything that decides what the copies do next, as arrays and plain data: the
        generator's state and every private array (episode progress, stored tokens ...)."""
        arrays = {k: v.copy() for k, v in vars(self).items()
                  if k.startswith("_") and isinstance(v, np.ndarray) and v.dtype != object}
        return {"class": type(self).__name__, "num_envs": self.num_envs, "arrays": arrays,
                "rng": self._np_random.bit_generator.state, "needs_reset": self._needs_reset}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly where :meth:`state_dict` was taken (same task, parameters and ``num_envs``);
        the arrays may come back as anything ``np.asarray`` reads (CPU tensors from a checkpoint)."""
        if state.get("class") != type(self).__name__ or state.get("num_envs") != self.num_envs:
            raise ValueError(f"env state of {state.get('class')} x {state.get('num_envs')} cannot be loaded "
                             f"into {type(self).__name__} x {self.num_envs}")
        for k, v in state["arrays"].items():
            current, v = getattr(self, k, None), np.asarray(v)
            if not isinstance(current, np.ndarray) or current.shape != v.shape:
                raise ValueError(f"env state {k!r} of shape {v.shape} does not fit this "
                                 f"{type(self).__name__} (different task parameters?)")
            setattr(self, k, v.astype(current.dtype, copy=True))
        self._np_random.bit_generator.state = state["rng"]
        self._needs_reset = bool(state["needs_reset"])

    # -- gymnasium API -----------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start new episodes; returns ``(obs [B, *obs_shape], {})``.

        ``seed`` reseeds the generator (and the spaces). ``options={"reset_mask": m}``
        with ``m`` a bool array [B] resets only the marked copies.
        """
        if seed is not None:
            check_int("seed", seed, low=0)
            self._np_random, self._np_random_seed = seeding.np_random(seed)
            self._seed_spaces(seed)
        mask = None if options is None else options.get("reset_mask")
        if mask is None:
            self._reset_rows(self._all_rows)
        else:
            mask = np.asarray(mask)
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_:
                raise ValueError(
                    f"options['reset_mask'] must be a bool array of shape ({self.num_envs},), "
                    f"got dtype {mask.dtype} and shape {mask.shape}"
                )
            if self._needs_reset and not mask.all():
                raise ValueError("the first reset must reset every copy (reset_mask all True)")
            self._reset_rows(np.flatnonzero(mask))
        self._needs_reset = False
        return self._observe(), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every copy once.

        Args:
            actions: array in ``action_space`` ([B] or [B, action_dim]), any integer dtype.

        Returns:
            ``(obs [B, *obs_shape], rewards float32 [B], terminated bool [B],
            truncated bool [B], info)``. ``info`` is ``{}`` unless some copy ended, in
            which case it holds ``final_obs`` (object array [B], ``None`` where the
            copy did not end) and its mask ``_final_obs`` (bool [B]).
        """
        if self._needs_reset:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions)
        if actions.shape != self._action_shape:
            raise ValueError(f"actions must have shape {self._action_shape}, got {actions.shape}")
        rewards, terminated, truncated = self._advance(actions)
        obs = self._observe()
        ended = terminated | truncated
        if not ended.any():
            return obs, rewards, terminated, truncated, {}
        idx = np.flatnonzero(ended)
        final_obs = np.full(self.num_envs, None, dtype=object)
        final_obs[idx] = rows_to_objects(obs[idx])
        self._reset_rows(idx)
        obs[idx] = self._observe(idx)
        return obs, rewards, terminated, truncated, {"final_obs": final_obs, "_final_obs": ended}


class Oracle:
    """Scripted optimal policy for a batch of copies of one task.

    It sees nothing but the observations it is fed and keeps its own memory of
    them, so it doubles as an executable description of what a task requires an
    agent to remember. Subclasses take ``num_envs`` plus the task's parameters.
    """

    def __init__(self, num_envs: int) -> None:
        self.num_envs = check_int("num_envs", num_envs, low=1)
        self._rows = np.arange(self.num_envs)

    def act(self, obs: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Return actions [B, ...] for observations ``obs`` [B, ...].

        ``starts`` (bool [B]) marks copies whose ``obs`` is the first of an episode.
        """
        raise NotImplementedError
