"""Training cost per env step of compiled notation cores against the hand-written cores, in one process.

For each core, at the same hidden size and with the default PPO and env configs: one rollout
(``collect_rollout``: n_envs x n_steps env steps, the core called with T = 1 each step), one
update (``update``: the epochs over the rollout in chunks of ``agent.seq_len``), and the core alone
(forward and backward over one chunk ``[seq_len, batch, embed]``). Each is timed after an untimed
warm-up, round-robin over the cores, median of ``--repeats``.

    python benchmarks/notation_speed.py                      # gru, gated, notation gru_textbook and gated; hidden 128
    python benchmarks/notation_speed.py --hidden 256 --repeats 9 --cores gru,gated,notation:gru_textbook
    python benchmarks/notation_speed.py --hidden 8 --repeats 1 -- agent.n_steps=16 env.n_envs=8   # a smoke run

``notation:SPEC`` is ``core=notation core.spec=SPEC``. The ratios in the last columns divide a
core's rollout + update time by that of ``gated`` (the other core defined step by step) and ``gru``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rlmem.allocator import keep_freed_memory


def core_overrides(name: str, hidden: int) -> list[str]:
    if name.startswith("notation:"):
        return ["core=notation", f"core.spec={name.split(':', 1)[1]}", f"core.hidden_size={hidden}"]
    return [f"core={name}", f"core.hidden_size={hidden}"]


def build(name: str, args):
    from rlmem.agents import AGENTS
    from rlmem.cores import Core
    from rlmem.overrides import compose_config
    from rlmem.train import build_agent, build_env, policy_kwargs

    cfg = compose_config(["agent=ppo", f"env={args.env}", *core_overrides(name, args.hidden), *args.overrides])
    env = build_env(cfg.env, 0)
    torch.manual_seed(0)
    policy = AGENTS["ppo"].network_class(**policy_kwargs(cfg, env))
    agent = build_agent(cfg, env, policy, torch.device("cpu"))
    core = next(m for m in policy.modules() if isinstance(m, Core))
    chunk = torch.randn(int(cfg.agent.seq_len), args.chunk_batch, core.input_size)
    starts = torch.zeros(chunk.shape[:2], dtype=torch.bool)
    starts[0] = True
    return agent, core, chunk, starts


def time_core(core, chunk, starts) -> float:
    core.zero_grad(set_to_none=True)
    start = time.perf_counter()
    y, _, _ = core(chunk, core.initial_state(chunk.shape[1]), starts, need_state=False)
    y.square().mean().backward()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cores", default="gru,gated,notation:gru_textbook,notation:gated")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--env", default="repeat-previous")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--chunk-batch", type=int, default=64, help="batch of the core-alone chunk")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("overrides", nargs="*", help="config overrides for every core, e.g. agent.n_steps=128")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    names = args.cores.split(",")
    setups = {n: build(n, args) for n in names}
    times = {n: {"rollout": [], "update": [], "core": []} for n in names}
    for n, (agent, core, chunk, starts) in setups.items():  # warm-up
        agent.collect_rollout()
        agent.update()
        time_core(core, chunk, starts)
    for _ in range(args.repeats):
        for n, (agent, core, chunk, starts) in setups.items():
            t0 = time.perf_counter()
            agent.collect_rollout()
            t1 = time.perf_counter()
            agent.update()
            t2 = time.perf_counter()
            times[n]["rollout"].append(t1 - t0)
            times[n]["update"].append(t2 - t1)
            times[n]["core"].append(time_core(core, chunk, starts))
    med = {n: {k: statistics.median(v) for k, v in t.items()} for n, t in times.items()}
    agent0 = setups[names[0]][0]
    steps = agent0.n_steps * agent0.n_envs
    base = {ref: med[ref]["rollout"] + med[ref]["update"] for ref in ("gated", "gru") if ref in med}
    print(f"hidden {args.hidden}, env {args.env}, {steps} env steps per rollout, threads {args.threads}, "
          f"median of {args.repeats}")
    cols = ["core", "rollout ms", "update ms", "us / env step", "core chunk fwd+bwd ms", *(f"x {r}" for r in base)]
    print("| " + " | ".join(cols) + " |")
    print("|---|" + "|".join("---:" for _ in cols[1:]) + "|")
    for n in names:
        m = med[n]
        total = m["rollout"] + m["update"]
        ratios = [f"{total / base[r]:.2f}" for r in base]
        print(f"| {n} | {1e3 * m['rollout']:.1f} | {1e3 * m['update']:.1f} | {1e6 * total / steps:.1f} | "
              f"{1e3 * m['core']:.2f} | " + " | ".join(ratios) + " |")


if __name__ == "__main__":
    main()
