"""Observations may be nested (Dict/Tuple spaces): small helpers that map over their leaves."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

Tree = Any  # a tensor/array, or a dict/tuple/list of trees


def tree_map(fn: Callable[..., Any], tree: Tree, *rest: Tree) -> Tree:
    """Apply ``fn`` leaf-wise over one or more trees of the same structure."""
    if isinstance(tree, dict):
        return {k: tree_map(fn, v, *(r[k] for r in rest)) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return type(tree)(tree_map(fn, v, *(r[i] for r in rest)) for i, v in enumerate(tree))
    return fn(tree, *rest)


def to_torch(obs: Tree, device: torch.device | str) -> Tree:
    """numpy (nested) -> torch on ``device``; bool becomes uint8, other dtypes are kept."""

    def convert(a):
        a = np.asarray(a)
        if a.dtype == np.bool_:
            a = a.astype(np.uint8)
        return torch.as_tensor(a, device=device)

    return tree_map(convert, obs)
