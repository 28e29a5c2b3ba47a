"""Greedy (or sampled) evaluation of a recurrent policy on fresh episodes."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from rlmem.policy import RecurrentActorCritic


@torch.no_grad()
def evaluate_policy(policy: RecurrentActorCritic, env: VectorEnv, n_episodes: int = 100,
                    deterministic: bool = True, seed: int | None = None, max_steps: int = 100_000
                    ) -> dict[str, float]:
    """Run ``n_episodes`` whole episodes (spread evenly over the env's copies, as Stable-Baselines3
    does, so short episodes are not favoured) and report return and length statistics.

    ``max_steps`` caps the steps of every copy, so an environment whose episodes never end cannot
    hang evaluation: the statistics are then over the episodes that ended (NaN if none did), with a
    warning, and ``"capped": 1.0`` in the result.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    B = env.num_envs
    targets = np.array([(n_episodes + i) // B for i in range(B)])
    counts = np.zeros(B, dtype=np.int64)
    ep_return, ep_len = np.zeros(B), np.zeros(B, dtype=np.int64)
    returns: list[float] = []
    lengths: list[int] = []
    obs, _ = env.reset(seed=seed)
    state, starts = None, np.ones(B, dtype=bool)
    use_prev = policy.torso.uses_prev_action or policy.torso.prev_reward
    prev_action = prev_reward = None
    if use_prev:
        prev_action = np.zeros((B, *env.single_action_space.shape), dtype=env.single_action_space.dtype)
        prev_reward = np.zeros(B, dtype=np.float32)
    was_training = policy.training
    policy.eval()
    steps = 0
    while (counts < targets).any() and steps < max_steps:
        steps += 1
        action, state = policy.predict(obs, state, starts, deterministic, prev_action, prev_reward)
        obs, reward, terminated, truncated, _ = env.step(action)
        done = np.logical_or(terminated, truncated)
        ep_return += reward
        ep_len += 1
        for i in np.flatnonzero(done):
            if counts[i] < targets[i]:
                returns.append(float(ep_return[i]))
                lengths.append(int(ep_len[i]))
                counts[i] += 1
        ep_return[done], ep_len[done] = 0.0, 0
        starts = done
        if use_prev:
            prev_action, prev_reward = action, np.asarray(reward, dtype=np.float32)
    policy.train(was_training)
    capped = bool((counts < targets).any())
    if capped:
        warnings.warn(f"evaluation stopped after max_steps={max_steps} steps per env copy with {len(returns)} of "
                      f"{n_episodes} episodes finished", stacklevel=2)
    nan = float("nan")
    return {"return_mean": float(np.mean(returns)) if returns else nan,
            "return_std": float(np.std(returns)) if returns else nan,
            "length_mean": float(np.mean(lengths)) if lengths else nan, "episodes": float(len(returns)),
            "capped": float(capped)}
