"""DQN env-steps/s with the split between acting (env + network + replay writes) and learning
(sampling + gradient steps), for the default ``agent=dqn`` config or overrides of it.

    python benchmarks/dqn_speed.py                          # gru on repeat-previous, 64 envs
    python benchmarks/dqn_speed.py --core tmm --env t-maze
    python benchmarks/dqn_speed.py --core tape --env gym env.id=popgym:popgym-AutoencodeEasy-v0 --store-every-row
"""

from __future__ import annotations

import argparse
import time

import torch

from rlmem.allocator import keep_freed_memory


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--core", default="gru")
    p.add_argument("--env", default="repeat-previous")
    p.add_argument("--iterations", type=int, default=20, help="timed iterations (>= 1000 env steps each)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--store-every-row", action="store_true",
                   help="keep the core state of every row in the buffer even where the core's state follows "
                        "from its inputs (counts, tape), instead of one per sequence, rebuilt per row")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. agent.train_freq=4")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    from rlmem.overrides import compose_config
    from rlmem.train import build_agent, build_env, policy_kwargs
    from rlmem.agents import AGENTS
    from rlmem.cores import CORES

    if args.store_every_row:
        CORES[args.core].state_from_inputs = False

    cfg = compose_config(["agent=dqn", f"core={args.core}", f"env={args.env}", *args.overrides])
    env = build_env(cfg.env, 0)
    torch.manual_seed(0)
    net = AGENTS["dqn"].network_class(**policy_kwargs(cfg, env))
    agent = build_agent(cfg, env, net, torch.device("cpu"))
    agent.total_steps = 10**7
    acting = learning = 0.0
    collect, train_step = agent.collect, agent.train_step

    def timed_collect(n):
        nonlocal acting
        t0 = time.perf_counter()
        collect(n)
        acting += time.perf_counter() - t0

    def timed_train_step():
        nonlocal learning
        t0 = time.perf_counter()
        out = train_step()
        learning += time.perf_counter() - t0
        return out

    # fill past learning_starts untimed, then time whole iterations
    while not agent.can_learn():
        agent.collect(agent.train_freq)
    agent.collect, agent.train_step = timed_collect, timed_train_step
    steps, updates, start = agent.num_timesteps, agent.n_updates, time.perf_counter()
    for _ in range(args.iterations):
        agent.train_iteration()
    wall = time.perf_counter() - start
    env_steps, grad_steps = agent.num_timesteps - steps, agent.n_updates - updates
    a = cfg.agent
    print(f"DQN + {args.core}, {args.env}, {cfg.env.n_envs} envs, batch {a.batch_size} sequences x {a.seq_len} rows "
          f"(burn-in {agent.burn_in}), train_freq {a.train_freq}, gradient_steps {a.gradient_steps}, "
          f"{args.threads} thread(s), core state stored "
          f"{'per row' if agent.buffer.per_row_state else 'per sequence'}, "
          f"{agent.buffer.storage_bytes() / 2**20:,.0f} MiB of replay storage")
    print()
    print("| env-steps/s | gradient steps/s | acting s per 1k env steps | learning s per gradient step | acting share |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {env_steps / wall:,.0f} | {grad_steps / wall:.1f} | {1000 * acting / env_steps:.3f} | "
          f"{learning / max(grad_steps, 1):.4f} | {acting / wall:.0%} |")


if __name__ == "__main__":
    main()
