"""Zero-filled storage for a Gymnasium space's values, in the dtype rlmem keeps them in."""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces


def space_zeros(space: spaces.Space, lead: tuple[int, ...], device: torch.device | str) -> Any:
    """Zeros ``[*lead, *shape]`` for values of ``space``, nested like it (Dict, Tuple): long for
    Discrete and MultiDiscrete, int8 for MultiBinary, uint8 or long for integer Boxes, else float32."""
    if isinstance(space, spaces.Dict):
        return {k: space_zeros(s, lead, device) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(space_zeros(s, lead, device) for s in space.spaces)
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)):
        dtype = torch.long
    elif isinstance(space, spaces.MultiBinary):
        dtype = torch.int8
    elif isinstance(space, spaces.Box) and space.dtype.kind in "ui":
        dtype = torch.uint8 if space.dtype.itemsize == 1 else torch.long
    elif isinstance(space, spaces.Box):
        dtype = torch.float32
    else:
        raise TypeError(f"no storage for values of {space}")
    return torch.zeros(*lead, *space.shape, dtype=dtype, device=device)
