"""Steps and wall-clock time until training reaches a fraction of the optimal return.

Runs one Hydra sweep of ``python -m rlmem.train`` over cores x envs x seeds and prints, per run,
the env steps and seconds at which the mean training return (last 100 episodes) first reached
each fraction of the optimal return, and the greedy evaluation return at the end.

    python benchmarks/time_to_solve.py --envs repeat-previous,t-maze,memory-copy --cores gru,mlp
    python benchmarks/time_to_solve.py --summarize multirun/2026-11-23/12-00-00   # an existing sweep
    python benchmarks/time_to_solve.py --cores gru --envs t-maze -- agent.seq_len=32   # extra overrides

A core ``notation:SPEC`` is ``core=notation core.spec=SPEC`` (a built-in spec or a file); such runs are
labelled by their spec:

    python benchmarks/time_to_solve.py --cores gru,notation:gru_textbook --envs repeat-previous --seeds 0,1,2

The last table has one row per core and one column per env: the median steps to the first fraction
over the seeds that reached it. ``stop_return=0.95`` among the overrides ends each run once it has
reached 0.95 of the optimal return of the built-in tasks (1.0), which shortens a sweep.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def first_crossing(rows: list[dict], target: float) -> tuple[int | None, float | None]:
    for r in rows:
        value = r.get("return_mean")
        if value not in (None, "") and float(value) >= target:
            return int(r["step"]), float(r["time_s"])
    return None, None


def core_label(run_dir: Path, core: str) -> str:
    """``notation:SPEC`` for a notation core (its spec read from the run's Hydra config), else the name."""
    cfg_path = run_dir / ".hydra" / "config.yaml"
    if core != "notation" or not cfg_path.is_file():
        return core
    import yaml

    spec = (yaml.safe_load(cfg_path.read_text()).get("core") or {}).get("spec")
    return f"notation:{spec}"


def core_sweeps(cores: str) -> list[list[str]]:
    """The overrides of one sweep for the plain cores and one for the notation specs."""
    names = cores.split(",")
    plain = [c for c in names if not c.startswith("notation:")]
    specs = [c.split(":", 1)[1] for c in names if c.startswith("notation:")]
    sweeps = [[f"core={','.join(plain)}"]] if plain else []
    if specs:
        sweeps.append(["core=notation", f"core.spec={','.join(specs)}"])
    return sweeps


def summarize(sweep_dir: Path, fractions: list[float]) -> list[dict]:
    results = []
    for summary_path in sorted(sweep_dir.glob("**/summary.json")):
        summary = json.loads(summary_path.read_text())
        with (summary_path.parent / "progress.csv").open() as f:
            rows = list(csv.DictReader(f))
        optimal = summary.get("optimal_return") or 1.0
        row = {k: summary[k] for k in ("env", "core", "agent", "seed", "env_steps", "fps", "return_mean",
                                       "eval_return_mean", "wall_s")}
        row["core"] = core_label(summary_path.parent, row["core"])
        row["run"] = summary_path.parent.name
        for frac in fractions:
            row[f"steps@{frac}"], row[f"time@{frac}"] = first_crossing(rows, frac * optimal)
        results.append(row)
    return results


def print_table(results: list[dict], fractions: list[float]) -> None:
    cols = ["env", "core", "seed"] + [c for f in fractions for c in (f"steps@{f}", f"time@{f}")] + [
        "return_mean", "eval_return_mean", "env_steps", "fps"]

    def fmt(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 10 else f"{v:.0f}"
        return str(v)

    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" for _ in cols) + "|")
    for r in sorted(results, key=lambda r: (r["env"], r["core"], r["seed"])):
        print("| " + " | ".join(fmt(r[c]) for c in cols) + " |")


def print_core_table(results: list[dict], fraction: float) -> None:
    """One row per core, one column per env: median steps to ``fraction`` of optimal over the seeds that
    reached it, and how many seeds did."""
    envs = sorted({r["env"] for r in results})
    cores = list(dict.fromkeys(r["core"] for r in results))
    print(f"\nsteps to {fraction} of the optimal return (median over seeds that reached it; reached/seeds)")
    print("| core | " + " | ".join(envs) + " |")
    print("|---|" + "|".join("---:" for _ in envs) + "|")
    for core in cores:
        cells = []
        for env in envs:
            runs = [r for r in results if r["core"] == core and r["env"] == env]
            steps = sorted(r[f"steps@{fraction}"] for r in runs if r[f"steps@{fraction}"] is not None)
            median = f"{statistics.median(steps):,.0f}" if steps else "-"
            cells.append(f"{median} ({len(steps)}/{len(runs)})")
        print(f"| {core} | " + " | ".join(cells) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", default="repeat-previous,t-maze,memory-copy")
    p.add_argument("--cores", default="gru,mlp")
    p.add_argument("--seeds", default="0")
    p.add_argument("--agent", default="ppo")
    p.add_argument("--total-steps", type=int, default=1_000_000)
    p.add_argument("--fractions", default="0.9,0.95")
    p.add_argument("--summarize", type=Path, help="only summarize an existing sweep directory")
    p.add_argument("--sweep-dir", type=Path, help="where the sweep writes its runs (default: multirun/solve-<time>)")
    p.add_argument("overrides", nargs="*", help="extra overrides passed to every run")
    args = p.parse_args()
    fractions = [float(f) for f in args.fractions.split(",")]
    sweep_dir = args.summarize
    if sweep_dir is None:
        sweep_dir = args.sweep_dir or Path("multirun") / time.strftime("solve-%Y-%m-%d-%H-%M-%S")
        for cores in core_sweeps(args.cores):
            cmd = [sys.executable, "-m", "rlmem.train", "-m", f"agent={args.agent}", *cores,
                   f"env={args.envs}", f"seed={args.seeds}", f"total_steps={args.total_steps}", "progress=false",
                   "checkpoint=false", f"hydra.sweep.dir={sweep_dir}", *args.overrides]
            print("$", " ".join(cmd), flush=True)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    results = summarize(sweep_dir, fractions)
    print_table(results, fractions)
    print_core_table(results, fractions[0])


if __name__ == "__main__":
    main()
