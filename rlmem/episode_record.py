"""Record one whole episode of a trained (or untrained) rlmem network, step by step, with what its
core did: the per-step extras (NTM weightings, slot-memory writes and attention ...) and the core
state after every step.

>>> from rlmem.envs import make_vector_env
>>> from rlmem.policy import RecurrentActorCritic
>>> env = make_vector_env("t-maze", 4, seed=0, corridor=5)
>>> policy = RecurrentActorCritic(env.single_observation_space, env.single_action_space, core="gru")
>>> record = record_episode(policy, env, seed=0)
>>> record.length, record.actions.shape
(7, (7,))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from rlmem.agents.space_storage import space_zeros
from rlmem.policy import observation_selector, tree_map
from rlmem.policy.network import RecurrentNetwork


@dataclass
class EpisodeRecord:
    """One episode of env copy 0, ``T`` steps.

    Attributes:
        core: the core's registered name (``"gru"``, ``"ntm"`` ...).
        observations: the observation acted on at each step, as encoded (parts the policy cannot
            encode, such as a Dict's Text, left out): numpy ``[T, ...]``, or a list of ``T``
            dicts/tuples of numpy arrays for Dict/Tuple spaces.
        actions: numpy ``[T, ...]``, the actions as the environment took them.
        rewards: numpy ``[T]`` float.
        extras: every per-step core extra of row 0, numpy ``[T, ...]`` (``read_weights`` [T, R, N],
            ``write_weights`` [T, W, N], ``slot_age`` [T, N], ``attention`` [T, N],
            ``written_slot`` [T], scalars [T] ...).
        states: the core's floating-point state entries of row 0 after each step, numpy
            ``[T, ...]`` (``h`` [T, L, H] for gru/lstm/elman, ``s`` [T, H] for gated, ``memory``
            [T, N, M] for ntm ...).
        episode_return: the sum of ``rewards``.
        length: ``T``.
        truncated_by_cap: True when ``max_steps`` ran out before the episode ended.
    """

    core: str
    observations: np.ndarray | list[Any]
    actions: np.ndarray
    rewards: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    states: dict[str, np.ndarray] = field(default_factory=dict)
    episode_return: float = 0.0
    length: int = 0
    truncated_by_cap: bool = False


def core_name(policy: RecurrentNetwork) -> str:
    """The registered name of a network's core (its class name for an unregistered one)."""
    core = policy.core
    return policy.init_args.get("core") or getattr(core, "registered_name", type(core).__name__)


def _row0(tree: Any) -> Any:
    """Row 0 of a batch (numpy, possibly nested, possibly a tuple of per-copy values) as numpy."""
    return tree_map(lambda v: np.array(np.asarray(v)[0]), tree)


def _stack(steps: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.stack([s[k] for s in steps]) for k in (steps[0] if steps else {})}


@torch.no_grad()
def record_episode(policy: RecurrentNetwork, env: VectorEnv, *, deterministic: bool = True,
                   seed: int | None = None, max_steps: int = 10_000) -> EpisodeRecord:
    """Run one whole episode of copy 0 of ``env`` (all copies are stepped) and record it.

    ``policy`` is a :class:`~rlmem.policy.RecurrentActorCritic` or
    :class:`~rlmem.policy.RecurrentQNetwork`; it acts as the agents do (the core state carried
    from step to step, ``starts`` True at the first step, the previous action and reward fed when
    the policy takes them). ``env`` is reset with ``seed``; a sampling policy
    (``deterministic=False``) draws from a torch generator seeded with ``seed`` too, without
    touching torch's global one, so the same seed gives the same episode.
    ``max_steps`` caps the episode (then ``truncated_by_cap``).
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    device = next(policy.parameters()).device
    devices = [device] if device.type == "cuda" else []
    was_training = policy.training
    policy.eval()
    try:
        with torch.random.fork_rng(devices=devices):
            if seed is not None:
                torch.manual_seed(seed)
            return _record(policy, env, deterministic, seed, max_steps, device)
    finally:
        policy.train(was_training)


def _record(policy: RecurrentNetwork, env: VectorEnv, deterministic: bool, seed: int | None, max_steps: int,
            device: torch.device) -> EpisodeRecord:
    B = env.num_envs
    select = observation_selector(policy.observation_space)  # drops what is not encoded (a Dict's Text ...)
    obs, _ = env.reset(seed=seed)
    state = policy.initial_state(B, device)
    starts = torch.ones(1, B, dtype=torch.bool, device=device)
    uses_prev = policy.torso.uses_prev_action or policy.torso.prev_reward
    prev_action = space_zeros(env.single_action_space, (B,), device) if uses_prev else None
    prev_reward = torch.zeros(B, device=device) if uses_prev else None
    observations, actions, rewards = [], [], []
    extras: list[dict[str, np.ndarray]] = []
    states: list[dict[str, np.ndarray]] = []
    done = False
    while not done and len(rewards) < max_steps:
        picked = obs if select is None else select(obs)
        observations.append(_row0(picked))
        seq = lambda tree: None if tree is None else tree_map(lambda v: v.unsqueeze(0), tree)  # noqa: E731
        out = policy(seq(policy.prepare_obs(obs, device)), state, starts, seq(prev_action), seq(prev_reward))
        action = policy.act(out, deterministic)[0]
        env_action = policy.to_env(action)
        obs, reward, terminated, truncated, _ = env.step(env_action)
        actions.append(np.array(np.asarray(env_action)[0]))
        rewards.append(float(np.asarray(reward)[0]))
        extras.append({k: v[0, 0].detach().cpu().numpy() for k, v in out.extras.items()
                       if k != "aux_loss" and v.dim() >= 2})
        state = out.state
        states.append({k: v[0].detach().cpu().numpy() for k, v in state.items() if v.is_floating_point()})
        done = bool(terminated[0] or truncated[0])
        starts = torch.as_tensor(np.logical_or(terminated, truncated), device=device).reshape(1, B)
        if uses_prev:
            prev_action, prev_reward = action, torch.as_tensor(reward, dtype=torch.float32, device=device)
    structured = isinstance(observations[0], (dict, tuple, list))
    return EpisodeRecord(
        core=core_name(policy),
        observations=observations if structured else np.stack(observations),
        actions=np.stack(actions), rewards=np.asarray(rewards, dtype=np.float64),
        extras=_stack(extras), states=_stack(states),
        episode_return=float(np.sum(rewards)), length=len(rewards), truncated_by_cap=not done)
