"""Reading finished (or running) training runs back: ``progress.csv`` plus the run's labels.

A run directory is any directory holding a ``progress.csv``; its labels (``agent``, ``core``,
``env``, ``seed`` and any dotted config key such as ``core.hidden_size``) come from
``summary.json`` and ``.hydra/config.yaml``.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import yaml

from .validation import ConfigError

#: Labels every run gets (``"?"`` where neither summary.json nor .hydra/config.yaml names them).
BASE_LABELS = ("agent", "core", "env", "seed")


@dataclass
class Run:
    """One run's learning curve: K rows of ``progress.csv`` where the metric has a finite value.

    ``steps`` [K] env steps (increasing), ``wall`` [K] seconds since the run first started (monotone
    across resumes; NaN without a ``time_s`` column), ``values`` [K] the metric, ``optimal`` the
    env's optimal return from summary.json (None if it gives none).
    """

    path: Path
    labels: dict[str, str]
    steps: np.ndarray
    wall: np.ndarray
    values: np.ndarray
    optimal: float | None = None
    metric: str = "return_mean"
    config: dict[str, Any] = field(default_factory=dict, repr=False)

    def label(self, key: str) -> str | None:
        """The value of ``key`` (``core``, ``seed``, ``agent.learning_rate`` ...) as text, or None."""
        if key in self.labels:
            return self.labels[key]
        value = _dotted(self.config, key)
        return None if value is None else str(value)


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Every directory holding a ``progress.csv`` at or below each path, in the order given and,
    below one path, in natural order (``2_...`` before ``10_...``). A path may also be a
    ``progress.csv`` itself."""
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise ConfigError(f"{path}: no such file or directory")
        if path.is_file():
            if path.name != "progress.csv":
                raise ConfigError(f"{path}: not a run directory, a sweep directory or a progress.csv")
            found.setdefault(path.parent, None)
            continue
        below = sorted((p.parent for p in path.rglob("progress.csv") if p.is_file()), key=_natural_key)
        if not below:
            raise ConfigError(f"{path}: no progress.csv in it or below it")
        for run_dir in below:
            found.setdefault(run_dir, None)
    return list(found)


def load_runs(paths: Iterable[str | Path], metric: str = "return_mean") -> list[Run]:
    """The runs at or below ``paths`` (run directories, sweep directories, any parent), each with
    the rows of ``progress.csv`` where ``metric`` has a value. Raises ConfigError for a missing
    path, a directory without runs, an empty progress.csv or a metric it lacks."""
    runs = []
    for run_dir in find_run_dirs(paths):
        summary, config = _read_json(run_dir / "summary.json"), _read_yaml(run_dir / ".hydra" / "config.yaml")
        steps, wall, values = read_progress(run_dir / "progress.csv", metric)
        labels = {}
        for key in BASE_LABELS:
            value = summary.get(key, _dotted(config, f"{key}.name") if key != "seed" else config.get("seed"))
            labels[key] = "?" if value is None else str(value)
        optimal = summary.get("optimal_return")
        optimal = float(optimal) if isinstance(optimal, (int, float)) and math.isfinite(optimal) else None
        runs.append(Run(run_dir, labels, steps, wall, values, optimal, metric, config))
    return runs


def read_progress(path: Path, metric: str = "return_mean") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(steps [K], wall [K], values [K])`` from one progress.csv: the rows where ``metric`` is a
    finite number, ordered by step (a repeated step keeps its last row)."""
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            columns = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ConfigError(f"{path}: cannot read it ({err})") from None
    if "step" not in columns:
        raise ConfigError(f"{path}: no 'step' column (columns: {', '.join(columns) or 'none'})")
    if metric not in columns:
        available = ", ".join(c for c in columns if c != "step")
        if metric == "return_mean":
            raise ConfigError(f"{path}: no return column 'return_mean' (its columns: {available or 'none'})")
        raise ConfigError(f"unknown --metric {metric!r}: {path} has the columns {available or '(none)'}")
    if not rows:
        raise ConfigError(f"{path}: no rows")
    steps = np.array([_number(r.get("step")) for r in rows])
    wall = monotone_wall(np.array([_number(r.get("time_s")) for r in rows]))
    values = np.array([_number(r.get(metric)) for r in rows])
    keep = np.isfinite(steps) & np.isfinite(values)
    if not keep.any():
        raise ConfigError(f"{path}: no row has a value of {metric!r} ({len(rows)} rows, all empty)")
    steps, wall, values = steps[keep], wall[keep], values[keep]
    # stable sort by step, then the last row of each step
    order = np.argsort(steps, kind="stable")
    steps, wall, values = steps[order], wall[order], values[order]
    last = np.append(steps[1:] != steps[:-1], True)
    return steps[last], wall[last], values[last]


def monotone_wall(time_s: np.ndarray) -> np.ndarray:
    """Seconds since the first start from ``time_s`` [N], which restarts from 0 when a run is
    resumed: where it drops, the previous segment's last time is added to what follows. Missing
    entries (NaN) stay NaN and do not end a segment."""
    wall = np.full_like(time_s, np.nan, dtype=float)
    offset, previous = 0.0, None
    for i, t in enumerate(time_s):
        if not math.isfinite(t):
            continue
        if previous is not None and t < previous:
            offset += previous
        wall[i], previous = offset + t, t
    return wall


def _number(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _dotted(data: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]
