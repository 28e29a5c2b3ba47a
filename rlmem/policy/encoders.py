"""Observation (and previous-action) encoders, chosen by Gymnasium space.

Every encoder maps a batch of raw observations with leading dims ``[T, B]`` to flat features
``[T, B, out_size]``:

- ``Discrete(n)``: one-hot, ``n`` features.
- ``MultiDiscrete(nvec)``: concatenated one-hots, ``sum(nvec)`` features.
- ``MultiBinary(n)``: the bits as floats.
- ``Box``: flattened floats; images (uint8 ``[H, W, C]`` or ``[C, H, W]``) go through a small CNN.
- ``Dict`` / ``Tuple``: the concatenation of their parts; a part that cannot be encoded (e.g.
  ``Text``, ``Sequence``, ``Graph`` or a custom space such as MiniGrid's ``MissionSpace``) is left
  out with a warning naming its key, and :func:`observation_selector` drops it from observations
  before they are stored or converted.

Any other space is refused with :class:`UnsupportedSpaceError`, which names it.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn


class UnsupportedSpaceError(ValueError):
    """A Gymnasium space that rlmem cannot encode or act in."""


class SpaceEncoder(nn.Module):
    out_size: int


class DiscreteEncoder(SpaceEncoder):
    def __init__(self, space: spaces.Discrete):
        super().__init__()
        self.n, self.start = int(space.n), int(space.start)
        self.out_size = self.n

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return F.one_hot(obs.long() - self.start, self.n).float()


class MultiDiscreteEncoder(SpaceEncoder):
    def __init__(self, space: spaces.MultiDiscrete):
        super().__init__()
        nvec = np.asarray(space.nvec).reshape(-1)
        start = np.asarray(space.start).reshape(-1)
        self.event_dims = len(np.shape(space.nvec))
        self.register_buffer("start", torch.as_tensor(start, dtype=torch.long), persistent=False)
        # Offsets let one one_hot call over sum(nvec) classes encode every component at once.
        offsets = np.concatenate([[0], np.cumsum(nvec)[:-1]])
        self.register_buffer("offsets", torch.as_tensor(offsets, dtype=torch.long), persistent=False)
        self.total = int(nvec.sum())
        self.out_size = self.total

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        lead = obs.shape[: obs.dim() - self.event_dims]
        idx = obs.reshape(*lead, -1).long() - self.start + self.offsets
        return F.one_hot(idx, self.total).sum(dim=-2).float()


class FlatEncoder(SpaceEncoder):
    """MultiBinary and non-image Box: flatten the event dims into floats."""

    def __init__(self, space: spaces.Space):
        super().__init__()
        self.event_dims = len(space.shape)
        self.out_size = int(np.prod(space.shape)) if space.shape else 1

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        lead = obs.shape[: obs.dim() - self.event_dims]
        return obs.reshape(*lead, self.out_size).float()


class ImageEncoder(SpaceEncoder):
    """A small CNN for uint8 images, channels first or last, scaled to [0, 1]."""

    def __init__(self, space: spaces.Box, out_size: int = 256):
        super().__init__()
        shape = space.shape
        self.channels_last = shape[-1] in (1, 3, 4) and shape[0] not in (1, 3, 4)
        c, h, w = (shape[2], shape[0], shape[1]) if self.channels_last else shape
        self.scale = 1.0 / 255.0 if space.dtype == np.uint8 else 1.0
        small = min(h, w) < 36  # e.g. MiniGrid's 7x7 views: 3x3 kernels; Atari-sized: strided 8x8
        layers = ([nn.Conv2d(c, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3), nn.ReLU(),
                   nn.Conv2d(32, 32, 3), nn.ReLU()] if small else
                  [nn.Conv2d(c, 32, 8, stride=4), nn.ReLU(), nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
                   nn.Conv2d(64, 64, 3), nn.ReLU()])
        self.cnn = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            n = self.cnn(torch.zeros(1, c, h, w)).shape[1]
        self.proj = nn.Sequential(nn.Linear(n, out_size), nn.ReLU())
        self.out_size = out_size

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        lead = obs.shape[:-3]
        x = obs.reshape(-1, *obs.shape[-3:]).float() * self.scale
        if self.channels_last:
            x = x.permute(0, 3, 1, 2)
        return self.proj(self.cnn(x)).reshape(*lead, self.out_size)


class CompositeEncoder(SpaceEncoder):
    """Dict or Tuple spaces: encode each part and concatenate."""

    def __init__(self, parts: dict[str, SpaceEncoder], keys: list[Any]):
        super().__init__()
        self.parts = nn.ModuleDict(parts)
        self.keys = keys  # original keys (str for Dict, int for Tuple), in the order of parts
        self.out_size = sum(p.out_size for p in parts.values())

    def forward(self, obs) -> torch.Tensor:
        return torch.cat([enc(obs[key]) for key, enc in zip(self.keys, self.parts.values())], dim=-1)


def is_image_space(space: spaces.Space) -> bool:
    if not isinstance(space, spaces.Box) or len(space.shape) != 3:
        return False
    return space.dtype == np.uint8 and (space.shape[-1] in (1, 3, 4) or space.shape[0] in (1, 3, 4))


def make_encoder(space: spaces.Space, image_features: int = 256) -> SpaceEncoder:
    """The encoder for ``space``; raises :class:`UnsupportedSpaceError` naming what is missing.

    Parts of a Dict or Tuple that cannot be encoded are left out (see :func:`encodable_space`)."""
    if isinstance(space, spaces.Discrete):
        return DiscreteEncoder(space)
    if isinstance(space, spaces.MultiDiscrete):
        return MultiDiscreteEncoder(space)
    if isinstance(space, spaces.MultiBinary):
        return FlatEncoder(space)
    if isinstance(space, spaces.Box):
        return ImageEncoder(space, image_features) if is_image_space(space) else FlatEncoder(space)
    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        kept = encodable_space(space)
        items = list(kept.spaces.items()) if isinstance(kept, spaces.Dict) else list(enumerate(kept.spaces))
        parts = {f"part_{i}": make_encoder(sub, image_features) for i, (_, sub) in enumerate(items)}
        return CompositeEncoder(parts, [key for key, _ in items])
    raise UnsupportedSpaceError(
        f"cannot encode observation space {space}: rlmem encodes Box, Discrete, MultiBinary, "
        f"MultiDiscrete, Dict and Tuple spaces; wrap the environment (e.g. with a "
        f"gymnasium.ObservationWrapper) to turn {type(space).__name__} into one of those")


_LEAF_SPACES = (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary, spaces.Box)


def encodable_space(space: spaces.Space, warn: bool = True) -> spaces.Space:
    """``space`` with the parts of its Dicts and Tuples that cannot be encoded left out (a Text,
    Sequence, Graph or custom sub-space), with a warning naming each; what rlmem stores, encodes and
    feeds to the core. Raises :class:`UnsupportedSpaceError` if nothing is left."""
    if isinstance(space, _LEAF_SPACES):
        return space
    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        items = list(space.spaces.items()) if isinstance(space, spaces.Dict) else list(enumerate(space.spaces))
        kept = []
        for key, sub in items:
            try:
                kept.append((key, encodable_space(sub, warn)))
            except UnsupportedSpaceError:
                if warn:
                    warnings.warn(f"observation key {key!r} ({type(sub).__name__}) is left out: rlmem encodes "
                                  f"Box, Discrete, MultiBinary, MultiDiscrete, Dict and Tuple parts", stacklevel=3)
        if not kept:
            raise UnsupportedSpaceError(f"no part of {space} can be encoded")
        return spaces.Dict(dict(kept)) if isinstance(space, spaces.Dict) else spaces.Tuple([s for _, s in kept])
    raise UnsupportedSpaceError(
        f"cannot encode observation space {space}: rlmem encodes Box, Discrete, MultiBinary, "
        f"MultiDiscrete, Dict and Tuple spaces; wrap the environment (e.g. with a "
        f"gymnasium.ObservationWrapper) to turn {type(space).__name__} into one of those")


def observation_selector(space: spaces.Space) -> Callable[[Any], Any] | None:
    """A function that drops from an observation of ``space`` the parts :func:`encodable_space`
    leaves out (a Tuple's kept parts are renumbered from 0); None when nothing is left out."""
    if isinstance(space, _LEAF_SPACES):
        return None
    if not isinstance(space, (spaces.Dict, spaces.Tuple)):
        raise UnsupportedSpaceError(f"cannot encode observation space {space}")
    is_dict = isinstance(space, spaces.Dict)
    items = list(space.spaces.items()) if is_dict else list(enumerate(space.spaces))
    kept: list[tuple[Any, Callable[[Any], Any] | None]] = []
    for key, sub in items:
        try:
            encodable_space(sub, warn=False)
        except UnsupportedSpaceError:
            continue
        kept.append((key, observation_selector(sub)))
    if len(kept) == len(items) and all(sel is None for _, sel in kept):
        return None
    if is_dict:
        return lambda obs: {k: (obs[k] if sel is None else sel(obs[k])) for k, sel in kept}
    return lambda obs: tuple(obs[k] if sel is None else sel(obs[k]) for k, sel in kept)
