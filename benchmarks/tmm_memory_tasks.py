"""Long-memory figures of the token memory machine: PPO + tmm against recurrent baselines.

Each row is one training run through the training entry (the same as
``python -m rlmem.train <overrides>``), evaluated greedily on 100 fresh episodes; the table
reports the fraction of the optimal return (1.0 on every built-in task), the steps, and the wall
time. Runs go one after another on one thread; the full set takes about an hour on one CPU core.

    python benchmarks/tmm_memory_tasks.py                      # every run
    python benchmarks/tmm_memory_tasks.py --only t-maze-tmm    # one of them (see --list)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

# t-maze, corridor 1000: the cue is shown 1001 steps before the junction. Episodes of all copies
# run in lockstep, so rollouts are long enough to hold junction decisions often.
T_MAZE = ["agent=ppo", "env=t-maze", "env.corridor=1000", "total_steps=5000000", "agent.n_steps=128",
          "agent.batch_size=2048", "agent.n_epochs=2", "agent.learning_rate=0.003", "agent.gamma=0.999"]
# surprise-recall: 200 stream steps with 3 rare tokens, then 3 queries; narrower nets, more steps.
SURPRISE = ["agent=ppo", "env=surprise-recall", "total_steps=4000000", "policy.embed_size=64",
            "agent.batch_size=2048", "agent.n_epochs=4", "agent.learning_rate=0.002"]

RUNS: dict[str, list[str]] = {
    "t-maze-tmm": T_MAZE + ["core=tmm"],
    "t-maze-gru": T_MAZE + ["core=gru", "agent.seq_len=64"],
    "surprise-recall-tmm": SURPRISE + ["core=tmm", "core.hidden_size=64", "agent.n_steps=203"],
    "surprise-recall-gru": SURPRISE + ["core=gru", "core.hidden_size=64", "agent.n_steps=256", "agent.seq_len=64"],
    "surprise-recall-lstm": SURPRISE + ["core=lstm", "core.hidden_size=64", "agent.n_steps=256",
                                        "agent.seq_len=64"],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", action="append", choices=sorted(RUNS), help="run only these (repeatable)")
    p.add_argument("--list", action="store_true", help="print the runs and their overrides")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="folder for the run directories (default: a temporary one)")
    args = p.parse_args()
    if args.list:
        for name, overrides in RUNS.items():
            print(f"{name}: python -m rlmem.train {' '.join(overrides)}")
        return

    from rlmem.train import train

    out = Path(args.out or tempfile.mkdtemp(prefix="tmm_memory_tasks_"))
    rows = []
    for name in args.only or list(RUNS):
        overrides = RUNS[name] + [f"seed={args.seed}", "progress=false", "checkpoint=false"]
        start = time.perf_counter()
        summary = train(overrides, run_dir=out / name)
        rows.append((name, summary, time.perf_counter() - start))

    print(f"\nseed={args.seed}; run directories under {out}")
    print(f"| {'run':<22} | {'env steps':>10} | {'train return':>12} | {'eval return':>11} | {'env-steps/s':>11} "
          f"| {'wall s':>7} |")
    print(f"|{'-' * 24}|{'-' * 12}|{'-' * 14}|{'-' * 13}|{'-' * 13}|{'-' * 9}|")
    for name, s, wall in rows:
        print(f"| {name:<22} | {s['env_steps']:>10} | {s['return_mean']:>12.2f} | {s['eval_return_mean']:>11.2f} "
              f"| {s['fps']:>11.0f} | {wall:>7.0f} |")


if __name__ == "__main__":
    main()
