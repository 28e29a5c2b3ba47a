"""Loggers: CSV columns, TensorBoard files, W&B offline, and failures that never stop training."""

from __future__ import annotations

import csv
import warnings

import pytest

from rlmem.logging import CSVLogger, Logger, MultiLogger, SafeLogger
from rlmem.train import train

TINY = ["total_steps=1024", "env.n_envs=8", "agent.n_steps=16", "agent.batch_size=64", "eval_episodes=4",
        "core.hidden_size=8", "policy.embed_size=8", "progress=false", "env=t-maze", "env.corridor=2"]


def test_csv_logger_grows_columns(tmp_path):
    log = CSVLogger(tmp_path / "p.csv")
    log.log({"a": 1.0}, 10)
    log.log({"a": 2.0, "b": 3.0}, 20)
    log.close()
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert rows == [{"step": "10", "a": "1.0", "b": ""}, {"step": "20", "a": "2.0", "b": "3.0"}]


class Broken(Logger):
    def log(self, metrics, step):
        raise RuntimeError("dashboard down")


def test_a_failing_logger_warns_once_and_is_switched_off():
    seen = []

    class Recorder(Logger):
        def log(self, metrics, step):
            seen.append(step)

    multi = MultiLogger([SafeLogger(Broken(), "broken"), Recorder()])
    with pytest.warns(UserWarning, match="broken logger disabled"):
        multi.log({"x": 1.0}, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        multi.log({"x": 1.0}, 2)
    assert seen == [1, 2]


def test_wandb_offline_run_logs_config_and_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    summary = train([*TINY, "logger=wandb"], run_dir=tmp_path)
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb"))
    assert summary["env_steps"] >= 1024


def test_core_diagnostics_reach_the_progress_log(tmp_path):
    train([*TINY, "core=gated"], run_dir=tmp_path)
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    assert "core/gate" in header and "return_mean" in header and "fps" in header


def test_tensorboard_logger_writes_event_files(tmp_path):
    train([*TINY, "logger=tensorboard"], run_dir=tmp_path)
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
