"""What the dashboards cost: PPO + gru env-steps/s with the console logger against ``logger=wandb``
(offline, episode pictures every ``logger.media_every`` env steps) and ``logger=tensorboard``,
timed over the same env steps, runs alternated so that the machine's drift hits every logger.

    python benchmarks/logger_overhead.py                       # 200k steps, 2 rounds
    python benchmarks/logger_overhead.py --steps 100000 --rounds 3 -- logger.media_every=20000

env-steps/s is the run's own ``fps`` (training time only, pictures taken during training included;
the final evaluation and the final pictures after training are not in it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def one_run(logger: str, steps: int, extra: list[str], workdir: Path) -> float:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    run_dir = Path(tempfile.mkdtemp(dir=workdir))
    args = [sys.executable, "-m", "rlmem.train", "agent=ppo", "core=gru", "env=repeat-previous",
            f"logger={logger}", f"total_steps={steps}", "eval_episodes=10", "progress=false",
            "checkpoint_every_minutes=0", f"hydra.run.dir={run_dir}", *extra]
    out = subprocess.run(args, env=env, text=True, capture_output=True, check=True)
    final = [ln for ln in out.stdout.splitlines() if ln.startswith("final: ")][-1]
    return float(json.loads(final[len("final: "):])["fps"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--loggers", default="console,wandb,tensorboard")
    parser.add_argument("overrides", nargs="*", help="extra overrides for every run (after --)")
    args = parser.parse_args()
    loggers = args.loggers.split(",")
    fps: dict[str, list[float]] = {name: [] for name in loggers}
    with tempfile.TemporaryDirectory() as workdir:
        for r in range(args.rounds):
            for name in (loggers if r % 2 == 0 else loggers[::-1]):
                fps[name].append(one_run(name, args.steps, args.overrides, Path(workdir)))
                print(f"round {r} {name}: {fps[name][-1]:.0f} env-steps/s", flush=True)
    base = statistics.median(fps[loggers[0]])
    print(f"\nPPO + gru, repeat-previous, {args.steps} env steps, {args.rounds} rounds (median); "
          f"extra overrides: {' '.join(args.overrides) or 'none'}")
    print("| logger | env-steps/s | runs | ratio |\n|---|---:|---|---:|")
    for name in loggers:
        med = statistics.median(fps[name])
        runs = ", ".join(f"{v:.0f}" for v in fps[name])
        print(f"| {name} | {med:.0f} | {runs} | {med / base:.3f} |")


if __name__ == "__main__":
    main()
