"""Weights & Biases: config, metrics and summary; works offline (``WANDB_MODE=offline``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from .base import Logger


class WandbLogger(Logger):
    """One W&B run per training run.

    Args:
        config: the run's resolved config, stored with the run.
        run_dir: where W&B keeps its files (``<run dir>/wandb``).
        project, entity, group, tags, name: as in ``wandb.init``.
        mode: ``online``, ``offline`` or ``disabled``; None takes ``WANDB_MODE`` or W&B's default.
        run_id: the W&B run id (kept in the run's checkpoints).
        resume: continue the run ``run_id`` (a resumed training run logs into the same W&B run).
    """

    def __init__(self, config: Mapping[str, Any], run_dir: str | Path, project: str = "rlmem",
                 entity: str | None = None, group: str | None = None, tags: list[str] | None = None,
                 name: str | None = None, mode: str | None = None, run_id: str | None = None,
                 resume: bool = False):
        import wandb

        self.wandb = wandb
        self.run = wandb.init(project=project, entity=entity, group=group, tags=tags, name=name,
                              config=dict(config), dir=str(run_dir), mode=mode or os.environ.get("WANDB_MODE"),
                              reinit="finish_previous", id=run_id, resume="allow" if resume else None)

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        self.run.log(dict(metrics), step=step)

    def log_summary(self, summary: Mapping[str, Any]) -> None:
        for k, v in summary.items():
            self.run.summary[k] = v

    def close(self) -> None:
        self.run.finish()
