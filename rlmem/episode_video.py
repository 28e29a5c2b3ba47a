"""Frames of an episode from environments that render ``rgb_array`` images (Gymnasium ids built
with ``render_mode="rgb_array"``), saved as an animated GIF with Pillow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gymnasium.vector import VectorEnv, VectorWrapper


def renders_rgb(env: VectorEnv) -> bool:
    """Whether ``env`` says it can render ``rgb_array`` frames."""
    return "rgb_array" in (env.metadata.get("render_modes") or ())


class FrameRecorder(VectorWrapper):
    """Keeps the frame of copy 0 before every step: ``frames[t]`` [H, W, 3] uint8 shows what the
    policy saw at step ``t`` (the last state of an episode is not shown: the copy is already reset
    when ``step`` returns). The env must be built with ``render_mode="rgb_array"``."""

    def __init__(self, env: VectorEnv, max_frames: int = 1000):
        super().__init__(env)
        self.frames: list[np.ndarray] = []
        self.max_frames = max_frames

    def step(self, actions: Any):
        if len(self.frames) < self.max_frames:
            frame = self.env.render()
            if isinstance(frame, (tuple, list)):  # a Gymnasium vector env renders every copy
                frame = frame[0]
            if frame is not None:
                self.frames.append(np.asarray(frame, dtype=np.uint8))
        return self.env.step(actions)


def save_gif(frames: list[np.ndarray], path: str | Path, fps: float = 10.0) -> Path:
    """Write ``frames`` (each [H, W, 3] uint8) as an animated GIF that loops."""
    from PIL import Image

    if not frames:
        raise ValueError("no frames to save")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f[..., :3]) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=max(1, round(1000 / fps)), loop=0)
    return path
