"""``python -m rlmem.evaluate``: a trained run's checkpoint evaluated on fresh episodes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from rlmem.agents import evaluate_policy
from rlmem.checkpoint import load_checkpoint, load_policy, newest_checkpoint
from rlmem.evaluate import evaluate_checkpoint, interval, main
from rlmem.train import build_env, train
from rlmem.validation import ConfigError

FAST = ["total_steps=2048", "eval_episodes=0", "progress=false", "env.n_envs=8", "core.hidden_size=16",
        "policy.embed_size=16", "agent.n_steps=32", "agent.batch_size=128"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny PPO/GRU run on the t-maze (corridor 3: episodes of 5 steps), checkpointed at 1024 and 2048 steps."""
    path = tmp_path_factory.mktemp("tmaze") / "run"
    train(["core=gru", "env=t-maze", "env.corridor=3", *FAST, "checkpoint_every=1024"], run_dir=path)
    return path


@pytest.fixture(scope="module")
def copy_run(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("copy") / "run"
    train(["core=mlp", "env=memory-copy", "env.length=2", "env.bits=3", *FAST, "total_steps=256"], run_dir=path)
    return path


def cli(args: list[str], cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run([sys.executable, "-m", "rlmem.evaluate", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=timeout)


def reference(checkpoint: Path, seed: int, episodes: int, n_envs: int, deterministic: bool = True, **env_changes):
    """What evaluate_policy gives for the checkpoint's policy on its env (with ``env_changes``)."""
    cfg = OmegaConf.create(load_checkpoint(checkpoint)["config"])
    for k, v in env_changes.items():
        cfg.env[k] = v
    env, policy = build_env(cfg.env, seed, n_envs=n_envs), load_policy(checkpoint)
    torch.manual_seed(seed)  # after building the policy, whose initialisation draws from it
    return evaluate_policy(policy, env, episodes, deterministic=deterministic, seed=seed)


KEYS = ("return_mean", "return_std", "length_mean")


@pytest.mark.parametrize("deterministic", [True, False])
def test_eval_json_holds_what_evaluate_policy_gives(run_dir, tmp_path, deterministic):
    out = tmp_path / "results.json"
    result = evaluate_checkpoint([f"checkpoint={run_dir / 'checkpoint.pt'}", "episodes=20", "seed=3",
                                  f"deterministic={str(deterministic).lower()}", f"out={out}"])
    written = json.loads(out.read_text())
    expected = reference(run_dir / "checkpoint.pt", 3, 20, n_envs=8, deterministic=deterministic)
    for key in KEYS:
        assert written[key] == result[key] == expected[key], key
    assert written["episodes"] == 20 and written["seed"] == 3 and written["deterministic"] is deterministic
    assert written["env"] == {"name": "t-maze", "n_envs": 8, "corridor": 3}
    assert written["checkpoint"] == str(run_dir / "checkpoint.pt") and written["trained_env_steps"] == 2048
    assert written["return_ci95"] == list(interval(expected["return_mean"], expected["return_std"], 20))
    assert written["optimal_return"] == 1.0 and written["optimal_fraction"] == expected["return_mean"]
    assert written["capped"] is False and written["length_mean"] == 5.0


def test_the_command_line_prints_and_writes_the_same_numbers(run_dir, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(run_dir, target)
    out = cli([f"checkpoint={target}", "episodes=12", "n_envs=4"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    written = json.loads((target / "eval.json").read_text())  # next to the checkpoint
    expected = reference(target / "checkpoint.pt", 0, 12, n_envs=4)
    assert all(written[k] == expected[k] for k in KEYS) and written["env"]["n_envs"] == 4
    text = out.stdout
    assert f"mean {expected['return_mean']:.4g}, std {expected['return_std']:.4g}, 95% interval" in text
    assert "episodes    12" in text and "mean 5 steps" in text and f"wrote       {target / 'eval.json'}" in text


def test_an_env_override_takes_effect(run_dir, tmp_path):
    longer = evaluate_checkpoint([f"checkpoint={run_dir}", "episodes=8", "env.corridor=9", f"out={tmp_path}"])
    assert longer["length_mean"] == 11.0 and longer["env"]["corridor"] == 9
    expected = reference(run_dir / "checkpoint.pt", 0, 8, n_envs=8, corridor=9)
    assert all(longer[k] == expected[k] for k in KEYS)
    assert json.loads((tmp_path / "eval.json").read_text())["length_mean"] == 11.0


def test_a_run_directory_means_its_newest_checkpoint(run_dir, tmp_path):
    assert sorted(p.name for p in run_dir.glob("checkpoint*.pt")) == ["checkpoint.pt", "checkpoint_1024.pt"]
    result = evaluate_checkpoint([f"checkpoint={run_dir}", "episodes=4", f"out={tmp_path}"])
    assert result["checkpoint"] == str(newest_checkpoint(run_dir)) == str(run_dir / "checkpoint.pt")
    older = tmp_path / "older"
    older.mkdir()
    shutil.copy(run_dir / "checkpoint_1024.pt", older)
    result = evaluate_checkpoint([f"checkpoint={older}", "episodes=4"])
    assert result["checkpoint"] == str(older / "checkpoint_1024.pt") and result["trained_env_steps"] == 1024
    assert (older / "eval.json").exists()


def test_a_path_alone_is_the_checkpoint(run_dir, tmp_path):
    result = evaluate_checkpoint([str(run_dir), "episodes=4", f"out={tmp_path}"])
    assert result["checkpoint"] == str(run_dir / "checkpoint.pt")
    expected = reference(run_dir / "checkpoint.pt", 0, 4, n_envs=4)
    assert all(result[k] == expected[k] for k in KEYS)


def test_record_saves_the_pictures_next_to_eval_json(run_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["rlmem.evaluate", f"checkpoint={run_dir}", "episodes=4", "record=true",
                                      f"out={tmp_path / 'eval'}"])
    main()
    printed = capsys.readouterr().out
    names = sorted(p.name for p in (tmp_path / "eval").iterdir())
    assert names == ["eval.json", "eval_core_state.png", "eval_episode_inputs.png"]
    assert all((tmp_path / "eval" / n).stat().st_size > 5000 for n in names if n.endswith(".png"))
    written = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert written["recorded_length"] == 5 and len(written["pictures"]) == 2
    assert "has no rgb_array rendering" in printed and "picture     " in printed


def test_record_of_a_rendering_gymnasium_env_saves_a_gif(tmp_path):
    train(["env=gym", "env.id=CartPole-v1", "core=gru", *FAST, "total_steps=256"], run_dir=tmp_path / "run")
    result = evaluate_checkpoint([f"checkpoint={tmp_path / 'run'}", "episodes=2", "record=true"])
    gif = Path(result["video"])
    assert gif.name == "eval_episode.gif" and gif.read_bytes()[:6] == b"GIF89a"
    assert result["optimal_return"] is None and result["optimal_fraction"] is None


def error_rows(run_dir: Path, copy_run: Path, tmp_path: Path) -> list[tuple[list[str], str]]:
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes((run_dir / "checkpoint.pt").read_bytes()[:3000])
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    plain = tmp_path / "state_dict.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    no_config = tmp_path / "no_config.pt"
    ckpt = load_checkpoint(run_dir / "checkpoint.pt")
    ckpt["config"] = None
    torch.save(ckpt, no_config)
    ok = f"checkpoint={run_dir}"
    return [
        ([], "checkpoint=PATH is required"),
        ([f"checkpoint={tmp_path / 'missing.pt'}"], "no such checkpoint file or run directory"),
        ([f"checkpoint={tmp_path}"], "no checkpoint in"),
        ([f"checkpoint={corrupt}"], "is not a readable checkpoint"),
        ([f"checkpoint={text}"], "is not a readable checkpoint"),
        ([f"checkpoint={plain}"], "is not an rlmem checkpoint"),
        ([f"checkpoint={no_config}"], "holds no training config"),
        ([ok, "episodes=0"], r"episodes must be an integer >= 1, got 0"),
        ([ok, "epsiodes=10"], r"unknown key 'epsiodes'; valid keys: checkpoint, episodes"),
        ([ok, "deterministic=maybe"], r"deterministic must be true or false"),
        ([ok, "device=tpu"], r"device must be one of"),
        ([ok, "env.corridor=-2"], r"env\.corridor must be an integer >= 0, got -2"),
        ([ok, "env.corridor=long"], r"env\.corridor must be an integer"),
        ([ok, "env.coridor=5"], r"unknown key 'env\.coridor'; valid keys of env: corridor"),
        ([ok, "env=memory-copy"], r"the env is the one the checkpoint was trained on"),
        ([ok, "seed=0,1"], r"one value per key"),
        ([ok, "episodes"], r"cannot parse override 'episodes'"),
        ([f"checkpoint={copy_run}", "env.bits=5"],
         r"env\.bits=5 gives the observation space MultiBinary\(6\), but the policy was trained on a different "
         r"observation space, MultiBinary\(4\)"),
        ([str(tmp_path / "missing.pt")], "no such checkpoint file or run directory"),
    ]


def test_bad_inputs_give_one_error_line_and_exit_2(run_dir, copy_run, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    for args, pattern in error_rows(run_dir, copy_run, tmp_path):
        monkeypatch.setattr(sys, "argv", ["rlmem.evaluate", *args])
        with pytest.raises(SystemExit) as exit_info:
            main()
        err = capsys.readouterr().err
        assert exit_info.value.code == 2, args
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and re.search(pattern, lines[0]), (args, err)
        with pytest.raises(ConfigError):
            evaluate_checkpoint(args)


def test_bad_inputs_from_the_shell_give_no_traceback(run_dir, copy_run, tmp_path):
    for args, pattern in [row for i, row in enumerate(error_rows(run_dir, copy_run, tmp_path)) if i in (1, 4, 7, 17)]:
        out = cli(args, cwd=tmp_path)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and re.search(pattern, lines[0]) and out.stdout == "", out.stderr
