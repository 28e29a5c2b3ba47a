"""Stable-Baselines3's DQN (MlpPolicy, no memory) on rlmem's memory tasks: the peer beside
``agent=dqn`` in BENCHMARKS.md. A memoryless Q-function cannot know the cue or the token k steps
back, so it should stay near a random policy's return whatever its budget.

    python benchmarks/sb3_dqn_baseline.py --steps 200000
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", default="repeat-previous,t-maze")
    p.add_argument("--steps", type=int, default=200_000)
    p.add_argument("--n-envs", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    import rlmem.envs  # noqa: F401  registers the rlmem/... ids
    from rlmem.envs import env_id

    torch.set_num_threads(1)
    print(f"SB3 DQN (MlpPolicy, SB3 defaults but learning_starts 1000), {args.n_envs} envs, seed {args.seed}")
    print()
    print("| env | env steps | greedy eval return (100 episodes) | env-steps/s |")
    print("|---|---:|---:|---:|")
    for name in args.envs.split(","):
        venv = make_vec_env(lambda: gym.make(env_id(name)), n_envs=args.n_envs, seed=args.seed)
        model = DQN("MlpPolicy", venv, learning_starts=1000, seed=args.seed, device="cpu")
        start = time.perf_counter()
        model.learn(args.steps)
        fps = args.steps / (time.perf_counter() - start)
        mean, _ = evaluate_policy(model, make_vec_env(lambda: gym.make(env_id(name)), n_envs=1, seed=args.seed + 1),
                                  n_eval_episodes=100, deterministic=True)
        print(f"| {name} | {args.steps:,} | {mean:.3f} | {fps:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
