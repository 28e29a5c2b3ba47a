"""PPO training throughput: rlmem (PPO + GRU) against sb3-contrib RecurrentPPO (LSTM), one run.

Both train on the same task (rlmem/RepeatPrevious-v0 by default) with the same n_envs, n_steps,
batch size, epochs and hidden size; the table reports env-steps/s of each and the ratio.

    python benchmarks/throughput.py                  # n_envs 8, n_steps 128, batch 128, 10 epochs, hidden 256
    python benchmarks/throughput.py --seq-len 128    # rlmem backpropagating through whole rollouts

rlmem steps its natively batched env; RecurrentPPO steps the same task's single-env version through
SB3's DummyVecEnv, as its users run it (the env is a negligible share of either's time).
"""

from __future__ import annotations

import argparse
import time

import torch

from rlmem.allocator import keep_freed_memory


def time_rlmem(args) -> float:
    from rlmem.agents import PPO
    from rlmem.envs import make_batched
    from rlmem.policy import RecurrentActorCritic

    env = make_batched(args.env, args.n_envs, seed=0)
    torch.manual_seed(0)
    policy = RecurrentActorCritic(env.single_observation_space, env.single_action_space, args.core,
                                  {"hidden_size": args.hidden}, embed_size=args.embed)
    agent = PPO(env, policy, n_steps=args.n_steps, batch_size=args.batch_size, n_epochs=args.n_epochs,
                seq_len=args.seq_len, learning_rate=3e-4)
    per_iter = args.n_envs * args.n_steps
    agent.learn(per_iter)  # warm-up iteration, not timed
    start, steps = time.perf_counter(), agent.num_timesteps
    agent.learn(steps + args.steps)
    return (agent.num_timesteps - steps) / (time.perf_counter() - start)


def time_sb3(args) -> float:
    import gymnasium as gym
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.env_util import make_vec_env

    import rlmem.envs  # noqa: F401  registers rlmem/... ids

    from rlmem.envs import env_id

    venv = make_vec_env(lambda: gym.make(env_id(args.env)), n_envs=args.n_envs, seed=0)
    model = RecurrentPPO("MlpLstmPolicy", venv, n_steps=args.n_steps, batch_size=args.batch_size,
                         n_epochs=args.n_epochs, learning_rate=3e-4, seed=0, device="cpu",
                         policy_kwargs={"lstm_hidden_size": args.hidden})
    per_iter = args.n_envs * args.n_steps
    model.learn(per_iter)  # warm-up iteration, not timed
    start = time.perf_counter()
    model.learn(args.peer_steps, reset_num_timesteps=False)
    return args.peer_steps / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="repeat-previous")
    p.add_argument("--core", default="gru")
    p.add_argument("--n-envs", type=int, default=8)
    p.add_argument("--n-steps", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--n-epochs", type=int, default=10)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--embed", type=int, default=128, help="rlmem embedding width fed to the core (its default)")
    p.add_argument("--seq-len", type=int, default=16)
    p.add_argument("--steps", type=int, default=40960, help="timed rlmem env steps")
    p.add_argument("--peer-steps", type=int, default=2048, help="timed RecurrentPPO env steps")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--skip-peer", action="store_true")
    p.add_argument("--system-malloc", action="store_true",
                   help="leave glibc's malloc thresholds as they are (default: keep freed memory, as rlmem.train does)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    kept = not args.system_malloc and keep_freed_memory()  # for every trainer measured

    ours = time_rlmem(args)
    peer = None if args.skip_peer else time_sb3(args)
    print(f"\nenv={args.env} n_envs={args.n_envs} n_steps={args.n_steps} batch_size={args.batch_size} "
          f"n_epochs={args.n_epochs} hidden={args.hidden} threads={args.threads} rlmem seq_len={args.seq_len} "
          f"keep_freed_memory={kept}")
    print(f"| {'trainer':<38} | {'env-steps/s':>11} | {'ratio':>6} |")
    print(f"|{'-' * 40}|{'-' * 13}|{'-' * 8}|")
    if peer:
        print(f"| {'sb3-contrib RecurrentPPO (MlpLstmPolicy)':<38} | {peer:>11.0f} | {1.0:>6.2f} |")
    ratio = f"{ours / peer:>6.1f}" if peer else f"{'-':>6}"
    print(f"| {'rlmem PPO + ' + args.core:<38} | {ours:>11.0f} | {ratio} |")


if __name__ == "__main__":
    main()
