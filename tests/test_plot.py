"""``python -m rlmem.plot``: runs read back, grouped, averaged over seeds and drawn."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rlmem.plot import group_runs, load_runs, mean_curve, monotone_wall, plot_runs, smooth, summary_lines
from rlmem.validation import ConfigError

COLUMNS = ["step", "policy_loss", "episodes", "return_mean", "fps", "time_s"]


def write_run(run_dir: Path, rows: list[tuple], summary: dict | None = None, hydra: str | None = None,
              columns: list[str] = COLUMNS) -> Path:
    """A run directory by hand: ``rows`` of (step, return_mean, time_s), '' for an empty cell."""
    run_dir.mkdir(parents=True)
    with (run_dir / "progress.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for step, ret, t in rows:
            full = {"step": step, "policy_loss": 0.1, "episodes": 8, "return_mean": ret, "fps": 1000.0, "time_s": t}
            writer.writerow([full[c] for c in columns])
    if summary is not None:
        (run_dir / "summary.json").write_text(json.dumps(summary))
    if hydra is not None:
        (run_dir / ".hydra").mkdir()
        (run_dir / ".hydra" / "config.yaml").write_text(hydra)
    return run_dir


def hydra_config(core: str, seed: int, env: str = "t-maze", hidden: int = 64) -> str:
    return (f"seed: {seed}\ntotal_steps: 1000\nagent:\n  name: ppo\n  n_steps: 128\ncore:\n  name: {core}\n"
            f"  hidden_size: {hidden}\nenv:\n  name: {env}\n  corridor: 20\n")


def summary(core: str, seed: int, env: str = "t-maze", optimal: float | None = 1.0) -> dict:
    return {"agent": "ppo", "core": core, "env": env, "seed": seed, "optimal_return": optimal, "status": "finished"}


def linear_rows(n: int, every: int, slope: float, offset: float = 0.0, dt: float = 0.5) -> list[tuple]:
    return [((i + 1) * every, offset + slope * (i + 1) * every, dt * (i + 1)) for i in range(n)]


def make_sweep(root: Path) -> Path:
    """12 jobs as Hydra numbers them: gru seeds 0-2 and tmm seeds 0-2 on t-maze and repeat-previous."""
    num = 0
    for env in ("t-maze", "repeat-previous"):
        for core in ("gru", "tmm"):
            for seed in range(3):
                d = root / f"{num}_ppo_{core}_{env}_seed{seed}"
                write_run(d, linear_rows(10, 100 + 10 * seed, 0.001), hydra=hydra_config(core, seed, env),
                          summary=summary(core, seed, env) if num % 2 else None)  # some only have .hydra
                num += 1
    return root


def test_runs_are_found_below_any_parent_and_grouped_with_their_seeds(tmp_path):
    sweep = make_sweep(tmp_path / "multirun" / "2026-01-01" / "12-00-00")
    runs = load_runs([tmp_path / "multirun"])
    assert len(runs) == 12
    # natural order of the job numbers: 2_ before 10_
    assert [int(r.path.name.split("_")[0]) for r in runs] == list(range(12))
    groups = group_runs(runs)
    assert list(groups) == [("ppo", "gru", "t-maze"), ("ppo", "tmm", "t-maze"),
                            ("ppo", "gru", "repeat-previous"), ("ppo", "tmm", "repeat-previous")]
    assert all(len(v) == 3 for v in groups.values())
    assert [r.labels["seed"] for r in groups[("ppo", "tmm", "t-maze")]] == ["0", "1", "2"]
    # a run dir, a sweep dir and a progress.csv given together: each run once
    again = load_runs([sweep / "0_ppo_gru_t-maze_seed0", sweep, sweep / "1_ppo_gru_t-maze_seed1" / "progress.csv"])
    assert len(again) == 12
    # any dotted key of .hydra/config.yaml groups
    by_seed = group_runs(runs, ["seed"])
    assert {k: len(v) for k, v in by_seed.items()} == {("0",): 4, ("1",): 4, ("2",): 4}
    assert list(group_runs(runs, ["core.hidden_size"])) == [("64",)]
    # a key only some runs have: '?' for the others, left out of their legend labels
    write_run(sweep / "12_ppo_notation_t-maze_seed0", linear_rows(3, 10, 0.1),
              hydra=hydra_config("notation", 0).replace("  hidden_size: 64\n", "  spec: gru_textbook\n"))
    keys = ["agent", "core", "core.spec", "env"]
    mixed = group_runs(load_runs([sweep]), keys)
    assert ("ppo", "gru", "?", "t-maze") in mixed and ("ppo", "notation", "gru_textbook", "t-maze") in mixed
    from rlmem.plot import _legend_keys, _legend_label

    shown = _legend_keys(mixed, keys)
    assert [_legend_label(k, keys, shown) for k in mixed if k[3] == "t-maze"] == [
        "gru", "tmm", "notation core.spec=gru_textbook"]
    with pytest.raises(ConfigError, match="unknown --group key 'cor'.*core.hidden_size"):
        group_runs(runs, ["cor"])


def test_labels_come_from_summary_json_without_hydra(tmp_path):
    write_run(tmp_path / "a", linear_rows(3, 10, 0.1), summary=summary("lstm", 4, optimal=None))
    (run,) = load_runs([tmp_path / "a"])
    assert run.labels == {"agent": "ppo", "core": "lstm", "env": "t-maze", "seed": "4"} and run.optimal is None
    write_run(tmp_path / "b", linear_rows(3, 10, 0.1), summary=summary("gru", 0, optimal=0.5))
    assert load_runs([tmp_path / "b"])[0].optimal == 0.5


def test_empty_returns_are_dropped_and_a_resumed_run_has_monotone_wall_time(tmp_path):
    rows = [(100, "", 1.0), (200, "", 2.0), (300, 0.1, 3.0), (400, 0.2, 4.0),  # checkpoint at 400, then killed
            (500, 0.3, 0.5), (600, "", 1.5), (700, 0.5, 2.5),                   # resumed: time_s from 0
            (800, 0.6, 0.25), (900, 0.7, 1.25)]                                 # resumed again
    write_run(tmp_path / "run", rows, summary=summary("gru", 0))
    (run,) = load_runs([tmp_path / "run"])
    assert run.steps.tolist() == [300, 400, 500, 700, 800, 900]
    assert run.values.tolist() == pytest.approx([0.1, 0.2, 0.3, 0.5, 0.6, 0.7])
    assert run.wall.tolist() == pytest.approx([3.0, 4.0, 4.5, 6.5, 6.75, 7.75])
    assert np.all(np.diff(run.wall) > 0)
    # a missing time does not end a segment
    wall = monotone_wall(np.array([1.0, 2.0, np.nan, 0.5, 1.0]))
    assert wall[[0, 1, 3, 4]].tolist() == [1.0, 2.0, 2.5, 3.0] and np.isnan(wall[2])


def test_the_mean_over_seeds_is_interpolated_at_common_steps():
    a_x, a_y = np.array([0.0, 100.0, 200.0]), np.array([0.0, 1.0, 2.0])
    b_x, b_y = np.array([50.0, 150.0, 250.0]), np.array([10.0, 20.0, 30.0])
    c = mean_curve([a_x, b_x], [a_y, b_y])
    assert c.x.tolist() == [0, 50, 100, 150, 200, 250] and c.total == 2
    assert c.n.tolist() == [1, 2, 2, 2, 2, 1]  # each run counts only over the steps it covers
    # by hand: a at 50, 100, 150, 200 is 0.5, 1, 1.5, 2; b is 10, 15, 20, 25
    assert c.mean.tolist() == pytest.approx([0.0, 5.25, 8.0, 10.75, 13.5, 30.0])
    assert c.low.tolist() == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 30.0])
    assert c.high.tolist() == pytest.approx([0.0, 10.0, 15.0, 20.0, 25.0, 30.0])
    s = mean_curve([a_x, b_x], [a_y, b_y], grid=np.array([100.0]), spread="std")
    assert s.low.tolist() == pytest.approx([8.0 - 7.0]) and s.high.tolist() == pytest.approx([8.0 + 7.0])
    assert smooth(np.array([1.0, 2.0, 3.0, 4.0]), 2).tolist() == [1.0, 1.5, 2.5, 3.5]


def test_plot_writes_a_png_of_the_expected_size(tmp_path):
    make_sweep(tmp_path / "sweep")
    # one seed stops early, as with stop_return: the rest of its group is drawn over fewer seeds
    write_run(tmp_path / "sweep" / "12_ppo_gru_t-maze_seed3", linear_rows(4, 100, 0.002), summary=summary("gru", 3))
    runs = load_runs([tmp_path / "sweep"])
    out = plot_runs(runs, tmp_path / "pics" / "both.png", title="cores")
    with Image.open(out) as img:
        img.verify()
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (1280, 800)  # 2 envs x (steps, time), 640 x 400 each
    one_env = [r for r in runs if r.labels["env"] == "t-maze"]
    with Image.open(plot_runs(one_env, tmp_path / "steps.png", x="steps", smoothing=3, spread="std")) as img:
        assert img.size == (640, 400)
    lines = summary_lines(group_runs(one_env))
    assert lines[0] == "ppo gru t-maze: 4 seeds, final return_mean 1.025 (0.800 to 1.200), 400-1,200 steps"
    with pytest.raises(ConfigError, match="unknown image format .jpeg2"):
        plot_runs(runs, tmp_path / "x.jpeg2")


def plot_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "rlmem.plot", *map(str, args)], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=120)


def test_two_real_runs_end_to_end(tmp_path):
    from rlmem.train import train

    base = ["env=t-maze", "env.corridor=3", "total_steps=2048", "env.n_envs=8", "eval_episodes=0",
            "core.hidden_size=16", "policy.embed_size=16", "progress=false", "agent.n_steps=32",
            "agent.batch_size=128", "checkpoint=false"]
    for seed in (0, 1):
        train([*base, f"seed={seed}"], run_dir=tmp_path / "sweep" / f"{seed}_ppo_gru_t-maze_seed{seed}")
    out = plot_cli(tmp_path / "sweep", "--title", "t-maze", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("ppo gru t-maze: 2 seeds, final return_mean ")
    assert lines[0].endswith(", 2,048 steps")
    png = tmp_path / "sweep" / "curves.png"
    assert lines[1] == f"wrote {png}"
    with Image.open(png) as img:
        assert img.size == (1280, 400)


def _bad_inputs(root: Path) -> None:
    (root / "empty").mkdir()
    write_run(root / "no_return", [(10, "", 1.0)], columns=["step", "episodes", "time_s"])
    write_run(root / "no_rows", [])
    write_run(root / "all_empty", [(10, "", 1.0), (20, "", 2.0)])
    write_run(root / "good", linear_rows(3, 10, 0.1), summary=summary("gru", 0))


@pytest.mark.parametrize("args, message", [
    (["missing"], "error: missing: no such file or directory"),
    (["empty"], "error: empty: no progress.csv in it or below it"),
    (["no_return"], "error: no_return/progress.csv: no return column 'return_mean' (its columns: episodes, time_s)"),
    (["no_rows"], "error: no_rows/progress.csv: no rows"),
    (["all_empty"], "error: all_empty/progress.csv: no row has a value of 'return_mean' (2 rows, all empty)"),
    (["good", "--metric", "loss"], "error: unknown --metric 'loss': good/progress.csv has the columns "
                                   "policy_loss, episodes, return_mean, fps, time_s"),
    (["good", "--x", "epochs"], "error: argument --x: invalid choice: 'epochs' (choose from steps, time, both)"),
    (["good", "--smooth", "0"], "error: --smooth 0: must be >= 1"),
    (["good", "--group", "agent,colour"], "error: unknown --group key 'colour'"),
    (["good", "--out", "good/x.bmpx"], "error: --out good/x.bmpx: unknown image format .bmpx; use .png"),
    ([], "error: the following arguments are required: RUN_OR_SWEEP_DIR"),
])
def test_bad_inputs_get_one_line_and_exit_2(tmp_path, args, message):
    _bad_inputs(tmp_path)
    out = plot_cli(*args, cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert out.stderr.strip().replace("'steps', 'time', 'both'", "steps, time, both").startswith(message)
