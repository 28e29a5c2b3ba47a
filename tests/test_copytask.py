"""The supervised copy task entry, and the NTM in the RL entry."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from rlmem.copytask import CopyTaskConfig, make_batch, parse_options, run
from rlmem.train import train


def test_batch_layout():
    x, target, mask = make_batch(torch.tensor([1, 3]), bits=4, generator=torch.Generator().manual_seed(0))
    assert x.shape == (7, 2, 5) and target.shape == (7, 2, 4) and mask.shape == (7, 2)
    assert x[:, 0, 4].nonzero().flatten().tolist() == [1]  # delimiter right after the sequence
    assert x[:, 1, 4].nonzero().flatten().tolist() == [3]
    assert mask[:, 0].nonzero().flatten().tolist() == [2]
    assert mask[:, 1].nonzero().flatten().tolist() == [4, 5, 6]
    assert torch.equal(target[4:7, 1], x[0:3, 1, :4]) and torch.equal(target[2, 0], x[0, 0, :4])
    assert x[1:, 0, :4].abs().sum() == 0 and x[3:, 1, :4].abs().sum() == 0  # blank while answering
    assert target[~mask].abs().sum() == 0


def test_options_are_parsed_and_unknown_keys_refused():
    cfg, options = parse_options(["core=ntm", "lr=3e-4", "eval_lengths=[10,20]", "core.memory_size=64",
                                  "optimizer=rmsprop"])
    assert cfg.lr == 3e-4 and cfg.eval_lengths == [10, 20] and cfg.optimizer == "rmsprop"
    assert options["memory_size"] == 64 and options["memory_width"] == 20  # task preset kept
    _, lstm = parse_options(["core=lstm"])
    assert "memory_size" not in lstm
    with pytest.raises(ValueError, match="unknown key 'learning_rate'; valid keys: .*lr.*train_sequences"):
        parse_options(["learning_rate=1"])
    with pytest.raises(ValueError, match="no option 'memsize'; valid options: .*memory_size"):
        parse_options(["core=ntm", "core.memsize=3"])
    with pytest.raises(ValueError, match="valid cores: .*ntm"):
        parse_options(["core=ntmx"])
    with pytest.raises(ValueError, match="batch_size=.*int"):
        parse_options(["batch_size=abc"])


def test_command_line_refuses_an_unknown_key(tmp_path):
    out = subprocess.run([sys.executable, "-m", "rlmem.copytask", "core=ntm", "epochs=3"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "unknown key 'epochs'; valid keys:" in out.stderr and "train_sequences" in out.stderr


def test_short_copy_run_learns(tmp_path):
    cfg = CopyTaskConfig(core="ntm", seed=0, min_length=1, max_length=4, bits=4, batch_size=8,
                         train_sequences=1600, optimizer="adam", lr=3e-3, log_every=800, val_sequences=64,
                         eval_lengths=[3, 6], eval_sequences=16, timing_batches=1, out_dir=str(tmp_path),
                         plots=True, verbose=False)
    options = {"hidden_size": 24, "memory_size": 12, "memory_width": 6}
    result = run(cfg, options)
    first, last = result["curve"][0], result["curve"][-1]
    assert last["error_per_bit"] < 0.5 * first["error_per_bit"], result["curve"]
    run_dir = tmp_path / "ntm_seed0"
    saved = json.loads((run_dir / "result.json").read_text())
    assert set(saved["eval"]) == {"3", "6"} and saved["seconds_per_sequence"] > 0
    for name in ("error_vs_length.png", "weightings.png", "learning_curve.png"):
        assert (run_dir / name).stat().st_size > 0


def test_ppo_trains_the_ntm_on_memory_copy(tmp_path):
    os.environ.setdefault("WANDB_MODE", "offline")
    summary = train(["agent=ppo", "core=ntm", "env=memory-copy", "env.length=3", "total_steps=512", "env.n_envs=8",
                     "agent.n_steps=32", "agent.batch_size=128", "eval_episodes=4", "core.hidden_size=16",
                     "core.memory_size=8", "core.memory_width=4", "policy.embed_size=16", "progress=false"],
                    run_dir=tmp_path)
    assert summary["core"] == "ntm" and summary["env_steps"] >= 512 and summary["episodes"] > 0
    columns = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    assert {"core/read_peak", "core/read_entropy", "core/write_peak", "core/write_entropy"} <= set(columns)
