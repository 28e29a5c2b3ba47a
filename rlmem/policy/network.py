"""What every trained network shares: the memory torso over the encodable part of the
observation, its constructor arguments as plain data, and Stable-Baselines3-style ``predict``.

Subclasses (:class:`~rlmem.policy.actor_critic.RecurrentActorCritic`,
:class:`~rlmem.policy.q_network.RecurrentQNetwork`) add their heads and say how an output becomes
an action (:meth:`RecurrentNetwork.act`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from ..cores import Core, State
from .encoders import encodable_space, observation_selector
from .torso import MemoryTorso
from .tree import to_torch, tree_map


class RecurrentNetwork(nn.Module):
    """``obs -> torso(core)``, time-major, with the core state passed explicitly.

    See :class:`~rlmem.policy.torso.MemoryTorso` for the arguments shared with the torso.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space,
                 core: str | Core = "gru", core_options: dict[str, Any] | None = None,
                 embed_size: int = 128, prev_action: bool = False, prev_reward: bool = False,
                 head_size: int = 0):
        super().__init__()
        self.observation_space, self.action_space = observation_space, action_space
        # what the constructor needs besides the spaces, as plain data (checkpoints store it)
        self.init_args = {"core": core if isinstance(core, str) else None,
                          "core_options": dict(core_options or {}), "embed_size": int(embed_size),
                          "prev_action": bool(prev_action), "prev_reward": bool(prev_reward),
                          "head_size": int(head_size)}
        # the observation without the parts that cannot be encoded (a Dict's Text, ...): what is stored
        self.encoded_space = encodable_space(observation_space)
        self._select = observation_selector(observation_space)
        self.torso = MemoryTorso(self.encoded_space, action_space, core, core_options, embed_size,
                                 prev_action, prev_reward)

    @property
    def core(self) -> Core:
        return self.torso.core

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        return self.torso.initial_state(batch_size, device)

    def prepare_obs(self, observation: Any, device: torch.device | str) -> Any:
        """Observations as the environment gives them (numpy, possibly nested) -> torch tensors on
        ``device``, without the parts that are not encoded (``encoded_space``)."""
        return to_torch(observation if self._select is None else self._select(observation), device)

    def act(self, out: Any, deterministic: bool) -> torch.Tensor:
        """Actions ``[T, B, ...]`` from a forward output."""
        raise NotImplementedError

    def to_env(self, action: torch.Tensor) -> np.ndarray:
        """Actions as the environment takes them (numpy)."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, observation: Any, state: State | None = None,
                episode_start: np.ndarray | None = None, deterministic: bool = False,
                prev_action: np.ndarray | None = None, prev_reward: np.ndarray | None = None
                ) -> tuple[np.ndarray, State]:
        """Stable-Baselines3-style acting: ``observation`` is a batch ``[B, ...]`` (a VecEnv's) or
        one unbatched observation (``gymnasium.make``'s), which gives one unbatched action.

        ``state`` is opaque: pass back what the previous call returned (None at the start: the
        core's initial state). ``episode_start`` [B] (or a bool) marks rows whose observation
        begins an episode; ``prev_action`` / ``prev_reward`` as the observation, for policies that
        take them. So SB3's ``evaluate_policy(policy, vec_env)`` runs an rlmem policy unchanged.
        """
        device = next(self.parameters()).device
        picked = observation if self._select is None else self._select(observation)
        single = not is_batched(picked, self.encoded_space)
        if single:
            add = lambda tree: None if tree is None else tree_map(lambda v: np.asarray(v)[None], tree)  # noqa: E731
            picked, prev_action, prev_reward = add(picked), add(prev_action), add(prev_reward)
            episode_start = None if episode_start is None else np.asarray(episode_start).reshape(1)
        obs = to_torch(picked, device)
        batch = _batch_size(obs)
        if state is None:
            state = self.initial_state(batch, device)
            starts = torch.ones(1, batch, dtype=torch.bool, device=device)
        else:
            starts = torch.as_tensor(np.zeros(batch, bool) if episode_start is None else episode_start,
                                     dtype=torch.bool, device=device).reshape(1, batch)
        out = self(_as_sequence(obs), state, starts, _as_sequence(prev_action, device),
                   _as_sequence(prev_reward, device))
        action = self.to_env(self.act(out, deterministic)[0])
        return (action[0] if single else action), out.state


def is_batched(observation: Any, space: spaces.Space) -> bool:
    """Whether ``observation`` is a batch of observations of ``space`` (leading dim) or one; a
    ValueError names the shape expected when it is neither."""
    if isinstance(space, spaces.Dict):
        key = next(iter(space.spaces))
        return is_batched(observation[key], space[key])
    if isinstance(space, spaces.Tuple):
        return is_batched(observation[0], space.spaces[0])
    shape = np.shape(observation)
    if shape == tuple(space.shape):
        return False
    if len(shape) == len(space.shape) + 1 and shape[1:] == tuple(space.shape):
        return True
    raise ValueError(f"observation of shape {shape} fits neither one observation of {space} (shape "
                     f"{tuple(space.shape)}) nor a batch of them (shape (B, {', '.join(map(str, space.shape))}))")


def hidden_layer(in_size: int, size: int) -> nn.Module:
    """An optional tanh layer between the core and a head (``size`` 0: none)."""
    return nn.Sequential(nn.Linear(in_size, size), nn.Tanh()) if size else nn.Identity()


def _as_sequence(batch: Any, device: torch.device | None = None) -> Any:
    """A batch ``[B, ...]`` (numpy or torch, possibly nested) as a one-step sequence ``[1, B, ...]``."""
    if batch is None:
        return None
    if device is not None:
        batch = to_torch(batch, device)
    return tree_map(lambda t: t.unsqueeze(0), batch)


def _batch_size(obs) -> int:
    while isinstance(obs, (dict, tuple, list)):
        obs = next(iter(obs.values())) if isinstance(obs, dict) else obs[0]
    return int(obs.shape[0])
