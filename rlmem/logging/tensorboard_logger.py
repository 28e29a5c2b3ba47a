"""TensorBoard event files in ``<run dir>/tb``: grouped metrics, the config, pictures, evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .base import Logger
from .metric_names import dashboard_metrics, evaluation_metrics


class TensorBoardLogger(Logger):
    """Scalars under their dashboard names (``charts/``, ``losses/``, ``core/``, ``eval/``) against
    env steps; ``config`` (the resolved run config) is stored once as text.

    ``resume_step``: events after that step from an interrupted run are purged on resume.
    """

    def __init__(self, log_dir: str | Path, resume_step: int | None = None,
                 config: Mapping[str, Any] | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(log_dir), purge_step=None if resume_step is None else resume_step + 1)
        if config is not None and resume_step is None:
            from omegaconf import OmegaConf

            text = OmegaConf.to_yaml(OmegaConf.create(dict(config)))
            # four leading spaces: TensorBoard renders text as markdown, this keeps it a code block
            self.writer.add_text("config", "".join(f"    {line}\n" for line in text.splitlines()), 0)

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        for k, v in dashboard_metrics(metrics).items():
            self.writer.add_scalar(k, v, step)

    def log_images(self, images: Mapping[str, Path], step: int, taken: int | None = None) -> None:
        from PIL import Image

        for name, path in images.items():  # at the step the episode was recorded: TensorBoard takes any order
            with Image.open(path) as image:
                self.writer.add_image(name, np.asarray(image.convert("RGB")), step if taken is None else taken,
                                      dataformats="HWC")
        self.writer.flush()

    def log_evaluation(self, evaluation: Mapping[str, float], step: int) -> None:
        for k, v in evaluation_metrics(evaluation).items():
            self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        self.writer.close()
