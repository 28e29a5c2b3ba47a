"""Small Gymnasium envs written the way an outside package would write them (plain ``gymnasium.Env``,
no rlmem code), registered on import; the tests reach them as ``env=gym
env.id=foreign_envs:<Id>`` with this folder on ``PYTHONPATH``.

- ``ForeignDictText-v0``: Dict observation of Box + Discrete + Text + Sequence, Discrete(3) actions.
  A cue (0 or 1) is shown in ``cue`` at the first step only (2 afterwards); the last of
  :data:`EPISODE_STEPS` steps pays +1 if the action equals the cue, -1 otherwise. The Text and
  Sequence parts cannot be encoded and are left out; what is left is enough to learn the task.
- ``ForeignTupleGraph-v0``: Tuple of (Box(3), Graph) observation, Discrete(2) actions; the same
  cue task with the cue in the Box (one-hot in its first two entries at the first step).
- ``ForeignTextOnly-v0``: a Text observation and nothing else: rlmem cannot encode it.
- ``ForeignMatrixAction-v0``: a 2-D Box action space: rlmem cannot act in it.

All of them pass ``gymnasium.utils.env_checker.check_env`` and are deterministic given the seed
of ``reset``.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

EPISODE_STEPS = 4
BLANK = 2


class _CueTask(gymnasium.Env):
    """A cue at the first step, a decision at the last; subclasses say how observations look."""

    metadata = {"render_modes": []}
    n_actions = 3

    def __init__(self, episode_steps: int = EPISODE_STEPS, render_mode: str | None = None):
        if episode_steps < 1:
            raise ValueError(f"episode_steps must be >= 1, got {episode_steps}")
        self.episode_steps = int(episode_steps)
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(self.n_actions)
        self._cue = 0
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._cue = int(self.np_random.integers(0, 2))
        self._t = 0
        return self._observe(), {}

    def step(self, action):
        self._t += 1
        terminated = self._t >= self.episode_steps
        reward = (1.0 if int(action) == self._cue else -1.0) if terminated else 0.0
        return self._observe(), reward, terminated, False, {}

    def _observe(self):
        raise NotImplementedError


class ForeignDictText(_CueTask):
    def __init__(self, episode_steps: int = EPISODE_STEPS, render_mode: str | None = None):
        super().__init__(episode_steps, render_mode)
        self.observation_space = spaces.Dict({
            "position": spaces.Box(0.0, 1.0, (2,), dtype=np.float32),
            "cue": spaces.Discrete(3),
            "note": spaces.Text(max_length=6, min_length=1),
            "history": spaces.Sequence(spaces.Discrete(4)),
        })

    def _observe(self):
        progress = self._t / self.episode_steps
        return {
            "position": np.array([progress, 1.0 - progress], dtype=np.float32),
            "cue": np.int64(self._cue if self._t == 0 else BLANK),
            "note": "go" if self._t < self.episode_steps else "stop",
            "history": tuple(np.int64(min(i, 3)) for i in range(self._t)),
        }


class ForeignTupleGraph(_CueTask):
    n_actions = 2

    def __init__(self, episode_steps: int = EPISODE_STEPS, render_mode: str | None = None):
        super().__init__(episode_steps, render_mode)
        self.observation_space = spaces.Tuple((
            spaces.Box(0.0, 1.0, (3,), dtype=np.float32),
            spaces.Graph(node_space=spaces.Box(-1.0, 1.0, (2,), dtype=np.float32), edge_space=spaces.Discrete(2)),
        ))

    def _observe(self):
        box = np.zeros(3, dtype=np.float32)
        if self._t == 0:
            box[self._cue] = 1.0
        box[2] = self._t / self.episode_steps
        n = self._t + 1  # a chain graph that grows by one node per step
        nodes = np.stack([np.linspace(-1.0, 1.0, n), np.full(n, 0.5)], axis=1).astype(np.float32)
        links = np.array([[i, i + 1] for i in range(n - 1)], dtype=np.int64).reshape(-1, 2)
        edges = (np.arange(n - 1) % 2).astype(np.int64)
        return box, spaces.GraphInstance(nodes=nodes, edges=edges, edge_links=links)


class ForeignTextOnly(_CueTask):
    n_actions = 2

    def __init__(self, episode_steps: int = EPISODE_STEPS, render_mode: str | None = None):
        super().__init__(episode_steps, render_mode)
        self.observation_space = spaces.Text(max_length=8, min_length=1)

    def _observe(self):
        return ("left" if self._cue == 0 else "right") if self._t == 0 else "wait"


class ForeignMatrixAction(gymnasium.Env):
    """A Box observation and a 2-D Box action; the reward is minus the action's squared norm."""

    metadata = {"render_modes": []}

    def __init__(self, render_mode: str | None = None):
        self.render_mode = render_mode
        self.observation_space = spaces.Box(-1.0, 1.0, (3,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (2, 2), dtype=np.float32)
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._t = 0
        return self.np_random.uniform(-1.0, 1.0, 3).astype(np.float32), {}

    def step(self, action):
        self._t += 1
        obs = self.np_random.uniform(-1.0, 1.0, 3).astype(np.float32)
        reward = -float(np.square(np.asarray(action, dtype=np.float32)).sum())
        return obs, reward, self._t >= EPISODE_STEPS, False, {}


IDS = {
    "ForeignDictText-v0": ForeignDictText,
    "ForeignTupleGraph-v0": ForeignTupleGraph,
    "ForeignTextOnly-v0": ForeignTextOnly,
    "ForeignMatrixAction-v0": ForeignMatrixAction,
}

for _id, _cls in IDS.items():
    if _id not in gymnasium.registry:
        gymnasium.register(id=_id, entry_point=f"{__name__}:{_cls.__qualname__}")
