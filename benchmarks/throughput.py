"""PPO training throughput: rlmem's PPO and sb3-contrib's RecurrentPPO, the latter with its own
LSTM policy and with rlmem cores (``rlmem.sb3.CorePolicy``), over the same work.

Every trainer takes one untimed warm-up iteration, then is timed over the same ``--steps`` env
steps on the same task (rlmem/RepeatPrevious-v0 by default) with the same n_envs, n_steps, batch
size, epochs, learning rate and hidden size. RecurrentPPO steps the task's single-env version
through SB3's DummyVecEnv, as its users run it; rlmem steps the natively batched task.

    python benchmarks/throughput.py                  # n_envs 8, n_steps 128, batch 128, 10 epochs, hidden 256
    python benchmarks/throughput.py --steps 16384 --threads 1
"""

from __future__ import annotations

import argparse
import time

import torch

from rlmem.allocator import keep_freed_memory


def time_rlmem(args, core: str) -> float:
    from rlmem.agents import PPO
    from rlmem.envs import make_batched
    from rlmem.policy import RecurrentActorCritic

    env = make_batched(args.env, args.n_envs, seed=0)
    torch.manual_seed(0)
    policy = RecurrentActorCritic(env.single_observation_space, env.single_action_space, core,
                                  {"hidden_size": args.hidden}, embed_size=args.embed)
    agent = PPO(env, policy, n_steps=args.n_steps, batch_size=args.batch_size, n_epochs=args.n_epochs,
                seq_len=args.seq_len, learning_rate=3e-4)
    per_iter = args.n_envs * args.n_steps
    agent.learn(per_iter)  # warm-up iteration, not timed
    start, steps = time.perf_counter(), agent.num_timesteps
    agent.learn(steps + args.steps)
    return (agent.num_timesteps - steps) / (time.perf_counter() - start)


def time_sb3(args, core: str | None) -> float:
    """RecurrentPPO with its MlpLstmPolicy (``core`` None) or with ``CorePolicy(core=core)``."""
    import gymnasium as gym
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.env_util import make_vec_env

    import rlmem.envs  # noqa: F401  registers rlmem/... ids

    from rlmem.envs import env_id

    venv = make_vec_env(lambda: gym.make(env_id(args.env)), n_envs=args.n_envs, seed=0)
    if core is None:
        policy, kwargs = "MlpLstmPolicy", {"lstm_hidden_size": args.hidden}
    else:
        from rlmem.sb3 import CorePolicy

        policy, kwargs = CorePolicy, {"core": core, "core_options": {"hidden_size": args.hidden}}
    model = RecurrentPPO(policy, venv, n_steps=args.n_steps, batch_size=args.batch_size,
                         n_epochs=args.n_epochs, learning_rate=3e-4, seed=0, device="cpu", policy_kwargs=kwargs)
    per_iter = args.n_envs * args.n_steps
    model.learn(per_iter)  # warm-up iteration, not timed
    start = time.perf_counter()
    model.learn(args.steps, reset_num_timesteps=False)
    return args.steps / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="repeat-previous")
    p.add_argument("--n-envs", type=int, default=8)
    p.add_argument("--n-steps", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--n-epochs", type=int, default=10)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--embed", type=int, default=128, help="rlmem embedding width fed to the core (its default)")
    p.add_argument("--seq-len", type=int, default=16)
    p.add_argument("--steps", type=int, default=8192, help="timed env steps, the same for every trainer")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--system-malloc", action="store_true",
                   help="leave glibc's malloc thresholds as they are (default: keep freed memory, as rlmem.train does)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    kept = not args.system_malloc and keep_freed_memory()  # for every trainer measured

    rows = [("sb3-contrib RecurrentPPO (MlpLstmPolicy)", time_sb3(args, None)),
            ("RecurrentPPO + rlmem CorePolicy(core=lstm)", time_sb3(args, "lstm")),
            ("RecurrentPPO + rlmem CorePolicy(core=gru)", time_sb3(args, "gru")),
            ("rlmem PPO + lstm", time_rlmem(args, "lstm")),
            ("rlmem PPO + gru", time_rlmem(args, "gru"))]
    print(f"\nenv={args.env} n_envs={args.n_envs} n_steps={args.n_steps} batch_size={args.batch_size} "
          f"n_epochs={args.n_epochs} hidden={args.hidden} threads={args.threads} rlmem seq_len={args.seq_len} "
          f"timed steps={args.steps} keep_freed_memory={kept}")
    print(f"| {'trainer':<44} | {'env-steps/s':>11} | {'ratio':>6} |")
    print(f"|{'-' * 46}|{'-' * 13}|{'-' * 8}|")
    peer = rows[0][1]
    for name, fps in rows:
        print(f"| {name:<44} | {fps:>11.0f} | {fps / peer:>6.2f} |")


if __name__ == "__main__":
    main()
