"""Gymnasium spaces as plain data, so checkpoints never pickle a space object.

``describe_space(space)`` gives nested dicts, lists, strings, numbers and tensors (what
``torch.load(weights_only=True)`` reads); ``build_space(description)`` rebuilds an equal space.
Spaces rlmem cannot encode but that may sit inside a Dict or Tuple observation (a custom ``Space``
subclass such as MiniGrid's ``MissionSpace``) are described by their class name only and rebuilt
as an :class:`OpaqueSpace`, which the encoders leave out just as they left out the original.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces


class OpaqueSpace(spaces.Space):
    """Stands in for a space known only by name (nothing rlmem encodes can come from it)."""

    def __init__(self, name: str):
        super().__init__(None, None)
        self.name = name

    def contains(self, x: Any) -> bool:
        return True

    def sample(self, mask: Any = None, probability: Any = None) -> Any:
        raise NotImplementedError(f"{self.name} is known only by name and cannot be sampled")

    def __repr__(self) -> str:
        return f"OpaqueSpace({self.name})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, OpaqueSpace) and other.name == self.name


def _array(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, copy=True))


def describe_space(space: spaces.Space) -> dict[str, Any]:
    """Plain-data description of ``space`` (see :func:`build_space`)."""
    if isinstance(space, spaces.Box):
        return {"type": "Box", "low": _array(space.low), "high": _array(space.high),
                "dtype": np.dtype(space.dtype).name}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": _array(space.nvec), "start": _array(space.start),
                "dtype": np.dtype(space.dtype).name}
    if isinstance(space, spaces.MultiBinary):
        n = space.n
        return {"type": "MultiBinary", "n": int(n) if np.ndim(n) == 0 else [int(v) for v in np.ravel(n)]}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": [[str(k), describe_space(s)] for k, s in space.spaces.items()]}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [describe_space(s) for s in space.spaces]}
    if isinstance(space, spaces.Text):
        return {"type": "Text", "min_length": int(space.min_length), "max_length": int(space.max_length),
                "charset": "".join(space.character_set)}
    if isinstance(space, spaces.Sequence):
        return {"type": "Sequence", "space": describe_space(space.feature_space), "stack": bool(space.stack)}
    if isinstance(space, spaces.Graph):
        return {"type": "Graph", "node_space": describe_space(space.node_space),
                "edge_space": None if space.edge_space is None else describe_space(space.edge_space)}
    if isinstance(space, spaces.OneOf):
        return {"type": "OneOf", "spaces": [describe_space(s) for s in space.spaces]}
    return {"type": "Opaque", "name": type(space).__name__}


def build_space(desc: dict[str, Any]) -> spaces.Space:
    """The space a :func:`describe_space` description stands for; ``ValueError`` if it is malformed."""
    try:
        return _build(desc)
    except (KeyError, TypeError, AttributeError, IndexError) as err:
        raise ValueError(f"malformed space description {str(desc)[:200]}: {err!r}") from None


def _build(desc: dict[str, Any]) -> spaces.Space:
    kind = desc["type"]
    if kind == "Box":
        dtype = np.dtype(desc["dtype"])
        return spaces.Box(desc["low"].numpy().astype(dtype), desc["high"].numpy().astype(dtype), dtype=dtype)
    if kind == "Discrete":
        return spaces.Discrete(int(desc["n"]), start=int(desc["start"]))
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(desc["nvec"].numpy(), dtype=np.dtype(desc["dtype"]), start=desc["start"].numpy())
    if kind == "MultiBinary":
        return spaces.MultiBinary(desc["n"])
    if kind == "Dict":
        return spaces.Dict({k: _build(s) for k, s in desc["spaces"]})
    if kind == "Tuple":
        return spaces.Tuple([_build(s) for s in desc["spaces"]])
    if kind == "Text":
        return spaces.Text(max_length=desc["max_length"], min_length=desc["min_length"], charset=desc["charset"])
    if kind == "Sequence":
        return spaces.Sequence(_build(desc["space"]), stack=desc["stack"])
    if kind == "Graph":
        edge = desc["edge_space"]
        return spaces.Graph(_build(desc["node_space"]), None if edge is None else _build(edge))
    if kind == "OneOf":
        return spaces.OneOf([_build(s) for s in desc["spaces"]])
    if kind == "Opaque":
        return OpaqueSpace(str(desc["name"]))
    raise ValueError(f"unknown space type {kind!r}")
