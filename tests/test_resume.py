"""Runs survive a crash: a run killed with SIGKILL and resumed ends bitwise where an uninterrupted
run ends; the NaN guard stops a diverging run and keeps the last good checkpoint."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rlmem.checkpoint import load_checkpoint

ENV = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONUNBUFFERED": "1"}
ITERATION = 8 * 32  # env.n_envs x agent.n_steps
DQN_ITERATION = 4 * 8 * 32  # rounds of agent.train_freq x env.n_envs env steps, at least 1000 env steps
CASES = {
    "ppo-gru": ["agent=ppo", "core=gru", "core.hidden_size=16", "env=repeat-previous", "agent.n_steps=32",
                "agent.batch_size=128", "agent.seq_len=16"],
    "ppo-tmm": ["agent=ppo", "core=tmm", "core.hidden_size=16", "env=t-maze", "env.corridor=4", "agent.n_steps=32",
                "agent.batch_size=128", "core.slots=4"],
    "a2c-ntm": ["agent=a2c", "core=ntm", "core.hidden_size=16", "env=memory-copy", "env.length=3", "env.bits=2",
                "agent.n_steps=32", "core.memory_size=8", "core.memory_width=8"],
    "dqn-gru": ["agent=dqn", "core=gru", "core.hidden_size=16", "env=t-maze", "env.corridor=3", "agent.train_freq=32",
                "agent.learning_starts=256", "agent.buffer_size=4000", "agent.seq_len=8", "agent.overlap=4",
                "agent.burn_in=2", "agent.target_update_interval=512", "agent.prioritized=true",
                "agent.save_replay_buffer=true"],
    # a state kept once per sequence and rebuilt per row
    "dqn-tape": ["agent=dqn", "core=tape", "env=repeat-previous", "env.length=12", "core.slots=8",
                 "agent.train_freq=32", "agent.learning_starts=256", "agent.buffer_size=4000", "agent.seq_len=8",
                 "agent.overlap=4", "agent.target_update_interval=512", "agent.save_replay_buffer=true"],
}
STEPS = {case: DQN_ITERATION if case.startswith("dqn") else ITERATION for case in CASES}
COMMON = ["env.n_envs=8", "policy.embed_size=16", "progress=false", "eval_episodes=16",
          "checkpoint_keep=2", "seed=3"]


def command(case: str, run_dir: Path, total: int) -> list[str]:
    return [sys.executable, "-m", "rlmem.train", *CASES[case], *COMMON, f"checkpoint_every={STEPS[case]}",
            f"total_steps={total}", f"hydra.run.dir={run_dir}"]


def progress_rows(run_dir: Path) -> list[dict]:
    """progress.csv without the columns that measure wall time."""
    with (run_dir / "progress.csv").open(newline="") as f:
        return [{k: v for k, v in row.items() if k not in ("fps", "time_s")} for row in csv.DictReader(f)]


def assert_same_tensors(a, b, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same_tensors(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_run_killed_with_sigkill_and_resumed_ends_bitwise_like_an_uninterrupted_one(case, tmp_path):
    iteration = STEPS[case]
    total = 12 * iteration
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    out = subprocess.run(command(case, whole, total), cwd=tmp_path, env=ENV, text=True, capture_output=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]

    proc = subprocess.Popen(command(case, killed, total), cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    target = killed / f"checkpoint_{2 * iteration}.pt"
    deadline = time.monotonic() + 240
    while not target.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (killed / "checkpoint.pt").exists() and not (killed / "summary.json").exists()

    out = subprocess.run([sys.executable, "-m", "rlmem.train", f"resume={killed}", "progress=false"], cwd=tmp_path,
                         env=ENV, text=True, capture_output=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    a, b = load_checkpoint(whole / "checkpoint.pt"), load_checkpoint(killed / "checkpoint.pt")
    sa, sb = a["agent"]["state"], b["agent"]["state"]
    assert sa["num_timesteps"] == sb["num_timesteps"] == total
    assert_same_tensors(sa["policy"], sb["policy"], "policy")
    assert_same_tensors(sa["optimizer"], sb["optimizer"], "optimizer")
    assert_same_tensors(sa["carry"], sb["carry"], "carry")
    assert_same_tensors(a["env"], b["env"], "env")
    if case.startswith("dqn"):  # the replay buffer (asked for) and the target network come back too
        assert_same_tensors(sa["replay"], sb["replay"], "replay")
        assert_same_tensors(sa["target"], sb["target"], "target")
    assert sa["episode_returns"] == sb["episode_returns"] and sa["episodes"] == sb["episodes"]
    assert progress_rows(whole) == progress_rows(killed)  # the log continues, no row twice
    sum_a, sum_b = (json.loads((d / "summary.json").read_text()) for d in (whole, killed))
    assert sum_a["eval_return_mean"] == sum_b["eval_return_mean"] and sum_a["return_mean"] == sum_b["return_mean"]
    assert sum_b["resumed_from"].endswith(".pt")
    assert len(list(killed.glob("checkpoint_*.pt"))) <= 2  # checkpoint_keep


def test_resume_continues_with_a_larger_step_budget(tmp_path):
    from rlmem.train import train

    args = [*CASES["ppo-gru"], *COMMON, f"checkpoint_every={ITERATION}", "eval_episodes=0"]
    first = train([*args, f"total_steps={2 * ITERATION}"], run_dir=tmp_path / "run")
    assert first["env_steps"] == 2 * ITERATION
    more = train([f"resume={tmp_path / 'run'}", f"total_steps={4 * ITERATION}"])
    assert more["env_steps"] == 4 * ITERATION and more["resumed_from"] == str(tmp_path / "run" / "checkpoint.pt")
    assert [int(r["step"]) for r in progress_rows(tmp_path / "run")] == [ITERATION * i for i in range(1, 5)]
    with pytest.raises(ValueError, match="cannot switch to 'lstm'"):
        train([f"resume={tmp_path / 'run'}", "core=lstm"])
    with pytest.raises(ValueError, match="no such checkpoint or run directory"):
        train([f"resume={tmp_path / 'nowhere'}"])


def test_resume_keeps_the_saved_optimizer_eps_unless_asked_for_another(tmp_path):
    """A checkpoint saved before ``agent.optimizer_eps`` existed resumes with the eps its optimizer had
    (not the agent's newer default); an override on resume is taken."""
    from rlmem.train import train

    def eps(run: Path) -> float:
        return load_checkpoint(run / "checkpoint.pt")["agent"]["state"]["optimizer"]["param_groups"][0]["eps"]

    run = tmp_path / "run"
    train([*CASES["dqn-gru"], *COMMON, "eval_episodes=0", "agent.optimizer_eps=1e-5",
           f"total_steps={DQN_ITERATION}"], run_dir=run)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    del ckpt["config"]["agent"]["optimizer_eps"]  # as written before the key existed
    torch.save(ckpt, run / "checkpoint.pt")
    train([f"resume={run}", f"total_steps={2 * DQN_ITERATION}"])
    assert eps(run) == 1e-5
    train([f"resume={run}", f"total_steps={3 * DQN_ITERATION}", "agent.optimizer_eps=1e-7"])
    assert eps(run) == 1e-7


def test_nan_guard_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path):
    good = tmp_path / "run"
    base = [sys.executable, "-m", "rlmem.train", *CASES["ppo-gru"], *COMMON, f"checkpoint_every={ITERATION}"]
    out = subprocess.run([*base, f"total_steps={2 * ITERATION}", f"hydra.run.dir={good}"], cwd=tmp_path, env=ENV,
                         text=True, capture_output=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    before = {p.name: p.read_bytes() for p in good.glob("checkpoint*.pt")}
    out = subprocess.run([sys.executable, "-m", "rlmem.train", f"resume={good}", f"total_steps={6 * ITERATION}",
                          "agent.learning_rate=1e30", "progress=false"], cwd=tmp_path, env=ENV, text=True,
                         capture_output=True, timeout=300)
    assert out.returncode == 1, out.stderr[-3000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: non-finite ") and f"at env step {3 * ITERATION}" in last, last
    assert "Traceback" not in out.stderr and "final:" not in out.stdout
    summary = json.loads((good / "summary.json").read_text())
    assert summary["status"] == "non_finite" and summary["error"] == last[len("error: "):]
    assert {p.name: p.read_bytes() for p in good.glob("checkpoint*.pt")} == before  # nothing overwritten with NaN


def test_nan_guard_from_python_names_the_quantity(tmp_path):
    from rlmem.agents import NonFiniteError
    from rlmem.train import train

    with pytest.raises(NonFiniteError, match=r"non-finite (loss|gradient norm|parameter \S+) at env step 256"):
        train([*CASES["ppo-gru"], *COMMON, "agent.learning_rate=1e30", f"total_steps={4 * ITERATION}"],
              run_dir=tmp_path)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_a_resumed_run_logs_into_the_same_wandb_run(tmp_path):
    pytest.importorskip("wandb")
    from rlmem.train import train

    args = [*CASES["ppo-gru"], *COMMON, "eval_episodes=0", "logger=wandb", "logger.wandb.mode=offline"]
    train([*args, f"total_steps={ITERATION}"], run_dir=tmp_path / "run")
    train([f"resume={tmp_path / 'run'}", f"total_steps={2 * ITERATION}"])
    import re

    runs = sorted(p.name for p in (tmp_path / "run" / "wandb").glob("offline-run-*"))
    # offline-run-<date>_<time>-<id>, with "-1" added when both start within one second
    ids = [re.fullmatch(r"offline-run-\d+_\d+-([a-z0-9]+)(?:-\d+)?", r).group(1) for r in runs]
    assert len(runs) == 2 and ids[0] == ids[1], runs
