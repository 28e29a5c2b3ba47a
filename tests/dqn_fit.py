"""A short DQN fit on a small built-in task, for the learning tests of cores (counts, tape)."""

from __future__ import annotations

import torch

from rlmem.agents import DQN, evaluate_policy
from rlmem.envs import make_batched
from rlmem.policy import RecurrentQNetwork


def greedy_return_after_dqn(core: str, options: dict, env_name: str, env_kw: dict, steps: int) -> float:
    """Train DQN (gamma 0: every task here rewards each answer at once) over ``core`` for ``steps``
    env steps on 32 copies of ``env_name``; the greedy return over 64 fresh episodes."""
    env = make_batched(env_name, 32, seed=0, **env_kw)
    torch.manual_seed(0)
    net = RecurrentQNetwork(env.single_observation_space, env.single_action_space, core, options, embed_size=32,
                            head_size=64)
    agent = DQN(env, net, buffer_size=20_000, learning_starts=1000, batch_size=32, seq_len=16, overlap=8, burn_in=0,
                gamma=0.0, n_step=1, gradient_steps=2, target_update_interval=500, exploration_fraction=0.2, seed=0)
    agent.learn(steps)
    return evaluate_policy(net, make_batched(env_name, 32, seed=99, **env_kw), 64)["return_mean"]
