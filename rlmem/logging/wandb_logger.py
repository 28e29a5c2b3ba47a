"""Weights & Biases: config, grouped metrics, pictures, evaluation and summary; works offline
(``WANDB_MODE=offline``, sync later with ``wandb sync``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from .base import Logger
from .metric_names import dashboard_metrics, evaluation_metrics


class WandbLogger(Logger):
    """One W&B run per training run; every value is logged against env steps (W&B's step).

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
        self.images_at: int | None = None

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        self.run.log(dashboard_metrics(metrics), step=step)

    def log_images(self, images: Mapping[str, Path], step: int, taken: int | None = None) -> None:
        caption = f"episode recorded at {step if taken is None else taken} env steps"
        if self.images_at is not None and step <= self.images_at:
            step = self.images_at + 1  # one W&B row keeps one picture per name: a second set goes one step on
        self.images_at = step
        self.run.log({name: self.wandb.Image(str(path), caption=caption) for name, path in images.items()}, step=step)

    def log_evaluation(self, evaluation: Mapping[str, float], step: int) -> None:
        metrics = evaluation_metrics(evaluation)
        self.run.log(metrics, step=step)
        self.run.summary.update(metrics)

    def log_summary(self, summary: Mapping[str, Any]) -> None:
        self.run.summary.update(dict(summary))

    def close(self) -> None:
        self.run.finish()
