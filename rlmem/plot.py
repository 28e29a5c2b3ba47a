"""Learning curves of runs and sweeps in one PNG: the mean over seeds with its spread.

    python -m rlmem.plot multirun/2026-11-23/12-00-00 [more run or sweep dirs] --out cores.png

Runs are grouped by (agent, core, env) (``--group``); each group is drawn as the mean over its
seeds against env steps and against wall time, with the min-max (or +- std) band over the seeds,
one subplot row per env and a dashed line at the optimal return. Seeds log at different steps, so
each run is interpolated linearly onto a common grid; where some seeds have ended (or not yet
started) the mean is over those that remain and is drawn dotted.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .runs import Run, find_run_dirs, load_runs, monotone_wall, read_progress
from .validation import ConfigError

__all__ = ["Curve", "Run", "find_run_dirs", "group_runs", "load_runs", "main", "mean_curve", "monotone_wall",
           "plot_runs", "read_progress", "summary_lines"]

DEFAULT_GROUP = ("agent", "core", "env")
#: Most grid points per curve (the union of the runs' x values is thinned to this many).
MAX_POINTS = 1000
PANEL_SIZE = (6.4, 4.0)  # inches per subplot; at DPI the PNG is 640 x 400 pixels per subplot
DPI = 100
SPREADS = {"minmax": "min-max over seeds", "std": "\u00b1 1 std over seeds"}


@dataclass
class Curve:
    """A group's curve on a grid of G points: ``x`` [G], ``mean``/``low``/``high`` [G] over the
    seeds covering each point, ``n`` [G] how many do, ``total`` the group's number of runs."""

    x: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: np.ndarray
    total: int


def mean_curve(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], grid: np.ndarray | None = None,
               spread: str = "minmax") -> Curve:
    """Interpolate each run (``xs[i]``, ``ys[i]``: [K_i], x increasing) onto ``grid`` [G] (default:
    the union of the x values, thinned to :data:`MAX_POINTS`) and average over the runs whose
    range ``[xs[i][0], xs[i][-1]]`` covers each point; points no run covers are dropped."""
    pairs = [(np.asarray(x, float), np.asarray(y, float)) for x, y in zip(xs, ys)]
    pairs = [(x[np.isfinite(x)], y[np.isfinite(x)]) for x, y in pairs]
    pairs = [(x, y) for x, y in pairs if len(x)]
    if not pairs:
        empty = np.zeros(0)
        return Curve(empty, empty, empty, empty, np.zeros(0, int), 0)
    if grid is None:
        grid = np.unique(np.concatenate([x for x, _ in pairs]))
        if len(grid) > MAX_POINTS:
            grid = np.linspace(grid[0], grid[-1], MAX_POINTS)
    grid = np.asarray(grid, float)
    table = np.full((len(pairs), len(grid)), np.nan)
    for row, (x, y) in zip(table, pairs):
        inside = (grid >= x[0]) & (grid <= x[-1])
        row[inside] = np.interp(grid[inside], x, y)
    n = np.isfinite(table).sum(axis=0)
    keep = n > 0
    table, grid, n = table[:, keep], grid[keep], n[keep]
    mean = np.nanmean(table, axis=0)
    if spread == "std":
        std = np.nanstd(table, axis=0)
        low, high = mean - std, mean + std
    else:
        low, high = np.nanmin(table, axis=0), np.nanmax(table, axis=0)
    return Curve(grid, mean, low, high, n, len(pairs))


def smooth(values: np.ndarray, n: int) -> np.ndarray:
    """Trailing mean over the last ``n`` rows (fewer at the start) of ``values`` [K]."""
    if n <= 1 or len(values) == 0:
        return values
    csum = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    start = np.maximum(idx - n, 0)
    return (csum[idx] - csum[start]) / (idx - start)


def group_runs(runs: Sequence[Run], keys: Sequence[str] = DEFAULT_GROUP) -> dict[tuple[str, ...], list[Run]]:
    """Runs by the values of ``keys`` (``"?"`` where a run lacks one), in the order the runs come."""
    for key in keys:
        if all(r.label(key) is None for r in runs):
            known = sorted({*runs[0].labels, *_flat_keys(runs[0].config)}) if runs else []
            raise ConfigError(f"unknown --group key {key!r}: no run has it in summary.json or .hydra/config.yaml "
                              f"(keys: {', '.join(known)})")
    groups: dict[tuple[str, ...], list[Run]] = {}
    for run in runs:
        groups.setdefault(tuple(run.label(k) or "?" for k in keys), []).append(run)
    return groups


