"""The training entry end to end, as users run it: ``python -m rlmem.train ...``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rlmem.checkpoint import load_policy
from rlmem.overrides import check_overrides
from rlmem.train import train

BASE = ["total_steps=2048", "env.n_envs=8", "eval_episodes=8", "core.hidden_size=16", "policy.embed_size=16",
        "progress=false"]
TINY = [*BASE, "agent.n_steps=32", "agent.batch_size=128"]  # for PPO, the default agent


def cli(args: list[str], cwd: Path, timeout: int = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "rlmem.train", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=timeout)


def final_line(stdout: str) -> dict:
    lines = [ln for ln in stdout.strip().splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("final: "), stdout[-2000:]
    return json.loads(lines[-1][len("final: "):])


def test_cli_trains_evaluates_and_saves(tmp_path):
    out = cli(["agent=ppo", "core=gru", "env=t-maze", "env.corridor=3", *TINY, f"hydra.run.dir={tmp_path / 'run'}"],
              cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = final_line(out.stdout)
    for key in ("env_steps", "episodes", "return_mean", "eval_return_mean", "optimal_return", "fps", "wall_s"):
        assert key in summary
    assert summary["env_steps"] >= 2048 and summary["episodes"] > 0 and summary["optimal_return"] == 1.0
    run = tmp_path / "run"
    assert json.loads((run / "summary.json").read_text()) == summary
    assert (run / "checkpoint.pt").exists() and (run / "progress.csv").exists()
    assert (run / ".hydra" / "config.yaml").exists()


def test_checkpoint_round_trip_gives_the_same_actions(tmp_path):
    summary = train(["env=repeat-previous", "core=lstm", *TINY, "checkpoint_every=1024"], run_dir=tmp_path)
    # periodic checkpoints before the end; the end's is checkpoint.pt
    assert sorted(p.name for p in tmp_path.glob("checkpoint*.pt")) == ["checkpoint.pt", "checkpoint_1024.pt"]
    policy = load_policy(summary["checkpoint"])
    from rlmem.envs import make_batched

    env = make_batched("repeat-previous", 4, seed=1)
    obs, _ = env.reset(seed=1)
    a1, s1 = policy.predict(obs, None, deterministic=True)
    again = load_policy(summary["checkpoint"])
    a2, s2 = again.predict(obs, None, deterministic=True)
    assert np.array_equal(a1, a2) and torch.equal(s1["h"], s2["h"])
    ckpt = torch.load(summary["checkpoint"], weights_only=True)  # plain data only
    assert ckpt["config"]["core"]["name"] == "lstm" and ckpt["agent"]["state"]["num_timesteps"] == summary["env_steps"]


def test_stop_return_ends_training_once_100_episodes_reach_it(tmp_path):
    # t-maze (corridor 20): 22-step episodes, returns in [-1, 1]; 8 copies x 32 steps per update.
    base = ["env=t-maze", "env.corridor=20", *TINY, "total_steps=20000", "eval_episodes=0", "checkpoint=false"]
    s = train([*base, "stop_return=-1.5"], run_dir=tmp_path / "stop")
    assert s["stopped_at_return"] and 100 <= s["episodes"] and s["env_steps"] <= 100 * 22 + 2 * 256
    s = train([*base, "stop_return=1.5"], run_dir=tmp_path / "never")  # above the optimal return of 1
    assert not s["stopped_at_return"] and s["env_steps"] >= 20000


def test_a2c_and_every_builtin_env_run_from_python(tmp_path):
    for env in ("memory-copy", "count-recall", "stateless-cartpole", "surprise-recall", "repeat-first"):
        s = train([f"env={env}", "agent=a2c", "core=elman", *BASE, "agent.n_steps=16"], run_dir=tmp_path / env)
        assert s["env_steps"] >= 2048 and s["eval_episodes"] == 8


def test_multirun_sweeps_cores_and_seeds(tmp_path):
    out = cli(["-m", "core=mlp,gated", "seed=0,1", "env=t-maze", "env.corridor=2", *TINY,
               f"hydra.sweep.dir={tmp_path / 'sweep'}", "checkpoint=false"], cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = sorted(p.name for p in (tmp_path / "sweep").iterdir() if (p / "summary.json").exists())
    assert len(runs) == 4, runs
    assert {json.loads((tmp_path / "sweep" / r / "summary.json").read_text())["core"] for r in runs} == {"mlp", "gated"}


def test_any_gymnasium_id(tmp_path):
    out = cli(["agent=ppo", "core=gru", "env=gym", "env.id=CartPole-v1", *TINY,
               f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = final_line(out.stdout)
    assert summary["optimal_return"] is None and summary["eval_return_mean"] > 0


def test_module_prefixed_gymnasium_id(tmp_path):
    s = train(["env=gym", "env.id=rlmem.envs:rlmem/TMaze-v0", "+env.kwargs.corridor=2", *TINY], run_dir=tmp_path)
    assert s["episodes"] > 0


@pytest.mark.parametrize("args, message", [
    (["agent=sac"], "unknown agent 'sac'; valid choices: a2c, dqn, ppo"),
    (["core=transformer"], "valid choices: .*gru.*lstm"),
    (["env=maze"], "valid choices: .*t-maze"),
    (["agent.lr=0.1"], "unknown key 'agent.lr'; valid keys of agent: .*learning_rate"),
    (["core=gru", "core.hidden=3"], "valid keys of core: .*hidden_size"),
    (["totl_steps=5"], "valid keys at the top level: .*total_steps"),
    (["-m", "core=gru,foo"], "unknown core 'foo'"),
])
def test_bad_names_and_keys_list_the_valid_choices(args, message):
    problem = check_overrides(args)
    assert problem is not None
    import re

    assert re.search(message, problem), problem


def test_cli_exits_with_the_message(tmp_path):
    out = cli(["agent=sac"], cwd=tmp_path)
    assert out.returncode == 2
    assert "valid choices: a2c, dqn, ppo" in out.stderr


def test_bad_values_are_refused_with_a_reason(tmp_path):
    with pytest.raises(ValueError, match=r"batch_size=100 must be a multiple of seq_len \(agent.seq_len=16\)"):
        train(["env=t-maze", *TINY, "agent.batch_size=100"], run_dir=tmp_path)
    with pytest.raises(ValueError, match="corridor"):
        train(["env=t-maze", *TINY, "env.corridor=-1"], run_dir=tmp_path)
    with pytest.raises(ValueError, match="cannot make Gymnasium env"):
        train(["env=gym", "env.id=NoSuchEnv-v0", *TINY], run_dir=tmp_path)
    with pytest.raises(ValueError, match="stop_return must be a number or null, got 'high'"):
        train(["env=t-maze", *TINY, "stop_return=high"], run_dir=tmp_path)
