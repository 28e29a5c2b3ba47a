"""POPGym tasks x cores: POPGym's MMER, the final and greedy returns, steps and wall time to 0.9.

Each row is one ``python -m rlmem.train`` run (sequentially, one after the other) whose figures
are read from its run directory (progress.csv, summary.json):

- MMER: POPGym's "max mean episode return", here the running maximum of the training return
  (the mean of the last 100 episodes, returns in [-1, 1]);
- final: the training return at the end; eval: the greedy return over the run's eval episodes;
- steps / s to 0.9: the first env step (and training seconds) at which the training return reached 0.9;
- env-steps/s: the run's own figure (training time only).

    python benchmarks/popgym_suite.py                                    # every task, seed 0
    python benchmarks/popgym_suite.py --tasks RepeatPreviousMedium --seeds 0,1,2
    python benchmarks/popgym_suite.py --tasks CountRecallEasy --cores counts,gru --seeds 0,1,2
    python benchmarks/popgym_suite.py --tasks CountRecallEasy --cores tmm -- core.slots=64   # extra overrides
    python benchmarks/popgym_suite.py --summarize outputs/popgym_suite/2026-12-02_05-00-00  # existing runs

A row uses the task's experiment config (``configs/experiment/popgym-<task>.yaml``, ``python -m
rlmem.train +experiment=...``) when that config's core is the row's core (its agent and budget
too); every other row is ``env=gym env.id=popgym:popgym-<Task>-v0`` with the core's and PPO's
defaults. Runs stop at ``--steps`` env steps (default: the experiment's budget, else POPGym's 15M)
or once the training return reaches 0.95.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rlmem.runs import find_run_dirs, read_progress  # noqa: E402
from rlmem.validation import ConfigError  # noqa: E402

TASKS = ("RepeatPreviousMedium", "RepeatPreviousHard", "CountRecallEasy", "CountRecallMedium", "AutoencodeEasy")
#: POPGym's paper (PPO, 15M steps; a third-party copy of its table, approximate): (GRU, best of its 13 models)
PUBLISHED = {"RepeatPreviousMedium": (-0.32, "0.79 (LMU)"), "RepeatPreviousHard": (-0.43, "0.19 (LMU)"),
             "CountRecallEasy": (0.18, "0.51 (LSTM)"), "CountRecallMedium": (-0.53, "-0.52"),
             "AutoencodeEasy": (-0.28, "-0.28")}


def experiment_name(task: str) -> str:
    """``RepeatPreviousMedium`` -> ``popgym-repeat-previous-medium``."""
    return "popgym-" + re.sub(r"(?<!^)(?=[A-Z])", "-", task).lower()


def experiment_core(path: Path) -> str | None:
    """The core an experiment config chooses (its ``override /core: NAME`` line)."""
    found = re.search(r"^\s*-\s*override /core:\s*(\S+)", path.read_text(), re.MULTILINE) if path.exists() else None
    return found.group(1) if found else None


def run_overrides(task: str, core: str, steps: int | None) -> list[str]:
    """The overrides of one row: the task's experiment config when it is for ``core``, else the
    core's defaults; ``steps`` (None: the experiment's own budget, else 15M)."""
    experiment = experiment_name(task)
    if experiment_core(ROOT / "configs" / "experiment" / f"{experiment}.yaml") == core:
        return [f"+experiment={experiment}"] + ([f"total_steps={steps}"] if steps else [])
    return ["env=gym", f"env.id=popgym:popgym-{task}-v0", f"core={core}", "stop_return=0.95",
            f"total_steps={steps or 15_000_000}"]


def first_crossing(steps, wall, values, target: float) -> tuple[int | None, float | None]:
    hit = (values >= target).nonzero()[0]
    return (int(steps[hit[0]]), float(wall[hit[0]])) if hit.size else (None, None)


def summarize_run(run_dir: Path) -> dict:
    """The figures of one finished (or stopped) run directory."""
    steps, wall, values = read_progress(run_dir / "progress.csv")
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    at, seconds = first_crossing(steps, wall, values, 0.9)
    return {"run": run_dir.name, "agent": summary.get("agent"), "mmer": float(values.max()), "final": float(values[-1]),
            "eval": summary.get("eval_return_mean"), "steps_to_0.9": at, "s_to_0.9": seconds,
            "steps": int(steps[-1]), "fps": summary.get("fps")}


def label_of(run_dir: Path) -> str:
    """``<task>_<core>_seed<N>`` -> ``<task> <core>``."""
    return " ".join(run_dir.name.rsplit("_seed", 1)[0].split("_", 1))


def print_tables(rows: list[tuple[str, dict]]) -> None:
    fmt = lambda v, spec="{:,}": "-" if v is None else spec.format(v)  # noqa: E731
    print("\n| task | core | agent | run | MMER | final | eval | steps to 0.9 | s to 0.9 | steps | env-steps/s |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, r in rows:
        task, core = label.split(" ", 1)
        print(f"| {task} | {core} | {r.get('agent') or '-'} | {r['run']} | {r['mmer']:.3f} | {r['final']:.3f} | {fmt(r['eval'], '{:.3f}')} | "
              f"{fmt(r['steps_to_0.9'])} | {fmt(r['s_to_0.9'], '{:.0f}')} | {r['steps']:,} | {fmt(r['fps'], '{:,.0f}')} |")
    groups: dict[str, list[dict]] = {}
    for label, r in rows:
        groups.setdefault(label, []).append(r)
    print("\n| task | core | seeds | MMER (median) | reached 0.9 | median steps to 0.9 | median s to 0.9 | POPGym GRU | POPGym best |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for label, runs in groups.items():
        task, core = label.split(" ", 1)
        reached = [r for r in runs if r["steps_to_0.9"] is not None]
        steps = statistics.median(r["steps_to_0.9"] for r in reached) if reached else None
        secs = statistics.median(r["s_to_0.9"] for r in reached) if reached else None
        gru, best = PUBLISHED.get(task, (None, "-"))
        print(f"| {task} | {core} | {len(runs)} | {statistics.median(r['mmer'] for r in runs):.3f} | "
              f"{len(reached)}/{len(runs)} | {fmt(steps, '{:,.0f}')} | {fmt(secs, '{:.0f}')} | {fmt(gru, '{:.2f}')} | {best} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"POPGym task names ({', '.join(TASKS)}, or others)")
    parser.add_argument("--cores", default="tmm,counts,gru")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--steps", type=int, default=None,
                        help="env steps per run at most (default: the experiment config's, else 15M)")
    parser.add_argument("--out", type=Path, default=None, help="directory for the runs (default outputs/popgym_suite/<time>)")
    parser.add_argument("--summarize", nargs="+", type=Path, default=None,
                        help="run directories (or directories holding them) to tabulate instead of running")
    parser.add_argument("overrides", nargs="*", help="extra overrides for every run (after --)")
    args = parser.parse_args()
    if args.summarize:
        try:
            dirs = find_run_dirs(args.summarize)
        except ConfigError as err:
            sys.exit(f"error: {err}")
        print_tables([(label_of(d), summarize_run(d)) for d in dirs])
        return
    out = args.out or ROOT / "outputs" / "popgym_suite" / time.strftime("%Y-%m-%d_%H-%M-%S")
    rows = []
    for task in args.tasks.split(","):
        for core in args.cores.split(","):
            for seed in args.seeds.split(","):
                run_dir = out / f"{task}_{core}_seed{seed}"
                cmd = [sys.executable, "-m", "rlmem.train", *run_overrides(task, core, args.steps), f"seed={seed}",
                       "progress=false", f"hydra.run.dir={run_dir}", *args.overrides]
                print(" ".join(cmd[1:]), flush=True)
                done = subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True)
                if done.returncode != 0:
                    sys.exit(f"error: run {run_dir.name} failed: {done.stderr.strip().splitlines()[-1:]}")
                rows.append((f"{task} {core}", summarize_run(run_dir)))
                r = rows[-1][1]
                print(f"  MMER {r['mmer']:.3f}, steps to 0.9 {r['steps_to_0.9']}, {r['steps']:,} steps", flush=True)
    print_tables(rows)


if __name__ == "__main__":
    main()
