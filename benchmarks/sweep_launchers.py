"""Wall-clock time of one sweep through Hydra's launchers: the same 4 runs (PPO, gru, t-maze,
seeds 0-3, one torch thread each) one after another with the basic launcher, then as parallel
jobs through the Ray launcher (a local cluster of this machine's CPUs, on 127.0.0.1 only).

Each sweep is the command a user types, timed from start to exit (Ray's start-up included);
every job must finish with its summary.json. The default size takes the serial sweep about
2-3 minutes on a 2-core machine.

    python benchmarks/sweep_launchers.py                                   # total_steps=700000
    python benchmarks/sweep_launchers.py --launchers basic,ray,joblib --total-steps 20000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def sweep_command(launcher: str, args, sweep_dir: Path) -> list[str]:
    cmd = [sys.executable, "-m", "rlmem.train", "-m", f"hydra/launcher={launcher}", f"core={args.core}",
           f"seed={args.seeds}", f"env={args.env}", f"total_steps={args.total_steps}", "torch_threads=1",
           "progress=false", f"hydra.sweep.dir={sweep_dir}", *args.overrides]
    return cmd


def run_sweep(launcher: str, args, root: Path) -> dict:
    sweep_dir = root / launcher
    cmd = sweep_command(launcher, args, sweep_dir)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, text=True, capture_output=True)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"the {launcher} sweep failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    summaries = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/summary.json"))]
    expected = len(args.seeds.split(","))
    if len(summaries) != expected or any(s["status"] not in ("finished", "stopped_at_return") for s in summaries):
        sys.exit(f"the {launcher} sweep wrote {len(summaries)} finished runs of {expected} in {sweep_dir}")
    return {"launcher": launcher, "wall_s": wall, "job_wall_s": sum(s["wall_s"] for s in summaries) / len(summaries),
            "command": " ".join(cmd[1:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--launchers", default="basic,ray", help="comma-separated; the first is the ratio's base")
    parser.add_argument("--total-steps", type=int, default=700_000)
    parser.add_argument("--core", default="gru")
    parser.add_argument("--env", default="t-maze")
    parser.add_argument("--seeds", default="0,1,2,3")
    parser.add_argument("--keep", metavar="DIR", help="write the sweeps under DIR and keep them")
    parser.add_argument("overrides", nargs="*", help="more overrides for every job, e.g. eval_episodes=0")
    args = parser.parse_args()

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="rlmem-sweeps-"))
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{len(args.seeds.split(','))} runs: ppo/{args.core}/{args.env}, total_steps={args.total_steps}, "
          f"torch_threads=1, {cpus} CPUs", flush=True)
    try:
        rows = []
        for launcher in args.launchers.split(","):
            row = run_sweep(launcher, args, root)
            print(f"  {launcher}: {row['wall_s']:.1f} s  ({row['command']})", flush=True)
            rows.append(row)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    base = rows[0]["wall_s"]
    print()
    print(f"| launcher | sweep wall s | mean job wall s | ratio ({rows[0]['launcher']} / this) |")
    print("| --- | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['launcher']} | {row['wall_s']:.1f} | {row['job_wall_s']:.1f} | {base / row['wall_s']:.2f} |")


if __name__ == "__main__":
    main()
