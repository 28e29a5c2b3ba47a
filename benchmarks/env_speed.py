"""Step throughput of the built-in batched envs, with gymnasium's CartPole-v1 as a reference.

Usage::

    python benchmarks/env_speed.py [--num-envs 256] [--steps 2000] [--repeats 5]

Actions are drawn before timing starts, so only ``step()`` is measured. Each row
reports the best of ``--repeats`` runs in env-steps per second (steps x copies).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import gymnasium

from rlmem.envs import BUILTIN_ENVS, make_batched

# (label, short name, parameters); t-maze twice to show that corridor length is free.
CASES: list[tuple[str, str, dict[str, Any]]] = []
for _name in BUILTIN_ENVS:
    if _name == "t-maze":
        CASES.append(("t-maze (corridor 20)", _name, {"corridor": 20}))
        CASES.append(("t-maze (corridor 1000)", _name, {"corridor": 1000}))
    else:
        CASES.append((_name, _name, {}))

ACTION_POOL = 64  # distinct pre-drawn action batches, cycled through


def steps_per_second(env: gymnasium.vector.VectorEnv, steps: int, repeats: int) -> float:
    """Best env-steps/s of ``repeats`` runs of ``steps`` calls to ``env.step``."""
    env.reset(seed=0)
    env.action_space.seed(0)
    pool = [env.action_space.sample() for _ in range(ACTION_POOL)]
    actions = (pool * (steps // ACTION_POOL + 1))[:steps]
    for a in actions[: min(steps, 100)]:  # warm-up
        env.step(a)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for a in actions:
            env.step(a)
        best = min(best, time.perf_counter() - start)
    return steps * env.num_envs / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=256, help="batched copies per env (default 256)")
    parser.add_argument("--steps", type=int, default=2000, help="step() calls per timed run (default 2000)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per env; the best is kept (default 5)")
    parser.add_argument("--peer-steps", type=int, default=200, help="step() calls per run for the CartPole-v1 reference")
    parser.add_argument("--min-rate", type=float, default=2e6, help="flag built-in envs slower than this (env-steps/s)")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 if a built-in env is flagged")
    args = parser.parse_args(argv)

    peer = gymnasium.make_vec(
        "CartPole-v1",
        num_envs=args.num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP},
    )
    peer_rate = steps_per_second(peer, args.peer_steps, args.repeats)
    peer.close()
    # gymnasium's own NumPy-vectorized cart-pole, for comparison with stateless-cartpole.
    native = gymnasium.make_vec("CartPole-v1", num_envs=args.num_envs, vectorization_mode="vector_entry_point")
    native_rate = steps_per_second(native, args.steps, args.repeats)
    native.close()

    header = f"{'env':<26} {'num_envs':>8} {'env-steps/s':>14} {'vs peer':>9}  "
    print(header)
    print("-" * len(header))
    slow = []
    for label, name, params in CASES:
        env = make_batched(name, args.num_envs, **params)
        rate = steps_per_second(env, args.steps, args.repeats)
        flag = "" if rate >= args.min_rate else f"< {args.min_rate:,.0f}"
        if flag:
            slow.append(label)
        print(f"{label:<26} {args.num_envs:>8} {rate:>14,.0f} {rate / peer_rate:>8.1f}x  {flag}")
    print(f"{'CartPole-v1 (sync, peer)':<26} {args.num_envs:>8} {peer_rate:>14,.0f} {1.0:>8.1f}x")
    print(f"{'CartPole-v1 (gym vector)':<26} {args.num_envs:>8} {native_rate:>14,.0f} {native_rate / peer_rate:>8.1f}x")
    if slow:
        print(f"below {args.min_rate:,.0f} env-steps/s: {', '.join(slow)}")
    return 1 if slow and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