def summary_lines(groups: dict[tuple[str, ...], list[Run]]) -> list[str]:
    """One line per group: its key, seeds, the mean over seeds of each run's final value (and their
    range) and the final env steps."""
    lines = []
    for key, runs in groups.items():
        finals = np.array([r.values[-1] for r in runs])
        last = sorted({int(r.steps[-1]) for r in runs})
        steps = f"{last[0]:,}" if len(last) == 1 else f"{last[0]:,}-{last[-1]:,}"
        metric = runs[0].metric
        spread = f" ({finals.min():.3f} to {finals.max():.3f})" if len(runs) > 1 else ""
        lines.append(f"{' '.join(key)}: {_seeds(len(runs))}, final {metric} {finals.mean():.3f}{spread}, "
                     f"{steps} steps")
    return lines


def plot_runs(runs: Sequence[Run], out: str | Path, x: str = "both", group: Sequence[str] = DEFAULT_GROUP,
              title: str | None = None, smoothing: int = 1, spread: str = "minmax") -> Path:
    """Draw the groups of ``runs`` to ``out`` (a PNG, or any format matplotlib writes by suffix):
    one row per env, a column for env steps and/or wall time (``x``: steps, time or both); each
    figure cell is 640 x 400 pixels. Returns the path written."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import EngFormatter

    if not runs:
        raise ConfigError("no runs to plot")
    if x not in ("steps", "time", "both"):
        raise ConfigError(f"x={x!r}: choose steps, time or both")
    if spread not in SPREADS:
        raise ConfigError(f"spread={spread!r}: choose {' or '.join(SPREADS)}")
    out = Path(out)
    group = list(group)
    groups = group_runs(runs, group)
    timed = any(np.isfinite(r.wall).any() for r in runs)
    if x == "time" and not timed:
        raise ConfigError("--x time: no run has a time_s column")
    panels = {"steps": ["steps"], "time": ["time"], "both": ["steps", "time"] if timed else ["steps"]}[x]
    env_at = group.index("env") if "env" in group else None
    envs = list(dict.fromkeys(k[env_at] for k in groups)) if env_at is not None else [None]
    shown = _legend_keys(groups, group)
    colors = {}

    fig = Figure(figsize=(PANEL_SIZE[0] * len(panels), PANEL_SIZE[1] * len(envs)), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    if out.suffix.lstrip(".").lower() not in fig.canvas.get_supported_filetypes():
        raise ConfigError(f"--out {out}: unknown image format {out.suffix or '(no suffix)'}; use .png")
    axes = fig.subplots(len(envs), len(panels), squeeze=False)
    wall_scale, wall_unit = _time_unit(max((np.nanmax(r.wall) for r in runs if np.isfinite(r.wall).any()),
                                           default=0.0))
    for row, env in zip(axes, envs):
        in_row = {k: v for k, v in groups.items() if env is None or k[env_at] == env}
        dotted = False
        for ax, panel in zip(row, panels):
            for key, members in in_row.items():
                color = colors.setdefault(key[:env_at] + key[env_at + 1:] if env_at is not None else key,
                                          f"C{len(colors) % 10}")
                xs = [r.steps if panel == "steps" else r.wall / wall_scale for r in members]
                curve = mean_curve(xs, [smooth(r.values, smoothing) for r in members], spread=spread)
                full = np.where(curve.n == curve.total, curve.mean, np.nan)
                label = f"{_legend_label(key, group, shown)} ({_seeds(curve.total)})"
                ax.plot(curve.x, full, color=color, lw=1.8, label=label)
                if (curve.n < curve.total).any():
                    dotted = True
                    ax.plot(curve.x, curve.mean, color=color, lw=1.2, ls=":")
                ax.fill_between(curve.x, curve.low, curve.high, color=color, alpha=0.2, lw=0)
            optimal = sorted({r.optimal for v in in_row.values() for r in v if r.optimal is not None})
            for i, value in enumerate(optimal):
                ax.axhline(value, color="k", ls="--", lw=1, alpha=0.6, label="optimal return" if i == 0 else None)
            ax.set_xlabel("env steps" if panel == "steps" else f"wall time ({wall_unit})")
            ax.set_ylabel(runs[0].metric)
            if panel == "steps":
                ax.xaxis.set_major_formatter(EngFormatter(sep=""))
            ax.grid(alpha=0.3)
            shared = _constant_text(in_row, group, env_at)
            ax.set_title(" ".join(filter(None, [env, f"({shared})" if shared else ""])))
        handles, labels = row[0].get_legend_handles_labels()
        if dotted:
            handles.append(Line2D([], [], color="gray", ls=":"))
            labels.append("fewer seeds remain")
        row[0].legend(handles, labels, title=f"mean, band: {SPREADS[spread]}", fontsize=8, title_fontsize=8,
                      loc="best")
    if title:
        fig.suptitle(title)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)
    return out


def _legend_keys(groups: dict[tuple[str, ...], list[Run]], group: list[str]) -> list[int]:
    """Indices of the group keys that tell groups apart in a legend (not env: that is the row)."""
    candidates = [i for i, k in enumerate(group) if k != "env"]
    varying = [i for i in candidates if len({key[i] for key in groups}) > 1]
    return varying or candidates[-1:] or list(range(len(group)))


def _legend_label(key: tuple[str, ...], group: list[str], shown: list[int]) -> str:
    # a config key only some runs have (core.spec of notation cores) is left out of the others' labels
    parts = [key[i] if group[i] in ("agent", "core", "env") else f"{group[i]}={key[i]}" for i in shown
             if group[i] in ("agent", "core", "env") or key[i] != "?"]
    return " ".join(parts) or "?"


def _constant_text(groups: dict[tuple[str, ...], list[Run]], group: list[str], env_at: int | None) -> str:
    """The group values shared by every group of a row (e.g. the agent), for its title."""
    same = [i for i, k in enumerate(group) if i != env_at and len({key[i] for key in groups}) == 1]
    first = next(iter(groups))
    return ", ".join(first[i] if group[i] in ("agent", "core") else f"{group[i]}={first[i]}" for i in same)


def _time_unit(longest: float) -> tuple[float, str]:
    if longest > 2 * 3600:
        return 3600.0, "h"
    if longest > 10 * 60:
        return 60.0, "min"
    return 1.0, "s"


def _seeds(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def _flat_keys(data: dict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in data.items():
        keys += _flat_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]
    return [k for k in keys if not k.startswith("hydra.")]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, as for every other bad input
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m rlmem.plot RUN_OR_SWEEP_DIR... [--out] [--x] [--group] [--metric] [--title] [--smooth]``."""
    p = _Parser(prog="python -m rlmem.plot", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="RUN_OR_SWEEP_DIR", help="run or sweep directories, or any parent")
    p.add_argument("--out", type=Path, help="the image to write (default: <first dir>/curves.png)")
    p.add_argument("--x", choices=("steps", "time", "both"), default="both", help="x axis: env steps, wall time or both")
    p.add_argument("--group", default=",".join(DEFAULT_GROUP),
                   help="comma-separated keys a line stands for (summary.json or dotted .hydra/config.yaml keys)")
    p.add_argument("--metric", default="return_mean", help="the progress.csv column to draw")
    p.add_argument("--title", help="a title above the figure")
    p.add_argument("--smooth", type=int, default=1, metavar="N", help="trailing mean over N rows of each run")
    p.add_argument("--spread", choices=tuple(SPREADS), default="minmax", help="the band: min-max or +-1 std over seeds")
    args = p.parse_args(argv)
    try:
        group = [k.strip() for k in args.group.split(",") if k.strip()]
        if not group:
            raise ConfigError("--group: give at least one key, e.g. agent,core,env")
        if args.smooth < 1:
            raise ConfigError(f"--smooth {args.smooth}: must be >= 1")
        runs = load_runs(args.paths, args.metric)
        out = args.out
        if out is None:
            first = Path(args.paths[0])
            out = (first.parent if first.is_file() else first) / "curves.png"
        groups = group_runs(runs, group)
        out = plot_runs(runs, out, x=args.x, group=group, title=args.title, smoothing=args.smooth, spread=args.spread)
    except (ConfigError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    for line in summary_lines(groups):
        print(line)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
