"""POPGym experiment configs compose, and benchmarks/popgym_suite.py tabulates real runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rlmem.overrides import compose_config

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = sorted(p.stem for p in (ROOT / "configs" / "experiment").glob("popgym-*.yaml"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_popgym_experiment_configs_name_a_popgym_env_and_pass_validation(name):
    from rlmem.validation import validate_config

    cfg = compose_config([f"+experiment={name}"])
    assert cfg.env.name == "gym" and cfg.env.id.startswith("popgym:popgym-")
    validate_config(cfg)


def test_the_repeat_previous_medium_experiment_is_the_tmm_that_solved_it():
    cfg = compose_config(["+experiment=popgym-repeat-previous-medium"])
    assert (cfg.core.name, cfg.core.slots, cfg.core.order_gates, cfg.agent.minibatch_seq_len) == ("tmm", 40, 0, 16)
    assert cfg.env.id == "popgym:popgym-RepeatPreviousMedium-v0" and cfg.stop_return == 0.95


def test_the_count_recall_easy_experiment_is_dqn_with_counts_and_the_suite_uses_it_for_that_core():
    cfg = compose_config(["+experiment=popgym-count-recall-easy"])
    assert (cfg.agent.name, cfg.core.name, cfg.agent.gamma, cfg.agent.n_step) == ("dqn", "counts", 0.0, 1)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import popgym_suite
    finally:
        sys.path.pop(0)
    assert popgym_suite.run_overrides("CountRecallEasy", "counts", None) == ["+experiment=popgym-count-recall-easy"]
    assert popgym_suite.run_overrides("CountRecallEasy", "counts", 5000)[-1] == "total_steps=5000"
    other = popgym_suite.run_overrides("CountRecallEasy", "tmm", None)   # not the experiment's core
    assert "core=tmm" in other and "total_steps=15000000" in other
    assert popgym_suite.run_overrides("RepeatPreviousMedium", "tmm", None) == ["+experiment=popgym-repeat-previous-medium"]


def test_the_suite_runs_a_row_and_tabulates_it(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "popgym_suite.py"), "--tasks",
                          "RepeatPreviousEasy", "--cores", "gru", "--steps", "2048", "--out", str(tmp_path), "--",
                          "eval_episodes=2", "checkpoint=false", "env.n_envs=4", "agent.n_steps=32"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    row = [ln for ln in out.stdout.splitlines()
           if ln.startswith("| RepeatPreviousEasy | gru | ppo | RepeatPreviousEasy_gru")]
    assert len(row) == 1
    cells = [c.strip() for c in row[0].strip("|").split("|")]
    assert -1.0 <= float(cells[4]) <= 1.0 and cells[9] == "2,048"   # MMER, steps
    again = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "popgym_suite.py"), "--summarize",
                            str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and row[0] in again.stdout
