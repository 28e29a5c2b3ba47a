"""TensorBoard event files in ``<run dir>/tb``."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from .base import Logger


class TensorBoardLogger(Logger):
    """``resume_step``: events after that step from an interrupted run are purged on resume."""

    def __init__(self, log_dir: str | Path, resume_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(log_dir), purge_step=None if resume_step is None else resume_step + 1)

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        for k, v in metrics.items():
            self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        self.writer.close()
