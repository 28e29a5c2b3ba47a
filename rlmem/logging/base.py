"""The logger interface the training entry speaks: metrics in, files or dashboards out."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping


class Logger:
    """Receives flat ``{name: number}`` metrics every iteration, pictures now and then, the
    evaluation and a summary at the end; ``step`` is always the number of env steps."""

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def log_images(self, images: Mapping[str, Path], step: int, taken: int | None = None) -> None:
        """Pictures ``{name: PNG file}`` (e.g. a core's weightings over one episode), logged at
        ``step``; ``taken``: the env steps at which the episode was recorded (default ``step``)."""

    def log_evaluation(self, evaluation: Mapping[str, float], step: int) -> None:
        """Results of the evaluation after training (``return_mean``, ``return_std``, ...)."""

    def log_summary(self, summary: Mapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class SafeLogger(Logger):
    """Wraps a logger so that its failures warn once and disable it instead of stopping training."""

    def __init__(self, inner: Logger, name: str):
        self.inner, self.name, self.failed = inner, name, False

    def _call(self, method: str, *args: Any) -> None:
        if self.failed:
            return
        try:
            getattr(self.inner, method)(*args)
        except Exception as err:  # noqa: BLE001  logging must never crash training
            self.failed = True
            warnings.warn(f"{self.name} logger disabled after an error in {method}: {err!r}", stacklevel=3)

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        self._call("log", metrics, step)

    def log_images(self, images: Mapping[str, Path], step: int, taken: int | None = None) -> None:
        self._call("log_images", images, step, taken)

    def log_evaluation(self, evaluation: Mapping[str, float], step: int) -> None:
        self._call("log_evaluation", evaluation, step)

    def log_summary(self, summary: Mapping[str, Any]) -> None:
        self._call("log_summary", summary)

    def close(self) -> None:
        self._call("close")


class MultiLogger(Logger):
    def __init__(self, loggers: list[Logger]):
        self.loggers = loggers

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        for lg in self.loggers:
            lg.log(metrics, step)

    def log_images(self, images: Mapping[str, Path], step: int, taken: int | None = None) -> None:
        for lg in self.loggers:
            lg.log_images(images, step, taken)

    def log_evaluation(self, evaluation: Mapping[str, float], step: int) -> None:
        for lg in self.loggers:
            lg.log_evaluation(evaluation, step)

    def log_summary(self, summary: Mapping[str, Any]) -> None:
        for lg in self.loggers:
            lg.log_summary(summary)

    def close(self) -> None:
        for lg in self.loggers:
            lg.close()
