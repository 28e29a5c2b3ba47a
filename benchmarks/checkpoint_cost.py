"""What trustworthy runs cost: the NaN guard and periodic checkpoints against PPO + GRU throughput.

One process, one thread, the default PPO config on repeat-previous (64 envs x 64 steps, batch 1024,
4 epochs, GRU 128). Rounds alternate (in alternating order) a trainer with the guard and one without it (a no-op guard)
over the same number of iterations; a checkpoint of the run (parameters, optimizer, every random
generator, the acting carry and the env state) is timed on its own and set against the default
interval (``checkpoint_every_minutes``) and against one checkpoint per iteration (the worst case).

    python benchmarks/checkpoint_cost.py
    python benchmarks/checkpoint_cost.py --rounds 5 --iterations 8
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from rlmem.allocator import keep_freed_memory


class NoGuard:
    """Stands in for agents.base.FiniteGuard: records and checks nothing."""

    def record(self, loss, grad_norm) -> None:
        pass

    def check(self, named_parameters, env_step, update) -> None:
        pass


def make_agent(args):
    from rlmem.agents import PPO
    from rlmem.envs import make_batched
    from rlmem.policy import RecurrentActorCritic

    env = make_batched("repeat-previous", args.n_envs, seed=0)
    torch.manual_seed(0)
    policy = RecurrentActorCritic(env.single_observation_space, env.single_action_space, "gru",
                                  {"hidden_size": args.hidden}, embed_size=128)
    return PPO(env, policy, n_steps=args.n_steps, batch_size=args.batch_size, n_epochs=4, seq_len=16,
               learning_rate=1e-3)


def timed_iterations(agent, n: int) -> float:
    """Env steps per second over ``n`` more iterations."""
    start, steps = time.perf_counter(), agent.num_timesteps
    agent.learn(steps + n * agent.n_envs * agent.n_steps)
    return (agent.num_timesteps - steps) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=6, help="iterations per trainer and round")
    parser.add_argument("--n-envs", type=int, default=64)
    parser.add_argument("--n-steps", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--saves", type=int, default=20, help="checkpoints timed")
    parser.add_argument("--interval-minutes", type=float, default=5.0, help="the default checkpoint interval")
    args = parser.parse_args()
    torch.set_num_threads(1)
    keep_freed_memory()
    from rlmem.checkpoint import save_checkpoint

    guarded, unguarded = make_agent(args), make_agent(args)
    unguarded.guard = NoGuard()
    for agent in (guarded, unguarded):
        timed_iterations(agent, 1)  # warm-up
    fps = {"guard": [], "none": []}
    for r in range(args.rounds):  # the order alternates too, so neither trainer always runs first
        order = [("guard", guarded), ("none", unguarded)]
        for name, agent in order if r % 2 == 0 else order[::-1]:
            fps[name].append(timed_iterations(agent, args.iterations))
    iteration_s = args.n_envs * args.n_steps / statistics.median(fps["guard"])

    # the guard's own work in one update, timed directly: a record per gradient step, one check
    from rlmem.agents.base import FiniteGuard

    n_steps_per_update = 4 * (args.n_envs * args.n_steps // args.batch_size)
    loss, norm = torch.tensor(1.0), torch.tensor(1.0)
    guard, reps = FiniteGuard(), 200
    t0 = time.perf_counter()
    for _ in range(reps):
        for _ in range(n_steps_per_update):
            guard.record(loss, norm)
        guard.check(guarded.policy.named_parameters(), 0, 0)
    guard_s = (time.perf_counter() - t0) / reps

    saves = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.pt"
        for _ in range(args.saves):
            t0 = time.perf_counter()
            save_checkpoint(path, guarded.policy, "ppo", guarded.state_dict(), env_state=guarded.env.state_dict())
            saves.append(time.perf_counter() - t0)
        size = path.stat().st_size
    save_s = statistics.median(saves)

    print(f"PPO + GRU {args.hidden}, repeat-previous, {args.n_envs} envs x {args.n_steps} steps, batch "
          f"{args.batch_size}, 4 epochs, 1 thread; {args.rounds} alternating rounds of {args.iterations} iterations")
    print()
    print("| trainer | env-steps/s (median) | rounds |")
    print("|---|---:|---|")
    for name, label in (("none", "no NaN guard"), ("guard", "NaN guard (default)")):
        print(f"| {label} | {statistics.median(fps[name]):,.0f} | {', '.join(f'{v:,.0f}' for v in fps[name])} |")
    ratio = statistics.median(fps["guard"]) / statistics.median(fps["none"])
    print(f"\nguard / no guard: {ratio:.3f} ({100 * (1 - ratio):+.1f}% cost, within the rounds' spread)")
    print(f"the guard's own work per update ({n_steps_per_update} records + 1 check), timed alone: "
          f"{1e3 * guard_s:.3f} ms = {100 * guard_s / iteration_s:.3f}% of an iteration")
    print(f"\none checkpoint: {1000 * save_s:.1f} ms median (min {1000 * min(saves):.1f}, max {1000 * max(saves):.1f}), "
          f"{size / 1e6:.2f} MB; an iteration takes {iteration_s:.2f} s")
    print(f"every {args.interval_minutes:g} minutes (default): {100 * save_s / (60 * args.interval_minutes):.4f}% of "
          f"training time; every iteration (worst case): {100 * save_s / iteration_s:.2f}%")


if __name__ == "__main__":
    main()
