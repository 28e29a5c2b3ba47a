"""Pictures of what the memory does: one greedy episode now and then, drawn by
:mod:`rlmem.episode_pictures`, saved as PNGs in ``<run dir>/media`` and sent to the dashboards.

Recording the episode takes milliseconds; drawing it takes a large fraction of a second (text
layout and rasterizing in matplotlib), so the drawing happens in a separate process, on a core
that training with ``torch_threads: 1`` leaves free, and the pictures reach the dashboards at the
first iteration after they are ready (W&B's step, env steps, only grows; the PNG file names and
TensorBoard keep the step at which the episode was recorded).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Callable

import torch.nn as nn
from gymnasium.vector import VectorEnv

from .base import Logger


def draw_episode(record, directory: str | Path, steps: int) -> dict[str, Path]:
    """Draw ``record`` and write ``directory/<name>_<steps>.png`` for each picture (``/`` in a
    name becomes ``_``); returns ``{name: path}``. Runs in the drawing process."""
    from rlmem.episode_pictures import episode_figures, save_figures

    figures = episode_figures(record)
    return dict(zip(figures, save_figures(figures, directory, suffix=f"_{steps}", close=True)))


class EpisodeMedia:
    """Records one episode every ``every`` env steps (0: only when :meth:`capture` is called).

    The episode is always the same one (the env copy is reset with ``seed``), so pictures taken
    at different steps show how the policy's use of its memory changes on one input.

    Args:
        make_env: builds the one-copy environment the episode runs in (built on first use).
        run_dir: the PNGs go to ``run_dir/media/<name>_<steps>.png``.
        every: env steps between pictures.
        seed: the episode's reset seed.
        background: draw in a separate process (False: in this one, at once).
        start: the env steps training starts from (a resumed run's), for :meth:`due`.
    """

    def __init__(self, make_env: Callable[[], VectorEnv], run_dir: str | Path, every: int, seed: int,
                 deterministic: bool = True, max_steps: int = 10_000, background: bool = True, start: int = 0):
        self.make_env, self.every, self.seed = make_env, int(every), seed
        self.deterministic, self.max_steps = deterministic, max_steps
        self.directory = Path(run_dir) / "media"
        self.env: VectorEnv | None = None
        self.last: int | None = None
        self.start = start
        self.background = background
        self.pool: ProcessPoolExecutor | None = None
        self.pending: list[tuple[int, Future]] = []

    def due(self, steps: int) -> bool:
        """Whether a multiple of ``every`` was passed since the start (or the last picture)."""
        if self.every <= 0:
            return False
        last = self.start if self.last is None else self.last
        return steps // self.every > last // self.every

    def capture(self, policy: nn.Module, steps: int) -> None:
        """Record the episode with ``policy`` now and have it drawn (see :meth:`publish`)."""
        from rlmem.episode_record import record_episode

        if self.env is None:
            self.env = self.make_env()
        training = policy.training
        policy.eval()
        try:
            record = record_episode(policy, self.env, deterministic=self.deterministic, seed=self.seed,
                                    max_steps=self.max_steps)
        finally:
            policy.train(training)
        self.last = steps
        if not self.background:
            done: Future = Future()
            done.set_result(draw_episode(record, self.directory, steps))
            self.pending.append((steps, done))
            return
        if self.pool is None:  # spawn: a fork would copy the training process's threads and memory
            self.pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        self.pending.append((steps, self.pool.submit(draw_episode, record, self.directory, steps)))

    def publish(self, logger: Logger, step: int, wait: bool = False) -> None:
        """Send the pictures that are drawn to ``logger`` at ``step`` (``wait``: all of them, once
        drawn). A drawing that failed raises its error here."""
        while self.pending and (wait or self.pending[0][1].done()):
            taken, future = self.pending.pop(0)
            logger.log_images({f"media/{name}": path for name, path in future.result().items()}, step, taken)

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
