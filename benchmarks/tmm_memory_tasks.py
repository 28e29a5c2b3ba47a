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
from pathlib import Path

from time_to_solve import summarize

# t-maze, corridor 1000: the cue is shown 1001 steps before the junction. Episodes of all copies
# run in lockstep, so rollouts at least one episode long (1002 steps; 1024 for the GRU, whose
# n_steps must be a multiple of seq_len) give every update all 64 junction decisions; with shorter
# rollouts most updates see none and train on noise alone.
# Batches divide the rollout (64 envs x n_steps): 2004 = 64128 / 32 for tmm's 1002-step rollouts.
T_MAZE = ["agent=ppo", "env=t-maze", "env.corridor=1000", "total_steps=5000000",
          "agent.n_epochs=2", "agent.learning_rate=0.001", "agent.gamma=0.999"]
# surprise-recall: 200 stream steps with 3 rare tokens, then 3 queries; narrower nets, more steps.
# (1856 = 12992 / 7 for tmm's 203-step rollouts)
SURPRISE = ["agent=ppo", "env=surprise-recall", "total_steps=4000000", "policy.embed_size=64",
            "agent.n_epochs=4", "agent.learning_rate=0.002"]

RUNS: dict[str, list[str]] = {
    "t-maze-tmm": T_MAZE + ["core=tmm", "agent.n_steps=1002", "agent.batch_size=2004"],
    "t-maze-gru": T_MAZE + ["core=gru", "agent.seq_len=64", "agent.n_steps=1024", "agent.batch_size=2048"],
    "surprise-recall-tmm": SURPRISE + ["core=tmm", "core.hidden_size=64", "agent.n_steps=203",
                                       "agent.batch_size=1856"],
    "surprise-recall-gru": SURPRISE + ["core=gru", "core.hidden_size=64", "agent.n_steps=256", "agent.seq_len=64",
                                       "agent.batch_size=2048"],
    "surprise-recall-lstm": SURPRISE + ["core=lstm", "core.hidden_size=64", "agent.n_steps=256",
                                        "agent.seq_len=64", "agent.batch_size=2048"],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", action="append", choices=sorted(RUNS), help="run only these (repeatable)")
    p.add_argument("--list", action="store_true", help="print the runs and their overrides")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="folder for the run directories (default: a temporary one)")
    p.add_argument("--summarize", type=Path, help="only print the table of the runs already in this folder")
    args = p.parse_args()
    if args.list:
        for name, overrides in RUNS.items():
            print(f"{name}: python -m rlmem.train {' '.join(overrides)}")
        return

    if args.summarize:
        print_table(args.summarize)
        return
    from rlmem.train import train

    out = Path(args.out or tempfile.mkdtemp(prefix="tmm_memory_tasks_"))
    for name in args.only or list(RUNS):
        train(RUNS[name] + [f"seed={args.seed}", "progress=false", "checkpoint=false"], run_dir=out / name)
    print(f"\nseed={args.seed}; run directories under {out}")
    print_table(out)


def print_table(out: Path) -> None:
    """One row per run folder under ``out``: steps to 0.9 and 0.95 of the optimal return (training
    return, last 100 episodes), the final training and greedy evaluation returns, speed and time."""
    print("| run | steps to 0.9 | steps to 0.95 | train return | eval return | env steps | env-steps/s | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in sorted(summarize(out, [0.9, 0.95]), key=lambda r: r["run"]):
        cells = [f"{r[k]:,}" if r[k] is not None else "-" for k in ("steps@0.9", "steps@0.95")]
        print(f"| {r['run']} | {cells[0]} | {cells[1]} | {r['return_mean']:.3f} | {r['eval_return_mean']:.3f} "
              f"| {r['env_steps']:,} | {r['fps']:,.0f} | {r['wall_s']:.0f} |")

if __name__ == "__main__":
    main()
